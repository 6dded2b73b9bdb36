"""Remove everything an integration target built or installed, on the managed node.

    cleanup.py TOOLS_DIR POOL BUILD_POOL IMGAPI_URL STATE_FILE

For every uuid in STATE_FILE, newest first: POOL/UUID (with any clones of it),
POOL/UUID-partial, the build dataset, and the image on the image server
(DeleteImage, all channels; newest first, so origins go after their children).
Prints {uuids, destroyed, errors} as JSON; exits 1 if anything could not be removed.
"""
import json
import os
import sys
import urllib.error
import urllib.request


def main():
    tools, pool, build_pool, url, state_file = sys.argv[1:6]
    sys.path.insert(0, tools)
    import build_image  # pylint: disable=import-error

    uuids = []
    if os.path.exists(state_file):
        with open(state_file) as f:
            uuids = list(reversed(json.load(f)))
    destroyed, errors = [], []
    for name_fmt, pool_name in (('%s/%s', pool), ('%s/%s-partial', pool), ('%s/imgbuild/%s', build_pool)):
        for u in uuids:
            name = name_fmt % (pool_name, u)
            try:
                if build_image.zfs_destroy(name, dependents=True):
                    destroyed.append(name)
            except Exception as e:  # pylint: disable=broad-exception-caught
                errors.append('%s: %s' % (name, e))
    for u in uuids:
        req = urllib.request.Request('%s/images/%s?force_all_channels=true' % (url.rstrip('/'), u), method='DELETE')
        try:
            with urllib.request.urlopen(req, timeout=30):
                pass
        except urllib.error.HTTPError as e:
            if e.code != 404:
                errors.append('DELETE image %s: HTTP %s %s' % (u, e.code, e.read()[:200]))
        except OSError as e:
            errors.append('DELETE image %s: %s' % (u, e))
    print(json.dumps(dict(uuids=uuids, destroyed=destroyed, errors=errors)))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
