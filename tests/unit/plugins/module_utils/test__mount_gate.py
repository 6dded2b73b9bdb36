# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of ``_locks.MountGate``: receives shared, mount changes exclusive.

Threads of this process and a second process (holding ``flock`` on the same
file) take the gate; a ``Holder`` thread enters a hold, says so, and leaves
when told, so that each test can look at who holds what at every step.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import os
import select
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import LockError
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import MountGate

WAIT = 5.0  # upper bound of any wait that should succeed


class Holder(threading.Thread):
    """Enters ``gate.shared()`` or ``gate.exclusive()`` in its own thread and holds it until ``release``."""

    def __init__(self, gate, exclusive, log=None, name=None):
        super(Holder, self).__init__()
        self.daemon = True
        self.gate = gate
        self.exclusive = exclusive
        self.log = log if log is not None else []
        self.label = name or ('exclusive' if exclusive else 'shared')
        self.entered = threading.Event()
        self.done = threading.Event()
        self.leave = threading.Event()
        self.error = None

    def run(self):
        try:
            with (self.gate.exclusive() if self.exclusive else self.gate.shared()):
                self.log.append(self.label)
                self.entered.set()
                self.leave.wait(30)
        except Exception as e:  # pylint: disable=broad-exception-caught
            self.error = e
        finally:
            self.done.set()

    def release(self):
        self.leave.set()
        assert self.done.wait(WAIT)
        assert self.error is None, self.error


def gate_in(tmp_path, timeout=10.0):
    return MountGate(str(tmp_path), timeout=timeout)


def turnstile_taken(gate):
    """Whether someone holds the turnstile (a writer waiting for the gate)."""
    fd = os.open(gate.turnstile_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def wait_until(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_files_are_in_lock_dir(tmp_path):
    gate = gate_in(tmp_path)
    assert gate.path == os.path.join(str(tmp_path), 'smartos-imgadm.zfs-mounts.lock')
    assert gate.turnstile_path == gate.path + '.turnstile'
    with gate.shared():
        pass
    assert oct(os.stat(gate.path).st_mode & 0o777) == oct(0o644)


def test_two_shared_holders_at_once(tmp_path):
    gate = gate_in(tmp_path, timeout=2)
    first, second = Holder(gate, False), Holder(gate, False)
    first.start()
    assert first.entered.wait(WAIT)
    second.start()
    assert second.entered.wait(WAIT), 'a second receive waited for the first'
    assert not first.done.is_set()  # both inside at the same time
    first.release()
    second.release()


def test_exclusive_waits_for_shared_to_end(tmp_path):
    gate = gate_in(tmp_path)
    log = []
    reader = Holder(gate, False, log, 'reader')
    reader.start()
    assert reader.entered.wait(WAIT)
    writer = Holder(gate, True, log, 'writer')
    writer.start()
    assert not writer.entered.wait(0.4), 'a mount change ran during a receive'
    reader.release()
    assert writer.entered.wait(WAIT)
    writer.release()
    assert log == ['reader', 'writer']


def test_shared_waits_for_exclusive_to_end(tmp_path):
    gate = gate_in(tmp_path)
    writer = Holder(gate, True)
    writer.start()
    assert writer.entered.wait(WAIT)
    reader = Holder(gate, False)
    reader.start()
    assert not reader.entered.wait(0.4), 'a receive started during a mount change'
    writer.release()
    assert reader.entered.wait(WAIT)
    reader.release()


def test_a_waiting_exclusive_blocks_new_shared(tmp_path):
    """The turnstile: a writer that waits is not starved by readers that keep coming."""
    gate = gate_in(tmp_path)
    log = []
    reader1 = Holder(gate, False, log, 'reader1')
    reader1.start()
    assert reader1.entered.wait(WAIT)
    writer = Holder(gate, True, log, 'writer')
    writer.start()
    assert wait_until(lambda: turnstile_taken(gate)), 'the writer never took the turnstile'
    reader2 = Holder(gate, False, log, 'reader2')
    reader2.start()
    time.sleep(0.4)
    assert not reader2.entered.is_set(), 'a new receive overtook a waiting mount change'
    assert not writer.entered.is_set()
    reader1.release()
    assert writer.entered.wait(WAIT)
    time.sleep(0.2)
    assert not reader2.entered.is_set()
    writer.release()
    assert reader2.entered.wait(WAIT)
    reader2.release()
    assert log == ['reader1', 'writer', 'reader2']


def test_exclusive_is_reentrant_in_one_thread(tmp_path):
    gate = gate_in(tmp_path, timeout=0.5)
    with gate.exclusive():
        with gate.exclusive():  # would time out (LockError) if it were not re-entrant
            with gate.exclusive():
                pass
        # the outer hold is still there: another thread cannot pass
        other = Holder(MountGate(str(tmp_path), timeout=0.3), False)
        other.start()
        assert other.done.wait(WAIT)
        assert isinstance(other.error, LockError)
    # and once the outer one is left, the gate is free
    after = Holder(gate, True)
    after.start()
    assert after.entered.wait(WAIT)
    after.release()


def test_reentrance_is_per_thread(tmp_path):
    gate = gate_in(tmp_path, timeout=0.3)
    with gate.exclusive():
        # the same gate object in another thread is not re-entrant: it waits, then times out
        other = Holder(gate, True)
        other.start()
        assert other.done.wait(WAIT)
        assert isinstance(other.error, LockError)


@pytest.mark.parametrize('held, wanted', [(True, False), (True, True), (False, True)])
def test_timeout_is_a_lock_error_naming_the_file(tmp_path, held, wanted):
    gate = gate_in(tmp_path)
    holder = Holder(gate, held)
    holder.start()
    assert holder.entered.wait(WAIT)
    waiting = MountGate(str(tmp_path), timeout=0.3)
    start = time.monotonic()
    with pytest.raises(LockError) as exc:
        with (waiting.exclusive() if wanted else waiting.shared()):
            pass
    elapsed = time.monotonic() - start
    holder.release()
    assert 0.25 < elapsed < 3, elapsed
    assert exc.value.code == 'LockTimeout'
    assert gate.path in str(exc.value)
    assert 'timed out after 0.3s' in str(exc.value)
    assert exc.value.details == {'path': gate.path, 'timeout': 0.3}


def test_timeout_zero_tries_once(tmp_path):
    gate = gate_in(tmp_path)
    holder = Holder(gate, True)
    holder.start()
    assert holder.entered.wait(WAIT)
    start = time.monotonic()
    with pytest.raises(LockError):
        with MountGate(str(tmp_path), timeout=0).shared():
            pass
    assert time.monotonic() - start < 1
    holder.release()


def test_unusable_lock_dir_is_a_lock_error(tmp_path):
    with pytest.raises(LockError) as exc:
        with MountGate(str(tmp_path / 'missing'), timeout=0.1).shared():
            pass
    assert 'cannot open lock file' in str(exc.value)


def test_a_failed_hold_leaves_the_gate_free(tmp_path):
    gate = gate_in(tmp_path, timeout=0.2)
    holder = Holder(gate, False)
    holder.start()
    assert holder.entered.wait(WAIT)
    with pytest.raises(LockError):
        with gate.exclusive():
            pass
    holder.release()
    # no depth left over from the failed exclusive, no turnstile kept: both kinds pass now
    with gate.shared():
        pass
    with gate.exclusive():
        pass
    assert not turnstile_taken(gate)


# ---- across processes

HOLDER = '''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_SH if sys.argv[2] == 'shared' else fcntl.LOCK_EX)
sys.stdout.write('held\\n')
sys.stdout.flush()
sys.stdin.read()  # until the test closes our stdin
'''


class OtherProcess(object):
    """A second process holding ``flock`` on the gate file (what a MountGate in another module run does)."""

    def __init__(self, path, how):
        self.proc = subprocess.Popen([sys.executable, '-c', HOLDER, path, how], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout.readline() == b'held\n'

    def stop(self):
        self.proc.stdin.close()
        assert self.proc.wait(WAIT) == 0
        self.proc.stdout.close()


def test_another_process_holding_shared(tmp_path):
    gate = gate_in(tmp_path, timeout=0.3)
    other = OtherProcess(gate.path, 'shared')
    try:
        with gate.shared():  # receives in two processes side by side
            pass
        with pytest.raises(LockError):
            with gate.exclusive():
                pass
    finally:
        other.stop()
    with gate.exclusive():
        pass


def test_another_process_holding_exclusive(tmp_path):
    gate = gate_in(tmp_path, timeout=0.3)
    other = OtherProcess(gate.path, 'exclusive')
    try:
        for hold in (gate.shared, gate.exclusive):
            with pytest.raises(LockError):
                with hold():
                    pass
    finally:
        other.stop()
    with gate.shared():
        pass


def test_a_process_waits_for_our_exclusive(tmp_path):
    gate = gate_in(tmp_path)
    with gate.exclusive():
        other = subprocess.Popen([sys.executable, '-c', HOLDER, gate.path, 'shared'], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)
        time.sleep(0.4)
        assert other.poll() is None
        # it has not got the lock yet: it printed nothing
        assert select.select([other.stdout], [], [], 0)[0] == []
    assert other.stdout.readline() == b'held\n'
    other.stdin.close()
    assert other.wait(WAIT) == 0
    other.stdout.close()
