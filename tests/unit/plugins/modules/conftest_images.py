# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers shared by the image tests (imported, not a conftest pytest loads).

* ``throwaway_pool(tag)``: a real ZFS pool ``utimg<tag><xdist worker>`` on a
  512 MiB sparse file in /var/tmp, destroyed afterwards (skips the test when
  zfs is unusable or we are not root);
* ``make_stream``: bytes of a real ``zfs send`` of a small dataset;
* ``image_manifest``: a minimal valid v2 manifest for such a stream;
* ``fake_imgapi()``: a tiny IMGAPI on 127.0.0.1 serving /ping, /images/UUID,
  /images?name=..., /images/UUID/file from a dict;
* ``tool_scripts``: fake ``zoneadm`` and ``sysinfo`` in a directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import bz2
import contextlib
import copy
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import subprocess
import threading
import time
import warnings
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import find_bin

WORKER = os.environ.get('PYTEST_XDIST_WORKER', '')
POOL_SIZE = 512 * 1024 * 1024


def sh(*argv, **kwargs):
    """Run ``argv``; return the CompletedProcess (text output unless ``binary``)."""
    binary = kwargs.pop('binary', False)
    return subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=not binary, check=False, **kwargs)


def zfs(*args):
    """``zfs ARGS``, asserting success; returns stdout."""
    res = sh(find_bin('zfs'), *args)
    assert res.returncode == 0, 'zfs %s: %s' % (' '.join(args), res.stderr)
    return res.stdout


def zfs_names(root, types='all'):
    """Names of everything under ``root`` (itself included), or [] when it does not exist."""
    res = sh(find_bin('zfs'), 'list', '-H', '-o', 'name', '-t', types, '-r', root)
    return res.stdout.split() if res.returncode == 0 else []


def exists(name):
    return sh(find_bin('zfs'), 'list', '-H', '-o', 'name', name).returncode == 0


def zfs_value(prop, name):
    return zfs('get', '-Hp', '-o', 'value', prop, name).strip()


# zfs-fuse wedged (a new pool's mount never answered, every lookup under it
# blocked in fuse_get_req) when two pytest-xdist workers created or destroyed
# pools at the same moment: pool creation and destruction take this lock,
# shared with tests/world/zpool.sh.
POOL_LOCK = '/var/tmp/smartos-imgadm-zpool.lock'


@contextlib.contextmanager
def pool_lock():
    fd = os.open(POOL_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _answers(path, timeout=20.0):
    """True when ``stat(path)`` returns within ``timeout`` (a wedged FUSE mount never does)."""
    done = threading.Event()

    def probe():
        try:
            os.stat(path)
        except OSError:
            pass
        done.set()

    threading.Thread(target=probe, daemon=True).start()
    return done.wait(timeout)


def destroy_pool(pool, attempts=30):
    """Destroy ``pool``; True when it is gone."""
    with pool_lock():
        return _destroy_pool_locked(pool, attempts)


def _destroy_pool_locked(pool, attempts):
    for dummy in range(attempts):
        for name in sorted(zfs_names(pool, 'filesystem'), key=lambda n: n.count('/'), reverse=True):
            sh(find_bin('zfs'), 'unmount', name)
        res = sh(find_bin('zpool'), 'destroy', '-f', pool)
        if res.returncode == 0 or 'no such pool' in res.stderr:
            return True
        time.sleep(0.1)
    return False


def _pool_name(zpool, tag):
    pool = 'utimg%s%s' % (tag, WORKER)
    status = sh(zpool, 'status', pool)
    if status.returncode != 0 and not mountpoint_blocked(pool):
        return pool
    if '/var/tmp/%s.img' % pool in status.stdout and destroy_pool(pool, attempts=5) and not mountpoint_blocked(pool):
        return pool  # left over by an interrupted run
    # not ours, stuck in zfs-fuse, or /POOL holds files: use another name
    return '%sp%d' % (pool, os.getpid())


def _remove_empty_dirs(top):
    for root, dirs, files in os.walk(top, topdown=False):
        if root != top and not dirs and not files:
            try:
                os.rmdir(root)
            except OSError:
                pass


def mountpoint_blocked(pool):
    """True when /POOL is a non-empty directory (``zpool create`` would refuse it).

    Empty directories left there by earlier runs (datasets mounted while the
    pool was not) are removed first. Mounting the test pools elsewhere with
    ``-m`` was tried: zfs-fuse hung unmounting their children.
    """
    top = '/' + pool
    if not os.path.isdir(top) or os.path.ismount(top):
        return False
    _remove_empty_dirs(top)
    return bool(os.listdir(top))


def create_pool(pool, path, size):
    """Create ``pool`` on a sparse file ``path`` of ``size`` bytes, or fail the test.

    Failing here is a test failure, not a skip: on a machine where the ZFS
    daemon answers the pool must come up.
    """
    if mountpoint_blocked(pool):
        pytest.fail('cannot create pool %s: /%s is a non-empty directory' % (pool, pool))
    with open(path, 'wb') as fh:
        fh.truncate(size)
    with pool_lock():
        res = sh(find_bin('zpool'), 'create', pool, path)
        if res.returncode != 0:
            os.unlink(path)
            pytest.fail('cannot create pool %s: %s' % (pool, res.stderr))
        if not _answers('/' + pool):
            pytest.fail('the new pool %s is mounted on /%s but its mount does not answer (zfs-fuse wedged)' % (pool, pool))


def require_real_zfs():
    """Skip unless this is root on a machine where ``zpool`` answers; returns zpool's path."""
    if os.geteuid() != 0:
        pytest.skip('real zfs tests need root')
    zpool = find_bin('zpool')
    if os.sep not in zpool or sh(zpool, 'list', '-H', '-o', 'name').returncode != 0:
        pytest.skip('no usable zfs on this machine')
    return zpool


def _can_mount(pool):
    """zfs-fuse mounts at most about 1000 filesystems; when others hold them all, mounting fails (EIO)."""
    probe = pool + '/mountprobe'
    sh(find_bin('zfs'), 'create', probe)
    mounted = sh(find_bin('zfs'), 'get', '-H', '-o', 'value', 'mounted', probe).stdout.strip() == 'yes'
    destroy_all(pool)
    return mounted


@contextlib.contextmanager
def throwaway_pool(tag):
    """A fresh pool, destroyed afterwards; yields its name.

    Use it for one test (a function-scoped fixture): ansible-test runs every
    test in a forked child (its ``ansible_forked`` plugin), where the teardown
    of a module-scoped fixture only runs when the next test is in another
    module, so a module-scoped pool would be left behind.
    """
    pool = _pool_name(require_real_zfs(), tag)
    path = '/var/tmp/%s.img' % pool
    create_pool(pool, path, POOL_SIZE)
    try:
        if not _can_mount(pool):
            pytest.skip('zfs-fuse cannot mount another filesystem now (all its ~1000 mounts are in use)')
        yield pool
    finally:
        if destroy_pool(pool):
            os.unlink(path)
        else:
            warnings.warn('could not destroy the test pool %s (kept %s)' % (pool, path))


def destroy_all(pool, prefix=''):
    """Destroy the datasets ``POOL/PREFIX*`` with their clones.

    zfs-fuse refuses to destroy a mounted filesystem ("dataset is busy"), so
    they are unmounted first, and the whole thing is retried a few times.
    """
    for dummy in range(20):
        names = [n for n in zfs_names(pool, 'filesystem,volume')[1:] if n.startswith('%s/%s' % (pool, prefix))]
        if not names:
            return
        for name in sorted(names, key=lambda n: n.count('/'), reverse=True):
            sh(find_bin('zfs'), 'unmount', name)
        for name in names:
            if exists(name):
                sh(find_bin('zfs'), 'destroy', '-R', name)
        time.sleep(0.05)
    raise AssertionError('could not destroy %s/%s*: %r' % (pool, prefix, zfs_names(pool)))


def make_dataset(name, files, snapshots=('final',), origin=None):
    """Create ``name`` (a clone of ``origin`` when given) holding ``files``; take ``snapshots``."""
    if origin:
        zfs('clone', origin, name)
    else:
        zfs('create', name)
    mountpoint = zfs_value('mountpoint', name)
    for fname, content in files.items():
        with open(os.path.join(mountpoint, fname), 'wb') as fh:
            fh.write(content)
    for snap in snapshots:
        zfs('snapshot', '%s@%s' % (name, snap))


def send(snapshot, incremental_from=None, replicate=False):
    """The bytes of ``zfs send [-R] [-i FROM] SNAPSHOT``."""
    argv = [find_bin('zfs'), 'send'] + (['-R'] if replicate else []) + (['-i', incremental_from] if incremental_from else [])
    res = sh(*(argv + [snapshot]), binary=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


_COUNTER = [0]


def make_streams(pool, layers, snapshot='final', replicate=False, extra_snapshots=()):
    """Build a chain of datasets in ``pool``, send each, destroy them.

    ``layers`` is a list of ``{file name: bytes}``; layer 0 is a full
    stream, layer N an incremental stream from layer N-1's ``@snapshot``
    (a clone of it). Returns ``[(stream bytes, guid of its snapshot)]``.
    """
    _COUNTER[0] += 1
    prefix = 'src%d-' % _COUNTER[0]
    names = ['%s/%s%d' % (pool, prefix, i) for i in range(len(layers))]
    result = []
    for i, files in enumerate(layers):
        origin = '%s@%s' % (names[i - 1], snapshot) if i else None
        make_dataset(names[i], files, tuple(extra_snapshots) + (snapshot,), origin=origin)
        snap = '%s@%s' % (names[i], snapshot)
        result.append((send(snap, incremental_from=origin, replicate=replicate), zfs_value('guid', snap)))
    destroy_all(pool, prefix)
    return result


def make_stream(pool, files=None, snapshot='final', replicate=False, extra_snapshots=()):
    """The bytes of a full ``zfs send`` of a fresh small dataset."""
    return make_streams(pool, [files or {'hello': b'hello world\n'}], snapshot, replicate, extra_snapshots)[0][0]


def compress(data, compression):
    if compression == 'gzip':
        return gzip.compress(data)
    if compression == 'bzip2':
        return bz2.compress(data)
    if compression == 'xz':
        return lzma.compress(data)
    assert compression == 'none'
    return data


def image_manifest(uuid, filedata, compression='gzip', origin=None, name='utimage', version='1.0.0', **extra):
    """A minimal valid v2 manifest for ``filedata`` (the compressed file)."""
    m = OrderedDict([
        ('v', 2), ('uuid', uuid), ('owner', '00000000-0000-0000-0000-000000000000'), ('name', name),
        ('version', version), ('state', 'active'), ('disabled', False), ('public', True),
        ('published_at', '2024-01-02T03:04:05Z'), ('type', 'zone-dataset'), ('os', 'smartos'),
    ])
    if origin:
        m['origin'] = origin
    m['files'] = [OrderedDict([('sha1', hashlib.sha1(filedata).hexdigest()), ('size', len(filedata)),
                               ('compression', compression)])]
    m.update(extra)
    return m


# ------------------------------------------------------------------ fake IMGAPI

class _ImgapiHandler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def _json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self):
        self._json(404, {'code': 'ResourceNotFound', 'message': '%s does not exist' % self.path})

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        api = self.server.api
        parts = urlsplit(self.path)
        query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
        path = parts.path.rstrip('/')
        with api.lock:
            api.seen.append(self.path)
        if path == '/ping':
            return self._json(200, {'ping': 'pong', 'version': '4.13.1', 'imgapi': True})
        if path == '/images':
            found = [img['manifest'] for img in api.images.values()
                     if all(str(img['manifest'].get(k)) == v for k, v in query.items() if k in ('name', 'version', 'state'))]
            return self._json(200, found)
        bits = path.split('/')
        if len(bits) >= 3 and bits[1] == 'images' and bits[2] in api.images:
            img = api.images[bits[2]]
            if len(bits) == 3:
                return self._json(200, img['manifest'])
            if len(bits) == 4 and bits[3] == 'file' and 'file' in img:
                return self._send_file(bits[2], img['file'])
        return self._not_found()

    def _send_file(self, uuid, data):
        api = self.server.api
        with api.lock:
            cut = api.truncate.get(uuid, 0) > 0
            if cut:
                api.truncate[uuid] -= 1
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Content-MD5', base64.b64encode(hashlib.md5(data).digest()).decode())
        self.end_headers()
        if cut:  # a download cut off half-way
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


class FakeImgapi:
    """State of a fake IMGAPI: ``images[uuid] = {'manifest': ..., 'file': bytes}``."""

    def __init__(self):
        self.images = {}
        self.truncate = {}
        self.seen = []
        self.lock = threading.Lock()
        self.url = None

    def add(self, manifest, filedata=None):
        entry = {'manifest': manifest}
        if filedata is not None:
            entry['file'] = filedata
        self.images[manifest['uuid']] = entry

    def file_requests(self, uuid):
        return self.seen.count('/images/%s/file' % uuid)


@contextlib.contextmanager
def fake_imgapi():
    api = FakeImgapi()
    server = ThreadingHTTPServer(('127.0.0.1', 0), _ImgapiHandler)
    server.daemon_threads = True
    server.api = api
    api.url = 'http://127.0.0.1:%d' % server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ fake tools

SYSINFO = {'SDC Version': '7.0', 'Live Image': '20240101T000000Z', 'UUID': '00000000-0000-0000-0000-000000000001'}


def tool_scripts(directory, zones=()):
    """Write fake ``zoneadm`` (listing ``zones``: (name, zonepath) pairs) and ``sysinfo``; return their paths."""
    lines = ['0:global:running:/::liveimg:shared:0']
    lines += ['%d:%s:running:%s:%s:joyent:excl:%d' % (i + 1, n, p, n, i + 1) for i, (n, p) in enumerate(zones)]
    zoneadm = os.path.join(str(directory), 'zoneadm')
    sysinfo = os.path.join(str(directory), 'sysinfo')
    with open(zoneadm, 'w') as fh:
        fh.write('#!/bin/sh\ncat <<"EOF"\n%s\nEOF\n' % '\n'.join(lines))
    with open(sysinfo, 'w') as fh:
        fh.write('#!/bin/sh\ncat <<"EOF"\n%s\nEOF\n' % json.dumps(SYSINFO))
    os.chmod(zoneadm, 0o755)
    os.chmod(sysinfo, 0o755)
    return zoneadm, sysinfo


def record_path(db_dir, pool, uuid):
    return os.path.join(str(db_dir), 'images', '%s-%s.json' % (pool, uuid))


# ------------------------------------------------------------------ module parameters

def module_defaults():
    """The defaults of every ``imgadm_image`` option, taken from the module's own argument spec."""
    from ansible_collections.smartos.imgadm.plugins.modules import imgadm_image  # pylint: disable=import-outside-toplevel
    captured = {}
    original = imgadm_image.run_module

    def capture(spec, run, **kwargs):
        captured.update(spec=spec, run=run, kwargs=kwargs)

    imgadm_image.run_module = capture
    try:
        imgadm_image.main()
    finally:
        imgadm_image.run_module = original
    return dict((name, copy.deepcopy(opt.get('default'))) for name, opt in captured['spec'].items())
