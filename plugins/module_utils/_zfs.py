# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""ZFS access for the collection: one runner for ``zfs`` and backends.

``ZfsRunner`` runs ``zfs`` through a callable with the calling
convention of ``AnsibleModule.run_command``, always with ``LC_ALL=C``, and
turns failures into ``ZfsError`` / ``DatasetNotFoundError``.

``ZfsBackend`` is the interface the import/delete code uses.
``CliBackend`` implements it with the CLI only; ``LibzfsCoreBackend`` uses the
pyzfs ``libzfs_core`` bindings where they offer the operation and the CLI for
the rest. ``get_backend()`` picks one.

Portability rules followed here (SmartOS/illumos, Linux OpenZFS, zfs-fuse):

* exact numbers (``used``, ``guid``, ``createtxg``...) come from
  ``zfs get -Hp -o name,property,value``, because zfs-fuse has no
  ``zfs list -p``; ``zfs list -H -o`` is only used for string columns;
* ``zfs receive -u`` is only emitted when the local ``zfs`` supports it;
* the ``clones`` property is used when the local ``zfs`` has it, otherwise the
  ``origin`` column over the pool answers the same question;
* zfs-fuse cannot destroy or rename a mounted filesystem ("dataset is busy"),
  so ``destroy`` unmounts first and ``rename`` unmounts, retries and remounts
  when it meets that error;
* where ``zfs receive`` cannot leave what it received unmounted, a running
  receive and a mount change never overlap (``receiving`` and the
  ``MountGate`` of ``_locks``): zfs-fuse has wedged on that overlap.

Values of ``-`` (not set / not applicable) are returned as ``None``.
Check mode is not handled here: callers decide whether to call mutating methods.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import importlib
import os
import re
import shlex
import threading
import time
import traceback

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    DatasetNotFoundError,
    MissingLibraryError,
    ZfsError,
)


def _load_libzfs_core():
    """Import pyzfs' ``libzfs_core`` now; return ``(module, None)`` or ``(None, traceback)``.

    Called again by ``get_backend`` so that the choice follows ``sys.modules``
    (tests inject a fake module there). pyzfs loads the C library at import
    time, so a missing ``libzfs_core.so`` (OSError) counts as missing too.
    """
    try:
        module = importlib.import_module('libzfs_core')
    except (ImportError, OSError):
        return None, traceback.format_exc()
    return module, None


# The optional dependency (python3-pyzfs, import name libzfs_core; absent on
# SmartOS and with zfs-fuse) is imported by get_backend, never when this file
# loads: pyzfs builds its cffi bindings at import (1-2 s under emulation), which
# a run with zfs_backend=cli must not pay.

# Environment forced on every zfs command: stable, parsable messages.
ZFS_ENVIRON = {'LC_ALL': 'C'}

_NOT_FOUND_RE = re.compile(r"dataset does not exist|could not find any snapshots to destroy|no such pool", re.IGNORECASE)
_BUSY_RE = re.compile(r'\bbusy\b', re.IGNORECASE)
_ALREADY_MOUNTED_RE = re.compile(r'already mounted', re.IGNORECASE)
_NOT_MOUNTED_RE = re.compile(r'not currently mounted|not mounted', re.IGNORECASE)
_INVALID_PROP_RE = re.compile(r"invalid property '([^']*)'|bad property list", re.IGNORECASE)
_USAGE_FLAGS_RE = re.compile(r'\[-([A-Za-z]+)\]')


def _cmdline(argv):
    return ' '.join(shlex.quote(str(a)) for a in argv)


def _undash(value):
    """zfs prints ``-`` for "not set / not applicable"."""
    return None if value == '-' else value


def _check_name(name, what='dataset'):
    """Refuse names that could be taken for options or break the tab-separated output."""
    if not isinstance(name, str) or not name:
        raise ValueError('invalid %s name: %r' % (what, name))
    if name.startswith('-') or any(c in name for c in '\t\n\r\0'):
        raise ValueError('invalid %s name: %r' % (what, name))
    return name


def _check_snapshot_name(name):
    _check_name(name, 'snapshot')
    if '@' not in name or name.startswith('@') or name.endswith('@'):
        raise ValueError('not a snapshot name (DATASET@SNAP): %r' % (name,))
    return name


def _check_prop(prop):
    if not isinstance(prop, str) or not prop or prop.startswith('-') or any(c in prop for c in ',=\t\n '):
        raise ValueError('invalid property name: %r' % (prop,))
    return prop


def _as_list(names):
    if isinstance(names, str):
        return [names]
    return list(names)


def _is_busy(exc):
    return bool(_BUSY_RE.search(exc.stderr or ''))


class ZfsRunner:
    """Runs ``zfs`` with ``LC_ALL=C`` and parses scripted output.

    ``run_command`` has the ``AnsibleModule.run_command`` calling convention
    ``(args, check_rc=False, data=None, binary_data=False, environ_update=None)``
    and returns ``(rc, out, err)``. ``zfs_bin`` is used as given.
    """

    def __init__(self, run_command, zfs_bin='zfs'):
        self.run_command = run_command
        self.zfs_bin = zfs_bin
        # Results of capability probes, shared by every backend on this runner.
        self.capabilities = {}

    def zfs_argv(self, *args):
        return [self.zfs_bin] + [str(a) for a in args]

    def run(self, argv, data=None, check=True):
        """Run ``argv``; return ``(rc, out, err)``. With ``check``, a non-zero exit raises.

        ``DatasetNotFoundError`` is raised when stderr says the dataset (or
        pool) does not exist, ``ZfsError`` otherwise.
        """
        argv = [str(a) for a in argv]
        try:
            rc, out, err = self.run_command(argv, check_rc=False, data=data, environ_update=dict(ZFS_ENVIRON))
        except OSError as exc:
            raise ZfsError('cannot run %s: %s' % (_cmdline(argv), exc), cmd=argv, rc=None, stderr=str(exc))
        out = out or ''
        err = err or ''
        if check and rc != 0:
            raise self.error(argv, rc, out, err)
        return rc, out, err

    @staticmethod
    def error(argv, rc, out, err):
        """The exception for a failed command."""
        text = (err or '').strip() or (out or '').strip() or 'exit status %s' % rc
        message = '%s failed: %s' % (_cmdline(argv), text)
        cls = DatasetNotFoundError if _NOT_FOUND_RE.search(err or '') and 'dataset is busy' not in (err or '') else ZfsError
        return cls(message, cmd=list(argv), rc=rc, stderr=err)

    def zfs(self, *args, **kwargs):
        return self.run(self.zfs_argv(*args), **kwargs)

    @staticmethod
    def parse_rows(out, columns=None, argv=None):
        """Split scripted (``-H``) output into lists of tab-separated fields.

        With ``columns``, each line is split into at most that many fields (the
        last keeps any further tabs) and a line with fewer fields is an error
        (naming ``argv``, the command that printed it).
        """
        rows = []
        # split on '\n' only: splitlines() would also cut values at \x0b, \x1c...
        for line in out.split('\n'):
            if not line:
                continue
            if columns is None:
                rows.append(line.split('\t'))
                continue
            fields = line.split('\t', columns - 1)
            if len(fields) != columns:
                raise ZfsError('unexpected output line from %s (want %d tab-separated fields): %r'
                               % (_cmdline(argv or ['zfs']), columns, line), cmd=list(argv or ['zfs']), rc=0)
            rows.append(fields)
        return rows

    def zfs_rows(self, *args, **kwargs):
        columns = kwargs.pop('columns', None)
        argv = self.zfs_argv(*args)
        dummy, out, dummy2 = self.run(argv, **kwargs)
        return self.parse_rows(out, columns, argv)

    def usage_flags(self, subcommand):
        """Single-letter flags ``zfs SUBCOMMAND`` lists in its usage text (cached).

        Runs ``zfs SUBCOMMAND`` without arguments, which prints the usage on
        stderr. Returns ``None`` when no usage line could be found.
        """
        key = 'usage:' + subcommand
        if key not in self.capabilities:
            dummy, out, err = self.zfs(subcommand, check=False)
            flags = None
            for line in (err + '\n' + out).splitlines():
                if line.strip().startswith(subcommand + ' '):
                    flags = (flags or set()).union(*[set(m) for m in _USAGE_FLAGS_RE.findall(line)])
            self.capabilities[key] = frozenset(flags) if flags is not None else None
        return self.capabilities[key]


class ZfsBackend:
    """Operations the import/delete code needs. All names are text.

    Read calls (``exists``, ``which_exist``, ``get_properties``, ``list_snapshots``,
    ``dependent_clones``) are cheap and change nothing.
    Missing datasets raise ``DatasetNotFoundError``, other failures ``ZfsError``.
    """

    name = None

    def __init__(self, runner):
        self.runner = runner

    def exists(self, name):
        """Whether the filesystem, volume or snapshot ``name`` exists."""
        raise NotImplementedError

    def which_exist(self, names):
        """The subset of ``names`` that exist (one question where the backend can)."""
        return set(n for n in names if self.exists(n))

    def get_properties(self, names, props):
        """``{name: {prop: value}}`` with exact (``-p``) values as text, ``None`` for ``-``."""
        raise NotImplementedError

    def list_snapshots(self, dataset):
        """Full names of the snapshots of ``dataset`` (not of its children), oldest first."""
        raise NotImplementedError

    def dependent_clones(self, dataset):
        """Sorted names of the clones of any snapshot of ``dataset``."""
        raise NotImplementedError

    def rename(self, old, new, recursive=False):
        raise NotImplementedError

    def create_unmounted(self, name):
        """Create filesystem ``name`` with ``mountpoint=none``."""
        raise NotImplementedError

    def supports_unmounted_receive(self):
        """Whether ``zfs receive -u`` exists here."""
        raise NotImplementedError

    def receiving(self, target):
        """Context manager around a running ``zfs receive`` into ``target``."""
        raise NotImplementedError

    def destroy(self, name, recursive=False):
        raise NotImplementedError

    def mount(self, name):
        raise NotImplementedError

    def unmount(self, name):
        raise NotImplementedError

    def receive_argv(self, target, unmounted=True):
        raise NotImplementedError

    # what imgadm_create needs

    def snapshot(self, name):
        """``zfs snapshot DATASET@SNAP``."""
        raise NotImplementedError

    def rollback(self, snapshot, recursive=True):
        """``zfs rollback [-r] DATASET@SNAP``."""
        raise NotImplementedError

    def set_property(self, name, prop, value):
        """``zfs set PROP=VALUE NAME``."""
        raise NotImplementedError

    def send_argv(self, snapshot, incremental_from=None):
        """argv of ``zfs send [-i FROM] DATASET@SNAP``."""
        raise NotImplementedError


class CliBackend(ZfsBackend):
    """``ZfsBackend`` over the ``zfs`` command line.

    ``sleep``, ``busy_retries`` and ``busy_delay`` tune the retries done when
    zfs answers "dataset is busy" (zfs-fuse, right after an unmount).
    ``mount_gate`` (a ``_locks.MountGate``) keeps receives and mount changes
    apart where ``zfs receive`` mounts what it receives.
    """

    name = 'cli'

    def __init__(self, runner, sleep=time.sleep, busy_retries=8, busy_delay=0.05, mount_gate=None):
        super(CliBackend, self).__init__(runner)
        self.sleep = sleep
        self.busy_retries = busy_retries
        self.busy_delay = busy_delay
        self.mount_gate = mount_gate

    def _gated(self):
        return self.mount_gate is not None and not self.supports_unmounted_receive()

    def mount_changes(self):
        """Context around a mount, unmount, or a rename or destroy of filesystems."""
        return self.mount_gate.exclusive() if self._gated() else contextlib.nullcontext()

    @contextlib.contextmanager
    def receiving(self, target):
        """Context around a running ``zfs receive`` into ``target`` (see ``mount_changes``).

        Where the receive mounts what it received, the gate is held until that
        new mount answers (``_settle``): the mount call returns before the ZFS
        daemon has set up the new mount, and a mount change meanwhile is what
        wedges it.
        """
        if not self._gated():
            yield
            return
        with self.mount_gate.shared():
            yield
            self._settle(target)

    def _mounted_at(self, name):
        """Where filesystem ``name`` is mounted, or None: from the kernel's mount table where there is
        one (``/proc/self/mounts``, no zfs call), else from ``zfs get mounted,mountpoint``."""
        try:
            with open('/proc/self/mounts') as f:
                table = f.read()
        except (IOError, OSError):
            table = None
        if table is not None:
            for line in table.splitlines():
                fields = line.split(' ')
                if len(fields) > 2 and fields[0] == name:
                    # the table escapes space, tab, newline and backslash as octal
                    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), fields[1])
            return None
        try:
            props = self.get_properties([name], ['mounted', 'mountpoint']).get(name, {})
        except DatasetNotFoundError:
            return None
        path = props.get('mountpoint')
        return path if props.get('mounted') == 'yes' and path and path.startswith('/') else None

    def _settle(self, name):
        """Wait (at most the gate's timeout) until the mount of filesystem ``name``, if mounted, answers a stat."""
        path = self._mounted_at(name)
        if path is None:
            return
        done = threading.Event()

        def probe():
            try:
                os.stat(path)
            except OSError:
                pass
            done.set()
        thread = threading.Thread(target=probe)
        thread.daemon = True
        thread.start()
        timeout = self.mount_gate.timeout
        if not done.wait(timeout):
            raise ZfsError('the new mount of %s at %s did not answer within %s s (command_timeout): the ZFS daemon may be wedged'
                           % (name, path, timeout), cmd=['stat', path])

    # -- read calls ---------------------------------------------------------

    def exists(self, name):
        _check_name(name)
        try:
            self.runner.zfs('list', '-H', '-o', 'name', name)
        except DatasetNotFoundError:
            return False
        return True

    def which_exist(self, names):
        """One ``zfs list -H -o name A B ...``: it prints the ones that exist, and
        says "dataset does not exist" (exit 1) for the others."""
        names = list(names)
        for name in names:
            _check_name(name)
        if not names:
            return set()
        argv = self.runner.zfs_argv('list', '-H', '-o', 'name', *names)
        rc, out, err = self.runner.run(argv, check=False)
        found = set(line.strip() for line in out.splitlines() if line.strip())
        if rc != 0 and not _NOT_FOUND_RE.search(err or ''):
            raise self.runner.error(argv, rc, out, err)
        return found & set(names)

    def get_properties(self, names, props):
        """One ``zfs get -Hp``. ``props`` are full names: zfs prints an alias
        (``refer``) under its full name (``referenced``), which is not matched."""
        names = _as_list(names)
        props = list(props)
        for name in names:
            _check_name(name)
        for prop in props:
            _check_prop(prop)
        result = dict((n, dict((p, None) for p in props)) for n in names)
        if not names or not props:
            return result
        argv = self.runner.zfs_argv('get', '-Hp', '-o', 'name,property,value', ','.join(props), *names)
        rc, out, err = self.runner.run(argv, check=False)
        if rc != 0:
            raise self.runner.error(argv, rc, out, err)
        for name, prop, value in self.runner.parse_rows(out, 3, argv):
            if name in result and prop in result[name]:
                result[name][prop] = _undash(value)
        return result

    def list_snapshots(self, dataset):
        _check_name(dataset)
        if '@' in dataset:
            raise ValueError('not a filesystem or volume: %r' % (dataset,))
        # "-d 1" rather than "zfs list -t snapshot DS": zfs-fuse refuses the latter.
        rows = self.runner.zfs_rows('list', '-H', '-o', 'name', '-t', 'snapshot', '-s', 'createtxg',
                                    '-d', '1', dataset, columns=1)
        return [row[0] for row in rows if row[0].startswith(dataset + '@')]

    def dependent_clones(self, dataset):
        """Clones of any snapshot of ``dataset``.

        Uses ``zfs get -Hp -o name,value clones DS@snap...``; where zfs has no
        ``clones`` property (zfs-fuse; remembered in ``runner.capabilities``)
        the ``origin`` column of every filesystem and volume of the pool.
        """
        snapshots = self.list_snapshots(dataset)
        if not snapshots:
            return []
        if self.runner.capabilities.get('clones_property') is False:
            return self._dependent_clones_by_origin(dataset)
        argv = self.runner.zfs_argv('get', '-Hp', '-o', 'name,value', 'clones', *snapshots)
        rc, out, err = self.runner.run(argv, check=False)
        if rc != 0:
            match = _INVALID_PROP_RE.search(err)
            if match and (match.group(1) in (None, 'clones')):
                self.runner.capabilities['clones_property'] = False
                return self._dependent_clones_by_origin(dataset)
            raise self.runner.error(argv, rc, out, err)
        self.runner.capabilities['clones_property'] = True
        clones = set()
        for dummy, value in self.runner.parse_rows(out, 2, argv):
            clones.update(c for c in value.split(',') if c and c != '-')
        return sorted(clones)

    def _dependent_clones_by_origin(self, dataset):
        pool = dataset.split('/', 1)[0]
        rows = self.runner.zfs_rows('list', '-H', '-o', 'name,origin', '-t', 'filesystem,volume', '-r', pool,
                                    columns=2)
        prefix = dataset + '@'
        return sorted(name for name, origin in rows if origin.startswith(prefix))

    # -- changes ------------------------------------------------------------

    def create_unmounted(self, name):
        """``zfs create -o mountpoint=none NAME``: a filesystem that is never mounted (nor its children)."""
        _check_name(name)
        self.runner.zfs('create', '-o', 'mountpoint=none', name)

    def mount(self, name):
        """Mount filesystem ``name``. Returns False if it was already mounted."""
        _check_name(name)
        try:
            with self.mount_changes():
                self.runner.zfs('mount', name)
                if self._gated():
                    self._settle(name)
        except ZfsError as exc:
            if _ALREADY_MOUNTED_RE.search(exc.stderr or ''):
                return False
            raise
        return True

    def unmount(self, name):
        """Unmount filesystem ``name``. Returns False if it was not mounted."""
        _check_name(name)
        try:
            with self.mount_changes():
                self.runner.zfs('unmount', name)
        except ZfsError as exc:
            if _NOT_MOUNTED_RE.search(exc.stderr or '') and not isinstance(exc, DatasetNotFoundError):
                return False
            raise
        return True

    def _mounted_filesystems(self, name, recursive):
        """Mounted filesystems at ``name`` (and below it with ``recursive``), parents first."""
        args = ['list', '-H', '-o', 'name,type,mounted', '-t', 'filesystem,volume']
        if recursive:
            args.append('-r')
        rows = self.runner.zfs_rows(*(args + [name]), columns=3)
        return [n for n, dtype, mounted in rows if dtype == 'filesystem' and mounted == 'yes']

    def _unmount_quietly(self, names):
        """Unmount ``names`` children first; errors are left to the next command to report."""
        for name in sorted(names, key=lambda n: n.count('/'), reverse=True):
            try:
                self.unmount(name)
            except ZfsError:
                pass

    def _mount_quietly(self, names):
        for name in sorted(names, key=lambda n: n.count('/')):
            try:
                self.mount(name)
            except ZfsError:
                pass

    def _run_busy_retry(self, args, on_busy=None):
        """Run ``zfs ARGS``; on "busy", call ``on_busy`` and retry with a growing delay."""
        for attempt in range(self.busy_retries + 1):
            try:
                return self.runner.zfs(*args)
            except ZfsError as exc:
                if not _is_busy(exc) or attempt >= self.busy_retries:
                    raise
            if on_busy is not None:
                on_busy()
            self.sleep(self.busy_delay * (attempt + 1))
        return None  # pragma: no cover - the loop returns or raises

    def _run_unmounted(self, args, mounted):
        """Unmount ``mounted``, run ``zfs ARGS`` (retrying "busy"); on failure mount again what is still there."""
        self._unmount_quietly(mounted)
        try:
            self._run_busy_retry(args, on_busy=lambda: self._unmount_quietly(mounted))
        except ZfsError:
            self._mount_quietly([n for n in mounted if self.exists(n)])
            raise

    def _mount_change(self, args, dataset, recursive, remount=None):
        """Run ``zfs ARGS``, a mount change; where zfs answers "busy", unmount ``dataset`` (and what is below it
        with ``recursive``), run it again, and mount back what was mounted (named by ``remount(names)``)."""
        with self.mount_changes():
            try:
                self.runner.zfs(*args)
                return
            except ZfsError as exc:
                if not _is_busy(exc):
                    raise
            mounted = self._mounted_filesystems(dataset, recursive)
            self._run_unmounted(args, mounted)
            self._mount_quietly(remount(mounted) if remount else mounted)

    def destroy(self, name, recursive=False):
        """``zfs destroy [-r] NAME``; mounted filesystems are unmounted first.

        If the destroy fails, what was unmounted is mounted again (best effort).
        """
        _check_name(name)
        args = ['destroy'] + (['-r'] if recursive else []) + [name]
        if '@' in name:
            self.runner.zfs(*args)
            return
        with self.mount_changes():
            self._run_unmounted(args, self._mounted_filesystems(name, recursive))

    def rename(self, old, new, recursive=False):
        """``zfs rename [-r] OLD NEW`` (``recursive`` only for snapshots).

        When zfs answers "busy" for a filesystem (zfs-fuse cannot rename a
        mounted filesystem), the tree is unmounted, the rename retried and the
        filesystems that were mounted are mounted again under the new name.
        """
        _check_name(old)
        _check_name(new)
        if recursive and '@' not in old:
            raise ValueError('recursive rename is only for snapshots: %r' % (old,))
        args = ['rename'] + (['-r'] if recursive else []) + [old, new]
        if '@' in old:
            self.runner.zfs(*args)
            return
        self._mount_change(args, old, True, remount=lambda names: [new + n[len(old):] for n in names])

    # -- streams ------------------------------------------------------------

    def supports_unmounted_receive(self):
        """Whether ``zfs receive -u`` exists here (zfs-fuse has no -u). Probed once."""
        flags = self.runner.usage_flags('receive')
        return flags is None or 'u' in flags

    def receive_argv(self, target, unmounted=True):
        """argv of ``zfs receive [-u] TARGET``.

        ``-u`` is added when ``unmounted`` and the local zfs supports it (see
        ``supports_unmounted_receive``); the received dataset must then be
        mounted by the caller after its final rename.
        """
        _check_name(target)
        args = ['receive']
        if unmounted and self.supports_unmounted_receive():
            args.append('-u')
        args.append(target)
        return self.runner.zfs_argv(*args)

    def send_argv(self, snapshot, incremental_from=None):
        """argv of ``zfs send [-i FROM] DATASET@SNAP``, with no ``-p`` nor ``-r`` (as the stock ``imgadm create``)."""
        _check_snapshot_name(snapshot)
        args = ['send']
        if incremental_from is not None:
            args += ['-i', _check_snapshot_name(incremental_from)]
        args.append(snapshot)
        return self.runner.zfs_argv(*args)

    # -- snapshots and properties (imgadm_create) -------------------------------

    def snapshot(self, name):
        """``zfs snapshot DATASET@SNAP`` (of that dataset only, not its children)."""
        _check_snapshot_name(name)
        self.runner.zfs('snapshot', name)

    def rollback(self, snapshot, recursive=True):
        """``zfs rollback [-r] DATASET@SNAP``; ``-r`` destroys the snapshots taken after it.

        A rollback remounts a filesystem, so it is a mount change. Where zfs
        answers "busy" (zfs-fuse, a mounted filesystem in use), the
        filesystem is unmounted, the rollback retried and the filesystem
        mounted again.
        """
        _check_snapshot_name(snapshot)
        args = ['rollback'] + (['-r'] if recursive else []) + [snapshot]
        self._mount_change(args, snapshot.split('@', 1)[0], False)

    def set_property(self, name, prop, value):
        """``zfs set PROP=VALUE NAME``."""
        _check_name(name)
        _check_prop(prop)
        value = str(value)
        if any(c in value for c in '\n\r\0'):
            raise ValueError('invalid value for %s: %r' % (prop, value))
        self.runner.zfs('set', '%s=%s' % (prop, value), name)


def _to_bytes(name):
    return name.encode('utf-8', 'surrogateescape')


class LibzfsCoreBackend(CliBackend):
    """``CliBackend`` that uses pyzfs' ``libzfs_core`` where it offers the operation.

    ``lzc_exists``, ``lzc_destroy_snaps`` (single snapshot) and ``lzc_rename``
    (single snapshot, when the C library has it). Everything else, including
    anything that mounts or unmounts, goes through the CLI.
    """

    name = 'libzfs_core'

    def __init__(self, runner, lzc=None, **kwargs):
        super(LibzfsCoreBackend, self).__init__(runner, **kwargs)
        if lzc is None:
            lzc, import_error = _load_libzfs_core()
            if lzc is None:
                raise MissingLibraryError('pyzfs', exception=import_error)
        self.lzc = lzc

    def _error(self, exc, func, names):
        errors = list(getattr(exc, 'errors', None) or [exc])
        codes = [getattr(e, 'errno', None) for e in errors]
        not_found = errno.ENOENT in codes or any(type(e).__name__.endswith('NotFound') for e in errors)
        cls = DatasetNotFoundError if not_found else ZfsError
        detail = '; '.join(str(e) or type(e).__name__ for e in errors)
        message = 'libzfs_core.%s(%s) failed: %s' % (func, ', '.join(names), detail)
        return cls(message, cmd=['libzfs_core.' + func] + list(names), rc=codes[0], stderr=detail)

    def _call(self, func, names, *args):
        try:
            return getattr(self.lzc, func)(*args)
        except NotImplementedError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            # pyzfs raises libzfs_core.exceptions.ZFSError subclasses
            raise self._error(exc, func, names)

    def _supported(self, func):
        function = getattr(self.lzc, func, None)
        if function is None:
            return False
        is_supported = getattr(self.lzc, 'is_supported', None)
        if is_supported is None:
            return True
        try:
            return bool(is_supported(function))
        except (ValueError, TypeError):
            return True

    def exists(self, name):
        _check_name(name)
        return bool(self._call('lzc_exists', [name], _to_bytes(name)))

    def destroy(self, name, recursive=False):
        if '@' not in name or recursive:
            super(LibzfsCoreBackend, self).destroy(name, recursive)
            return
        _check_snapshot_name(name)
        # lzc_destroy_snaps silently ignores missing snapshots; the CLI does not.
        if not self.exists(name):
            raise DatasetNotFoundError('cannot destroy %s: dataset does not exist' % name,
                                       cmd=['libzfs_core.lzc_destroy_snaps', name])
        self._call('lzc_destroy_snaps', [name], [_to_bytes(name)], False)

    def rename(self, old, new, recursive=False):
        if '@' in old and not recursive and self._supported('lzc_rename'):
            _check_snapshot_name(old)
            _check_snapshot_name(new)
            try:
                self._call('lzc_rename', [old, new], _to_bytes(old), _to_bytes(new))
                return
            except NotImplementedError:
                pass
        super(LibzfsCoreBackend, self).rename(old, new, recursive)


def libzfs_core_usable(lzc):
    """``(True, None)`` if ``lzc`` looks like working pyzfs bindings, else ``(False, reason)``.

    ``lzc_rename`` is optional (``rename`` falls back to the CLI without it).
    """
    for func in ('lzc_exists', 'lzc_destroy_snaps'):
        if not callable(getattr(lzc, func, None)):
            return False, 'libzfs_core has no %s' % func
    try:
        # the first call opens /dev/zfs; a missing or unusable kernel module fails here
        lzc.lzc_exists(b'imgadm-probe-no-such-pool')
    except Exception as exc:  # pylint: disable=broad-except
        return False, 'libzfs_core is not usable: %s' % (str(exc) or type(exc).__name__)
    return True, None


def get_backend(runner, prefer='auto', **kwargs):
    """Choose a backend: ``'cli'``, ``'libzfs_core'`` or ``'auto'``.

    ``auto`` takes libzfs_core when pyzfs imports and answers a probe, else the
    CLI. ``libzfs_core`` raises ``MissingLibraryError('pyzfs')`` when it cannot.
    Extra keyword arguments go to the backend constructor.
    """
    if prefer not in ('auto', 'cli', 'libzfs_core'):
        raise ValueError("prefer must be 'auto', 'cli' or 'libzfs_core', not %r" % (prefer,))
    if prefer == 'cli':
        return CliBackend(runner, **kwargs)
    lzc, import_error = _load_libzfs_core()
    if lzc is None:
        if prefer == 'libzfs_core':
            raise MissingLibraryError('pyzfs', exception=import_error)
        return CliBackend(runner, **kwargs)
    usable, reason = libzfs_core_usable(lzc)
    if not usable:
        if prefer == 'libzfs_core':
            raise MissingLibraryError('pyzfs', reason='(%s)' % reason)
        return CliBackend(runner, **kwargs)
    return LibzfsCoreBackend(runner, lzc=lzc, **kwargs)


__all__ = (
    'ZFS_ENVIRON', 'ZfsRunner', 'ZfsBackend', 'CliBackend', 'LibzfsCoreBackend', 'libzfs_core_usable', 'get_backend',
)
