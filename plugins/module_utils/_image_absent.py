# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``state=absent``: delete images (``imgadm delete``), never anything that is not one.

Each uuid must be an image by the list heuristic (``_installed``); a VM's
dataset, an ignored one or a stray dataset is an error, never a destroy.
Several images go children first; an image with dependent clones is
refused with their names. Each destroy holds the image's import lock (the
stock imgadm's), so no import on this host receives a child of it
meanwhile, and re-checks the image and its clones under that lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ImageHasDependentClonesError
from ansible_collections.smartos.imgadm.plugins.module_utils._image_run import lines
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import ImageLock


def absent(run):
    p = run.params
    uuids = run.uuids()
    if p.get('name'):
        run.require_pool()
        uuids.extend(img['uuid'] for img in run.installed_by_name(p['name'], p.get('version')) if img['uuid'] not in uuids)
    present = run.require_images(uuids)
    records = dict((u, run.installed.get(run.pool, u)) for u in present)
    ordered = children_first(present, dict((u, r['manifest'].get('origin')) for u, r in records.items()))
    going = set(ordered)
    for u in ordered:
        refuse_clones(run, u, going)
    before = sorted(run.line(r['manifest']) for r in records.values())
    gone = []
    try:
        for u in ordered:
            m = records[u]['manifest']
            text = 'delete image %s (%s@%s)' % (u, m.get('name'), m.get('version'))
            if not run.check_mode:
                with ImageLock(u, lock_dir=p['lock_dir'], timeout=p['lock_timeout']):
                    if not run.require_images([u]):  # deleted by someone else meanwhile: not ours
                        continue
                    refuse_clones(run, u, going)
                    run.backend.destroy('%s/%s' % (run.pool, u), recursive=True)
                    run.installed.mark(run.pool, u, False)
                    run.db.remove(run.pool, u)
            gone.append(u)
            run.result.action(text)
            run.result.data['deleted'].append(dict(uuid=u, name=m.get('name'), version=m.get('version')))
    finally:
        run.result.set_diff(lines(before), lines(sorted(run.line(records[u]['manifest']) for u in ordered if u not in gone)))
    run.result.data['images'] = []
    run.result.data['image'] = None


def refuse_clones(run, uuid, going):
    ds = '%s/%s' % (run.pool, uuid)
    clones = [c for c in run.backend.dependent_clones(ds) if c.split('/', 1)[-1] not in going]
    if clones:
        more = ' and %d others' % (len(clones) - 1) if len(clones) > 1 else ''
        raise ImageHasDependentClonesError('image "%s" has dependent clones: %s%s' % (uuid, clones[0], more),
                                           uuid=uuid, clones=clones)


def children_first(uuids, origins):
    """``uuids`` ordered so that no image comes before an image whose origin it is."""
    order = []
    remaining = list(uuids)
    while remaining:
        progressed = False
        for u in list(remaining):
            if not any(origins.get(o) == u for o in remaining if o != u):
                order.append(u)
                remaining.remove(u)
                progressed = True
        if not progressed:  # pragma: no cover - origins cannot loop on one pool
            order.extend(remaining)
            break
    return order


__all__ = ('absent', 'children_first', 'refuse_clones')
