# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""The import pipeline, in the order it runs.

``import_plan`` takes what ``state=present``/``latest`` planned (images not
installed, base before top, each with the source that serves it):

1. **lock** the whole set the way the stock imgadm does: every image of an
   origin chain before its origin, and the installed origins the plan
   builds on too, so that no ``delete`` (which takes the image's lock) can
   take an origin away under a receive. The order is the same in every
   process (child before origin, then by uuid), so two imports never
   deadlock, ours or the stock imgadm's (which locks top first);
2. **re-check** every image once the locks are held: one that another
   process imported while we waited is not ours (``imported_by_others``);
   an origin that vanished fails its children;
3. **import** each image (``_import_one``), base first, independent chains
   side by side: HTTP checks and retries, the streaming pass, verify,
   finish, undo;
4. release the locks.

One image's streaming pass (``stream_into_zfs``), stages overlapping::

    HTTP body (or a local file)
      -> [reader] chunks of 1 MiB into a bounded queue
      -> [writer thread] byte count + sha1 (+ md5 when there is no sha1)
      -> decompressor process (gzip/bzip2/xz -cdfq, by files[0].compression)
      -> zfs receive -u POOL/UUID-partial (or POOL/imgadm-partial/UUID, below)

Nothing is written outside the pool and memory stays flat. When the
receive dies the download stops at once. Only after size and checksum
verify (``ZfsInstaller.receive``): exactly one snapshot, renamed
``@final``; the database record; ``POOL/UUID-partial`` renamed to
``POOL/UUID``; mounted. On any failure nothing is left: no ``-partial``, no
final dataset, no database record.

Where ``zfs receive`` has no ``-u`` (zfs-fuse), the receive would mount what
it received, and unmounting it for the rename is what wedged the ZFS
daemon. There the image is received as ``POOL/imgadm-partial/UUID``, under a
parent that is never mounted (``mountpoint=none``): the receive mounts
nothing, the rename to ``POOL/UUID`` needs no unmount, and the one mount
(of the final dataset) is a gated mount change (``CliBackend.receiving``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import hashlib
import os
import subprocess
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

try:
    import queue
except ImportError:  # pragma: no cover
    import Queue as queue  # type: ignore

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import COMPRESSIONS
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandTimeoutError,
    DownloadError,
    ImgadmError,
    ImgapiConnectionError,
    OriginNotInstalledError,
    OriginSnapshotMismatchError,
    UncompressionError,
    UnexpectedNumberOfSnapshotsError,
    ZfsError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import acquire_locks
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import file_info
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import ZFS_ENVIRON

CHUNK_SIZE = 1 << 20
QUEUE_CHUNKS = 8


# ---- 1. the lock order -------------------------------------------------------

def lock_order(plan, manifests, pool_origins=()):
    """The uuids to lock for ``plan``, each child before its origin.

    ``plan``: uuids to import; ``manifests``: uuid -> manifest for the plan's
    whole chains (installed ancestors included); ``pool_origins``: installed
    origins the plan builds on, locked too. Sorted by the depth of the image
    in its chain (deepest first), then by uuid: the same order in every
    process for the same images, and top first along each chain as the stock
    imgadm takes them.
    """
    def depth(uuid):
        n, seen = 0, set()
        while uuid in manifests and manifests[uuid].get('origin') and uuid not in seen:
            seen.add(uuid)
            uuid = manifests[uuid]['origin']
            n += 1
        return n
    wanted = set(plan) | set(pool_origins)
    return sorted(wanted, key=lambda u: (-depth(u), u))


def import_plan(run, plan, manifests):
    """Import ``plan`` (OrderedDict uuid -> (manifest, source), base first). See the module docstring."""
    pool = run.pool
    origins = set(m.get('origin') for m, s in plan.values() if m.get('origin') and m.get('origin') not in plan)
    order = lock_order(plan, manifests, origins)
    p = run.params
    with acquire_locks(order, lock_dir=p['lock_dir'], timeout=p['lock_timeout']):
        # 2. the truth now that no one else can import these
        finals = dict((u, '%s/%s' % (pool, u)) for u in order)
        installer = run.installer()
        partials = dict((u, installer.leftover_names(pool, u)) for u in plan)
        parent = installer.partial_parent(pool)
        found = run.backend.which_exist(list(finals.values()) + [n for names in partials.values() for n in names]
                                        + ([parent] if parent else []))
        if parent in found:
            installer.parents.add(parent)  # asked in the same question: no zfs call of its own
        todo = OrderedDict()
        for uuid, (manifest, source) in plan.items():
            if finals[uuid] in found:
                run.installed.mark(pool, uuid, True)
                run.result.data['imported_by_others'].append(uuid)
                run.result.warn('image %s (%s@%s) was imported by another process while this task waited for its lock; '
                                'it is not counted as changed by this task' % (uuid, manifest.get('name'), manifest.get('version')))
                continue
            todo[uuid] = (manifest, source, [n for n in partials[uuid] if n in found])
        for origin in origins:
            if finals[origin] not in found:
                child = [u for u, (m, s, x) in todo.items() if m.get('origin') == origin]
                if child:
                    raise OriginNotInstalledError('origin %s of image %s is no longer installed on pool %s (deleted while this '
                                                  'task waited for the locks)' % (origin, child[0], pool), uuid=child[0], origin=origin)
        for uuid, (manifest, source, dummy) in todo.items():
            if manifest.get('origin') and manifest['origin'] not in todo:
                check_origin_snapshot(run, manifest, manifests)
        # 3. base first; an image waits for its origin, independent chains run side by side
        _run_in_order(run, todo)


def _run_in_order(run, todo):
    futures = {}
    errors = []
    with ThreadPoolExecutor(max_workers=run.params['concurrency']) as pool:
        for uuid, (manifest, source, leftovers) in todo.items():  # topological: origins are submitted first
            origin_future = futures.get(manifest.get('origin'))
            futures[uuid] = pool.submit(_import_one, run, manifest, source, leftovers, origin_future)
        for future in futures.values():
            try:
                future.result()
            except BaseException as e:  # pylint: disable=broad-exception-caught
                errors.append(e)
    if errors:
        raise errors[0]


def check_origin_snapshot(run, manifest, manifests):
    """Refuse an incremental image whose installed origin is not the snapshot it was sent from.

    The origin's ``files[0].dataset_guid`` (as its source serves it) names the
    snapshot; without it, ``zfs receive`` is left to judge.
    """
    origin = manifest['origin']
    om = manifests.get(origin) or run.db.read(run.pool, origin)[0].get('manifest') or {}
    want = (file_info(om) or {}).get('dataset_guid')
    if not want:
        return
    snap = '%s/%s@final' % (run.pool, origin)
    got = run.backend.get_properties([snap], ['guid']).get(snap, {}).get('guid')
    if got is not None and str(got) != str(want):
        raise OriginSnapshotMismatchError(
            'image %s (%s@%s) is incremental from %s with guid %s, but the installed origin %s has guid %s: '
            'the origin on pool %s is another image with the same uuid; delete it and import again'
            % (manifest['uuid'], manifest.get('name'), manifest.get('version'), snap, want, snap, got, run.pool),
            uuid=manifest['uuid'], origin=origin, expected_guid=str(want), found_guid=str(got))


# ---- 3. one image --------------------------------------------------------------

def _import_one(run, manifest, source, leftovers, origin_future):
    if origin_future is not None:
        origin_future.result()  # raises if the origin failed: then this one is not tried
    uuid = manifest['uuid']
    client = run.sources.client(source)  # one HTTP session per thread
    installer = run.installer()
    info = file_info(manifest) or {}
    attempts = run.params['retries'] + 1
    for attempt in range(attempts):
        installer.clean_partial(run.pool, uuid, found=leftovers if attempt == 0 else None)
        try:
            with client.get_image_file(uuid) as f:
                # the reference's header checks (imgadm-behaviour.md 2.3)
                if f.content_length is None:
                    raise DownloadError('image %s: unexpected missing or invalid Content-Length header' % uuid)
                if info.get('size') is not None and f.content_length != int(info['size']):
                    raise DownloadError('image %s: unexpected mismatch between expected size, %s, and Content-Length header, %s'
                                        % (uuid, info['size'], f.content_length))
                stats = installer.receive(run.pool, manifest, f.iter_chunks(CHUNK_SIZE), info.get('compression') or 'none',
                                          expected_size=info.get('size'), expected_sha1=info.get('sha1'),
                                          expected_md5=f.content_md5, source=source.url)
            break
        except ImgapiConnectionError:  # a download cut off: tried again from the start
            if attempt + 1 >= attempts:
                raise
    run.installed.mark(run.pool, uuid, True)
    run.record_import(manifest, source.url, info.get('compression'), stats, attempt + 1)


class StreamStats(object):
    """What one pass moved: bytes, digests, seconds."""

    def __init__(self):
        self.bytes = 0
        self.sha1 = None
        self.md5_b64 = None
        self.seconds = 0.0
        self.stopped_early = False

    @property
    def throughput(self):
        """MiB per second."""
        if self.seconds <= 0:
            return None
        return round(self.bytes / float(1 << 20) / self.seconds, 1)


class ZfsInstaller(object):
    """Receives one image into ``POOL/UUID`` through ``POOL/UUID-partial`` (or ``POOL/imgadm-partial/UUID``).

    ``backend`` is a ``_zfs`` backend, ``db`` an ``ImageDatabase``,
    ``decompressors`` maps a compression to an argv prefix, ``timeout`` is
    the deadline of the receive (a stall, and the end after the last byte).
    """

    def __init__(self, backend, db, decompressors, timeout, parents=None):
        self.backend = backend
        self.db = db
        self.decompressors = decompressors
        self.timeout = timeout
        self.parents = parents if parents is not None else set()  # never-mounted parents known to exist (shared)

    PARTIAL_PARENT = 'imgadm-partial'

    def names(self, pool, uuid):
        """``(final, partial)``: where the image ends, where it is received (see the module docstring)."""
        if self.backend.supports_unmounted_receive():
            return '%s/%s' % (pool, uuid), '%s/%s-partial' % (pool, uuid)
        return '%s/%s' % (pool, uuid), '%s/%s/%s' % (pool, self.PARTIAL_PARENT, uuid)

    def leftover_names(self, pool, uuid):
        """Where a killed run may have left a partial image: ours, and the stock imgadm's ``-partial``."""
        partial = self.names(pool, uuid)[1]
        legacy = '%s/%s-partial' % (pool, uuid)
        return [partial] if partial == legacy else [partial, legacy]

    def clean_partial(self, pool, uuid, found=None):
        """Destroy what a killed run left (``found``: those of ``leftover_names`` that exist, if the caller asked)."""
        if found is None:
            found = self.backend.which_exist(self.leftover_names(pool, uuid))
        for name in found:
            self.backend.destroy(name, recursive=True)

    def partial_parent(self, pool):
        """The never-mounted parent the image is received under, or None (received as ``POOL/UUID-partial``)."""
        parent = self.names(pool, '0')[1].rsplit('/', 1)[0]
        return parent if '/' in parent else None

    def _ensure_parent(self, partial):
        """The never-mounted parent of ``POOL/imgadm-partial/UUID``, created once."""
        parent = partial.rsplit('/', 1)[0]
        if '/' not in parent or parent in self.parents:
            return
        if not self.backend.exists(parent):
            try:
                self.backend.create_unmounted(parent)
            except ZfsError:
                if not self.backend.exists(parent):  # created by a task beside this one: fine
                    raise
        self.parents.add(parent)

    def receive(self, pool, manifest, chunks, compression, expected_size=None, expected_sha1=None, expected_md5=None,
                source=None, verify=True):
        """Stream ``chunks`` into the pool, verify, finish. Returns StreamStats; undoes everything on failure."""
        uuid = manifest['uuid']
        final, partial = self.names(pool, uuid)
        label = '%s (%s@%s)' % (uuid, manifest.get('name'), manifest.get('version'))
        if compression not in COMPRESSIONS:
            raise DownloadError('image %s: unknown compression "%s" in files[0].compression' % (label, compression))
        dec_argv = None if compression == 'none' else list(self.decompressors[compression])
        self._ensure_parent(partial)
        recv_argv = self.backend.receive_argv(partial, unmounted=True)
        progress = {'db': False, 'renamed': False}
        try:
            # stream
            try:
                stats = stream_into_zfs(chunks, recv_argv, dec_argv, want_md5=bool(expected_md5 and not expected_sha1),
                                        label=label, timeout=self.timeout, gate=lambda: self.backend.receiving(partial))
            except (UncompressionError, ZfsError) as e:
                # wrong bytes make the decompressor or the receive fail: report the checksum, which is the cause
                partial_stats = getattr(e, 'partial_stats', None)
                if verify and partial_stats is not None and partial_stats.sha1 is not None and not partial_stats.stopped_early:
                    verify_stream(label, partial_stats, expected_size, expected_sha1, expected_md5)
                raise
            # verify
            if verify:
                verify_stream(label, stats, expected_size, expected_sha1, expected_md5)
            # finish: the record first (the reference's order), then the final name
            self._ensure_final_snapshot(partial, label)
            self.db.write(pool, uuid, manifest, source=source)
            progress['db'] = True
            self.backend.rename(partial, final)  # unmounted either way: received with -u, or under imgadm-partial
            progress['renamed'] = True
            if manifest.get('type') != 'zvol':
                self.backend.mount(final)
            return stats
        except BaseException:
            self._undo(pool, uuid, progress)
            raise

    def _ensure_final_snapshot(self, partial, label):
        snaps = self.backend.list_snapshots(partial)
        if len(snaps) != 1:
            raise UnexpectedNumberOfSnapshotsError(
                'image %s: expected exactly one snapshot after zfs receive, found %d: %s' % (label, len(snaps), ', '.join(snaps) or 'none'),
                snapshots=snaps)
        if snaps[0] != partial + '@final':
            self.backend.rename(snaps[0], partial + '@final', recursive=True)

    def _undo(self, pool, uuid, progress):
        """Remove what this attempt made: the -partial, the final dataset if it got that far, the record."""
        final, partial = self.names(pool, uuid)
        for name in ((partial, final) if progress['renamed'] else (partial,)):
            try:
                if self.backend.exists(name):
                    self.backend.destroy(name, recursive=True)
            except ImgadmError:
                pass
        if progress['db']:
            try:
                if not self.backend.exists(final):
                    self.db.remove(pool, uuid)
            except (ImgadmError, OSError):
                pass


# ---- the streaming pass ----------------------------------------------------------

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


def _kill(proc):
    try:
        proc.kill()
    except OSError:
        pass


def _reap(procs, timeout):
    """Wait for killed children, at most ``timeout`` s each (one stuck in the kernel is left behind)."""
    for proc in procs:
        try:
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass


def stream_into_zfs(chunks, receive_argv, decompressor_argv=None, want_md5=False, label='image', timeout=None, gate=None):
    """Run the pipeline: ``chunks`` -> hash -> [decompressor] -> ``zfs receive``. Returns ``StreamStats``.

    Raises ``ImgapiConnectionError`` when the source breaks off (the children
    are killed first), ``UncompressionError`` when the decompressor fails,
    ``ZfsError`` when ``zfs receive`` fails, ``CommandTimeoutError`` when the
    receive accepts nothing for ``timeout`` seconds or does not end within
    ``timeout`` after the last byte. When the receive dies, the download
    stops at once; when only the decompressor fails (bad bytes), the rest is
    still hashed so that the caller can name the checksum as the cause.
    ``partial_stats`` is set on the exception. ``gate`` is a context factory
    held while the receive runs (``CliBackend.receiving``).
    """
    env = dict(os.environ)
    env.update(ZFS_ENVIRON)
    stats = StreamStats()
    sha1 = hashlib.sha1()
    md5 = hashlib.md5() if want_md5 else None  # IMGAPI's Content-MD5, only when there is no sha1
    with gate() if gate is not None else contextlib.nullcontext():
        return _run_pipeline(chunks, stats, sha1, md5, env, receive_argv, decompressor_argv, label, timeout)


def _run_pipeline(chunks, stats, sha1, md5, env, receive_argv, decompressor_argv, label, timeout):
    procs = []
    drains = []
    t0 = time.time()
    try:
        recv_stdin = subprocess.PIPE
        dec = None
        if decompressor_argv:
            # run_command cannot stream: the pipeline needs its own processes
            dec = subprocess.Popen(  # pylint: disable=consider-using-with,ansible-bad-function
                decompressor_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True)
            procs.append(dec)
            recv_stdin = dec.stdout
        recv = subprocess.Popen(  # pylint: disable=consider-using-with,ansible-bad-function
            receive_argv, stdin=recv_stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, close_fds=True)
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
        _reap(procs, 5)
        raise ZfsError('cannot start the import pipeline for %s: %s' % (label, e))
    return _pump(chunks, stats, sha1, md5, sink, dec, recv, procs, drains, receive_argv, decompressor_argv, label, timeout, t0)


def _pump(chunks, stats, sha1, md5, sink, dec, recv, procs, drains, receive_argv, decompressor_argv, label, timeout, t0):
    q = queue.Queue(maxsize=QUEUE_CHUNKS)
    state = {'sink_error': None, 'stop': False}
    exited = [threading.Event() for dummy in procs]  # set by a waiter thread per child

    def waiter(i):
        try:
            procs[i].wait()
        except OSError:
            pass
        exited[i].set()
    for i in range(len(procs)):
        t = threading.Thread(target=waiter, args=(i,))
        t.daemon = True
        t.start()
    failures = []  # what broke the source side (a download cut off...) or a stall

    def sink_broke(e):
        state['sink_error'] = e
        # The decompressor rejected the bytes (it exited > 0 on its own): keep hashing, to name
        # the checksum as the cause. The receive died (then the decompressor died of SIGPIPE, or
        # exited saying "Broken pipe" as gzip does, or there is none): stop the download now.
        # The exit status alone does not tell (gzip -q exits 2, silently, on a broken pipe; bzip2 exits 2
        # on bad data; xz and bzip2 die of SIGPIPE): a decompressor that rejected its input exits > 0
        # and says why on stderr, even with -q.
        rejected = False
        if dec is not None and exited[0].wait(2) and dec.returncode > 0:
            drains[0].join(1)
            rejected = bool(drains[0].text())
        if not rejected:
            state['stop'] = True

    def writer():
        fd = sink.fileno()
        while True:
            chunk = q.get()
            if chunk is None:
                break
            if state['stop']:
                continue  # drain what is queued, hash nothing more
            sha1.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            stats.bytes += len(chunk)
            if state['sink_error'] is None:
                try:
                    _write_all(fd, chunk)
                except OSError as e:
                    sink_broke(e)
        try:
            sink.close()
        except OSError:
            pass

    wthread = threading.Thread(target=writer)
    wthread.daemon = True
    wthread.start()
    try:
        for chunk in chunks:
            if state['stop']:
                stats.stopped_early = True
                break
            try:
                q.put(chunk, timeout=timeout)
            except queue.Full:
                failures.append(CommandTimeoutError('%s accepted no data for %s s (command_timeout) while importing %s; it was killed'
                                                    % (' '.join(receive_argv), timeout, label), cmd=list(receive_argv), timeout=timeout))
                break
    except BaseException as e:  # a broken download: stop everything, then report
        failures.append(e)
    finally:
        if failures:
            for p in procs:
                _kill(p)  # unblocks a writer stuck on a full pipe
        q.put(None)
        wthread.join()
    stats.seconds = time.time() - t0

    if failures:
        _reap(procs, 5)
        for d in drains:
            d.join(5)
        failures[0].partial_stats = stats
        raise failures[0]

    rcs = []
    for p in procs:
        remaining = None if timeout is None else max(1.0, timeout - (time.time() - t0 - stats.seconds))
        try:
            rcs.append(p.wait(remaining))
        except subprocess.TimeoutExpired:
            for q_proc in procs:
                _kill(q_proc)
            _reap(procs, 5)
            e = CommandTimeoutError('%s did not finish within %s s (command_timeout) after the whole image %s was written; '
                                    'it was killed' % (' '.join(p.args), timeout, label), cmd=list(p.args), timeout=timeout)
            e.partial_stats = stats
            raise e
    for d in drains:
        d.join(5)
    stats.seconds = time.time() - t0
    stats.sha1 = sha1.hexdigest()
    if md5 is not None:
        stats.md5_b64 = base64.b64encode(md5.digest()).decode('ascii')

    dec_failed = dec is not None and rcs[0] != 0
    stopped = ' (the download was stopped after %d bytes)' % stats.bytes if stats.stopped_early else ''
    if rcs[-1] != 0:
        # the receive's own error comes first: a decompressor whose reader died fails too (EPIPE)
        msg = 'zfs receive error while importing %s: exit status %s: %s' % (label, rcs[-1], drains[-1].text() or 'no message')
        if dec_failed:
            msg += ' (the decompressor exited %s%s)' % (rcs[0], ': %s' % drains[0].text() if drains[0].text() else '')
        e = ZfsError(msg + stopped, cmd=list(receive_argv), rc=rcs[-1], stderr=drains[-1].text())
        e.partial_stats = stats
        raise e
    if dec_failed:
        msg = 'uncompressing %s with "%s" failed (exit status %s): %s' % (label, ' '.join(decompressor_argv), rcs[0],
                                                                          drains[0].text() or 'no message')
        if os.path.basename(decompressor_argv[0]).startswith('bzip2') and rcs[0] == 2:
            msg += ' (this usually indicates a network error)'
        e = UncompressionError(msg + stopped, exit_status=rcs[0])
        e.partial_stats = stats
        raise e
    if state['sink_error'] is not None:  # pragma: no cover - a child closed its input early but exited 0
        e = ZfsError('the import pipeline for %s closed early: %s' % (label, state['sink_error']))
        e.partial_stats = stats
        raise e
    return stats


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


__all__ = (
    'CHUNK_SIZE', 'lock_order', 'import_plan', 'check_origin_snapshot', 'StreamStats', 'ZfsInstaller',
    'file_chunks', 'stream_into_zfs', 'verify_stream',
)
