"""Read back what the build role may have touched, without the collection's code, as one JSON object.

    build_state.py [--pool POOL]... [--dir DIR]... [--file PATH]... [--vmadm PATH --vm UUID]

  zfs:    {name: "origin guid"} of every dataset and snapshot under each POOL (zfs get -Hp: zfs-fuse's
          zfs list abbreviates the guid)
  dirs:   {DIR: the names in it (hidden ones too), sorted; null when there is no DIR}
  files:  {PATH: {size, sha1, ino, mtime_ns, json (the parsed text of *.json and *.imgmanifest)};
          null when there is no PATH}
  vm:     `vmadm get UUID` (null if it fails)
"""
import argparse
import hashlib
import json
import os
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pool', action='append', default=[])
    ap.add_argument('--dir', action='append', default=[])
    ap.add_argument('--file', action='append', default=[])
    ap.add_argument('--vmadm')
    ap.add_argument('--vm')
    a = ap.parse_args()
    res = {'zfs': {}, 'dirs': {}, 'files': {}, 'vm': None}
    for pool in a.pool:
        out = subprocess.run(['zfs', 'get', '-H', '-p', '-r', '-o', 'name,property,value', 'origin,guid', pool],
                             check=True, capture_output=True, text=True, timeout=120).stdout
        props = {}
        for line in out.splitlines():
            name, prop, value = line.split('\t')
            props.setdefault(name, {})[prop] = value
        for name, p in props.items():
            res['zfs'][name] = '%s %s' % (p.get('origin', '-'), p.get('guid', '-'))
    for d in a.dir:
        res['dirs'][d] = sorted(os.listdir(d)) if os.path.isdir(d) else None
    for path in a.file:
        if not os.path.exists(path):
            res['files'][path] = None
            continue
        with open(path, 'rb') as f:
            data = f.read()
        st = os.stat(path)
        info = {'size': len(data), 'sha1': hashlib.sha1(data).hexdigest(), 'ino': st.st_ino, 'mtime_ns': st.st_mtime_ns}
        if path.endswith(('.json', '.imgmanifest')):
            info['json'] = json.loads(data.decode('utf-8'))
        res['files'][path] = info
    if a.vm:
        p = subprocess.run([a.vmadm, 'get', a.vm], capture_output=True, text=True, timeout=60, check=False)
        res['vm'] = json.loads(p.stdout) if p.returncode == 0 else None
    print(json.dumps(res, indent=1, sort_keys=True))


if __name__ == '__main__':
    main()
