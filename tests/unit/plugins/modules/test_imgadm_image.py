# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module-level tests of imgadm_image that need no pool: arguments in, exit/fail JSON out.

``zfs`` is a fake (``zfs_path``): a script that answers the read-only
listings from a JSON description of datasets and logs every call, so that
each test can say which ``zfs`` commands ran (and that nothing was changed).
``zoneadm`` and ``sysinfo`` are fakes too. Imports, deletes and the other
changes against a real pool are in tests/integration/targets/imgadm_image.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.modules import imgadm_image

BASE = '0d7c3f6e-0000-4000-8000-00000000000b'
INC = '0d7c3f6e-0000-4000-8000-00000000000c'
VM = '0d7c3f6e-0000-4000-8000-0000000000aa'
STRAY = '0d7c3f6e-0000-4000-8000-0000000000ff'

# A fake zfs: datasets from ZFS_WORLD (JSON {name: {origin, mountpoint, ignore}}, in creation order),
# every call appended to ZFS_LOG. Only read-only listings are answered; anything else fails.
FAKE_ZFS = r'''#!%(python)s
import json, os, sys
args = sys.argv[1:]
with open(os.environ.get('FAKE_ZFS_LOG') or %(log)r, 'a') as f:
    f.write(json.dumps(args) + '\n')
with open(%(world)r) as f:
    world = json.load(f)

def kind(name):
    if '@' in name:
        return 'snapshot'
    return 'volume' if world[name].get('mountpoint') == '-' else 'filesystem'

def value(name, col):
    d = world[name]
    if col == 'name':
        return name
    if col == 'origin':
        return d.get('origin') or '-'
    if col == 'mountpoint':
        return '-' if '@' in name else d.get('mountpoint', '/' + name)
    if col == 'imgadm:ignore':
        return d.get('ignore', '-')
    raise SystemExit('fake zfs: no column %%s' %% col)

def opts(rest):
    o, names = {}, []
    it = iter(rest)
    for a in it:
        if a in ('-o', '-t', '-s', '-d'):
            o[a] = next(it)
        elif a.startswith('-'):
            o[a] = True
        else:
            names.append(a)
    return o, names

if args[:1] == ['list']:
    o, names = opts(args[1:])
    if not names:  # every pool
        names = [m for m in world if '/' not in m and '@' not in m]
        o['-r'] = True
    types = (o.get('-t') or 'filesystem,volume').split(',')
    cols = o.get('-o', 'name').split(',')
    rc, out, err = 0, [], []
    for n in names:
        if n not in world:
            err.append("cannot open '%%s': dataset does not exist" %% n)
            rc = 1
            continue
        for m in world:
            below = m[len(n):] if m.startswith(n) else None
            if below is None or not (below == '' or below[0] in '/@'):
                continue
            if '-d' in o and (below.count('/') + below.count('@')) > int(o['-d']):
                continue
            if '-r' not in o and '-d' not in o and m != n:
                continue
            if kind(m) in types or m == n and '-t' not in o:
                out.append('\t'.join(value(m, c) for c in cols))
    sys.stdout.write(''.join(line + '\n' for line in out))
    sys.stderr.write(''.join(line + '\n' for line in err))
    sys.exit(rc)
if args[:4] == ['get', '-Hp', '-o', 'name,value'] and args[4] == 'clones':
    for snap in args[5:]:
        clones = [m for m in world if '@' not in m and world[m].get('origin') == snap]
        sys.stdout.write('%%s\t%%s\n' %% (snap, ','.join(clones) or '-'))
    sys.exit(0)
sys.stderr.write('fake zfs: refusing %%s\n' %% ' '.join(args))
sys.exit(2)
'''

TOOL = '''#!/bin/sh
echo "$0 $*" >> %(log)s
%(body)s
'''


class World(object):
    """The fake commands of one test, and what they saw."""

    def __init__(self, tmp_path, datasets=(), zones=(), pools=('zones',)):
        self.dir = tmp_path
        self.log = tmp_path / 'zfs.log'
        self.tools_log = tmp_path / 'tools.log'
        self.world = tmp_path / 'zfs.json'
        self.set([(pool, {}) for pool in pools] + list(datasets))
        self.zfs = self._script('zfs', FAKE_ZFS % dict(python=sys.executable, log=str(self.log), world=str(self.world)))
        zone_lines = ['0:global:running:/::liveimg:shared:0'] + [
            '%d:%s:running:%s:%s:joyent:excl:%d' % (i + 1, name, path, name, i + 1) for i, (name, path) in enumerate(zones)]
        self.zoneadm = self._script('zoneadm', TOOL % dict(log=self.tools_log, body="cat <<'EOF'\n%s\nEOF" % '\n'.join(zone_lines)))
        self.sysinfo = self._script('sysinfo', TOOL % dict(log=self.tools_log, body="echo '{\"Live Image\": \"20240101T000000Z\"}'"))

    def set(self, datasets):
        self.world.write_text(json.dumps(OrderedDict(datasets)))

    def _script(self, name, text):
        path = self.dir / name
        path.write_text(text)
        os.chmod(str(path), 0o755)
        return str(path)

    def zfs_calls(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def tool_calls(self):
        return [line.split()[0].rsplit('/', 1)[-1] for line in self.tools_log.read_text().splitlines()] \
            if self.tools_log.exists() else []

    def args(self, **more):
        args = dict(pool='zones', imgadm_dir=str(self.dir / 'db'), lock_dir=str(self.dir), zfs_path=self.zfs,
                    zoneadm_path=self.zoneadm, sysinfo_path=self.sysinfo, zfs_backend='cli', retries=0, timeout=5,
                    lock_timeout=2, command_timeout=20)
        args.update(more)
        return args


def image(pool, uuid, origin=None, final=True, **props):
    """The datasets of an image: itself and its @final."""
    d = [('%s/%s' % (pool, uuid), dict(props, origin=origin) if origin else dict(props))]
    if final:
        d.append(('%s/%s@final' % (pool, uuid), {}))
    return d


def record(tmp_path, uuid, name, version='1.0', origin=None, pool='zones'):
    m = OrderedDict([('v', 2), ('uuid', uuid), ('owner', '00000000-0000-0000-0000-000000000000'), ('name', name),
                     ('version', version), ('state', 'active'), ('disabled', False), ('public', True),
                     ('published_at', '2024-01-02T03:04:05Z'), ('type', 'zone-dataset'), ('os', 'smartos'),
                     ('files', [OrderedDict([('sha1', '0' * 40), ('size', 4), ('compression', 'none')])])])
    if origin:
        m['origin'] = origin
    ImageDatabase(str(tmp_path / 'db')).write(pool, uuid, m, source='http://src')
    return m


def images_dir(tmp_path):
    path = tmp_path / 'db' / 'images'
    return sorted(os.listdir(str(path))) if path.exists() else []


def manifest_for(uuid=BASE, **more):
    m = OrderedDict([('v', 2), ('uuid', uuid), ('owner', '00000000-0000-0000-0000-000000000000'), ('name', 'base'),
                     ('version', '1.0'), ('state', 'active'), ('disabled', False), ('public', True),
                     ('published_at', '2024-01-02T03:04:05Z'), ('type', 'zone-dataset'), ('os', 'smartos'),
                     ('files', [OrderedDict([('sha1', '0' * 40), ('size', 1), ('compression', 'none')])])])
    m.update(more)
    return m


# ------------------------------------------------------------------ bad options: nothing runs

@pytest.mark.parametrize('more, code, field', [
    # which option goes with which state (_image_run.check_options)
    (dict(state='latest'), 'Usage', 'name'),
    (dict(state='absent'), 'Usage', 'uuid'),
    (dict(), 'Usage', 'uuid'),  # state=present without a selector
    (dict(state='vacuumed', uuid=BASE), 'Usage', 'uuid'),
    (dict(state='latest', uuids=[BASE], name='base'), 'Usage', 'uuids'),
    (dict(uuid=BASE, keep=['base']), 'Usage', 'keep'),
    (dict(state='updated', zstream=True), 'Usage', 'zstream'),
    (dict(state='absent', manifest={'v': 2}, file='/f'), 'Usage', 'manifest'),
    (dict(uuid=BASE, version='1.0'), 'Usage', 'version'),
    (dict(manifest={'v': 2}), 'Usage', 'file'),
    (dict(file='/f'), 'Usage', 'manifest'),
    (dict(uuid=BASE, name='base'), 'Usage', 'name'),
    (dict(uuid=BASE, uuids=[INC]), 'Usage', 'uuids'),
    # numeric ranges (_common.check_ranges), before anything else
    (dict(uuid=BASE, concurrency=0), 'Usage', 'concurrency'),
    (dict(uuid=BASE, retries=-1), 'Usage', 'retries'),
    (dict(uuid=BASE, timeout=0), 'Usage', 'timeout'),
    (dict(uuid=BASE, lock_timeout=-1), 'Usage', 'lock_timeout'),
    (dict(uuid=BASE, command_timeout=0), 'Usage', 'command_timeout'),
    (dict(state='latest', command_timeout=0), 'Usage', 'command_timeout'),
    # values
    (dict(uuid=BASE, pool='zones/sub'), 'Usage', 'pool'),
    (dict(uuid='NOT-A-UUID'), 'InvalidUUID', 'uuid'),
    (dict(uuids=[BASE, BASE.upper()]), 'InvalidUUID', 'uuids'),
    pytest.param(dict(state='absent', uuids=[BASE, 'nope']), 'InvalidUUID', 'uuids', id='absent-bad-uuids'),
    pytest.param(dict(state='updated', uuid='nope'), 'InvalidUUID', 'uuid', id='updated-bad-uuid'),
    (dict(manifest='/nonexistent/m.json', file='/nonexistent/f'), 'Usage', 'manifest'),
    (dict(manifest=42, file='/nonexistent/f'), 'Usage', 'manifest'),
    (dict(manifest=manifest_for(), file='/nonexistent/f'), 'Usage', 'file'),
])
def test_bad_options_fail_before_anything_runs(run_module, tmp_path, more, code, field):
    world = World(tmp_path)
    failed, res = run_module(imgadm_image.main, world.args(sources=['http://127.0.0.1:1'], **more))
    assert failed, res
    assert (res['error_code'], res.get('field')) == (code, field), res['msg']
    assert res['changed'] is False and res['actions'] == []
    assert world.zfs_calls() == [] and world.tool_calls() == []
    assert images_dir(tmp_path) == []


def test_bad_manifests(run_module, tmp_path):
    world = World(tmp_path)
    (tmp_path / 'f').write_bytes(b'x')
    bad = manifest_for()
    del bad['name']
    failed, res = run_module(imgadm_image.main, world.args(manifest=bad, file=str(tmp_path / 'f')))
    assert failed and res['error_code'] == 'ManifestValidation'
    assert [e['field'] for e in res['errors']] == ['name']

    (tmp_path / 'm.json').write_text('{"v": 2,')
    failed, res = run_module(imgadm_image.main, world.args(manifest=str(tmp_path / 'm.json'), file=str(tmp_path / 'f')))
    assert failed and res['error_code'] == 'InvalidManifest' and res['field'] == 'manifest'
    assert world.zfs_calls() == []


@pytest.mark.parametrize('more, text', [
    (dict(uuid=BASE, state='gone'), 'state'),
    (dict(uuid=BASE, zfs_backend='fast'), 'zfs_backend'),
    (dict(uuid=BASE, concurrency='many'), 'concurrency'),
])
def test_argument_spec_rules(run_module, tmp_path, more, text):
    world = World(tmp_path)
    failed, res = run_module(imgadm_image.main, world.args(**more))
    assert failed
    assert text in res['msg']
    assert 'error_code' not in res  # refused by AnsibleModule before any work
    assert world.zfs_calls() == []


# ------------------------------------------------------------------ a pool that does not exist

@pytest.mark.parametrize('more', [
    pytest.param(dict(uuid=BASE), id='present-uuid'),
    pytest.param(dict(uuids=[BASE, INC]), id='present-uuids'),
    pytest.param(dict(name='base'), id='present-name'),
    pytest.param(dict(state='latest', name='base'), id='latest'),
    pytest.param(dict(state='absent', uuid=BASE), id='absent-uuid'),
    pytest.param(dict(state='absent', name='base'), id='absent-name'),
    pytest.param(dict(state='updated'), id='updated'),
    pytest.param(dict(state='vacuumed'), id='vacuumed'),
    pytest.param('install', id='present-manifest-file'),
])
@pytest.mark.parametrize('check_mode', [False, True])
def test_pool_not_found(run_module, tmp_path, ping_server, more, check_mode):
    url, seen = ping_server
    world = World(tmp_path, image('zones', BASE))  # on another pool
    if more == 'install':
        (tmp_path / 'f').write_bytes(b'x')
        more = dict(manifest=manifest_for(), file=str(tmp_path / 'f'))
    failed, res = run_module(imgadm_image.main, world.args(pool='nopool', sources=[url], **more), check_mode=check_mode)
    assert failed, res
    assert res['error_code'] == 'PoolNotFound'
    assert res['pool'] == 'nopool'
    assert res['msg'].startswith('pool "nopool" does not exist')
    # partial results: what the run had set up, and that nothing changed
    assert res['changed'] is False and res['actions'] == []
    assert (res['imported'], res['deleted'], res['zfs_backend']) == ([], [], 'cli')
    # one question to zfs, nothing else asked: no source, no zoneadm, no sysinfo
    calls = world.zfs_calls()
    assert len(calls) == 1, calls
    assert calls[0][:5] == ['list', '-H', '-o', 'name', 'nopool']
    assert seen == []
    assert world.tool_calls() == []
    assert images_dir(tmp_path) == []


# ------------------------------------------------------------------ what is not an image is never touched

def test_absent_refuses_a_vm_dataset(run_module, tmp_path):
    datasets = image('zones', BASE) + image('zones', VM, origin='zones/%s@final' % BASE, final=False)
    world = World(tmp_path, datasets, zones=[(VM, '/zones/' + VM)])
    record(tmp_path, BASE, 'base')
    failed, res = run_module(imgadm_image.main, world.args(state='absent', uuids=[BASE, VM]))
    assert failed, res
    assert res['error_code'] == 'NotAnImage'
    assert (res['uuid'], res['dataset']) == (VM, 'zones/' + VM)
    assert 'zone root of zone %s' % VM in res['msg']
    assert not any(c[0] in ('destroy', 'rename', 'unmount', 'mount') for c in world.zfs_calls())
    assert res['deleted'] == [] and res['changed'] is False
    assert images_dir(tmp_path) == ['zones-%s.json' % BASE]


@pytest.mark.parametrize('state', ['present', 'absent', 'updated'])
def test_a_stray_dataset_is_not_an_image(run_module, tmp_path, ping_server, state):
    url, seen = ping_server
    world = World(tmp_path, image('zones', STRAY, final=False))  # zfs create zones/UUID: no record, no @final
    failed, res = run_module(imgadm_image.main, world.args(state=state, uuid=STRAY, sources=[url]))
    assert failed and res['error_code'] == 'NotAnImage', res
    assert 'neither a database record nor an @final snapshot' in res['msg']
    assert seen == []  # refused before any source is asked
    assert not any(c[0] in ('destroy', 'rename', 'receive') for c in world.zfs_calls())


def test_absent_check_mode_refuses_clones_and_orders_children_first(run_module, tmp_path):
    datasets = image('zones', BASE) + image('zones', INC, origin='zones/%s@final' % BASE)
    world = World(tmp_path, datasets)
    record(tmp_path, BASE, 'base')
    record(tmp_path, INC, 'inc', origin=BASE)

    failed, res = run_module(imgadm_image.main, world.args(state='absent', uuid=BASE), check_mode=True)
    assert failed and res['error_code'] == 'ImageHasDependentClones'
    assert res['clones'] == ['zones/' + INC]

    failed, res = run_module(imgadm_image.main, world.args(state='absent', uuids=[BASE, INC]), check_mode=True, diff=True)
    assert not failed, res
    assert res['changed'] is True
    assert [d['uuid'] for d in res['deleted']] == [INC, BASE]
    assert res['actions'] == ['delete image %s (inc@1.0)' % INC, 'delete image %s (base@1.0)' % BASE]
    assert res['diff'] == {'before': '%s base@1.0\n%s inc@1.0\n' % (BASE, INC), 'after': ''}
    assert not any(c[0] in ('destroy', 'rename') for c in world.zfs_calls())
    assert len(images_dir(tmp_path)) == 2


def test_absent_of_what_is_not_there_is_unchanged(run_module, tmp_path):
    world = World(tmp_path)
    failed, res = run_module(imgadm_image.main, world.args(state='absent', uuid=BASE))
    assert not failed, res
    assert res['changed'] is False and res['deleted'] == []
    assert res['images'] == [] and res['image'] is None


def test_vacuumed_check_mode(run_module, tmp_path):
    datasets = (image('zones', BASE) + image('zones', INC, origin='zones/%s@final' % BASE)
                + image('zones', VM, origin='zones/%s@final' % INC, final=False) + image('zones', STRAY, final=False))
    other = '0d7c3f6e-0000-4000-8000-0000000000dd'
    datasets += image('zones', other)
    world = World(tmp_path, datasets, zones=[(VM, '/zones/' + VM)])
    record(tmp_path, BASE, 'base')
    record(tmp_path, INC, 'inc', origin=BASE)
    failed, res = run_module(imgadm_image.main, world.args(state='vacuumed'), check_mode=True)
    assert not failed, res
    # the VM keeps its chain; the stray dataset (no record, no @final) is never a candidate
    assert [d['uuid'] for d in res['deleted']] == [other]
    assert sorted(res['kept']) == sorted([BASE, INC, STRAY])
    assert res['changed'] is True
    assert not any(c[0] == 'destroy' for c in world.zfs_calls())
    assert world.tool_calls() == ['zoneadm']


def test_present_of_an_installed_image_asks_no_source(run_module, tmp_path, ping_server):
    url, seen = ping_server
    world = World(tmp_path, image('zones', BASE))
    m = record(tmp_path, BASE, 'base')
    failed, res = run_module(imgadm_image.main, world.args(uuid=BASE, sources=[url]))
    assert not failed, res
    assert res['changed'] is False and res['plan'] == [] and res['imported'] == []
    assert res['image'] == {'manifest': json.loads(json.dumps(m)), 'zpool': 'zones', 'source': 'http://src'}
    assert seen == []

    failed, res = run_module(imgadm_image.main, world.args(name='base', sources=[url]))
    assert not failed and res['changed'] is False
    assert res['selected']['uuid'] == BASE and 'no source was asked' in res['selected']['reason']
    assert seen == []
