# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_importer.py.

* ``verify_stream`` messages and ``StreamStats`` as tables;
* ``stream_into_zfs`` with real processes: a Python "receive" that hashes
  its stdin, the real gzip/bzip2/xz, failures of each stage, a source that
  breaks off, and the bounded memory of the pipeline;
* ``ZfsInstaller`` with a recording backend (undo, checksum reported first)
  and, marked ``real_zfs``, against a throw-away zfs-fuse pool with real
  ``zfs send`` streams (imgadm-behaviour.md §2.4).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils import _importer
from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    DownloadError,
    ImgapiConnectionError,
    UncompressionError,
    UnexpectedNumberOfSnapshotsError,
    ZfsError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._importer import (
    StreamStats,
    ZfsInstaller,
    file_chunks,
    stream_into_zfs,
    verify_stream,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import CliBackend, ZfsRunner, find_bin
from ansible_collections.smartos.imgadm.tests.unit.plugins.modules.conftest_images import (
    compress,
    exists,
    image_manifest,
    make_dataset,
    make_stream,
    make_streams,
    record_path,
    throwaway_pool,
    zfs,
    zfs_names,
    zfs_value,
)

UUID = '5b4e1d7c-1111-4a2b-8c3d-000000000001'
UUID2 = '5b4e1d7c-1111-4a2b-8c3d-000000000002'
MIB = 1 << 20

# a stand-in for "zfs receive": hashes stdin, writes "sha1 bytes LC_ALL" to argv[1]
HASHER = '''
import hashlib, os, sys
h = hashlib.sha1()
n = 0
while True:
    b = sys.stdin.buffer.read(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
with open(sys.argv[1], 'w') as f:
    f.write('%s %d %s' % (h.hexdigest(), n, os.environ.get('LC_ALL')))
'''

# a receive that fails after reading everything
FAILER = '''
import sys
sys.stdin.buffer.read()
sys.stderr.write("cannot receive new filesystem stream: invalid backup stream\\n")
sys.exit(1)
'''

# a receive that fails at once, without reading its input
QUITTER = '''
import sys
sys.stderr.write("cannot receive: out of space\\n")
sys.exit(1)
'''

# a receive that hangs after its input ended (a stuck zfs receive)
SLEEPER = '''
import sys, time
sys.stdin.buffer.read()
time.sleep(60)
'''


def py(script, *args):
    return [sys.executable, '-c', script] + [str(a) for a in args]


def hasher(tmp_path):
    out = tmp_path / 'received'
    return py(HASHER, out), out


def received(out):
    sha1, size, lc_all = out.read_text().split()
    return sha1, int(size), lc_all


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def chunked(data, size=64 * 1024):
    return [data[i:i + size] for i in range(0, len(data), size)]


def decompressor(compression):
    return [find_bin(compression), '-cdfq']


def payload(size=3 * 100000):
    # compressible but not trivially so
    return os.urandom(100000) * (size // 100000)


@pytest.fixture
def popens(monkeypatch):
    """Record every process the pipeline starts."""
    started = []
    real = subprocess.Popen

    class Recording(real):  # pylint: disable=too-few-public-methods
        def __init__(self, *args, **kwargs):
            super(Recording, self).__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(_importer.subprocess, 'Popen', Recording)
    return started


def assert_reaped(procs):
    for proc in procs:
        assert proc.returncode is not None, 'child %d not waited for' % proc.pid
        with pytest.raises(ChildProcessError):  # no zombie left to reap
            os.waitpid(proc.pid, os.WNOHANG)
        assert not os.path.exists('/proc/%d' % proc.pid)


# ------------------------------------------------------------------ pure: verify_stream, StreamStats

def stats_of(data, md5=False):
    stats = StreamStats()
    stats.bytes = len(data)
    stats.sha1 = sha1(data)
    stats.md5_b64 = md5_b64(data) if md5 else None
    return stats


DATA = b'image bytes'


@pytest.mark.parametrize('expected, message', [
    (dict(), None),
    (dict(expected_size=len(DATA), expected_sha1=sha1(DATA)), None),
    (dict(expected_size=str(len(DATA))), None),  # manifests may carry the size as a string
    (dict(expected_size=len(DATA) + 1), 'image L file error: size: expected 12 bytes, got 11 bytes'),
    (dict(expected_sha1='0' * 40),
     'image L file error: checksum (sha1): expected "%s", got "%s"' % ('0' * 40, sha1(DATA))),
    (dict(expected_size=1, expected_sha1='0' * 40),
     'image L file error: size: expected 1 bytes, got 11 bytes; checksum (sha1): expected "%s", got "%s"'
     % ('0' * 40, sha1(DATA))),
    (dict(expected_md5=md5_b64(DATA)), None),
    (dict(expected_md5='AAAA'), 'image L file error: checksum (Content-MD5): expected "AAAA", got "%s"' % md5_b64(DATA)),
    # sha1 wins: Content-MD5 is only used when there is no sha1 (OS-6177)
    (dict(expected_sha1=sha1(DATA), expected_md5='AAAA'), None),
])
def test_verify_stream(expected, message):
    stats = stats_of(DATA, md5=True)
    if message is None:
        verify_stream('L', stats, **expected)
        return
    with pytest.raises(DownloadError) as exc:
        verify_stream('L', stats, **expected)
    assert str(exc.value) == message
    assert exc.value.code == 'DownloadError'
    assert exc.value.details['got_size'] == len(DATA)
    assert exc.value.details['got_sha1'] == sha1(DATA)


def test_verify_stream_md5_not_computed_is_not_an_error():
    verify_stream('L', stats_of(DATA, md5=False), expected_md5='AAAA')


@pytest.mark.parametrize('size, seconds, throughput', [
    (0, 0.0, None),
    (2 * MIB, 1.0, 2.0),
    (3 * MIB, 2.0, 1.5),
    (MIB, -1.0, None),
])
def test_stream_stats_throughput(size, seconds, throughput):
    stats = StreamStats()
    stats.bytes, stats.seconds = size, seconds
    assert stats.throughput == throughput


def test_file_chunks(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'abcdefghij')
    assert list(file_chunks(str(path), size=4)) == [b'abcd', b'efgh', b'ij']
    (tmp_path / 'empty').write_bytes(b'')
    assert list(file_chunks(str(tmp_path / 'empty'))) == []


# ------------------------------------------------------------------ the pipeline, real processes

def test_stream_without_decompressor(tmp_path):
    data = os.urandom(300000)
    argv, out = hasher(tmp_path)
    stats = stream_into_zfs(iter(chunked(data) + [b'']), argv, want_md5=True)
    assert received(out) == (sha1(data), len(data), 'C')  # LC_ALL=C forced on the children
    assert stats.bytes == len(data)
    assert stats.sha1 == sha1(data)
    assert stats.md5_b64 == md5_b64(data)
    assert stats.seconds > 0


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
def test_stream_through_real_decompressor(tmp_path, compression, popens):
    raw = payload()
    data = compress(raw, compression)
    argv, out = hasher(tmp_path)
    stats = stream_into_zfs(iter(chunked(data, 4096)), argv, decompressor(compression))
    # the receive got the uncompressed bytes; the stats are about the file
    assert received(out)[:2] == (sha1(raw), len(raw))
    assert (stats.bytes, stats.sha1, stats.md5_b64) == (len(data), sha1(data), None)
    assert [p.args[0] for p in popens] == [find_bin(compression), sys.executable]
    assert_reaped(popens)


def _corrupt(data):
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0xff for b in data[mid:mid + 64]) + data[mid + 64:]


@pytest.mark.parametrize('compression, damage, status, text', [
    ('gzip', 'truncate', 1, 'unexpected end of file'),
    ('gzip', 'corrupt', 1, 'crc error'),
    ('bzip2', 'truncate', 2, '(this usually indicates a network error)'),
    ('bzip2', 'corrupt', 2, 'Data integrity error'),
    ('xz', 'truncate', 1, 'Unexpected end of input'),
    ('xz', 'corrupt', 1, 'Compressed data is corrupt'),
])
def test_decompressor_failure_is_uncompression_error(tmp_path, compression, damage, status, text, popens):
    good = compress(payload(), compression)
    data = good[:len(good) // 2] if damage == 'truncate' else _corrupt(good)
    argv, dummy = hasher(tmp_path)
    with pytest.raises(UncompressionError) as exc:
        stream_into_zfs(iter(chunked(data)), argv, decompressor(compression), label='IMG')
    msg = str(exc.value)
    assert msg.startswith('uncompressing IMG with "%s -cdfq" failed (exit status %d): ' % (find_bin(compression), status))
    assert text in msg
    assert exc.value.code == 'UncompressionError'
    assert exc.value.details['exit_status'] == status
    # the caller gets what was hashed, to report a checksum mismatch instead
    assert exc.value.partial_stats.bytes == len(data)
    assert exc.value.partial_stats.sha1 == sha1(data)
    assert_reaped(popens)


def test_receive_failure_is_zfs_error_with_stderr(tmp_path):
    data = os.urandom(50000)
    argv = py(FAILER)
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter(chunked(data)), argv, label='IMG')
    e = exc.value
    assert str(e) == ('zfs receive error while importing IMG: exit status 1: '
                      'cannot receive new filesystem stream: invalid backup stream')
    assert e.rc == 1
    assert e.cmd == argv
    assert e.stderr == 'cannot receive new filesystem stream: invalid backup stream'
    assert e.partial_stats.sha1 == sha1(data)


def test_receive_dying_early_still_hashes_everything(tmp_path, popens):
    # the sink breaks (EPIPE) when the receive exits; hashing goes on so that a checksum can be reported
    data = os.urandom(3 * MIB)
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter(chunked(data, MIB)), py(QUITTER))
    assert 'cannot receive: out of space' in str(exc.value)
    assert exc.value.partial_stats.bytes == len(data)
    assert exc.value.partial_stats.sha1 == sha1(data)
    assert_reaped(popens)


def test_receive_dying_early_behind_a_decompressor_is_a_zfs_error(tmp_path, popens):
    data = compress(os.urandom(4 * MIB), 'gzip')
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter(chunked(data, MIB)), py(QUITTER), decompressor('gzip'))
    assert 'cannot receive: out of space' in str(exc.value)
    assert_reaped(popens)


def test_missing_binary_is_zfs_error_and_kills_the_decompressor(tmp_path, popens):
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter([b'x']), ['/nonexistent/zfs', 'receive', 'p/x'], decompressor('gzip'), label='IMG')
    assert str(exc.value).startswith('cannot start the import pipeline for IMG: ')
    assert len(popens) == 1  # gzip started, then killed
    assert_reaped(popens)


@pytest.mark.parametrize('with_decompressor', [False, True])
def test_source_breaking_off_is_reraised_and_children_killed(tmp_path, popens, with_decompressor):
    data = compress(payload(), 'gzip') if with_decompressor else os.urandom(3 * 65536)
    cut = ImgapiConnectionError('http://x/images/U/file: connection lost after 3 chunks')

    def source():
        yield from chunked(data)[:3]
        raise cut

    start = time.time()
    with pytest.raises(ImgapiConnectionError) as exc:
        stream_into_zfs(source(), py(SLEEPER), decompressor('gzip') if with_decompressor else None)
    assert time.time() - start < 20, 'the hanging receive was waited for instead of killed'
    assert exc.value is cut
    assert exc.value.partial_stats.bytes == sum(len(c) for c in chunked(data)[:3])
    assert exc.value.partial_stats.sha1 is None  # not a finished pass
    assert len(popens) == (2 if with_decompressor else 1)
    assert popens[-1].returncode == -9  # the receive was killed
    assert_reaped(popens)


# run in a fresh interpreter, so that memory freed by other tests cannot hide growth
MEMORY_PROBE = '''
import hashlib, json, sys
from ansible_collections.smartos.imgadm.plugins.module_utils import _importer

def vm_kib(field):
    with open('/proc/self/status') as fh:
        for line in fh:
            if line.startswith(field + ':'):
                return int(line.split()[1])

total, queue_chunks, argv = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
_importer.QUEUE_CHUNKS = queue_chunks
expected = hashlib.sha1()
for i in range(total):
    expected.update(bytes([i % 251]) * (1 << 20))
before = vm_kib('VmHWM')

def source():
    for i in range(total):
        yield bytes([i % 251]) * (1 << 20)  # a new, touched 1 MiB object each time

stats = _importer.stream_into_zfs(source(), argv)
print(json.dumps(dict(grown_mib=(vm_kib('VmHWM') - before) / 1024.0, bytes=stats.bytes, sha1=stats.sha1,
                      expected=expected.hexdigest())))
'''


@pytest.mark.parametrize('queue_chunks, bounded', [
    (_importer.QUEUE_CHUNKS, True),
    (0, False),  # control: an unbounded queue does show up in VmHWM
])
def test_memory_stays_bounded(tmp_path, queue_chunks, bounded):
    """200 MiB of fresh chunks from a generator: the queue holds only a few of them."""
    total = 200
    argv, out = hasher(tmp_path)
    # the parent of ansible_collections/, for the child's imports
    top = os.path.abspath(_importer.__file__)
    for dummy in range(6):
        top = os.path.dirname(top)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([top] + [p for p in sys.path if p]))
    res = subprocess.run([sys.executable, '-c', MEMORY_PROBE, str(total), str(queue_chunks), json.dumps(argv)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    assert res.returncode == 0, res.stderr.decode()
    probe = json.loads(res.stdout.decode().splitlines()[-1])
    assert probe['bytes'] == total * MIB
    assert probe['sha1'] == probe['expected'] == received(out)[0]
    if bounded:
        assert probe['grown_mib'] < 32, 'peak RSS grew by %.0f MiB while streaming %d MiB' % (probe['grown_mib'], total)
    else:
        assert probe['grown_mib'] > 64, 'the measurement cannot see an unbounded queue (%.0f MiB)' % probe['grown_mib']


# ------------------------------------------------------------------ ZfsInstaller with a recording backend

class RecordingBackend:
    """Enough of a ``_zfs`` backend for ``ZfsInstaller``; the receive is the hasher."""

    def __init__(self, receive_argv, snapshots=None, fail_rename=False, fail_mount=False):
        self.argv = receive_argv
        self.snapshots = snapshots
        self.fail_rename = fail_rename
        self.fail_mount = fail_mount
        self.datasets = set()
        self.calls = []

    def receive_argv(self, target, unmounted=True):
        self.calls.append(('receive_argv', target, unmounted))
        self.datasets.add(target)
        return self.argv

    def exists(self, name):
        return name in self.datasets

    def destroy(self, name, recursive=False):
        self.calls.append(('destroy', name, recursive))
        self.datasets.discard(name)

    def list_snapshots(self, ds):
        return [ds + '@' + s for s in (self.snapshots if self.snapshots is not None else ['final'])]

    def rename(self, old, new, recursive=False):
        self.calls.append(('rename', old, new, recursive))
        if self.fail_rename and '@' not in old:
            raise ZfsError('cannot rename: busy', cmd=['zfs', 'rename', old, new], rc=1, stderr='busy')
        self.datasets.discard(old)
        self.datasets.add(new)

    def unmount(self, name):
        # the receive argv here has no "-u" (like zfs-fuse): the installer unmounts before renaming
        self.calls.append(('unmount', name))
        return True

    def mount(self, name):
        self.calls.append(('mount', name))
        if self.fail_mount:
            raise ZfsError('cannot mount %s: Input/output error' % name, cmd=['zfs', 'mount', name], rc=1, stderr='EIO')
        return True


def installer_for(tmp_path, backend):
    decompressors = dict((c, decompressor(c)) for c in ('gzip', 'bzip2', 'xz'))
    return ZfsInstaller(backend, ImageDatabase(str(tmp_path / 'db')), decompressors)


def test_installer_steps_in_order(tmp_path):
    raw = payload()
    data = compress(raw, 'xz')
    argv, out = hasher(tmp_path)
    backend = RecordingBackend(argv, snapshots=['s1'])
    manifest = image_manifest(UUID, data, 'xz')
    stats = installer_for(tmp_path, backend).receive('zones', manifest, iter(chunked(data)), 'xz',
                                                     expected_size=len(data), expected_sha1=sha1(data), source='http://s')
    assert stats.sha1 == sha1(data)
    assert received(out)[0] == sha1(raw)
    partial, final = 'zones/%s-partial' % UUID, 'zones/' + UUID
    assert backend.calls == [
        ('receive_argv', partial, True),
        ('rename', partial + '@s1', partial + '@final', True),
        ('unmount', partial),
        ('rename', partial, final, False),
        ('mount', final),
    ]
    assert json.loads((tmp_path / 'db' / 'images' / ('zones-%s.json' % UUID)).read_text())['source'] == 'http://s'


def test_installer_zvol_is_not_mounted(tmp_path):
    argv, dummy = hasher(tmp_path)
    backend = RecordingBackend(argv)
    manifest = image_manifest(UUID, b'zvol', 'none', type='zvol')
    installer_for(tmp_path, backend).receive('zones', manifest, iter([b'zvol']), 'none')
    assert [c[0] for c in backend.calls] == ['receive_argv', 'rename']


@pytest.mark.parametrize('sha1_matches, error', [
    (False, DownloadError),  # wrong bytes: the checksum is the cause, report it
    (True, UncompressionError),  # the published file itself is broken
])
def test_installer_reports_checksum_before_uncompression_error(tmp_path, sha1_matches, error):
    data = compress(payload(), 'gzip')
    bad = data[:len(data) // 2]
    argv, dummy = hasher(tmp_path)
    backend = RecordingBackend(argv)
    manifest = image_manifest(UUID, bad if sha1_matches else data, 'gzip')
    info = manifest['files'][0]
    with pytest.raises(error) as exc:
        installer_for(tmp_path, backend).receive('zones', manifest, iter(chunked(bad)), 'gzip',
                                                 expected_size=info['size'], expected_sha1=info['sha1'])
    if error is DownloadError:
        assert 'checksum (sha1): expected "%s", got "%s"' % (sha1(data), sha1(bad)) in str(exc.value)
        assert 'size: expected %d bytes, got %d bytes' % (len(data), len(bad)) in str(exc.value)
    else:
        assert 'uncompressing' in str(exc.value)
    assert ('destroy', 'zones/%s-partial' % UUID, True) in backend.calls
    assert not (tmp_path / 'db' / 'images').exists()


def test_installer_reports_checksum_when_receive_fails(tmp_path):
    data = os.urandom(10000)
    backend = RecordingBackend(py(FAILER))
    manifest = image_manifest(UUID, b'other bytes', 'none')
    with pytest.raises(DownloadError) as exc:
        installer_for(tmp_path, backend).receive('zones', manifest, iter([data]), 'none',
                                                 expected_sha1=manifest['files'][0]['sha1'])
    assert 'checksum (sha1)' in str(exc.value)
    # without verification the receive's own error comes through
    with pytest.raises(ZfsError) as exc:
        installer_for(tmp_path, backend).receive('zones', manifest, iter([data]), 'none',
                                                 expected_sha1=manifest['files'][0]['sha1'], verify=False)
    assert 'invalid backup stream' in str(exc.value)


def test_installer_content_md5_when_no_sha1(tmp_path):
    data = os.urandom(10000)
    argv, dummy = hasher(tmp_path)
    manifest = image_manifest(UUID, data, 'none')
    del manifest['files'][0]['sha1']
    inst = installer_for(tmp_path, RecordingBackend(argv))
    stats = inst.receive('zones', manifest, iter([data]), 'none', expected_md5=md5_b64(data))
    assert stats.md5_b64 == md5_b64(data)
    with pytest.raises(DownloadError) as exc:
        installer_for(tmp_path, RecordingBackend(argv)).receive('zones', manifest, iter([data]), 'none',
                                                                expected_md5=md5_b64(b'x'))
    assert 'checksum (Content-MD5): expected "%s", got "%s"' % (md5_b64(b'x'), md5_b64(data)) in str(exc.value)


def test_installer_unknown_compression(tmp_path):
    backend = RecordingBackend(['true'])
    with pytest.raises(DownloadError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x'), iter([b'x']), 'lz4')
    assert 'unknown compression "lz4"' in str(exc.value)
    assert backend.calls == []


@pytest.mark.parametrize('snapshots', [[], ['a', 'b']])
def test_installer_needs_exactly_one_snapshot(tmp_path, snapshots):
    argv, dummy = hasher(tmp_path)
    backend = RecordingBackend(argv, snapshots=snapshots)
    with pytest.raises(UnexpectedNumberOfSnapshotsError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    assert 'expected exactly one snapshot after zfs receive, found %d' % len(snapshots) in str(exc.value)
    assert not backend.exists('zones/%s-partial' % UUID)
    assert not (tmp_path / 'db' / 'images').exists()


def test_installer_failed_final_rename_removes_the_record(tmp_path):
    argv, dummy = hasher(tmp_path)
    backend = RecordingBackend(argv, fail_rename=True)
    with pytest.raises(ZfsError):
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    assert not os.path.exists(record_path(tmp_path / 'db', 'zones', UUID))
    assert backend.calls[-1] == ('destroy', 'zones/%s-partial' % UUID, True)


def test_installer_failed_mount_leaves_nothing(tmp_path):
    argv, dummy = hasher(tmp_path)
    backend = RecordingBackend(argv, fail_mount=True)
    with pytest.raises(ZfsError):
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    # "On any failure nothing is left: no -partial, no final dataset, no database record."
    assert not backend.exists('zones/%s-partial' % UUID)
    assert not os.path.exists(record_path(tmp_path / 'db', 'zones', UUID))
    assert not backend.exists('zones/' + UUID)


def test_installer_source_error_is_reraised_after_cleanup(tmp_path):
    argv, dummy = hasher(tmp_path)
    backend = RecordingBackend(argv)
    cut = ImgapiConnectionError('cut')

    def source():
        yield b'x'
        raise cut

    with pytest.raises(ImgapiConnectionError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'xx', 'none'), source(), 'none',
                                                 expected_sha1=sha1(b'xx'))
    assert exc.value is cut
    assert backend.calls[-1] == ('destroy', 'zones/%s-partial' % UUID, True)


def test_clean_partial_with_recording_backend(tmp_path):
    backend = RecordingBackend(['true'])
    inst = installer_for(tmp_path, backend)
    assert ZfsInstaller.names('zones', UUID) == ('zones/' + UUID, 'zones/%s-partial' % UUID)
    assert inst.clean_partial('zones', UUID) is False
    backend.datasets.add('zones/%s-partial' % UUID)
    assert inst.clean_partial('zones', UUID) is True
    assert backend.calls == [('destroy', 'zones/%s-partial' % UUID, True)]


# ------------------------------------------------------------------ ZfsInstaller on a real pool

@pytest.fixture
def pool():
    """A throw-away pool per test (see conftest_images.throwaway_pool)."""
    with throwaway_pool('i') as name:
        yield name


def real_installer(tmp_path):
    decompressors = dict((c, decompressor(c)) for c in ('gzip', 'bzip2', 'xz'))
    return ZfsInstaller(CliBackend(ZfsRunner()), ImageDatabase(str(tmp_path)), decompressors)


def assert_nothing_left(pool, db_dir, uuid):
    assert not exists('%s/%s-partial' % (pool, uuid))
    assert not exists('%s/%s' % (pool, uuid))
    assert not os.path.exists(record_path(db_dir, pool, uuid))
    assert zfs_names(pool) == [pool]


@pytest.mark.real_zfs
@pytest.mark.parametrize('compression', ['gzip', 'none'])
def test_real_full_receive(pool, tmp_path, compression):
    stream = make_stream(pool, {'hello': b'hello world\n'})
    data = compress(stream, compression)
    manifest = image_manifest(UUID, data, compression)
    stats = real_installer(tmp_path).receive(pool, manifest, iter(chunked(data)), compression,
                                             expected_size=len(data), expected_sha1=sha1(data), source='http://127.0.0.1:9')
    assert stats.bytes == len(data)
    assert zfs_names(pool) == [pool, '%s/%s' % (pool, UUID), '%s/%s@final' % (pool, UUID)]
    assert zfs_value('mounted', '%s/%s' % (pool, UUID)) == 'yes'
    with open('/%s/%s/hello' % (pool, UUID), 'rb') as fh:
        assert fh.read() == b'hello world\n'
    with open(record_path(tmp_path, pool, UUID), 'rb') as fh:
        record = fh.read()
    # the reference's bytes: JSON.stringify(rec, null, 2) + "\n", manifest key order kept
    assert record == (json.dumps(OrderedDict([('manifest', manifest), ('zpool', pool), ('source', 'http://127.0.0.1:9')]),
                                 indent=2, separators=(',', ': ')) + '\n').encode()
    assert record.startswith(b'{\n  "manifest": {\n    "v": 2,\n    "uuid": "%s",\n    "owner"' % UUID.encode())
    assert record.endswith(b'\n  },\n  "zpool": "%s",\n  "source": "http://127.0.0.1:9"\n}\n' % pool.encode())


@pytest.mark.real_zfs
def test_real_snapshot_not_called_final_is_renamed(pool, tmp_path):
    stream = make_stream(pool, snapshot='build-2024')
    real_installer(tmp_path).receive(pool, image_manifest(UUID, stream, 'none'), iter([stream]), 'none')
    assert zfs_names(pool, 'snapshot') == ['%s/%s@final' % (pool, UUID)]
    assert not exists('%s/%s-partial' % (pool, UUID))


@pytest.mark.real_zfs
def test_real_two_snapshots_is_refused_and_cleaned(pool, tmp_path):
    stream = make_stream(pool, snapshot='s2', extra_snapshots=('s1',), replicate=True)
    with pytest.raises(UnexpectedNumberOfSnapshotsError) as exc:
        real_installer(tmp_path).receive(pool, image_manifest(UUID, stream, 'none'), iter([stream]), 'none')
    assert exc.value.details['snapshots'] == ['%s/%s-partial@s1' % (pool, UUID), '%s/%s-partial@s2' % (pool, UUID)]
    assert_nothing_left(pool, tmp_path, UUID)


@pytest.mark.real_zfs
def test_real_checksum_mismatch_leaves_nothing(pool, tmp_path):
    data = compress(make_stream(pool), 'gzip')
    manifest = image_manifest(UUID, data + b'x', 'gzip')  # the sha1 of other bytes; the stream itself is fine
    with pytest.raises(DownloadError) as exc:
        real_installer(tmp_path).receive(pool, manifest, iter([data]), 'gzip', expected_sha1=manifest['files'][0]['sha1'])
    assert 'checksum (sha1)' in str(exc.value)
    assert_nothing_left(pool, tmp_path, UUID)


@pytest.mark.real_zfs
def test_real_corrupt_download_reports_checksum_and_leaves_nothing(pool, tmp_path):
    data = compress(make_stream(pool, {'big': os.urandom(200000)}), 'gzip')
    manifest = image_manifest(UUID, data, 'gzip')
    with pytest.raises(DownloadError) as exc:
        real_installer(tmp_path).receive(pool, manifest, iter([_corrupt(data)]), 'gzip',
                                         expected_size=len(data), expected_sha1=manifest['files'][0]['sha1'])
    assert 'checksum (sha1): expected "%s"' % sha1(data) in str(exc.value)
    assert_nothing_left(pool, tmp_path, UUID)


@pytest.mark.real_zfs
def test_real_garbage_stream_is_zfs_error_and_leaves_nothing(pool, tmp_path):
    garbage = os.urandom(4096)
    with pytest.raises(ZfsError) as exc:
        real_installer(tmp_path).receive(pool, image_manifest(UUID, garbage, 'none'), iter([garbage]), 'none')
    assert exc.value.rc and exc.value.stderr
    assert_nothing_left(pool, tmp_path, UUID)


@pytest.mark.real_zfs
def test_real_clean_partial_and_incremental(pool, tmp_path):
    (base, dummy), (inc, dummy2) = make_streams(pool, [{'a': b'base'}, {'b': b'inc'}])
    inst = real_installer(tmp_path)
    inst.receive(pool, image_manifest(UUID, base, 'none'), iter([base]), 'none')
    # a -partial left by a killed run
    make_dataset('%s/%s-partial' % (pool, UUID2), {'junk': b'x'}, ('final',))
    assert inst.clean_partial(pool, UUID2) is True
    assert not exists('%s/%s-partial' % (pool, UUID2))
    assert inst.clean_partial(pool, UUID2) is False
    inst.receive(pool, image_manifest(UUID2, inc, 'none', origin=UUID), iter(chunked(inc, 1000)), 'none')
    assert zfs_value('origin', '%s/%s' % (pool, UUID2)) == '%s/%s@final' % (pool, UUID)
    with open('/%s/%s/b' % (pool, UUID2), 'rb') as fh:
        assert fh.read() == b'inc'
    assert os.path.exists(record_path(tmp_path, pool, UUID2))


@pytest.mark.real_zfs
def test_real_out_of_space_behind_gzip_is_a_zfs_error(pool, tmp_path):
    data = compress(make_stream(pool, {'big': os.urandom(4 * MIB)}), 'gzip')
    zfs('create', '-o', 'quota=1M', pool + '/small')
    manifest = image_manifest(UUID, data, 'gzip')
    with pytest.raises(ZfsError) as exc:
        real_installer(tmp_path).receive(pool + '/small', manifest, iter(chunked(data, MIB)), 'gzip',
                                         expected_sha1=manifest['files'][0]['sha1'])
    assert 'zfs receive error' in str(exc.value)
    assert not exists('%s/small/%s-partial' % (pool, UUID))
