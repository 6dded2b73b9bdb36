# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_installed.py.

The ``imgadm list`` heuristic (imgadm-behaviour.md §3.1), ``not_an_image``
(the same heuristic for one dataset, before anything is destroyed or
changed) and ``vacuum``'s iterative plan (§4.3) as parametrize tables;
``InstalledImages`` over a scripted ``zfs`` runner.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import CommandError, PoolNotFoundError
from ansible_collections.smartos.imgadm.plugins.module_utils._installed import (
    VMADM_FS_NAME_RE,
    VMADM_IMG_NAME_RE,
    InstalledImages,
    not_an_image,
    parse_image_listing,
    vacuum_plan,
    zone_roots,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import CliBackend, ZfsRunner

IMG = '11111111-1111-4111-8111-111111111111'
INC = '22222222-2222-4222-8222-222222222222'
INC2 = '33333333-3333-4333-8333-333333333333'
VM = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
VM2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'
OTHER = '44444444-4444-4444-8444-444444444444'


# ------------------------------------------------------------------ zone_roots

@pytest.mark.parametrize('output, roots', [
    ('', {}),
    ('0:global:running:/::liveimg:shared:0\n', {'/': 'global'}),
    ('0:global:running:/::liveimg:shared:0\n'
     '3:vm1:running:/zones/%s:%s:joyent-minimal:excl:1\n'
     '-:%s:installed:/zones/%s:%s:bhyve:excl:2\n' % (VM, VM, VM2, VM2, VM2),
     {'/': 'global', '/zones/' + VM: 'vm1', '/zones/' + VM2: VM2}),
    # too few fields or an empty zonepath: nothing
    ('0:global:running\n1:x:installed::uuid:joyent:excl:3\n', {}),
    # blank lines are harmless
    ('\n\n-:z:configured:/zones/z:u:joyent:excl:4\n', {'/zones/z': 'z'}),
])
def test_zone_roots(output, roots):
    assert zone_roots(output) == roots


# ------------------------------------------------------------------ name patterns

@pytest.mark.parametrize('name, fs, img', [
    ('zones/' + IMG, True, True),
    ('zones/%s-disk0' % VM, True, False),
    ('zones/%s-disk12' % VM, True, False),
    ('zones/%s/disk0' % VM, True, False),
    ('zones/%s-partial' % IMG, False, False),
    ('zones/%s@final' % IMG, False, False),
    ('zones/%s-diskX' % VM, False, False),
    ('zones/foo', False, False),
    ('zones/sub/' + IMG, False, False),
    ('zones/' + VM.upper(), False, False),  # UUID_RE is lowercase only
    ('zones2/' + IMG, True, True),  # digits in pool names: a documented difference
    ('my.pool_x-1/' + IMG, True, True),
    ('2zones/' + IMG, False, False),  # a pool name starts with a letter
])
def test_vmadm_name_patterns(name, fs, img):
    assert bool(VMADM_FS_NAME_RE.match(name)) is fs
    assert bool(VMADM_IMG_NAME_RE.match(name)) is img


# ------------------------------------------------------------------ parse_image_listing

def row(name, origin='-', mountpoint=None, ignore='-'):
    if mountpoint is None:
        mountpoint = '/' + name if '@' not in name else '-'
    return (name, origin, mountpoint, ignore)


ROOTS = {'/': 'global', '/zones/' + VM: VM}
BASE_ROWS = [
    row('zones'),
    row('zones/' + IMG),
    row('zones/%s@final' % IMG),
]


@pytest.mark.parametrize('rows, roots, expected', [
    pytest.param(BASE_ROWS, ROOTS, {'zones/' + IMG: []}, id='one-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG)], ROOTS,
                 {'zones/' + IMG: ['zones/' + VM]}, id='zone-vm-is-a-clone-not-an-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG)], {},
                 {'zones/' + IMG: ['zones/' + VM]}, id='clone-of-final-without-own-final-is-no-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG), row('zones/%s@final' % VM)], {},
                 {'zones/' + IMG: ['zones/' + VM], 'zones/' + VM: []}, id='clone-with-own-final-is-an-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG), row('zones/%s@final' % VM)], ROOTS,
                 {'zones/' + IMG: ['zones/' + VM]}, id='zone-root-is-never-an-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@snap1' % IMG)], {},
                 {'zones/' + IMG: ['zones/' + VM], 'zones/' + VM: []}, id='clone-of-other-snapshot-is-an-image'),
    pytest.param(BASE_ROWS + [row('zones/%s-disk0' % VM, 'zones/%s@final' % IMG, '-'),
                              row('zones/%s/disk0' % VM2, 'zones/%s@final' % IMG, '-'),
                              row('zones/%s-disk1' % VM, 'zones/%s@final' % IMG, '-')], ROOTS,
                 {'zones/' + IMG: ['zones/%s-disk0' % VM, 'zones/%s-disk1' % VM, 'zones/%s/disk0' % VM2]},
                 id='kvm-and-bhyve-disks-count'),
    pytest.param(BASE_ROWS + [row('zones/foo', 'zones/%s@final' % IMG),
                              row('zones/%s-partial' % INC, 'zones/%s@final' % IMG)], ROOTS,
                 {'zones/' + IMG: ['zones/%s-partial' % INC, 'zones/foo']},
                 id='every-clone-counts-unlike-the-reference'),
    pytest.param(BASE_ROWS + [row('zones/' + INC, 'zones/%s@final' % IMG), row('zones/%s@final' % INC),
                              row('zones/' + INC2, 'zones/%s@final' % INC), row('zones/%s@final' % INC2)], ROOTS,
                 {'zones/' + IMG: ['zones/' + INC], 'zones/' + INC: ['zones/' + INC2], 'zones/' + INC2: []},
                 id='incremental-chain'),
    pytest.param([row('zones/' + IMG, mountpoint='-'), row('zones/%s@final' % IMG)], ROOTS,
                 {'zones/' + IMG: []}, id='zvol-image'),
    pytest.param([row('zones/%s-partial' % IMG), row('zones/%s-partial@final' % IMG)], ROOTS, {}, id='partial-is-no-image'),
    pytest.param([row('zones/' + VM.upper()), row('zones/%s@final' % VM.upper())], ROOTS, {}, id='uppercase-uuid'),
    pytest.param([row('zones/sub'), row('zones/sub/' + IMG), row('zones/sub/%s@final' % IMG)], ROOTS, {}, id='nested'),
    pytest.param([row('zones2/' + IMG), row('zones2/%s@final' % IMG),
                  row('zones2/' + VM, 'zones2/%s@final' % IMG, '/zones2/' + VM)], {'/zones2/' + VM: VM},
                 {'zones2/' + IMG: ['zones2/' + VM]}, id='digits-in-pool-name'),
    pytest.param([row('zones/' + IMG), row('zones/%s@final' % IMG), row('data/' + OTHER), row('data/%s@final' % OTHER),
                  row('data/' + VM, 'zones/%s@final' % IMG)], {},
                 {'zones/' + IMG: ['data/' + VM], 'data/' + OTHER: []}, id='all-pools-cross-pool-clone'),
])
def test_parse_image_listing(rows, roots, expected):
    found = parse_image_listing(rows, roots)
    assert dict((name, info['clones']) for name, info in found.items()) == expected
    for name, info in found.items():
        assert '%s/%s' % (info['pool'], info['uuid']) == name


def test_parse_image_listing_keeps_listing_order_and_origin():
    rows = [row('zones/' + INC, 'zones/%s@final' % IMG), row('zones/%s@final' % INC),
            row('zones/' + IMG), row('zones/%s@final' % IMG)]
    found = parse_image_listing(rows, {})
    assert list(found) == ['zones/' + INC, 'zones/' + IMG]
    assert found['zones/' + INC]['origin'] == 'zones/%s@final' % IMG
    assert found['zones/' + IMG]['origin'] is None
    assert found['zones/' + INC] == {'pool': 'zones', 'uuid': INC, 'origin': 'zones/%s@final' % IMG, 'has_final': True,
                                     'clones': [], 'clone_names': []}
    assert found['zones/' + IMG]['clone_names'] == ['zones/' + INC]


def test_parse_image_listing_has_final():
    rows = [row('zones/' + IMG), row('zones/%s@final' % IMG), row('zones/' + OTHER), row('zones/%s@snap' % OTHER),
            row('zones/' + INC), row('zones/%s-partial@final' % INC)]
    found = parse_image_listing(rows, {})
    assert [(info['uuid'], info['has_final']) for info in found.values()] == [(IMG, True), (OTHER, False), (INC, False)]


@pytest.mark.parametrize('ignore, listed', [
    ('-', True),
    ('', True),
    ('false', True),
    ('no', True),
    ('true', False),
    ('yes', False),
    ('on', True),  # not a boolFromString value: warning, counts as false
    ('1', True),
    ('TRUE', True),  # boolFromString is case-sensitive: invalid, counts as false
    ('Yes', True),
])
def test_parse_image_listing_imgadm_ignore(ignore, listed):
    rows = [row('zones/' + IMG, ignore=ignore), row('zones/%s@final' % IMG)]
    assert (('zones/' + IMG) in parse_image_listing(rows, {})) is listed


def test_ignored_image_still_counts_as_a_user():
    # an ignored (or non-image) dataset that is a vmadm name still keeps its origin in use
    rows = BASE_ROWS + [row('zones/' + INC, 'zones/%s@final' % IMG, ignore='true'), row('zones/%s@final' % INC)]
    found = parse_image_listing(rows, {})
    assert list(found) == ['zones/' + IMG]
    assert found['zones/' + IMG]['clones'] == ['zones/' + INC]


# ------------------------------------------------------------------ not_an_image

def own(name, origin='-', mountpoint=None, ignore='-', final=True, snapshots=()):
    """Listing rows of ``name``: itself, its @final (when ``final``) and other ``snapshots``."""
    rows = [row(name, origin, mountpoint, ignore)]
    rows += [row('%s@%s' % (name, s)) for s in snapshots]
    if final:
        rows.append(row(name + '@final'))
    return rows


NAI_CASES = [
    # (name, rows, roots, has_record, why-prefix or None for an image)
    pytest.param('zones/' + IMG, own('zones/' + IMG), {}, True, None, id='image-record-and-final'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, final=False), {}, True, None, id='record-only'),
    pytest.param('zones/' + IMG, own('zones/' + IMG), {}, False, None, id='final-only'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, final=False, snapshots=('s1',)), {}, False,
                 'it has neither a database record nor an @final snapshot', id='no-record-no-final'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, final=False), {}, False,
                 'it has neither a database record nor an @final snapshot', id='stray-zfs-create'),
    # a VM: its zone root
    pytest.param('zones/' + VM, own('zones/' + VM, 'zones/%s@final' % IMG), {'/zones/' + VM: 'web01'}, True,
                 "it is the zone root of zone web01 (zoneadm list), a VM's dataset", id='zone-root'),
    pytest.param('zones/' + VM, own('zones/' + VM), {'/': 'global', '/zones/' + VM: VM}, True,
                 'it is the zone root of zone %s' % VM, id='zone-root-even-with-record-and-final'),
    pytest.param('zones/' + VM, own('zones/' + VM, mountpoint='/other/' + VM), {'/zones/' + VM: VM}, False, None,
                 id='zonepath-elsewhere-is-no-zone-root'),
    # a clone of an image's @final without an @final of its own: a VM (or its disk)
    pytest.param('zones/' + VM, own('zones/' + VM, 'zones/%s@final' % IMG, final=False), {}, True,
                 "it is a clone of zones/%s@final without an @final snapshot of its own (a VM's dataset)" % IMG,
                 id='clone-of-final-without-own-final'),
    pytest.param('zones/' + INC, own('zones/' + INC, 'zones/%s@final' % IMG), {}, True, None,
                 id='incremental-image-clone-with-own-final'),
    pytest.param('zones/' + VM, own('zones/' + VM, 'zones/%s@snap1' % IMG, final=False), {}, True, None,
                 id='clone-of-other-snapshot-with-record'),
    # imgadm:ignore, the reference's boolFromString: exactly true/yes
    pytest.param('zones/' + IMG, own('zones/' + IMG, ignore='true'), {}, True, 'it is marked imgadm:ignore=true',
                 id='ignore-true'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, ignore='yes'), {}, True, 'it is marked imgadm:ignore=yes',
                 id='ignore-yes'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, ignore='TRUE'), {}, True, None, id='ignore-TRUE-is-false'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, ignore='no'), {}, True, None, id='ignore-no'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, ignore='-'), {}, True, None, id='ignore-unset'),
    # a zvol image: mountpoint "-", never a zone root
    pytest.param('zones/' + IMG, own('zones/' + IMG, mountpoint='-'), {'/': 'global'}, False, None, id='zvol-final'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, mountpoint='-', final=False), {}, True, None, id='zvol-record'),
    pytest.param('zones/' + IMG, own('zones/' + IMG, mountpoint='-', final=False), {}, False,
                 'it has neither a database record nor an @final snapshot', id='zvol-neither'),
    # names
    pytest.param('zones/foo', own('zones/foo'), {}, True, 'its name is not POOL/UUID', id='not-a-uuid'),
    pytest.param('zones/%s-partial' % IMG, own('zones/%s-partial' % IMG), {}, True, 'its name is not POOL/UUID',
                 id='partial'),
    pytest.param('zones/%s-disk0' % VM, own('zones/%s-disk0' % VM), {}, True, 'its name is not POOL/UUID',
                 id='kvm-disk'),
    pytest.param('zones/sub/' + IMG, own('zones/sub/' + IMG), {}, True, 'its name is not POOL/UUID', id='nested'),
    pytest.param('zones/' + VM.upper(), own('zones/' + VM.upper()), {}, True, 'its name is not POOL/UUID',
                 id='uppercase'),
    pytest.param('zones2/' + IMG, own('zones2/' + IMG), {}, False, None, id='pool-with-digits'),
    pytest.param('my.pool_x-1/' + IMG, own('my.pool_x-1/' + IMG), {}, False, None, id='pool-with-dot-underscore-dash'),
    # the listing does not have it (gone meanwhile)
    pytest.param('zones/' + IMG, [row('zones/%s@final' % IMG)], {}, True, 'it is not listed by zfs', id='not-listed'),
    # an @final of another dataset does not count
    pytest.param('zones/' + IMG, own('zones/' + IMG, final=False) + [row('zones/%s@final' % OTHER)], {}, False,
                 'it has neither a database record nor an @final snapshot', id='others-final'),
]


@pytest.mark.parametrize('name, rows, roots, has_record, why', NAI_CASES)
def test_not_an_image(name, rows, roots, has_record, why):
    got = not_an_image(name, rows, roots, has_record)
    if why is None:
        assert got is None
    else:
        assert got is not None and got.startswith(why), got


@pytest.mark.parametrize('name, rows, roots, has_record, why', NAI_CASES)
def test_not_an_image_agrees_with_the_listing(name, rows, roots, has_record, why):
    """Whatever ``imgadm list`` lists, ``not_an_image`` accepts (given a record or @final) and the reverse."""
    if why == 'it is not listed by zfs':
        return
    listed = name in parse_image_listing(rows, roots)
    if why is None:
        assert listed
    elif why != 'it has neither a database record nor an @final snapshot':
        assert not listed


# ------------------------------------------------------------------ vacuum_plan

def img(uuid, clones=(), name=None, version=None, pool='zones', has_record=True, has_final=True):
    manifest = OrderedDict([('uuid', uuid)])
    if name is not None:
        manifest['name'] = name
    if version is not None:
        manifest['version'] = version
    return dict(dataset='%s/%s' % (pool, uuid), pool=pool, uuid=uuid, clones=list(clones), has_record=has_record,
                has_final=has_final, record=OrderedDict([('manifest', manifest), ('zpool', pool)]))


def chain():
    """base <- inc <- inc2, nothing else uses them."""
    return [img(IMG, ['zones/' + INC], 'base', '1.0'), img(INC, ['zones/' + INC2], 'inc', '1.0'),
            img(INC2, [], 'inc', '2.0')]


@pytest.mark.parametrize('images, keep, expected', [
    pytest.param([], (), [], id='empty'),
    pytest.param([img(IMG)], (), [IMG], id='one-unused'),
    pytest.param([img(IMG, ['zones/' + VM])], (), [], id='used-by-vm'),
    pytest.param([img(IMG, ['zones/%s-disk0' % VM])], (), [], id='used-by-kvm-disk'),
    pytest.param(chain(), (), [INC2, INC, IMG], id='chain-leaf-first'),
    pytest.param(chain()[:2] + [img(INC2, ['zones/' + VM], 'inc', '2.0')], (), [], id='chain-used-at-top'),
    pytest.param([img(IMG, ['zones/' + INC, 'zones/' + VM], 'base', '1.0'), img(INC, [], 'inc', '1.0')], (), [INC],
                 id='sibling-vm-keeps-base'),
    pytest.param(chain(), (INC2,), [], id='keep-top-by-uuid-keeps-its-origins'),
    pytest.param(chain(), (IMG,), [INC2, INC], id='keep-base-by-uuid'),
    pytest.param(chain(), ('inc',), [], id='keep-by-name'),
    pytest.param(chain(), ('inc@2.0',), [], id='keep-by-name-at-version'),
    pytest.param(chain(), ('inc@1.0',), [INC2], id='keep-middle-by-name-at-version'),
    pytest.param(chain(), ('inc@3.0', 'base@2.0', OTHER), [INC2, INC, IMG], id='keep-nothing-matching'),
    pytest.param([img(INC2), img(IMG), img(INC)], (), [IMG, INC, INC2], id='independent-sorted-by-dataset'),
    pytest.param([img(IMG, ['zones/' + INC]), img(INC, ['zones/' + INC2]), img(INC2, ['zones/' + VM]), img(OTHER)], (),
                 [OTHER], id='only-the-unused-one'),
    # never destroyed: what has neither a record nor an @final is not proven to be an image
    pytest.param([img(IMG, has_record=False, has_final=False)], (), [], id='stray-no-record-no-final'),
    pytest.param([img(IMG, has_record=True, has_final=False)], (), [IMG], id='record-only'),
    pytest.param([img(IMG, has_record=False, has_final=True)], (), [IMG], id='final-only'),
    pytest.param([img(IMG, has_record=False, has_final=False), img(OTHER)], (), [OTHER], id='stray-beside-an-unused'),
    pytest.param([img(IMG, ['zones/' + INC]), img(INC, has_record=False, has_final=False)], (), [],
                 id='stray-clone-keeps-its-origin'),
    pytest.param([img(IMG, ['zones/' + INC]), img(INC, ['zones/' + INC2]), img(INC2, has_record=False, has_final=False)],
                 (), [], id='stray-top-keeps-the-chain'),
])
def test_vacuum_plan(images, keep, expected):
    assert [i['uuid'] for i in vacuum_plan(images, keep)] == expected


def test_vacuum_plan_does_not_mutate_its_input():
    images = chain()
    before = [dict(i, clones=list(i['clones'])) for i in images]
    vacuum_plan(images, ())
    assert images == before


# ------------------------------------------------------------------ InstalledImages

class FakeRunCommand:
    """``run_command`` answering ``zfs`` listing commands from a table."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
        self.calls.append(list(args))
        key = ' '.join(args[1:])
        for prefix, answer in self.answers:
            if key.startswith(prefix):
                return answer
        raise AssertionError('unexpected command %r' % (args,))


def installed(tmp_path, answers, zoneadm=(0, '0:global:running:/::liveimg:shared:0\n', '')):
    runner = ZfsRunner(run_command=FakeRunCommand(answers), zfs_bin='zfs')
    return InstalledImages(CliBackend(runner), ImageDatabase(str(tmp_path)), run_zoneadm=lambda: zoneadm), runner


LISTING = '\n'.join('\t'.join(r) for r in [
    row('zones'), row('zones/' + IMG), row('zones/%s@final' % IMG),
    row('zones/' + VM, 'zones/%s@final' % IMG, '/zones/' + VM), row('zones/' + OTHER), row('zones/%s@final' % OTHER),
]) + '\n'


def test_installed_list_uses_zoneadm_and_db(tmp_path):
    db = ImageDatabase(str(tmp_path))
    db.write('zones', IMG, OrderedDict([('v', 2), ('uuid', IMG), ('name', 'base')]), source='http://src')
    inst, runner = installed(tmp_path, [('list -t filesystem,volume,snapshot', (0, LISTING, ''))],
                             zoneadm=(0, '1:%s:running:/zones/%s:%s:joyent:excl:1\n' % (VM, VM, VM), ''))
    result = inst.list('zones')
    assert runner.run_command.calls == [
        ['zfs', 'list', '-t', 'filesystem,volume,snapshot', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore', '-r', 'zones']]
    assert [(i['uuid'], i['clones'], i['has_record']) for i in result] == [(IMG, ['zones/' + VM], True), (OTHER, [], False)]
    assert result[0]['record']['source'] == 'http://src'
    assert result[0]['dataset'] == 'zones/' + IMG
    # no DB file: the reference's minimal record
    assert result[1]['record'] == OrderedDict([('manifest', OrderedDict([('uuid', OTHER)])), ('zpool', 'zones')])


def test_installed_list_zoneadm_failure_is_a_command_error(tmp_path):
    inst, dummy = installed(tmp_path, [], zoneadm=(1, '', 'zoneadm: not allowed\n'))
    with pytest.raises(CommandError) as exc:
        inst.list('zones')
    assert 'zoneadm exited 1: zoneadm: not allowed' in str(exc.value)


def test_installed_get_and_is_installed(tmp_path):
    db = ImageDatabase(str(tmp_path))
    db.write('zones', IMG, OrderedDict([('uuid', IMG), ('name', 'base')]), source='http://src')
    answers = [
        ('list -H -o name zones/' + IMG, (0, 'zones/%s\n' % IMG, '')),
        ('list -H -o name zones/' + OTHER, (1, '', "cannot open 'zones/%s': dataset does not exist\n" % OTHER)),
    ]
    inst, dummy = installed(tmp_path, answers)
    assert inst.is_installed('zones', IMG) is True
    assert inst.is_installed('zones', OTHER) is False
    assert inst.get('zones', OTHER) is None
    rec = inst.get('zones', IMG)
    assert list(rec) == ['manifest', 'zpool', 'source']


# ------------------------------------------------------------------ InstalledImages.examine

def examiner(tmp_path, answers, zoneadm_output):
    zoneadm_calls = []

    def run_zoneadm():
        zoneadm_calls.append(1)
        return 0, zoneadm_output, ''

    runner = ZfsRunner(run_command=FakeRunCommand(answers), zfs_bin='zfs')
    return InstalledImages(CliBackend(runner), ImageDatabase(str(tmp_path)), run_zoneadm=run_zoneadm), runner, zoneadm_calls


def test_examine_says_what_each_dataset_is(tmp_path):
    ImageDatabase(str(tmp_path)).write('zones', VM, OrderedDict([('uuid', VM), ('name', 'vm-record')]))
    present = ['zones/' + IMG, 'zones/' + VM, 'zones/' + INC]
    listing = '\n'.join('\t'.join(r) for r in [
        row('zones/' + IMG), row('zones/%s@final' % IMG),
        row('zones/' + VM, 'zones/%s@final' % IMG), row('zones/%s@final' % VM),  # a VM with a record and an @final
        row('zones/' + INC), row('zones/%s@s1' % INC),  # a stray dataset with a snapshot, no record, no @final
        row('zones/%s/child' % INC),  # -d 1 also lists children: not the dataset's own rows
    ]) + '\n'
    answers = [
        ('list -H -o name zones ', (1, 'zones\n' + '\n'.join(present) + '\n',
                                    "cannot open 'zones/%s': dataset does not exist\n" % OTHER)),
        ('list -H -t filesystem,volume,snapshot', (0, listing, '')),
    ]
    inst, runner, zoneadm_calls = examiner(tmp_path, answers, '1:web01:running:/zones/%s:%s:joyent:excl:1\n' % (VM, VM))
    result = inst.examine('zones', [IMG, VM, OTHER, INC])
    assert result == {
        IMG: 'image',
        VM: "it is the zone root of zone web01 (zoneadm list), a VM's dataset",
        OTHER: None,
        INC: 'it has neither a database record nor an @final snapshot',
    }
    assert runner.run_command.calls == [
        # the pool too, in the same question
        ['zfs', 'list', '-H', '-o', 'name', 'zones', 'zones/' + IMG, 'zones/' + VM, 'zones/' + OTHER, 'zones/' + INC],
        ['zfs', 'list', '-H', '-t', 'filesystem,volume,snapshot', '-o', 'name,origin,mountpoint,imgadm:ignore', '-d', '1']
        + present,
    ]
    assert zoneadm_calls == [1]


def test_examine_with_nothing_there_asks_only_once(tmp_path):
    answers = [('list -H -o name zones', (1, 'zones\n', "cannot open 'zones/%s': dataset does not exist\n" % IMG))]
    inst, runner, zoneadm_calls = examiner(tmp_path, answers, '')
    assert inst.examine('zones', [IMG]) == {IMG: None}
    assert inst.examine('zones', []) == {}
    assert [c[5:] for c in runner.run_command.calls] == [['zones', 'zones/' + IMG], ['zones']]
    assert zoneadm_calls == []


@pytest.mark.parametrize('uuids', [[], [IMG]])
def test_examine_without_the_pool_is_pool_not_found(tmp_path, uuids):
    answers = [('list -H -o name nopool', (1, '', "cannot open 'nopool': dataset does not exist\n"))]
    inst, runner, zoneadm_calls = examiner(tmp_path, answers, '')
    with pytest.raises(PoolNotFoundError) as exc:
        inst.examine('nopool', uuids)
    assert exc.value.code == 'PoolNotFound' and exc.value.details == {'pool': 'nopool'}
    assert str(exc.value).startswith('pool "nopool" does not exist')
    assert len(runner.run_command.calls) == 1 and zoneadm_calls == []


# ------------------------------------------------------------------ Inventory (imgadm list -j, get -r, ancestry)

def inventory_listing(pool='zones'):
    """An image, an incremental on it, a VM, a disk clone, a non-vmadm clone, a zone root with @final, a child dataset."""
    p = pool + '/'
    return [
        row(pool),
        row(p + IMG), row(p + IMG + '@final'), row(p + IMG + '@manual'),
        row(p + IMG + '/child'), row(p + IMG + '/child@snap'),
        row(p + INC, p + IMG + '@final'), row(p + INC + '@final'),
        row(p + VM, p + IMG + '@final', '/zones/' + VM),
        row(p + VM2 + '-disk0', p + INC + '@final', '-'),
        row(p + 'foo', p + IMG + '@manual'),
        row(p + INC2, p + IMG + '@final', '/zones/' + INC2), row(p + INC2 + '@final'),  # a zone root with an @final
        row(p + OTHER + '-partial'), row(p + OTHER + '-partial@final'),
        row(p + 'imgadm-partial', '-', 'none'), row(p + 'imgadm-partial/' + OTHER), row(p + 'imgadm-partial/' + OTHER + '@final'),
    ]


def make_inventory(tmp_path, rows, zones, pools=None):
    listing = '\n'.join('\t'.join(r) for r in rows) + '\n'
    zlines = ''.join('%d:%s:running:%s:%s:joyent:excl:%d\n' % (i, z, path, z, i) for i, (z, path) in enumerate(zones, 1))
    inst, runner = installed(tmp_path, [('list -t filesystem,volume,snapshot', (0, listing, ''))], zoneadm=(0, zlines, ''))
    return inst.inventory(pools), runner


def test_inventory_entries_are_imgadm_list_j(tmp_path):
    db = ImageDatabase(str(tmp_path))
    db.write('zones', IMG, OrderedDict([('v', 2), ('uuid', IMG), ('name', 'base')]), source='http://src')
    db.write('zones', INC, OrderedDict([('v', 2), ('uuid', INC), ('name', 'inc'), ('origin', IMG)]))
    inv, runner = make_inventory(tmp_path, inventory_listing(), [(VM, '/zones/' + VM), (INC2, '/zones/' + INC2)])
    # one zfs list for everything (no pool given: all pools)
    assert runner.run_command.calls == [
        ['zfs', 'list', '-t', 'filesystem,volume,snapshot', '-H', '-o', 'name,origin,mountpoint,imgadm:ignore']]
    entries = inv.entries()
    assert [e['manifest']['uuid'] for e in entries] == [IMG, INC]
    assert entries[0] == OrderedDict([
        ('manifest', OrderedDict([('v', 2), ('uuid', IMG), ('name', 'base')])), ('zpool', 'zones'), ('source', 'http://src'),
        ('cloneNames', ['zones/' + INC, 'zones/' + VM, 'zones/' + INC2]),  # vmadm names only, listing order
        ('clones', 3)])
    assert list(entries[0]) == ['manifest', 'zpool', 'source', 'cloneNames', 'clones']  # the reference's key order
    assert entries[1]['cloneNames'] == ['zones/%s-disk0' % VM2] and entries[1]['clones'] == 1
    assert 'source' not in entries[1]


def test_inventory_get_r_children_and_not_images(tmp_path):
    inv, dummy = make_inventory(tmp_path, inventory_listing(), [(VM, '/zones/' + VM), (INC2, '/zones/' + INC2)])
    rec = inv.get('zones', IMG, children=True)
    assert rec['manifest'] == {'uuid': IMG} and rec['zpool'] == 'zones'  # no record: the minimal one
    # every line of `zfs list -t all -r POOL/UUID` after the first; every dataset whose origin is one of its snapshots
    assert rec['children'] == {
        'snapshots': ['zones/%s@final' % IMG, 'zones/%s@manual' % IMG, 'zones/%s/child' % IMG, 'zones/%s/child@snap' % IMG],
        'clones': ['zones/' + INC, 'zones/' + VM, 'zones/foo', 'zones/' + INC2],
    }
    assert 'children' not in inv.get('zones', IMG)
    assert inv.get('zones', VM) is None
    assert 'zone root' in inv.why_not('zones', VM)
    assert 'zone root' in inv.why_not('zones', INC2)
    assert inv.why_not('zones', IMG) is None  # an image
    assert inv.why_not('zones', OTHER) is None and inv.get('zones', OTHER) is None  # only -partial names: not there
    assert inv.why_not('zones2', IMG) is None


def test_inventory_ancestry(tmp_path):
    db = ImageDatabase(str(tmp_path))
    db.write('zones', INC, OrderedDict([('v', 2), ('uuid', INC), ('origin', IMG)]))
    db.write('zones', INC2, OrderedDict([('v', 2), ('uuid', INC2), ('origin', OTHER)]))
    rows = inventory_listing()[:8] + [row('zones/' + INC2, 'zones/%s@final' % IMG), row('zones/%s@final' % INC2)]
    inv, dummy = make_inventory(tmp_path, rows, [])
    chain, missing = inv.ancestry('zones', INC)
    assert [r['manifest']['uuid'] for r in chain] == [INC, IMG] and missing is None
    chain, missing = inv.ancestry('zones', INC2)  # its recorded origin is not installed
    assert [r['manifest']['uuid'] for r in chain] == [INC2] and missing == OTHER
    assert inv.ancestry('zones', VM) == ([], VM)


def test_inventory_of_pools_and_a_missing_pool(tmp_path):
    answers = [
        ('list -t filesystem,volume,snapshot -H -o name,origin,mountpoint,imgadm:ignore -r zones2 nope',
         (1, '', "cannot open 'nope': dataset does not exist\n")),
        ('list -H -o name zones2 nope', (1, 'zones2\n', "cannot open 'nope': dataset does not exist\n")),
    ]
    inst, runner = installed(tmp_path, answers)
    with pytest.raises(PoolNotFoundError) as exc:
        inst.inventory(['zones2', 'nope'])
    assert exc.value.details['pool'] == 'nope'


def test_inventory_reads_the_database_in_one_pass(tmp_path, monkeypatch):
    db = ImageDatabase(str(tmp_path))
    db.write('zones', IMG, OrderedDict([('uuid', IMG)]))
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, 'listdir', lambda path: listed.append(path) or real_listdir(path))
    opened = []
    real_read = ImageDatabase.read
    monkeypatch.setattr(ImageDatabase, 'read', lambda self, p, u: opened.append(u) or real_read(self, p, u))
    rows = [row('zones')] + [row('zones/%08x-0000-4000-8000-000000000000' % i) for i in range(50)] + [row('zones/' + IMG)]
    inv, dummy = make_inventory(tmp_path, rows, [])
    assert len(inv.entries()) == 51
    assert len(listed) == 1 and opened == [IMG]  # one directory listing; only the file that exists is opened
