# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""Argument-spec pieces (mirrored by the doc fragments) and the module base.

``run_module`` is the one place where the typed errors of ``_errors`` become
``fail_json``: library code raises, modules never catch.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ImgadmError, MissingLibraryError

COLLECTION_VERSION = '0.1.0'

# Mirrors plugins/doc_fragments/_database.py
DATABASE_ARGS = dict(
    imgadm_dir=dict(type='path', default='/var/imgadm'),
    lock_timeout=dict(type='float', default=60.0),
)

# Mirrors plugins/doc_fragments/_imgapi.py
IMGAPI_ARGS = dict(
    validate_certs=dict(type='bool', default=True),
    timeout=dict(type='float', default=30.0),
    retries=dict(type='int', default=3),
)

# Mirrors plugins/doc_fragments/_binaries.py
BINARY_ARGS = dict(
    zfs_path=dict(type='path', default='/usr/sbin/zfs'),
    zpool_path=dict(type='path', default='/usr/sbin/zpool'),
    sysinfo_path=dict(type='path', default='/usr/bin/sysinfo'),
    zoneadm_path=dict(type='path', default='/usr/sbin/zoneadm'),
    gzip_path=dict(type='path', default='/usr/bin/gzip'),
    bzip2_path=dict(type='path', default='/usr/bin/bzip2'),
    xz_path=dict(type='path', default='/usr/bin/xz'),
)


def argument_spec(*pieces, **own):
    """Merge shared argspec pieces with a module's own options."""
    spec = {}
    for piece in pieces:
        spec.update(piece)
    spec.update(own)
    return spec


def find_binary(module, path, name):
    """Resolve a configured binary: the configured path when it exists, else PATH."""
    if path and os.path.isabs(path) and os.access(path, os.X_OK):
        return path
    found = module.get_bin_path(os.path.basename(path or name))
    if found:
        return found
    raise ImgadmError('cannot find the "%s" command (looked for "%s" and on PATH)' % (name, path), code='InternalError')


class Result(object):
    """Collects ``changed``, planned ``actions`` and the diff of a module run."""

    def __init__(self, module):
        self.module = module
        self.changed = False
        self.actions = []
        self.data = {}
        self.before = None
        self.after = None

    def action(self, text):
        self.changed = True
        self.actions.append(text)

    def set_diff(self, before, after):
        self.before = before
        self.after = after

    def as_dict(self):
        result = dict(self.data)
        result['changed'] = self.changed
        result['actions'] = self.actions
        if self.module._diff and self.before is not None:
            result['diff'] = dict(before=self.before, after=self.after)
        return result


def run_module(argument_spec, run, **module_kwargs):
    """Build the AnsibleModule, call ``run(module)`` and exit.

    ``run`` returns the result dict. Any ImgadmError is turned into
    ``fail_json`` here, with its reference ``error_code``.
    """
    module_kwargs.setdefault('supports_check_mode', True)
    module = AnsibleModule(argument_spec=argument_spec, **module_kwargs)
    try:
        result = run(module)
    except MissingLibraryError as e:
        module.fail_json(msg=missing_required_lib(e.library), exception=e.import_traceback, error_code=e.code)
    except ImgadmError as e:
        module.fail_json(exception=traceback.format_exc(), **e.fail_kwargs())
    module.exit_json(**result)


__all__ = (
    'COLLECTION_VERSION', 'DATABASE_ARGS', 'IMGAPI_ARGS', 'BINARY_ARGS',
    'argument_spec', 'find_binary', 'Result', 'run_module',
)
