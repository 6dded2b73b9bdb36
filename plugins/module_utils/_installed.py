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
their users (clones), as the reference computes them.

``not_an_image`` is the same heuristic for one dataset, saying why it is not
an image; ``InstalledImages.examine`` asks it for the datasets a task is
about to destroy or change. The reference's ``get``, ``delete`` and import
check only that ``POOL/UUID`` exists; we never destroy or change a dataset
that is not an image by this heuristic, and for that it must also have a
database record or an ``@final`` snapshot (a stray ``zfs create POOL/UUID``
has neither).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import POOL, UUID
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import CommandError, PoolNotFoundError, ZfsError

VMADM_FS_NAME_RE = re.compile(r'^(%s)/(%s)([-/]disk\d+)?$' % (POOL, UUID))
VMADM_IMG_NAME_RE = re.compile(r'^(%s)/(%s)$' % (POOL, UUID))
LISTING_COLUMNS = 'name,origin,mountpoint,imgadm:ignore'


def _bool_from_string(value):
    # the reference's boolFromString: exactly "true"/"yes" (case-sensitive); anything else is false
    return value in ('true', 'yes')


def zone_roots(zoneadm_output):
    """``{zonepath: zonename}`` from ``zoneadm list -pc`` (fields 4 and 2)."""
    roots = {}
    for line in zoneadm_output.splitlines():
        parts = line.split(':')
        if len(parts) > 3 and parts[3]:
            roots[parts[3]] = parts[1]
    return roots


def not_an_image(name, rows, roots, has_record):
    """Why the existing dataset ``name`` is not an image, or None when it is one.

    ``rows`` are its listing rows (itself and its snapshots, columns as in
    ``parse_image_listing``), ``roots`` as from ``zone_roots``,
    ``has_record`` whether the database has a record for it.
    """
    own = [r for r in rows if r[0] == name]
    if not own:
        return 'it is not listed by zfs'
    dummy, origin, mountpoint, ignore = own[0]
    has_final = any(r[0] == name + '@final' for r in rows)
    if not VMADM_IMG_NAME_RE.match(name):
        return 'its name is not POOL/UUID'
    if mountpoint in roots:
        return 'it is the zone root of zone %s (zoneadm list), a VM\'s dataset' % roots[mountpoint]
    if origin and origin.endswith('@final') and not has_final:
        return 'it is a clone of %s without an @final snapshot of its own (a VM\'s dataset)' % origin
    if _bool_from_string(ignore):
        return 'it is marked imgadm:ignore=%s' % ignore
    if not has_record and not has_final:
        return 'it has neither a database record nor an @final snapshot'
    return None


def parse_image_listing(rows, roots):
    """Images and their users from listing rows ``(name, origin, mountpoint, ignore)``.

    Returns an OrderedDict ``dataset -> {'pool', 'uuid', 'origin', 'has_final', 'clones',
    'clone_names'}`` in listing order. ``clones`` are all the datasets cloned from the
    image's snapshots, sorted (what deleting it would break); ``clone_names`` are those the
    reference's ``imgadm list`` reports as ``cloneNames``: only vmadm-named ones
    (``POOL/UUID``, ``POOL/UUID-diskN``, ``POOL/UUID/diskN``), in listing order.
    """
    has_final = set(r[0][:-6] for r in rows if r[0].endswith('@final'))
    images = OrderedDict()
    usage = {}
    vmadm_usage = {}
    for name, origin, mountpoint, ignore in rows:
        # Every clone counts as a user, whatever its name: the reference counts only
        # vmadm-named ones, so its vacuum then fails on "filesystem has dependent clones".
        if origin and origin != '-' and '@' not in name:
            usage.setdefault(origin.split('@')[0], []).append(name)
        if not VMADM_FS_NAME_RE.match(name):
            continue
        if origin and origin != '-':
            vmadm_usage.setdefault(origin.split('@')[0], []).append(name)
        m = VMADM_IMG_NAME_RE.match(name)
        if not m or mountpoint in roots:
            continue
        if origin and origin.endswith('@final') and name not in has_final:
            continue  # a VM or a half-made clone, not an image
        if _bool_from_string(ignore):
            continue
        images[name] = {'pool': m.group(1), 'uuid': m.group(2), 'origin': origin if origin != '-' else None,
                        'has_final': name in has_final}
    for name, info in images.items():
        info['clones'] = sorted(usage.get(name, []))
        info['clone_names'] = vmadm_usage.get(name, [])
    return images


class Inventory(object):
    """One look at the images on some pools: ``imgadm list -j``, ``get -r`` and ``ancestry``.

    Built by ``InstalledImages.inventory`` from one ``zfs list`` (``rows``),
    one ``zoneadm list`` (``roots``) and one pass over the database
    (``records``: ``{(pool, uuid): (record, found)}``); it runs nothing itself.
    """

    def __init__(self, rows, roots, images, records):
        self.rows = rows
        self.roots = roots
        self.images = images  # parse_image_listing(rows, roots)
        self.records = records
        self._names = None

    def _record(self, pool, uuid):
        rec, dummy = self.records[(pool, uuid)]
        return OrderedDict(rec)

    def entries(self):
        """``imgadm list -j``: ``{manifest, zpool, source?, cloneNames, clones}`` per image, in listing order."""
        out = []
        for info in self.images.values():
            rec = self._record(info['pool'], info['uuid'])
            rec['cloneNames'] = list(info['clone_names'])
            rec['clones'] = len(info['clone_names'])
            out.append(rec)
        return out

    def exists(self, dataset):
        if self._names is None:
            self._names = set(r[0] for r in self.rows)
        return dataset in self._names

    def why_not(self, pool, uuid):
        """None when ``POOL/UUID`` is an image or does not exist; else why it is not an image."""
        ds = '%s/%s' % (pool, uuid)
        if ds in self.images or not self.exists(ds):
            return None
        mine = [r for r in self.rows if r[0] == ds or r[0].startswith(ds + '@')]
        # the list heuristic only: a dataset with neither record nor @final is listed as an image
        return not_an_image(ds, mine, self.roots, True)

    def get(self, pool, uuid, children=False):
        """``imgadm get [-r]``: the record, with ``children.snapshots`` and ``children.clones``; None when not an image."""
        ds = '%s/%s' % (pool, uuid)
        if ds not in self.images:
            return None
        rec = self._record(pool, uuid)
        if children:
            below = (ds + '@', ds + '/')
            at = ds + '@'
            rec['children'] = OrderedDict([
                ('snapshots', [r[0] for r in self.rows if r[0].startswith(below)]),
                ('clones', [r[0] for r in self.rows if '@' not in r[0] and r[1].startswith(at)]),
            ])
        return rec

    def ancestry(self, pool, uuid):
        """``imgadm ancestry``: ``([records top to base], missing)``, ``missing`` the first origin not installed."""
        chain = []
        seen = set()
        while uuid and uuid not in seen:
            seen.add(uuid)
            rec = self.get(pool, uuid)
            if rec is None:
                return chain, uuid
            chain.append(rec)
            uuid = rec['manifest'].get('origin')
        return chain, None


class InstalledImages(object):
    """Queries about images installed on a pool."""

    def __init__(self, backend, db, run_zoneadm=None):
        self.backend = backend
        self.db = db
        self.run_zoneadm = run_zoneadm
        self._known = {}  # dataset -> exists, for this run (see ``mark``)
        self._roots = None

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

    def get(self, pool, uuid):
        """The record as ``imgadm get`` shows it, or None when not installed (``Inventory.get`` has ``-r``)."""
        if not self.is_installed(pool, uuid):
            return None
        rec, dummy = self.db.read(pool, uuid)
        return OrderedDict(rec)

    def zone_roots(self):
        """The zone roots (``zone_roots``), asked of ``zoneadm`` once a run."""
        if self.run_zoneadm is None:
            return {}
        if self._roots is None:
            rc, out, err = self.run_zoneadm()
            if rc != 0:
                raise CommandError('could not list zones: zoneadm exited %s: %s' % (rc, (err or out).strip()))
            self._roots = zone_roots(out)
        return self._roots

    def examine(self, pool, uuids):
        """``{uuid: None (not there) | 'image' | why it is not an image}`` for ``POOL/UUID`` of each uuid.

        One ``zfs list`` for all of them and the pool (``PoolNotFoundError``
        when the pool does not exist), one more and one ``zoneadm list`` when
        any exists.
        """
        names = ['%s/%s' % (pool, u) for u in uuids]
        found = self.backend.which_exist([pool] + names)  # the pool too, in the same question
        if pool not in found:
            raise PoolNotFoundError('pool "%s" does not exist (zfs list %s)' % (pool, pool), pool=pool)
        result = dict((u, None) for u in uuids)
        for name in names:
            self._known[name] = name in found  # what is_installed answers for the rest of the run
        if len(found) == 1:
            return result
        runner = self.backend.runner
        present = [n for n in names if n in found]
        rows = [tuple(r) for r in runner.zfs_rows('list', '-H', '-t', 'filesystem,volume,snapshot', '-o', LISTING_COLUMNS,
                                                  '-d', '1', *present, columns=4)]
        roots = self.zone_roots()
        for uuid, name in zip(uuids, names):
            if name not in found:
                continue
            mine = [r for r in rows if r[0] == name or r[0].startswith(name + '@')]
            why = not_an_image(name, mine, roots, self.db.read(pool, uuid)[1])
            result[uuid] = why or 'image'
        return result

    def inventory(self, pools=None):
        """An ``Inventory`` of ``pools`` (all pools when None): one ``zfs list``, one ``zoneadm``, one database pass."""
        roots = self.zone_roots()
        args = ['list', '-t', 'filesystem,volume,snapshot', '-H', '-o', LISTING_COLUMNS]
        if pools:
            args += ['-r'] + list(pools)
        try:
            rows = [tuple(r) for r in self.backend.runner.zfs_rows(*args, columns=4)]
        except ZfsError:
            if pools:
                found = self.backend.which_exist(pools)
                missing = [p for p in pools if p not in found]
                if missing:
                    raise PoolNotFoundError('pool "%s" does not exist (zfs list %s)' % (missing[0], missing[0]),
                                            pool=missing[0])
            raise
        images = parse_image_listing(rows, roots)
        records = self.db.read_many([(i['pool'], i['uuid']) for i in images.values()])
        return Inventory(rows, roots, images, records)

    def list(self, pool):
        """Images on ``pool`` per the reference heuristic, with their records and clones."""
        inv = self.inventory([pool])
        result = []
        for ds, info in inv.images.items():
            rec, has_record = inv.records[(info['pool'], info['uuid'])]
            result.append(dict(info, dataset=ds, record=rec, has_record=has_record))
        return result


def vacuum_plan(images, keep=()):
    """The images ``vacuum`` deletes, leaf first: iteratively, those no one uses.

    ``images`` as from ``InstalledImages.list``; ``keep`` holds uuids or names
    (``name`` or ``name@version``) never to delete.
    """
    keep = set(keep or ())
    # never destroy what has neither a record nor an @final: it is not proven to be an image
    images = [img for img in images if img['has_record'] or img['has_final']]
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


__all__ = ('VMADM_FS_NAME_RE', 'VMADM_IMG_NAME_RE', 'zone_roots', 'not_an_image', 'parse_image_listing', 'Inventory',
           'InstalledImages',
           'vacuum_plan')
