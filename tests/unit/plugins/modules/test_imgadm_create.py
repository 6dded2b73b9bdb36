# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module-level tests of imgadm_create that need no pool: arguments in, exit/fail JSON out.

``zfs``, ``vmadm`` and ``sysinfo`` are fake commands (``zfs_path``,
``vmadm_path``, ``sysinfo_path``): small scripts keeping their state in a
JSON file and logging every call, so that each test can say which commands
ran. ``zfs send`` prints a fixed stream; gzip is the real one. The real
thing on a pool is in the integration tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import json
import os
import sys

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.modules import imgadm_create

VM = '0d7c3f6e-0000-4000-8000-0000000000aa'
IMG = '0d7c3f6e-0000-4000-8000-00000000000b'

FAKE = r'''#!%(python)s
import json, os, sys
state_path = os.path.join(os.environ['FAKE_CREATE_STATE'], 'state.json')
tool, args = %(tool)r, sys.argv[1:]
with open(state_path) as f:
    st = json.load(f)
stdin = sys.stdin.read() if tool == 'vmadm' and args[:1] == ['update'] else None
st['log'].append(' '.join([tool] + args))

def done(rc=0, out='', err=''):
    with open(state_path, 'w') as f:
        json.dump(st, f)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(rc)

if tool == 'sysinfo':
    done(0, json.dumps({'SDC Version': '7.0', 'Live Image': '20260101T000000Z'}))
if tool == 'vmadm':
    vm = st['vm']
    if args[-1] != vm['uuid']:
        done(1, '', 'zoneadm: %%s: No such zone configured\n' %% args[-1])
    if args[0] == 'get':
        done(0, json.dumps(vm))
    if args[0] == 'start':
        vm['state'] = 'running'
        if (vm.get('internal_metadata') or {}).get('operator-script'):
            vm.setdefault('customer_metadata', {})['prepare-image:state'] = 'success'
            vm['state'] = 'stopped'
    elif args[0] == 'stop':
        vm['state'] = 'stopped'
    elif args[0] == 'update':
        payload = json.loads(stdin)
        for field in ('internal_metadata', 'customer_metadata'):
            vm.setdefault(field, {}).update(payload.get('set_' + field, {}))
            for k in payload.get('remove_' + field, []):
                vm[field].pop(k, None)
    done()
# zfs
snaps = st['snaps']
def exists(n):
    if '@' in n:
        d, s = n.split('@')
        return s in snaps.get(d, [])
    return n in snaps
cmd = args[0] if args else ''
if cmd == 'receive' and len(args) == 1:
    done(2, '', 'usage:\n\treceive [-vnsFhu] <filesystem|volume|snapshot>\n')
if cmd == 'list':
    names = [a for a in args if not a.startswith('-') and a not in ('list', 'name', 'snapshot', 'createtxg', '1')]
    if 'snapshot' in args:
        done(0, ''.join('%%s@%%s\n' %% (names[-1], s) for s in snaps.get(names[-1], [])))
    missing = [n for n in names if not exists(n)]
    done(1 if missing else 0, ''.join(n + '\n' for n in names if exists(n)),
         ''.join("cannot open '%%s': dataset does not exist\n" %% n for n in missing))
if cmd == 'get':
    done(0, '%%s\t%%s\t-\n' %% (args[-1], args[-2]))
if cmd == 'snapshot':
    d, s = args[1].split('@')
    snaps[d].append(s)
elif cmd == 'destroy':
    d, s = args[-1].split('@')
    snaps[d].remove(s)
elif cmd == 'rollback':
    d, s = args[-1].split('@')
    del snaps[d][snaps[d].index(s) + 1:]
elif cmd == 'rename':
    d, s = args[-2].split('@')
    snaps[d][snaps[d].index(s)] = args[-1].split('@')[1]
elif cmd == 'send':
    with open(state_path, 'w') as f:
        json.dump(st, f)
    sys.stdout.buffer.write(b'STREAM OF ' + args[-1].encode() * 1000)
    sys.exit(0)
done()
'''


@pytest.fixture
def host(tmp_path, monkeypatch):
    state = tmp_path / 'state'
    state.mkdir()
    monkeypatch.setenv('FAKE_CREATE_STATE', str(state))
    bins = {}
    for tool in ('zfs', 'vmadm', 'sysinfo'):
        path = tmp_path / tool
        path.write_text(FAKE % {'python': sys.executable, 'tool': tool})
        path.chmod(0o755)
        bins[tool] = str(path)
    vm = {'uuid': VM, 'brand': 'joyent', 'state': 'stopped', 'zpool': 'zones', 'zfs_filesystem': 'zones/' + VM,
          'image_uuid': IMG, 'customer_metadata': {}, 'internal_metadata': {}}
    (state / 'state.json').write_text(json.dumps({'vm': vm, 'log': [], 'snaps': {
        'zones': [], 'zones/' + IMG: ['final'], 'zones/' + VM: []}}))
    db = tmp_path / 'imgadm'
    ImageDatabase(str(db)).write('zones', IMG, {'v': 2, 'uuid': IMG, 'name': 'base', 'version': '1', 'type': 'zone-dataset',
                                                'os': 'smartos'})
    out = tmp_path / 'out'
    out.mkdir()

    class Host(object):
        def state(self):
            return json.loads((state / 'state.json').read_text())

        def set_vm(self, **fields):
            st = self.state()
            st['vm'].update(fields)
            (state / 'state.json').write_text(json.dumps(st))

        def changes(self):
            reads = ('vmadm get', 'zfs list', 'zfs get', 'sysinfo', 'zfs receive')
            return [c for c in self.state()['log'] if not c.startswith(reads)]

        def clear(self):
            st = self.state()
            st['log'] = []
            (state / 'state.json').write_text(json.dumps(st))

        def args(self, **kw):
            a = dict(vm_uuid=VM, manifest={'name': 'my image', 'version': '1.0.0'}, output=str(out), compression='gzip',
                     zfs_path=bins['zfs'], vmadm_path=bins['vmadm'], sysinfo_path=bins['sysinfo'], imgadm_dir=str(db))
            a.update(kw)
            return a
    h = Host()
    h.out = out
    return h


def test_create_then_nothing_to_do(run_module, host):
    failed, result = run_module(imgadm_create.main, host.args())
    assert not failed, result
    assert result['changed'] is True and result['created'] is True
    assert sorted(os.listdir(str(host.out))) == ['my-image-1.0.0.imgmanifest', 'my-image-1.0.0.zfs.gz']
    data = open(result['file_path'], 'rb').read()
    assert gzip.decompress(data) == b'STREAM OF ' + ('zones/%s@final' % VM).encode() * 1000
    m = json.load(open(result['manifest_path']))
    assert m['files'] == [{'size': len(data), 'compression': 'gzip', 'sha1': hashlib.sha1(data).hexdigest()}]
    assert m['requirements'] == {'min_platform': {'7.0': '20260101T000000Z'}} and m['type'] == 'zone-dataset'
    assert result['manifest'] == m and result['sha1'] == m['files'][0]['sha1']
    assert host.changes() == ['zfs snapshot zones/%s@final' % VM, 'zfs send zones/%s@final' % VM,
                              'zfs destroy -r zones/%s@final' % VM]
    host.clear()
    failed, again = run_module(imgadm_create.main, host.args())
    assert not failed and again['changed'] is False and again['manifest'] == m and again['created'] is False
    assert host.changes() == []


def test_check_mode(run_module, host):
    failed, result = run_module(imgadm_create.main, host.args(compression='xz'), check_mode=True)
    assert not failed, result
    assert result['changed'] is True and result['sha1'] is None
    assert result['file_path'].endswith('my-image-1.0.0.zfs.xz')
    assert host.changes() == [] and os.listdir(str(host.out)) == []


def test_prepare_script_on_a_running_vm(run_module, host, tmp_path):
    host.set_vm(state='running')
    failed, result = run_module(imgadm_create.main, host.args(prepare_script_content='#!/bin/sh\nexit 0\n',
                                                              compression='none'))
    assert not failed, result
    ds = 'zones/' + VM
    changes = host.changes()
    assert changes[0] == 'vmadm stop %s' % VM
    assert changes[1] == 'zfs snapshot %s@imgadm-create-pre-prepare' % ds
    assert changes[-4:] == ['zfs rollback -r %s@imgadm-create-pre-prepare' % ds,
                            'zfs destroy -r %s@imgadm-create-pre-prepare' % ds, 'vmadm update %s' % VM,
                            'vmadm start %s' % VM]
    assert host.state()['vm']['internal_metadata'] == {} and host.state()['vm']['customer_metadata'] == {}
    assert host.state()['vm']['state'] == 'running'
    assert host.state()['snaps'][ds] == []


def test_vm_not_found(run_module, host):
    failed, result = run_module(imgadm_create.main, host.args(vm_uuid='0d7c3f6e-0000-4000-8000-0000000000ff'))
    assert failed and result['error_code'] == 'VmNotFound'
    assert result['msg'] == 'vm "0d7c3f6e-0000-4000-8000-0000000000ff" was not found'


def test_vm_not_stopped(run_module, host):
    host.set_vm(state='running')
    failed, result = run_module(imgadm_create.main, host.args())
    assert failed and result['error_code'] == 'VmNotStopped' and result['changed'] is False
    assert result['vm'] == {'uuid': VM, 'brand': 'joyent', 'state': 'running'}


@pytest.mark.parametrize('args, code, field', [
    (dict(vm_uuid='ABC'), 'InvalidUUID', 'vm_uuid'),
    (dict(max_origin_depth=1), 'Usage', 'max_origin_depth'),
    (dict(output='relative'), 'Usage', 'output'),
    (dict(prepare_timeout=-1), 'Usage', 'prepare_timeout'),
    (dict(command_timeout=0), 'Usage', 'command_timeout'),
    (dict(manifest={'name': 'x'}), 'ManifestValidation', None),
])
def test_bad_arguments(run_module, host, args, code, field):
    failed, result = run_module(imgadm_create.main, host.args(**args))
    assert failed and result['error_code'] == code, result
    if field:
        assert result['field'] == field
    assert host.changes() == []


def test_mutually_exclusive_scripts(run_module, host):
    failed, result = run_module(imgadm_create.main, host.args(prepare_script='/x', prepare_script_content='y'))
    assert failed and 'mutually exclusive' in result['msg']


@pytest.fixture
def imgapi(tmp_path):
    pytest.importorskip('requests')
    world = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, 'world')
    if world not in sys.path:
        sys.path.insert(0, world)
    import imgapi_server  # pylint: disable=import-error
    srv = imgapi_server.start_server(str(tmp_path / 'srv'))
    try:
        yield srv
    finally:
        srv.stop()


def test_create_and_publish_then_nothing_to_do(run_module, host, imgapi):
    publish = dict(url=imgapi.url, owner='00000000-0000-0000-0000-000000000000', retries=0)
    failed, result = run_module(imgadm_create.main, host.args(publish=publish, manifest={
        'name': 'pub', 'version': '1.0.0', 'public': True}))
    assert not failed, result
    assert result['changed'] is True and result['published']['uuid'] == result['manifest']['uuid']
    with open(os.path.join(imgapi.data_dir, 'images', result['manifest']['uuid'] + '.json')) as f:
        image = json.load(f)
    assert image['state'] == 'active' and image['files'][0]['sha1'] == result['sha1']
    assert 'publish' in result['timings']
    writes = [r for r in imgapi.requests() if r['method'] in ('POST', 'PUT', 'DELETE')]
    assert len(writes) == 3
    imgapi.clear_requests()
    failed, again = run_module(imgadm_create.main, host.args(publish=publish, manifest={
        'name': 'pub', 'version': '1.0.0', 'public': True}))
    assert not failed, again
    assert again['changed'] is False and again['manifest']['uuid'] == result['manifest']['uuid']
    assert [r for r in imgapi.requests() if r['method'] in ('POST', 'PUT', 'DELETE')] == []


def test_publish_in_check_mode_before_the_image_exists(run_module, host, imgapi):
    failed, result = run_module(imgadm_create.main, host.args(publish=dict(url=imgapi.url)), check_mode=True)
    assert not failed, result
    assert result['actions'][-1] == 'publish the image to %s' % imgapi.url
    assert imgapi.requests() == [] and host.changes() == []
