"""Import an image the way the stock imgadm 3.9.5 does, as a competitor for the module.

    stock_like_import.py --pool P --db DB_DIR --lock-dir L --url URL [options] UUID

Follows /work/shared/reference/imgadm-behaviour.md §2.2 steps 3-9, §2.4 and §2.6:

1. if POOL/UUID exists: nothing to do;
2. the ancestry from the server (GET /images/UUID, then each origin), top first;
3. drop the ancestors already on the pool (`zfs list`);
4. take the locks LOCK_DIR/img.UUID.import.lock (open 0644, fcntl.lockf LOCK_EX,
   blocking, no timeout), top first;
5. re-check the top image only: if it exists now, it "was imported while waiting on
   lock": done;
6. download every remaining file (sha1 checked), then install base first: write the
   database record (the reference writes it before the dataset exists), decompress |
   `zfs receive POOL/UUID-partial` (no -u: zfs-fuse has none; no -F), rename the single
   snapshot to @final if needed, `zfs rename` -partial to POOL/UUID (unmounted first,
   as zfs-fuse cannot rename a mounted filesystem; mounted again after);
7. on any error: `zfs destroy -r POOL/UUID-partial` and `zfs destroy -r POOL/UUID`,
   errors ignored, as the reference does (after unmounting, which zfs-fuse needs), and
   exit 1 with the error;
8. release the locks (close).

Options for the tests:
  --wait-request REGEX  before step 1, wait until the server's request log has a request
                        whose path matches (another importer has started), up to 60 s
  --delay S             then sleep S seconds
  --ready FILE          after taking the locks, create FILE
  --hold-until-request REGEX
                        after --ready, keep the locks until the request log has a request
                        whose path matches (up to 60 s) ...
  --hold-until-waiter S ... and then until another process waits for one of the held
                        locks (blocked on it in /proc/locks, or holding the lock file open
                        while it polls), or S seconds passed; then 1 s more
  --hold S              after that, keep the locks S seconds more
  --between-locks-ready FILE
  --between-locks-wait-waiter S
                        after taking the first (top) lock: create FILE, then wait until
                        another process waits for a lock of the chain (as above, up to S
                        seconds) before taking the next one. The stock imgadm takes its locks
                        one after the other; this stretches the moment between two of them,
                        so that an importer taking the locks in another order (base first)
                        deadlocks with it every time instead of now and then.

Prints {"imported": [...], "already": [...], "waited": bool, "seconds": N} as JSON on
stdout (exit 0), or the error on stderr (exit 1).
"""
import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

DECOMPRESSORS = {'gzip': ['gzip', '-cdfq'], 'bzip2': ['bzip2', '-cdfq'], 'xz': ['xz', '-cdfq'], 'none': None}


def log(msg):
    sys.stderr.write('stock_like_import: %s\n' % msg)
    sys.stderr.flush()


def zfs(args, check=True):
    p = subprocess.run(['zfs'] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if check and p.returncode != 0:
        raise RuntimeError('zfs %s: %s' % (' '.join(args), p.stderr.decode('utf-8', 'replace').strip()))
    return p


def zfs_busy_retry(args, check=True, tries=50, delay=0.2):
    """`zfs ARGS`, again while zfs-fuse says "dataset is busy" (a receive or mount change of
    another process on the pool at that moment); the stock imgadm on SmartOS does not
    need this, and it changes nothing about the locks."""
    for dummy in range(tries - 1):
        p = zfs(args, check=False)
        if p.returncode == 0 or b'busy' not in p.stderr:
            break
        time.sleep(delay)
    else:
        p = zfs(args, check=False)
    if check and p.returncode != 0:
        raise RuntimeError('zfs %s: %s' % (' '.join(args), p.stderr.decode('utf-8', 'replace').strip()))
    return p


def exists(name):
    return zfs(['list', '-H', '-o', 'name', name], check=False).returncode == 0


def get_json(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read().decode('utf-8'))


def wait_request(base, regex, timeout=60.0):
    deadline = time.time() + timeout
    pat = re.compile(regex)
    while time.time() < deadline:
        try:
            for req in get_json(base + '/__requests'):
                if pat.search(req.get('path', '').split('?')[0]):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    log('no request matching %r within %s s' % (regex, timeout))
    return False


def blocked_waiter(inodes):
    """True if /proc/locks shows a blocked waiter (`->`) on one of `inodes`."""
    try:
        with open('/proc/locks') as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if '->' not in fields:
            continue
        for field in fields:
            parts = field.split(':')
            if len(parts) == 3 and parts[2].isdigit() and int(parts[2]) in inodes:
                return True
    return False


def other_opener(paths):
    """True if a process other than this one has one of `paths` open (a lock that polls)."""
    real = set(os.path.realpath(p) for p in paths)
    me = str(os.getpid())
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or pid == me:
            continue
        fd_dir = '/proc/%s/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) in real:
                    return True
            except OSError:
                continue
    return False


def wait_waiter(paths, seconds):
    """Wait until another process waits for one of the locks `paths`, up to `seconds`."""
    inodes = set(os.stat(p).st_ino for p in paths if os.path.exists(p))
    deadline = time.time() + seconds
    while time.time() < deadline:
        if blocked_waiter(inodes) or other_opener(paths):
            return True
        time.sleep(0.05)
    return False


def destroy(name):
    if exists(name):
        zfs_busy_retry(['unmount', name], check=False)
        zfs_busy_retry(['destroy', '-r', name], check=False)


def download(base, uuid, manifest, tmpdir):
    path = os.path.join(tmpdir, uuid + '.file')
    h = hashlib.sha1()
    size = 0
    with urllib.request.urlopen('%s/images/%s/file' % (base, uuid), timeout=120) as r, open(path, 'wb') as out:
        while True:
            chunk = r.read(1024 * 1024)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            out.write(chunk)
    f0 = manifest['files'][0]
    if size != f0['size'] or h.hexdigest() != f0['sha1']:
        raise RuntimeError('image %s file error: expected %s bytes sha1 %s, downloaded %s bytes sha1 %s'
                           % (uuid, f0['size'], f0['sha1'], size, h.hexdigest()))
    return path


def write_record(db, pool, manifest, source):
    images = os.path.join(db, 'images')
    if not os.path.isdir(images):
        os.makedirs(images)
    path = os.path.join(images, '%s-%s.json' % (pool, manifest['uuid']))
    # JSON.stringify(rec, null, 2) + '\n', written in place as the reference does
    with open(path, 'w') as f:
        f.write(json.dumps({'manifest': manifest, 'zpool': pool, 'source': source},
                           indent=2, ensure_ascii=False) + '\n')


def install(pool, uuid, manifest, path):
    partial = '%s/%s-partial' % (pool, uuid)
    argv = DECOMPRESSORS[manifest['files'][0].get('compression', 'none')]
    with open(path, 'rb') as src:
        if argv:
            dec = subprocess.Popen(argv, stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            rx = subprocess.Popen(['zfs', 'receive', partial], stdin=dec.stdout,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            dec.stdout.close()
            dummy, rx_err = rx.communicate()
            dec_err = dec.stderr.read()
            dec.wait()
            if dec.returncode != 0:
                raise RuntimeError('%s: %s' % (' '.join(argv), dec_err.decode('utf-8', 'replace').strip()))
        else:
            rx = subprocess.Popen(['zfs', 'receive', partial], stdin=src,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            dummy, rx_err = rx.communicate()
    if rx.returncode != 0:
        raise RuntimeError('zfs receive %s: %s' % (partial, rx_err.decode('utf-8', 'replace').strip()))
    names = zfs(['list', '-t', 'all', '-Hr', '-o', 'name', partial]).stdout.decode().split()
    snaps = [n for n in names[1:] if n.startswith(partial + '@')]
    if len(snaps) != 1:
        raise RuntimeError('UnexpectedNumberOfSnapshots: %s' % snaps)
    if snaps[0] != partial + '@final':
        zfs(['rename', '-r', snaps[0], partial + '@final'])
    # zfs-fuse cannot rename a mounted filesystem (and has no receive -u)
    zfs_busy_retry(['unmount', partial], check=False)
    zfs_busy_retry(['rename', partial, '%s/%s' % (pool, uuid)])
    zfs_busy_retry(['mount', '%s/%s' % (pool, uuid)], check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pool', required=True)
    ap.add_argument('--db', required=True)
    ap.add_argument('--lock-dir', required=True)
    ap.add_argument('--url', required=True)
    ap.add_argument('--wait-request')
    ap.add_argument('--delay', type=float, default=0.0)
    ap.add_argument('--ready')
    ap.add_argument('--hold-until-request')
    ap.add_argument('--hold-until-waiter', type=float)
    ap.add_argument('--hold', type=float, default=0.0)
    ap.add_argument('--between-locks-ready')
    ap.add_argument('--between-locks-wait-waiter', type=float)
    ap.add_argument('uuid')
    a = ap.parse_args()
    base = a.url.rstrip('/')
    t0 = time.time()
    out = dict(imported=[], already=[], waited=False)

    if a.wait_request:
        wait_request(base, a.wait_request)
    if a.delay:
        time.sleep(a.delay)

    if exists('%s/%s' % (a.pool, a.uuid)):
        log('Image %s is already installed, skipping' % a.uuid)
        out['already'].append(a.uuid)
        out['seconds'] = round(time.time() - t0, 3)
        print(json.dumps(out))
        return 0

    # ancestry, top first
    chain = []
    u = a.uuid
    while u:
        m = get_json('%s/images/%s' % (base, u))
        chain.append(m)
        u = m.get('origin')
    todo = []
    for m in chain:
        if exists('%s/%s' % (a.pool, m['uuid'])):
            log('Image %s already installed' % m['uuid'])
            out['already'].append(m['uuid'])
        else:
            todo.append(m)

    fds = []
    lock_paths = [os.path.join(a.lock_dir, 'img.%s.import.lock' % m['uuid']) for m in chain]
    tmpdir = tempfile.mkdtemp(prefix='stock-like-')
    current = None
    try:
        for i, m in enumerate(todo):  # top first
            path = os.path.join(a.lock_dir, 'img.%s.import.lock' % m['uuid'])
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fds.append(fd)
            t = time.time()
            fcntl.lockf(fd, fcntl.LOCK_EX)
            if time.time() - t > 0.5:
                out['waited'] = True
            if i == 0 and a.between_locks_ready:
                with open(a.between_locks_ready, 'w') as f:
                    f.write('%d\n' % os.getpid())
            if i == 0 and a.between_locks_wait_waiter is not None:
                out['saw_waiter_between_locks'] = wait_waiter(lock_paths, a.between_locks_wait_waiter)
        if a.ready:
            with open(a.ready, 'w') as f:
                f.write('%d\n' % os.getpid())
        if a.hold_until_request:
            wait_request(base, a.hold_until_request)
        if a.hold_until_waiter is not None:
            out['saw_waiter'] = wait_waiter(lock_paths, a.hold_until_waiter)
            time.sleep(1.0)
        if a.hold:
            time.sleep(a.hold)

        if todo and exists('%s/%s' % (a.pool, todo[0]['uuid'])):
            log('Image %s was imported while waiting on lock' % todo[0]['uuid'])
            out['already'].append(todo[0]['uuid'])
            todo = []
        files = {}
        for m in todo:
            files[m['uuid']] = download(base, m['uuid'], m, tmpdir)
        for m in reversed(todo):  # base first
            current = m['uuid']
            write_record(a.db, a.pool, m, a.url)
            install(a.pool, m['uuid'], m, files[m['uuid']])
            log('Imported image %s (%s@%s)' % (m['uuid'], m.get('name'), m.get('version')))
            out['imported'].append(m['uuid'])
            current = None
    except Exception as e:  # pylint: disable=broad-exception-caught
        if current:
            destroy('%s/%s-partial' % (a.pool, current))
            destroy('%s/%s' % (a.pool, current))
        sys.stderr.write('stock_like_import: error: %s\n' % e)
        out['error'] = str(e)
        out['seconds'] = round(time.time() - t0, 3)
        print(json.dumps(out))
        return 1
    finally:
        for fd in fds:
            os.close(fd)
        shutil.rmtree(tmpdir, ignore_errors=True)
    out['seconds'] = round(time.time() - t0, 3)
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
