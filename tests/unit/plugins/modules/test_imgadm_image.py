# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module-level tests of imgadm_image: arguments in, exit/fail JSON out.

Against a tiny IMGAPI on 127.0.0.1 and (``real_zfs``) a throw-away zfs-fuse pool.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.smartos.imgadm.plugins.modules import imgadm_image
from ansible_collections.smartos.imgadm.tests.unit.plugins.modules.conftest_images import (
    compress,
    exists,
    fake_imgapi,
    image_manifest,
    make_streams,
    record_path,
    throwaway_pool,
    tool_scripts,
    zfs_names,
)

BASE = '0d7c3f6e-0000-4000-8000-00000000000b'
INC = '0d7c3f6e-0000-4000-8000-00000000000c'


@pytest.fixture
def pool():
    """A throw-away pool per test (see conftest_images.throwaway_pool)."""
    with throwaway_pool('x') as name:
        yield name


@pytest.fixture
def api():
    with fake_imgapi() as server:
        yield server


def base_args(tmp_path, pool='zones', **more):
    zoneadm, sysinfo = tool_scripts(tmp_path)
    args = dict(pool=pool, imgadm_dir=str(tmp_path / 'db'), lock_dir=str(tmp_path), zoneadm_path=zoneadm,
                sysinfo_path=sysinfo, retries=0, timeout=10, zfs_backend='cli')
    args.update(more)
    return args


def images_dir(tmp_path):
    path = tmp_path / 'db' / 'images'
    return sorted(os.listdir(str(path))) if path.exists() else []


def publish_chain(pool, api):
    (base, dummy), (inc, dummy2) = make_streams(pool, [{'base': b'base'}, {'inc': b'inc'}])
    mbase = image_manifest(BASE, compress(base, 'gzip'), 'gzip', name='base', version='1.0')
    minc = image_manifest(INC, compress(inc, 'xz'), 'xz', origin=BASE, name='inc', version='1.0')
    api.add(mbase, compress(base, 'gzip'))
    api.add(minc, compress(inc, 'xz'))
    return mbase, minc


@pytest.mark.real_zfs
def test_present_by_uuid_check_real_again_then_absent(run_module, tmp_path, pool, api):
    mbase, dummy = publish_chain(pool, api)
    args = base_args(tmp_path, pool, uuid=BASE, sources=[api.url])

    failed, res = run_module(imgadm_image.main, args, check_mode=True, diff=True)
    assert not failed and res['changed'] is True
    assert res['actions'] == ['import image %s (base@1.0) from %s' % (BASE, api.url)]
    assert res['plan'] == [dict(uuid=BASE, name='base', version='1.0', bytes=mbase['files'][0]['size'], source=api.url)]
    assert res['diff'] == {'before': '', 'after': '%s base@1.0\n' % BASE}
    assert zfs_names(pool) == [pool], 'check mode touched the pool'
    assert images_dir(tmp_path) == [], 'check mode wrote a record'
    assert api.file_requests(BASE) == 0

    failed, res = run_module(imgadm_image.main, args)
    assert not failed and res['changed'] is True
    assert [i['uuid'] for i in res['imported']] == [BASE]
    assert zfs_names(pool) == [pool, '%s/%s' % (pool, BASE), '%s/%s@final' % (pool, BASE)]
    with open(record_path(tmp_path / 'db', pool, BASE)) as fh:
        assert json.load(fh) == {'manifest': json.loads(json.dumps(mbase)), 'zpool': pool, 'source': api.url}
    assert res['image']['manifest']['uuid'] == BASE and res['image']['zpool'] == pool

    failed, res = run_module(imgadm_image.main, args)
    assert not failed and res['changed'] is False and res['actions'] == []
    assert res['image']['source'] == api.url
    assert api.file_requests(BASE) == 1

    absent = dict(args, state='absent')
    failed, res = run_module(imgadm_image.main, absent, check_mode=True)
    assert not failed and res['changed'] and exists('%s/%s' % (pool, BASE))
    failed, res = run_module(imgadm_image.main, absent)
    assert not failed and res['changed'] is True
    assert res['deleted'] == [dict(uuid=BASE, name='base', version='1.0')]
    assert zfs_names(pool) == [pool] and images_dir(tmp_path) == []
    failed, res = run_module(imgadm_image.main, absent)
    assert not failed and res['changed'] is False


@pytest.mark.real_zfs
def test_present_incremental_xz_chain_and_dependent_clones(run_module, tmp_path, pool, api):
    publish_chain(pool, api)
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, pool, uuid=INC, sources=[api.url]))
    assert not failed, res.get('msg')
    assert [(i['uuid'], i['compression']) for i in res['imported']] == [(BASE, 'gzip'), (INC, 'xz')]
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, pool, uuid=BASE, state='absent'))
    assert failed and res['error_code'] == 'ImageHasDependentClones'
    assert res['clones'] == ['%s/%s' % (pool, INC)]
    assert exists('%s/%s' % (pool, BASE))


@pytest.mark.real_zfs
def test_install_from_files_missing_origin(run_module, tmp_path, pool, api):
    dummy, minc = publish_chain(pool, api)
    path = tmp_path / 'inc.zfs.xz'
    path.write_bytes(api.images[INC]['file'])
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, pool, manifest=minc, file=str(path)))
    assert failed
    assert res['error_code'] == 'OriginNotInstalled'
    assert res['origin'] == BASE and res['uuid'] == INC
    assert BASE in res['msg'] and pool in res['msg']
    assert zfs_names(pool) == [pool] and images_dir(tmp_path) == []


@pytest.mark.parametrize('more, code, field', [
    (dict(uuid='NOT-A-UUID'), 'InvalidUUID', 'uuid'),
    (dict(uuid='0d7c3f6e-0000-4000-8000-00000000000b', pool='zones/sub'), 'Usage', 'pool'),
    (dict(uuids=['0d7c3f6e-0000-4000-8000-00000000000b', '0D7C3F6E-0000-4000-8000-00000000000B']), 'InvalidUUID', 'uuids'),
    (dict(manifest='/nonexistent/m.json', file='/nonexistent/f'), 'Usage', 'manifest'),
    (dict(manifest=42, file='/nonexistent/f'), 'Usage', 'manifest'),
])
def test_bad_input_names_the_field(run_module, tmp_path, more, code, field):
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, sources=['http://127.0.0.1:1'], **more))
    assert failed
    assert res['error_code'] == code
    assert res['field'] == field
    assert images_dir(tmp_path) == []


def test_bad_file_and_manifest_contents(run_module, tmp_path):
    good = image_manifest(BASE, b'x', 'none')
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, manifest=good, file=str(tmp_path / 'missing')))
    assert failed and res['error_code'] == 'Usage' and res['field'] == 'file'

    bad = dict(good)
    del bad['name']
    (tmp_path / 'f').write_bytes(b'x')
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, manifest=bad, file=str(tmp_path / 'f')))
    assert failed and res['error_code'] == 'ManifestValidation'
    assert [e['field'] for e in res['errors']] == ['name']

    (tmp_path / 'm.json').write_text('{"v": 2,')
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, manifest=str(tmp_path / 'm.json'), file=str(tmp_path / 'f')))
    assert failed and res['error_code'] == 'InvalidManifest' and res['field'] == 'manifest'


@pytest.mark.parametrize('more, text', [
    (dict(uuid=BASE, name='base'), 'mutually exclusive'),
    (dict(manifest={}, uuids=[BASE]), 'mutually exclusive'),
    (dict(uuid=BASE, version='1.0'), 'version'),  # version requires name
    (dict(), 'state is present but any of the following are missing: uuid, uuids, name, manifest'),
    (dict(uuid=BASE, state='gone'), 'state'),
])
def test_argument_spec_rules(run_module, tmp_path, more, text):
    failed, res = run_module(imgadm_image.main, base_args(tmp_path, **more))
    assert failed
    assert text in res['msg']
    assert 'error_code' not in res  # refused by AnsibleModule before any work


@pytest.mark.real_zfs
def test_unwritable_database_is_a_clean_failure(run_module, tmp_path, pool, api):
    publish_chain(pool, api)
    (tmp_path / 'notadir').write_text('')
    args = base_args(tmp_path, pool, uuid=BASE, sources=[api.url], imgadm_dir=str(tmp_path / 'notadir'))
    try:
        failed, res = run_module(imgadm_image.main, args)
    finally:
        assert zfs_names(pool) == [pool]  # the import was undone either way
    assert failed and res['error_code'] == 'InternalError'
    assert 'notadir' in res['msg']
