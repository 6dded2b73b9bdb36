# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""The streaming import pipeline.

One pass over the data, stages overlapping::

    HTTP body (or a local file)
      -> [reader thread] chunks of 1 MiB into a bounded queue
      -> [writer thread] byte count + sha1 (+ md5 when there is no sha1)
      -> decompressor process (gzip/bzip2/xz -cdfq, by files[0].compression)
      -> zfs receive [-u] POOL/UUID-partial

Nothing is written outside the pool and memory stays flat (at most a few
chunks in flight). Only after size and checksum verify: exactly one snapshot,
renamed to ``@final``; the database record; ``POOL/UUID-partial`` renamed to
``POOL/UUID``; mounted. On any failure nothing is left: no ``-partial``, no
final dataset, no database record.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
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
    DownloadError,
    ImgadmError,
    UncompressionError,
    UnexpectedNumberOfSnapshotsError,
    ZfsError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import ZFS_ENVIRON

CHUNK_SIZE = 1 << 20
QUEUE_CHUNKS = 8
COMPRESSIONS = ('gzip', 'bzip2', 'xz', 'none')


class StreamStats(object):
    """What one pass moved: bytes, digests, seconds."""

    def __init__(self):
        self.bytes = 0
        self.sha1 = None
        self.md5_b64 = None
        self.seconds = 0.0

    @property
    def throughput(self):
        """MiB per second."""
        if self.seconds <= 0:
            return None
        return round(self.bytes / float(1 << 20) / self.seconds, 1)


class _Drain(threading.Thread):
    """Collects a child's stderr (bounded) so that it never blocks on a full pipe."""

    def __init__(self, stream, limit=65536):
        super(_Drain, self).__init__()
        self.daemon = True
        self.stream = stream
        self.limit = limit
        self.data = b''

    def run(self):
        try:
            while True:
                chunk = self.stream.read(8192)
                if not chunk:
                    break
                if len(self.data) < self.limit:
                    self.data += chunk[:self.limit - len(self.data)]
        except (OSError, ValueError):
            pass

    def text(self):
        return self.data.decode('utf-8', 'replace').strip()


def _write_all(fd, chunk):
    view = memoryview(chunk)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def file_chunks(path, size=CHUNK_SIZE):
    """Chunks of a local file."""
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(size)
            if not chunk:
                return
            yield chunk


def stream_into_zfs(chunks, receive_argv, decompressor_argv=None, want_md5=False, label='image'):
    """Run the pipeline: ``chunks`` -> hash -> [decompressor] -> ``zfs receive``.

    Returns a ``StreamStats``. Raises ``ImgapiConnectionError`` when the
    source breaks off (the children are killed first), ``UncompressionError``
    when the decompressor fails, ``ZfsError`` when ``zfs receive`` fails.
    Checksums are the caller's to compare: a mismatch usually also makes the
    decompressor or the receive fail, and the caller should report the
    checksum, which is the cause. ``partial_stats`` is set on the exception.
    """
    env = dict(os.environ)
    env.update(ZFS_ENVIRON)
    stats = StreamStats()
    sha1 = hashlib.sha1()
    md5 = hashlib.md5() if want_md5 else None  # IMGAPI's Content-MD5, only when there is no sha1
    procs = []
    drains = []
    t0 = time.time()
    try:
        recv_stdin = subprocess.PIPE
        dec = None
        if decompressor_argv:
            # run_command cannot stream: the pipeline needs its own processes
            dec = subprocess.Popen(decompressor_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with,ansible-bad-function
                                   stderr=subprocess.PIPE, env=env, close_fds=True)
            procs.append(dec)
            recv_stdin = dec.stdout
        recv = subprocess.Popen(receive_argv, stdin=recv_stdin, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with,ansible-bad-function
                                stderr=subprocess.PIPE, env=env, close_fds=True)
        procs.append(recv)
        if dec is not None:
            dec.stdout.close()  # the receive holds the read end now
            sink = dec.stdin
        else:
            sink = recv.stdin
        for p in procs:
            d = _Drain(p.stderr)
            d.start()
            drains.append(d)
    except OSError as e:
        for p in procs:
            _kill(p)
        raise ZfsError('cannot start the import pipeline for %s: %s' % (label, e))

    q = queue.Queue(maxsize=QUEUE_CHUNKS)
    state = {'sink_error': None}
    failures = []  # what broke the source side (a download cut off...)

    def writer():
        fd = sink.fileno()
        sink_ok = True
        while True:
            chunk = q.get()
            if chunk is None:
                break
            sha1.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            stats.bytes += len(chunk)
            if sink_ok:
                try:
                    _write_all(fd, chunk)
                except OSError as e:  # the decompressor or the receive died: keep hashing
                    sink_ok = False
                    state['sink_error'] = e
        try:
            sink.close()
        except OSError:
            pass

    wthread = threading.Thread(target=writer)
    wthread.daemon = True
    wthread.start()
    try:
        for chunk in chunks:
            q.put(chunk)
    except BaseException as e:  # a broken download: stop everything, then report
        failures.append(e)
    finally:
        q.put(None)
        wthread.join()
    stats.seconds = time.time() - t0

    if failures:
        for p in procs:
            _kill(p)
        for d in drains:
            d.join(5)
        failures[0].partial_stats = stats
        raise failures[0]

    rcs = [p.wait() for p in procs]
    for d in drains:
        d.join()
    stats.seconds = time.time() - t0
    stats.sha1 = sha1.hexdigest()
    if md5 is not None:
        stats.md5_b64 = base64.b64encode(md5.digest()).decode('ascii')

    dec_failed = dec is not None and rcs[0] != 0
    if rcs[-1] != 0:
        # the receive's own error comes first: a decompressor whose reader died fails too (EPIPE)
        msg = 'zfs receive error while importing %s: exit status %s: %s' % (label, rcs[-1], drains[-1].text() or 'no message')
        if dec_failed:
            msg += ' (the decompressor exited %s%s)' % (rcs[0], ': %s' % drains[0].text() if drains[0].text() else '')
        e = ZfsError(msg, cmd=list(receive_argv), rc=rcs[-1], stderr=drains[-1].text())
        e.partial_stats = stats
        raise e
    if dec_failed:
        msg = 'uncompressing %s with "%s" failed (exit status %s): %s' % (label, ' '.join(decompressor_argv), rcs[0],
                                                                          drains[0].text() or 'no message')
        if os.path.basename(decompressor_argv[0]).startswith('bzip2') and rcs[0] == 2:
            msg += ' (this usually indicates a network error)'
        e = UncompressionError(msg, exit_status=rcs[0])
        e.partial_stats = stats
        raise e
    if state['sink_error'] is not None:  # pragma: no cover - a child closed its input early but exited 0
        e = ZfsError('the import pipeline for %s closed early: %s' % (label, state['sink_error']))
        e.partial_stats = stats
        raise e
    return stats


def _kill(proc):
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait()
    except OSError:
        pass


def verify_stream(label, stats, expected_size=None, expected_sha1=None, expected_md5=None):
    """Compare what was streamed with what the manifest (or server) promised."""
    problems = []
    if expected_size is not None and stats.bytes != int(expected_size):
        problems.append('size: expected %s bytes, got %s bytes' % (expected_size, stats.bytes))
    if expected_sha1 and stats.sha1 != expected_sha1:
        problems.append('checksum (sha1): expected "%s", got "%s"' % (expected_sha1, stats.sha1))
    elif not expected_sha1 and expected_md5 and stats.md5_b64 and stats.md5_b64 != expected_md5:
        problems.append('checksum (Content-MD5): expected "%s", got "%s"' % (expected_md5, stats.md5_b64))
    if problems:
        raise DownloadError('image %s file error: %s' % (label, '; '.join(problems)),
                            expected_size=expected_size, got_size=stats.bytes,
                            expected_sha1=expected_sha1, got_sha1=stats.sha1)


# The short finishing steps (snapshot check, unmount, rename, mount) of images
# imported side by side run one at a time: the streams overlap, the namespace
# changes do not (zfs-fuse has been seen to hang on concurrent mount/unmount).
_FINISH_LOCK = threading.Lock()


class ZfsInstaller(object):
    """Receives one image into ``POOL/UUID`` through ``POOL/UUID-partial``.

    ``backend`` is a ``_zfs`` backend, ``db`` an ``ImageDatabase``,
    ``decompressors`` maps a compression to an argv prefix.
    """

    def __init__(self, backend, db, decompressors):
        self.backend = backend
        self.db = db
        self.decompressors = decompressors

    @staticmethod
    def names(pool, uuid):
        return '%s/%s' % (pool, uuid), '%s/%s-partial' % (pool, uuid)

    def clean_partial(self, pool, uuid, exists=None):
        """Destroy a ``-partial`` left by a killed run. Returns True if there was one.

        ``exists`` is the caller's answer when it already asked ZFS.
        """
        dummy, partial = self.names(pool, uuid)
        if exists is None:
            exists = self.backend.exists(partial)
        if exists:
            self.backend.destroy(partial, recursive=True)
            return True
        return False

    def state(self, pool, uuid):
        """(final exists, -partial exists), in one question to ZFS."""
        final, partial = self.names(pool, uuid)
        found = self.backend.which_exist([final, partial])
        return final in found, partial in found

    def receive(self, pool, manifest, chunks, compression, expected_size=None, expected_sha1=None, expected_md5=None,
                source=None, verify=True):
        """Stream ``chunks`` into the pool and finish the install. Returns StreamStats."""
        uuid = manifest['uuid']
        final, partial = self.names(pool, uuid)
        label = '%s (%s@%s)' % (uuid, manifest.get('name'), manifest.get('version'))
        if compression not in COMPRESSIONS:
            raise DownloadError('image %s: unknown compression "%s" in files[0].compression' % (label, compression))
        dec_argv = None if compression == 'none' else list(self.decompressors[compression])
        recv_argv = self.backend.receive_argv(partial, unmounted=True)
        db_written = False
        renamed = False
        try:
            try:
                stats = stream_into_zfs(chunks, recv_argv, dec_argv, want_md5=bool(expected_md5 and not expected_sha1),
                                        label=label)
            except (UncompressionError, ZfsError) as e:
                # wrong bytes make the decompressor or the receive fail: report the checksum, which is the cause
                partial_stats = getattr(e, 'partial_stats', None)
                if verify and partial_stats is not None and partial_stats.sha1 is not None:
                    verify_stream(label, partial_stats, expected_size, expected_sha1, expected_md5)
                raise
            if verify:
                verify_stream(label, stats, expected_size, expected_sha1, expected_md5)
            with _FINISH_LOCK:
                self._ensure_final_snapshot(partial, label)
                self.db.write(pool, uuid, manifest, source=source)
                db_written = True
                if '-u' not in recv_argv and manifest.get('type') != 'zvol':
                    # received mounted (no "zfs receive -u" here): a mounted filesystem may refuse the rename
                    self.backend.unmount(partial)
                self.backend.rename(partial, final)
                renamed = True
                if manifest.get('type') != 'zvol':
                    self.backend.mount(final)
            return stats
        except BaseException:
            self._undo(pool, uuid, db_written, renamed)
            raise

    def _ensure_final_snapshot(self, partial, label):
        snaps = self.backend.list_snapshots(partial)
        if len(snaps) != 1:
            raise UnexpectedNumberOfSnapshotsError(
                'image %s: expected exactly one snapshot after zfs receive, found %d: %s' % (label, len(snaps), ', '.join(snaps) or 'none'),
                snapshots=snaps)
        if snaps[0] != partial + '@final':
            self.backend.rename(snaps[0], partial + '@final', recursive=True)

    def _undo(self, pool, uuid, db_written, renamed=False):
        """Remove what this attempt made: the -partial, the final dataset if it got that far, the record."""
        final, partial = self.names(pool, uuid)
        for name in ((partial, final) if renamed else (partial,)):
            try:
                if self.backend.exists(name):
                    self.backend.destroy(name, recursive=True)
            except ImgadmError:
                pass
        if db_written:
            try:
                if not self.backend.exists(final):
                    self.db.remove(pool, uuid)
            except (ImgadmError, OSError):
                pass


__all__ = (
    'CHUNK_SIZE', 'COMPRESSIONS', 'StreamStats', 'file_chunks', 'stream_into_zfs', 'verify_stream', 'ZfsInstaller',
)
