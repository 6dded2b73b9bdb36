# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_installed.py.

The ``imgadm list`` heuristic (imgadm-behaviour.md §3.1) and ``vacuum``'s
iterative plan (§4.3) as parametrize tables; ``InstalledImages`` over a
scripted ``zfs`` runner.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import CommandError
from ansible_collections.smartos.imgadm.plugins.module_utils._installed import (
    VMADM_FS_NAME_RE,
    VMADM_IMG_NAME_RE,
    InstalledImages,
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
    ('', set()),
    ('0:global:running:/::liveimg:shared:0\n', {'/'}),
    ('0:global:running:/::liveimg:shared:0\n'
     '3:%s:running:/zones/%s:%s:joyent-minimal:excl:1\n'
     '-:%s:installed:/zones/%s:%s:bhyve:excl:2\n' % (VM, VM, VM, VM2, VM2, VM2),
     {'/', '/zones/' + VM, '/zones/' + VM2}),
    # too few fields or an empty zonepath: nothing
    ('0:global:running\n1:x:installed::uuid:joyent:excl:3\n', set()),
    # blank lines are harmless
    ('\n\n-:z:configured:/zones/z:u:joyent:excl:4\n', {'/zones/z'}),
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


ROOTS = {'/', '/zones/' + VM}
BASE_ROWS = [
    row('zones'),
    row('zones/' + IMG),
    row('zones/%s@final' % IMG),
]


@pytest.mark.parametrize('rows, roots, expected', [
    pytest.param(BASE_ROWS, ROOTS, {'zones/' + IMG: []}, id='one-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG)], ROOTS,
                 {'zones/' + IMG: ['zones/' + VM]}, id='zone-vm-is-a-clone-not-an-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG)], set(),
                 {'zones/' + IMG: ['zones/' + VM]}, id='clone-of-final-without-own-final-is-no-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG), row('zones/%s@final' % VM)], set(),
                 {'zones/' + IMG: ['zones/' + VM], 'zones/' + VM: []}, id='clone-with-own-final-is-an-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@final' % IMG), row('zones/%s@final' % VM)], ROOTS,
                 {'zones/' + IMG: ['zones/' + VM]}, id='zone-root-is-never-an-image'),
    pytest.param(BASE_ROWS + [row('zones/' + VM, 'zones/%s@snap1' % IMG)], set(),
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
                  row('zones2/' + VM, 'zones2/%s@final' % IMG, '/zones2/' + VM)], {'/zones2/' + VM},
                 {'zones2/' + IMG: ['zones2/' + VM]}, id='digits-in-pool-name'),
    pytest.param([row('zones/' + IMG), row('zones/%s@final' % IMG), row('data/' + OTHER), row('data/%s@final' % OTHER),
                  row('data/' + VM, 'zones/%s@final' % IMG)], set(),
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
    found = parse_image_listing(rows, set())
    assert list(found) == ['zones/' + INC, 'zones/' + IMG]
    assert found['zones/' + INC]['origin'] == 'zones/%s@final' % IMG
    assert found['zones/' + IMG]['origin'] is None
    assert found['zones/' + INC] == {'pool': 'zones', 'uuid': INC, 'origin': 'zones/%s@final' % IMG, 'clones': []}


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
    assert (('zones/' + IMG) in parse_image_listing(rows, set())) is listed


def test_ignored_image_still_counts_as_a_user():
    # an ignored (or non-image) dataset that is a vmadm name still keeps its origin in use
    rows = BASE_ROWS + [row('zones/' + INC, 'zones/%s@final' % IMG, ignore='true'), row('zones/%s@final' % INC)]
    found = parse_image_listing(rows, set())
    assert list(found) == ['zones/' + IMG]
    assert found['zones/' + IMG]['clones'] == ['zones/' + INC]


# ------------------------------------------------------------------ vacuum_plan

def img(uuid, clones=(), name=None, version=None, pool='zones'):
    manifest = OrderedDict([('uuid', uuid)])
    if name is not None:
        manifest['name'] = name
    if version is not None:
        manifest['version'] = version
    return dict(dataset='%s/%s' % (pool, uuid), pool=pool, uuid=uuid, clones=list(clones),
                record=OrderedDict([('manifest', manifest), ('zpool', pool)]))


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
    runner = ZfsRunner(run_command=FakeRunCommand(answers), zfs_bin='zfs', zpool_bin='zpool')
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
        ('list -H -o name -t snapshot -s createtxg -d 1 zones/' + IMG, (0, 'zones/%s@final\n' % IMG, '')),
        ('get -Hp -o name,value clones', (0, 'zones/%s@final\tzones/%s\n' % (IMG, VM), '')),
    ]
    inst, dummy = installed(tmp_path, answers)
    assert inst.is_installed('zones', IMG) is True
    assert inst.is_installed('zones', OTHER) is False
    assert inst.get('zones', OTHER) is None
    rec = inst.get('zones', IMG)
    assert list(rec) == ['manifest', 'zpool', 'source']
    rec = inst.get('zones', IMG, children=True)
    assert list(rec) == ['manifest', 'zpool', 'source', 'children']
    assert rec['children'] == {'snapshots': ['zones/%s@final' % IMG], 'clones': ['zones/' + VM]}
