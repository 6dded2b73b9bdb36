# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""One run of ``imgadm_image``: its options, checked, and what every state shares.

``check_options`` says which options apply to which state; an ``ImageRun``
holds the pool, ZFS, the database, the sources, sysinfo and the result for
the state's own small file (see ``_image_states``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._common import CommandRunner, find_binary, read_sysinfo
from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase, validate_pool_name
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandError,
    ImgadmError,
    NotAnImageError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._image_sources import ImageSources
from ansible_collections.smartos.imgadm.plugins.module_utils._importer import ZfsInstaller
from ansible_collections.smartos.imgadm.plugins.module_utils._installed import InstalledImages
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import host_mount_gate
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import check_platform, validate_uuid
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import ZfsRunner, get_backend

# The options that belong to one state or a few; any other state refuses them.
# (Options that module_defaults commonly set for every task, such as sources,
# channel, concurrency or the paths, are accepted everywhere and ignored where
# they do not apply.)
STATE_OPTIONS = OrderedDict([
    ('uuid', ('present', 'absent', 'updated')),
    ('uuids', ('present', 'absent', 'updated')),
    ('name', ('present', 'latest', 'absent', 'updated')),
    ('version', ('present', 'latest', 'absent', 'updated')),
    ('manifest', ('present',)),
    ('file', ('present',)),
    ('zstream', ('present',)),
    ('keep', ('vacuumed',)),
])


def check_options(params):
    """A clear error naming the first option that does not fit the state (or is missing)."""
    state = params['state']
    for option, states in STATE_OPTIONS.items():
        value = params.get(option)
        if value in (None, False, []):
            continue
        if state not in states:
            raise UsageError('%s does not apply to state=%s (only to state=%s)' % (option, state, ', '.join(states)),
                             field=option)
    if params.get('version') and not params.get('name'):
        raise UsageError('version needs name', field='version')
    if (params.get('manifest') is None) != (not params.get('file')):
        missing = 'file' if params.get('manifest') is not None else 'manifest'
        raise UsageError('manifest and file go together: %s is missing' % missing, field=missing)
    selectors = [o for o in ('uuid', 'uuids', 'name') if params.get(o)] + (['manifest'] if params.get('manifest') is not None else [])
    if len(selectors) > 1:
        raise UsageError('%s are mutually exclusive' % ' and '.join(selectors), field=selectors[1])
    if state == 'present' and not selectors:
        raise UsageError('state=present needs uuid, uuids, name or manifest and file', field='uuid')
    if state == 'latest' and not params.get('name'):
        raise UsageError('state=latest needs name (the newest image of that name is imported)', field='name')
    if state == 'absent' and not selectors:
        raise UsageError('state=absent needs uuid, uuids or name: which images to delete', field='uuid')


class ImageRun(object):
    """What every state of one module run shares. ``result`` is the run's ``Result``."""

    def __init__(self, module, result):
        self.module = module
        self.result = result
        p = self.params = module.params
        self.pool = validate_pool_name(p['pool'])
        self.check_mode = module.check_mode
        self.run_command = CommandRunner(module, p['command_timeout'])
        runner = ZfsRunner(self.run_command, zfs_bin=find_binary(module, p['zfs_path'], 'zfs'))
        gate = host_mount_gate(p['command_timeout'], fallback_dir=p['lock_dir'])
        self.backend = get_backend(runner, prefer=p['zfs_backend'], mount_gate=gate)
        self.db = ImageDatabase(p['imgadm_dir'])
        self.installed = InstalledImages(self.backend, self.db, run_zoneadm=self._run_zoneadm)
        self.sources = ImageSources(p, result)
        self._lock = threading.Lock()
        self._decompressors = {}
        self._parents = set()  # never-mounted parents of partial images known to exist, for every installer
        self._sysinfo = None
        for key in ('imported', 'imported_by_others', 'deleted', 'updated'):
            result.data.setdefault(key, [])
        result.data['zfs_backend'] = self.backend.name

    # ---- selectors

    def uuids(self):
        """``uuid`` and ``uuids``, validated, each once, in order."""
        p = self.params
        found = OrderedDict()
        for field, values in (('uuid', [p['uuid']] if p.get('uuid') else []), ('uuids', p.get('uuids') or [])):
            for value in values:
                found[validate_uuid(value, field=field)] = True
        return list(found)

    def installed_by_name(self, name, version=None):
        """Images (by the list heuristic) on the pool called ``name`` (and ``version``): their list entries."""
        found = []
        for img in self.installed.list(self.pool):
            m = img['record'].get('manifest', {})
            if m.get('name') == name and (not version or m.get('version') == version):
                found.append(img)
        return found

    # ---- checks before acting

    def require_pool(self):
        """An error before anything is fetched or changed when the pool does not exist."""
        self.require_images([])

    def require_images(self, uuids):
        """The uuids installed on the pool; an error for one whose dataset exists but is not an image.

        A pool that does not exist is an error (``PoolNotFound``) before anything is fetched or changed.
        """
        installed = []
        for uuid, what in self.installed.examine(self.pool, uuids).items():
            if what is None:
                continue
            if what != 'image':
                ds = '%s/%s' % (self.pool, uuid)
                raise NotAnImageError('%s is not an image: %s; this module never destroys or changes it' % (ds, what),
                                      uuid=uuid, dataset=ds)
            installed.append(uuid)
        return [u for u in uuids if u in installed]

    # ---- helpers of the states

    def _run_zoneadm(self):
        return self.run_command([find_binary(self.module, self.params['zoneadm_path'], 'zoneadm'), 'list', '-pc'],
                                environ_update={'LC_ALL': 'C'})

    def sysinfo(self):
        with self._lock:
            if self._sysinfo is None:
                self._sysinfo = read_sysinfo(self.module, self.run_command)
            return self._sysinfo

    def check_platform(self, manifest):
        reqs = manifest.get('requirements') or {}
        if reqs.get('min_platform') or reqs.get('max_platform'):
            check_platform(manifest, self.sysinfo())

    def decompressor(self, compression):
        """argv prefix of the decompressor for ``compression``, looked up when first needed."""
        with self._lock:
            if compression not in self._decompressors:
                try:
                    path = find_binary(self.module, self.params['%s_path' % compression], compression)
                except ImgadmError:
                    raise CommandError('cannot find the "%s" command needed to uncompress the image' % compression)
                self._decompressors[compression] = [path, '-cdfq']
            return self._decompressors[compression]

    def installer(self):
        return ZfsInstaller(self.backend, self.db, _Decompressors(self), self.params['command_timeout'], parents=self._parents)

    def record_import(self, manifest, source_url, compression, stats, attempts):
        """One image imported by this run: the result says so, and the task has changed."""
        self.result.action('imported image %s (%s@%s) from %s'
                           % (manifest['uuid'], manifest.get('name'), manifest.get('version'), source_url or 'a file'))
        with self._lock:
            self.result.data['imported'].append(OrderedDict([
                ('uuid', manifest['uuid']), ('name', manifest.get('name')), ('version', manifest.get('version')),
                ('source', source_url), ('compression', compression), ('bytes', stats.bytes),
                ('seconds', round(stats.seconds, 3)), ('mib_per_second', stats.throughput), ('attempts', attempts),
            ]))

    @staticmethod
    def line(manifest):
        """One image in the diff."""
        return '%s %s@%s' % (manifest['uuid'], manifest.get('name'), manifest.get('version'))

    def installed_lines(self, uuids):
        lines = set()
        for u in uuids:
            rec = self.installed.get(self.pool, u)
            if rec is not None:
                lines.add(self.line(rec['manifest']))
        return sorted(lines)

    def set_images(self, uuids, predicted=None):
        """``images`` (and ``image`` for one) as ``imgadm get`` shows them; ``predicted`` fills in check mode."""
        images = []
        for u in OrderedDict((u, 1) for u in uuids):
            rec = self.installed.get(self.pool, u)
            if rec is None and predicted and u in predicted:
                rec = predicted[u]
            if rec is not None:
                images.append(rec)
        self.result.data['images'] = images
        self.result.data['image'] = images[0] if len(images) == 1 else None


class _Decompressors(object):
    def __init__(self, run):
        self.run = run

    def __getitem__(self, compression):
        return self.run.decompressor(compression)


def lines(items):
    """Diff text: one line each."""
    return ''.join(item + '\n' for item in items)


__all__ = ('STATE_OPTIONS', 'check_options', 'ImageRun', 'lines')
