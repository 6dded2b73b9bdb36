# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module-level tests of imgadm_facts over fake ``zfs``/``zoneadm`` (see test_imgadm_image.World) and the
project's IMGAPI server. The real pool is in tests/integration/targets/imgadm_facts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

from ansible_collections.smartos.imgadm.plugins.modules import imgadm_facts
from ansible_collections.smartos.imgadm.tests.unit.plugins.modules.test_imgadm_image import World, image, record

WORLD_TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, 'world')
if WORLD_TOOLS not in sys.path:
    sys.path.insert(0, WORLD_TOOLS)

BASE = '0d7c3f6e-0000-4000-8000-00000000000b'
INC = '0d7c3f6e-0000-4000-8000-00000000000c'
VM = '0d7c3f6e-0000-4000-8000-0000000000aa'
IGN = '0d7c3f6e-0000-4000-8000-0000000000ee'
AWAY = '0d7c3f6e-0000-4000-8000-0000000000dd'


def uuid_n(n):
    return '%08x-1111-4111-8111-%012x' % (n, n)


def world_with(tmp_path, n_more=0):
    datasets = image('zones', BASE) + image('zones', INC, origin='zones/%s@final' % BASE) + [
        ('zones/' + VM, {'origin': 'zones/%s@final' % BASE, 'mountpoint': '/zones/' + VM}),
        ('zones/' + IGN, {'ignore': 'true'}),
    ] + image('zones2', BASE)
    for i in range(n_more):
        datasets += image('zones', uuid_n(i))
    w = World(tmp_path, datasets, zones=[(VM, '/zones/' + VM)], pools=('zones', 'zones2'))
    record(tmp_path, BASE, 'base', '1.0')
    record(tmp_path, INC, 'inc', '2.0', origin=BASE)
    return w


def facts_args(w, **more):
    args = dict(imgadm_dir=str(w.dir / 'db'), zfs_path=w.zfs, zoneadm_path=w.zoneadm, command_timeout=20)
    args.update(more)
    return args


def db_record(w, pool, uuid):
    with open(str(w.dir / 'db' / 'images' / ('%s-%s.json' % (pool, uuid)))) as f:
        return json.load(f)


@pytest.mark.parametrize('check_mode', [False, True])
def test_installed_images_as_imgadm_list_j(run_module, tmp_path, check_mode):
    w = world_with(tmp_path)
    failed, result = run_module(imgadm_facts.main, facts_args(w), check_mode=check_mode)
    assert not failed and result['changed'] is False
    facts = result['ansible_facts']
    got = dict(((e['zpool'], e['manifest']['uuid']), e) for e in facts['imgadm_images'])
    # the VM clone and the ignored dataset are not images; the digit pool's image is (the reference misses it)
    assert sorted(got) == [('zones', BASE), ('zones', INC), ('zones2', BASE)]
    base = got[('zones', BASE)]
    assert dict(base, cloneNames=None, clones=None) == dict(db_record(w, 'zones', BASE), cloneNames=None, clones=None)
    assert base['cloneNames'] == ['zones/' + INC, 'zones/' + VM] and base['clones'] == 2
    assert got[('zones2', BASE)] == {'manifest': {'uuid': BASE}, 'zpool': 'zones2', 'cloneNames': [], 'clones': 0}
    assert facts['imgadm_sources'] == [{'url': 'https://images.smartos.org', 'type': 'imgapi'}]
    assert 'imgadm_available' not in facts
    assert result['gathered'] == ['installed', 'sources']
    # nothing but one listing of every pool and one zoneadm
    assert w.zfs_calls() == [['list', '-t', 'filesystem,volume,snapshot', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore']]
    assert w.tool_calls() == ['zoneadm']


def test_the_number_of_commands_does_not_grow_with_the_images(run_module, tmp_path):
    w = world_with(tmp_path, n_more=150)
    failed, result = run_module(imgadm_facts.main, facts_args(w, pools=['zones']))
    assert not failed
    assert len(result['ansible_facts']['imgadm_images']) == 152
    assert len(w.zfs_calls()) == 1 and w.tool_calls() == ['zoneadm']


def test_pools_filters_and_a_missing_pool(run_module, tmp_path):
    w = world_with(tmp_path)
    failed, result = run_module(imgadm_facts.main, facts_args(w, pool='zones2'))  # the alias module_defaults set
    assert [e['zpool'] for e in result['ansible_facts']['imgadm_images']] == ['zones2']
    failed, result = run_module(imgadm_facts.main, facts_args(w, filters={'name': '~in', 'zpool': 'zones'}))
    assert [e['manifest']['uuid'] for e in result['ansible_facts']['imgadm_images']] == [INC]
    failed, result = run_module(imgadm_facts.main, facts_args(w, filters=['clones=2']))
    assert [e['manifest']['uuid'] for e in result['ansible_facts']['imgadm_images']] == [BASE]
    failed, result = run_module(imgadm_facts.main, facts_args(w, pools=['zones', 'nopool']))
    assert failed and result['error_code'] == 'PoolNotFound' and '"nopool"' in result['msg']


def test_uuids_children_ancestry(run_module, tmp_path):
    w = world_with(tmp_path)
    args = facts_args(w, uuids=[INC, VM, IGN, AWAY], children=True, ancestry=True, pools=['zones'])
    failed, result = run_module(imgadm_facts.main, args)
    assert not failed
    facts = result['ansible_facts']
    assert [e['manifest']['uuid'] for e in facts['imgadm_images']] == [INC]
    info = facts['imgadm_image_info']
    assert sorted(info) == [INC]
    assert info[INC]['children'] == {'snapshots': ['zones/%s@final' % INC], 'clones': []}
    assert [r['manifest']['uuid'] for r in facts['imgadm_ancestry'][INC]] == [INC, BASE]
    assert facts['imgadm_ancestry'][INC][1] == db_record(w, 'zones', BASE)
    assert sorted(result['not_images']) == sorted([VM, IGN])
    assert 'zone root' in result['not_images'][VM] and 'imgadm:ignore' in result['not_images'][IGN]
    assert result['not_installed'] == [AWAY]


@pytest.mark.parametrize('more, field', [
    (dict(children=True), 'children'),
    (dict(ancestry=True), 'ancestry'),
    (dict(gather_subset=['installed', 'bogus']), 'gather_subset'),
    (dict(uuids=['NOT-A-UUID']), 'uuids'),
    (dict(pools=['bad pool']), 'pools'),
    (dict(filters='name=x'), 'filters'),
    (dict(command_timeout=0), 'command_timeout'),
])
def test_bad_options_name_the_field_and_run_nothing(run_module, tmp_path, more, field):
    w = world_with(tmp_path)
    failed, result = run_module(imgadm_facts.main, facts_args(w, **more))
    assert failed and result['field'] == field
    assert w.zfs_calls() == [] and w.tool_calls() == []


@pytest.mark.parametrize('subset, expected', [
    (['all'], ['installed', 'sources', 'available']),
    (['!sources'], ['installed']),
    (['all', '!installed'], ['sources', 'available']),
    (['sources'], ['sources']),
])
def test_gather_subset(run_module, tmp_path, subset, expected):
    import imgapi_server  # pylint: disable=import-error
    srv = imgapi_server.start_server(str(tmp_path / 'srv'))
    try:
        w = world_with(tmp_path)
        failed, result = run_module(imgadm_facts.main, facts_args(w, gather_subset=subset, sources=[srv.url]))
    finally:
        srv.stop()
    assert not failed and result['gathered'] == expected
    keys = {'installed': 'imgadm_images', 'sources': 'imgadm_sources', 'available': 'imgadm_available'}
    assert sorted(result['ansible_facts']) == sorted(keys[s] for s in expected)
    assert bool(w.zfs_calls()) is ('installed' in expected)


def test_available_and_show(run_module, tmp_path):
    pytest.importorskip('requests')
    import imgapi_server  # pylint: disable=import-error
    data = str(tmp_path / 'srv')
    owner = '00000000-0000-0000-0000-000000000000'
    for n, state in ((1, 'active'), (2, 'active'), (3, 'disabled')):
        imgapi_server.add_image_to_data_dir(data, {
            'v': 2, 'uuid': uuid_n(n), 'owner': owner, 'name': 'srv%d' % n, 'version': '1', 'state': state,
            'disabled': state == 'disabled', 'public': True, 'published_at': '2024-01-0%dT00:00:00.000Z' % n,
            'type': 'zone-dataset', 'os': 'smartos', 'files': []})
    srv = imgapi_server.start_server(data)
    try:
        w = world_with(tmp_path)
        dead = 'http://127.0.0.1:1'
        args = facts_args(w, gather_subset=['available'], sources=[dead, srv.url], retries=0, timeout=5)
        failed, result = run_module(imgadm_facts.main, args)
        assert not failed
        avail = result['ansible_facts']['imgadm_available']
        assert [(i['manifest']['uuid'], i['source']) for i in avail] == [(uuid_n(1), srv.url), (uuid_n(2), srv.url)]
        assert [e['source'] for e in result['source_errors']] == [dead]
        srv.clear_requests()
        failed, result = run_module(imgadm_facts.main, dict(args, sources=[srv.url], filters={'name': '~srv', 'version': '1'}))
        assert [i['manifest']['uuid'] for i in result['ansible_facts']['imgadm_available']] == [uuid_n(1), uuid_n(2)]
        sent = [r['path'] for r in srv.requests('^/images')]
        assert len(sent) == 1 and 'srv' in sent[0] and 'name=' in sent[0] and 'version=1' in sent[0]
        failed, result = run_module(imgadm_facts.main, dict(args, strict_sources=True))
        assert failed and dead in result['msg']
        # imgadm show: the uuids not installed, in any state, from the sources; an installed one is not asked for
        srv.clear_requests()
        failed, result = run_module(imgadm_facts.main, facts_args(
            w, gather_subset=['available'], sources=[srv.url], uuids=[uuid_n(3), BASE, AWAY], pools=['zones']))
        assert not failed
        assert [(i['manifest']['uuid'], i['manifest']['state']) for i in result['ansible_facts']['imgadm_available']] == [
            (uuid_n(3), 'disabled')]
        assert result['not_found'] == [AWAY]
        assert srv.requests('/images/' + BASE) == []
        assert sorted(result['ansible_facts']['imgadm_image_info']) == [BASE]
    finally:
        srv.stop()


@pytest.mark.parametrize('filters, sent', [
    ({}, {}),
    ({'name': 'base', 'version': '~24', 'os': 'smartos', 'type': 'zvol'},
     {'name': 'base', 'version': '~24', 'os': 'smartos', 'type': 'zvol'}),
    ({'owner': '00000000-0000-0000-0000-000000000000'}, {'owner': '00000000-0000-0000-0000-000000000000'}),
    ({'owner': 'nobody'}, {}),  # the server would refuse it: filtered here only
    ({'public': True, 'requirements.brand': 'lx', 'tags.role': 'db', 'published': '~2024'}, {}),  # not the server's way
])
def test_server_filters(filters, sent):
    from ansible_collections.smartos.imgadm.plugins.module_utils._facts import server_filters
    from ansible_collections.smartos.imgadm.plugins.module_utils._filters import parse_filters
    assert server_filters(parse_filters(filters)) == sent
