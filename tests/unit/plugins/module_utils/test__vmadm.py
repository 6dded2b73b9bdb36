# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_vmadm.py: the argv, stdin and errors of each call, and the VM helpers."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import CommandError, VmNotFoundError
from ansible_collections.smartos.imgadm.plugins.module_utils._vmadm import Vmadm, image_source, is_hvm, prepare_datasets

VM = '0d7c3f6e-0000-4000-8000-0000000000aa'


class Recorder(object):
    def __init__(self, answers=None):
        self.answers = list(answers or [])
        self.calls = []

    def __call__(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
        assert check_rc is False
        assert environ_update == {'LC_ALL': 'C'}
        self.calls.append((list(args), data))
        return self.answers.pop(0) if self.answers else (0, '', '')


def test_get_parses_the_vm():
    run = Recorder([(0, json.dumps({'uuid': VM, 'state': 'stopped'}), '')])
    vm = Vmadm(run, '/usr/sbin/vmadm').get(VM)
    assert vm == {'uuid': VM, 'state': 'stopped'}
    assert run.calls == [(['/usr/sbin/vmadm', 'get', VM], None)]


@pytest.mark.parametrize('answer', [(1, '', 'zoneadm: %s: No such zone configured' % VM), (2, '', 'usage')])
def test_any_get_failure_is_vm_not_found(answer):
    with pytest.raises(VmNotFoundError) as exc:
        Vmadm(Recorder([answer])).get(VM)
    assert str(exc.value) == 'vm "%s" was not found' % VM
    assert exc.value.code == 'VmNotFound'


@pytest.mark.parametrize('out', ['not json', '[1, 2]'])
def test_get_without_a_json_object_is_a_command_error(out):
    with pytest.raises(CommandError):
        Vmadm(Recorder([(0, out, '')])).get(VM)


def test_start_stop_update_argv_and_stdin():
    run = Recorder()
    v = Vmadm(run, 'vmadm')
    v.start(VM)
    v.stop(VM)
    v.stop(VM, force=True)
    v.update(VM, {'remove_customer_metadata': ['prepare-image:state', 'prepare-image:error']})
    assert [c[0] for c in run.calls] == [
        ['vmadm', 'start', VM], ['vmadm', 'stop', VM], ['vmadm', 'stop', '-F', VM], ['vmadm', 'update', VM]]
    assert json.loads(run.calls[3][1]) == {'remove_customer_metadata': ['prepare-image:state', 'prepare-image:error']}


def test_a_failed_call_names_the_command():
    with pytest.raises(CommandError) as exc:
        Vmadm(Recorder([(1, '', 'Unable to start VM: boom')]), 'vmadm').start(VM)
    assert 'vmadm start %s failed (exit status 1): Unable to start VM: boom' % VM in str(exc.value)


def test_oserror_is_a_command_error():
    def run(*args, **kwargs):
        raise OSError(2, 'No such file')
    with pytest.raises(CommandError) as exc:
        Vmadm(run, '/nope/vmadm').get(VM)
    assert 'cannot run /nope/vmadm get' in str(exc.value)


ZONE = {'uuid': VM, 'brand': 'joyent', 'zpool': 'zones', 'zfs_filesystem': 'zones/' + VM, 'image_uuid': 'IMG'}
KVM = {'uuid': VM, 'brand': 'kvm', 'zpool': 'zones', 'zfs_filesystem': 'zones/' + VM,
       'disks': [{'zfs_filesystem': 'zones/%s-disk0' % VM, 'image_uuid': 'IMG', 'zpool': 'data'},
                 {'zfs_filesystem': 'zones/%s-disk1' % VM}]}
BHYVE = {'uuid': VM, 'brand': 'bhyve', 'zpool': 'zones', 'zfs_filesystem': 'zones/' + VM,
         'disks': [{'zfs_filesystem': 'zones/%s/disk0' % VM, 'image_uuid': 'IMG'}, {'zfs_filesystem': 'zones/%s/disk1' % VM}]}


@pytest.mark.parametrize('vm, source, prepare', [
    (ZONE, ('IMG', 'zones', 'zones/' + VM), ['zones/' + VM]),
    (dict(ZONE, brand='lx'), ('IMG', 'zones', 'zones/' + VM), ['zones/' + VM]),
    (KVM, ('IMG', 'data', 'zones/%s-disk0' % VM), ['zones/' + VM, 'zones/%s-disk0' % VM, 'zones/%s-disk1' % VM]),
    # a disk without zpool: the VM's pool
    (BHYVE, ('IMG', 'zones', 'zones/%s/disk0' % VM), ['zones/' + VM, 'zones/%s/disk0' % VM, 'zones/%s/disk1' % VM]),
    (dict(BHYVE, disks=[]), (None, 'zones', None), ['zones/' + VM]),
    (dict(ZONE, image_uuid=None), (None, 'zones', 'zones/' + VM), ['zones/' + VM]),
])
def test_image_source_and_prepare_datasets(vm, source, prepare):
    assert image_source(vm) == source
    assert prepare_datasets(vm) == prepare
    assert is_hvm(vm) == (vm['brand'] in ('kvm', 'bhyve'))
