#!/usr/bin/env python3
"""Remove everything the imgadm_image target built or installed.

    cleanup.py TOOLS_DIR POOL BUILD_POOL SERVER_DATA_DIR STATE_FILE

For every uuid in STATE_FILE, newest first: POOL/UUID (with any clones of it),
POOL/UUID-partial, the build dataset, and the image in the server's data dir.
"""
import json
import os
import sys


def main():
    tools, pool, build_pool, server_data, state_file = sys.argv[1:6]
    sys.path.insert(0, tools)
    import build_image  # pylint: disable=import-error

    if not os.path.exists(state_file):
        print(json.dumps(dict(destroyed=[], errors=[])))
        return 0
    with open(state_file) as f:
        uuids = json.load(f)
    destroyed, errors = [], []
    for name_fmt, pool_name in (('%s/%s', pool), ('%s/%s-partial', pool), ('%s/imgbuild/%s', build_pool)):
        for u in reversed(uuids):
            name = name_fmt % (pool_name, u)
            try:
                if build_image.zfs_destroy(name, dependents=True):
                    destroyed.append(name)
            except Exception as e:  # pylint: disable=broad-exception-caught
                errors.append('%s: %s' % (name, e))
    for u in uuids:
        for ext in ('json', 'file', 'icon'):
            p = os.path.join(server_data, 'images', '%s.%s' % (u, ext))
            if os.path.exists(p):
                os.unlink(p)
    print(json.dumps(dict(destroyed=destroyed, errors=errors)))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
