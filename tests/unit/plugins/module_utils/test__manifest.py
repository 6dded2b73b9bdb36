# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json
import os

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils import _manifest as M
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    InvalidManifestError,
    InvalidUUIDError,
    ManifestValidationError,
    MissingLibraryError,
    PlatformError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest_schema import SCHEMA

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, 'fixtures', 'manifests')
REPO_ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..', '..'))


def load(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


BASE = {
    'v': 2,
    'uuid': '9d91e334-3bcf-11e8-bb0b-e7b49eb01e38',
    'name': 'base',
    'version': '1.0.0',
    'type': 'zone-dataset',
    'os': 'smartos',
}

ZVOL = dict(BASE, type='zvol', os='linux', nic_driver='virtio', disk_driver='virtio', cpu_type='host', image_size=10240)


def make(base=None, drop=(), **changes):
    m = copy.deepcopy(base or BASE)
    for key in drop:
        m.pop(key, None)
    m.update(copy.deepcopy(changes))
    return m


def with_reqs(**reqs):
    return make(requirements=reqs)


def fields_of(manifest, mode='minimal'):
    return {(e['field'], e['code']) for e in M.manifest_errors(manifest, mode=mode)}


# ---- sample manifests

# (file, kind): every real-world sample is a v2 manifest and validates as is;
# the v1 one (DSAPI) only after the upgrade.
SAMPLES = [
    ('zone-dataset-pkgbuild-18.1.0.json', 'v2'),
    ('lx-dataset-ubuntu-16.04-20160601.json', 'v2'),
    ('zvol-ubuntu-certified-18.04-20180808.json', 'v2'),
    # docker layer: type docker, has origin and an object tag value, no files/state
    ('docker-layer-62487cf6a7f6-with-origin.json', 'v2'),
    ('zone-dataset-inc-level-1-origin-base.json', 'v2'),
    ('zone-dataset-incremental-inc-level-2-with-origin.json', 'v2'),
    ('zone-dataset-fauxnodejs-1.4.0-users-billing_tags.imgmanifest.json', 'v2'),
    ('dsapi-v1-base64-1.8.1.json', 'v1'),
]


def test_every_fixture_is_listed():
    assert sorted(os.listdir(FIXTURES)) == sorted(name for name, dummy in SAMPLES)


@pytest.mark.parametrize('name, kind', SAMPLES)
def test_sample_manifest_validates(name, kind):
    manifest = load(name)
    if kind == 'v1':
        # a v1 manifest is not a valid v2 one: its DSAPI fields are unknown
        assert ('creator_uuid', 'Invalid') in fields_of(manifest)
        manifest = M.upgrade_manifest(manifest)
    assert M.upgrade_manifest(manifest) == manifest
    assert M.manifest_errors(manifest) == []
    assert M.validate_manifest(manifest) is manifest


@pytest.mark.parametrize('name, kind', SAMPLES)
def test_sample_manifest_file_helpers(name, kind):
    manifest = M.upgrade_manifest(load(name))
    info = M.file_info(manifest)
    if 'files' in manifest:
        assert info is manifest['files'][0]
        assert info['compression'] in ('gzip', 'bzip2', 'xz', 'none')
    else:
        assert info is None


def test_sample_with_uppercase_uuid_is_rejected():
    manifest = load('zone-dataset-pkgbuild-18.1.0.json')
    manifest['uuid'] = manifest['uuid'].upper()
    with pytest.raises(ManifestValidationError) as exc:
        M.validate_manifest(manifest)
    assert [e['field'] for e in exc.value.errors] == ['uuid']
    assert exc.value.code == 'ManifestValidation'


# ---- single-rule violations: (manifest, field, code)

VIOLATIONS = [
    # required in minimal mode
    (make(drop=['v']), 'v', 'MissingParameter'),
    (make(drop=['uuid']), 'uuid', 'MissingParameter'),
    (make(drop=['name']), 'name', 'MissingParameter'),
    (make(drop=['version']), 'version', 'MissingParameter'),
    (make(drop=['type']), 'type', 'MissingParameter'),
    (make(drop=['os']), 'os', 'MissingParameter'),
    # scalar fields
    (make(v=-1), 'v', 'Invalid'),
    (make(v='two'), 'v', 'Invalid'),
    (make(uuid='9D91E334-3BCF-11E8-BB0B-E7B49EB01E38'), 'uuid', 'Invalid'),
    (make(uuid=BASE['uuid'] + '\n'), 'uuid', 'Invalid'),
    (make(owner='nobody'), 'owner', 'Invalid'),
    (make(origin='not-a-uuid'), 'origin', 'Invalid'),
    (make(name='a' * 1025), 'name', 'Invalid'),
    (make(name='bad$name'), 'name', 'Invalid'),
    (make(name='trailing-newline\n'), 'name', 'Invalid'),
    (make(name=''), 'name', 'Invalid'),
    (make(version='1' * 513), 'version', 'Invalid'),
    (make(version='1.0 beta'), 'version', 'Invalid'),
    (make(version=2), 'version', 'Invalid'),
    (make(description='d' * 10241), 'description', 'Invalid'),
    (make(homepage='ftp://example.com/'), 'homepage', 'Invalid'),
    (make(homepage='https://example.com/' + 'x' * 1010), 'homepage', 'Invalid'),
    (make(eula='example.com/eula'), 'eula', 'Invalid'),
    (make(state='bogus'), 'state', 'Invalid'),
    (make(type='lxd'), 'type', 'Invalid'),
    (make(os='plan9'), 'os', 'Invalid'),
    (make(published_at='2018-04-09 08:25:52'), 'published_at', 'Invalid'),
    (make(published_at='2018-04-09T08:25Z'), 'published_at', 'Invalid'),
    (make(error='boom', state='failed'), 'error', 'Invalid'),
    (make(urn=7), 'urn', 'Invalid'),
    # booleans: "yes" is Invalid (the reference throws a TypeError instead)
    (make(disabled='yes'), 'disabled', 'Invalid'),
    (make(activated='yes'), 'activated', 'Invalid'),
    (make(public='yes'), 'public', 'Invalid'),
    (make(icon='no'), 'icon', 'Invalid'),
    (make(generate_passwords=1), 'generate_passwords', 'Invalid'),
    # unknown top-level key
    (make(creator_uuid=BASE['uuid']), 'creator_uuid', 'Invalid'),
    (make(bogus=True), 'bogus', 'Invalid'),
    # files
    (make(files='x'), 'files', 'Invalid'),
    (make(files=[{'sha1': 'a', 'size': 1, 'compression': 'gzip'}] * 2), 'files', 'Invalid'),
    (make(files=[{'sha1': '', 'size': 1, 'compression': 'gzip'}]), 'files[0].sha1', 'Invalid'),
    (make(files=[{'size': 1, 'compression': 'gzip'}]), 'files[0].sha1', 'MissingParameter'),
    (make(files=[{'sha1': 'a', 'size': 0, 'compression': 'gzip'}]), 'files[0].size', 'Invalid'),
    (make(files=[{'sha1': 'a', 'size': '12', 'compression': 'gzip'}]), 'files[0].size', 'Invalid'),
    (make(files=[{'sha1': 'a', 'size': 1, 'compression': 'lz4'}]), 'files[0].compression', 'Invalid'),
    (make(files=[{'sha1': 'a', 'size': 1}]), 'files[0].compression', 'MissingParameter'),
    # arrays of things
    (make(acl=['not-a-uuid']), 'acl[0]', 'Invalid'),
    (make(acl='x'), 'acl', 'Invalid'),
    (make(users=[{'name': 'root', 'uid': 0}]), 'users[0].uid', 'Invalid'),
    (make(users=[{}]), 'users[0].name', 'MissingParameter'),
    (make(billing_tags=['t' * 129]), 'billing_tags[0]', 'Invalid'),
    (make(billing_tags='promo'), 'billing_tags', 'Invalid'),
    (make(channels='dev'), 'channels', 'Invalid'),
    (make(channels=[1]), 'channels[0]', 'Invalid'),
    (make(traits={'ssd': 1}), 'traits', 'Invalid'),
    (make(tags=['role=os']), 'tags', 'Invalid'),
    (make(tags={'big': 'x' * (100 * 1024)}), 'tags', 'Invalid'),
    (make(inherited_directories='/opt'), 'inherited_directories', 'Invalid'),
    # requirements
    (make(requirements=[]), 'requirements', 'Invalid'),
    (with_reqs(foo=1), 'requirements.foo', 'Invalid'),
    (with_reqs(networks={'name': 'net0'}), 'requirements.networks', 'Invalid'),
    (with_reqs(networks=[{'name': 'net0'}]), 'requirements.networks[0].description', 'MissingParameter'),
    (with_reqs(networks=[{'name': 'net0', 'description': 'public', 'vlan': 1}]), 'requirements.networks[0].vlan', 'Invalid'),
    (with_reqs(brand=7), 'requirements.brand', 'Invalid'),
    (with_reqs(ssh_key='yes'), 'requirements.ssh_key', 'Invalid'),
    (with_reqs(min_ram=0), 'requirements.min_ram', 'Invalid'),
    (with_reqs(min_ram=1.5), 'requirements.min_ram', 'Invalid'),
    (with_reqs(max_ram='1024'), 'requirements.max_ram', 'Invalid'),
    (with_reqs(min_ram=2048, max_ram=1024), 'requirements.max_ram', 'Invalid'),
    (with_reqs(bootrom='efi', brand='bhyve'), 'requirements.bootrom', 'Invalid'),
    (with_reqs(bootrom='uefi', brand='kvm'), 'requirements.bootrom', 'Invalid'),
    (with_reqs(bootrom='bios'), 'requirements.bootrom', 'MissingParameter'),
    # zvol-only fields
    (make(ZVOL, drop=['nic_driver']), 'nic_driver', 'MissingParameter'),
    (make(ZVOL, drop=['disk_driver']), 'disk_driver', 'MissingParameter'),
    (make(ZVOL, drop=['cpu_type']), 'cpu_type', 'MissingParameter'),
    (make(ZVOL, drop=['image_size']), 'image_size', 'MissingParameter'),
    (make(ZVOL, image_size=1.5), 'image_size', 'Invalid'),
    (make(ZVOL, nic_driver=5), 'nic_driver', 'Invalid'),
    (make(nic_driver='virtio'), 'nic_driver', 'Invalid'),
    (make(disk_driver='virtio'), 'disk_driver', 'Invalid'),
    (make(cpu_type='host'), 'cpu_type', 'Invalid'),
    (make(image_size=10240), 'image_size', 'Invalid'),
    # inherited_directories only on zone-dataset
    (make(type='lx-dataset', inherited_directories=['/opt']), 'inherited_directories', 'Invalid'),
    (make(ZVOL, inherited_directories=[]), 'inherited_directories', 'Invalid'),
    # activated needs published_at (and files)
    (make(activated=True, files=[{'sha1': 'a', 'size': 1, 'compression': 'none'}]), 'published_at', 'MissingParameter'),
    (make(activated='true', published_at='2018-04-09T08:25:52Z'), 'files', 'MissingParameter'),
    # "null" type/os only while creating/failed
    (make(type='null'), 'type', 'Invalid'),
    (make(type='null', state='active'), 'type', 'Invalid'),
    (make(os='null', state='unactivated'), 'os', 'Invalid'),
]


@pytest.mark.parametrize('manifest, field, code', VIOLATIONS)
def test_violation_names_the_field(manifest, field, code):
    errs = fields_of(manifest)
    assert (field, code) in errs
    with pytest.raises(ManifestValidationError) as exc:
        M.validate_manifest(manifest)
    assert field in [e['field'] for e in exc.value.errors]
    assert field in str(exc.value)


# min/max platform timestamps: 16 chars, year >= 2012, month/day/time in range
BAD_TIMESTAMPS = [
    '2016022T122859Z',      # 15 chars
    '20160225T122859ZZ',    # 17 chars
    '20110225T122859Z',     # year < 2012
    '20161325T122859Z',     # month 13
    '20160025T122859Z',     # month 0
    '20160232T122859Z',     # day 32
    '20160200T122859Z',     # day 0
    '20160225T242859Z',     # hour 24
    '20160225T126059Z',     # minute 60
    '20160225T122860Z',     # second 60
    '20160225X122859Z',     # no T
    '20160225T122859z',     # no Z
    '2016-02-25T12:28Z',    # ISO
    '',
]


@pytest.mark.parametrize('which', ['min_platform', 'max_platform'])
@pytest.mark.parametrize('ts', BAD_TIMESTAMPS)
def test_bad_platform_timestamp(which, ts):
    manifest = with_reqs(**{which: {'7.0': '20160225T122859Z', '7.1': ts}})
    assert fields_of(manifest) == {('requirements.%s' % which, 'Invalid')}
    assert not M.valid_platform_timestamp(ts)


@pytest.mark.parametrize('which', ['min_platform', 'max_platform'])
@pytest.mark.parametrize('spec', [{}, [], '20160225T122859Z', {'7.0': 20160225}])
def test_bad_platform_spec(which, spec):
    assert fields_of(with_reqs(**{which: spec})) == {('requirements.%s' % which, 'Invalid')}


@pytest.mark.parametrize('ts', ['20120101T000000Z', '20160225T122859Z', '20991231T235959Z', '20160231T000000Z'])
def test_good_platform_timestamp(ts):
    # like the reference, days are checked against 31 only
    assert M.valid_platform_timestamp(ts)
    assert M.manifest_errors(with_reqs(min_platform={'7.0': ts}, max_platform={'7.0': ts})) == []


# ---- valid edge cases

VALID = [
    make(name='a' * 1024),
    make(name='Ubuntu 18.04/x_y.z-1'),
    make(version='1' * 512),
    make(version='1.0.0+build/2_a-b'),
    make(description='d' * 10240),
    make(homepage='HTTPS://example.com/', eula='http://example.com/eula'),
    make(disabled='true', public='false', icon=True, generate_passwords='false', activated=False),
    # channels in minimal mode (the reference throws a TypeError)
    make(channels=['dev', 'staging']),
    make(published_at='2018-04-09T08:25:52Z'),
    make(published_at='2018-04-09T08:25:52.123Z'),
    make(activated=True, published_at='2018-04-09T08:25:52Z', files=[{'sha1': 'a', 'size': 1, 'compression': 'xz'}]),
    make(files=[]),
    make(files=[{'sha1': 'a', 'size': 1, 'compression': 'none', 'dataset_guid': '123', 'stor': 'local'}]),
    make(type='null', os='null', state='creating'),
    make(type='null', os='null', state='failed', error={'message': 'boom'}),
    make(nic_driver=''),
    make(inherited_directories=['/opt/local']),
    make(traits={'ssd': True, 'hw': 'x', 'list': ['a']}),
    make(tags={'docker:config': {'Cmd': None}, 'n': 3, 'b': True}),
    make(ZVOL),
    with_reqs(min_ram=1024, max_ram=1024),
    with_reqs(bootrom='uefi', brand='bhyve'),
    with_reqs(networks=[], ssh_key=True, brand='lx'),
    make(v=0),
    make(v=3),
]


@pytest.mark.parametrize('manifest', VALID)
def test_valid_edge_case(manifest):
    assert M.manifest_errors(manifest) == []
    assert M.validate_manifest(manifest) is manifest


def test_all_errors_are_collected():
    manifest = make(name='bad$', version='x' * 600, state='nope', bogus=1, disabled='yes',
                    nic_driver='virtio', requirements={'min_ram': 5, 'max_ram': 2, 'min_platform': {'7.0': '2011'}})
    manifest.pop('os')
    with pytest.raises(ManifestValidationError) as exc:
        M.validate_manifest(manifest)
    fields = [e['field'] for e in exc.value.errors]
    assert fields == sorted(fields)
    assert set(fields) == {'name', 'version', 'state', 'bogus', 'disabled', 'nic_driver', 'os',
                           'requirements.max_ram', 'requirements.min_platform'}
    for e in exc.value.errors:
        assert set(e) == {'field', 'code', 'message'}
        assert e['code'] in ('Invalid', 'MissingParameter')
    assert exc.value.details['errors'] == exc.value.errors
    assert str(exc.value).startswith('image %s: invalid manifest: ' % BASE['uuid'])


def test_two_bad_platform_entries_are_both_reported():
    errs = M.manifest_errors(with_reqs(min_platform={'7.0': '20110101T000000Z', '7.1': 'bogus'}))
    assert len(errs) == 2
    assert {e['field'] for e in errs} == {'requirements.min_platform'}
    assert any('7.0: 20110101T000000Z' in e['message'] for e in errs)
    assert any('7.1: bogus' in e['message'] for e in errs)


@pytest.mark.parametrize('mode, manifest, expected', [
    ('dc', make(), {'owner', 'disabled', 'activated', 'published_at', 'public', 'state', 'files'}),
    ('public', make(public=False), {'public'}),
    ('private', make(public='true'), {'public'}),
])
def test_server_modes(mode, manifest, expected):
    assert expected <= {f for f, dummy in fields_of(manifest, mode=mode)}


def test_server_mode_complete_manifest():
    manifest = make(owner=BASE['uuid'], disabled=False, activated=True, published_at='2018-04-09T08:25:52Z',
                    public=True, state='active', files=[{'sha1': 'a', 'size': 1, 'compression': 'gzip'}])
    assert M.manifest_errors(manifest, mode='public') == []
    assert fields_of(manifest, mode='private') == {('public', 'Invalid')}


def test_bad_mode_and_non_object():
    with pytest.raises(UsageError):
        M.validate_manifest(make(), mode='strict')
    with pytest.raises(InvalidManifestError):
        M.validate_manifest(['not', 'a', 'dict'])


def test_missing_jsonschema_raises_missing_library(monkeypatch):
    monkeypatch.setattr(M, 'HAS_JSONSCHEMA', False)
    with pytest.raises(MissingLibraryError) as exc:
        M.validate_manifest(make())
    assert exc.value.library == 'jsonschema'


# ---- v1 -> v2 upgrade

V1_UUID = '55330ab4-1f2a-11e2-9a43-3b2bf2e3cd9b'
CREATOR = '352971aa-31ba-496c-9ade-a379feaecd52'


def test_upgrade_v1_fixture_exactly():
    old = load('dsapi-v1-base64-1.8.1.json')
    pristine = copy.deepcopy(old)
    new = M.upgrade_manifest(old)
    assert old == pristine  # deep copy, input untouched
    assert new == {
        'v': 2,
        'uuid': V1_UUID,
        'owner': CREATOR,
        'name': 'base64',
        'version': '1.8.1',
        'type': 'zone-dataset',
        'os': 'smartos',
        'description': 'A 64-bit SmartOS image with just essential packages installed.',
        'published_at': '2012-10-25T22:28:00Z',
        'public': True,
        'disabled': False,
        'state': 'active',
        'urn': 'sdc:sdc:base64:1.8.1',
        'files': [{'sha1': '0ff5ef2d9b2d8cde0b5bb7e3b1b4d5bba8d1e0a7', 'size': 91585829, 'compression': 'bzip2'}],
        'requirements': {'networks': [{'name': 'net0', 'description': 'public'}]},
    }
    assert M.validate_manifest(new) is new


V1 = {'uuid': V1_UUID, 'creator_uuid': CREATOR, 'name': 'x', 'version': '1', 'type': 'zone-dataset', 'os': 'smartos'}


@pytest.mark.parametrize('old, expected', [
    # restricted_to_uuid -> private with an acl
    (dict(V1, restricted_to_uuid=BASE['uuid']), {'public': False, 'acl': [BASE['uuid']]}),
    (dict(V1, owner_uuid=BASE['uuid']), {'public': True}),
    # disabled -> state; JavaScript Boolean(): a non-empty string is true
    (dict(V1, disabled=True), {'disabled': True, 'state': 'disabled'}),
    (dict(V1, disabled=None), {'disabled': False, 'state': 'active'}),
    (dict(V1, disabled=0), {'disabled': False, 'state': 'active'}),
    (dict(V1, disabled='false'), {'disabled': True, 'state': 'disabled'}),
    # published_at from created_at, seconds added when missing
    (dict(V1, created_at='2012-10-25T22:28Z'), {'published_at': '2012-10-25T22:28:00Z'}),
    (dict(V1, published_at='2013-01-02T03:04Z', created_at='2012-10-25T22:28Z'), {'published_at': '2013-01-02T03:04:00Z'}),
    (dict(V1, published_at='2013-01-02T03:04:05Z'), {'published_at': '2013-01-02T03:04:05Z'}),
    # compression from the file extension
    (dict(V1, files=[{'sha1': 'a', 'size': 1, 'url': 'https://h/x/y.zfs.gz'}]), {'files': [{'sha1': 'a', 'size': 1, 'compression': 'gzip'}]}),
    (dict(V1, files=[{'sha1': 'a', 'size': 1, 'path': 'y.zfs.bz2'}]), {'files': [{'sha1': 'a', 'size': 1, 'compression': 'bzip2'}]}),
    (dict(V1, files=[{'sha1': 'a', 'size': 1, 'path': 'y.zfs'}]), {'files': [{'sha1': 'a', 'size': 1, 'compression': 'none'}]}),
    (dict(V1, files=[{'sha1': 'a', 'size': 1, 'path': 'y.zfs.xz'}]), {'files': [{'sha1': 'a', 'size': 1, 'compression': 'none'}]}),
    (dict(V1, files=[{'sha1': 'a', 'size': 1, 'path': 'y.gz', 'compression': 'xz'}]), {'files': [{'sha1': 'a', 'size': 1, 'compression': 'xz'}]}),
    # image_size becomes a number
    (dict(V1, image_size='10240'), {'image_size': 10240}),
])
def test_upgrade_v1_cases(old, expected):
    new = M.upgrade_manifest(old)
    assert new['v'] == 2
    assert new['owner'] == CREATOR
    for key in ('creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'creator_admin', 'restricted_to_uuid',
                'owner_uuid', 'platform_type', 'created_at', 'updated_at', '_url'):
        assert key not in new
    for key, value in expected.items():
        assert new[key] == value


def test_upgrade_drops_every_v1_only_key():
    old = dict(V1, vendor_uuid=CREATOR, creator_name='sdc', cloud_name='sdc', creator_admin=True,
               platform_type='smartos', created_at='2012-10-25T22:28Z', updated_at='2012-10-25T22:28Z', _url='x')
    new = M.upgrade_manifest(old)
    assert set(new) == {'v', 'uuid', 'owner', 'name', 'version', 'type', 'os', 'public', 'disabled', 'state', 'published_at'}


@pytest.mark.parametrize('manifest', [
    make(),
    make(v=3),
    make(v='2'),
    load('zvol-ubuntu-certified-18.04-20180808.json'),
])
def test_upgrade_v2_is_unchanged_copy(manifest):
    new = M.upgrade_manifest(manifest)
    assert new == manifest
    assert new is not manifest
    new['name'] = 'changed'
    assert manifest['name'] != 'changed'


@pytest.mark.parametrize('manifest, message', [
    (make(drop=['v']), 'manifest does not have a "v" field'),
    (make(v=0), 'manifest does not have a "v" field'),
    (make(v='x'), 'not a number'),
    (dict(V1, owner=BASE['uuid']), 'both "owner" and "creator_uuid"'),
    (dict(V1, uuid='BAD'), 'invalid "uuid"'),
    (dict(V1, restricted_to_uuid=BASE['uuid'], public=True), 'both "public" and "restricted_to_uuid"'),
    (make(v=1), 'creator_uuid'),
    ('not a dict', 'not an object'),
])
def test_upgrade_errors(manifest, message):
    with pytest.raises(InvalidManifestError) as exc:
        M.upgrade_manifest(manifest)
    assert message in str(exc.value)
    assert exc.value.code == 'InvalidManifest'


# ---- min/max platform

MIN = {'7.0': '20160225T122859Z'}
MAX = {'7.0': '20200101T000000Z'}


@pytest.mark.parametrize('reqs, sysinfo, code', [
    ({'min_platform': MIN}, {'SDC Version': '7.0', 'Live Image': '20160101T000000Z'}, 'MinPlatform'),
    ({'min_platform': MIN}, {'SDC Version': '7.0', 'Live Image': '20160225T122859Z'}, None),
    ({'min_platform': MIN}, {'SDC Version': '7.0', 'Live Image': '20240101T000000Z'}, None),
    # no "SDC Version": 6.5, lower than the lowest key
    ({'min_platform': MIN}, {'Live Image': '20240101T000000Z'}, 'MinPlatform'),
    ({'min_platform': MIN}, {'SDC Version': '', 'Live Image': '20240101T000000Z'}, 'MinPlatform'),
    # a version that is not a key is compared with the lowest key
    ({'min_platform': MIN}, {'SDC Version': '7.1', 'Live Image': '20100101T000000Z'}, None),
    ({'min_platform': {'7.1': '20160225T122859Z', '7.0': '20150101T000000Z'}},
     {'SDC Version': '6.9', 'Live Image': '20240101T000000Z'}, 'MinPlatform'),
    # plain string comparison: "10.0" < "7.0"
    ({'min_platform': MIN}, {'SDC Version': '10.0', 'Live Image': '20240101T000000Z'}, 'MinPlatform'),
    ({'max_platform': MAX}, {'SDC Version': '7.0', 'Live Image': '20210101T000000Z'}, 'MaxPlatform'),
    ({'max_platform': MAX}, {'SDC Version': '7.0', 'Live Image': '20200101T000000Z'}, None),
    ({'max_platform': MAX}, {'SDC Version': '7.0', 'Live Image': '20190101T000000Z'}, None),
    # a version that is not a key is compared with the highest key
    ({'max_platform': MAX}, {'SDC Version': '7.1', 'Live Image': '20100101T000000Z'}, 'MaxPlatform'),
    ({'max_platform': MAX}, {'SDC Version': '6.5', 'Live Image': '20300101T000000Z'}, None),
    ({'max_platform': MAX}, {'Live Image': '20300101T000000Z'}, None),
    ({'min_platform': MIN, 'max_platform': MAX}, {'SDC Version': '7.0', 'Live Image': '20180101T000000Z'}, None),
    ({'min_platform': MIN, 'max_platform': MAX}, {'SDC Version': '7.0', 'Live Image': '20150101T000000Z'}, 'MinPlatform'),
    ({'min_platform': MIN, 'max_platform': MAX}, {'SDC Version': '7.0', 'Live Image': '20250101T000000Z'}, 'MaxPlatform'),
    # no requirements at all
    ({}, {'SDC Version': '7.0', 'Live Image': '20160101T000000Z'}, None),
    ({'min_platform': {}}, {'SDC Version': '1.0'}, None),
])
def test_check_platform(reqs, sysinfo, code):
    manifest = make(requirements=reqs)
    if code is None:
        assert M.check_platform(manifest, sysinfo) is None
    else:
        with pytest.raises(PlatformError) as exc:
            M.check_platform(manifest, sysinfo)
        assert exc.value.code == code


def test_check_platform_message():
    with pytest.raises(PlatformError) as exc:
        M.check_platform(make(requirements={'min_platform': MIN}), {'SDC Version': '7.0', 'Live Image': '20160101T000000Z'})
    assert str(exc.value) == ('current platform version, 7.0/20160101T000000Z, does not satisfy '
                              'requirements.min_platform={"7.0":"20160225T122859Z"}')
    assert exc.value.details['platform_version'] == '7.0'
    with pytest.raises(PlatformError) as exc:
        M.check_platform(make(requirements={'max_platform': MAX}), {'SDC Version': '7.1', 'Live Image': '20100101T000000Z'})
    assert 'requirements.max_platform=' in str(exc.value)
    assert exc.value.code == 'MaxPlatform'


def test_check_platform_sample_manifest():
    lx = load('lx-dataset-ubuntu-16.04-20160601.json')
    M.check_platform(lx, {'SDC Version': '7.0', 'Live Image': '20240301T000000Z'})
    with pytest.raises(PlatformError):
        M.check_platform(lx, {'SDC Version': '7.0', 'Live Image': '20150301T000000Z'})


# ---- UUIDs

@pytest.mark.parametrize('value, ok', [
    ('9d91e334-3bcf-11e8-bb0b-e7b49eb01e38', True),
    ('00000000-0000-0000-0000-000000000000', True),
    ('9D91E334-3BCF-11E8-BB0B-E7B49EB01E38', False),
    ('9d91e334-3bcf-11e8-bb0b-e7b49eb01e3', False),
    ('9d91e334-3bcf-11e8-bb0b-e7b49eb01e38\n', False),
    (' 9d91e334-3bcf-11e8-bb0b-e7b49eb01e38', False),
    ('9d91e3343bcf11e8bb0be7b49eb01e38', False),
    ('../../etc/passwd', False),
    ('zones/9d91e334-3bcf-11e8-bb0b-e7b49eb01e38', False),
    ('', False),
    (None, False),
    (12, False),
])
def test_uuid(value, ok):
    assert M.is_uuid(value) is ok
    if ok:
        assert M.validate_uuid(value) == value
    else:
        with pytest.raises(InvalidUUIDError) as exc:
            M.validate_uuid(value, field='origin')
        assert exc.value.details['field'] == 'origin'
        assert exc.value.code == 'InvalidUUID'
        assert 'invalid uuid' in str(exc.value)


# ---- helpers

@pytest.mark.parametrize('value, expected', [
    ('2018-04-09T08:25:52Z', datetime.datetime(2018, 4, 9, 8, 25, 52)),
    ('2026-11-26T22:10:17.633Z', datetime.datetime(2026, 11, 26, 22, 10, 17, 633000)),
    ('2018-04-09', None),
    (None, None),
])
def test_parse_published_at(value, expected):
    assert M.parse_published_at(value) == expected


def test_published_at_key_orders_with_and_without_milliseconds():
    a = make(published_at='2018-04-09T08:25:52Z')
    b = make(published_at='2018-04-09T08:25:52.001Z')
    never = make()
    assert sorted([b, never, a], key=M.published_at_key) == [never, a, b]


def test_file_info():
    assert M.file_info(make(files=[])) is None
    assert M.file_info(make(files='x')) is None
    assert M.file_info(make(files=[{'sha1': 'a', 'size': 1, 'compression': 'xz'}]))['compression'] == 'xz'


# ---- the schema document

def test_schema_file_matches_schema_dict():
    with open(os.path.join(REPO_ROOT, 'docs', 'imgmanifest-v2.schema.json')) as f:
        assert json.load(f) == SCHEMA


def test_schema_is_a_valid_draft7_schema():
    jsonschema = pytest.importorskip('jsonschema')
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA['additionalProperties'] is False
    assert SCHEMA['properties']['name']['maxLength'] == 1024
    assert SCHEMA['properties']['version']['maxLength'] == 512
    assert SCHEMA['properties']['description']['maxLength'] == 10240
    assert SCHEMA['properties']['files']['maxItems'] == 1
