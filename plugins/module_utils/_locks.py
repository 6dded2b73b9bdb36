# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""POSIX record locks compatible with the stock imgadm.

The reference imgadm (node-qlocker) opens ``/var/run/img.UUID.import.lock``
with mode 0644 and takes ``fcntl(F_SETLKW, F_WRLCK)`` on the whole file; the
file is never deleted. ``fcntl.lockf(fd, LOCK_EX)`` is the same POSIX record
lock (``F_SETLK``/``F_SETLKW`` with ``F_WRLCK`` over the whole file), so both
programs exclude each other. ``flock(2)`` locks would not.

POSIX locks belong to the process: a second lock on the same file from the
same process would succeed, and closing any descriptor of the file drops the
lock. So inside one process the locks are also serialised with a per-path
thread lock, and taking a lock its own thread already holds is refused.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import threading
import time

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import UUID_RE
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import InvalidUUIDError, LockError

DEFAULT_LOCK_DIR = '/var/run'
POLL_INTERVAL = 0.25
LOCK_FILE_MODE = 0o644

# errno values meaning "someone else holds it, try again" (qlocker retries on these too)
_RETRY_ERRNOS = frozenset((errno.EAGAIN, errno.EACCES, errno.ENOLCK, errno.EDEADLK, errno.EINTR))

_REGISTRY_GUARD = threading.Lock()
_PATH_LOCKS = {}


def _path_lock(path):
    """The process-wide thread lock and owner record for ``path``."""
    with _REGISTRY_GUARD:
        entry = _PATH_LOCKS.get(path)
        if entry is None:
            entry = {'lock': threading.Lock(), 'owner': None}
            _PATH_LOCKS[path] = entry
        return entry


def image_lock_path(uuid, lock_dir=DEFAULT_LOCK_DIR):
    """``LOCK_DIR/img.UUID.import.lock``, after checking that ``uuid`` is a lowercase UUID."""
    if not isinstance(uuid, str) or not UUID_RE.match(uuid):
        raise InvalidUUIDError('invalid image UUID %r: must be a lowercase UUID' % (uuid,), field='uuid')
    return os.path.join(lock_dir, 'img.%s.import.lock' % uuid)


class FileLock:
    """Exclusive POSIX record lock on ``path``, usable as a context manager.

    ``timeout`` is in seconds: ``None`` waits forever (like the reference),
    ``0`` tries once. While waiting, the lock is tried every ``poll_interval``
    seconds; ``on_wait(lock)`` is called once when the first try fails. The
    file is created with mode 0644 if missing, never truncated, never deleted.
    """

    def __init__(self, path, timeout=None, poll_interval=POLL_INTERVAL, on_wait=None, mode=LOCK_FILE_MODE):
        if timeout is not None and timeout < 0:
            raise ValueError('timeout must be None or >= 0, not %r' % (timeout,))
        self.path = os.path.abspath(path)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.on_wait = on_wait
        self.mode = mode
        self.fd = None
        self.waited = 0.0
        self._entry = _path_lock(self.path)

    @property
    def locked(self):
        return self.fd is not None

    def _timeout_error(self):
        return LockError('timed out after %ss waiting for lock %s' % (self.timeout, self.path),
                         path=self.path, timeout=self.timeout)

    def _open(self):
        """Open (creating with ``mode`` if needed) without truncating."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, self.mode)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            return os.open(self.path, os.O_RDWR)
        try:
            os.fchmod(fd, self.mode)  # not subject to the umask
        except OSError:
            pass
        return fd

    def acquire(self):
        if self.fd is not None:
            raise LockError('lock %s is already held by this object' % self.path, path=self.path)
        me = threading.get_ident()
        if self._entry['owner'] == me:
            raise LockError('lock %s is already held by this thread' % self.path, path=self.path)
        start = time.monotonic()
        deadline = None if self.timeout is None else start + self.timeout
        notified = [False]

        def waiting():
            if not notified[0]:
                notified[0] = True
                if self.on_wait is not None:
                    self.on_wait(self)

        # 1. serialise threads of this process (POSIX locks do not)
        while not self._entry['lock'].acquire(False):
            waiting()
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timeout_error()
            time.sleep(self.poll_interval if deadline is None else
                       max(0.0, min(self.poll_interval, deadline - time.monotonic())))
        try:
            try:
                fd = self._open()
            except OSError as exc:
                raise LockError('cannot open lock file %s: %s' % (self.path, exc), path=self.path)
            try:
                # 2. the POSIX record lock shared with the stock imgadm
                blocking = False
                while True:
                    try:
                        # without a timeout, wait in F_SETLKW like the reference once it is taken
                        fcntl.lockf(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in _RETRY_ERRNOS:
                            raise LockError('cannot lock %s: %s' % (self.path, exc), path=self.path)
                    waiting()
                    now = time.monotonic()
                    if deadline is None:
                        if blocking:
                            # EDEADLK/ENOLCK/EINTR from F_SETLKW: retry like qlocker
                            time.sleep(self.poll_interval)
                        blocking = True
                        continue
                    if now >= deadline:
                        raise self._timeout_error()
                    time.sleep(max(0.0, min(self.poll_interval, deadline - now)))
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._entry['lock'].release()
            raise
        self.fd = fd
        self._entry['owner'] = me
        self.waited = time.monotonic() - start
        return self

    def release(self):
        """Drop the lock (closing the descriptor, like qlocker). Safe to call twice."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        finally:
            self._entry['owner'] = None
            self._entry['lock'].release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc_value, tb):
        self.release()
        return False


class ImageLock(FileLock):
    """The per-image import lock of the stock imgadm: ``LOCK_DIR/img.UUID.import.lock``."""

    def __init__(self, uuid, lock_dir=DEFAULT_LOCK_DIR, timeout=None, poll_interval=POLL_INTERVAL, on_wait=None):
        path = image_lock_path(uuid, lock_dir)
        super(ImageLock, self).__init__(path, timeout=timeout, poll_interval=poll_interval, on_wait=on_wait)
        self.uuid = uuid

    def _timeout_error(self):
        return LockError('timed out after %ss waiting for image %s import lock (%s)' % (self.timeout, self.uuid, self.path),
                         uuid=self.uuid, path=self.path, timeout=self.timeout)


class ImageLocks:
    """Several ``ImageLock`` held together; release them with ``release()`` or ``with``."""

    def __init__(self, locks):
        self.locks = list(locks)

    @property
    def uuids(self):
        return [lock.uuid for lock in self.locks]

    def release(self):
        """Release in reverse order of acquisition."""
        while self.locks:
            self.locks.pop().release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, tb):
        self.release()
        return False


def acquire_locks(uuids, lock_dir=DEFAULT_LOCK_DIR, timeout=None, poll_interval=POLL_INTERVAL, on_wait=None):
    """Take the import locks of ``uuids`` in the given order (top image first, then ancestors).

    Every UUID is validated before any lock is taken; duplicates are taken
    once. ``timeout`` bounds the whole operation. If any lock cannot be taken,
    the ones already held are released and the error is raised. Returns an
    ``ImageLocks`` (already held).
    """
    ordered = []
    for uuid in uuids:
        image_lock_path(uuid, lock_dir)
        if uuid not in ordered:
            ordered.append(uuid)
    deadline = None if timeout is None else time.monotonic() + timeout
    held = ImageLocks([])
    try:
        for uuid in ordered:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            lock = ImageLock(uuid, lock_dir=lock_dir, timeout=remaining, poll_interval=poll_interval, on_wait=on_wait)
            try:
                lock.acquire()
            except LockError as exc:
                if timeout is not None and 'uuid' in exc.details:
                    # report the timeout the caller gave, not what was left of it
                    raise LockError('timed out after %ss waiting for image %s import lock (%s)' % (timeout, uuid, lock.path),
                                    uuid=uuid, path=lock.path, timeout=timeout)
                raise
            held.locks.append(lock)
    except BaseException:
        held.release()
        raise
    return held


class MountGate(object):
    """Keeps ``zfs receive`` and mount changes apart, across threads and processes.

    Where ``zfs receive`` has no ``-u`` (zfs-fuse), a receive mounts what it
    received as it ends; a ``zfs unmount`` (or mount, rename, destroy of a
    mounted filesystem) running at that moment has been seen to wedge the
    ZFS daemon for good. Receives take this gate shared, mount changes take
    it exclusive: any number of receives run side by side, a mount change
    waits until none is running, and a waiting mount change holds back new
    receives (a turnstile), so it cannot starve. Where the receive can be
    left unmounted the caller does not use the gate and keeps full concurrency.

    ``flock(2)`` on two files in ``lock_dir`` (the caller passes one
    directory per host: the ZFS daemon is one per host). flock locks belong
    to the open file, so threads of one process exclude each other like
    processes do. The exclusive side is re-entrant within a thread.
    ``timeout`` bounds every wait (``LockError``).
    """

    NAME = 'smartos-imgadm.zfs-mounts.lock'

    def __init__(self, lock_dir=DEFAULT_LOCK_DIR, timeout=None, poll_interval=0.02):
        self.path = os.path.join(lock_dir, self.NAME)
        self.turnstile_path = self.path + '.turnstile'
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._local = threading.local()

    def _open(self, path):
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, LOCK_FILE_MODE)
        except OSError as exc:
            raise LockError('cannot open lock file %s: %s' % (path, exc), path=path)

    def _flock(self, fd, how, deadline, what):
        while True:
            try:
                fcntl.flock(fd, how | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in _RETRY_ERRNOS:
                    raise LockError('cannot lock %s: %s' % (self.path, exc), path=self.path)
            if deadline is not None and time.monotonic() >= deadline:
                raise LockError('timed out after %ss waiting to %s (%s): another zfs receive or mount change '
                                'did not finish' % (self.timeout, what, self.path), path=self.path, timeout=self.timeout)
            time.sleep(self.poll_interval)

    def _deadline(self):
        return None if self.timeout is None else time.monotonic() + self.timeout

    def shared(self):
        """Context for a running ``zfs receive``."""
        return _GateHold(self, exclusive=False)

    def exclusive(self):
        """Context for a mount, unmount, or a rename or destroy of a filesystem."""
        return _GateHold(self, exclusive=True)


class _GateHold(object):
    def __init__(self, gate, exclusive):
        self.gate = gate
        self.exclusive = exclusive
        self.fd = None

    def __enter__(self):
        gate = self.gate
        local = gate._local
        if self.exclusive and getattr(local, 'depth', 0):
            local.depth += 1
            return self
        deadline = gate._deadline()
        turnstile = gate._open(gate.turnstile_path)
        try:
            gate._flock(turnstile, fcntl.LOCK_EX, deadline, 'pass the zfs mount gate')
            fd = gate._open(gate.path)
            try:
                if self.exclusive:
                    gate._flock(fd, fcntl.LOCK_EX, deadline, 'change mounts')
                else:
                    fcntl.flock(turnstile, fcntl.LOCK_UN)  # a reader only passes the turnstile
                    gate._flock(fd, fcntl.LOCK_SH, deadline, 'start a zfs receive')
            except BaseException:
                os.close(fd)
                raise
        finally:
            os.close(turnstile)  # also drops a writer's turnstile once it holds the gate
        self.fd = fd
        if self.exclusive:
            local.depth = 1
        return self

    def __exit__(self, exc_type, exc_value, tb):
        local = self.gate._local
        if self.exclusive:
            local.depth -= 1
            if local.depth:
                return False
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)
        return False


__all__ = (
    'DEFAULT_LOCK_DIR', 'POLL_INTERVAL', 'LOCK_FILE_MODE', 'image_lock_path',
    'FileLock', 'ImageLock', 'ImageLocks', 'acquire_locks', 'MountGate',
)


def host_mount_gate(timeout, fallback_dir=None):
    """The host's ``MountGate``: in ``DEFAULT_LOCK_DIR`` when it is writable (one gate per host, like the
    ZFS daemon it protects, whatever lock directory a task uses), else in ``fallback_dir``; None without either."""
    if os.access(DEFAULT_LOCK_DIR, os.W_OK):
        return MountGate(DEFAULT_LOCK_DIR, timeout=timeout)
    return MountGate(fallback_dir, timeout=timeout) if fallback_dir else None
