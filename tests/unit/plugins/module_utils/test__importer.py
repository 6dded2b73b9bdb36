# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_importer.py, without root or a pool.

* ``lock_order``, ``verify_stream`` and ``StreamStats`` as tables;
* ``stream_into_zfs`` with real processes standing in for ``zfs receive``
  and the decompressor (small Python scripts), and the real gzip/bzip2/xz:
  success, a receive that dies (the download stops at once), a decompressor
  that rejects the bytes (everything is still hashed), a receive that stops
  reading or never ends (deadlines), a source that breaks off, the gate,
  bounded memory;
* ``ZfsInstaller`` with a recording backend and database, in both modes
  (``zfs receive -u`` exists: received as POOL/UUID-partial; it does not, as on
  zfs-fuse: received as POOL/imgadm-partial/UUID under a never-mounted parent
  created once): the names and leftovers, the order of the finishing steps
  (no unmount before the rename in either mode), the parent, the undo after
  each kind of failure, ``clean_partial``;
* ``import_plan`` (locks, re-check under the locks, the leftovers found
  passed to the first attempt), ``check_origin_snapshot``
  and ``_import_one`` (retries, Content-Length, a failed origin) with a fake run.

What needs a real pool (real ``zfs send`` streams, mounts, the record's
bytes) is in tests/integration/targets/imgadm_image.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import bz2
import contextlib
import gzip
import hashlib
import itertools
import json
import lzma
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils import _importer
from ansible_collections.smartos.imgadm.plugins.module_utils._common import Result
from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandTimeoutError,
    DownloadError,
    ImgapiConnectionError,
    OriginNotInstalledError,
    OriginSnapshotMismatchError,
    UncompressionError,
    UnexpectedNumberOfSnapshotsError,
    ZfsError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._importer import (
    StreamStats,
    ZfsInstaller,
    check_origin_snapshot,
    file_chunks,
    import_plan,
    lock_order,
    stream_into_zfs,
    verify_stream,
)

UUID = '5b4e1d7c-1111-4a2b-8c3d-000000000001'
UUID2 = '5b4e1d7c-1111-4a2b-8c3d-000000000002'
MIB = 1 << 20
KIB64 = 64 * 1024

# ------------------------------------------------------------------ stand-ins for zfs receive and a decompressor

# "zfs receive": copies stdin to argv[1], LC_ALL to argv[1].env
RECEIVER = '''
import os, sys
with open(sys.argv[1], 'wb') as out:
    while True:
        b = sys.stdin.buffer.read(1 << 16)
        if not b:
            break
        out.write(b)
with open(sys.argv[1] + '.env', 'w') as f:
    f.write(os.environ.get('LC_ALL', ''))
'''

# a receive that fails after reading everything
FAILER = '''
import sys
sys.stdin.buffer.read()
sys.stderr.write("cannot receive new filesystem stream: invalid backup stream\\n")
sys.exit(1)
'''

# a receive that reads a little, then fails (out of space, say)
DIES_EARLY = '''
import sys
sys.stdin.buffer.read(65536)
sys.stderr.write("cannot receive new filesystem stream: out of space\\n")
sys.exit(1)
'''

# a receive that fails at once, without reading its input
QUITTER = '''
import sys
sys.stderr.write("cannot receive: out of space\\n")
sys.exit(1)
'''

# a receive that stops reading (a stuck pool)
STALLS = '''
import sys, time
sys.stdin.buffer.read(1000)
time.sleep(60)
'''

# a receive that hangs after its input ended (a stuck zfs receive)
SLEEPER = '''
import sys, time
sys.stdin.buffer.read()
time.sleep(60)
'''

# a decompressor that rejects its input after reading a little (bytes damaged on the way)
BAD_INPUT = '''
import sys
sys.stdin.buffer.read(1000)
sys.stderr.write("bad input: not in the expected format\\n")
sys.exit(1)
'''

# a decompressor that passes its input through (cat)
PASS = '''
import shutil, sys
shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)
'''


def py(script, *args):
    return [sys.executable, '-c', script] + [str(a) for a in args]


def receiver(tmp_path, extra=()):
    out = tmp_path / 'received'
    return py(RECEIVER, out, *extra), out


def find_bin(name):
    return shutil.which(name, path=os.pathsep.join([os.environ.get('PATH', os.defpath), '/usr/sbin', '/sbin'])) or name


def decompressor(compression):
    return [find_bin(compression), '-cdfq']


def compress(data, compression):
    """``data`` compressed (fast settings: the tests only need valid files)."""
    if compression == 'gzip':
        return gzip.compress(data, compresslevel=1)
    if compression == 'bzip2':
        return bz2.compress(data, compresslevel=1)
    if compression == 'xz':
        return lzma.compress(data, preset=0)
    assert compression == 'none'
    return data


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def chunked(data, size=KIB64):
    return [data[i:i + size] for i in range(0, len(data), size)]


def payload(size=3 * 100000):
    # compressible but not trivially so
    return os.urandom(100000) * (size // 100000)


class Counted(object):
    """A chunk source that counts how many chunks were pulled from it."""

    def __init__(self, count, size=KIB64):
        self.count = count
        self.size = size
        self.pulled = 0

    def __iter__(self):
        for i in range(self.count):
            self.pulled += 1
            yield bytes([i % 251]) * self.size

    def data(self, n=None):
        return b''.join(bytes([i % 251]) * self.size for i in range(self.count if n is None else n))


def image_manifest(uuid, filedata, compression='gzip', origin=None, name='utimage', version='1.0.0', **extra):
    """A minimal valid v2 manifest for ``filedata`` (the compressed file)."""
    m = OrderedDict([
        ('v', 2), ('uuid', uuid), ('owner', '00000000-0000-0000-0000-000000000000'), ('name', name),
        ('version', version), ('state', 'active'), ('disabled', False), ('public', True),
        ('published_at', '2024-01-02T03:04:05Z'), ('type', 'zone-dataset'), ('os', 'smartos'),
    ])
    if origin:
        m['origin'] = origin
    m['files'] = [OrderedDict([('sha1', sha1(filedata)), ('size', len(filedata)), ('compression', compression)])]
    m.update(extra)
    return m


def record_path(db_dir, pool, uuid):
    return os.path.join(str(db_dir), 'images', '%s-%s.json' % (pool, uuid))


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


def within(seconds, func, *args, **kwargs):
    """``func(*args, **kwargs)`` in a helper thread: its result or exception, or a test failure after ``seconds``
    (a missing deadline then fails the test instead of hanging the suite)."""
    box = {}

    def target():
        try:
            box['result'] = func(*args, **kwargs)
        except BaseException as e:  # pylint: disable=broad-exception-caught
            box['error'] = e

    thread = threading.Thread(target=target)
    thread.daemon = True
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail('still running after %s s: a deadline did not work' % seconds)
    if 'error' in box:
        raise box['error']
    return box['result']


def assert_reaped(procs):
    for proc in procs:
        assert proc.returncode is not None, 'child %d not waited for' % proc.pid
        with pytest.raises(ChildProcessError):  # no zombie left to reap
            os.waitpid(proc.pid, os.WNOHANG)
        assert not os.path.exists('/proc/%d' % proc.pid)


# ------------------------------------------------------------------ lock_order

def chain_manifests(*links):
    """``{uuid: manifest}`` from ``(uuid, origin)`` pairs."""
    return dict((u, {'uuid': u, 'origin': o} if o else {'uuid': u}) for u, o in links)


# two chains sharing a base: b <- a1 <- a2 and b <- c1; x stands alone
SHARED = chain_manifests(('b', None), ('a1', 'b'), ('a2', 'a1'), ('c1', 'b'), ('x', None))


@pytest.mark.parametrize('plan, manifests, origins, order', [
    pytest.param([], {}, (), [], id='nothing'),
    pytest.param(['b'], SHARED, (), ['b'], id='one'),
    pytest.param(['b', 'a1', 'a2', 'c1'], SHARED, (), ['a2', 'a1', 'c1', 'b'], id='two-chains-sharing-a-base'),
    pytest.param(['b', 'c1', 'a1'], SHARED, (), ['a1', 'c1', 'b'], id='tie-by-uuid'),
    pytest.param(['x', 'b'], SHARED, (), ['b', 'x'], id='independent-by-uuid'),
    pytest.param(['a2'], SHARED, ['a1'], ['a2', 'a1'], id='installed-origin-locked-too'),
    pytest.param(['a2', 'c1'], SHARED, ['a1', 'b'], ['a2', 'a1', 'c1', 'b'], id='installed-origins-of-two-chains'),
    pytest.param(['a1'], SHARED, ['b', 'b'], ['a1', 'b'], id='each-once'),
    # an origin whose manifest is not known still comes after its child
    pytest.param(['k'], chain_manifests(('k', 'o')), ['o'], ['k', 'o'], id='origin-manifest-unknown'),
    # a loop in bad manifests does not hang
    pytest.param(['p', 'q'], chain_manifests(('p', 'q'), ('q', 'p')), (), ['p', 'q'], id='loop-terminates'),
])
def test_lock_order(plan, manifests, origins, order):
    assert lock_order(plan, manifests, origins) == order


def test_lock_order_is_the_same_whatever_the_input_order():
    wanted = ['a2', 'a1', 'c1', 'b', 'x']
    for plan in itertools.permutations(['b', 'a1', 'a2', 'c1', 'x']):
        assert lock_order(list(plan), SHARED) == wanted
        assert lock_order(list(plan), dict(reversed(list(SHARED.items())))) == wanted


def test_lock_order_puts_every_child_before_its_origin():
    manifests = chain_manifests(*[('u%02d' % i, 'u%02d' % (i - 1) if i % 5 else None) for i in range(20)])
    order = lock_order(list(manifests), manifests)
    for child, m in manifests.items():
        if m.get('origin'):
            assert order.index(child) < order.index(m['origin'])


# ------------------------------------------------------------------ verify_stream, StreamStats, file_chunks

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
    (dict(expected_sha1='0' * 40, expected_md5='AAAA'),
     'image L file error: checksum (sha1): expected "%s", got "%s"' % ('0' * 40, sha1(DATA))),
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


# ------------------------------------------------------------------ stream_into_zfs: success

def test_stream_success_without_decompressor(tmp_path, popens):
    data = os.urandom(300000)
    argv, out = receiver(tmp_path)
    stats = stream_into_zfs(iter(chunked(data) + [b'']), argv, want_md5=True)
    assert out.read_bytes() == data
    assert (tmp_path / 'received.env').read_text() == 'C'  # LC_ALL=C forced on the children
    assert (stats.bytes, stats.sha1, stats.md5_b64) == (len(data), sha1(data), md5_b64(data))
    assert stats.seconds > 0 and stats.stopped_early is False
    assert [p.args for p in popens] == [argv]
    assert_reaped(popens)


def test_stream_success_through_a_fake_decompressor(tmp_path, popens):
    data = os.urandom(5 * KIB64 + 17)
    argv, out = receiver(tmp_path)
    stats = stream_into_zfs(iter(chunked(data)), argv, py(PASS))
    assert out.read_bytes() == data
    assert (stats.bytes, stats.sha1, stats.md5_b64) == (len(data), sha1(data), None)
    assert [p.args for p in popens] == [py(PASS), argv]
    assert_reaped(popens)


@pytest.mark.parametrize('compression', ['gzip', 'bzip2', 'xz'])
def test_stream_through_real_decompressor(tmp_path, compression, popens):
    raw = payload()
    data = compress(raw, compression)
    argv, out = receiver(tmp_path)
    stats = stream_into_zfs(iter(chunked(data, 4096)), argv, decompressor(compression))
    # the receive got the uncompressed bytes; the stats are about the file
    assert out.read_bytes() == raw
    assert (stats.bytes, stats.sha1, stats.md5_b64) == (len(data), sha1(data), None)
    assert [p.args[0] for p in popens] == [find_bin(compression), sys.executable]
    assert_reaped(popens)


def test_empty_stream(tmp_path):
    argv, out = receiver(tmp_path)
    stats = stream_into_zfs(iter([]), argv)
    assert out.read_bytes() == b''
    assert (stats.bytes, stats.sha1) == (0, sha1(b''))


# ------------------------------------------------------------------ the gate

class RecordingGate(object):
    """A context factory like ``CliBackend.receiving``: records enter/exit and what ran meanwhile."""

    def __init__(self, popens, fail=False):
        self.popens = popens
        self.fail = fail
        self.events = []
        self.exc_types = []  # what each exit was told (a gate settles a new mount only after a success)

    def __call__(self):
        gate = self

        class Hold(object):
            def __enter__(self):
                gate.events.append(('enter', len(gate.popens)))
                if gate.fail:
                    raise ZfsError('gate closed')
                return self

            def __exit__(self, *exc):
                gate.events.append(('exit', len(gate.popens), all(p.returncode is not None for p in gate.popens)))
                gate.exc_types.append(exc[0])
                return False

        return Hold()


def test_gate_is_held_around_the_whole_pipeline(tmp_path, popens):
    gate = RecordingGate(popens)
    argv, dummy = receiver(tmp_path)
    stream_into_zfs(iter([b'abc']), argv, py(PASS), gate=gate)
    # entered before any process started; left after both ended, told of no error
    assert gate.events == [('enter', 0), ('exit', 2, True)]
    assert gate.exc_types == [None]


def test_gate_is_left_on_failure(tmp_path, popens):
    gate = RecordingGate(popens)
    with pytest.raises(ZfsError):
        stream_into_zfs(iter(chunked(os.urandom(10000))), py(FAILER), gate=gate)
    assert gate.events == [('enter', 0), ('exit', 1, True)]
    assert gate.exc_types == [ZfsError]  # the gate learns that the receive failed


def test_a_gate_that_cannot_be_entered_starts_nothing(tmp_path, popens):
    gate = RecordingGate(popens, fail=True)
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter([b'abc']), receiver(tmp_path)[0], gate=gate)
    assert str(exc.value) == 'gate closed'
    assert popens == []


# ------------------------------------------------------------------ the receive fails

def test_receive_failure_is_zfs_error_with_stderr(tmp_path):
    data = os.urandom(50000)
    argv = py(FAILER)
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter(chunked(data)), argv, label='IMG')
    e = exc.value
    assert str(e) == ('zfs receive error while importing IMG: exit status 1: '
                      'cannot receive new filesystem stream: invalid backup stream')
    assert (e.rc, e.cmd) == (1, argv)
    assert e.stderr == 'cannot receive new filesystem stream: invalid backup stream'
    assert e.partial_stats.sha1 == sha1(data)  # it read everything: the whole input was hashed
    assert e.partial_stats.stopped_early is False


@pytest.mark.parametrize('script', [DIES_EARLY, QUITTER])
def test_receive_dying_stops_the_download_at_once(tmp_path, popens, script):
    source = Counted(2000)  # 125 MiB if it were read to the end
    start = time.monotonic()
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter(source), py(script), label='IMG')
    assert time.monotonic() - start < 10
    assert source.pulled < 100, 'the download went on after the receive died (%d chunks pulled)' % source.pulled
    assert 'out of space' in str(exc.value)
    assert str(exc.value).endswith('(the download was stopped after %d bytes)' % exc.value.partial_stats.bytes)
    assert exc.value.partial_stats.stopped_early is True
    assert exc.value.partial_stats.bytes < 100 * KIB64
    assert_reaped(popens)


@pytest.mark.parametrize('compression', [
    'gzip',
    'bzip2',
    'xz',
])
def test_receive_dying_behind_a_real_decompressor_stops_the_download(tmp_path, popens, compression):
    data = compress(os.urandom(4 * MIB), compression)
    pulled = []

    def chunks():
        for c in chunked(data):
            pulled.append(1)
            yield c

    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(chunks(), py(QUITTER), decompressor(compression))
    assert 'cannot receive: out of space' in str(exc.value)
    assert_reaped(popens)
    assert len(pulled) < len(chunked(data)) // 2, 'the whole file was downloaded for a dead receive'
    assert exc.value.partial_stats.stopped_early is True


# ------------------------------------------------------------------ the decompressor fails

def test_decompressor_rejecting_the_bytes_still_hashes_everything(tmp_path, popens):
    source = Counted(200)
    argv, dummy = receiver(tmp_path)
    with pytest.raises(UncompressionError) as exc:
        stream_into_zfs(iter(source), argv, py(BAD_INPUT), label='IMG')
    e = exc.value
    assert source.pulled == 200
    # so that the caller can name the checksum as the cause (ZfsInstaller.receive does)
    assert (e.partial_stats.bytes, e.partial_stats.sha1) == (200 * KIB64, sha1(source.data()))
    assert e.partial_stats.stopped_early is False
    assert str(e) == 'uncompressing IMG with "%s" failed (exit status 1): bad input: not in the expected format' % (
        ' '.join(py(BAD_INPUT)))
    assert e.details['exit_status'] == 1
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
def test_real_decompressor_failure_is_uncompression_error(tmp_path, compression, damage, status, text, popens):
    good = compress(payload(), compression)
    data = good[:len(good) // 2] if damage == 'truncate' else _corrupt(good)
    argv, dummy = receiver(tmp_path)
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


def test_missing_binary_is_zfs_error_and_kills_the_decompressor(tmp_path, popens):
    with pytest.raises(ZfsError) as exc:
        stream_into_zfs(iter([b'x']), ['/nonexistent/zfs', 'receive', 'p/x'], decompressor('gzip'), label='IMG')
    assert str(exc.value).startswith('cannot start the import pipeline for IMG: ')
    assert len(popens) == 1  # gzip started, then killed
    assert_reaped(popens)


# ------------------------------------------------------------------ deadlines

@pytest.mark.parametrize('with_decompressor', [False, True])
def test_receive_that_stops_reading_times_out(tmp_path, popens, with_decompressor):
    source = Counted(2000)
    argv = py(STALLS)
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError) as exc:
        within(20, stream_into_zfs, iter(source), argv, py(PASS) if with_decompressor else None, label='IMG', timeout=1)
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 5, elapsed
    assert str(exc.value) == ('%s accepted no data for 1 s (command_timeout) while importing IMG; it was killed'
                              % ' '.join(argv))
    assert exc.value.code == 'CommandTimeout'
    assert exc.value.details == {'cmd': argv, 'timeout': 1}
    assert source.pulled < 100
    assert popens[-1].returncode == -9
    assert_reaped(popens)


@pytest.mark.parametrize('with_decompressor', [False, True])
def test_receive_that_never_ends_times_out(tmp_path, popens, with_decompressor):
    argv = py(SLEEPER)
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError) as exc:
        within(20, stream_into_zfs, iter(chunked(os.urandom(100000))), argv, py(PASS) if with_decompressor else None,
               label='IMG', timeout=1)
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 5, elapsed
    assert str(exc.value) == ('%s did not finish within 1 s (command_timeout) after the whole image IMG was written; '
                              'it was killed' % ' '.join(argv))
    assert exc.value.partial_stats.bytes == 100000
    assert popens[-1].returncode == -9
    assert_reaped(popens)


def test_slow_but_steady_receive_is_no_timeout(tmp_path):
    # each chunk is taken within the deadline, the whole takes longer than it
    slow = '''
import sys, time
while sys.stdin.buffer.read(65536):
    time.sleep(0.03)
'''
    data = os.urandom(30 * KIB64)
    start = time.monotonic()
    stats = stream_into_zfs(iter(chunked(data)), py(slow), timeout=0.5)
    assert time.monotonic() - start > 0.6
    assert stats.sha1 == sha1(data)


# ------------------------------------------------------------------ the source breaks off

@pytest.mark.parametrize('with_decompressor', [False, True])
def test_source_breaking_off_is_reraised_and_children_killed(tmp_path, popens, with_decompressor):
    data = compress(payload(), 'gzip') if with_decompressor else os.urandom(3 * KIB64)
    cut = ImgapiConnectionError('http://x/images/U/file: connection lost after 3 chunks')

    def source():
        yield from chunked(data)[:3]
        raise cut

    start = time.monotonic()
    with pytest.raises(ImgapiConnectionError) as exc:
        within(20, stream_into_zfs, source(), py(SLEEPER), decompressor('gzip') if with_decompressor else None)
    assert time.monotonic() - start < 20, 'the hanging receive was waited for instead of killed'
    assert exc.value is cut
    assert 0 < exc.value.partial_stats.bytes <= sum(len(c) for c in chunked(data)[:3])
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
before = vm_kib('VmHWM')

def source():
    for i in range(total):
        yield bytes([i % 251]) * (1 << 20)  # a new, touched 1 MiB object each time

stats = _importer.stream_into_zfs(source(), argv)
print(json.dumps(dict(grown_mib=(vm_kib('VmHWM') - before) / 1024.0, bytes=stats.bytes)))
'''

# a receive that throws its input away, slowly enough that an unbounded queue fills up
DISCARD = '''
import sys, time
time.sleep(0.5)
while sys.stdin.buffer.read(1 << 20):
    pass
'''


@pytest.mark.parametrize('queue_chunks, bounded', [
    (_importer.QUEUE_CHUNKS, True),
    (0, False),  # control: an unbounded queue does show up in VmHWM
])
def test_memory_stays_bounded(tmp_path, queue_chunks, bounded):
    """96 MiB of fresh chunks from a generator: the queue holds only a few of them."""
    total = 96
    # the parent of ansible_collections/, for the child's imports
    top = os.path.abspath(_importer.__file__)
    for dummy in range(6):
        top = os.path.dirname(top)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([top] + [p for p in sys.path if p]))
    res = subprocess.run([sys.executable, '-c', MEMORY_PROBE, str(total), str(queue_chunks), json.dumps(py(DISCARD))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    assert res.returncode == 0, res.stderr.decode()
    probe = json.loads(res.stdout.decode().splitlines()[-1])
    assert probe['bytes'] == total * MIB
    if bounded:
        assert probe['grown_mib'] < 32, 'peak RSS grew by %.0f MiB while streaming %d MiB' % (probe['grown_mib'], total)
    else:
        assert probe['grown_mib'] > 48, 'the measurement cannot see an unbounded queue (%.0f MiB)' % probe['grown_mib']


# ------------------------------------------------------------------ ZfsInstaller with a recording backend

class RecordingDatabase(ImageDatabase):
    """The real database (files under tmp_path), with its writes and removals in the backend's call list."""

    def __init__(self, db_dir, calls):
        super(RecordingDatabase, self).__init__(db_dir)
        self.calls = calls

    def write(self, pool, uuid, manifest, source=None):
        self.calls.append(('db.write', uuid))
        return super(RecordingDatabase, self).write(pool, uuid, manifest, source=source)

    def remove(self, pool, uuid):
        self.calls.append(('db.remove', uuid))
        return super(RecordingDatabase, self).remove(pool, uuid)


class RecordingBackend(object):
    """Enough of a ``_zfs`` backend for ``ZfsInstaller``; ``receive_argv`` returns the fake receive.

    ``unmounted_receive`` is what ``supports_unmounted_receive`` answers: ``zfs receive -u`` exists (OpenZFS,
    illumos) or not (zfs-fuse). Changes, the receive and ``which_exist`` go to ``calls`` (in order, with the
    database's), ``exists`` questions to ``asked``. ``created_meanwhile``: a ``create_unmounted`` that fails
    (``fail``) because another task created the dataset meanwhile, which then exists.
    """

    def __init__(self, receive_argv, snapshots=None, fail=None, unmounted_receive=True, datasets=(), created_meanwhile=False):
        self.argv = receive_argv
        self.snapshots = snapshots
        self.fail = fail or {}  # call name -> exception
        self.unmounted_receive = unmounted_receive
        self.created_meanwhile = created_meanwhile
        self.datasets = set(datasets)
        self.calls = []
        self.asked = []

    def _maybe_fail(self, what, name):
        exc = self.fail.get(what)
        if exc is not None and (what != 'rename' or '@' not in name):
            raise exc

    def supports_unmounted_receive(self):
        return self.unmounted_receive

    def receive_argv(self, target, unmounted=True):
        self.calls.append(('receive_argv', target, unmounted))
        parent = target.rsplit('/', 1)[0]
        # a real zfs receive fails when the parent of its target is missing
        assert '/' not in parent or parent in self.datasets, 'received under %s, which does not exist' % parent
        self.datasets.add(target)
        return self.argv

    @contextlib.contextmanager
    def receiving(self, target):
        self.calls.append(('receiving', target))
        yield
        self.calls.append(('received', target))

    def exists(self, name):
        self.asked.append(name)
        return name in self.datasets

    def which_exist(self, names):
        names = list(names)
        self.calls.append(('which_exist', names))
        return set(names) & self.datasets

    def create_unmounted(self, name):
        self.calls.append(('create_unmounted', name))
        if 'create_unmounted' in self.fail:
            if self.created_meanwhile:
                self.datasets.add(name)
            raise self.fail['create_unmounted']
        self.datasets.add(name)

    def destroy(self, name, recursive=False):
        self.calls.append(('destroy', name, recursive))
        self.datasets.discard(name)

    def list_snapshots(self, ds):
        self.calls.append(('list_snapshots', ds))
        return [ds + '@' + s for s in (self.snapshots if self.snapshots is not None else ['final'])]

    def rename(self, old, new, recursive=False):
        self.calls.append(('rename', old, new, recursive))
        self._maybe_fail('rename', old)
        self.datasets.discard(old)
        self.datasets.add(new)

    def unmount(self, name):
        # the installer unmounts nothing (in either mode): a call shows up in the calls compared
        self.calls.append(('unmount', name))

    def mount(self, name):
        self.calls.append(('mount', name))
        self._maybe_fail('mount', name)


FINAL = 'zones/' + UUID
PARTIAL = 'zones/%s-partial' % UUID  # received here with "zfs receive -u"; the stock imgadm's name too
PARENT = 'zones/imgadm-partial'  # without -u (zfs-fuse): the never-mounted parent...
NESTED = PARENT + '/' + UUID  # ...and the image received under it


class Mode(object):
    """One of the two ways ``ZfsInstaller`` receives: ``zfs receive -u`` exists here, or not."""

    def __init__(self, unmounted_receive):
        self.unmounted_receive = unmounted_receive
        self.partial = PARTIAL if unmounted_receive else NESTED
        # what precedes the receive: the parent, created when missing
        self.setup = [] if unmounted_receive else [('create_unmounted', PARENT)]
        self.asked = [] if unmounted_receive else [PARENT]

    def backend(self, receive_argv, **kwargs):
        return RecordingBackend(receive_argv, unmounted_receive=self.unmounted_receive, **kwargs)


@pytest.fixture(params=[True, False], ids=['receive-u', 'no-receive-u'])
def mode(request):
    return Mode(request.param)


def installer_for(tmp_path, backend, timeout=30):
    decompressors = dict((c, decompressor(c)) for c in ('gzip', 'bzip2', 'xz'))
    return ZfsInstaller(backend, RecordingDatabase(str(tmp_path / 'db'), backend.calls), decompressors, timeout)


@pytest.mark.parametrize('unmounted_receive, pool, uuid, names, leftovers', [
    pytest.param(True, 'zones', UUID, (FINAL, PARTIAL), [PARTIAL], id='receive-u'),
    pytest.param(True, 'tank', UUID2, ('tank/' + UUID2, 'tank/%s-partial' % UUID2), ['tank/%s-partial' % UUID2],
                 id='receive-u-other-pool'),
    # ours under the parent, and the stock imgadm's (or an earlier run's) -partial
    pytest.param(False, 'zones', UUID, (FINAL, NESTED), [NESTED, PARTIAL], id='no-receive-u'),
    pytest.param(False, 'tank', UUID2, ('tank/' + UUID2, 'tank/imgadm-partial/' + UUID2),
                 ['tank/imgadm-partial/' + UUID2, 'tank/%s-partial' % UUID2], id='no-receive-u-other-pool'),
])
def test_installer_names_per_mode(tmp_path, unmounted_receive, pool, uuid, names, leftovers):
    backend = RecordingBackend(['true'], unmounted_receive=unmounted_receive)
    inst = installer_for(tmp_path, backend)
    assert inst.names(pool, uuid) == names
    assert inst.leftover_names(pool, uuid) == leftovers
    assert (backend.calls, backend.asked) == ([], [])  # naming changes and asks nothing


P, F = '<partial>', '<final>'


def fill(steps, partial, final):
    return [tuple(s.replace(P, partial).replace(F, final) if isinstance(s, str) else s for s in step) for step in steps]


@pytest.mark.parametrize('snapshots, zvol, steps', [
    pytest.param(['final'], False, [
        ('list_snapshots', P), ('db.write', UUID), ('rename', P, F, False), ('mount', F)], id='filesystem'),
    pytest.param(['build-2024'], False, [
        ('list_snapshots', P), ('rename', P + '@build-2024', P + '@final', True), ('db.write', UUID),
        ('rename', P, F, False), ('mount', F)], id='snapshot-renamed-to-final'),
    pytest.param(['final'], True, [
        ('list_snapshots', P), ('db.write', UUID), ('rename', P, F, False)], id='zvol-not-mounted'),
])
def test_installer_steps_in_order(tmp_path, mode, snapshots, zvol, steps):
    raw = payload()
    data = compress(raw, 'xz')
    argv, out = receiver(tmp_path)
    backend = mode.backend(argv, snapshots=snapshots)
    manifest = image_manifest(UUID, data, 'xz', **({'type': 'zvol'} if zvol else {}))
    stats = installer_for(tmp_path, backend).receive('zones', manifest, iter(chunked(data)), 'xz',
                                                     expected_size=len(data), expected_sha1=sha1(data), source='http://s')
    assert (stats.bytes, stats.sha1) == (len(data), sha1(data))
    assert out.read_bytes() == raw
    # the gate is asked for with the receive's target, held around the receive only
    assert backend.calls == mode.setup + [('receive_argv', mode.partial, True), ('receiving', mode.partial),
                                          ('received', mode.partial)] + fill(steps, mode.partial, FINAL)
    # unmounted either way (received with -u, or under the never-mounted parent): no unmount before the rename
    assert [c for c in backend.calls if c[0] == 'unmount'] == []
    assert backend.asked == mode.asked
    assert set(n for n in backend.datasets if '@' not in n) == set([FINAL] + ([] if mode.unmounted_receive else [PARENT]))
    with open(record_path(tmp_path / 'db', 'zones', UUID)) as fh:
        assert json.load(fh) == {'manifest': json.loads(json.dumps(manifest)), 'zpool': 'zones', 'source': 'http://s'}


def test_installer_creates_the_parent_once_and_only_when_missing(tmp_path):
    argv, dummy = receiver(tmp_path)
    backend = RecordingBackend(argv, unmounted_receive=False)
    inst = installer_for(tmp_path, backend)
    inst.receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    inst.receive('zones', image_manifest(UUID2, b'y', 'none'), iter([b'y']), 'none')
    assert [c for c in backend.calls if c[0] in ('create_unmounted', 'receive_argv')] == [
        ('create_unmounted', PARENT), ('receive_argv', NESTED, True), ('receive_argv', '%s/%s' % (PARENT, UUID2), True)]
    assert backend.asked == [PARENT]  # known for the rest of the run once made
    assert backend.datasets == set([PARENT, FINAL, 'zones/' + UUID2])


def test_installer_uses_an_existing_parent(tmp_path):
    argv, dummy = receiver(tmp_path)
    backend = RecordingBackend(argv, unmounted_receive=False, datasets=[PARENT])
    installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    assert backend.calls[0] == ('receive_argv', NESTED, True)
    assert 'create_unmounted' not in [c[0] for c in backend.calls]
    assert backend.asked == [PARENT]


@pytest.mark.parametrize('created_meanwhile', [
    pytest.param(True, id='created-by-another-task-meanwhile'),
    pytest.param(False, id='cannot-create'),
])
def test_installer_parent_creation_failing(tmp_path, created_meanwhile):
    argv, out = receiver(tmp_path)
    error = ZfsError("cannot create '%s': %s" % (PARENT, 'dataset already exists' if created_meanwhile else 'out of space'))
    backend = RecordingBackend(argv, unmounted_receive=False, fail={'create_unmounted': error},
                               created_meanwhile=created_meanwhile)
    inst = installer_for(tmp_path, backend)
    if created_meanwhile:  # fine: the parent is there
        inst.receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
        assert backend.calls[:2] == [('create_unmounted', PARENT), ('receive_argv', NESTED, True)]
        assert backend.asked == [PARENT, PARENT]  # missing, then there after all
        assert backend.datasets == set([PARENT, FINAL])
        return
    with pytest.raises(ZfsError) as exc:
        inst.receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    assert exc.value is error
    assert backend.calls == [('create_unmounted', PARENT)]  # nothing received, nothing to undo
    assert backend.asked == [PARENT, PARENT]
    assert not out.exists()
    assert not (tmp_path / 'db' / 'images').exists()


@pytest.mark.parametrize('fail_at, undo', [
    pytest.param('rename', [('destroy', P, True), ('db.remove', UUID)], id='final-rename'),
    # the final name was reached: it goes too
    pytest.param('mount', [('destroy', F, True), ('db.remove', UUID)], id='mount'),
])
def test_installer_failure_after_the_record_undoes_everything(tmp_path, mode, fail_at, undo):
    argv, dummy = receiver(tmp_path)
    error = ZfsError('cannot %s: Input/output error' % fail_at)
    backend = mode.backend(argv, fail={fail_at: error})
    with pytest.raises(ZfsError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    assert exc.value is error
    undo = fill(undo, mode.partial, FINAL)
    failed = backend.calls.index(('db.write', UUID))
    assert backend.calls[-len(undo):] == undo
    assert [c[0] for c in backend.calls[failed + 1:-len(undo)]][-1] == fail_at
    # "On any failure nothing is left: no -partial, no final dataset, no database record."
    # The parent stays, for the next import.
    assert backend.datasets == set([] if mode.unmounted_receive else [PARENT])
    assert not os.path.exists(record_path(tmp_path / 'db', 'zones', UUID))


@pytest.mark.parametrize('sha1_matches, error', [
    (False, DownloadError),  # wrong bytes: the checksum is the cause, report it
    (True, UncompressionError),  # the published file itself is broken
])
def test_installer_reports_checksum_before_uncompression_error(tmp_path, mode, sha1_matches, error):
    data = compress(payload(), 'gzip')
    bad = data[:len(data) // 2]
    argv, dummy = receiver(tmp_path)
    backend = mode.backend(argv)
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
    assert backend.calls[-1] == ('destroy', mode.partial, True)
    assert ('db.write', UUID) not in backend.calls
    assert not (tmp_path / 'db' / 'images').exists()


def test_installer_names_the_checksum_when_a_fake_decompressor_rejects_the_bytes(tmp_path, mode):
    source = Counted(50)
    backend = mode.backend(receiver(tmp_path)[0])
    inst = installer_for(tmp_path, backend)
    inst.decompressors = {'gzip': py(BAD_INPUT)}
    with pytest.raises(DownloadError) as exc:
        inst.receive('zones', image_manifest(UUID, b'other', 'gzip'), iter(source), 'gzip', expected_sha1=sha1(b'other'))
    assert 'checksum (sha1): expected "%s", got "%s"' % (sha1(b'other'), sha1(source.data())) in str(exc.value)
    assert backend.calls[-1] == ('destroy', mode.partial, True)


def test_installer_reports_the_receive_error_when_it_stopped_the_download(tmp_path, mode):
    # a dead receive stops the download: the hash of a part proves nothing, the receive's error is the cause
    backend = mode.backend(py(DIES_EARLY))
    source = Counted(2000)
    with pytest.raises(ZfsError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'other', 'none'), iter(source), 'none',
                                                 expected_sha1=sha1(b'other'))
    assert 'out of space' in str(exc.value)
    assert source.pulled < 100
    assert backend.calls[-1] == ('destroy', mode.partial, True)


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
    argv, dummy = receiver(tmp_path)
    manifest = image_manifest(UUID, data, 'none')
    del manifest['files'][0]['sha1']
    inst = installer_for(tmp_path, RecordingBackend(argv))
    stats = inst.receive('zones', manifest, iter([data]), 'none', expected_md5=md5_b64(data))
    assert stats.md5_b64 == md5_b64(data)
    with pytest.raises(DownloadError) as exc:
        installer_for(tmp_path, RecordingBackend(argv)).receive('zones', manifest, iter([data]), 'none',
                                                                expected_md5=md5_b64(b'x'))
    assert 'checksum (Content-MD5): expected "%s", got "%s"' % (md5_b64(b'x'), md5_b64(data)) in str(exc.value)


def test_installer_unknown_compression(tmp_path, mode):
    backend = mode.backend(['true'])
    with pytest.raises(DownloadError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x'), iter([b'x']), 'lz4')
    assert 'unknown compression "lz4"' in str(exc.value)
    assert (backend.calls, backend.asked) == ([], [])  # refused before anything, the parent included


@pytest.mark.parametrize('snapshots', [[], ['a', 'b']])
def test_installer_needs_exactly_one_snapshot(tmp_path, mode, snapshots):
    argv, dummy = receiver(tmp_path)
    backend = mode.backend(argv, snapshots=snapshots)
    with pytest.raises(UnexpectedNumberOfSnapshotsError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'x', 'none'), iter([b'x']), 'none')
    assert 'expected exactly one snapshot after zfs receive, found %d' % len(snapshots) in str(exc.value)
    assert exc.value.details['snapshots'] == [mode.partial + '@' + s for s in snapshots]
    assert backend.calls[-1] == ('destroy', mode.partial, True)
    assert ('db.write', UUID) not in backend.calls


def test_installer_source_error_is_reraised_after_cleanup(tmp_path, mode):
    argv, dummy = receiver(tmp_path)
    backend = mode.backend(argv)
    cut = ImgapiConnectionError('cut')

    def source():
        yield b'x'
        raise cut

    with pytest.raises(ImgapiConnectionError) as exc:
        installer_for(tmp_path, backend).receive('zones', image_manifest(UUID, b'xx', 'none'), source(), 'none',
                                                 expected_sha1=sha1(b'xx'))
    assert exc.value is cut
    assert backend.calls[-1] == ('destroy', mode.partial, True)
    assert backend.datasets == set([] if mode.unmounted_receive else [PARENT])


def test_installer_passes_its_timeout_to_the_stream(tmp_path, mode):
    backend = mode.backend(py(SLEEPER))
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError):
        within(20, installer_for(tmp_path, backend, timeout=1).receive, 'zones', image_manifest(UUID, b'x', 'none'),
               iter([b'x']), 'none')
    assert time.monotonic() - start < 5
    assert backend.calls[-1] == ('destroy', mode.partial, True)


def test_clean_partial_destroys_exactly_the_found_leftovers(tmp_path, mode):
    backend = mode.backend(['true'])
    inst = installer_for(tmp_path, backend)
    leftovers = [PARTIAL] if mode.unmounted_receive else [NESTED, PARTIAL]
    # nothing left: asked once, nothing destroyed
    inst.clean_partial('zones', UUID)
    assert backend.calls == [('which_exist', leftovers)]
    # every leftover there, beside datasets that are not this image's leftovers
    others = [FINAL, 'zones/%s-partial' % UUID2, '%s/%s' % (PARENT, UUID2)] + ([] if mode.unmounted_receive else [PARENT])
    for found in [leftovers] + [[n] for n in leftovers]:
        del backend.calls[:]
        backend.datasets = set(found + others)
        inst.clean_partial('zones', UUID)
        assert backend.calls[0] == ('which_exist', leftovers)
        assert sorted(backend.calls[1:]) == sorted(('destroy', n, True) for n in found)
        assert backend.datasets == set(others)
    # the caller's answer is trusted: nothing asked, exactly what it found destroyed
    del backend.calls[:]
    backend.datasets = set(leftovers + others)
    inst.clean_partial('zones', UUID, found=[])
    assert backend.calls == []
    inst.clean_partial('zones', UUID, found=leftovers[-1:])
    assert backend.calls == [('destroy', leftovers[-1], True)]
    assert backend.asked == []


# ------------------------------------------------------------------ import_plan, check_origin_snapshot, _import_one

BASE = '6c1e0a5e-0000-4000-8000-00000000000b'
INC = '6c1e0a5e-0000-4000-8000-00000000000c'
TOP = '6c1e0a5e-0000-4000-8000-00000000000d'


class FakeSource(object):
    url = 'http://src'


class FakeFile(object):
    def __init__(self, data, content_length=None, cut=False):
        self.data = data
        self.content_length = len(data) if content_length is None else content_length
        self.content_md5 = md5_b64(data)
        self.cut = cut

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def iter_chunks(self, size):
        yield self.data[:1]
        if self.cut:
            raise ImgapiConnectionError('connection lost after 1 bytes')
        yield self.data[1:]


class FakeClient(object):
    def __init__(self, run):
        self.run = run

    def get_image_file(self, uuid):
        self.run.events.append(('get_image_file', uuid))
        files = self.run.files[uuid]
        return files.pop(0) if len(files) > 1 else files[0]


class FakeSources(object):
    def __init__(self, run):
        self.run = run

    def client(self, source):
        return FakeClient(self.run)


class FakeInstaller(ZfsInstaller):
    """The real naming (``names``, ``leftover_names``) and ``clean_partial`` over the run's backend; the receive faked."""

    def __init__(self, run):
        super(FakeInstaller, self).__init__(run.backend, run.db, {}, 30)
        self.run = run

    def clean_partial(self, pool, uuid, found=None):
        self.run.events.append(('clean_partial', uuid, None if found is None else list(found)))
        super(FakeInstaller, self).clean_partial(pool, uuid, found=found)

    def receive(self, pool, manifest, chunks, compression, **kwargs):
        data = b''.join(chunks)
        self.run.events.append(('receive', manifest['uuid'], compression, kwargs['expected_size'], kwargs['source']))
        if manifest['uuid'] in self.run.fail_receive:
            raise self.run.fail_receive[manifest['uuid']]
        stats = StreamStats()
        stats.bytes, stats.sha1, stats.seconds = len(data), sha1(data), 0.5
        return stats


class FakeBackend(object):
    def __init__(self, run, existing=(), guids=None, unmounted_receive=True):
        self.run = run
        self.existing = set(existing)
        self.guids = guids or {}
        self.unmounted_receive = unmounted_receive

    def supports_unmounted_receive(self):
        return self.unmounted_receive

    def which_exist(self, names):
        self.run.events.append(('which_exist', sorted(names)))
        return set(names) & self.existing

    def destroy(self, name, recursive=False):
        self.run.events.append(('destroy', name, recursive))
        self.existing.discard(name)

    def get_properties(self, names, props):
        self.run.events.append(('get_properties', list(names), list(props)))
        return dict((n, {'guid': self.guids.get(n)}) for n in names)


class FakeInstalled(object):
    def __init__(self, run):
        self.run = run

    def mark(self, pool, uuid, installed):
        self.run.events.append(('mark', uuid, installed))


class FakeRun(object):
    """What ``import_plan`` and ``_import_one`` use of an ``ImageRun``."""

    pool = 'zones'

    def __init__(self, tmp_path, existing=(), guids=None, retries=0, concurrency=2, unmounted_receive=True):
        self.params = dict(lock_dir=str(tmp_path), lock_timeout=2.0, retries=retries, concurrency=concurrency)
        self.events = []
        self.files = {}
        self.fail_receive = {}
        self.result = Result(None)
        self.result.data.update(imported=[], imported_by_others=[])
        self.backend = FakeBackend(self, existing, guids, unmounted_receive)
        self.installed = FakeInstalled(self)
        self.sources = FakeSources(self)
        self.db = ImageDatabase(str(tmp_path / 'db'))

    def installer(self):
        return FakeInstaller(self)

    def record_import(self, manifest, source_url, compression, stats, attempts):
        self.events.append(('record_import', manifest['uuid'], attempts))
        self.result.data['imported'].append((manifest['uuid'], attempts))


def leftovers_of(uuid, unmounted_receive):
    """Where a killed run may have left ``uuid`` half received, in each mode."""
    stock = 'zones/%s-partial' % uuid
    return [stock] if unmounted_receive else ['zones/imgadm-partial/' + uuid, stock]


def plan_of(*manifests):
    return OrderedDict((m['uuid'], (m, FakeSource())) for m in manifests)


def publish(run, manifest, data, **file_kwargs):
    run.files.setdefault(manifest['uuid'], []).append(FakeFile(data, **file_kwargs))


@pytest.fixture
def locked(monkeypatch):
    """The uuids ``import_plan`` locks, in order (the real locks are taken, in tmp_path)."""
    taken = []
    real = _importer.acquire_locks

    def recording(uuids, **kwargs):
        taken.append(list(uuids))
        return real(uuids, **kwargs)

    monkeypatch.setattr(_importer, 'acquire_locks', recording)
    return taken


@pytest.mark.parametrize('unmounted_receive', [True, False], ids=['receive-u', 'no-receive-u'])
def test_import_plan_locks_child_first_with_the_installed_origin(tmp_path, locked, unmounted_receive):
    run = FakeRun(tmp_path, existing=['zones/' + BASE], unmounted_receive=unmounted_receive)
    mbase = image_manifest(BASE, b'base', 'none')
    minc, mtop = image_manifest(INC, b'inc', 'gzip', origin=BASE), image_manifest(TOP, b'top', 'xz', origin=INC)
    publish(run, minc, b'inc')
    publish(run, mtop, b'top')
    import_plan(run, plan_of(minc, mtop), {BASE: mbase, INC: minc, TOP: mtop})
    assert locked == [[TOP, INC, BASE]]
    assert sorted(n for n in os.listdir(str(tmp_path)) if n.endswith('.lock')) == sorted(
        'img.%s.import.lock' % u for u in (BASE, INC, TOP))
    # re-checked once under the locks: finals of everything locked, leftovers (this mode's) of the plan,
    # and the never-mounted parent where there is one (asked here, not by the installer)
    assert run.events[0] == ('which_exist', sorted(['zones/' + u for u in (TOP, INC, BASE)]
                                                   + leftovers_of(INC, unmounted_receive) + leftovers_of(TOP, unmounted_receive)
                                                   + ([] if unmounted_receive else ['zones/imgadm-partial'])))
    assert [e for e in run.events if e[0] == 'which_exist'] == [run.events[0]]  # nothing found: not asked again
    assert [e for e in run.events if e[0] == 'clean_partial'] == [('clean_partial', INC, []), ('clean_partial', TOP, [])]
    receives = [e for e in run.events if e[0] == 'receive']
    assert receives == [('receive', INC, 'gzip', 3, 'http://src'), ('receive', TOP, 'xz', 3, 'http://src')]
    assert run.result.data['imported'] == [(INC, 1), (TOP, 1)]
    assert ('mark', INC, True) in run.events and ('mark', TOP, True) in run.events


@pytest.mark.parametrize('unmounted_receive, left, passed', [
    pytest.param(True, ['zones/%s-partial' % INC], ['zones/%s-partial' % INC], id='receive-u'),
    pytest.param(True, [], [], id='receive-u-nothing-left'),
    # not where this mode receives: not this image's leftover here
    pytest.param(True, ['zones/imgadm-partial/' + INC], [], id='receive-u-other-name-untouched'),
    pytest.param(False, ['zones/imgadm-partial/' + INC], ['zones/imgadm-partial/' + INC], id='no-receive-u-ours'),
    pytest.param(False, ['zones/%s-partial' % INC], ['zones/%s-partial' % INC], id='no-receive-u-stock-imgadm'),
    pytest.param(False, ['zones/%s-partial' % INC, 'zones/imgadm-partial/' + INC],
                 ['zones/imgadm-partial/' + INC, 'zones/%s-partial' % INC], id='no-receive-u-both'),
    pytest.param(False, [], [], id='no-receive-u-nothing-left'),
])
def test_import_plan_image_imported_meanwhile_is_not_ours(tmp_path, locked, unmounted_receive, left, passed):
    # BASE's leftovers are not looked for: BASE was imported by another process
    others = ['zones/%s-partial' % BASE, 'zones/imgadm-partial/' + BASE]
    run = FakeRun(tmp_path, existing=['zones/' + BASE] + left + others, unmounted_receive=unmounted_receive)
    mbase, minc = image_manifest(BASE, b'base', 'none', name='base', version='1'), image_manifest(INC, b'inc', 'none', origin=BASE)
    publish(run, minc, b'inc')
    import_plan(run, plan_of(mbase, minc), {BASE: mbase, INC: minc})
    assert run.result.data['imported_by_others'] == [BASE]
    assert run.result.warnings == ['image %s (base@1) was imported by another process while this task waited for its lock; '
                                   'it is not counted as changed by this task' % BASE]
    assert ('mark', BASE, True) in run.events
    assert [e[1] for e in run.events if e[0] == 'receive'] == [INC]
    # the leftovers seen under the lock are cleaned before the first attempt, without asking again
    assert [e for e in run.events if e[0] == 'clean_partial'] == [('clean_partial', INC, passed)]
    assert [e for e in run.events if e[0] == 'destroy'] == [('destroy', n, True) for n in passed]
    assert len([e for e in run.events if e[0] == 'which_exist']) == 1
    assert run.backend.existing == set(['zones/' + BASE] + others + [n for n in left if n not in passed])


def test_import_plan_origin_deleted_meanwhile(tmp_path, locked):
    run = FakeRun(tmp_path, existing=[])
    mbase, minc = image_manifest(BASE, b'base', 'none'), image_manifest(INC, b'inc', 'none', origin=BASE)
    with pytest.raises(OriginNotInstalledError) as exc:
        import_plan(run, plan_of(minc), {BASE: mbase, INC: minc})
    assert exc.value.details == {'uuid': INC, 'origin': BASE}
    assert 'no longer installed' in str(exc.value)
    assert [e for e in run.events if e[0] == 'receive'] == []
    assert locked == [[INC, BASE]]


def test_import_plan_failed_origin_stops_its_chain_only(tmp_path, locked):
    run = FakeRun(tmp_path, existing=[])
    other = '6c1e0a5e-0000-4000-8000-0000000000ee'
    mbase, minc = image_manifest(BASE, b'base', 'none'), image_manifest(INC, b'inc', 'none', origin=BASE)
    mother = image_manifest(other, b'other', 'none')
    for m, d in ((mbase, b'base'), (minc, b'inc'), (mother, b'other')):
        publish(run, m, d)
    run.fail_receive[BASE] = DownloadError('image %s file error: checksum (sha1)' % BASE)
    with pytest.raises(DownloadError) as exc:
        import_plan(run, plan_of(mbase, minc, mother), {BASE: mbase, INC: minc, other: mother})
    assert BASE in str(exc.value)
    assert ('get_image_file', INC) not in run.events  # never tried once its origin failed
    assert ('receive', other, 'none', 5, 'http://src') in run.events  # an independent image is imported
    assert run.result.data['imported'] == [(other, 1)]


@pytest.mark.parametrize('unmounted_receive', [True, False], ids=['receive-u', 'no-receive-u'])
@pytest.mark.parametrize('retries, attempts', [(0, None), (1, 2), (3, 2)])
def test_import_one_retries_a_cut_download(tmp_path, locked, retries, attempts, unmounted_receive):
    run = FakeRun(tmp_path, retries=retries, unmounted_receive=unmounted_receive)
    mbase = image_manifest(BASE, b'base', 'none')
    publish(run, mbase, b'base', cut=True)
    publish(run, mbase, b'base')
    if attempts is None:
        with pytest.raises(ImgapiConnectionError):
            import_plan(run, plan_of(mbase), {BASE: mbase})
        assert run.result.data['imported'] == []
        return
    import_plan(run, plan_of(mbase), {BASE: mbase})
    assert run.result.data['imported'] == [(BASE, attempts)]
    # every attempt starts from a clean slate: the first with the answer from the re-check, then asking again
    assert [e for e in run.events if e[0] == 'clean_partial'] == [('clean_partial', BASE, []), ('clean_partial', BASE, None)]
    # the second attempt asks again, for this mode's leftovers
    assert [e for e in run.events if e[0] == 'which_exist'][1:] == [('which_exist', sorted(leftovers_of(BASE, unmounted_receive)))]


@pytest.mark.parametrize('content_length, size, text', [
    (None, None, 'unexpected missing or invalid Content-Length header'),
    (5, 4, 'unexpected mismatch between expected size, 4, and Content-Length header, 5'),
])
def test_import_one_checks_content_length(tmp_path, locked, content_length, size, text):
    run = FakeRun(tmp_path)
    mbase = image_manifest(BASE, b'base', 'none')
    mbase['files'][0]['size'] = size if size is not None else 4
    publish(run, mbase, b'base', content_length=content_length if content_length is not None else 5)
    if content_length is None:
        run.files[BASE][0].content_length = None
    with pytest.raises(DownloadError) as exc:
        import_plan(run, plan_of(mbase), {BASE: mbase})
    assert str(exc.value) == 'image %s: %s' % (BASE, text)
    assert [e for e in run.events if e[0] == 'receive'] == []


@pytest.mark.parametrize('origin_guid, installed_guid, error', [
    ('123', '123', False),
    ('123', '456', True),
    (None, '456', False),  # no dataset_guid served: zfs receive judges
    ('123', None, False),  # no @final to compare (zfs receive fails then)
])
def test_check_origin_snapshot(tmp_path, origin_guid, installed_guid, error):
    run = FakeRun(tmp_path, guids={'zones/%s@final' % BASE: installed_guid})
    mbase = image_manifest(BASE, b'base', 'none')
    if origin_guid:
        mbase['files'][0]['dataset_guid'] = origin_guid
    minc = image_manifest(INC, b'inc', 'none', origin=BASE, name='inc', version='2')
    if not error:
        check_origin_snapshot(run, minc, {BASE: mbase})
    else:
        with pytest.raises(OriginSnapshotMismatchError) as exc:
            check_origin_snapshot(run, minc, {BASE: mbase})
        assert exc.value.details == {'uuid': INC, 'origin': BASE, 'expected_guid': '123', 'found_guid': '456'}
        assert 'image %s (inc@2) is incremental from zones/%s@final with guid 123' % (INC, BASE) in str(exc.value)
    asked = [e for e in run.events if e[0] == 'get_properties']
    assert asked == ([('get_properties', ['zones/%s@final' % BASE], ['guid'])] if origin_guid else [])


def test_check_origin_snapshot_reads_the_installed_record(tmp_path):
    run = FakeRun(tmp_path, guids={'zones/%s@final' % BASE: '456'})
    mbase = image_manifest(BASE, b'base', 'none')
    mbase['files'][0]['dataset_guid'] = '123'
    run.db.write('zones', BASE, mbase)
    with pytest.raises(OriginSnapshotMismatchError):
        check_origin_snapshot(run, image_manifest(INC, b'inc', 'none', origin=BASE), {})


def test_import_plan_refuses_a_wrong_origin_before_downloading(tmp_path, locked):
    run = FakeRun(tmp_path, existing=['zones/' + BASE], guids={'zones/%s@final' % BASE: '456'})
    mbase = image_manifest(BASE, b'base', 'none')
    mbase['files'][0]['dataset_guid'] = '123'
    minc = image_manifest(INC, b'inc', 'none', origin=BASE)
    publish(run, minc, b'inc')
    with pytest.raises(OriginSnapshotMismatchError):
        import_plan(run, plan_of(minc), {BASE: mbase, INC: minc})
    assert not any(e[0] == 'get_image_file' for e in run.events)


def test_import_plan_runs_independent_chains_side_by_side(tmp_path, locked):
    run = FakeRun(tmp_path, concurrency=2)
    other = '6c1e0a5e-0000-4000-8000-0000000000ee'
    mbase, mother = image_manifest(BASE, b'base', 'none'), image_manifest(other, b'other', 'none')
    publish(run, mbase, b'base')
    publish(run, mother, b'other')
    inside = []
    both = threading.Barrier(2, timeout=5)

    class Overlapping(FakeInstaller):
        def receive(self, pool, manifest, chunks, compression, **kwargs):
            inside.append(manifest['uuid'])
            both.wait()  # raises BrokenBarrierError if the two never run at the same time
            return super(Overlapping, self).receive(pool, manifest, chunks, compression, **kwargs)

    run.installer = lambda: Overlapping(run)
    import_plan(run, plan_of(mbase, mother), {BASE: mbase, other: mother})
    assert sorted(inside) == sorted([BASE, other])
