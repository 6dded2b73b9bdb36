"""Read back what imgadm_create may have touched, without the collection's code, as one JSON object.

    create_state.py --state-dir DIR [--vmadm PATH --vm UUID]... [--pool POOL]
                    [--content DATASET]... [--out DIR] [--file PATH]...

  vms:       {uuid: `vmadm get UUID` (null if it fails), plus "_files" (the fake's files
             STATE/vms/UUID.*), "_last_run" (UUID.last-run.json) and "_calls" (the
             vmadm start/stop/update calls on it in STATE/calls.log, in order)}
  zfs:       {name: {origin, type, guid}} of every dataset and snapshot under POOL (zfs list)
  content:   {DATASET: ["d MODE ./path", "l ./path -> target", "f MODE SHA1 ./path"...]}:
             everything under the dataset's mountpoint (zfs get mountpoint), sorted by path
  out:       the names in DIR (hidden ones too), sorted
  files:     {PATH: {size, sha1, magic (hex of the first 6 bytes), ino, mtime_ns,
             json (the parsed text, for *.imgmanifest)}}
"""
import argparse
import hashlib
import json
import os
import stat
import subprocess


def run(argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


def content(root):
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not (dirpath == root and d == '.zfs'))
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = './' + os.path.relpath(path, root)
            st = os.lstat(path)
            mode = '%o' % stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                lines.append('l %s -> %s' % (rel, os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                lines.append('d %s %s' % (mode, rel))
            else:
                with open(path, 'rb') as f:
                    lines.append('f %s %s %s' % (mode, hashlib.sha1(f.read()).hexdigest(), rel))
    return sorted(lines, key=lambda line: line.split(' ')[-1] if line[0] != 'l' else line.split(' ')[1])


def vm_calls(state_dir, uuid):
    calls = []
    path = os.path.join(state_dir, 'calls.log')
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                argv = entry.get('argv') or []
                if entry.get('cmd') == 'vmadm' and argv and argv[0] in ('start', 'stop', 'update') and uuid in argv:
                    calls.append(argv[0])
    return calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--state-dir', required=True)
    ap.add_argument('--vmadm')
    ap.add_argument('--vm', action='append', default=[])
    ap.add_argument('--pool')
    ap.add_argument('--content', action='append', default=[])
    ap.add_argument('--out')
    ap.add_argument('--file', action='append', default=[])
    a = ap.parse_args()
    res = {'vms': {}, 'zfs': {}, 'content': {}, 'out': None, 'files': {}}
    env = dict(os.environ, SMARTOS_FAKE_STATE=a.state_dir)
    for uuid in a.vm:
        p = subprocess.run([a.vmadm, 'get', uuid], capture_output=True, text=True, timeout=60, env=env, check=False)
        vm = json.loads(p.stdout) if p.returncode == 0 else {}
        vms_dir = os.path.join(a.state_dir, 'vms')
        vm['_files'] = sorted(n for n in os.listdir(vms_dir) if n.startswith(uuid + '.')) if os.path.isdir(vms_dir) else []
        last = os.path.join(vms_dir, uuid + '.last-run.json')
        vm['_last_run'] = None
        if os.path.exists(last):
            with open(last) as f:
                vm['_last_run'] = json.load(f)
        vm['_calls'] = vm_calls(a.state_dir, uuid)
        res['vms'][uuid] = vm
    if a.pool:
        for line in run(['zfs', 'list', '-H', '-t', 'all', '-r', '-o', 'name,origin,type,guid', a.pool]).splitlines():
            name, origin, kind, guid = line.split('\t')
            res['zfs'][name] = {'origin': origin, 'type': kind, 'guid': guid}
    for ds in a.content:
        mountpoint = run(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', ds]).strip()
        res['content'][ds] = content(mountpoint)
    if a.out:
        res['out'] = sorted(os.listdir(a.out))
    for path in a.file:
        with open(path, 'rb') as f:
            data = f.read()
        st = os.stat(path)
        info = {'size': len(data), 'sha1': hashlib.sha1(data).hexdigest(), 'magic': data[:6].hex(),
                'ino': st.st_ino, 'mtime_ns': st.st_mtime_ns}
        if path.endswith('.imgmanifest'):
            info['json'] = json.loads(data.decode('utf-8'))
        res['files'][path] = info
    print(json.dumps(res, indent=1, sort_keys=True))


if __name__ == '__main__':
    main()
