"""Build the test images of an integration target in one go, on the managed node.

    build_images.py --tools DIR --pool BUILD_POOL --out-dir DIR --state-file F
                    (--server-data-dir DIR | --publish-url URL) SPEC_JSON

SPEC_JSON is a list of {key, name, version, compression?, origin? (an earlier key),
size_mib?, data?, server? (default true), published_at?, type? (zone-dataset|zvol),
send_flags? (extra zfs send flags, e.g. "-c -L -e")}. Images with server true
are stored in the image server's data dir (same host) or published to it over HTTP
(a remote node). Prints {key: {uuid, manifest, file_path, manifest_path}}. Every uuid
is appended to the state file before its build starts, so that cleanup.py finds it.
"""
import argparse
import json
import os
import sys
import uuid as uuidlib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tools', required=True)
    ap.add_argument('--pool', required=True)
    ap.add_argument('--out-dir', required=True)
    ap.add_argument('--state-file', required=True)
    ap.add_argument('--server-data-dir')
    ap.add_argument('--publish-url')
    ap.add_argument('spec')
    a = ap.parse_args()
    sys.path.insert(0, a.tools)
    import build_image  # pylint: disable=import-error

    built = {}
    for item in json.loads(a.spec):
        image_uuid = str(uuidlib.uuid4())
        state = []
        if os.path.exists(a.state_file):
            with open(a.state_file) as f:
                state = json.load(f)
        state.append(image_uuid)
        with open(a.state_file + '.tmp', 'w') as f:
            json.dump(state, f)
        os.rename(a.state_file + '.tmp', a.state_file)
        origin = item.get('origin')
        on_server = item.get('server', True)
        res = build_image.build_image(
            a.pool, os.path.join(a.out_dir, item['key']), item['name'], item['version'],
            compression=item.get('compression', 'gzip'),
            origin=built[origin]['uuid'] if origin else None,
            size_mib=item.get('size_mib', 1), data=item.get('data', 'random'),
            uuid=image_uuid, published_at=item.get('published_at'),
            server_data_dir=a.server_data_dir if on_server else None,
            publish_url=a.publish_url if on_server else None,
            type=item.get('type', 'zone-dataset'), send_flags=item.get('send_flags'))
        built[item['key']] = dict(uuid=res['uuid'], manifest=res['manifest'], file_path=res['file_path'],
                                  manifest_path=res['manifest_path'])
    json.dump(built, sys.stdout, indent=2)


if __name__ == '__main__':
    main()
