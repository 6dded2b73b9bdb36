# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``imgadm_facts``: ``imgadm list -j``, ``get -r``, ``ancestry``, ``sources -j``, ``avail`` and ``show``.

Read-only. Installed images come from one ``Inventory`` (one ``zfs list``,
one ``zoneadm list``, one pass over the database, whatever the number of
images); available ones from ``ImageSources.available`` (every source at
once). The same filters (``_filters``) apply to both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._common import CommandRunner, find_binary
from ansible_collections.smartos.imgadm.plugins.module_utils._constants import UUID_RE
from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase, ImgadmConfig, validate_pool_name
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ImgapiError, UsageError
from ansible_collections.smartos.imgadm.plugins.module_utils._filters import matches, parse_filters
from ansible_collections.smartos.imgadm.plugins.module_utils._installed import InstalledImages
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import validate_uuid
from ansible_collections.smartos.imgadm.plugins.module_utils._sources import effective_sources
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import CliBackend, ZfsRunner

SUBSETS = ('installed', 'sources', 'available')
DEFAULT_SUBSETS = ('installed', 'sources')


def subsets(gather_subset):
    """The subsets to gather from ``gather_subset`` (``all``, names and ``!name``), as in ansible's setup."""
    wanted = set()
    unwanted = set()
    for item in gather_subset or []:
        neg = item.startswith('!')
        name = item[1:] if neg else item
        if name != 'all' and name not in SUBSETS:
            raise UsageError('gather_subset: unknown subset "%s" (must be all, %s, optionally with a leading !)'
                             % (item, ', '.join(SUBSETS)), field='gather_subset')
        names = set(SUBSETS) if name == 'all' else set([name])
        (unwanted if neg else wanted).update(names)
    if not wanted:
        wanted = set(DEFAULT_SUBSETS)
    return [s for s in SUBSETS if s in wanted and s not in unwanted]


def source_facts(imgadm_dir):
    """``imgadm sources -j``: ``[{url, type, insecure?}]`` (the default source when none is configured)."""
    out = []
    for s in effective_sources(ImgadmConfig(imgadm_dir).load().source_entries()):
        entry = OrderedDict([('url', s.url), ('type', s.type)])
        if s.insecure is not None:
            entry['insecure'] = s.insecure
        out.append(entry)
    return out


def server_filters(filters):
    """The filters IMGAPI's ListImages applies the same way (exact or ``~`` substring on a
    top-level text field), to send along so that fewer images come back; every filter is
    still applied to what comes back."""
    out = {}
    for path, wanted in filters:
        if len(path) != 1 or path[0] not in ('name', 'version', 'os', 'type', 'owner') or isinstance(wanted, bool):
            continue
        value = '~' + wanted[1] if isinstance(wanted, tuple) else wanted
        if path[0] == 'owner' and not UUID_RE.match(value):
            continue
        out[path[0]] = value
    return out


def gather(module, result):
    """Fill ``result`` with ``ansible_facts`` and the per-uuid answers."""
    p = module.params
    wanted = subsets(p['gather_subset'])
    filters = parse_filters(p['filters'])
    pools = [validate_pool_name(x, field='pools') for x in (p['pools'] or [])]
    uuids = list(OrderedDict((validate_uuid(u, field='uuids'), 1) for u in (p['uuids'] or [])))
    for opt in ('children', 'ancestry'):
        if p[opt] and not uuids:
            raise UsageError('%s needs uuids' % opt, field=opt)
    facts = result.data.setdefault('ansible_facts', {})
    not_installed = list(uuids)

    if 'installed' in wanted or uuids:
        run_command = CommandRunner(module, p['command_timeout'])
        runner = ZfsRunner(run_command, zfs_bin=find_binary(module, p['zfs_path'], 'zfs'))
        zoneadm = find_binary(module, p['zoneadm_path'], 'zoneadm')
        installed = InstalledImages(CliBackend(runner), ImageDatabase(p['imgadm_dir']),
                                    run_zoneadm=lambda: run_command([zoneadm, 'list', '-pc'], environ_update={'LC_ALL': 'C'}))
        inv = installed.inventory(pools or None)
        entries = [e for e in inv.entries() if matches(e, filters)]
        if uuids:
            entries = [e for e in entries if e['manifest'].get('uuid') in uuids]
            _per_uuid(p, inv, uuids, pools, facts, result, not_installed)
        facts['imgadm_images'] = entries

    if 'sources' in wanted:
        facts['imgadm_sources'] = source_facts(p['imgadm_dir'])

    if 'available' in wanted:
        # imported here: the HTTP client's imports (ssl, http.client) cost the other subsets time for nothing
        from ansible_collections.smartos.imgadm.plugins.module_utils._image_sources import ImageSources

        sources = ImageSources(p, result)
        if uuids:
            facts['imgadm_available'] = _show(sources, not_installed, filters, result)
        else:
            found = sources.available(**server_filters(filters))
            facts['imgadm_available'] = [i for i in found if matches(i, filters)]
    result.data['gathered'] = wanted


def _per_uuid(p, inv, uuids, pools, facts, result, not_installed):
    """``imgadm get [-r]`` and ``ancestry`` for each of ``uuids``, on the first pool (in ``pools`` or listing order) that has it."""
    pool_order = pools or list(OrderedDict((i['pool'], 1) for i in inv.images.values()))
    info = facts['imgadm_image_info'] = {}
    chains = {}
    not_images = {}
    for uuid in uuids:
        for pool in pool_order:
            rec = inv.get(pool, uuid, children=p['children'])
            if rec is None:
                continue
            info[uuid] = rec
            not_installed.remove(uuid)
            if p['ancestry']:
                chain, missing = inv.ancestry(pool, uuid)
                chains[uuid] = chain
                if missing:
                    result.warn('the ancestry of %s on pool %s is incomplete: its origin %s is not installed'
                                % (uuid, pool, missing))
            break
        else:
            for pool in sorted(set(r[0].split('/')[0] for r in inv.rows)) if not pools else pools:
                why = inv.why_not(pool, uuid)
                if why:
                    not_images[uuid] = '%s/%s: %s' % (pool, uuid, why)
                    break
    if p['ancestry']:
        facts['imgadm_ancestry'] = chains
    result.data['not_images'] = not_images
    result.data['not_installed'] = [u for u in not_installed if u not in not_images]


def _show(sources, uuids, filters, result):
    """``imgadm show`` for the uuids not installed: ``[{manifest, source}]`` in any state, as the sources have them."""
    found = []
    missing = []
    for uuid in uuids:
        try:
            manifest, source = sources.find(uuid, ensure_active=False)
        except ImgapiError:
            # a source failed (already in source_errors and warned about; fatal with strict_sources)
            # and no other source has the image
            manifest = None
        if manifest is None:
            missing.append(uuid)
            continue
        item = OrderedDict([('manifest', manifest), ('source', source.url)])
        if matches(item, filters):
            found.append(item)
    result.data['not_found'] = missing
    return found


__all__ = ('SUBSETS', 'subsets', 'source_facts', 'server_filters', 'gather')
