# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_locks.py with real fcntl locks across processes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import InvalidUUIDError, LockError, UsageError
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import (
    FileLock,
    ImageLock,
    acquire_locks,
    image_lock_path,
)

UUID_A = '11111111-1111-4111-8111-111111111111'
UUID_B = '22222222-2222-4222-8222-222222222222'
UUID_C = '33333333-3333-4333-8333-333333333333'
UUID_HEX = 'abcdef01-23ab-4cde-8f01-23456789abcd'

# A child process that locks PATH and keeps the lock until a line arrives on stdin.
#   lockf: fcntl.lockf(LOCK_EX), i.e. F_SETLKW/F_WRLCK
#   fcntl: a raw fcntl(F_SETLKW, struct flock{F_WRLCK, SEEK_SET, 0, 0}) like node-qlocker
HOLDER = r'''
import fcntl, os, struct, sys
path, style = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
if style == 'fcntl':
    fcntl.fcntl(fd, fcntl.F_SETLKW, struct.pack('hhqqi', fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
else:
    fcntl.lockf(fd, fcntl.LOCK_EX)
sys.stdout.write('locked\n')
sys.stdout.flush()
sys.stdin.readline()
os.close(fd)
'''

# A child process that tries a non-blocking POSIX write lock and says whether it got it.
PROBE = r'''
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError as exc:
    if exc.errno not in (errno.EAGAIN, errno.EACCES):
        raise
    print('busy')
else:
    print('free')
'''

LINUX_64 = sys.platform.startswith('linux') and struct.calcsize('P') == 8


class Holder:
    def __init__(self, path, style='lockf'):
        self.proc = subprocess.Popen([sys.executable, '-c', HOLDER, path, style],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
        line = self.proc.stdout.readline()
        assert line == 'locked\n', 'holder did not lock %s' % path

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write('\n')
            self.proc.stdin.flush()
            self.proc.wait(10)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()


@pytest.fixture
def hold():
    holders = []

    def start(path, style='lockf'):
        holder = Holder(str(path), style)
        holders.append(holder)
        return holder

    yield start
    for holder in holders:
        holder.kill()


def probe(path):
    """'busy' or 'free', as seen from another process."""
    res = subprocess.run([sys.executable, '-c', PROBE, str(path)], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    return res.stdout.strip()


def lock_file(tmp_path, uuid):
    return tmp_path / ('img.%s.import.lock' % uuid)


# ------------------------------------------------------------------ path, mode, validation

def test_lock_file_name_mode_and_left_in_place(tmp_path):
    old_umask = os.umask(0o077)
    try:
        with ImageLock(UUID_A, lock_dir=str(tmp_path)) as lock:
            path = lock_file(tmp_path, UUID_A)
            assert lock.path == str(path)
            assert lock.locked
            assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
            assert probe(path) == 'busy'
    finally:
        os.umask(old_umask)
    assert not lock.locked
    assert path.exists(), 'the lock file must never be deleted'
    assert path.read_bytes() == b''
    assert probe(path) == 'free'


def test_existing_lock_file_is_not_truncated(tmp_path):
    path = lock_file(tmp_path, UUID_A)
    path.write_text('someone else')
    os.chmod(str(path), 0o600)
    with ImageLock(UUID_A, lock_dir=str(tmp_path)):
        pass
    assert path.read_text() == 'someone else'
    # an existing file keeps its mode: we only set 0644 on files we create
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600


def test_default_lock_dir_is_var_run():
    assert image_lock_path(UUID_A) == '/var/run/img.%s.import.lock' % UUID_A
    assert image_lock_path(UUID_HEX, '/tmp/x') == '/tmp/x/img.%s.import.lock' % UUID_HEX


@pytest.mark.parametrize('bad', [
    UUID_HEX.upper(), UUID_A[:-1], UUID_A + '0', '../../etc/passwd', '', None, 42,
    '11111111_1111_4111_8111_111111111111',
])
def test_invalid_uuid_refused(tmp_path, bad):
    with pytest.raises(InvalidUUIDError) as excinfo:
        ImageLock(bad, lock_dir=str(tmp_path))
    assert isinstance(excinfo.value, UsageError)
    assert excinfo.value.details['field'] == 'uuid'
    assert os.listdir(str(tmp_path)) == []


def test_negative_timeout_refused(tmp_path):
    with pytest.raises(ValueError):
        FileLock(str(tmp_path / 'x.lock'), timeout=-1)


def test_missing_lock_dir_is_a_lock_error(tmp_path):
    with pytest.raises(LockError) as excinfo:
        ImageLock(UUID_A, lock_dir=str(tmp_path / 'missing'), timeout=0).acquire()
    assert 'cannot open lock file' in str(excinfo.value)


# ------------------------------------------------------------------ across processes

def test_times_out_when_another_process_holds_it(tmp_path, hold):
    holder = hold(lock_file(tmp_path, UUID_A))
    waits = []
    lock = ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=0.6, on_wait=waits.append)
    start = time.monotonic()
    with pytest.raises(LockError) as excinfo:
        lock.acquire()
    elapsed = time.monotonic() - start
    assert 0.55 <= elapsed < 3
    exc = excinfo.value
    assert exc.code == 'LockTimeout'
    assert UUID_A in str(exc) and str(lock_file(tmp_path, UUID_A)) in str(exc) and '0.6' in str(exc)
    assert exc.details == {'uuid': UUID_A, 'path': str(lock_file(tmp_path, UUID_A)), 'timeout': 0.6}
    assert waits == [lock], 'on_wait is called once, when the first try fails'
    assert not lock.locked
    holder.release()
    # released by the other process: we get it at once
    with ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=0) as lock:
        assert lock.locked


def test_zero_timeout_tries_once(tmp_path, hold):
    hold(lock_file(tmp_path, UUID_A))
    start = time.monotonic()
    with pytest.raises(LockError):
        ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=0).acquire()
    assert time.monotonic() - start < 0.2


@pytest.mark.skipif(not LINUX_64, reason='raw struct flock layout written for 64-bit Linux')
def test_reference_style_fcntl_lock_excludes_us(tmp_path, hold):
    holder = hold(lock_file(tmp_path, UUID_A), style='fcntl')
    with pytest.raises(LockError):
        ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=0.3).acquire()
    holder.release()
    with ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=0):
        # and our lock blocks a reference-style locker in turn
        proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(lock_file(tmp_path, UUID_A)), 'fcntl'],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
        try:
            time.sleep(0.5)
            assert proc.poll() is None, 'the F_SETLKW locker should be waiting'
        finally:
            proc.kill()
            proc.wait(10)
            proc.stdin.close()
            proc.stdout.close()


def _release_later(holder, delay):
    timer = threading.Timer(delay, holder.release)
    timer.start()
    return timer


@pytest.mark.parametrize('timeout', [10, None])
def test_waiter_gets_the_lock_when_released(tmp_path, hold, timeout):
    holder = hold(lock_file(tmp_path, UUID_A))
    timer = _release_later(holder, 0.5)
    try:
        lock = ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=timeout).acquire()
    finally:
        timer.join()
    try:
        assert lock.locked
        assert 0.4 <= lock.waited < 5
        assert probe(lock_file(tmp_path, UUID_A)) == 'busy'
    finally:
        lock.release()
    lock.release()  # a second release is harmless
    assert probe(lock_file(tmp_path, UUID_A)) == 'free'


# ------------------------------------------------------------------ several locks

def test_acquire_locks_in_order_and_release(tmp_path):
    locks = acquire_locks([UUID_B, UUID_A, UUID_B], lock_dir=str(tmp_path), timeout=1)
    try:
        assert locks.uuids == [UUID_B, UUID_A], 'given order, duplicates once'
        assert probe(lock_file(tmp_path, UUID_A)) == 'busy'
        assert probe(lock_file(tmp_path, UUID_B)) == 'busy'
    finally:
        locks.release()
    assert locks.uuids == []
    assert probe(lock_file(tmp_path, UUID_A)) == 'free'
    assert probe(lock_file(tmp_path, UUID_B)) == 'free'
    with acquire_locks([UUID_C], lock_dir=str(tmp_path)) as held:
        assert held.uuids == [UUID_C]
        assert probe(lock_file(tmp_path, UUID_C)) == 'busy'
    assert probe(lock_file(tmp_path, UUID_C)) == 'free'


def test_acquire_locks_releases_held_ones_on_failure(tmp_path, hold):
    hold(lock_file(tmp_path, UUID_B))
    start = time.monotonic()
    with pytest.raises(LockError) as excinfo:
        acquire_locks([UUID_A, UUID_B, UUID_C], lock_dir=str(tmp_path), timeout=0.5)
    assert time.monotonic() - start < 3
    assert excinfo.value.details['uuid'] == UUID_B
    assert excinfo.value.details['timeout'] == 0.5
    # A was taken first, then given back; C was never tried
    assert lock_file(tmp_path, UUID_A).exists()
    assert probe(lock_file(tmp_path, UUID_A)) == 'free'
    assert not lock_file(tmp_path, UUID_C).exists()
    with ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=0):
        pass


def test_acquire_locks_stops_at_the_first_busy_one(tmp_path, hold):
    hold(lock_file(tmp_path, UUID_A))
    with pytest.raises(LockError) as excinfo:
        acquire_locks([UUID_A, UUID_B], lock_dir=str(tmp_path), timeout=0.3)
    assert excinfo.value.details['uuid'] == UUID_A
    assert not lock_file(tmp_path, UUID_B).exists()


def test_acquire_locks_validates_every_uuid_first(tmp_path):
    with pytest.raises(InvalidUUIDError):
        acquire_locks([UUID_A, 'not-a-uuid'], lock_dir=str(tmp_path))
    assert os.listdir(str(tmp_path)) == []


# ------------------------------------------------------------------ inside one process

def test_same_thread_cannot_take_it_twice(tmp_path):
    with ImageLock(UUID_A, lock_dir=str(tmp_path)):
        with pytest.raises(LockError) as excinfo:
            ImageLock(UUID_A, lock_dir=str(tmp_path), timeout=5).acquire()
        assert 'already held by this thread' in str(excinfo.value)
        # the refused attempt did not drop the real lock (closing a fd would)
        assert probe(lock_file(tmp_path, UUID_A)) == 'busy'
    assert probe(lock_file(tmp_path, UUID_A)) == 'free'


def test_object_cannot_be_acquired_twice(tmp_path):
    lock = FileLock(str(tmp_path / 'imgadm.conf.lock'))
    with lock:
        with pytest.raises(LockError):
            lock.acquire()


def test_threads_of_one_process_are_serialised(tmp_path):
    path = str(tmp_path / 'imgadm.conf.lock')
    held = threading.Event()
    done = threading.Event()
    results = []

    def owner():
        with FileLock(path):
            held.set()
            done.wait(10)

    thread = threading.Thread(target=owner)
    thread.start()
    try:
        assert held.wait(10)
        # POSIX locks alone would let this thread in; the per-path thread lock does not
        with pytest.raises(LockError) as excinfo:
            FileLock(path, timeout=0.3).acquire()
        assert excinfo.value.details == {'path': path, 'timeout': 0.3}
        timer = threading.Timer(0.3, done.set)
        timer.start()
        with FileLock(path, timeout=10) as lock:
            results.append(lock.waited)
        timer.join()
    finally:
        done.set()
        thread.join(10)
    assert results and results[0] >= 0.2


def test_generic_file_lock_across_processes(tmp_path, hold):
    path = tmp_path / 'imgadm.conf.lock'
    holder = hold(path)
    with pytest.raises(LockError) as excinfo:
        FileLock(str(path), timeout=0.3).acquire()
    assert str(path) in str(excinfo.value)
    holder.release()
    with FileLock(str(path), timeout=1) as lock:
        assert lock.locked
        assert probe(path) == 'busy'
    assert probe(path) == 'free'
