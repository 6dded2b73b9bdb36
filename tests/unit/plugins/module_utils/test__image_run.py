# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_image_run.py (and ``_common.check_ranges``).

* ``check_options`` as a table: every option under every state, the
  selectors, ``manifest``/``file``, ``version`` without ``name``, the states
  that need a selector; each refusal is a ``UsageError`` naming the option;
* ``check_ranges`` as a table of the numeric bounds;
* ``ImageRun``'s selectors and ``require_images`` with a fake module (no
  command is run: the ``zfs`` it is given is a script that fails the test).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._common import RANGES, Result, check_ranges
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import InvalidUUIDError, NotAnImageError, UsageError
from ansible_collections.smartos.imgadm.plugins.module_utils._image_run import STATE_OPTIONS, ImageRun, check_options, lines

U1 = '0d7c3f6e-0000-4000-8000-000000000001'
U2 = '0d7c3f6e-0000-4000-8000-000000000002'
U3 = '0d7c3f6e-0000-4000-8000-000000000003'

STATES = ('present', 'latest', 'absent', 'updated', 'vacuumed')

# Which state takes which option, written out here (not read from STATE_OPTIONS)
APPLIES = {
    'uuid': ('present', 'absent', 'updated'),
    'uuids': ('present', 'absent', 'updated'),
    'name': ('present', 'latest', 'absent', 'updated'),
    'version': ('present', 'latest', 'absent', 'updated'),
    'manifest': ('present',),
    'file': ('present',),
    'zstream': ('present',),
    'keep': ('vacuumed',),
}
# A value that counts as "given" for each option
GIVEN = {
    'uuid': U1, 'uuids': [U1], 'name': 'base', 'version': '1.0', 'manifest': {'v': 2}, 'file': '/tmp/f',
    'zstream': True, 'keep': ['base'],
}


def params(state='present', **given):
    """Module parameters as AnsibleModule fills them: every option present, unset ones None/False."""
    p = dict((o, None) for o in APPLIES)
    p['zstream'] = False
    p['state'] = state
    p.update(given)
    return p


def test_the_table_here_matches_the_module():
    assert dict((k, tuple(v)) for k, v in STATE_OPTIONS.items()) == APPLIES


# ---- each option under a state that does not take it: refused, naming the option

WRONG_STATE = [(option, state) for option in sorted(APPLIES) for state in STATES if state not in APPLIES[option]]


@pytest.mark.parametrize('option, state', WRONG_STATE, ids=['%s-%s' % c for c in WRONG_STATE])
def test_option_under_wrong_state_is_refused(option, state):
    with pytest.raises(UsageError) as exc:
        check_options(params(state, **{option: GIVEN[option]}))
    assert exc.value.code == 'Usage'
    assert exc.value.details['field'] == option
    assert str(exc.value).startswith('%s does not apply to state=%s (only to state=' % (option, state))
    assert ', '.join(APPLIES[option]) in str(exc.value)


@pytest.mark.parametrize('value', [None, False, []])
def test_unset_values_do_not_count(value):
    # module_defaults may set keep: [] or zstream: false for every task
    check_options(params('absent', uuid=U1, keep=value, zstream=value or False, manifest=None))


# ---- whole parameter sets: accepted (None) or refused naming a field

CASES = [
    # accepted
    ('present', dict(uuid=U1), None),
    ('present', dict(uuids=[U1, U2]), None),
    ('present', dict(name='base'), None),
    ('present', dict(name='base', version='1.0'), None),
    ('present', dict(manifest={'v': 2}, file='/f'), None),
    ('present', dict(manifest='/m.json', file='/f', zstream=True), None),
    ('latest', dict(name='base'), None),
    ('latest', dict(name='base', version='1.0'), None),
    ('absent', dict(uuid=U1), None),
    ('absent', dict(uuids=[U1]), None),
    ('absent', dict(name='base', version='1.0'), None),
    ('updated', dict(), None),  # every installed image
    ('updated', dict(name='base'), None),
    ('vacuumed', dict(), None),
    ('vacuumed', dict(keep=['base', U1]), None),
    # version without name
    ('present', dict(uuid=U1, version='1.0'), 'version'),
    ('latest', dict(version='1.0'), 'version'),
    ('absent', dict(uuids=[U1], version='1.0'), 'version'),
    ('updated', dict(version='1.0'), 'version'),
    # latest without name
    ('latest', dict(), 'name'),
    # present and absent need a selector
    ('present', dict(), 'uuid'),
    ('present', dict(zstream=True), 'uuid'),
    ('absent', dict(), 'uuid'),
    # manifest and file go together
    ('present', dict(manifest={'v': 2}), 'file'),
    ('present', dict(manifest='/m.json'), 'file'),
    ('present', dict(file='/f'), 'manifest'),
    ('present', dict(uuid=U1, file='/f'), 'manifest'),
    # one selector only: the second one given is named
    ('present', dict(uuid=U1, name='base'), 'name'),
    ('present', dict(uuid=U1, uuids=[U2]), 'uuids'),
    ('present', dict(uuids=[U1], name='base'), 'name'),
    ('present', dict(name='base', manifest={'v': 2}, file='/f'), 'manifest'),
    ('present', dict(uuid=U1, manifest='/m.json', file='/f'), 'manifest'),
    ('absent', dict(uuid=U1, name='base'), 'name'),
    ('updated', dict(uuids=[U1], name='base'), 'name'),
    # the first option (in STATE_OPTIONS order) that does not fit is named
    ('vacuumed', dict(uuid=U1, name='base', keep=['x']), 'uuid'),
    ('latest', dict(name='base', file='/f', keep=['x']), 'file'),
    ('absent', dict(uuid=U1, manifest={'v': 2}, file='/f'), 'manifest'),
]


@pytest.mark.parametrize('state, given, field', CASES,
                         ids=['%s-%s' % (c[0], '+'.join(sorted(c[1])) or 'nothing') for c in CASES])
def test_check_options(state, given, field):
    p = params(state, **given)
    if field is None:
        check_options(p)
        return
    with pytest.raises(UsageError) as exc:
        check_options(p)
    assert exc.value.details['field'] == field
    assert exc.value.fail_kwargs()['error_code'] == 'Usage'
    assert exc.value.fail_kwargs()['field'] == field


def test_an_empty_manifest_dict_is_still_a_selector():
    # manifest is given when it is not None: {} with file is an install (the manifest itself is then invalid),
    # {} with uuids is two selectors
    check_options(params('present', manifest={}, file='/f'))
    with pytest.raises(UsageError) as exc:
        check_options(params('present', manifest={}, file='/f', uuids=[U1]))
    assert exc.value.details['field'] == 'manifest'


@pytest.mark.parametrize('state, given, text', [
    ('present', dict(uuid=U1, version='1'), 'version needs name'),
    ('latest', dict(), 'state=latest needs name'),
    ('absent', dict(), 'state=absent needs uuid, uuids or name'),
    ('present', dict(), 'state=present needs uuid, uuids, name or manifest and file'),
    ('present', dict(file='/f'), 'manifest and file go together: manifest is missing'),
    ('present', dict(uuid=U1, name='n', manifest={'v': 2}, file='/f'), 'uuid and name and manifest are mutually exclusive'),
    ('absent', dict(keep=['x'], uuid=U1), 'keep does not apply to state=absent (only to state=vacuumed)'),
])
def test_check_options_messages(state, given, text):
    with pytest.raises(UsageError) as exc:
        check_options(params(state, **given))
    assert text in str(exc.value)


# ---- _common.check_ranges

@pytest.mark.parametrize('given, field, text', [
    (dict(concurrency=0), 'concurrency', 'concurrency must be at least 1, got 0'),
    (dict(concurrency=-3), 'concurrency', 'concurrency must be at least 1, got -3'),
    (dict(concurrency=1), None, None),
    (dict(retries=-1), 'retries', 'retries must be at least 0, got -1'),
    (dict(retries=0), None, None),
    (dict(timeout=0), 'timeout', 'timeout must be greater than 0, got 0'),
    (dict(timeout=0.0), 'timeout', 'timeout must be greater than 0, got 0.0'),
    (dict(timeout=-1.5), 'timeout', 'timeout must be greater than 0, got -1.5'),
    (dict(timeout=0.1), None, None),
    (dict(lock_timeout=-1), 'lock_timeout', 'lock_timeout must be at least 0, got -1'),
    (dict(lock_timeout=-0.01), 'lock_timeout', None),
    (dict(lock_timeout=0), None, None),  # 0: try once
    (dict(command_timeout=0), 'command_timeout', 'command_timeout must be greater than 0, got 0'),
    (dict(command_timeout=0.5), None, None),
    # options a module does not have (None) are skipped
    (dict(concurrency=None, retries=None, timeout=None, lock_timeout=None, command_timeout=None), None, None),
    (dict(), None, None),
    # not range-checked at all
    (dict(keep=-1, pool=0), None, None),
    # the first bad one in name order
    (dict(timeout=0, retries=-1, concurrency=0), 'concurrency', None),
    (dict(timeout=0, retries=-1), 'retries', None),
    (dict(timeout=0, command_timeout=0), 'command_timeout', None),
])
def test_check_ranges(given, field, text):
    if field is None:
        check_ranges(given)
        return
    with pytest.raises(UsageError) as exc:
        check_ranges(given)
    assert exc.value.details['field'] == field
    assert exc.value.code == 'Usage'
    if text is not None:
        assert str(exc.value) == text


def test_ranges_cover_every_numeric_option():
    assert sorted(RANGES) == ['command_timeout', 'concurrency', 'lock_timeout', 'retries', 'timeout']


# ---- ImageRun with a fake module

class FakeModule(object):
    """Enough of an AnsibleModule for ``ImageRun``; any command fails the test."""

    check_mode = False
    _diff = False

    def __init__(self, params_):
        self.params = params_
        self.commands = []

    def run_command(self, args, **kwargs):
        self.commands.append(list(args))
        raise AssertionError('no command should run here: %r' % (args,))

    @staticmethod
    def get_bin_path(name, required=False, opt_dirs=None):
        return None


def run_params(tmp_path, **more):
    zfs = tmp_path / 'zfs'
    zfs.write_text('#!/bin/sh\nexit 99\n')
    os.chmod(str(zfs), 0o755)
    p = params('present')
    p.update(pool='zones', imgadm_dir=str(tmp_path / 'db'), lock_dir=str(tmp_path), zfs_path=str(zfs),
             zfs_backend='cli', command_timeout=5.0, lock_timeout=1.0, timeout=5.0, retries=0, validate_certs=True,
             sources=None, channel=None, strict_sources=False)
    p.update(more)
    return p


def image_run(tmp_path, **more):
    module = FakeModule(run_params(tmp_path, **more))
    return ImageRun(module, Result(module)), module


def test_image_run_starts_without_running_anything(tmp_path):
    run, module = image_run(tmp_path)
    assert module.commands == []
    assert run.result.data == dict(imported=[], imported_by_others=[], deleted=[], updated=[], zfs_backend='cli')
    assert run.backend.runner.zfs_bin == str(tmp_path / 'zfs')


@pytest.mark.parametrize('pool', ['zones/sub', '', '2zones', 'zo nes'])
def test_image_run_bad_pool_names_the_field(tmp_path, pool):
    with pytest.raises(UsageError) as exc:
        image_run(tmp_path, pool=pool)
    assert exc.value.details['field'] == 'pool'


@pytest.mark.parametrize('uuid, uuids, expected', [
    (None, None, []),
    (U1, None, [U1]),
    (None, [U2, U1, U2], [U2, U1]),  # each once, in order
    (U1, [U2, U1, U3], [U1, U2, U3]),
])
def test_image_run_uuids(tmp_path, uuid, uuids, expected):
    run, dummy = image_run(tmp_path, uuid=uuid, uuids=uuids)
    assert run.uuids() == expected


@pytest.mark.parametrize('uuid, uuids, field', [
    ('NOT-A-UUID', None, 'uuid'),
    (U1.upper(), None, 'uuid'),
    (None, [U1, 'nope'], 'uuids'),
    (U1, [U1.upper()], 'uuids'),
])
def test_image_run_bad_uuid_names_the_field(tmp_path, uuid, uuids, field):
    run, dummy = image_run(tmp_path, uuid=uuid, uuids=uuids)
    with pytest.raises(InvalidUUIDError) as exc:
        run.uuids()
    assert exc.value.details['field'] == field
    assert exc.value.code == 'InvalidUUID'


def test_require_images_keeps_order_and_refuses_what_is_not_an_image(tmp_path, monkeypatch):
    run, dummy = image_run(tmp_path)
    answers = {U1: 'image', U2: None, U3: 'image'}
    monkeypatch.setattr(run.installed, 'examine', lambda pool, uuids: dict((u, answers[u]) for u in uuids))
    assert run.require_images([U3, U2, U1]) == [U3, U1]
    answers[U2] = "it is the zone root of zone vm1 (zoneadm list), a VM's dataset"
    with pytest.raises(NotAnImageError) as exc:
        run.require_images([U1, U2])
    assert exc.value.code == 'NotAnImage'
    assert exc.value.details == {'uuid': U2, 'dataset': 'zones/' + U2}
    assert str(exc.value) == ("zones/%s is not an image: it is the zone root of zone vm1 (zoneadm list), a VM's dataset; "
                              "this module never destroys or changes it" % U2)


@pytest.mark.parametrize('items, text', [
    ([], ''),
    (['a'], 'a\n'),
    (['b', 'a'], 'b\na\n'),
])
def test_lines(items, text):
    assert lines(items) == text


def test_line():
    assert ImageRun.line({'uuid': U1, 'name': 'base', 'version': '1.0'}) == '%s base@1.0' % U1
    assert ImageRun.line({'uuid': U1}) == '%s None@None' % U1
