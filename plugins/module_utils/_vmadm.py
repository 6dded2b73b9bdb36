# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``vmadm``, as ``imgadm create`` uses it: get, start, stop, update.

``Vmadm`` runs the command through a callable with the calling convention
of ``AnsibleModule.run_command`` (a ``_common.CommandRunner`` in the
module, so every call has a deadline), always with ``LC_ALL=C``.

The helpers below read a VM object as ``vmadm get`` prints it: which
dataset an image is made of and which image the VM was made from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import shlex

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import CommandError, VmNotFoundError

VMADM_ENVIRON = {'LC_ALL': 'C'}

# Brands whose image is the first disk (a zvol), not the zone root.
HVM_BRANDS = ('kvm', 'bhyve')


def _cmdline(argv):
    return ' '.join(shlex.quote(str(a)) for a in argv)


class Vmadm(object):
    """``vmadm get|start|stop|update``; failures raise ``CommandError`` (``VmNotFoundError`` for ``get``)."""

    def __init__(self, run_command, vmadm_bin='vmadm'):
        self.run_command = run_command
        self.vmadm_bin = vmadm_bin

    def _run(self, args, data=None):
        argv = [self.vmadm_bin] + [str(a) for a in args]
        try:
            rc, out, err = self.run_command(argv, check_rc=False, data=data, environ_update=dict(VMADM_ENVIRON))
        except OSError as e:
            raise CommandError('cannot run %s: %s' % (_cmdline(argv), e), cmd=argv)
        return argv, rc, out or '', err or ''

    def _check(self, argv, rc, out, err):
        if rc != 0:
            raise CommandError('%s failed (exit status %s): %s' % (_cmdline(argv), rc, (err or out).strip() or 'no message'),
                               cmd=argv, rc=rc, stderr=err)

    def get(self, uuid):
        """The VM object. Any failure of ``vmadm get`` is ``VmNotFound``, as in the stock ``imgadm create``."""
        argv, rc, out, err = self._run(['get', uuid])
        if rc != 0:
            raise VmNotFoundError('vm "%s" was not found' % uuid, vm_uuid=uuid, stderr=err.strip())
        try:
            vm = json.loads(out)
        except ValueError as e:
            raise CommandError('%s printed no JSON: %s' % (_cmdline(argv), e), cmd=argv)
        if not isinstance(vm, dict):
            raise CommandError('%s printed no JSON object' % _cmdline(argv), cmd=argv)
        return vm

    def start(self, uuid):
        self._check(*self._run(['start', uuid]))

    def stop(self, uuid, force=False):
        self._check(*self._run(['stop'] + (['-F'] if force else []) + [uuid]))

    def update(self, uuid, payload):
        """``vmadm update UUID`` with ``payload`` (a dict) as JSON on stdin."""
        self._check(*self._run(['update', uuid], data=json.dumps(payload)))


def is_hvm(vm):
    return vm.get('brand') in HVM_BRANDS


def image_source(vm):
    """``(image_uuid, zpool, dataset)`` of what an image of ``vm`` is made from.

    For kvm and bhyve: the first disk (its ``image_uuid``, ``zpool`` and
    ``zfs_filesystem``); otherwise the VM's own ``image_uuid``, ``zpool`` and
    ``zfs_filesystem``. ``image_uuid`` is None for a VM not made from an image.
    """
    if is_hvm(vm):
        disks = vm.get('disks') or []
        disk = disks[0] if disks and isinstance(disks[0], dict) else {}
        return disk.get('image_uuid'), disk.get('zpool') or vm.get('zpool'), disk.get('zfs_filesystem')
    return vm.get('image_uuid'), vm.get('zpool'), vm.get('zfs_filesystem')


def prepare_datasets(vm):
    """The datasets snapshotted before a prepare-image script runs: the zone root and, for kvm/bhyve, every disk."""
    names = []
    if vm.get('zfs_filesystem'):
        names.append(vm['zfs_filesystem'])
    if is_hvm(vm):
        for disk in vm.get('disks') or []:
            if isinstance(disk, dict) and disk.get('zfs_filesystem') and disk['zfs_filesystem'] not in names:
                names.append(disk['zfs_filesystem'])
    return names


__all__ = ('VMADM_ENVIRON', 'HVM_BRANDS', 'Vmadm', 'is_hvm', 'image_source', 'prepare_datasets')
