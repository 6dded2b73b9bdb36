# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_common.py.

* ``CommandRunner``: ``run_command`` with a deadline, over a fake module
  whose ``run_command`` really starts the process (and over a real
  ``AnsibleModule``);
* ``run_module``: the range check first, partial results on failure,
  warnings on success.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
import time

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smartos.imgadm.plugins.module_utils._common import CommandRunner, run_module
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import CommandTimeoutError, UsageError, ZfsError


class PopenModule(object):
    """A module stand-in whose ``run_command`` runs the command with ``subprocess.Popen``, as Ansible's does."""

    def __init__(self):
        self.calls = []
        self.procs = []

    def run_command(self, args, check_rc=False, data=None, binary_data=False, environ_update=None,
                    before_communicate_callback=None, handle_exceptions=True):
        self.calls.append(dict(args=list(args), check_rc=check_rc, data=data, binary_data=binary_data,
                               environ_update=environ_update, handle_exceptions=handle_exceptions))
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.procs.append(proc)
        if before_communicate_callback is not None:
            before_communicate_callback(proc)
        if data is not None and not binary_data:
            data = data + '\n'
        out, err = proc.communicate(data.encode() if data is not None else None)
        return proc.returncode, out.decode(), err.decode()


def test_fast_command_returns_rc_out_err():
    module = PopenModule()
    runner = CommandRunner(module, 5)
    rc, out, err = runner(['sh', '-c', 'echo out; echo "$FOO" >&2; exit 3'], environ_update={'FOO': 'bar'})
    assert (rc, out, err) == (3, 'out\n', 'bar\n')
    assert module.calls == [dict(args=['sh', '-c', 'echo out; echo "$FOO" >&2; exit 3'], check_rc=False, data=None,
                                 binary_data=False, environ_update={'FOO': 'bar'}, handle_exceptions=False)]


def test_data_and_check_rc_are_passed_through_check_rc_never():
    module = PopenModule()
    rc, out, dummy = CommandRunner(module, 5)(['cat'], check_rc=True, data='hello')
    assert (rc, out) == (0, 'hello\n')
    assert module.calls[0]['check_rc'] is False  # the deadline runner reports rc; it never lets run_command fail_json


def test_slow_command_is_killed_and_named():
    module = PopenModule()
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError) as exc:
        CommandRunner(module, 0.5)(['sleep', '30'])
    elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 6, elapsed
    e = exc.value
    assert e.code == 'CommandTimeout'
    assert str(e).startswith('sleep 30 did not finish within 0.5 s (command_timeout) and was killed')
    assert 'stuck in the kernel' not in str(e)
    assert e.details['cmd'] == ['sleep', '30'] and e.details['timeout'] == 0.5
    proc = module.procs[0]
    assert proc.wait(5) == -9  # killed, and reaped by the helper thread


def test_the_command_line_is_quoted_in_the_message():
    with pytest.raises(CommandTimeoutError) as exc:
        CommandRunner(PopenModule(), 0.3)([sys.executable, '-c', 'import time; time.sleep(30)'])
    assert "'import time; time.sleep(30)'" in str(exc.value)


def test_an_error_of_run_command_is_reraised():
    with pytest.raises(OSError):
        CommandRunner(PopenModule(), 5)(['/nonexistent/command'])

    class Failing(object):
        def run_command(self, args, **kwargs):
            raise ZfsError('boom')

    with pytest.raises(ZfsError) as exc:
        CommandRunner(Failing(), 5)(['x'])
    assert str(exc.value) == 'boom'


def real_module():
    with patch_module_args({}):
        return basic.AnsibleModule(argument_spec={})


def test_with_the_real_run_command():
    module = real_module()
    runner = CommandRunner(module, 5)
    assert runner(['sh', '-c', 'printf x; printf y >&2; exit 4']) == (4, 'x', 'y')
    start = time.monotonic()
    with pytest.raises(CommandTimeoutError) as exc:
        CommandRunner(module, 0.5)(['sleep', '30'])
    assert time.monotonic() - start < 6
    assert exc.value.details['cmd'] == ['sleep', '30']
    with pytest.raises(OSError):  # handle_exceptions=False: no fail_json from inside run_command
        runner(['/nonexistent/command'])


# ---- run_module

class Exit(Exception):
    def __init__(self, failed, result):
        super(Exit, self).__init__(result)
        self.failed = failed
        self.result = result


@pytest.fixture
def exits(monkeypatch):
    warned = []

    def exit_json(self, **kwargs):
        raise Exit(False, kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs['msg'] = msg
        raise Exit(True, kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: warned.append(text))
    return warned


SPEC = dict(concurrency=dict(type='int', default=2), timeout=dict(type='float', default=30.0))


def call(run, args=None, diff=False):
    args = dict(args or {})
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(Exit) as exc:
            run_module(SPEC, run)
    return exc.value.failed, exc.value.result


def test_run_module_returns_what_was_done_before_a_failure(exits):
    def run(module, result):
        result.data['deleted'] = [{'uuid': 'a'}]
        result.action('delete image a')
        result.set_diff('a\n', '')
        result.warn('not shown on failure')
        raise UsageError('no such thing', field='name')

    failed, res = call(run, diff=True)
    assert failed
    assert res['changed'] is True and res['actions'] == ['delete image a']
    assert res['deleted'] == [{'uuid': 'a'}]
    assert res['diff'] == {'before': 'a\n', 'after': ''}
    assert (res['msg'], res['error_code'], res['field']) == ('no such thing', 'Usage', 'name')
    assert 'UsageError' in res['exception']


def test_run_module_checks_ranges_before_running(exits):
    ran = []
    failed, res = call(lambda module, result: ran.append(1), {'concurrency': 0})
    assert failed and ran == []
    assert (res['error_code'], res['field'], res['changed'], res['actions']) == ('Usage', 'concurrency', False, [])


def test_run_module_success_passes_warnings_and_diff_only_with_diff(exits):
    def run(module, result):
        result.data['x'] = 1
        result.action('looked', changes=False)
        result.set_diff('a\n', 'a\n')
        result.warn('careful')

    failed, res = call(run)
    assert not failed
    assert res == {'x': 1, 'changed': False, 'actions': ['looked']}
    assert exits == ['careful']
    failed, res = call(run, diff=True)
    assert res['diff'] == {'before': 'a\n', 'after': 'a\n'}


def test_the_no_log_scrub_is_skipped_only_when_there_is_nothing_to_scrub(monkeypatch):
    from ansible.module_utils import basic
    from ansible_collections.smartos.imgadm.plugins.module_utils import _common

    real = basic.remove_values
    monkeypatch.setattr(basic, 'remove_values', real)

    class Mod(object):
        no_log_values = set(['s3cret'])

    _common._skip_empty_scrub(Mod())
    assert basic.remove_values is real
    assert basic.remove_values({'a': 'the s3cret'}, Mod.no_log_values) == {'a': 'the ********'}
    Mod.no_log_values = set()
    _common._skip_empty_scrub(Mod())
    big = {'manifests': [{'uuid': str(i)} for i in range(3)]}
    assert basic.remove_values(big, set()) is big  # no copy
