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

import json
import os
import shlex
import threading
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import COLLECTION_VERSION
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandError,
    CommandTimeoutError,
    ImgadmError,
    MissingLibraryError,
    UsageError,
)

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
    sysinfo_path=dict(type='path', default='/usr/bin/sysinfo'),
    zoneadm_path=dict(type='path', default='/usr/sbin/zoneadm'),
    gzip_path=dict(type='path', default='/usr/bin/gzip'),
    bzip2_path=dict(type='path', default='/usr/bin/bzip2'),
    xz_path=dict(type='path', default='/usr/bin/xz'),
    command_timeout=dict(type='float', default=300.0),
)

# Lower bounds of numeric options, checked for every module that has them:
# option -> (bound, True when the bound itself is allowed)
RANGES = {
    'concurrency': (1, True),
    'retries': (0, True),
    'timeout': (0, False),
    'lock_timeout': (0, True),
    'command_timeout': (0, False),
}


def check_ranges(params):
    """A clear error naming the first numeric option out of range (``RANGES``)."""
    for name in sorted(RANGES):
        value = params.get(name)
        if value is None:
            continue
        bound, inclusive = RANGES[name]
        if value < bound or (value == bound and not inclusive):
            raise UsageError('%s must be %s %s, got %s' % (name, 'at least' if inclusive else 'greater than', bound, value),
                             field=name)


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


def read_sysinfo(module, run_command):
    """The host's ``sysinfo`` (``sysinfo_path``) as a dict; ``CommandError`` when it fails or prints no JSON."""
    path = find_binary(module, module.params['sysinfo_path'], 'sysinfo')
    rc, out, err = run_command([path], environ_update={'LC_ALL': 'C'})
    if rc != 0:
        raise CommandError('sysinfo failed (exit status %s): %s' % (rc, (err or out).strip()))
    try:
        return json.loads(out)
    except ValueError as e:
        raise CommandError('sysinfo printed no JSON: %s' % e)


def _cmdline(argv):
    return ' '.join(shlex.quote(str(a)) for a in argv)


class CommandRunner(object):
    """``module.run_command`` with a deadline.

    Same calling convention as ``run_command`` (``args, check_rc, data,
    binary_data, environ_update``). The command runs in a helper thread;
    past ``timeout`` seconds it is killed and ``CommandTimeoutError`` names
    it. A command that cannot even be killed (stuck in the kernel) is left
    behind rather than waited for: the task fails instead of hanging.
    """

    def __init__(self, module, timeout):
        self.module = module
        self.timeout = timeout

    def __call__(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
        box = {}

        def started(proc):
            box['proc'] = proc

        def target():
            try:
                box['result'] = self.module.run_command(
                    args, check_rc=False, data=data, binary_data=binary_data, environ_update=environ_update,
                    before_communicate_callback=started, handle_exceptions=False)
            except BaseException as e:  # pylint: disable=broad-exception-caught
                box['error'] = e

        thread = threading.Thread(target=target)
        thread.daemon = True
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            proc = box.get('proc')
            if proc is not None:
                try:
                    proc.kill()
                except OSError:
                    pass
            thread.join(5)
            raise CommandTimeoutError('%s did not finish within %s s (command_timeout) and was killed%s'
                                      % (_cmdline(args), self.timeout, '' if not thread.is_alive() else
                                         ' (it did not exit: it may be stuck in the kernel)'),
                                      cmd=[str(a) for a in args], timeout=self.timeout)
        if 'error' in box:
            raise box['error']
        return box['result']


class Result(object):
    """Collects ``changed``, planned ``actions`` and the diff of a module run."""

    def __init__(self, module):
        self.module = module
        self.changed = False
        self.actions = []
        self.data = {}
        self.before = None
        self.after = None
        self.warnings = []
        self._lock = threading.Lock()

    def warn(self, text):
        with self._lock:
            self.warnings.append(text)

    def action(self, text, changes=True):
        """Record what the task does (or, in check mode, would do)."""
        if changes:
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


def run_module(argument_spec, run, fast_exit=False, **module_kwargs):
    """Build the AnsibleModule, call ``run(module, result)`` and exit.

    ``run`` fills ``result`` (a ``Result``) as it goes. Any ImgadmError is
    turned into ``fail_json`` here, with its reference ``error_code`` and
    with what the run did before the error (``changed``, ``actions`` and
    the other keys of ``result``): a failed task still says what it changed.
    ``fast_exit`` is for modules that return large results (``_skip_empty_scrub``).
    """
    module_kwargs.setdefault('supports_check_mode', True)
    module = AnsibleModule(argument_spec=argument_spec, **module_kwargs)
    result = Result(module)
    try:
        check_ranges(module.params)
        run(module, result)
    except MissingLibraryError as e:
        failed = result.as_dict()
        failed.update(msg=missing_required_lib(e.library), exception=e.import_traceback, error_code=e.code)
        module.fail_json(**failed)
    except ImgadmError as e:
        failed = result.as_dict()
        failed.update(e.fail_kwargs())
        failed['exception'] = traceback.format_exc()
        module.fail_json(**failed)
    for warning in result.warnings:
        module.warn(warning)
    if fast_exit:
        _skip_empty_scrub(module)
    module.exit_json(**result.as_dict())


def _unchanged(value, no_log_strings):
    return value


def _skip_empty_scrub(module):
    """Let ``exit_json`` skip its no_log scrub when there is nothing to scrub.

    ``exit_json`` passes the whole result through ``remove_values`` even
    when the module has no ``no_log`` values; then it only copies the
    result, which for 10,000 manifests is half of the module's time and a
    fifth of its memory. The module process ends with this ``exit_json``.
    """
    if module.no_log_values:
        return
    from ansible.module_utils import basic

    basic.remove_values = _unchanged


__all__ = (
    'COLLECTION_VERSION', 'DATABASE_ARGS', 'IMGAPI_ARGS', 'BINARY_ARGS', 'RANGES', 'check_ranges',
    'argument_spec', 'find_binary', 'CommandRunner', 'Result', 'run_module',
)
