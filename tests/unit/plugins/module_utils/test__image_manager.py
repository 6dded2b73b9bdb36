# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_image_manager.py.

* ``_diff_fields`` and ``_children_first`` as tables;
* ``ImageManager`` (present/absent/updated/vacuumed) with a fake module
  object, a tiny IMGAPI on 127.0.0.1 and, marked ``real_zfs``, a throw-away
  zfs-fuse pool (imgadm-behaviour.md §2, §4.1-4.3, docs/differences.md).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import gzip
import json
import os
import shutil

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    ActiveImageNotFoundError,
    DownloadError,
    ImageHasDependentClonesError,
    ImageMissingOriginalSnapshotError,
    ImgapiConnectionError,
    NoSourcesError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._image_manager import (
    ImageManager,
    _children_first,
    _diff_fields,
    run_images,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._importer import ZfsInstaller
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import CliBackend, ZfsRunner, subprocess_run_command
from ansible_collections.smartos.imgadm.tests.unit.plugins.modules.conftest_images import (
    compress,
    exists,
    fake_imgapi,
    image_manifest,
    make_streams,
    module_defaults,
    record_path,
    throwaway_pool,
    tool_scripts,
    zfs,
    zfs_names,
    zfs_value,
)

BASE = '6c1e0a5e-0000-4000-8000-00000000000b'
INC = '6c1e0a5e-0000-4000-8000-00000000000c'
NEW = '6c1e0a5e-0000-4000-8000-00000000000d'
VM = '6c1e0a5e-0000-4000-8000-0000000000aa'
DEAD_URL = 'http://127.0.0.1:1'


# ------------------------------------------------------------------ pure helpers

@pytest.mark.parametrize('old, new, fields', [
    ({}, {}, []),
    ({'a': 1}, {'a': 1}, []),
    ({'a': 1}, {'a': 2}, ['a']),
    ({'name': 'x'}, {'name': 'x', 'description': 'd'}, ['description']),
    ({'b': 1, 'a': 1, 'c': 1}, {'c': 2, 'b': 2}, ['a', 'b', 'c']),  # sorted, removed keys too
    ({'tags': {'a': 1}}, {'tags': {'a': 2}}, ['tags']),  # only requirements is diffed key by key
    ({'requirements': {'brand': 'lx', 'networks': []}}, {'requirements': {'brand': 'bhyve', 'networks': []}},
     ['requirements.brand']),
    ({'requirements': {'min_platform': {'7.0': 'x'}}}, {'requirements': {'max_platform': {'7.0': 'y'}}},
     ['requirements.max_platform', 'requirements.min_platform']),
    ({'requirements': {'brand': 'lx'}}, {'requirements': None}, ['requirements']),
    ({}, {'requirements': {'brand': 'lx'}}, ['requirements']),
    ({'files': [{'sha1': 'a'}]}, {'files': [{'sha1': 'a', 'dataset_guid': '1'}]}, ['files']),
])
def test_diff_fields(old, new, fields):
    assert _diff_fields(old, new) == fields


@pytest.mark.parametrize('uuids, origins, order', [
    ([], {}, []),
    (['a'], {}, ['a']),
    (['a', 'b'], {}, ['a', 'b']),  # independent images keep their order
    (['base', 'inc'], {'inc': 'base'}, ['inc', 'base']),
    (['inc', 'base'], {'inc': 'base'}, ['inc', 'base']),
    (['base', 'inc', 'inc2'], {'inc': 'base', 'inc2': 'inc'}, ['inc2', 'inc', 'base']),
    (['base', 'inc2'], {'inc': 'base', 'inc2': 'inc'}, ['base', 'inc2']),  # the link is not being deleted
    (['base', 'x', 'inc'], {'inc': 'base', 'x': 'other'}, ['x', 'inc', 'base']),
    (['base', 'c1', 'c2'], {'c1': 'base', 'c2': 'base'}, ['c1', 'c2', 'base']),
    (['a'], {'a': 'a'}, ['a']),  # its own origin does not block it
])
def test_children_first(uuids, origins, order):
    assert _children_first(uuids, origins) == order


# ------------------------------------------------------------------ a module stand-in

class FakeModule:
    """What ``ImageManager`` uses of an AnsibleModule."""

    def __init__(self, params, check_mode=False, diff=True):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def run_command(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
        return subprocess_run_command(args, check_rc=check_rc, data=data, binary_data=binary_data,
                                      environ_update=environ_update)

    @staticmethod
    def get_bin_path(name, required=False, opt_dirs=None):
        return shutil.which(name, path=os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin']))

    def warn(self, msg):
        self.warnings.append(msg)


DEFAULTS = module_defaults()


def params(tmp_path, **overrides):
    zoneadm, sysinfo = tool_scripts(tmp_path, overrides.pop('zones', ()))
    p = copy.deepcopy(DEFAULTS)
    p.update(imgadm_dir=str(tmp_path / 'db'), lock_dir=str(tmp_path), zoneadm_path=zoneadm, sysinfo_path=sysinfo,
             zfs_backend='cli', retries=0, timeout=10.0, lock_timeout=5.0)
    p.update(overrides)
    return p


def manager(tmp_path, check_mode=False, **overrides):
    return ImageManager(FakeModule(params(tmp_path, **overrides), check_mode=check_mode))


def test_module_defaults_are_the_documented_ones():
    assert DEFAULTS['pool'] == 'zones' and DEFAULTS['state'] == 'present'
    assert DEFAULTS['imgadm_dir'] == '/var/imgadm' and DEFAULTS['lock_dir'] == '/var/run'
    assert DEFAULTS['concurrency'] == 2 and DEFAULTS['keep'] == []


@pytest.mark.parametrize('overrides, error, field', [
    (dict(pool='bad/pool'), UsageError, 'pool'),
    (dict(pool='zones', uuid='NOT-A-UUID'), UsageError, 'uuid'),
    (dict(pool='zones', uuids=['6c1e0a5e-0000-4000-8000-00000000000b', 'nope']), UsageError, 'uuids'),
])
def test_bad_input_names_the_field(tmp_path, overrides, error, field):
    with pytest.raises(error) as exc:
        mgr = manager(tmp_path, **overrides)
        mgr.targets()
    assert exc.value.details['field'] == field


def test_no_sources(tmp_path):
    (tmp_path / 'db').mkdir()
    (tmp_path / 'db' / 'imgadm.conf').write_text('{"sources": []}')
    with pytest.raises(NoSourcesError):
        manager(tmp_path).sources()


# ------------------------------------------------------------------ against a real pool

@pytest.fixture
def pool():
    """A throw-away pool per test (see conftest_images.throwaway_pool)."""
    with throwaway_pool('m') as name:
        yield name


@pytest.fixture
def api():
    with fake_imgapi() as server:
        yield server


def chain_images(pool, api, compression='gzip'):
    """BASE (full) <- INC (incremental) published on ``api``; returns their manifests and guids."""
    (base, base_guid), (inc, inc_guid) = make_streams(pool, [{'base': b'base'}, {'inc': b'inc'}])
    base_file, inc_file = compress(base, compression), compress(inc, compression)
    mbase = image_manifest(BASE, base_file, compression, name='base', version='1.0')
    minc = image_manifest(INC, inc_file, compression, origin=BASE, name='inc', version='1.0',
                          published_at='2024-02-01T00:00:00Z')
    api.add(mbase, base_file)
    api.add(minc, inc_file)
    return mbase, minc, base_guid, inc_guid


def install(pool, tmp_path, manifest, stream, source=None):
    """Put an image on the pool without the manager (raw stream)."""
    inst = ZfsInstaller(CliBackend(ZfsRunner()), ImageDatabase(str(tmp_path / 'db')), {})
    inst.receive(pool, manifest, iter([stream]), 'none', verify=False, source=source)


def record(tmp_path, pool, uuid):
    with open(record_path(tmp_path / 'db', pool, uuid)) as fh:
        return json.load(fh)


@pytest.mark.real_zfs
def test_present_chain_check_mode_then_real_then_unchanged(pool, tmp_path, api):
    mbase, minc, dummy, dummy2 = chain_images(pool, api)
    res = manager(tmp_path, check_mode=True, pool=pool, uuid=INC, sources=[api.url]).present().as_dict()
    assert res['changed'] is True
    assert [p['uuid'] for p in res['plan']] == [BASE, INC]  # base first
    assert res['plan_bytes'] == mbase['files'][0]['size'] + minc['files'][0]['size']
    assert res['actions'] == ['import image %s (base@1.0) from %s' % (BASE, api.url),
                              'import image %s (inc@1.0) from %s' % (INC, api.url)]
    assert res['image']['manifest']['uuid'] == INC and res['image']['source'] == api.url  # predicted record
    assert res['diff'] == {'before': '', 'after': '%s base@1.0\n%s inc@1.0\n' % (BASE, INC)}
    assert zfs_names(pool) == [pool]
    assert not (tmp_path / 'db' / 'images').exists()
    assert api.file_requests(BASE) == api.file_requests(INC) == 0

    res = manager(tmp_path, pool=pool, uuid=INC, sources=[api.url], concurrency=3).present().as_dict()
    assert res['changed'] is True
    assert [i['uuid'] for i in res['imported']] == [BASE, INC]
    assert [i['bytes'] for i in res['imported']] == [mbase['files'][0]['size'], minc['files'][0]['size']]
    assert all(i['attempts'] == 1 and i['compression'] == 'gzip' for i in res['imported'])
    assert zfs_value('origin', '%s/%s' % (pool, INC)) == '%s/%s@final' % (pool, BASE)
    assert record(tmp_path, pool, INC) == {'manifest': json.loads(json.dumps(minc)), 'zpool': pool, 'source': api.url}
    assert res['diff']['after'] == '%s base@1.0\n%s inc@1.0\n' % (BASE, INC)
    assert res['image'] == record(tmp_path, pool, INC)

    res = manager(tmp_path, pool=pool, uuids=[INC, BASE], sources=[api.url]).present().as_dict()
    assert res['changed'] is False and res['actions'] == [] and res['plan'] == []
    assert [i['manifest']['uuid'] for i in res['images']] == [INC, BASE] and res['image'] is None
    assert api.file_requests(BASE) == api.file_requests(INC) == 1


@pytest.mark.real_zfs
def test_present_by_name_selects_newest(pool, tmp_path, api):
    dummy, minc, dummy2, dummy3 = chain_images(pool, api)
    newer = dict(minc, uuid=NEW, published_at='2024-03-01T00:00:00Z')
    api.add(newer, b'')
    api.add(dict(minc, uuid=VM, published_at='2025-01-01T00:00:00Z', state='disabled'), b'')  # not active
    res = manager(tmp_path, check_mode=True, pool=pool, name='inc', sources=[api.url]).present().as_dict()
    assert res['selected']['uuid'] == NEW
    assert res['selected']['source'] == api.url
    assert res['selected']['reason'].startswith('newest published_at (2024-03-01T00:00:00Z) of 2 active image(s) named "inc"')
    assert [p['uuid'] for p in res['plan']] == [BASE, NEW]
    res = manager(tmp_path, check_mode=True, pool=pool, name='inc', version='1.0', sources=[api.url]).present().as_dict()
    assert res['selected']['uuid'] == NEW
    assert 'several images have this name and version, the newest was chosen' in res['selected']['reason']
    with pytest.raises(ActiveImageNotFoundError) as exc:
        manager(tmp_path, check_mode=True, pool=pool, name='inc', version='9', sources=[api.url]).present()
    assert str(exc.value) == 'no active image "inc@9" was found in image sources'


@pytest.mark.real_zfs
def test_present_inactive_and_error_in_earlier_source(pool, tmp_path, api):
    mbase, dummy, dummy2, dummy3 = chain_images(pool, api)
    api.images[BASE]['manifest'] = dict(mbase, state='disabled')
    with pytest.raises(ActiveImageNotFoundError):
        manager(tmp_path, check_mode=True, pool=pool, uuid=BASE, sources=[api.url]).present()
    api.images[BASE]['manifest'] = mbase
    # a dead first source does not hide the image in the second (docs/differences.md)
    res = manager(tmp_path, check_mode=True, pool=pool, uuid=BASE, sources=[DEAD_URL, api.url]).present().as_dict()
    assert [p['source'] for p in res['plan']] == [api.url]
    with pytest.raises(ImgapiConnectionError):
        manager(tmp_path, check_mode=True, pool=pool, uuid=BASE, sources=[DEAD_URL]).present()


@pytest.mark.real_zfs
@pytest.mark.parametrize('retries', [0, 1])
def test_present_retries_a_cut_download(pool, tmp_path, api, retries):
    chain_images(pool, api)
    api.truncate[BASE] = 1
    mgr = manager(tmp_path, pool=pool, uuid=BASE, sources=[api.url], retries=retries)
    if not retries:
        with pytest.raises(ImgapiConnectionError) as exc:
            mgr.present()
        assert 'truncated' in str(exc.value) or 'connection lost' in str(exc.value)
        assert zfs_names(pool) == [pool]
        assert not os.path.exists(record_path(tmp_path / 'db', pool, BASE))
        return
    res = mgr.present().as_dict()
    assert res['imported'][0]['attempts'] == 2
    assert api.file_requests(BASE) == 2
    assert zfs_names(pool, 'snapshot') == ['%s/%s@final' % (pool, BASE)]


@pytest.mark.real_zfs
def test_present_content_length_must_match_manifest_size(pool, tmp_path, api):
    mbase, dummy, dummy2, dummy3 = chain_images(pool, api)
    mbase['files'][0]['size'] += 1
    with pytest.raises(DownloadError) as exc:
        manager(tmp_path, pool=pool, uuid=BASE, sources=[api.url]).present()
    assert str(exc.value) == 'image %s: unexpected mismatch between expected size, %d, and Content-Length header, %d' % (
        BASE, mbase['files'][0]['size'], mbase['files'][0]['size'] - 1)
    assert zfs_names(pool) == [pool]


@pytest.mark.real_zfs
def test_present_failed_origin_stops_the_chain(pool, tmp_path, api):
    mbase, dummy, dummy2, dummy3 = chain_images(pool, api)
    mbase['files'][0]['sha1'] = '0' * 40
    with pytest.raises(DownloadError) as exc:
        manager(tmp_path, pool=pool, uuid=INC, sources=[api.url]).present()
    assert 'checksum (sha1)' in str(exc.value) and BASE in str(exc.value)
    assert api.file_requests(INC) == 0  # never tried once its origin failed
    assert zfs_names(pool) == [pool]
    assert not (tmp_path / 'db' / 'images').exists() or os.listdir(str(tmp_path / 'db' / 'images')) == []


@pytest.mark.real_zfs
def test_absent_refuses_clones_and_deletes_children_first(pool, tmp_path, api):
    mbase, minc, dummy, dummy2 = chain_images(pool, api, compression='none')
    install(pool, tmp_path, mbase, api.images[BASE]['file'], source=api.url)
    install(pool, tmp_path, minc, api.images[INC]['file'], source=api.url)

    with pytest.raises(ImageHasDependentClonesError) as exc:
        manager(tmp_path, pool=pool, uuid=BASE, state='absent').absent()
    assert str(exc.value) == 'image "%s" has dependent clones: %s/%s' % (BASE, pool, INC)
    assert exc.value.code == 'ImageHasDependentClones'

    res = manager(tmp_path, check_mode=True, pool=pool, uuids=[BASE, INC], state='absent').absent().as_dict()
    assert res['changed'] and [d['uuid'] for d in res['deleted']] == [INC, BASE]
    assert exists('%s/%s' % (pool, BASE)) and exists('%s/%s' % (pool, INC))
    assert os.path.exists(record_path(tmp_path / 'db', pool, INC))

    res = manager(tmp_path, pool=pool, uuids=[BASE, INC], state='absent').absent().as_dict()
    assert res['actions'] == ['delete image %s (inc@1.0)' % INC, 'delete image %s (base@1.0)' % BASE]
    assert res['diff'] == {'before': '%s base@1.0\n%s inc@1.0\n' % (BASE, INC), 'after': ''}
    assert zfs_names(pool) == [pool]
    assert os.listdir(str(tmp_path / 'db' / 'images')) == []

    res = manager(tmp_path, pool=pool, uuids=[BASE, INC], state='absent').absent().as_dict()
    assert res['changed'] is False and res['deleted'] == []


@pytest.mark.real_zfs
def test_absent_by_name(pool, tmp_path, api):
    mbase, minc, dummy, dummy2 = chain_images(pool, api, compression='none')
    install(pool, tmp_path, mbase, api.images[BASE]['file'])
    install(pool, tmp_path, minc, api.images[INC]['file'])
    res = manager(tmp_path, pool=pool, name='inc', state='absent').absent().as_dict()
    assert [d['uuid'] for d in res['deleted']] == [INC]
    assert exists('%s/%s' % (pool, BASE)) and not exists('%s/%s' % (pool, INC))


@pytest.mark.real_zfs
def test_vacuumed(pool, tmp_path, api):
    mbase, minc, dummy, dummy2 = chain_images(pool, api, compression='none')
    install(pool, tmp_path, mbase, api.images[BASE]['file'])
    install(pool, tmp_path, minc, api.images[INC]['file'])
    (other, dummy3), = make_streams(pool, [{'o': b'other'}])
    install(pool, tmp_path, image_manifest(NEW, other, 'none', name='other', version='2'), other)
    zfs('clone', '%s/%s@final' % (pool, NEW), '%s/%s' % (pool, VM))  # a VM of "other"
    zones = [(VM, '/%s/%s' % (pool, VM))]

    res = manager(tmp_path, check_mode=True, pool=pool, state='vacuumed', zones=zones).vacuumed().as_dict()
    assert [d['uuid'] for d in res['deleted']] == [INC, BASE]  # leaf first
    assert res['kept'] == [NEW]
    assert exists('%s/%s' % (pool, INC))

    res = manager(tmp_path, pool=pool, state='vacuumed', zones=zones, keep=['base@1.0']).vacuumed().as_dict()
    assert [d['uuid'] for d in res['deleted']] == [INC]
    assert sorted(res['kept']) == sorted([BASE, NEW])
    assert not exists('%s/%s' % (pool, INC)) and exists('%s/%s' % (pool, BASE))
    assert not os.path.exists(record_path(tmp_path / 'db', pool, INC))

    res = manager(tmp_path, pool=pool, state='vacuumed', zones=zones, keep=[NEW]).vacuumed().as_dict()
    assert [d['uuid'] for d in res['deleted']] == [BASE]
    res = manager(tmp_path, pool=pool, state='vacuumed', zones=zones).vacuumed().as_dict()
    assert res['changed'] is False and res['kept'] == [NEW]
    assert exists('%s/%s' % (pool, VM))


@pytest.mark.real_zfs
def test_updated_manifest_and_final_snapshot(pool, tmp_path, api):
    mbase, minc, base_guid, dummy = chain_images(pool, api, compression='none')
    install(pool, tmp_path, mbase, api.images[BASE]['file'], source=api.url)
    install(pool, tmp_path, minc, api.images[INC]['file'], source=api.url)
    ds = '%s/%s' % (pool, BASE)
    zfs('rename', ds + '@final', ds + '@lost')
    served = dict(mbase, description='now described')
    served['files'] = [dict(mbase['files'][0], dataset_guid=base_guid)]
    api.images[BASE]['manifest'] = served
    db_before = open(record_path(tmp_path / 'db', pool, BASE), 'rb').read()

    # check mode renames nothing (unlike imgadm update -n) and writes nothing
    res = manager(tmp_path, check_mode=True, pool=pool, uuid=BASE, state='updated', sources=[api.url]).updated().as_dict()
    assert res['changed'] is True
    assert res['updated'] == [{'uuid': BASE, 'changes': ['manifest: description, files', 'final']}]
    assert res['actions'] == [
        'update manifest of image %s from %s: description, files' % (BASE, api.url),
        'rename original snapshot of image %s from %s@lost to %s@final' % (BASE, ds, ds),
    ]
    assert zfs_names(ds, 'snapshot') == [ds + '@lost']
    assert open(record_path(tmp_path / 'db', pool, BASE), 'rb').read() == db_before

    res = manager(tmp_path, pool=pool, state='updated', sources=[api.url]).updated().as_dict()  # all images
    assert [u['uuid'] for u in res['updated']] == [BASE]
    assert zfs_names(ds, 'snapshot') == [ds + '@final']
    assert record(tmp_path, pool, BASE)['manifest']['description'] == 'now described'

    res = manager(tmp_path, pool=pool, state='updated', sources=[api.url]).updated().as_dict()
    assert res['changed'] is False and res['updated'] == []


@pytest.mark.real_zfs
def test_updated_warnings_and_errors(pool, tmp_path, api):
    mbase, dummy, base_guid, dummy2 = chain_images(pool, api, compression='none')
    install(pool, tmp_path, mbase, api.images[BASE]['file'], source=api.url)
    mgr = manager(tmp_path, pool=pool, state='updated', sources=[api.url], uuid=BASE)
    del api.images[BASE]
    res = mgr.updated().as_dict()
    assert res['changed'] is False
    assert mgr.warnings == ['could not find image %s in image sources (skipping)' % BASE]

    with pytest.raises(UsageError) as exc:
        manager(tmp_path, pool=pool, state='updated', sources=[api.url], uuid=INC).updated()
    assert exc.value.details['field'] == 'uuid' and INC in str(exc.value)
    with pytest.raises(UsageError) as exc:
        manager(tmp_path, pool=pool, state='updated', sources=[api.url], name='nope').updated()
    assert exc.value.details['field'] == 'name'

    # a lost @final and a manifest without dataset_guid: a warning; a wrong guid: an error
    ds = '%s/%s' % (pool, BASE)
    zfs('rename', ds + '@final', ds + '@lost')
    api.add(mbase)
    mgr = manager(tmp_path, pool=pool, state='updated', sources=[api.url], uuid=BASE)
    mgr.updated()
    assert any('files[0].dataset_guid' in w for w in mgr.warnings)
    assert zfs_names(ds, 'snapshot') == [ds + '@lost']
    api.add(dict(mbase, files=[dict(mbase['files'][0], dataset_guid='12345')]))
    with pytest.raises(ImageMissingOriginalSnapshotError) as exc:
        manager(tmp_path, pool=pool, state='updated', sources=[api.url], uuid=BASE).updated()
    assert 'no snapshot has the original guid 12345' in str(exc.value)
    assert base_guid != '12345'


@pytest.mark.real_zfs
def test_run_images_dispatches_and_passes_warnings(pool, tmp_path, api):
    mbase, dummy, dummy2, dummy3 = chain_images(pool, api, compression='none')
    install(pool, tmp_path, mbase, api.images[BASE]['file'], source=api.url)
    del api.images[BASE]
    module = FakeModule(params(tmp_path, pool=pool, state='updated', sources=[api.url]))
    res = run_images(module)
    assert res['changed'] is False and res['updated'] == []
    assert module.warnings == ['could not find image %s in image sources (skipping)' % BASE]


@pytest.mark.real_zfs
def test_install_from_file(pool, tmp_path, api):
    mbase, minc, dummy, dummy2 = chain_images(pool, api, compression='gzip')
    base_path = tmp_path / 'base.zfs.gz'
    base_path.write_bytes(api.images[BASE]['file'])
    manifest_path = tmp_path / 'base.json'
    manifest_path.write_text(json.dumps(mbase))

    bad = dict(mbase, files=[dict(mbase['files'][0], size=1)])
    with pytest.raises(DownloadError) as exc:
        manager(tmp_path, pool=pool, manifest=bad, file=str(base_path)).present()
    assert exc.value.details['field'] == 'file' and 'manifest says 1 bytes' in str(exc.value)

    res = manager(tmp_path, check_mode=True, pool=pool, manifest=str(manifest_path), file=str(base_path)).present().as_dict()
    assert res['changed'] and res['plan'][0]['bytes'] == len(api.images[BASE]['file'])
    assert zfs_names(pool) == [pool]

    res = manager(tmp_path, pool=pool, manifest=str(manifest_path), file=str(base_path)).present().as_dict()
    assert res['imported'][0]['source'] is None and res['imported'][0]['compression'] == 'gzip'
    rec = record(tmp_path, pool, BASE)
    assert 'source' not in rec and rec['manifest']['uuid'] == BASE
    res = manager(tmp_path, pool=pool, manifest=str(manifest_path), file=str(base_path)).present().as_dict()
    assert res['changed'] is False

    # --zstream: a raw stream, no size or checksum checks
    inc_path = tmp_path / 'inc.zfs'
    inc_path.write_bytes(gzip.decompress(api.images[INC]['file']))
    res = manager(tmp_path, pool=pool, manifest=dict(minc, files=[{'sha1': '0' * 40, 'size': 1, 'compression': 'gzip'}]),
                  file=str(inc_path), zstream=True).present().as_dict()
    assert res['imported'][0]['compression'] == 'none'
    assert zfs_value('origin', '%s/%s' % (pool, INC)) == '%s/%s@final' % (pool, BASE)
