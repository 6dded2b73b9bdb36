# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``imgadm create``: an image (manifest + file) from a VM, in the order the stock ``imgadm`` does it.

``CreateRun.run`` (imgadm-behaviour.md 4.4):

1. **inspect** (read only, also in check mode): ``vmadm get`` (``VmNotFound``);
   the dataset to image and the origin image (the first disk for kvm/bhyve);
   the origin's record; ``max_origin_depth`` (``MaxOriginDepth``);
   ``sysinfo`` when ``requirements.min_platform`` needs it; the manifest
   (``_create_manifest``), validated (``ManifestValidation``); the output
   paths. When both files already exist for this manifest and the image
   file's size and sha1 match the manifest there, nothing is done (unless
   ``force``). Then the preconditions: a stopped VM without a prepare script
   (``VmNotStopped``), ``POOL/ORIGIN@final`` for an incremental image
   (``OriginHasNoFinalSnapshot``), no leftover ``@imgadm-create-pre-prepare``.
2. **prepare** (with a prepare script): stop the VM if it runs (it is started
   again at the end); bhyve: ``quota=none`` on the zone root (restored);
   ``@imgadm-create-pre-prepare`` of every dataset; the script
   (``_create_prepare``).
3. **send**: an existing ``DS@final`` is renamed ``DS@final-<ms>``;
   ``zfs snapshot DS@final``; ``zfs send [-i POOL/ORIGIN@final] DS@final``
   through the compressor into a temporary file (``_create_send``).
4. **write**: the manifest (``files`` added) to a temporary file, then both
   renamed to their names: the pair appears complete or not at all.
5. **cleanup**, always, in the stock ``imgadm``'s order: temporary files
   (and, on failure, files this run renamed into place); ``zfs destroy -r
   DS@final``; the ``@final`` moved out of the way renamed back (the stock
   ``imgadm`` leaves it as ``@final-<ms>``); with a prepare script, ``vmadm
   stop -F`` if the VM is not stopped, ``zfs rollback -r`` then ``zfs destroy``
   of each pre-prepare snapshot (a snapshot whose rollback failed is kept);
   the VM's operator-script and prepare-image metadata as they were (where
   the rollback did not restore them); the bhyve quota; ``vmadm start`` of a VM that was running. Cleanup goes
   on past a failed step; a failure of the run and of the cleanup is a
   ``MultiError``.
6. **publish**, when a publisher is given and ``publish`` is set
   (``_publisher.publish``, with the ``publish`` options); also when the
   files were found made, so that a publish that failed is tried again.

Only what this run made is undone: a snapshot that another run holds is
never rolled back or destroyed here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import tempfile
import time
import uuid as uuidlib
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._common import CommandRunner, find_binary, read_sysinfo
from ansible_collections.smartos.imgadm.plugins.module_utils._create_manifest import (
    build_manifest,
    check_max_origin_depth,
    needs_sysinfo,
    output_paths,
    output_prefix,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._create_prepare import ERROR_KEY, STATE_KEY, Preparer
from ansible_collections.smartos.imgadm.plugins.module_utils._create_send import send_to_file
from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase, js_json_dumps
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandError,
    FileSystemError,
    ImgadmError,
    MultiError,
    OriginHasNoFinalSnapshotError,
    UsageError,
    VmNotStoppedError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._installed import InstalledImages
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import file_digest, validate_manifest, validate_uuid
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import host_mount_gate
from ansible_collections.smartos.imgadm.plugins.module_utils._publisher import publish
from ansible_collections.smartos.imgadm.plugins.module_utils._vmadm import Vmadm, image_source, prepare_datasets
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import CliBackend, ZfsRunner

PRE_PREPARE = 'imgadm-create-pre-prepare'
FILE_MODE = 0o644


def _cmdline(argv):
    return ' '.join(argv)


def _json_normalised(value):
    """``value`` as it reads back from the manifest file (``1.0`` -> ``1``...)."""
    return json.loads(js_json_dumps(value))


def _dataset(snapshot):
    return snapshot.split('@', 1)[0]


def _below(snapshot, other):
    """Whether ``snapshot``'s dataset is a descendant of ``other``'s."""
    return _dataset(snapshot).startswith(_dataset(other) + '/')


def read_prepare_script(params):
    """The prepare script text: ``prepare_script_content``, or the file ``prepare_script``, or None."""
    if params.get('prepare_script_content') is not None:
        return params['prepare_script_content']
    path = params.get('prepare_script')
    if not path:
        return None
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except (IOError, OSError) as e:
        raise UsageError('cannot read the prepare script "%s": %s' % (path, e), field='prepare_script')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise UsageError('the prepare script "%s" is not UTF-8 text: %s' % (path, e), field='prepare_script')


def check_params(params):
    """Errors about the options alone, before anything is asked of the host."""
    validate_uuid(params['vm_uuid'], field='vm_uuid')
    depth = params.get('max_origin_depth')
    if depth is not None and depth < 2:
        raise UsageError('max_origin_depth must be greater than 1, got %s' % depth, field='max_origin_depth')
    if params.get('prepare_timeout') is not None and params['prepare_timeout'] <= 0:
        raise UsageError('prepare_timeout must be greater than 0, got %s' % params['prepare_timeout'], field='prepare_timeout')
    output = params.get('output')
    if output is None and not params.get('publish'):
        raise UsageError('output is required: the directory or path prefix of the image files', field='output')
    if output is not None and not os.path.isabs(output):
        raise UsageError('output must be an absolute path, got "%s"' % output, field='output')
    if params.get('prepare_script') and params.get('prepare_script_content') is not None:
        raise UsageError('prepare_script and prepare_script_content are mutually exclusive', field='prepare_script_content')


class Plan(object):
    """What ``inspect`` found and what the run will do."""

    def __init__(self):
        self.vm = None
        self.origin_uuid = None
        self.origin_pool = None
        self.origin_manifest = None
        self.origin_chain = None
        self.dataset = None
        self.manifest = None
        self.notes = None
        self.prefix = None
        self.keep_files = True
        self.manifest_path = None
        self.file_path = None
        self.origin_final = None
        self.has_final = False
        self.prepare_datasets = []
        self.stop_first = False
        self.quota = None  # the bhyve zone root's quota to restore, when it is set


class CreateRun(object):
    """One ``imgadm_create`` run.

    ``params``: the module's parameters; ``result``: a ``_common.Result``;
    ``vmadm``: a ``_vmadm.Vmadm``; ``backend``: a ``_zfs`` backend; ``db``:
    an ``ImageDatabase``; ``sysinfo()``: the host's sysinfo dict;
    ``compressor(compression)``: the argv prefix of the compressor;
    ``publisher``: ``publish(params, manifest, file_path, result, check_mode,
    run_command=None)`` or None. The rest is for tests.
    """

    def __init__(self, params, result, check_mode, vmadm, backend, db, sysinfo, compressor, publisher=None,
                 run_command=None, new_uuid=None, now_ms=None, sleep=time.sleep, clock=time.monotonic,
                 poll_intervals=None):
        self.params = params
        self.result = result
        self.check_mode = check_mode
        self.vmadm = vmadm
        self.backend = backend
        self.db = db
        self.installed = InstalledImages(backend, db)
        self.sysinfo = sysinfo
        self.compressor = compressor
        self.publisher = publisher
        self.run_command = run_command
        self.new_uuid = new_uuid or (lambda: str(uuidlib.uuid4()))
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.sleep = sleep
        self.clock = clock
        self.poll_intervals = poll_intervals
        self.timings = OrderedDict()
        self._existing = None
        self.undo = {'temp': [], 'written': [], 'final': None, 'moved_final': None, 'pre': [], 'prepare': {},
                     'quota': None, 'restart': False}
        self.data = result.data

    # ---- bookkeeping

    def _timed(self, phase, t0):
        self.timings[phase] = round(self.timings.get(phase, 0.0) + time.time() - t0, 3)
        self.data['timings'] = self.timings

    def _action(self, text, changes=True):
        self.result.action(text, changes=changes)

    # ---- the run

    def run(self):
        p = self.params
        check_params(p)
        script = read_prepare_script(p)
        t0 = time.time()
        plan = self.inspect(script is not None)
        self._timed('inspect', t0)
        existing = None
        if plan.keep_files and not p.get('force'):
            existing = self.existing_image(plan)
        if existing is not None:
            self._report_existing(plan, existing)
            self.data['created'] = False
        else:
            self.preconditions(plan, script is not None)
            if self.check_mode:
                self._report_plan(plan, script is not None)
            else:
                self.execute(plan, script)
            self.data['created'] = True
        self.publish(plan)

    # ---- 1. inspect

    def inspect(self, autoprep):
        p = self.params
        plan = Plan()
        vm_uuid = p['vm_uuid']
        vm = plan.vm = self.vmadm.get(vm_uuid)
        self.data['vm'] = OrderedDict([('uuid', vm_uuid), ('brand', vm.get('brand')), ('state', vm.get('state'))])
        plan.origin_uuid, plan.origin_pool, plan.dataset = image_source(vm)
        if not plan.dataset:
            raise CommandError('vm "%s" has no dataset to image (no %szfs_filesystem)'
                               % (vm_uuid, 'disks[0].' if vm.get('brand') in ('kvm', 'bhyve') else ''), vm_uuid=vm_uuid)
        if plan.origin_uuid and plan.origin_pool:
            rec = self.installed.get(plan.origin_pool, plan.origin_uuid)
            if rec is not None:
                plan.origin_manifest = rec['manifest']
        plan.origin_chain = check_max_origin_depth(p.get('max_origin_depth'), plan.origin_manifest, self._read_manifest(plan))
        given = p.get('manifest') or {}
        sysinfo = self.sysinfo() if needs_sysinfo(vm, given) else None
        plan.manifest, plan.notes = build_manifest(given, vm, plan.origin_manifest, sysinfo, p.get('incremental'),
                                                   self.new_uuid())
        validate_manifest(plan.manifest, 'minimal')
        if plan.manifest.get('origin'):
            plan.origin_final = '%s/%s@final' % (plan.origin_pool, plan.manifest['origin'])
        if p.get('output') is not None:
            plan.prefix = output_prefix(p['output'], plan.manifest['name'], plan.manifest['version'])
        else:  # only published: temporary files, removed afterwards
            plan.prefix = os.path.join('/var/tmp', '.imgadm-create-%d-%d' % (self.now_ms(), os.getpid()))
            plan.keep_files = False
        plan.manifest_path, plan.file_path = output_paths(plan.prefix, plan.manifest.get('type'), p['compression'])
        directory = os.path.dirname(plan.file_path)
        if not os.path.isdir(directory):
            raise FileSystemError('the directory of the output files does not exist: "%s"' % directory, path=directory)
        plan.prepare_datasets = prepare_datasets(vm) if autoprep else []
        self.data.update(manifest=plan.manifest, manifest_path=plan.manifest_path, file_path=plan.file_path,
                         origin=plan.origin_uuid if plan.origin_manifest is not None else None,
                         inherited=plan.notes['inherited'],
                         datasets=OrderedDict([('image', plan.dataset), ('prepare', plan.prepare_datasets)]))
        return plan

    def _read_manifest(self, plan):
        def read(uuid):
            if not self.installed.is_installed(plan.origin_pool, uuid):
                return None
            return self.db.read(plan.origin_pool, uuid)[0].get('manifest')
        return read

    def preconditions(self, plan, autoprep):
        vm = plan.vm
        if not autoprep and vm.get('state') != 'stopped':
            raise VmNotStoppedError('vm "%s" is not stopped' % vm['uuid'], vm_uuid=vm['uuid'], vm_state=vm.get('state'))
        if plan.origin_final and not self.backend.exists(plan.origin_final):
            raise OriginHasNoFinalSnapshotError(
                'cannot create an incremental image: origin image "%s" has no "@final" snapshot (sometimes this can be '
                'fixed by "imgadm update")' % plan.manifest['origin'], origin=plan.manifest['origin'])
        plan.has_final = (plan.dataset + '@final') in self.backend.list_snapshots(plan.dataset)
        if autoprep:
            plan.stop_first = vm.get('state') != 'stopped'
            leftovers = sorted(self.backend.which_exist(['%s@%s' % (d, PRE_PREPARE) for d in plan.prepare_datasets]))
            if leftovers:
                raise ImgadmError('%s exists already: left by an interrupted imgadm create (or one running now). If no '
                                  'create is running, roll the VM back to it ("zfs rollback -r") or destroy it, then '
                                  'try again' % ', '.join(leftovers), snapshots=leftovers)
        if vm.get('brand') == 'bhyve' and vm.get('zfs_filesystem'):
            quota = self.backend.get_properties([vm['zfs_filesystem']], ['quota'])[vm['zfs_filesystem']]['quota']
            if quota not in (None, '0', 'none'):
                plan.quota = quota

    # ---- idempotence

    def existing_image(self, plan):
        """The manifest of the files already at the output paths when they are this image, else None."""
        if not (os.path.isfile(plan.manifest_path) and os.path.isfile(plan.file_path)):
            return None
        why = self._mismatch(plan)
        if why is None:
            return self._existing
        self._action('the files at %s do not match (%s): they are created again' % (plan.prefix, why), changes=False)
        return None

    def _mismatch(self, plan):
        try:
            with open(plan.manifest_path, 'rb') as f:
                existing = json.loads(f.read().decode('utf-8'), object_pairs_hook=OrderedDict)
        except (IOError, OSError, ValueError) as e:
            return 'the manifest cannot be read: %s' % e
        if not isinstance(existing, dict):
            return 'the manifest is not a JSON object'
        want = plan.manifest
        for key in ('name', 'version', 'type', 'origin'):
            if existing.get(key) != want.get(key):
                return '%s is %s, not %s' % (key, json.dumps(existing.get(key)), json.dumps(want.get(key)))
        for key, value in (self.params.get('manifest') or {}).items():
            if key in ('files',):
                continue
            if existing.get(key) != _json_normalised(value):
                return '%s differs' % key
        files = existing.get('files')
        info = files[0] if isinstance(files, list) and files and isinstance(files[0], dict) else {}
        if info.get('compression') != self.params['compression']:
            return 'files[0].compression is %s' % json.dumps(info.get('compression'))
        size, sha1 = file_digest(plan.file_path)
        if info.get('size') != size or info.get('sha1') != sha1:
            return 'the image file has size %s and sha1 %s, the manifest says %s and %s' % (
                size, sha1, info.get('size'), info.get('sha1'))
        self._existing = existing
        return None

    def _report_existing(self, plan, existing):
        info = existing['files'][0]
        plan.manifest = existing
        self.data.update(manifest=existing, size=info.get('size'), sha1=info.get('sha1'), compression=info.get('compression'),
                         origin=existing.get('origin', self.data.get('origin')))
        self._action('image %s (%s@%s) exists already at %s and %s; nothing done'
                     % (existing.get('uuid'), existing.get('name'), existing.get('version'), plan.manifest_path,
                        plan.file_path), changes=False)

    # ---- check mode

    def _send_argv(self, plan):
        return self.backend.send_argv(plan.dataset + '@final', plan.origin_final)

    def _compressor_argv(self):
        compression = self.params['compression']
        return None if compression == 'none' else list(self.compressor(compression)) + ['-cfq']

    def _pipeline_text(self, plan, target):
        parts = [_cmdline(self._send_argv(plan))]
        comp = self._compressor_argv()
        if comp:
            parts.append(_cmdline(comp))
        return '%s > %s' % (' | '.join(parts), target)

    def _report_plan(self, plan, autoprep):
        vm = plan.vm
        ds = plan.dataset
        if plan.stop_first:
            self._action('stop VM %s (it runs), and start it again at the end' % vm['uuid'])
        if plan.quota is not None:
            self._action('set quota=none on %s (it is %s), and restore it at the end' % (vm['zfs_filesystem'], plan.quota))
        if autoprep:
            for d in plan.prepare_datasets:
                self._action('snapshot %s@%s' % (d, PRE_PREPARE))
            self._action('run the prepare-image script in VM %s, wait for it to finish and stop the VM' % vm['uuid'])
        if plan.has_final:
            self._action('rename %s@final out of the way while the image is sent, and back afterwards' % ds)
        self._action('snapshot %s@final' % ds)
        self._action(self._pipeline_text(plan, plan.file_path))
        self._action('write %s' % plan.manifest_path)
        self._action('destroy %s@final' % ds)
        if autoprep:
            self._action('roll back and destroy %s' % ', '.join('%s@%s' % (d, PRE_PREPARE) for d in plan.prepare_datasets))
        self.data.update(size=None, sha1=None, compression=self.params['compression'])

    # ---- 2-5. the changes, and the cleanup

    def execute(self, plan, script):
        failure = None
        try:
            self._prepare(plan, script)
            self._send(plan)
            self._write(plan)
        except BaseException as e:  # pylint: disable=broad-exception-caught
            failure = e
        t0 = time.time()
        cleanup_errors = self.cleanup(plan, failed=failure is not None)
        self._timed('cleanup', t0)
        if failure is not None:
            if cleanup_errors and isinstance(failure, Exception):
                raise MultiError([failure] + cleanup_errors)
            raise failure
        if cleanup_errors:
            raise cleanup_errors[0] if len(cleanup_errors) == 1 else MultiError(cleanup_errors)

    def _prepare(self, plan, script):
        t0 = time.time()
        try:
            self._prepare_steps(plan, script)
        finally:
            if plan.stop_first or plan.quota is not None or script is not None:
                self._timed('prepare', t0)

    def _prepare_steps(self, plan, script):
        vm = plan.vm
        u = self.undo
        if plan.stop_first:
            self.vmadm.stop(vm['uuid'])
            u['restart'] = True
            self._action('stopped VM %s to snapshot it' % vm['uuid'])
        if plan.quota is not None:
            self.backend.set_property(vm['zfs_filesystem'], 'quota', 'none')
            u['quota'] = (vm['zfs_filesystem'], plan.quota)
            self._action('set quota=none on %s (was %s)' % (vm['zfs_filesystem'], plan.quota))
        if script is not None:
            for d in plan.prepare_datasets:
                snap = '%s@%s' % (d, PRE_PREPARE)
                self.backend.snapshot(snap)
                u['pre'].append(snap)
                self._action('snapshot %s' % snap)
            kwargs = {}
            if self.poll_intervals is not None:
                kwargs = dict(start_interval=self.poll_intervals[0], interval=self.poll_intervals[1])
            preparer = Preparer(self.vmadm, vm['uuid'], self.params['prepare_timeout'], log=self._action,
                                progress=u['prepare'], sleep=self.sleep, clock=self.clock, **kwargs)
            try:
                preparer.run(script)
            finally:
                self.data['prepare_stages'] = OrderedDict((s, round(t, 3)) for s, t in preparer.stages)

    def _send(self, plan):
        u = self.undo
        t0 = time.time()
        ds = plan.dataset
        final = ds + '@final'
        if plan.has_final:
            moved = '%s@final-%d' % (ds, self.now_ms())
            self.backend.rename(final, moved, recursive=True)
            u['moved_final'] = moved
            self._action('renamed %s to %s (out of the way)' % (final, moved))
        self.backend.snapshot(final)
        u['final'] = final
        self._action('snapshot %s' % final)
        tmp = self._temp(plan.file_path)
        send_argv = self._send_argv(plan)
        stats = send_to_file(send_argv, self._compressor_argv(), tmp, timeout=self.params['command_timeout'],
                             label='image %s of VM %s' % (plan.manifest['uuid'], plan.vm['uuid']))
        plan.manifest['files'] = [OrderedDict([('size', stats.bytes), ('compression', self.params['compression']),
                                               ('sha1', stats.sha1)])]
        self.data.update(size=stats.bytes, sha1=stats.sha1, compression=self.params['compression'])
        self._action(self._pipeline_text(plan, plan.file_path) + ' (%d bytes)' % stats.bytes)
        self._timed('send', t0)

    def _write(self, plan):
        t0 = time.time()
        tmp_file = self.undo['temp'][-1]
        tmp_manifest = self._temp(plan.manifest_path)
        try:
            with open(tmp_manifest, 'wb') as f:
                f.write(js_json_dumps(plan.manifest).encode('utf-8'))  # JSON.stringify(m, null, 2): no newline
                f.flush()
                os.fsync(f.fileno())
            for path in (tmp_file, tmp_manifest):
                os.chmod(path, FILE_MODE)
            for tmp, path in ((tmp_file, plan.file_path), (tmp_manifest, plan.manifest_path)):
                os.rename(tmp, path)
                self.undo['temp'].remove(tmp)
                self.undo['written'].append(path)
        except (IOError, OSError) as e:
            raise FileSystemError('error saving the image files at "%s": %s' % (plan.prefix, e), path=plan.manifest_path)
        self._action('wrote %s and %s' % (plan.manifest_path, plan.file_path))
        self.data['manifest'] = plan.manifest
        self._timed('write', t0)

    def _temp(self, path):
        directory, base = os.path.split(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix='.%s.' % base, suffix='.partial', dir=directory)
        except (IOError, OSError) as e:
            raise FileSystemError('cannot create a file in "%s": %s' % (directory, e), path=directory)
        os.close(fd)
        self.undo['temp'].append(tmp)
        return tmp

    def cleanup(self, plan, failed):
        """Undo what the run made, in the stock imgadm's order; returns the errors (the steps go on past them)."""
        u = self.undo
        errors = []

        def attempt(func, *args, **kwargs):
            try:
                func(*args, **kwargs)
                return True
            except ImgadmError as e:
                errors.append(e)
            except (IOError, OSError) as e:
                errors.append(FileSystemError(str(e)))
            return False

        # 1. the send pipeline's processes are killed by send_to_file itself; 2. partial files
        for path in list(u['temp']) + (list(u['written']) if failed else []):
            if attempt(_unlink, path):
                if path in u['written']:
                    self._action('removed %s (the run failed)' % path, changes=False)
        # 3. the @final made for the send, and the one moved out of the way
        if u['final'] and attempt(self.backend.destroy, u['final'], recursive=True):
            self._action('destroyed %s' % u['final'], changes=False)
            if u['moved_final'] and attempt(self.backend.rename, u['moved_final'], u['final'], recursive=True):
                self._action('renamed %s back to %s' % (u['moved_final'], u['final']), changes=False)
        elif u['moved_final'] and not u['final']:
            if attempt(self.backend.rename, u['moved_final'], plan.dataset + '@final', recursive=True):
                self._action('renamed %s back to %s@final' % (u['moved_final'], plan.dataset), changes=False)
        # 4. the prepared VM: stopped, rolled back, pre-prepare snapshots destroyed
        stopped = True
        if u['pre'] or u['prepare'].get('started'):
            stopped = self._ensure_stopped(plan, attempt)
        if u['pre']:
            if not stopped:
                errors.append(ImgadmError('VM %s could not be stopped: %s not rolled back; do it by hand once it is stopped'
                                          % (plan.vm['uuid'], ', '.join(u['pre'])), snapshots=list(u['pre'])))
            else:
                self._roll_back(attempt, errors)
        if u['prepare'].get('operator_script'):
            self._restore_metadata(plan, attempt)
        # 5. the bhyve quota
        if u['quota'] is not None and attempt(self.backend.set_property, u['quota'][0], 'quota', u['quota'][1]):
            self._action('restored quota=%s on %s' % (u['quota'][1], u['quota'][0]), changes=False)
        # 6. a VM that was running runs again
        if u['restart'] and stopped and attempt(self.vmadm.start, plan.vm['uuid']):
            self._action('started VM %s again' % plan.vm['uuid'], changes=False)
        return errors

    def _ensure_stopped(self, plan, attempt):
        box = {}

        def get():
            box['vm'] = self.vmadm.get(plan.vm['uuid'])
        if not attempt(get):
            return False
        if box['vm'].get('state') == 'stopped':
            return True
        if attempt(self.vmadm.stop, plan.vm['uuid'], force=True):
            self._action('stopped VM %s (vmadm stop -F)' % plan.vm['uuid'], changes=False)
            return True
        return False

    def _restore_metadata(self, plan, attempt):
        """Put back the VM's operator-script and prepare-image:* keys as they were before the run.

        The rollback does it where vmadm keeps the metadata in the zone's
        dataset (SmartOS: ZONEPATH/config); this is for where it does not,
        so that a restarted VM does not run the prepare script again.
        """
        box = {}

        def get():
            box['vm'] = self.vmadm.get(plan.vm['uuid'])
        if not attempt(get):
            return
        payload = OrderedDict()
        for field, keys in (('internal_metadata', ['operator-script']), ('customer_metadata', [STATE_KEY, ERROR_KEY])):
            before = plan.vm.get(field) if isinstance(plan.vm.get(field), dict) else {}
            now = box['vm'].get(field) if isinstance(box['vm'].get(field), dict) else {}
            for key in keys:
                if now.get(key) == before.get(key) and (key in now) == (key in before):
                    continue
                if key in before:
                    payload.setdefault('set_' + field, OrderedDict())[key] = before[key]
                else:
                    payload.setdefault('remove_' + field, []).append(key)
        if payload and attempt(self.vmadm.update, plan.vm['uuid'], payload):
            self._action('restored the operator-script and prepare-image metadata of VM %s' % plan.vm['uuid'], changes=False)

    def _roll_back(self, attempt, errors):
        pre = self.undo['pre']
        rolled = [s for s in pre if attempt(self.backend.rollback, s, recursive=True)]
        for s in rolled:
            self._action('rolled back to %s' % s, changes=False)
        failed = [s for s in pre if s not in rolled]
        if failed:
            errors.append(ImgadmError('%s kept: the rollback failed; the VM is not back to its state before the prepare '
                                      'script' % ', '.join(failed), snapshots=failed))
        recursive_done = []
        for s in rolled:
            if any(_below(s, r) for r in recursive_done):
                continue  # destroyed with its parent's -r (a bhyve disk under the zone root)
            recursive = not any(_below(f, s) for f in failed)
            if attempt(self.backend.destroy, s, recursive=recursive):
                self._action('destroyed %s' % s, changes=False)
                if recursive:
                    recursive_done.append(s)

    # ---- 6. publish

    def publish(self, plan):
        """``publisher(params['publish'], manifest, file_path, result, check_mode, run_command)`` (``_publisher.publish``).

        In check mode it is only called when the image files exist (found
        made); an image still to be made cannot be checked against a server.
        """
        options = self.params.get('publish')
        if self.publisher is None or not options:
            return
        if self.check_mode and not plan.manifest.get('files'):
            self._action('publish the image to %s' % options.get('url'))
            return
        t0 = time.time()
        try:
            self.publisher(options, plan.manifest, plan.file_path, self.result, self.check_mode, run_command=self.run_command)
        finally:
            self._timed('publish', t0)
            if not plan.keep_files and not self.check_mode:
                for path in (plan.file_path, plan.manifest_path):
                    try:
                        _unlink(path)
                    except OSError:
                        pass


def _unlink(path):
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


def run_create(module, result):
    """The imgadm_create module's run: its options wired to a ``CreateRun`` (commands with deadlines, the
    ``zfs`` CLI behind the host's mount gate, ``vmadm``, the database, ``sysinfo``, the compressors)."""
    p = module.params
    run_command = CommandRunner(module, p['command_timeout'])
    runner = ZfsRunner(run_command, zfs_bin=find_binary(module, p['zfs_path'], 'zfs'))
    backend = CliBackend(runner, mount_gate=host_mount_gate(p['command_timeout']))
    vmadm = Vmadm(run_command, find_binary(module, p['vmadm_path'], 'vmadm'))

    def compressor(compression):
        return [find_binary(module, p['%s_path' % compression], compression)]

    CreateRun(p, result, module.check_mode, vmadm, backend, ImageDatabase(p['imgadm_dir']),
              lambda: read_sysinfo(module, run_command), compressor, publisher=publish, run_command=run_command).run()


__all__ = ('PRE_PREPARE', 'read_prepare_script', 'check_params', 'Plan', 'CreateRun', 'run_create')
