# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Seed the demo image server with a few real images built on the build pool.

Idempotent: an image whose name and version the server already holds is not
built again. Prints one line per image.
"""

from __future__ import absolute_import, division, print_function

import argparse
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from build_image import build_image  # noqa: E402  pylint: disable=wrong-import-position

# (name, version, compression, origin (name, version) or None, channels, size MiB)
DEMO_IMAGES = [
    ('demo-base', '1.0.0', 'gzip', None, None, 4),
    ('demo-base', '1.1.0', 'xz', ('demo-base', '1.0.0'), None, 1),
    ('demo-tools', '2.0.0', 'bzip2', None, ['staging'], 2),
]


def served(data_dir):
    found = {}
    for path in glob.glob(os.path.join(data_dir, 'images', '*.json')):
        with open(path) as f:
            m = json.load(f)
        found[(m.get('name'), m.get('version'))] = m
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--pool', required=True, help='the pool to build in (not the one images are installed into)')
    ap.add_argument('--server-data', required=True, help="the image server's data directory")
    args = ap.parse_args()
    have = served(args.server_data)
    out_dir = tempfile.mkdtemp(prefix='imgadm-demo-')
    for name, version, comp, origin, channels, size in DEMO_IMAGES:
        if (name, version) in have:
            print('seed: %s %s already served (%s)' % (name, version, have[(name, version)]['uuid']))
            continue
        origin_uuid = have[origin]['uuid'] if origin else None
        res = build_image(args.pool, out_dir, name, version, compression=comp, origin=origin_uuid,
                          size_mib=size, server_data_dir=args.server_data, channels=channels)
        have[(name, version)] = res['manifest']
        os.unlink(res['file_path'])
        print('seed: built %s %s (%s, %s, %d bytes)' % (name, version, res['uuid'], comp, res['manifest']['files'][0]['size']))
    os.rmdir(out_dir) if not os.listdir(out_dir) else None
    return 0


if __name__ == '__main__':
    sys.exit(main())
