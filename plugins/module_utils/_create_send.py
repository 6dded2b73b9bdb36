# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``imgadm create``'s image file: ``zfs send`` -> compressor -> file, in one pass.

The mirror of the import pipeline (``_importer.stream_into_zfs``)::

    zfs send [-i POOL/ORIGIN@final] DS@final
      -> [compressor process] (gzip/bzip2/xz -cfq; none: no process)
      -> [reader thread] chunks of 1 MiB into a bounded queue
      -> [this thread] byte count + sha1, written to the file

``size`` and ``sha1`` are those of the bytes written (the compressed file),
as the manifest's ``files[0]`` wants them. ``timeout`` bounds a stall (no
byte for that long) and the wait for the processes to end after the last
byte; past it every process is killed (``CommandTimeoutError``). On any
failure the processes are killed and reaped before the error is raised;
the caller removes the file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import subprocess
import threading
import time

try:
    import queue
except ImportError:  # pragma: no cover
    import Queue as queue  # type: ignore

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandError,
    CommandTimeoutError,
    FileSystemError,
    ZfsError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._importer import _Drain, _kill, _reap
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import ZFS_ENVIRON

CHUNK_SIZE = 1 << 20
QUEUE_CHUNKS = 8


class SendStats(object):
    """What the pass wrote: bytes, sha1 (hex), seconds."""

    def __init__(self):
        self.bytes = 0
        self.sha1 = None
        self.seconds = 0.0


def _reader(stream, q, chunk_size, stop):
    """Chunks of ``stream`` into ``q``, then None (or the exception); gives up once ``stop`` is set."""
    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        while True:
            chunk = stream.read(chunk_size)
            if not chunk:
                break
            if not put(chunk):
                return
    except (OSError, ValueError) as e:
        put(e)
        return
    put(None)


def send_to_file(send_argv, compressor_argv, path, timeout=None, label='image', chunk_size=CHUNK_SIZE):
    """Run ``send_argv`` [| ``compressor_argv``] into the file ``path`` (created or truncated). Returns ``SendStats``.

    Raises ``ZfsError`` when ``zfs send`` fails, ``CommandError`` when the
    compressor fails, ``CommandTimeoutError`` on a stall, ``FileSystemError``
    when the file cannot be written.
    """
    env = dict(os.environ)
    env.update(ZFS_ENVIRON)
    stats = SendStats()
    sha1 = hashlib.sha1()
    procs = []
    drains = []
    comp = None
    stop = threading.Event()
    t0 = time.time()
    try:
        out = open(path, 'wb')
    except (IOError, OSError) as e:
        raise FileSystemError('cannot write the image file "%s": %s' % (path, e), path=path)
    try:
        try:
            # run_command cannot stream: the pipeline needs its own processes
            send = subprocess.Popen(  # pylint: disable=consider-using-with,ansible-bad-function
                send_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True)
            procs.append(send)
            if compressor_argv:
                comp = subprocess.Popen(  # pylint: disable=consider-using-with,ansible-bad-function
                    compressor_argv, stdin=send.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True)
                procs.append(comp)
                send.stdout.close()  # the compressor holds the read end now
            for p in procs:
                d = _Drain(p.stderr)
                d.start()
                drains.append(d)
        except OSError as e:
            raise ZfsError('cannot start the send pipeline for %s (%s): %s'
                           % (label, ' | '.join(' '.join(a) for a in (send_argv, compressor_argv) if a), e))
        last = procs[-1]
        q = queue.Queue(maxsize=QUEUE_CHUNKS)
        reader = threading.Thread(target=_reader, args=(last.stdout, q, chunk_size, stop))
        reader.daemon = True
        reader.start()
        while True:
            try:
                item = q.get(timeout=timeout)
            except queue.Empty:
                raise CommandTimeoutError('%s produced no data for %s s (command_timeout) while writing %s; it was killed'
                                          % (' | '.join(' '.join(p.args) for p in procs), timeout, label),
                                          cmd=list(send_argv), timeout=timeout)
            if item is None:
                break
            if isinstance(item, Exception):
                raise ZfsError('reading the send pipeline for %s failed: %s' % (label, item))
            sha1.update(item)
            stats.bytes += len(item)
            try:
                out.write(item)
            except (IOError, OSError) as e:
                raise FileSystemError('cannot write the image file "%s": %s' % (path, e), path=path)
        rcs = []
        end = time.time()
        for p in procs:
            remaining = None if timeout is None else max(1.0, timeout - (time.time() - end))
            try:
                rcs.append(p.wait(remaining))
            except subprocess.TimeoutExpired:
                raise CommandTimeoutError('%s did not finish within %s s (command_timeout) after its last byte; it was killed'
                                          % (' '.join(p.args), timeout), cmd=list(p.args), timeout=timeout)
        for d in drains:
            d.join(5)
        if comp is not None and rcs[1] != 0:
            msg = 'error compressing the zfs stream of %s with "%s": exit status %s: %s' % (
                label, ' '.join(compressor_argv), rcs[1], drains[1].text() or 'no message')
            if rcs[0] != 0:
                msg += ' (zfs send exited %s%s)' % (rcs[0], ': %s' % drains[0].text() if drains[0].text() else '')
            raise CommandError(msg, cmd=list(compressor_argv), rc=rcs[1], stderr=drains[1].text())
        if rcs[0] != 0:
            raise ZfsError('zfs send error while writing %s: exit status %s: %s' % (label, rcs[0], drains[0].text() or 'no message'),
                           cmd=list(send_argv), rc=rcs[0], stderr=drains[0].text())
        try:
            out.flush()
            os.fsync(out.fileno())
        except (IOError, OSError) as e:
            raise FileSystemError('cannot write the image file "%s": %s' % (path, e), path=path)
    except BaseException:
        for p in procs:
            _kill(p)
        _reap(procs, 5)
        raise
    finally:
        stop.set()
        try:
            out.close()
        except (IOError, OSError):
            pass
    stats.sha1 = sha1.hexdigest()
    stats.seconds = time.time() - t0
    return stats


__all__ = ('CHUNK_SIZE', 'SendStats', 'send_to_file')
