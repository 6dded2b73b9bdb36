# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``state=updated``: refresh manifests from the sources and repair a lost ``@final`` (``imgadm update``).

Only images by the list heuristic (a VM's dataset is an error). Unlike the
reference, check mode renames no snapshot (its ``update -n`` does).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ImageMissingOriginalSnapshotError, UsageError
from ansible_collections.smartos.imgadm.plugins.module_utils._image_run import lines
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import ImageLock
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import file_info


def updated(run):
    p = run.params
    uuids = run.uuids()
    run.require_pool()
    if p.get('name'):
        uuids.extend(img['uuid'] for img in run.installed_by_name(p['name'], p.get('version')) if img['uuid'] not in uuids)
        if not uuids:
            raise UsageError('no installed image named "%s" on pool %s' % (p['name'], run.pool), field='name')
    elif not uuids:
        uuids = [img['uuid'] for img in run.installed.list(run.pool) if img['has_record'] or img['has_final']]
    installed = run.require_images(uuids)
    missing = [u for u in uuids if u not in installed]
    if missing:
        raise UsageError('no installed image with the given UUID(s) on pool %s: %s' % (run.pool, ', '.join(missing)), field='uuid')
    before, after = [], []
    try:
        for u in uuids:
            _update_one(run, u, before, after)
    finally:
        run.result.set_diff(lines(before), lines(after))
    run.set_images(uuids)


def _update_one(run, u, before, after):
    rec, dummy = run.db.read(run.pool, u)
    manifest, source = run.sources.find(u, ensure_active=False)
    if manifest is None:
        run.result.warn('could not find image %s in image sources (skipping)' % u)
        return
    changes = []
    local = rec.get('manifest') or {}
    if json.dumps(local, sort_keys=True) != json.dumps(manifest, sort_keys=True) or rec.get('source') != source.url:
        changes.append(('manifest', diff_fields(local, manifest)))
    ds = '%s/%s' % (run.pool, u)
    snaps = run.backend.list_snapshots(ds)
    rename = None
    if ds + '@final' not in snaps:
        rename = _original_snapshot(run, u, snaps, manifest)
        if rename:
            changes.append(('final', rename))
    if not changes:
        return
    if not run.check_mode:
        with ImageLock(u, lock_dir=run.params['lock_dir'], timeout=run.params['lock_timeout']):
            if changes[0][0] == 'manifest':
                run.db.write(run.pool, u, manifest, source=source.url)
            if rename:
                run.backend.rename(rename, ds + '@final', recursive=True)
    for kind, what in changes:
        if kind == 'manifest':
            run.result.action('update manifest of image %s from %s: %s' % (u, source.url, ', '.join(what) or 'source'))
            before.append('%s manifest %s' % (u, json.dumps(local, sort_keys=True)))
            after.append('%s manifest %s' % (u, json.dumps(manifest, sort_keys=True)))
        else:
            run.result.action('rename original snapshot of image %s from %s to %s@final' % (u, what, ds))
            before.append('%s snapshot %s' % (u, what))
            after.append('%s snapshot %s@final' % (u, ds))
    run.result.data['updated'].append(dict(uuid=u, changes=[k if k != 'manifest' else 'manifest: ' + ', '.join(w)
                                                            for k, w in changes]))


def _original_snapshot(run, uuid, snaps, manifest):
    if not snaps:
        raise ImageMissingOriginalSnapshotError('image %s has no snapshots: cannot find its original @final' % uuid, uuid=uuid)
    guid = (file_info(manifest) or {}).get('dataset_guid')
    if not guid:
        run.result.warn('cannot determine the original snapshot of image %s: its manifest has no files[0].dataset_guid' % uuid)
        return None
    props = run.backend.get_properties(snaps, ['guid'])
    for snap in snaps:
        if str(props.get(snap, {}).get('guid')) == str(guid):
            return snap
    raise ImageMissingOriginalSnapshotError('image %s: no snapshot has the original guid %s (snapshots: %s)'
                                            % (uuid, guid, ', '.join(snaps)), uuid=uuid, dataset_guid=guid)


def diff_fields(old, new):
    """The manifest fields that differ (``requirements`` key by key, as the reference lists them)."""
    fields = []
    for key in sorted(set(old) | set(new)):
        if key == 'requirements' and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            for sub in sorted(set(old[key]) | set(new[key])):
                if old[key].get(sub) != new[key].get(sub):
                    fields.append('requirements.%s' % sub)
        elif old.get(key) != new.get(key):
            fields.append(key)
    return fields


__all__ = ('updated', 'diff_fields')
