# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_zfs.py.

* scripted cases from test__zfs.yaml: exact argv, rc/out/err, parsed result;
* backend selection with a fake ``libzfs_core`` module in ``sys.modules``;
* the runner itself;
* ``real_zfs`` tests against a throw-away pool ``ztest`` on a sparse file
  (skipped when zfs is unusable or we are not root).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess
import sys
import types

import pytest
import yaml

from ansible_collections.smartos.imgadm.plugins.module_utils import _errors
from ansible_collections.smartos.imgadm.plugins.module_utils import _zfs
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    DatasetNotFoundError,
    MissingLibraryError,
    ZfsError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import (
    CliBackend,
    LibzfsCoreBackend,
    ZfsRunner,
    get_backend,
    subprocess_run_command,
)
from ansible_collections.smartos.imgadm.tests.unit.plugins.modules.conftest_images import (
    create_pool,
    destroy_pool,
    require_real_zfs,
)

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, 'test__zfs.yaml')) as _fh:
    CASES = yaml.safe_load(_fh)


# ------------------------------------------------------------------ fakes

class ScriptedRunCommand:
    """``run_command`` that checks each argv against a script and answers from it."""

    def __init__(self, script):
        self.script = list(script or [])
        self.calls = []

    def __call__(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
        self.calls.append(list(args))
        assert environ_update == {'LC_ALL': 'C'}, 'LC_ALL=C not forced for %r' % (args,)
        assert check_rc is False
        assert self.script, 'unexpected extra command: %r' % (args,)
        step = self.script.pop(0)
        expected = [str(a) for a in step['argv']]
        assert list(args) == expected, 'command #%d differs' % len(self.calls)
        return step.get('rc', 0), step.get('out', ''), step.get('err', '')

    def assert_done(self):
        assert not self.script, 'commands not run: %r' % ([s['argv'] for s in self.script],)


class FakeZFSError(Exception):
    """Shape of pyzfs' libzfs_core.exceptions.ZFSError (errno, optional errors list)."""

    errno = None

    def __init__(self, errno_=None, errors=None):
        super(FakeZFSError, self).__init__(errno_)
        self.errno = errno_
        if errors is not None:
            self.errors = errors

    def __str__(self):
        return '[Errno %s] %s' % (self.errno, type(self).__name__)


def _make_exception(spec):
    if spec['class'] == 'NotImplementedError':
        return NotImplementedError(spec.get('name', 'lzc'))
    cls = type(str(spec['class']), (FakeZFSError,), {})
    errors = [_make_exception(e) for e in spec.get('errors', [])] or None
    return cls(spec.get('errno'), errors)


def _bytes_to_text(value):
    """Turn the bytes the backend passed into text, asserting names were bytes."""
    if isinstance(value, bytes):
        return value.decode('utf-8')
    if isinstance(value, list):
        return [_bytes_to_text(v) for v in value]
    assert not isinstance(value, str), 'libzfs_core wants bytes, got text %r' % (value,)
    return value


class FakeLibzfsCore(types.ModuleType):
    """A ``libzfs_core`` module that records calls and answers from a script.

    With ``script=None`` every call is only recorded and lzc_exists answers False.
    """

    FUNCTIONS = ('lzc_exists', 'lzc_snapshot', 'lzc_destroy_snaps', 'lzc_clone', 'lzc_rename', 'lzc_get_holds')

    def __init__(self, script=None, unsupported=(), missing=(), probe_error=None):
        super(FakeLibzfsCore, self).__init__('libzfs_core')
        self.script = None if script is None else list(script)
        self.calls = []
        self.unsupported = set(unsupported)
        self.probe_error = probe_error
        for fname in self.FUNCTIONS:
            if fname not in missing:
                setattr(self, fname, self._make(fname))

    def _make(self, fname):
        def func(*args):
            self.calls.append((fname, _bytes_to_text(list(args))))
            if self.script is None:
                if self.probe_error is not None:
                    raise self.probe_error
                return False
            assert self.script, 'unexpected lzc call %s%r' % (fname, args)
            step = self.script.pop(0)
            assert fname == step['call']
            assert _bytes_to_text(list(args)) == step['args']
            if 'raise' in step:
                raise _make_exception(step['raise'])
            value = step.get('return')
            if isinstance(value, dict):
                value = dict((k.encode('utf-8'), v) for k, v in value.items())
            return value
        func.__name__ = fname
        return func

    def is_supported(self, func):
        return func.__name__ not in self.unsupported

    def assert_done(self):
        assert not self.script, 'lzc calls not made: %r' % (self.script,)


class Sleeps:
    def __init__(self):
        self.delays = []

    def __call__(self, delay):
        self.delays.append(round(delay, 3))


def _normalise(value):
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


# ------------------------------------------------------------------ YAML cases

@pytest.mark.parametrize('case', CASES, ids=[c['id'] for c in CASES])
def test_scripted_case(case):
    run_command = ScriptedRunCommand(case.get('run'))
    runner = ZfsRunner(run_command=run_command, zfs_bin='zfs', zpool_bin='zpool')
    for key, value in (case.get('capabilities') or {}).items():
        runner.capabilities[key] = frozenset(value) if isinstance(value, list) else value
    sleeps = Sleeps()
    backend_kwargs = dict(case.get('backend_kwargs') or {})
    fake = None
    if case.get('backend', 'cli') == 'libzfs_core':
        fake = FakeLibzfsCore(case.get('lzc') or [], unsupported=case.get('lzc_unsupported', ()))
        backend = LibzfsCoreBackend(runner, lzc=fake, sleep=sleeps, **backend_kwargs)
        assert backend.name == 'libzfs_core'
    else:
        backend = CliBackend(runner, sleep=sleeps, **backend_kwargs)
        assert backend.name == 'cli'

    method = getattr(backend, case['call'])
    args = case.get('args') or []
    kwargs = case.get('kwargs') or {}
    if 'error' in case:
        exc_class = {'ValueError': ValueError}.get(case['error']) or getattr(_errors, case['error'])
        with pytest.raises(exc_class) as excinfo:
            method(*args, **kwargs)
        if case['error'] == 'ZfsError':
            # a plain ZfsError case must not be a "not found"
            assert not isinstance(excinfo.value, DatasetNotFoundError)
        if 'error_match' in case:
            assert re.search(case['error_match'], str(excinfo.value)), str(excinfo.value)
        if isinstance(excinfo.value, ZfsError):
            assert excinfo.value.cmd, 'ZfsError without the command'
    else:
        assert method(*args, **kwargs) == case['result']
    run_command.assert_done()
    if fake is not None:
        fake.assert_done()
    assert sleeps.delays == case.get('sleeps', [])
    for key, value in (case.get('capabilities_after') or {}).items():
        assert _normalise(runner.capabilities.get(key)) == value


def test_zfs_error_carries_command_rc_and_stderr():
    run_command = ScriptedRunCommand([{'argv': ['zfs', 'snapshot', 'zones/a@b'], 'rc': 1, 'err': 'cannot open: dataset does not exist\n'}])
    backend = CliBackend(ZfsRunner(run_command=run_command, zfs_bin='zfs'))
    with pytest.raises(DatasetNotFoundError) as excinfo:
        backend.snapshot('zones/a@b')
    exc = excinfo.value
    assert exc.cmd == ['zfs', 'snapshot', 'zones/a@b']
    assert exc.rc == 1
    assert exc.stderr == 'cannot open: dataset does not exist\n'
    assert exc.code == 'DatasetNotFound'
    assert exc.fail_kwargs()['cmd'] == ['zfs', 'snapshot', 'zones/a@b']


# ------------------------------------------------------------------ backend selection

@pytest.fixture
def no_libzfs_core(monkeypatch):
    # None in sys.modules makes "import libzfs_core" raise ImportError
    monkeypatch.setitem(sys.modules, 'libzfs_core', None)


def _runner():
    return ZfsRunner(run_command=ScriptedRunCommand([]), zfs_bin='zfs', zpool_bin='zpool')


def test_auto_falls_back_to_cli_without_pyzfs(no_libzfs_core):
    backend = get_backend(_runner())
    assert isinstance(backend, CliBackend)
    assert not isinstance(backend, LibzfsCoreBackend)
    assert backend.name == 'cli'


def test_prefer_libzfs_core_without_pyzfs_raises(no_libzfs_core):
    with pytest.raises(MissingLibraryError) as excinfo:
        get_backend(_runner(), prefer='libzfs_core')
    assert excinfo.value.library == 'pyzfs'
    assert 'ImportError' in excinfo.value.import_traceback or 'ModuleNotFoundError' in excinfo.value.import_traceback
    with pytest.raises(MissingLibraryError):
        LibzfsCoreBackend(_runner())


def test_auto_picks_libzfs_core_when_importable_and_usable(monkeypatch):
    fake = FakeLibzfsCore()
    monkeypatch.setitem(sys.modules, 'libzfs_core', fake)
    backend = get_backend(_runner())
    assert isinstance(backend, LibzfsCoreBackend)
    assert backend.name == 'libzfs_core'
    assert backend.lzc is fake
    # the usability probe is one lzc_exists call with a bytes name
    assert [c[0] for c in fake.calls] == ['lzc_exists']
    assert get_backend(_runner(), prefer='libzfs_core').name == 'libzfs_core'
    assert get_backend(_runner(), prefer='cli').name == 'cli'


def test_auto_falls_back_when_libzfs_core_is_not_usable(monkeypatch):
    fake = FakeLibzfsCore(probe_error=type('ZFSInitializationFailed', (FakeZFSError,), {})(19))
    monkeypatch.setitem(sys.modules, 'libzfs_core', fake)
    assert get_backend(_runner()).name == 'cli'
    with pytest.raises(MissingLibraryError) as excinfo:
        get_backend(_runner(), prefer='libzfs_core')
    assert 'not usable' in str(excinfo.value)
    assert excinfo.value.library == 'pyzfs'


def test_auto_falls_back_when_libzfs_core_lacks_functions(monkeypatch):
    monkeypatch.setitem(sys.modules, 'libzfs_core', FakeLibzfsCore(missing=('lzc_clone',)))
    assert get_backend(_runner()).name == 'cli'


def test_get_backend_rejects_unknown_preference():
    with pytest.raises(ValueError):
        get_backend(_runner(), prefer='pyzfs')


def test_backend_kwargs_are_passed(no_libzfs_core):
    backend = get_backend(_runner(), prefer='cli', busy_retries=0)
    assert backend.busy_retries == 0


def _python_with_fake_pyzfs(tmp_path, code):
    """Run ``code`` in a new interpreter where ``import libzfs_core`` finds a fake that leaves a marker."""
    (tmp_path / 'libzfs_core.py').write_text('open(%r, "w").close()\n' % str(tmp_path / 'imported'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path))
    res = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=env, check=False)
    assert res.returncode == 0, res.stderr
    return (tmp_path / 'imported').exists()


def test_loading_the_zfs_layer_does_not_import_pyzfs(tmp_path):
    code = 'import ansible_collections.smartos.imgadm.plugins.module_utils._zfs'
    assert _python_with_fake_pyzfs(tmp_path, code) is False


def test_cli_backend_does_not_import_pyzfs_and_auto_does(tmp_path):
    code = ('from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import ZfsRunner, get_backend; '
            'get_backend(ZfsRunner(), prefer="cli")')
    assert _python_with_fake_pyzfs(tmp_path, code) is False
    code = code.replace('"cli"', '"auto"')
    assert _python_with_fake_pyzfs(tmp_path, code) is True


# ------------------------------------------------------------------ runner

def test_subprocess_run_command_env_stdin_and_rc():
    rc, out, err = subprocess_run_command(
        ['sh', '-c', 'echo "$LC_ALL"; cat; echo oops >&2; exit 3'], data='hello', environ_update={'LC_ALL': 'C'})
    assert rc == 3
    assert out == 'C\nhello\n'
    assert err == 'oops\n'
    rc, out, dummy = subprocess_run_command(['cat'], data=b'\x00raw', binary_data=True)
    assert (rc, out) == (0, '\x00raw')


def test_subprocess_run_command_check_rc_raises():
    with pytest.raises(ZfsError) as excinfo:
        subprocess_run_command(['sh', '-c', 'echo bad >&2; exit 2'], check_rc=True)
    assert excinfo.value.rc == 2
    assert 'bad' in str(excinfo.value)


def test_runner_missing_binary_is_a_zfs_error():
    runner = ZfsRunner(zfs_bin='/nonexistent/zfs')
    assert runner.zfs_bin == '/nonexistent/zfs'
    with pytest.raises(ZfsError) as excinfo:
        runner.zfs('list')
    assert 'cannot run /nonexistent/zfs list' in str(excinfo.value)


def test_find_bin(tmp_path, monkeypatch):
    tool = tmp_path / 'zfs'
    tool.write_text('#!/bin/sh\n')
    tool.chmod(0o755)
    monkeypatch.setenv('PATH', '/nonexistent')
    assert _zfs.find_bin('zfs', extra_dirs=(str(tmp_path),)) == str(tool)
    assert _zfs.find_bin('zfs', extra_dirs=()) == 'zfs'
    assert _zfs.find_bin('/opt/zfs') == '/opt/zfs'


def test_runner_for_module_uses_module_services():
    calls = []

    class FakeModule:
        def get_bin_path(self, name, required=False, opt_dirs=None):
            calls.append((name, required, tuple(opt_dirs)))
            return '/opt/sbin/' + name

        def run_command(self, args, check_rc=False, data=None, binary_data=False, environ_update=None):
            calls.append(('run', list(args), environ_update))
            return 0, 'zones\n', ''

    runner = ZfsRunner.for_module(FakeModule())
    assert CliBackend(runner).pool_exists('zones') is True
    assert calls == [
        ('zfs', True, _zfs.SBIN_DIRS),
        ('zpool', True, _zfs.SBIN_DIRS),
        ('run', ['/opt/sbin/zpool', 'list', '-H', '-o', 'name', 'zones'], {'LC_ALL': 'C'}),
    ]


# ------------------------------------------------------------------ real zfs (zfs-fuse here)

# one pool per pytest-xdist worker (ansible-test units runs tests in parallel)
POOL = 'ztest' + os.environ.get('PYTEST_XDIST_WORKER', '')
POOL_FILE = '/var/tmp/%s.img' % POOL


def _sh(*argv):
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)


def _zfs_value(prop, name):
    res = _sh(_zfs.find_bin('zfs'), 'get', '-Hp', '-o', 'value', prop, name)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


# function scope: ansible-test runs each test in a fork, where a module-scoped
# teardown would only run much later (leaving the pool behind)
@pytest.fixture
def real_backend():
    zpool = require_real_zfs()
    status = _sh(zpool, 'status', POOL)
    if status.returncode == 0:
        if POOL_FILE not in status.stdout:
            pytest.fail('a pool named %s exists and is not ours' % POOL)
        destroy_pool(POOL)  # left over by an interrupted run
    create_pool(POOL, POOL_FILE, 256 * 1024 * 1024)
    try:
        yield CliBackend(ZfsRunner())
    finally:
        destroy_pool(POOL)
        os.unlink(POOL_FILE)


def _path(rel):
    """Where POOL/REL is mounted, as zfs says (not assumed to be /POOL/REL)."""
    return os.path.join(_zfs_value('mountpoint', POOL), rel)


def _mounted(name):
    return _zfs_value('mounted', name)


@pytest.mark.real_zfs
def test_real_create_exists_and_exact_properties(real_backend):
    backend = real_backend
    assert backend.pool_exists(POOL) is True
    assert backend.pool_exists('ztest-no-such-pool') is False
    assert POOL in backend.list_pools()
    backend.create(POOL + '/props')
    assert backend.exists(POOL + '/props') is True
    assert backend.exists(POOL + '/nope') is False
    with open(_path('props/data'), 'wb') as fh:
        fh.write(os.urandom(200000))
    backend.snapshot(POOL + '/props@s1')
    names = [POOL + '/props', POOL + '/props@s1']
    props = backend.get_properties(names, ['guid', 'used', 'refer', 'createtxg', 'origin', 'type'])
    for name in names:
        # exactly what "zfs get -Hp" says, as text, and guids are full 64-bit integers
        assert props[name]['guid'] == _zfs_value('guid', name)
        assert props[name]['used'] == _zfs_value('used', name)
        assert props[name]['refer'] == _zfs_value('referenced', name)
        assert props[name]['createtxg'] == _zfs_value('createtxg', name)
        assert props[name]['guid'].isdigit() and props[name]['used'].isdigit()
        assert props[name]['origin'] is None
    assert props[POOL + '/props']['type'] == 'filesystem'
    assert props[POOL + '/props@s1']['type'] == 'snapshot'
    assert int(props[POOL + '/props']['refer']) > 200000
    with pytest.raises(DatasetNotFoundError):
        backend.get_properties([POOL + '/props', POOL + '/nope'], ['guid'])
    backend.destroy(POOL + '/props', recursive=True)
    assert backend.exists(POOL + '/props@s1') is False


@pytest.mark.real_zfs
def test_real_list_datasets_is_limited_to_root(real_backend):
    backend = real_backend
    backend.create(POOL + '/lst')
    backend.create(POOL + '/lst/child')
    listing = backend.list_datasets(POOL + '/lst', props=('name', 'origin', 'mountpoint', 'guid', 'used'))
    assert [d['name'] for d in listing] == [POOL + '/lst', POOL + '/lst/child']
    assert listing[1]['mountpoint'] == _zfs_value('mountpoint', POOL) + '/lst/child'
    assert listing[1]['origin'] is None
    assert listing[1]['guid'] == _zfs_value('guid', POOL + '/lst/child')
    assert listing[0]['used'] == _zfs_value('used', POOL + '/lst')
    assert [d['name'] for d in backend.list_datasets(POOL + '/lst', depth=0)] == [POOL + '/lst']
    assert [d['name'] for d in backend.list_datasets(POOL + '/lst', recursive=False)] == [POOL + '/lst']
    backend.destroy(POOL + '/lst', recursive=True)
    assert backend.exists(POOL + '/lst') is False


@pytest.mark.real_zfs
def test_real_snapshot_rename_clone_dependent_clones_destroy(real_backend):
    backend = real_backend
    base = POOL + '/base'
    backend.create(base)
    backend.snapshot(base + '@a')
    backend.snapshot(base + '@b')
    assert backend.list_snapshots(base) == [base + '@a', base + '@b']
    backend.rename(base + '@b', base + '@final', recursive=True)
    assert backend.list_snapshots(base) == [base + '@a', base + '@final']
    assert backend.dependent_clones(base) == []

    backend.clone(base + '@final', POOL + '/vm1')
    backend.clone(base + '@a', POOL + '/other')
    assert backend.get_properties(POOL + '/vm1', ['origin'])[POOL + '/vm1']['origin'] == base + '@final'
    assert backend.dependent_clones(base) == [POOL + '/other', POOL + '/vm1']
    # the capability probe result matches what this zfs really has
    has_clones = _sh(_zfs.find_bin('zfs'), 'get', '-Hp', '-o', 'value', 'clones', base + '@a').returncode == 0
    assert backend.runner.capabilities['clones_property'] is has_clones

    # destroying an image with clones fails and leaves it (and mounted)
    with pytest.raises(ZfsError) as excinfo:
        backend.destroy(base, recursive=True)
    assert 'dependent clones' in str(excinfo.value)
    assert backend.exists(base + '@final')
    assert _mounted(base) == 'yes'

    # rename a mounted filesystem (zfs-fuse says "busy": unmount, retry, remount)
    backend.rename(POOL + '/vm1', POOL + '/vm1-renamed')
    assert backend.exists(POOL + '/vm1') is False
    assert backend.exists(POOL + '/vm1-renamed') is True
    assert _mounted(POOL + '/vm1-renamed') == 'yes'
    assert backend.dependent_clones(base) == [POOL + '/other', POOL + '/vm1-renamed']

    assert backend.unmount(POOL + '/other') is True
    assert backend.unmount(POOL + '/other') is False
    assert backend.mount(POOL + '/other') is True
    assert backend.mount(POOL + '/other') is False

    backend.destroy(POOL + '/vm1-renamed')
    backend.destroy(POOL + '/other')
    assert backend.dependent_clones(base) == []
    backend.destroy(base + '@a')
    assert backend.list_snapshots(base) == [base + '@final']
    backend.destroy(base, recursive=True)
    assert backend.exists(base) is False
    assert backend.exists(base + '@final') is False
    with pytest.raises(DatasetNotFoundError):
        backend.destroy(base, recursive=True)


@pytest.mark.real_zfs
def test_real_set_property_and_rollback(real_backend):
    backend = real_backend
    name = POOL + '/setp'
    backend.create(name, props={'imgadm:ignore': 'true'})
    assert backend.get_properties(name, ['imgadm:ignore'])[name]['imgadm:ignore'] == 'true'
    backend.set_property(name, 'imgadm:ignore', 'false')
    assert _zfs_value('imgadm:ignore', name) == 'false'
    backend.snapshot(name + '@pre')
    with open(_path('setp/after'), 'w') as fh:
        fh.write('x')
    backend.rollback(name + '@pre')
    assert not os.path.exists(_path('setp/after'))
    backend.destroy(name, recursive=True)


def _pipe(send_argv, receive_argv):
    sender = subprocess.Popen(send_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    receiver = subprocess.Popen(receive_argv, stdin=sender.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sender.stdout.close()
    dummy, rerr = receiver.communicate()
    dummy, serr = sender.communicate()
    assert sender.returncode == 0, serr
    assert receiver.returncode == 0, rerr


@pytest.mark.real_zfs
def test_real_send_receive_roundtrip(real_backend, tmp_path):
    backend = real_backend
    src = POOL + '/src'
    backend.create(src)
    with open(_path('src/hello'), 'w') as fh:
        fh.write('hello')
    backend.snapshot(src + '@final')

    # full stream into NAME-partial, then rename like an image import
    receive = backend.receive_argv(POOL + '/img-partial')
    assert ('-u' in receive) is backend.supports_unmounted_receive()
    _pipe(backend.send_argv(src + '@final'), receive)
    assert backend.list_snapshots(POOL + '/img-partial') == [POOL + '/img-partial@final']
    backend.rename(POOL + '/img-partial', POOL + '/img')
    backend.mount(POOL + '/img')
    assert _mounted(POOL + '/img') == 'yes'
    with open(_path('img/hello')) as fh:
        assert fh.read() == 'hello'
    # same snapshot on both sides: same guid, exactly
    guids = backend.get_properties([src + '@final', POOL + '/img@final'], ['guid'])
    assert guids[src + '@final']['guid'] == guids[POOL + '/img@final']['guid'] == _zfs_value('guid', src + '@final')

    # incremental stream, received once its source is gone: it lands on the
    # received base (matched by guid), like an incremental image import
    backend.clone(src + '@final', POOL + '/inc')
    with open(_path('inc/more'), 'w') as fh:
        fh.write('more')
    backend.snapshot(POOL + '/inc@final')
    stream = tmp_path / 'inc.zfs'
    with open(str(stream), 'wb') as fh:
        res = subprocess.run(backend.send_argv(POOL + '/inc@final', incremental_from=src + '@final'),
                             stdout=fh, stderr=subprocess.PIPE, check=False)
    assert res.returncode == 0, res.stderr
    backend.destroy(POOL + '/inc', recursive=True)
    backend.destroy(src, recursive=True)
    with open(str(stream), 'rb') as fh:
        res = subprocess.run(backend.receive_argv(POOL + '/img2-partial', unmounted=False),
                             stdin=fh, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert res.returncode == 0, res.stderr
    assert backend.get_properties(POOL + '/img2-partial', ['origin'])[POOL + '/img2-partial']['origin'] == POOL + '/img@final'
    assert backend.dependent_clones(POOL + '/img') == [POOL + '/img2-partial']
    with open(_path('img2-partial/more')) as fh:
        assert fh.read() == 'more'
    backend.destroy(POOL + '/img2-partial', recursive=True)
    backend.destroy(POOL + '/img', recursive=True)
    left = [d['name'] for d in backend.list_datasets(POOL, types=('all',))]
    assert not [n for n in left if n.startswith((POOL + '/img', POOL + '/src', POOL + '/inc'))]
