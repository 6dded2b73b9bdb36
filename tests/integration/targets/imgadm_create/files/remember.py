"""Append uuids to an integration target's state file (a JSON list), as build_images.py does,
so that cleanup.py destroys POOL/UUID for them (with their clones) in `always`.

    remember.py STATE_FILE UUID...
"""
import json
import os
import sys


def main():
    path, uuids = sys.argv[1], sys.argv[2:]
    state = []
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    state.extend(u for u in uuids if u not in state)
    with open(path + '.tmp', 'w') as f:
        json.dump(state, f)
    os.rename(path + '.tmp', path)


if __name__ == '__main__':
    main()
