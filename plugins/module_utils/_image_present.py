# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``state=present`` and ``state=latest``: which images to import, then ``_importer`` imports them.

* ``present`` by uuid: the image and its origin chain, ancestors already on
  the pool skipped (``imgadm import``);
* ``present`` by name: satisfied by an installed image of that name (and
  version) without asking any source; otherwise as ``latest``;
* ``latest`` by name: the newest active image of that name across the
  sources (``selected`` says which and why);
* ``present`` with ``manifest`` and ``file``: ``imgadm install``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    DownloadError,
    ImageNotActiveError,
    InvalidManifestError,
    OriginNotInstalledError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._image_run import lines
from ansible_collections.smartos.imgadm.plugins.module_utils._importer import file_chunks, import_plan
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import acquire_locks
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import (
    file_info,
    published_at_key,
    upgrade_manifest,
    validate_manifest,
)


def present(run):
    p = run.params
    if p.get('manifest') is not None:
        install_from_file(run)
        return
    if p.get('name'):
        run.require_pool()
        found = run.installed_by_name(p['name'], p.get('version'))
        if found:
            _satisfied_by_installed(run, found)
            return
        _import(run, [run.sources.newest(p['name'], p.get('version'))])
        return
    _import(run, [(uuid, None) for uuid in run.uuids()])


def latest(run):
    run.require_pool()
    _import(run, [run.sources.newest(run.params['name'], run.params.get('version'))])


def _satisfied_by_installed(run, found):
    """``present`` by name with such an image installed: nothing to do, no source asked."""
    p = run.params
    newest = max(found, key=lambda img: published_at_key(img['record'].get('manifest') or {}))
    m = newest['record'].get('manifest') or {}
    what = '%s@%s' % (p['name'], p['version']) if p.get('version') else p['name']
    run.result.data['selected'] = dict(
        uuid=newest['uuid'], name=m.get('name'), version=m.get('version'), source=newest['record'].get('source'),
        reason='installed: %d image(s) "%s" on pool %s, the newest by published_at chosen; no source was asked '
               '(state=latest imports a newer one)' % (len(found), what, run.pool))
    run.result.data['plan'] = []
    run.result.data['plan_bytes'] = 0
    same = lines(run.installed_lines([newest['uuid']]))
    run.result.set_diff(same, same)
    run.set_images([newest['uuid']])


def _import(run, tops):
    """Import ``tops`` (``(manifest, source)`` or ``(uuid, None)``) with their origin chains."""
    wanted = [t[0]['uuid'] if isinstance(t[0], dict) else t[0] for t in tops]
    installed = set(run.require_images(wanted))  # a dataset that is not an image is an error, not "installed"
    plan = OrderedDict()  # uuid -> (manifest, source), base before top, each once
    manifests = {}
    for uuid, top in zip(wanted, tops):
        if uuid in installed:
            continue
        manifest, source = top if isinstance(top[0], dict) else run.sources.find(uuid, ensure_active=True)
        if manifest.get('state') != 'active':
            raise ImageNotActiveError('image "%s" is not active (state %s)' % (uuid, manifest.get('state')), uuid=uuid)
        chain = run.sources.ancestry(manifest, source)
        for m in chain:
            manifests.setdefault(m['uuid'], m)
        on_pool = run.backend.which_exist(['%s/%s' % (run.pool, m['uuid']) for m in chain[1:]])
        for m in chain[1:]:
            run.installed.mark(run.pool, m['uuid'], '%s/%s' % (run.pool, m['uuid']) in on_pool)
        for m in reversed(chain):
            if m['uuid'] not in plan and '%s/%s' % (run.pool, m['uuid']) not in on_pool:
                plan[m['uuid']] = (m, source)
    for m, dummy in plan.values():
        run.check_platform(m)

    run.result.data['plan'] = [dict(uuid=u, name=m.get('name'), version=m.get('version'), bytes=(file_info(m) or {}).get('size'),
                                    source=s.url) for u, (m, s) in plan.items()]
    run.result.data['plan_bytes'] = sum(x['bytes'] or 0 for x in run.result.data['plan'])
    before = run.installed_lines(wanted + list(plan))
    if run.check_mode:
        for u, (m, s) in plan.items():
            run.result.action('import image %s (%s@%s) from %s' % (u, m.get('name'), m.get('version'), s.url))
        after = sorted(set(before) | set(run.line(m) for m, s in plan.values()))
    else:
        if plan:
            import_plan(run, plan, manifests)
        after = run.installed_lines(wanted + list(plan))
    run.result.set_diff(lines(before), lines(after))
    run.set_images(wanted, dict((u, run.db.record(m, run.pool, s.url)) for u, (m, s) in plan.items()))


# ---- from files (imgadm install)

def _load_manifest(value):
    if isinstance(value, dict):
        manifest = value
    elif isinstance(value, str):
        if not os.path.exists(value):
            raise UsageError('manifest path does not exist: "%s"' % value, field='manifest')
        try:
            with open(value) as f:
                manifest = json.load(f, object_pairs_hook=OrderedDict)
        except ValueError as e:
            raise InvalidManifestError('manifest is invalid: %s: %s' % (value, e), field='manifest')
    else:
        raise UsageError('manifest must be a path on the host or a dict', field='manifest')
    if not isinstance(manifest, dict):
        raise InvalidManifestError('manifest is invalid: not a JSON object', field='manifest')
    manifest = upgrade_manifest(manifest)
    if not manifest.get('published_at'):
        now = datetime.datetime.utcnow()
        manifest['published_at'] = now.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (now.microsecond // 1000)
    validate_manifest(manifest, mode='minimal')
    return manifest


def install_from_file(run):
    p = run.params
    manifest = _load_manifest(p['manifest'])
    path = p['file']
    if not os.path.isfile(path):
        raise UsageError('file path does not exist: "%s"' % path, field='file')
    run.require_pool()
    uuid = manifest['uuid']
    if run.require_images([uuid]):
        same = lines(run.installed_lines([uuid]))
        run.result.set_diff(same, same)
        run.set_images([uuid])
        return
    run.check_platform(manifest)
    origin = manifest.get('origin')
    if origin and not run.require_images([origin]):
        raise OriginNotInstalledError('origin %s of image %s is not installed on pool %s: install it first'
                                      % (origin, uuid, run.pool), uuid=uuid, origin=origin)
    info = file_info(manifest) or {}
    zstream = p.get('zstream')
    size = os.path.getsize(path)
    if not zstream and info.get('size') is not None and int(info['size']) != size:
        raise DownloadError('image %s file size error: manifest says %s bytes, "%s" has %s bytes' % (uuid, info['size'], path, size),
                            field='file')
    run.result.data['plan'] = [dict(uuid=uuid, name=manifest.get('name'), version=manifest.get('version'), bytes=size, source=None)]
    run.result.data['plan_bytes'] = size
    if run.check_mode:
        run.result.action('install image %s (%s@%s) from %s' % (uuid, manifest.get('name'), manifest.get('version'), path))
        after = [run.line(manifest)]
    else:
        # the image's lock, and its origin's so that no delete takes the origin away meanwhile
        with acquire_locks([uuid] + ([origin] if origin else []), lock_dir=p['lock_dir'], timeout=p['lock_timeout']):
            installer = run.installer()
            final = '%s/%s' % (run.pool, uuid)
            leftovers = installer.leftover_names(run.pool, uuid)
            found = run.backend.which_exist([final] + leftovers)
            if final in found:
                run.result.data['imported_by_others'].append(uuid)
                run.result.warn('image %s was installed by another process while this task waited for its lock' % uuid)
            else:
                installer.clean_partial(run.pool, uuid, found=[n for n in leftovers if n in found])
                compression = 'none' if zstream else (info.get('compression') or 'none')
                stats = installer.receive(run.pool, manifest, file_chunks(path), compression,
                                          expected_size=None if zstream else info.get('size'),
                                          expected_sha1=None if zstream else info.get('sha1'), verify=not zstream)
                run.installed.mark(run.pool, uuid, True)
                run.record_import(manifest, None, compression, stats, 1)
        after = run.installed_lines([uuid])
    run.result.set_diff('', lines(after))
    run.set_images([uuid], {uuid: run.db.record(manifest, run.pool, None)})


__all__ = ('present', 'latest', 'install_from_file')
