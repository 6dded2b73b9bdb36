# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_zfs.py.

* scripted cases from test__zfs.yaml: exact argv, rc/out/err, parsed result;
* backend selection with a fake ``libzfs_core`` module in ``sys.modules``;
* the runner itself.

What only a real pool shows is tested by the integration targets.
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
    libzfs_core_usable,
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

    FUNCTIONS = ('lzc_exists', 'lzc_destroy_snaps', 'lzc_rename')

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
            return step.get('return')
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
    runner = ZfsRunner(run_command=run_command, zfs_bin='zfs')
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
    run_command = ScriptedRunCommand([{'argv': ['zfs', 'destroy', 'zones/a@b'], 'rc': 1, 'err': 'cannot open: dataset does not exist\n'}])
    backend = CliBackend(ZfsRunner(run_command=run_command, zfs_bin='zfs'))
    with pytest.raises(DatasetNotFoundError) as excinfo:
        backend.destroy('zones/a@b')
    exc = excinfo.value
    assert exc.cmd == ['zfs', 'destroy', 'zones/a@b']
    assert exc.rc == 1
    assert exc.stderr == 'cannot open: dataset does not exist\n'
    assert exc.code == 'DatasetNotFound'
    assert exc.fail_kwargs()['cmd'] == ['zfs', 'destroy', 'zones/a@b']


# ------------------------------------------------------------------ backend selection

@pytest.fixture
def no_libzfs_core(monkeypatch):
    # None in sys.modules makes "import libzfs_core" raise ImportError
    monkeypatch.setitem(sys.modules, 'libzfs_core', None)


def _runner():
    return ZfsRunner(run_command=ScriptedRunCommand([]), zfs_bin='zfs')


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
    monkeypatch.setitem(sys.modules, 'libzfs_core', FakeLibzfsCore(missing=('lzc_destroy_snaps',)))
    assert get_backend(_runner()).name == 'cli'


def test_lzc_rename_is_optional():
    assert libzfs_core_usable(FakeLibzfsCore(missing=('lzc_rename',))) == (True, None)
    usable, reason = libzfs_core_usable(FakeLibzfsCore(missing=('lzc_exists',)))
    assert usable is False and 'lzc_exists' in reason


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
            'get_backend(ZfsRunner(None), prefer="cli")')
    assert _python_with_fake_pyzfs(tmp_path, code) is False
    code = code.replace('"cli"', '"auto"')
    assert _python_with_fake_pyzfs(tmp_path, code) is True


# ------------------------------------------------------------------ runner

def test_runner_missing_binary_is_a_zfs_error():
    def run_command(args, check_rc=False, data=None, binary_data=False, environ_update=None):
        raise OSError(2, 'No such file or directory')

    runner = ZfsRunner(run_command, zfs_bin='/nonexistent/zfs')
    with pytest.raises(ZfsError) as excinfo:
        runner.zfs('list')
    assert 'cannot run /nonexistent/zfs list' in str(excinfo.value)
    assert excinfo.value.cmd == ['/nonexistent/zfs', 'list']
