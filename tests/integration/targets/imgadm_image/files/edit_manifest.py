#!/usr/bin/env python3
"""Set top-level fields of an image in the server's data dir, in place.

    edit_manifest.py SERVER_DATA_DIR UUID FIELDS_JSON

The JSON file keeps its key order; call POST /__reload afterwards.
"""
import json
import os
import sys
from collections import OrderedDict


def main():
    data_dir, image_uuid, fields = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    path = os.path.join(data_dir, 'images', '%s.json' % image_uuid)
    with open(path) as f:
        obj = json.load(f, object_pairs_hook=OrderedDict)
    obj.update(fields)
    with open(path + '.tmp', 'w') as f:
        json.dump(obj, f, indent=2)
    os.rename(path + '.tmp', path)


if __name__ == '__main__':
    main()
