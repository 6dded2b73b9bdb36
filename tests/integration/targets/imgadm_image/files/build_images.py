#!/usr/bin/env python3
"""Build the test images of the imgadm_image target in one go.

    build_images.py TOOLS_DIR BUILD_POOL OUT_DIR SERVER_DATA_DIR STATE_FILE SPEC_JSON

SPEC_JSON is a list of {key, name, version, compression?, origin? (an earlier key),
size_mib?, data?, server? (default true), published_at?, extra_manifest?}.
Prints {key: {uuid, manifest, file_path, manifest_path}}. Every built uuid is
appended to STATE_FILE (a JSON list) before anything else can fail, so that the
target's cleanup finds it.
"""
import json
import os
import sys
import uuid as uuidlib


def main():
    tools, build_pool, out_dir, server_data, state_file, spec = sys.argv[1:7]
    sys.path.insert(0, tools)
    import build_image  # pylint: disable=import-error

    spec = json.loads(spec)
    built = {}
    for item in spec:
        image_uuid = str(uuidlib.uuid4())
        state = []
        if os.path.exists(state_file):
            with open(state_file) as f:
                state = json.load(f)
        state.append(image_uuid)
        with open(state_file + '.tmp', 'w') as f:
            json.dump(state, f)
        os.rename(state_file + '.tmp', state_file)
        origin = item.get('origin')
        res = build_image.build_image(
            build_pool, os.path.join(out_dir, item['key']), item['name'], item['version'],
            compression=item.get('compression', 'gzip'),
            origin=built[origin]['uuid'] if origin else None,
            size_mib=item.get('size_mib', 1), data=item.get('data', 'random'),
            uuid=image_uuid,
            server_data_dir=server_data if item.get('server', True) else None,
            published_at=item.get('published_at'),
            extra_manifest=item.get('extra_manifest'))
        built[item['key']] = dict(uuid=res['uuid'], manifest=res['manifest'], file_path=res['file_path'],
                                  manifest_path=res['manifest_path'])
    json.dump(built, sys.stdout, indent=2)


if __name__ == '__main__':
    main()
