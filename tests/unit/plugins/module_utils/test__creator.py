# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of imgadm_create's library: _creator.py and the files split from it, without root or a pool.

* ``_create_manifest``: the manifest tables (inheritance, brands,
  min_platform, bootrom, typed values, key order), slugs and output paths,
  ``max_origin_depth``;
* ``_create_prepare``: the prepare-image state machine against a scripted
  VM and a fake clock (success, error, never started, stopped early, never
  completes, never stops, a timeout per stage);
* ``_create_send``: the send pipeline with real gzip/bzip2/xz behind a fake
  ``zfs send`` (a process printing a file): size and sha1 of the bytes
  written, failures of either process, a stall, an unwritable file;
* the ``_zfs`` calls create adds (snapshot, rollback, set, send argv);
* ``CreateRun`` against ``FakeHost``, a Python ``vmadm`` and ``zfs`` behind
  ``run_command`` (and a real script for the send): the exact sequence of
  changing commands on success and at each failure point (rollback,
  destroy, quota, restart), idempotence, check mode, the publish hook.

What needs a real pool and VMs is in the integration tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import copy
import gzip
import hashlib
import json
import lzma
import os
import shutil
import stat
import sys
import time
from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils import _create_send
from ansible_collections.smartos.imgadm.plugins.module_utils._common import Result
from ansible_collections.smartos.imgadm.plugins.module_utils._create_manifest import (
    build_manifest,
    check_max_origin_depth,
    needs_sysinfo,
    origin_chain,
    output_paths,
    output_prefix,
    path_slugify,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._create_prepare import Preparer, prepare_image_error
from ansible_collections.smartos.imgadm.plugins.module_utils._create_send import send_to_file
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import file_digest
from ansible_collections.smartos.imgadm.plugins.module_utils._creator import CreateRun, check_params, read_prepare_script
from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandError,
    CommandTimeoutError,
    FileSystemError,
    ImgadmError,
    InvalidUUIDError,
    ManifestValidationError,
    MaxOriginDepthError,
    MultiError,
    OriginHasNoFinalSnapshotError,
    PrepareImageDidNotRunError,
    PrepareImageError,
    UsageError,
    VmHasNoOriginError,
    VmNotFoundError,
    VmNotStoppedError,
    ZfsError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._vmadm import Vmadm
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import CliBackend, ZfsRunner

VM = '0d7c3f6e-0000-4000-8000-0000000000aa'
IMG = '0d7c3f6e-0000-4000-8000-00000000000b'
BASE = '0d7c3f6e-0000-4000-8000-00000000000c'
NEW = '0d7c3f6e-0000-4000-8000-000000000123'
SYSINFO = {'SDC Version': '7.0', 'Live Image': '20260101T000000Z'}
PRE = 'imgadm-create-pre-prepare'


# =============================================================== manifest

def origin(**fields):
    m = OrderedDict([('v', 2), ('uuid', IMG), ('name', 'base'), ('version', '1.0'), ('type', 'zone-dataset'),
                     ('os', 'smartos')])
    m.update(fields)
    return m


def vm(brand='joyent', **fields):
    v = OrderedDict([('uuid', VM), ('brand', brand), ('state', 'stopped'), ('zpool', 'zones'),
                     ('zfs_filesystem', 'zones/' + VM), ('image_uuid', IMG)])
    v.update(fields)
    return v


GIVEN = OrderedDict([('name', 'new'), ('version', '2.0')])


def test_manifest_key_order_and_inheritance():
    om = origin(requirements=OrderedDict([('networks', [{'name': 'net0', 'description': 'public'}])]),
                users=[{'name': 'root'}], billing_tags=[], traits={'a': True}, generate_passwords=False,
                description='not inherited', tags={'x': 1})
    before = copy.deepcopy(om)
    m, notes = build_manifest(GIVEN, vm(), om, SYSINFO, False, NEW)
    assert list(m) == ['v', 'uuid', 'name', 'version', 'type', 'os', 'requirements', 'users', 'traits',
                       'generate_passwords']
    assert m['requirements'] == {'networks': [{'name': 'net0', 'description': 'public'}],
                                 'min_platform': {'7.0': '20260101T000000Z'}}
    assert notes['inherited'] == ['type', 'os', 'requirements', 'users', 'traits', 'generate_passwords']
    assert notes['set'] == ['requirements.min_platform']
    assert om == before  # the origin's record is not changed


@pytest.mark.parametrize('brand, given_reqs, vm_fields, want', [
    # joyent/joyent-minimal: min_platform from sysinfo, unless given (even empty: truthy in JavaScript)
    ('joyent', None, {}, {'min_platform': {'7.0': '20260101T000000Z'}}),
    ('joyent-minimal', None, {}, {'min_platform': {'7.0': '20260101T000000Z'}}),
    ('joyent', {'min_platform': {'6.5': '20130101T000000Z'}}, {}, {'min_platform': {'6.5': '20130101T000000Z'}}),
    ('joyent', {'min_platform': {}}, {}, {'min_platform': {}}),
    ('joyent', {'min_platform': None}, {}, {'min_platform': {'7.0': '20260101T000000Z'}}),
    # lx/kvm/bhyve: brand, unless the given requirements have a brand key (even empty)
    ('lx', None, {}, {'brand': 'lx'}),
    ('kvm', None, {}, {'brand': 'kvm'}),
    ('lx', {'brand': ''}, {}, {'brand': ''}),
    ('lx', {'brand': 'joyent'}, {}, {'brand': 'joyent'}),
    # bhyve: bootrom from the VM, unless given
    ('bhyve', None, {'bootrom': 'uefi'}, {'brand': 'bhyve', 'bootrom': 'uefi'}),
    ('bhyve', {'bootrom': 'bios'}, {'bootrom': 'uefi'}, {'bootrom': 'bios', 'brand': 'bhyve'}),
    ('bhyve', None, {}, {'brand': 'bhyve'}),
    ('kvm', None, {'bootrom': 'uefi'}, {'brand': 'kvm'}),
    # other brands: nothing
    ('other', None, {}, None),
])
def test_manifest_requirements_by_brand(brand, given_reqs, vm_fields, want):
    given = OrderedDict(GIVEN)
    if given_reqs is not None:
        given['requirements'] = given_reqs
    m, dummy = build_manifest(given, vm(brand, **vm_fields), None, SYSINFO, False, NEW)
    assert m.get('requirements') == want


def test_inherited_requirements_get_the_platform_and_brand_of_this_host():
    om = origin(requirements={'min_platform': {'6.5': '20120101T000000Z'}, 'brand': 'joyent'})
    m, dummy = build_manifest(GIVEN, vm(), om, SYSINFO, False, NEW)
    assert m['requirements'] == {'min_platform': {'7.0': '20260101T000000Z'}, 'brand': 'joyent'}
    m, dummy = build_manifest(GIVEN, vm('lx'), origin(requirements={'brand': 'joyent'}), None, False, NEW)
    assert m['requirements'] == {'brand': 'lx'}


def test_given_fields_win_and_values_keep_their_types():
    given = OrderedDict([('v', 3), ('uuid', BASE), ('name', 'n'), ('version', 2), ('type', 'zvol'),
                         ('public', 'true'), ('tags', {'n': 1.0})])
    m, notes = build_manifest(given, vm('other'), origin(os='linux'), None, False, NEW)
    assert m == OrderedDict([('v', 3), ('uuid', BASE), ('name', 'n'), ('version', 2), ('type', 'zvol'),
                             ('public', 'true'), ('tags', {'n': 1.0}), ('os', 'linux')])
    assert notes['inherited'] == ['os']
    with pytest.raises(ManifestValidationError) as exc:
        from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import validate_manifest
        validate_manifest(m)
    assert 'version' in str(exc.value)


def test_empty_lists_are_not_inherited_and_missing_origin_inherits_nothing():
    m, notes = build_manifest(GIVEN, vm('other'), origin(billing_tags=[], users=[]), None, False, NEW)
    assert 'billing_tags' not in m and 'users' not in m
    m, notes = build_manifest(GIVEN, vm('other'), None, None, False, NEW)
    assert list(m) == ['v', 'uuid', 'name', 'version'] and notes['inherited'] == []
    # a record without a manifest (only {uuid}) still is an origin
    m, dummy = build_manifest(GIVEN, vm('other'), {'uuid': IMG}, None, True, NEW)
    assert m['origin'] == IMG


def test_incremental_sets_origin_last_or_needs_an_origin():
    m, notes = build_manifest(GIVEN, vm(), origin(), SYSINFO, True, NEW)
    assert list(m)[-1] == 'origin' and m['origin'] == IMG
    with pytest.raises(VmHasNoOriginError) as exc:
        build_manifest(GIVEN, vm(), None, SYSINFO, True, NEW)
    assert str(exc.value) == 'cannot create an incremental image: vm "%s" has no origin' % VM


def test_sysinfo_is_needed_only_for_min_platform():
    assert needs_sysinfo(vm('joyent'), GIVEN)
    assert not needs_sysinfo(vm('joyent'), {'requirements': {'min_platform': {}}})
    assert not needs_sysinfo(vm('lx'), GIVEN)
    with pytest.raises(CommandError):
        build_manifest(GIVEN, vm('joyent'), None, {'SDC Version': '7.0'}, False, NEW)


@pytest.mark.parametrize('value, slug', [
    ('base-64', 'base-64'),
    ('My Image', 'my-image'),
    ('  a  b  ', 'a-b'),
    ('a--b -- c', 'a-b-c'),
    ('a/b:c*d', 'abcd'),
    ('v1.2.3_rc+1', 'v1.2.3_rc1'),
    ('Ünïcode é', 'ncode'),
    ('a\tb', 'a-b'),
    (2, '2'),
])
def test_path_slugify(value, slug):
    assert path_slugify(value) == slug


def test_output_prefix_and_paths(tmp_path):
    d = str(tmp_path)
    assert output_prefix(d, 'My Image', '1.0') == os.path.join(d, 'my-image-1.0')
    assert output_prefix(os.path.join(d, 'x'), 'n', 'v') == os.path.join(d, 'x')
    assert output_paths('/p/x', 'zone-dataset', 'none') == ('/p/x.imgmanifest', '/p/x.zfs')
    assert output_paths('/p/x', 'zone-dataset', 'gzip') == ('/p/x.imgmanifest', '/p/x.zfs.gz')
    assert output_paths('/p/x', 'lx-dataset', 'bzip2') == ('/p/x.imgmanifest', '/p/x.zfs.bz2')
    assert output_paths('/p/x', 'zvol', 'xz') == ('/p/x.imgmanifest', '/p/x.zvol.xz')


def chain_reader(chain):
    manifests = dict((u, {'uuid': u, 'origin': o} if o else {'uuid': u}) for u, o in chain.items())
    return manifests.get


@pytest.mark.parametrize('max_depth, chain, fails', [
    (2, {}, False),                              # a full origin: not checked
    (2, {'a': None}, False),                     # origin -> a: 2 images
    (2, {'a': 'b', 'b': None}, True),            # 3 images
    (3, {'a': 'b', 'b': None}, False),
    (3, {'a': 'b', 'b': 'c', 'c': None}, True),
    (2, {'a': 'b'}, True),                       # b unknown: counted, the chain is cut there
    (None, {'a': 'b', 'b': 'c', 'c': None}, False),
])
def test_max_origin_depth(max_depth, chain, fails):
    om = {'uuid': IMG, 'origin': 'a'} if chain else {'uuid': IMG}
    read = chain_reader(chain)
    if fails:
        with pytest.raises(MaxOriginDepthError) as exc:
            check_max_origin_depth(max_depth, om, read)
        assert str(exc.value) == 'cannot create image: maximum origin depth "%s" has been reached' % max_depth
    else:
        check_max_origin_depth(max_depth, om, read)


def test_origin_chain_stops_on_a_loop():
    assert origin_chain({'uuid': IMG, 'origin': 'a'}, chain_reader({'a': IMG})) == [IMG, 'a']


# =============================================================== prepare

class Clock(object):
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds


class ScriptedVm(object):
    """A ``Vmadm`` whose ``get`` walks through ``states`` (each a (seconds after start, vm state, md) step)."""

    def __init__(self, clock, steps, initial='stopped'):
        self.clock = clock
        self.steps = steps
        self.calls = []
        self.started_at = None
        self.state = initial
        self.md = {'prepare-image:state': 'stale'}

    def update(self, uuid, payload):
        self.calls.append(('update', payload))
        for k in payload.get('remove_customer_metadata', []):
            self.md.pop(k, None)

    def start(self, uuid):
        self.calls.append(('start',))
        self.started_at = self.clock()
        self.state = 'running'

    def get(self, uuid):
        self.calls.append(('get',))
        elapsed = self.clock() - self.started_at
        for at, state, md in self.steps:
            if elapsed >= at:
                if state:
                    self.state = state
                self.md.update(md or {})
        return {'uuid': uuid, 'state': self.state, 'customer_metadata': dict(self.md)}


def run_prepare(steps, timeout=10):
    clock = Clock()
    v = ScriptedVm(clock, steps)
    progress = {}
    log = []
    p = Preparer(v, VM, timeout, log=log.append, progress=progress, sleep=clock.sleep, clock=clock)
    try:
        p.run('#!/bin/sh\ntrue\n')
        error = None
    except ImgadmError as e:
        error = e
    return v, p, progress, log, error, clock


RUNNING = {'prepare-image:state': 'running'}
SUCCESS = {'prepare-image:state': 'success'}


def test_prepare_success_calls_and_stages():
    v, p, progress, log, error, clock = run_prepare([(3, None, RUNNING), (5, None, SUCCESS), (7, 'stopped', None)])
    assert error is None
    assert v.calls[:3] == [('update', {'set_internal_metadata': {'operator-script': '#!/bin/sh\ntrue\n'}}),
                           ('update', {'remove_customer_metadata': ['prepare-image:state', 'prepare-image:error']}),
                           ('start',)]
    assert progress == {'operator_script': True, 'started': True}
    assert [s for s, t in p.stages] == ['running', 'complete', 'stopped']
    # polled every 2 s while waiting for the start, every second afterwards
    assert p.stages[0][1] == 4 and p.stages[1][1] == 1 and p.stages[2][1] == 2
    assert log[0] == 'preparing VM %s (starting it)' % VM and log[-1] == 'prepare-image script stopped VM %s' % VM


def test_prepare_state_may_skip_running():
    v, p, progress, log, error, clock = run_prepare([(0, 'stopped', SUCCESS)])
    assert error is None


def test_prepare_error_with_the_guests_message():
    v, p, progress, log, error, clock = run_prepare([
        (1, None, RUNNING), (2, None, {'prepare-image:state': 'error', 'prepare-image:error': 'disk full'})])
    assert isinstance(error, PrepareImageError) and error.code == 'PrepareImageError'
    assert str(error) == 'prepare-image script error while preparing VM %s: disk full' % VM
    assert error.details['prepare_error'] == 'disk full'


def test_prepare_error_multiline_is_indented_like_the_reference():
    e = prepare_image_error(VM, 'line 1\nline 2')
    assert str(e) == 'prepare-image script error while preparing VM %s:\n    ...\n    line 1\n    line 2' % VM
    assert str(prepare_image_error(VM, '')) == 'prepare-image script error while preparing VM %s' % VM


def test_prepare_never_started():
    v, p, progress, log, error, clock = run_prepare([], timeout=10)
    assert isinstance(error, PrepareImageDidNotRunError) and error.code == 'PrepareImageDidNotRun'
    assert 'did not indicate it was run (old guest tools in VM %s?)' % VM in str(error)
    assert error.details['stage'] == 'running' and clock.now == 1010
    assert progress['started'] is True  # the caller's cleanup stops the VM


def test_prepare_vm_stopped_without_signalling_fails_at_once():
    v, p, progress, log, error, clock = run_prepare([(1, 'stopped', None)], timeout=300)
    assert isinstance(error, PrepareImageDidNotRunError)
    assert 'the VM stopped without setting prepare-image:state' in str(error)
    assert clock.now < 1010


def test_prepare_never_completes():
    v, p, progress, log, error, clock = run_prepare([(1, None, RUNNING)], timeout=10)
    assert isinstance(error, PrepareImageError)
    assert 'prepare-image script did not complete within 10 s' in str(error) and error.details['stage'] == 'complete'


def test_prepare_vm_stopped_while_running_fails_at_once():
    v, p, progress, log, error, clock = run_prepare([(1, None, RUNNING), (3, 'stopped', None)], timeout=300)
    assert isinstance(error, PrepareImageError)
    assert 'the VM stopped before the script set prepare-image:state to success or error' in str(error)
    assert clock.now < 1010


def test_prepare_never_stops():
    v, p, progress, log, error, clock = run_prepare([(1, None, RUNNING), (2, None, SUCCESS)], timeout=10)
    assert isinstance(error, PrepareImageError)
    assert 'VM did not shutdown within 10 s' in str(error) and error.details['stage'] == 'stopped'


def test_prepare_timeout_is_per_stage():
    # each stage takes 8 s of a 10 s timeout: 24 s in all, no timeout
    v, p, progress, log, error, clock = run_prepare([(8, None, RUNNING), (16, None, SUCCESS), (24, 'stopped', None)], 10)
    assert error is None
    assert all(t <= 10 for s, t in p.stages)


# =============================================================== send pipeline

PAYLOAD = b''.join(hashlib.sha256(str(i).encode()).digest() for i in range(40000))  # ~1.2 MiB, barely compressible


def cat_argv(path):
    return [sys.executable, '-c', 'import shutil, sys; shutil.copyfileobj(open(sys.argv[1], "rb"), sys.stdout.buffer)', path]


@pytest.fixture
def stream(tmp_path):
    path = tmp_path / 'stream'
    path.write_bytes(PAYLOAD + b'\0' * 300000)
    return str(path)


@pytest.mark.parametrize('compression, opener', [
    ('none', None), ('gzip', gzip.decompress), ('bzip2', bz2.decompress), ('xz', lzma.decompress)])
def test_send_through_real_compressors(tmp_path, stream, compression, opener):
    if compression != 'none' and not shutil.which(compression):
        pytest.skip('no %s' % compression)
    out = str(tmp_path / 'out')
    comp = None if compression == 'none' else [shutil.which(compression), '-cfq']
    stats = send_to_file(cat_argv(stream), comp, out, timeout=30, chunk_size=65536)
    data = open(out, 'rb').read()
    assert stats.bytes == len(data) and stats.sha1 == hashlib.sha1(data).hexdigest()
    assert file_digest(out) == (stats.bytes, stats.sha1)
    original = open(stream, 'rb').read()
    assert (data if opener is None else opener(data)) == original
    if compression != 'none':
        assert len(data) < len(original)


def test_send_failure_is_a_zfs_error(tmp_path):
    out = str(tmp_path / 'out')
    argv = [sys.executable, '-c', 'import sys; sys.stdout.write("x" * 10); sys.stderr.write("cannot send: boom"); sys.exit(3)']
    with pytest.raises(ZfsError) as exc:
        send_to_file(argv, [shutil.which('gzip'), '-cfq'], out, timeout=30)
    assert 'zfs send error while writing image: exit status 3: cannot send: boom' in str(exc.value)


def test_compressor_failure_is_named_first(tmp_path, stream):
    out = str(tmp_path / 'out')
    comp = [sys.executable, '-c', 'import sys; sys.stderr.write("no space"); sys.exit(4)']
    with pytest.raises(CommandError) as exc:
        send_to_file(cat_argv(stream), comp, out, timeout=30)
    assert 'error compressing the zfs stream of image' in str(exc.value) and 'exit status 4: no space' in str(exc.value)
    assert not isinstance(exc.value, ZfsError)


def test_a_stalled_send_is_killed(tmp_path):
    out = str(tmp_path / 'out')
    argv = [sys.executable, '-c', 'import sys, time; sys.stdout.write("x"); sys.stdout.flush(); time.sleep(60)']
    t0 = time.time()
    with pytest.raises(CommandTimeoutError) as exc:
        send_to_file(argv, None, out, timeout=0.5)
    assert time.time() - t0 < 10
    assert 'produced no data for 0.5 s' in str(exc.value)


def test_unwritable_file_is_a_filesystem_error(tmp_path, stream):
    with pytest.raises(FileSystemError):
        send_to_file(cat_argv(stream), None, str(tmp_path / 'no' / 'such' / 'dir'), timeout=30)


def test_cannot_start_is_a_zfs_error(tmp_path):
    with pytest.raises(ZfsError) as exc:
        send_to_file(['/nonexistent/zfs', 'send', 'x@final'], None, str(tmp_path / 'out'), timeout=30)
    assert 'cannot start the send pipeline' in str(exc.value)


# =============================================================== the zfs calls create adds

class ZfsScript(object):
    def __init__(self, answers=None):
        self.calls = []
        self.answers = list(answers or [])

    def __call__(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
        self.calls.append(list(args))
        return self.answers.pop(0) if self.answers else (0, '', '')


def test_zfs_create_calls():
    run = ZfsScript()
    b = CliBackend(ZfsRunner(run, 'zfs'), sleep=lambda s: None)
    b.snapshot('zones/x@final')
    b.rollback('zones/x@pre')
    b.rollback('zones/x@pre', recursive=False)
    b.set_property('zones/x', 'quota', 'none')
    assert run.calls == [['zfs', 'snapshot', 'zones/x@final'], ['zfs', 'rollback', '-r', 'zones/x@pre'],
                         ['zfs', 'rollback', 'zones/x@pre'], ['zfs', 'set', 'quota=none', 'zones/x']]
    assert b.send_argv('zones/x@final') == ['zfs', 'send', 'zones/x@final']
    assert b.send_argv('zones/x@final', 'zones/o@final') == ['zfs', 'send', '-i', 'zones/o@final', 'zones/x@final']
    for bad in (lambda: b.snapshot('zones/x'), lambda: b.rollback('-r'), lambda: b.send_argv('zones/x'),
                lambda: b.set_property('zones/x', 'quota', 'a\nb'), lambda: b.set_property('zones/x', 'a=b', '1')):
        with pytest.raises(ValueError):
            bad()


def test_zfs_rollback_busy_unmounts_and_remounts():
    busy = (1, '', "cannot rollback 'zones/x': dataset is busy")
    run = ZfsScript([busy, (0, 'zones/x\tfilesystem\tyes\n', ''), (0, '', ''), (0, '', ''), (0, '', '')])
    b = CliBackend(ZfsRunner(run, 'zfs'), sleep=lambda s: None)
    b.rollback('zones/x@pre')
    assert run.calls == [['zfs', 'rollback', '-r', 'zones/x@pre'],
                         ['zfs', 'list', '-H', '-o', 'name,type,mounted', '-t', 'filesystem,volume', 'zones/x'],
                         ['zfs', 'unmount', 'zones/x'], ['zfs', 'rollback', '-r', 'zones/x@pre'], ['zfs', 'mount', 'zones/x']]


# =============================================================== CreateRun against a fake host

class FakeHost(object):
    """``vmadm`` and ``zfs`` in Python behind ``run_command``; every call is logged as text.

    ``fail``: {command prefix: (rc, stderr)} answered instead (once each);
    ``guest``: steps the VM goes through after ``vmadm start`` (one per ``vmadm get``).
    """

    def __init__(self, vm_record, datasets, props=None):
        self.vm = vm_record
        self.snaps = OrderedDict((d, []) for d in datasets)
        self.props = props or {}
        self.calls = []
        self.fail = OrderedDict()
        self.guest = []
        self.started = False

    # -- helpers

    def exists(self, name):
        if '@' in name:
            ds, snap = name.split('@', 1)
            return snap in self.snaps.get(ds, [])
        return name in self.snaps

    def changes(self):
        """The calls that change something (no vmadm get, zfs list/get)."""
        return [c for c in self.calls if not c.startswith(('vmadm get', 'zfs list', 'zfs get'))]

    def __call__(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
        tool = os.path.basename(args[0])
        tool = 'zfs' if tool.startswith('zfs') else tool
        rest = [str(a) for a in args[1:]]
        line = ' '.join([tool] + rest)
        if data is not None:
            line += ' <<< ' + json.dumps(json.loads(data), sort_keys=True)
        self.calls.append(line)
        for prefix in list(self.fail):
            if line.startswith(prefix):
                rc, err = self.fail.pop(prefix)
                return rc, '', err
        return getattr(self, tool)(rest, data)

    # -- vmadm

    def vmadm(self, args, data):
        cmd, uuid = args[0], args[-1]
        if uuid != self.vm['uuid']:
            return 1, '', 'zoneadm: %s: No such zone configured' % uuid
        if cmd == 'get':
            if self.started and self.guest:
                step = self.guest.pop(0)
                if 'state' in step:
                    self.vm['state'] = step['state']
                self.vm.setdefault('customer_metadata', {}).update(step.get('md', {}))
            return 0, json.dumps(self.vm), ''
        if cmd == 'start':
            self.vm['state'] = 'running'
            self.started = True
        elif cmd == 'stop':
            self.vm['state'] = 'stopped'
        elif cmd == 'update':
            payload = json.loads(data)
            for field in ('internal_metadata', 'customer_metadata'):
                self.vm.setdefault(field, {}).update(payload.get('set_' + field, {}))
                for k in payload.get('remove_' + field, []):
                    self.vm[field].pop(k, None)
        return 0, '', ''

    # -- zfs

    def zfs(self, args, data):
        cmd = args[0]
        if cmd == 'list':
            names = [a for a in args[1:] if not a.startswith('-') and a not in ('name', 'snapshot', 'createtxg', '1')]
            if '-t' in args and 'snapshot' in args:
                ds = names[-1]
                if ds not in self.snaps:
                    return 1, '', "cannot open '%s': dataset does not exist" % ds
                return 0, ''.join('%s@%s\n' % (ds, s) for s in self.snaps[ds]), ''
            found = [n for n in names if self.exists(n)]
            missing = [n for n in names if not self.exists(n)]
            return (1 if missing else 0), ''.join(n + '\n' for n in found), ''.join(
                "cannot open '%s': dataset does not exist\n" % n for n in missing)
        if cmd == 'get':
            prop, name = args[4], args[5]
            return 0, '%s\t%s\t%s\n' % (name, prop, self.props.get((name, prop), '-')), ''
        if cmd == 'snapshot':
            ds, snap = args[1].split('@')
            if snap in self.snaps[ds]:
                return 1, '', "cannot create snapshot '%s': dataset already exists" % args[1]
            self.snaps[ds].append(snap)
        elif cmd == 'destroy':
            name = args[-1]
            if not self.exists(name):
                return 1, '', "could not find any snapshots to destroy; check snapshot names."
            ds, snap = name.split('@')
            targets = [ds] + ([d for d in self.snaps if d.startswith(ds + '/')] if '-r' in args else [])
            for d in targets:
                if snap in self.snaps[d]:
                    self.snaps[d].remove(snap)
        elif cmd == 'rename':
            old, new = args[-2], args[-1]
            ds, snap = old.split('@')
            self.snaps[ds][self.snaps[ds].index(snap)] = new.split('@')[1]
        elif cmd == 'rollback':
            ds, snap = args[-1].split('@')
            del self.snaps[ds][self.snaps[ds].index(snap) + 1:]
        elif cmd == 'set':
            prop, value = args[1].split('=', 1)
            self.props[(args[2], prop)] = value
        return 0, '', ''


def send_script(tmp_path, payload=b'ZFS STREAM ' * 5000, rc=0):
    """A stand-in for the zfs binary: as ``zfs send`` it records its argv and prints ``payload``."""
    stream = tmp_path / 'stream.bin'
    stream.write_bytes(payload)
    log = tmp_path / 'send.argv'
    path = tmp_path / 'zfs'
    path.write_text('#!%s\nimport json, shutil, sys\nopen(%r, "w").write(json.dumps(sys.argv[1:]))\n'
                    'shutil.copyfileobj(open(%r, "rb"), sys.stdout.buffer)\nsys.stderr.write("send failed" if %d else "")\n'
                    'sys.exit(%d)\n' % (sys.executable, str(log), str(stream), rc, rc))
    path.chmod(0o755)
    return str(path), stream, log


class World(object):
    """A FakeHost, an imgadm db with the origin's record, an output dir, and a CreateRun factory."""

    def __init__(self, tmp_path, brand='joyent', state='stopped', origin_manifest=None, vm_fields=None, send_rc=0):
        self.tmp = tmp_path
        self.out = tmp_path / 'out'
        self.out.mkdir()
        self.db = ImageDatabase(str(tmp_path / 'imgadm'))
        record = vm(brand, state=state, **(vm_fields or {}))
        datasets = ['zones', 'zones/' + IMG, 'zones/' + VM]
        if brand in ('kvm', 'bhyve'):
            sep = '-' if brand == 'kvm' else '/'
            record['disks'] = [{'zfs_filesystem': 'zones/%s%sdisk0' % (VM, sep), 'image_uuid': IMG, 'zpool': 'zones'},
                               {'zfs_filesystem': 'zones/%s%sdisk1' % (VM, sep)}]
            datasets += [d['zfs_filesystem'] for d in record['disks']]
            record.pop('image_uuid')
        self.host = FakeHost(record, datasets)
        self.host.snaps['zones/' + IMG].append('final')
        self.db.write('zones', IMG, origin_manifest if origin_manifest is not None else origin())
        self.zfs_bin, self.stream, self.send_log = send_script(tmp_path, rc=send_rc)
        self.published = []

    def params(self, **kw):
        p = dict(vm_uuid=VM, manifest=OrderedDict(GIVEN), output=str(self.out), compression='gzip', incremental=False,
                 max_origin_depth=None, prepare_script=None, prepare_script_content=None, prepare_timeout=10.0,
                 force=False, command_timeout=30.0, publish=None)
        p.update(kw)
        return p

    def run(self, check_mode=False, publisher=None, **kw):
        result = Result(FakeModule())
        clock = Clock()
        backend = CliBackend(ZfsRunner(self.host, self.zfs_bin), sleep=lambda s: None)
        run = CreateRun(self.params(**kw), result, check_mode, Vmadm(self.host, 'vmadm'), backend, self.db,
                        lambda: dict(SYSINFO), lambda c: [shutil.which(c)], publisher=publisher, run_command=self.host,
                        new_uuid=lambda: NEW, now_ms=lambda: 1700000000000, sleep=clock.sleep, clock=clock,
                        poll_intervals=(1.0, 1.0))
        try:
            run.run()
        except ImgadmError as e:
            return result, e
        return result, None

    def files(self):
        return sorted(os.listdir(str(self.out)))


class FakeModule(object):
    _diff = False


PREFIX = 'new-2.0'


def test_create_from_a_stopped_vm(tmp_path):
    w = World(tmp_path)
    result, error = w.run()
    assert error is None
    assert w.files() == [PREFIX + '.imgmanifest', PREFIX + '.zfs.gz']
    assert w.host.changes() == ['zfs snapshot zones/%s@final' % VM, 'zfs destroy -r zones/%s@final' % VM]
    assert json.load(open(w.send_log)) == ['send', 'zones/%s@final' % VM]
    data = open(str(w.out / (PREFIX + '.zfs.gz')), 'rb').read()
    assert gzip.decompress(data) == w.stream.read_bytes()
    text = open(str(w.out / (PREFIX + '.imgmanifest'))).read()
    m = json.loads(text, object_pairs_hook=OrderedDict)
    assert m == OrderedDict([
        ('v', 2), ('uuid', NEW), ('name', 'new'), ('version', '2.0'), ('type', 'zone-dataset'), ('os', 'smartos'),
        ('requirements', {'min_platform': {'7.0': '20260101T000000Z'}}),
        ('files', [OrderedDict([('size', len(data)), ('compression', 'gzip'), ('sha1', hashlib.sha1(data).hexdigest())])])])
    assert text == json.dumps(m, indent=2, separators=(',', ': ')) and not text.endswith('\n')
    assert stat.S_IMODE(os.stat(str(w.out / (PREFIX + '.imgmanifest'))).st_mode) == 0o644
    d = result.as_dict()
    assert d['changed'] is True
    assert d['manifest'] == m and d['size'] == len(data) and d['sha1'] == hashlib.sha1(data).hexdigest()
    assert d['file_path'] == str(w.out / (PREFIX + '.zfs.gz')) and d['origin'] == IMG
    assert d['inherited'] == ['type', 'os'] and d['vm'] == {'uuid': VM, 'brand': 'joyent', 'state': 'stopped'}
    assert set(d['timings']) == {'inspect', 'send', 'write', 'cleanup'}
    assert w.host.snaps['zones/' + VM] == []


def test_second_run_changes_nothing_and_force_recreates(tmp_path):
    w = World(tmp_path)
    w.run()
    first = open(str(w.out / (PREFIX + '.imgmanifest'))).read()
    w.host.calls = []
    w.host.vm['state'] = 'running'  # started since: not an error when there is nothing to do
    result, error = w.run()
    assert error is None and result.changed is False
    assert w.host.changes() == []
    assert result.data['manifest'] == json.loads(first) and result.data['sha1'] == json.loads(first)['files'][0]['sha1']
    w.host.vm['state'] = 'stopped'
    result, error = w.run(force=True)
    assert error is None and result.changed is True
    assert w.host.changes() == ['zfs snapshot zones/%s@final' % VM, 'zfs destroy -r zones/%s@final' % VM]


@pytest.mark.parametrize('tamper', ['file', 'manifest_field', 'given_field', 'compression', 'incremental'])
def test_files_that_do_not_match_are_made_again(tmp_path, tamper):
    w = World(tmp_path)
    w.run()
    kw = {}
    if tamper == 'file':
        with open(str(w.out / (PREFIX + '.zfs.gz')), 'ab') as f:
            f.write(b'x')
    elif tamper == 'manifest_field':
        path = str(w.out / (PREFIX + '.imgmanifest'))
        m = json.load(open(path))
        m['files'][0]['sha1'] = '0' * 40
        open(path, 'w').write(json.dumps(m))
    elif tamper == 'given_field':
        kw['manifest'] = OrderedDict(GIVEN, description='changed')
    elif tamper == 'compression':
        shutil.copy(str(w.out / (PREFIX + '.zfs.gz')), str(w.out / (PREFIX + '.zfs')))
        kw['compression'] = 'none'
    else:
        kw['incremental'] = True
    w.host.calls = []
    result, error = w.run(**kw)
    assert error is None and result.changed is True
    assert 'zfs snapshot zones/%s@final' % VM in w.host.changes()
    assert any('do not match' in a for a in result.actions)


def test_check_mode_changes_nothing(tmp_path):
    w = World(tmp_path, state='running')
    result, error = w.run(check_mode=True, prepare_script_content='#!/bin/sh\n')
    assert error is None
    assert w.host.changes() == [] and w.files() == []
    d = result.as_dict()
    assert d['changed'] is True and d['size'] is None and d['manifest']['uuid'] == NEW and 'files' not in d['manifest']
    assert d['actions'] == [
        'stop VM %s (it runs), and start it again at the end' % VM,
        'snapshot zones/%s@%s' % (VM, PRE),
        'run the prepare-image script in VM %s, wait for it to finish and stop the VM' % VM,
        'snapshot zones/%s@final' % VM,
        '%s send zones/%s@final | %s -cfq > %s' % (w.zfs_bin, VM, shutil.which('gzip'), d['file_path']),
        'write %s' % d['manifest_path'],
        'destroy zones/%s@final' % VM,
        'roll back and destroy zones/%s@%s' % (VM, PRE),
    ]


def test_check_mode_still_reports_errors(tmp_path):
    w = World(tmp_path, state='running')
    result, error = w.run(check_mode=True)
    assert isinstance(error, VmNotStoppedError) and str(error) == 'vm "%s" is not stopped' % VM
    assert w.host.changes() == []


def test_vm_not_found(tmp_path):
    w = World(tmp_path)
    w.host.vm['uuid'] = BASE
    result, error = w.run()
    assert isinstance(error, VmNotFoundError) and error.code == 'VmNotFound'


def test_manifest_validation_names_the_field(tmp_path):
    w = World(tmp_path)
    result, error = w.run(manifest={'name': 'x'})
    assert isinstance(error, ManifestValidationError) and 'version' in str(error)
    result, error = w.run(manifest={'name': 'x', 'version': 1.5})
    assert isinstance(error, ManifestValidationError) and 'version' in str(error)
    assert w.host.changes() == []


def test_existing_final_is_moved_out_of_the_way_and_back(tmp_path):
    w = World(tmp_path)
    w.host.snaps['zones/' + VM] = ['old', 'final']
    result, error = w.run()
    assert error is None
    assert w.host.changes() == [
        'zfs rename -r zones/{0}@final zones/{0}@final-1700000000000'.format(VM),
        'zfs snapshot zones/%s@final' % VM,
        'zfs destroy -r zones/%s@final' % VM,
        'zfs rename -r zones/{0}@final-1700000000000 zones/{0}@final'.format(VM)]
    assert w.host.snaps['zones/' + VM] == ['old', 'final']


def test_incremental(tmp_path):
    w = World(tmp_path)
    result, error = w.run(incremental=True, compression='none')
    assert error is None
    assert json.load(open(w.send_log)) == ['send', '-i', 'zones/%s@final' % IMG, 'zones/%s@final' % VM]
    assert result.data['manifest']['origin'] == IMG and list(result.data['manifest'])[-2:] == ['origin', 'files']
    assert w.files() == [PREFIX + '.imgmanifest', PREFIX + '.zfs']


def test_incremental_needs_the_origins_final(tmp_path):
    w = World(tmp_path)
    w.host.snaps['zones/' + IMG] = []
    result, error = w.run(incremental=True)
    assert isinstance(error, OriginHasNoFinalSnapshotError)
    assert str(error) == ('cannot create an incremental image: origin image "%s" has no "@final" snapshot (sometimes this '
                          'can be fixed by "imgadm update")' % IMG)
    assert w.host.changes() == []


def test_incremental_needs_an_installed_origin(tmp_path):
    w = World(tmp_path)
    del w.host.snaps['zones/' + IMG]
    result, error = w.run(incremental=True)
    assert isinstance(error, VmHasNoOriginError)


def test_max_origin_depth_reads_the_installed_chain(tmp_path):
    w = World(tmp_path, origin_manifest=origin(origin=BASE))
    w.host.snaps['zones/' + BASE] = ['final']
    w.db.write('zones', BASE, origin(uuid=BASE, origin='0d7c3f6e-0000-4000-8000-00000000000d'))
    result, error = w.run(max_origin_depth=2)
    assert isinstance(error, MaxOriginDepthError)
    result, error = w.run(max_origin_depth=3)
    assert error is None


def test_a_leftover_pre_prepare_snapshot_is_an_error(tmp_path):
    w = World(tmp_path)
    w.host.snaps['zones/' + VM] = [PRE]
    result, error = w.run(prepare_script_content='x')
    assert 'zones/%s@%s exists already' % (VM, PRE) in str(error)
    assert w.host.changes() == [] and w.host.snaps['zones/' + VM] == [PRE]


def guest_success():
    return [{'md': {'prepare-image:state': 'running'}}, {'md': {'prepare-image:state': 'success'}}, {'state': 'stopped'}]


def restored(*keys):
    return ('vmadm update %s <<< {"remove_customer_metadata": %s, "remove_internal_metadata": ["operator-script"]}'
            % (VM, json.dumps(list(keys) or ['prepare-image:state'])))


def prepared_calls(vm_ds, extra_snaps=()):
    return (['zfs snapshot %s@%s' % (d, PRE) for d in [vm_ds] + list(extra_snaps)] + [
        'vmadm update %s <<< {"set_internal_metadata": {"operator-script": "#!/bin/sh\\nprep\\n"}}' % VM,
        'vmadm update %s <<< {"remove_customer_metadata": ["prepare-image:state", "prepare-image:error"]}' % VM,
        'vmadm start %s' % VM])


def test_prepare_a_running_vm(tmp_path):
    w = World(tmp_path, state='running')
    w.host.guest = guest_success()
    script = tmp_path / 'prep.sh'
    script.write_text('#!/bin/sh\nprep\n')
    result, error = w.run(prepare_script=str(script))
    assert error is None
    ds = 'zones/' + VM
    assert w.host.changes() == ['vmadm stop %s' % VM] + prepared_calls(ds) + [
        'zfs snapshot %s@final' % ds,
        'zfs destroy -r %s@final' % ds,
        'zfs rollback -r %s@%s' % (ds, PRE),
        'zfs destroy -r %s@%s' % (ds, PRE),
        restored(),
        'vmadm start %s' % VM]
    assert w.host.snaps[ds] == [] and w.host.vm['state'] == 'running'
    assert w.host.vm['internal_metadata'] == {} and w.host.vm['customer_metadata'] == {}
    assert list(result.data['prepare_stages']) == ['running', 'complete', 'stopped']
    assert 'prepare' in result.data['timings']


def test_prepare_error_rolls_back_and_restarts(tmp_path):
    w = World(tmp_path, state='running')
    w.host.guest = [{'md': {'prepare-image:state': 'running'}},
                    {'md': {'prepare-image:state': 'error', 'prepare-image:error': 'boom'}}]
    result, error = w.run(prepare_script_content='#!/bin/sh\nprep\n')
    assert isinstance(error, PrepareImageError) and error.details['prepare_error'] == 'boom'
    assert set(result.data['timings']) == {'inspect', 'prepare', 'cleanup'}
    ds = 'zones/' + VM
    assert w.host.changes() == ['vmadm stop %s' % VM] + prepared_calls(ds) + [
        'vmadm stop -F %s' % VM,  # the script failed and left the VM running
        'zfs rollback -r %s@%s' % (ds, PRE),
        'zfs destroy -r %s@%s' % (ds, PRE),
        restored('prepare-image:state', 'prepare-image:error'),
        'vmadm start %s' % VM]
    assert w.files() == [] and result.changed is True


def test_metadata_that_was_there_is_put_back(tmp_path):
    w = World(tmp_path)
    w.host.vm['internal_metadata'] = {'operator-script': 'theirs', 'other': 1}
    w.host.vm['customer_metadata'] = {'prepare-image:state': 'old'}
    w.host.guest = guest_success()
    result, error = w.run(prepare_script_content='#!/bin/sh\nprep\n')
    assert error is None
    assert w.host.changes()[-1] == ('vmadm update %s <<< {"set_customer_metadata": {"prepare-image:state": "old"}, '
                                    '"set_internal_metadata": {"operator-script": "theirs"}}' % VM)
    assert w.host.vm['internal_metadata'] == {'operator-script': 'theirs', 'other': 1}


def test_send_failure_removes_the_partial_file_and_rolls_back(tmp_path):
    w = World(tmp_path, send_rc=2)
    w.host.guest = guest_success()
    result, error = w.run(prepare_script_content='#!/bin/sh\nprep\n', compression='none')
    assert isinstance(error, ZfsError) and 'zfs send error' in str(error) and 'send failed' in str(error)
    ds = 'zones/' + VM
    assert w.host.changes() == prepared_calls(ds) + [
        'zfs snapshot %s@final' % ds,
        'zfs destroy -r %s@final' % ds,
        'zfs rollback -r %s@%s' % (ds, PRE),
        'zfs destroy -r %s@%s' % (ds, PRE),
        restored()]  # it was stopped: not started again
    assert w.files() == []


def test_manifest_write_failure_leaves_no_file(tmp_path, monkeypatch):
    w = World(tmp_path)
    real_rename = os.rename

    def rename(a, b):
        if b.endswith('.imgmanifest'):
            raise OSError(28, 'No space left on device')
        return real_rename(a, b)
    monkeypatch.setattr(os, 'rename', rename)
    result, error = w.run()
    assert isinstance(error, FileSystemError) and error.code == 'FileSystem'
    assert w.files() == []
    assert 'removed %s (the run failed)' % str(w.out / (PREFIX + '.zfs.gz')) in result.actions


def test_kvm_snapshot_failure_half_way(tmp_path):
    w = World(tmp_path, brand='kvm')
    w.host.fail['zfs snapshot zones/%s-disk1@' % VM] = (1, 'out of space')
    result, error = w.run(prepare_script_content='x')
    assert isinstance(error, ZfsError)
    ds = 'zones/' + VM
    assert w.host.changes() == [
        'zfs snapshot %s@%s' % (ds, PRE), 'zfs snapshot %s-disk0@%s' % (ds, PRE), 'zfs snapshot %s-disk1@%s' % (ds, PRE),
        'zfs rollback -r %s@%s' % (ds, PRE), 'zfs rollback -r %s-disk0@%s' % (ds, PRE),
        'zfs destroy -r %s@%s' % (ds, PRE), 'zfs destroy -r %s-disk0@%s' % (ds, PRE)]


def test_bhyve_quota_disks_and_destroy_with_r(tmp_path):
    w = World(tmp_path, brand='bhyve', vm_fields={'bootrom': 'uefi', 'quota': 10})
    ds = 'zones/' + VM
    w.host.props[(ds, 'quota')] = '10737418240'
    w.host.guest = guest_success()
    result, error = w.run(prepare_script_content='#!/bin/sh\nprep\n')
    assert error is None
    assert json.load(open(w.send_log)) == ['send', '%s/disk0@final' % ds]
    assert w.host.changes() == ['zfs set quota=none %s' % ds] + prepared_calls(ds, ['%s/disk0' % ds, '%s/disk1' % ds]) + [
        'zfs snapshot %s/disk0@final' % ds,
        'zfs destroy -r %s/disk0@final' % ds,
        'zfs rollback -r %s@%s' % (ds, PRE),
        'zfs rollback -r %s/disk0@%s' % (ds, PRE),
        'zfs rollback -r %s/disk1@%s' % (ds, PRE),
        'zfs destroy -r %s@%s' % (ds, PRE),  # covers the disks' snapshots
        restored(),
        'zfs set quota=10737418240 %s' % ds]
    assert all(s == [] for d, s in w.host.snaps.items() if d.startswith(ds))
    m = result.data['manifest']
    assert m['requirements'] == {'brand': 'bhyve', 'bootrom': 'uefi'}
    assert w.files() == [PREFIX + '.imgmanifest', PREFIX + '.zfs.gz']


def test_bhyve_without_quota_and_without_prepare(tmp_path):
    w = World(tmp_path, brand='bhyve')
    w.host.props[('zones/' + VM, 'quota')] = '0'
    result, error = w.run()
    assert error is None
    assert w.host.changes() == ['zfs snapshot zones/%s/disk0@final' % VM, 'zfs destroy -r zones/%s/disk0@final' % VM]


def test_failed_rollback_keeps_its_snapshot_and_both_errors_are_reported(tmp_path):
    w = World(tmp_path, brand='bhyve')
    ds = 'zones/' + VM
    w.host.guest = [{'md': {'prepare-image:state': 'error', 'prepare-image:error': 'bad'}, 'state': 'stopped'}]
    w.host.fail['zfs rollback -r %s/disk1@' % ds] = (1, 'cannot rollback: I/O error')
    result, error = w.run(prepare_script_content='#!/bin/sh\nprep\n')
    assert isinstance(error, MultiError) and error.code == 'MultiError'
    assert [e['error_code'] for e in error.details['errors']] == ['PrepareImageError', 'InternalError', 'InternalError']
    assert str(error).startswith('multiple (3) errors\n    error (PrepareImageError): prepare-image script error')
    assert w.host.changes()[-6:] == [
        'zfs rollback -r %s@%s' % (ds, PRE),
        'zfs rollback -r %s/disk0@%s' % (ds, PRE),
        'zfs rollback -r %s/disk1@%s' % (ds, PRE),
        'zfs destroy %s@%s' % (ds, PRE),  # not -r: disk1's snapshot is kept
        'zfs destroy -r %s/disk0@%s' % (ds, PRE),
        restored('prepare-image:state', 'prepare-image:error')]
    assert w.host.snaps[ds + '/disk1'] == [PRE]


def test_a_vm_that_cannot_be_stopped_is_not_rolled_back(tmp_path):
    w = World(tmp_path)
    w.host.guest = []  # never signals
    w.host.fail['vmadm stop -F'] = (1, 'stuck')
    result, error = w.run(prepare_script_content='x', prepare_timeout=3)
    assert isinstance(error, MultiError)
    assert [e['error_code'] for e in error.details['errors']] == ['PrepareImageDidNotRun', 'InternalError', 'InternalError']
    assert not any(c.startswith(('zfs rollback', 'zfs destroy')) for c in w.host.changes())
    assert w.host.snaps['zones/' + VM] == [PRE]


def test_the_publish_hook(tmp_path):
    w = World(tmp_path)
    calls = []

    def publish(options, manifest, file_path, result, check_mode, run_command=None):
        calls.append((options, manifest['uuid'], file_path, check_mode, run_command is w.host))
        result.data['published'] = True
    result, error = w.run(publisher=publish, publish={'url': 'http://imgapi'})
    assert error is None and result.data['published'] is True
    assert calls == [({'url': 'http://imgapi'}, NEW, str(w.out / (PREFIX + '.zfs.gz')), False, True)]
    assert 'publish' in result.data['timings']
    result, error = w.run(publisher=publish)  # publish not set: not called
    assert len(calls) == 1
    # found made: published again (a publish that failed is tried again), also in check mode
    result, error = w.run(publisher=publish, publish={'url': 'x'})
    assert result.changed is False and calls[-1][:2] == ({'url': 'x'}, NEW)
    result, error = w.run(publisher=publish, publish={'url': 'x'}, check_mode=True)
    assert calls[-1][3] is True and len(calls) == 3
    # still to be made: check mode only says so
    result, error = w.run(publisher=publish, publish={'url': 'x'}, check_mode=True, force=True)
    assert len(calls) == 3 and result.actions[-1] == 'publish the image to x'


def test_publish_only_uses_temporary_files(tmp_path):
    w = World(tmp_path)
    seen = []

    def publish(options, manifest, file_path, result, check_mode, run_command=None):
        seen.append((file_path, os.path.exists(file_path), manifest['files'][0]['size']))
    result, error = w.run(publisher=publish, publish={'url': 'x'}, output=None)
    assert error is None
    assert seen[0][0].startswith('/var/tmp/.imgadm-create-1700000000000-') and seen[0][1] is True
    assert not os.path.exists(seen[0][0])


@pytest.mark.parametrize('params, field', [
    (dict(vm_uuid='NOT-A-UUID'), 'vm_uuid'),
    (dict(max_origin_depth=1), 'max_origin_depth'),
    (dict(prepare_timeout=0), 'prepare_timeout'),
    (dict(output='relative/dir'), 'output'),
    (dict(output=None), 'output'),
    (dict(prepare_script='/x', prepare_script_content='y'), 'prepare_script_content'),
])
def test_bad_options(params, field):
    p = dict(vm_uuid=VM, output='/tmp', max_origin_depth=None, prepare_timeout=300, prepare_script=None,
             prepare_script_content=None, publish=None)
    p.update(params)
    with pytest.raises(UsageError) as exc:
        check_params(p)
    assert exc.value.details['field'] == field
    if field == 'vm_uuid':
        assert isinstance(exc.value, InvalidUUIDError)


def test_read_prepare_script(tmp_path):
    path = tmp_path / 's'
    path.write_bytes(b'#!/bin/sh\necho \xc3\xa9\n')
    assert read_prepare_script({'prepare_script': str(path), 'prepare_script_content': None}) == u'#!/bin/sh\necho \xe9\n'
    assert read_prepare_script({'prepare_script': None, 'prepare_script_content': 'x'}) == 'x'
    assert read_prepare_script({'prepare_script': None, 'prepare_script_content': None}) is None
    with pytest.raises(UsageError):
        read_prepare_script({'prepare_script': str(tmp_path / 'none'), 'prepare_script_content': None})
    path.write_bytes(b'\xff\xfe')
    with pytest.raises(UsageError):
        read_prepare_script({'prepare_script': str(path), 'prepare_script_content': None})


def test_output_directory_must_exist(tmp_path):
    w = World(tmp_path)
    result, error = w.run(output=str(tmp_path / 'nodir' / 'prefix'))
    assert isinstance(error, FileSystemError) and w.host.changes() == []


def test_output_prefix_is_used_as_is(tmp_path):
    w = World(tmp_path)
    result, error = w.run(output=str(w.out / 'custom'), compression='xz')
    assert error is None and w.files() == ['custom.imgmanifest', 'custom.zfs.xz']


def test_no_temporary_file_is_left_on_a_stall(tmp_path, monkeypatch):
    w = World(tmp_path)

    def stalled(*args, **kwargs):
        raise CommandTimeoutError('stalled')
    monkeypatch.setattr('ansible_collections.smartos.imgadm.plugins.module_utils._creator.send_to_file', stalled)
    result, error = w.run()
    assert isinstance(error, CommandTimeoutError)
    assert w.files() == []
    assert w.host.changes() == ['zfs snapshot zones/%s@final' % VM, 'zfs destroy -r zones/%s@final' % VM]


def test_send_module_constants():
    assert _create_send.CHUNK_SIZE == 1 << 20
