# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Provision a VM of the fake vmadm from an installed image, as `vmadm create` would.

The VM's dataset is a clone of POOL/IMAGE@final named POOL/VM_UUID, mounted at its
zonepath, with a little content of its own under root/; its record goes to
$SMARTOS_FAKE_STATE/vms/VM_UUID.json (brand joyent, stopped). The VM's uuid is derived
from its alias, so a second run finds the same VM and changes nothing. Prints the record
as JSON, with "changed".
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import subprocess
import sys
import uuid

ZFS_TIMEOUT = 120


def zfs(*args):
    return subprocess.run(('zfs',) + args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=ZFS_TIMEOUT).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--pool', required=True)
    ap.add_argument('--image', required=True, help='uuid of an installed image (POOL/UUID@final must exist)')
    ap.add_argument('--alias', required=True)
    ap.add_argument('--state', default=os.environ.get('SMARTOS_FAKE_STATE', '/var/tmp/smartos-fake-state'))
    args = ap.parse_args()
    vm = str(uuid.uuid5(uuid.NAMESPACE_URL, 'smartos-imgadm-demo-vm:' + args.alias))
    ds = '%s/%s' % (args.pool, vm)
    record_path = os.path.join(args.state, 'vms', vm + '.json')
    changed = False
    exists = subprocess.run(['zfs', 'list', '-H', '-o', 'name', ds], stdout=subprocess.DEVNULL, check=False,
                            stderr=subprocess.DEVNULL, timeout=ZFS_TIMEOUT).returncode == 0
    if not exists:
        zfs('clone', '%s/%s@final' % (args.pool, args.image), ds)
        changed = True
    zonepath = zfs('get', '-H', '-o', 'value', 'mountpoint', ds).strip()
    if changed:
        root = os.path.join(zonepath, 'root')
        os.makedirs(os.path.join(root, 'etc'), exist_ok=True)
        with open(os.path.join(root, 'etc', 'motd'), 'w') as f:
            f.write('%s: provisioned from image %s\n' % (args.alias, args.image))
    if not os.path.exists(record_path):
        os.makedirs(os.path.dirname(record_path), exist_ok=True)
        record = {
            'uuid': vm, 'alias': args.alias, 'brand': 'joyent', 'state': 'stopped', 'zpool': args.pool,
            'zfs_filesystem': ds, 'zonepath': zonepath, 'image_uuid': args.image, 'quota': 10,
            'customer_metadata': {}, 'internal_metadata': {},
        }
        tmp = record_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(record, f, indent=2)
        os.rename(tmp, record_path)
        changed = True
    with open(record_path) as f:
        record = json.load(f)
    record['changed'] = changed
    print(json.dumps(record))
    return 0


if __name__ == '__main__':
    sys.exit(main())
