# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""Installed images: the reference's ``imgadm list`` heuristic and ``imgadm get``.

``parse_image_listing`` is pure: it takes the lines of
``zfs list -t filesystem,volume,snapshot -H -o name,origin,mountpoint,imgadm:ignore``
and the zone roots from ``zoneadm list -pc``, and returns the images with
their users (clones with vmadm names), as the reference computes them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import CommandError

_UUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
# The reference's POOLRE has no digits; ours accepts them so that pools such as
# "zones2" work (documented in docs/differences.md).
_POOL = r'[a-zA-Z][a-zA-Z0-9._-]*'
VMADM_FS_NAME_RE = re.compile(r'^(%s)/(%s)([-/]disk\d+)?$' % (_POOL, _UUID))
VMADM_IMG_NAME_RE = re.compile(r'^(%s)/(%s)$' % (_POOL, _UUID))


def _bool_from_string(value):
    # the reference's boolFromString: exactly "true"/"yes" (case-sensitive); anything else is false
    return value in ('true', 'yes')


def zone_roots(zoneadm_output):
    """The zonepaths (field 4) of ``zoneadm list -pc``."""
    roots = set()
    for line in zoneadm_output.splitlines():
        parts = line.split(':')
        if len(parts) > 3 and parts[3]:
            roots.add(parts[3])
    return roots


def parse_image_listing(rows, roots):
    """Images and their users from listing rows ``(name, origin, mountpoint, ignore)``.

    Returns an OrderedDict ``dataset -> {'pool', 'uuid', 'clones': [...]}`` in listing order.
    """
    has_final = set(r[0][:-6] for r in rows if r[0].endswith('@final'))
    images = OrderedDict()
    usage = {}
    for name, origin, mountpoint, ignore in rows:
        # Every clone counts as a user, whatever its name: the reference counts only
        # vmadm-named ones, so its vacuum then fails on "filesystem has dependent clones".
        if origin and origin != '-' and '@' not in name:
            usage.setdefault(origin.split('@')[0], []).append(name)
        if not VMADM_FS_NAME_RE.match(name):
            continue
        m = VMADM_IMG_NAME_RE.match(name)
        if not m or mountpoint in roots:
            continue
        if origin and origin.endswith('@final') and name not in has_final:
            continue  # a VM or a half-made clone, not an image
        if _bool_from_string(ignore):
            continue
        images[name] = {'pool': m.group(1), 'uuid': m.group(2), 'origin': origin if origin != '-' else None}
    for name, info in images.items():
        info['clones'] = sorted(usage.get(name, []))
    return images


class InstalledImages(object):
    """Queries about images installed on a pool."""

    def __init__(self, backend, db, run_zoneadm=None):
        self.backend = backend
        self.db = db
        self.run_zoneadm = run_zoneadm
        self._known = {}  # dataset -> exists, for this run (see ``mark``)

    def is_installed(self, pool, uuid, fresh=False):
        """What the reference's ``get`` and import check: ``POOL/UUID`` exists.

        Answers are remembered for the run; ``fresh`` asks ZFS again (after
        taking a lock, say), and ``mark`` records what the run itself changed.
        """
        ds = '%s/%s' % (pool, uuid)
        if fresh or ds not in self._known:
            self._known[ds] = self.backend.exists(ds)
        return self._known[ds]

    def mark(self, pool, uuid, installed):
        self._known['%s/%s' % (pool, uuid)] = installed

    def get(self, pool, uuid, children=False):
        """The record as ``imgadm get [-r]`` shows it, or None when not installed."""
        ds = '%s/%s' % (pool, uuid)
        if not self.is_installed(pool, uuid):
            return None
        rec, dummy = self.db.read(pool, uuid)
        rec = OrderedDict(rec)
        if children:
            rec['children'] = OrderedDict([
                ('snapshots', self.backend.list_snapshots(ds)),
                ('clones', self.backend.dependent_clones(ds)),
            ])
        return rec

    def list(self, pool):
        """Images on ``pool`` per the reference heuristic, with their records and clones."""
        roots = set()
        if self.run_zoneadm is not None:
            rc, out, err = self.run_zoneadm()
            if rc != 0:
                raise CommandError('could not list zones: zoneadm exited %s: %s' % (rc, (err or out).strip()))
            roots = zone_roots(out)
        runner = self.backend.runner
        rows = runner.zfs_rows('list', '-t', 'filesystem,volume,snapshot', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore',
                               '-r', pool, columns=4)
        found = parse_image_listing([tuple(r) for r in rows], roots)
        result = []
        for ds, info in found.items():
            rec, has_record = self.db.read(info['pool'], info['uuid'])
            result.append(dict(info, dataset=ds, record=rec, has_record=has_record))
        return result


def vacuum_plan(images, keep=()):
    """The images ``vacuum`` deletes, leaf first: iteratively, those no one uses.

    ``images`` as from ``InstalledImages.list``; ``keep`` holds uuids or names
    (``name`` or ``name@version``) never to delete.
    """
    keep = set(keep or ())
    users = dict((img['dataset'], set(img['clones'])) for img in images)
    by_ds = dict((img['dataset'], img) for img in images)

    def kept(img):
        m = img['record'].get('manifest', {})
        return (img['uuid'] in keep or m.get('name') in keep
                or ('%s@%s' % (m.get('name'), m.get('version'))) in keep)

    order = []
    while True:
        unused = [ds for ds, u in users.items() if not u and not kept(by_ds[ds]) and ds not in order]
        if not unused:
            break
        for ds in sorted(unused):
            order.append(ds)
            del users[ds]
        for u in users.values():
            u.difference_update(order)
    return [by_ds[ds] for ds in order]


__all__ = ('VMADM_FS_NAME_RE', 'VMADM_IMG_NAME_RE', 'zone_roots', 'parse_image_listing', 'InstalledImages', 'vacuum_plan')
