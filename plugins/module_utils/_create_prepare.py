# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``imgadm create -s``: run a prepare-image script in a VM and follow it.

The contract (imgadm(1m), PREPARE IMAGE SCRIPT): the script runs as the
VM's ``sdc:operator-script``; it sets ``prepare-image:state`` to
``running``, then to ``success`` or to ``error`` (with
``prepare-image:error``), then shuts the VM down. Each of the three stages
(VM booted -> running, running -> success/error, -> VM stopped) has its own
timeout, as in the stock ``imgadm``; the poll is every 2 s for the first
stage and every second for the others.

One difference: the stock ``imgadm`` waits out the whole timeout when the
VM stops without the script having signalled; here a VM seen ``stopped``
before the script said ``running`` fails the first stage at once
(``PrepareImageDidNotRun``), and one seen ``stopped`` while the state is
still ``running`` fails the second (``PrepareImageError``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    PrepareImageDidNotRunError,
    PrepareImageError,
)

STATE_KEY = 'prepare-image:state'
ERROR_KEY = 'prepare-image:error'
START_POLL_INTERVAL = 2.0
POLL_INTERVAL = 1.0


def _indent(text, indent='    '):
    return indent + ('\n' + indent).join(text.split('\n'))


def prepare_image_error(vm_uuid, details, **extra):
    """``PrepareImageError`` worded as the stock ``imgadm``'s."""
    details = details or ''
    if '\n' in details:
        suffix = ':\n' + _indent('...\n' + details)
    elif details:
        suffix = ': ' + details
    else:
        suffix = ''
    return PrepareImageError('prepare-image script error while preparing VM %s%s' % (vm_uuid, suffix),
                             vm_uuid=vm_uuid, prepare_error=details, **extra)


def _metadata(vm, key):
    md = vm.get('customer_metadata')
    return md.get(key) if isinstance(md, dict) else None


class Preparer(object):
    """Runs the prepare stages against a ``_vmadm.Vmadm``.

    ``progress`` (a dict, shared with the caller) records what was changed:
    ``operator_script`` once the script is set, ``started`` once ``vmadm
    start`` was called, so that the caller's cleanup knows what to undo.
    ``log(text)`` receives a line per step. ``sleep``/``clock`` are for tests.
    """

    def __init__(self, vmadm, vm_uuid, timeout, log=None, progress=None, sleep=time.sleep, clock=time.monotonic,
                 start_interval=START_POLL_INTERVAL, interval=POLL_INTERVAL):
        self.vmadm = vmadm
        self.vm_uuid = vm_uuid
        self.timeout = timeout
        self.log = log or (lambda text: None)
        self.progress = progress if progress is not None else {}
        self.sleep = sleep
        self.clock = clock
        self.start_interval = start_interval
        self.interval = interval
        self.stages = []  # (stage, seconds) in order

    def run(self, script):
        """Set the script, clear the state keys, start the VM and follow the three stages. Returns the last VM object."""
        uuid = self.vm_uuid
        self.vmadm.update(uuid, {'set_internal_metadata': {'operator-script': script}})
        self.progress['operator_script'] = True
        self.vmadm.update(uuid, {'remove_customer_metadata': [STATE_KEY, ERROR_KEY]})
        self.log('preparing VM %s (starting it)' % uuid)
        self.progress['started'] = True
        self.vmadm.start(uuid)
        vm = self._stage('running', self.start_interval, self._signalled)
        self.log('prepare-image script is running')
        vm = self._stage('complete', self.interval, self._completed)
        if _metadata(vm, STATE_KEY) == 'error':
            raise prepare_image_error(uuid, _metadata(vm, ERROR_KEY) or '', stage='complete')
        self.log('prepare-image script succeeded')
        vm = self._stage('stopped', self.interval, self._stopped)
        self.log('prepare-image script stopped VM %s' % uuid)
        return vm

    # each check returns True (done), False (poll again) or raises

    def _signalled(self, vm):
        if _metadata(vm, STATE_KEY) is not None:
            return True
        if vm.get('state') == 'stopped':
            raise PrepareImageDidNotRunError(
                'prepare-image script did not indicate it was run (old guest tools in VM %s?): the VM stopped '
                'without setting %s' % (self.vm_uuid, STATE_KEY), vm_uuid=self.vm_uuid, stage='running')
        return False

    def _completed(self, vm):
        if _metadata(vm, STATE_KEY) in ('success', 'error'):
            return True
        if vm.get('state') == 'stopped':
            raise prepare_image_error(self.vm_uuid, 'the VM stopped before the script set %s to success or error (it is %s)'
                                      % (STATE_KEY, _metadata(vm, STATE_KEY)), stage='complete')
        return False

    @staticmethod
    def _stopped(vm):
        return vm.get('state') == 'stopped'

    def _stage(self, stage, interval, done):
        t0 = self.clock()
        deadline = t0 + self.timeout
        while True:
            vm = self.vmadm.get(self.vm_uuid)
            if done(vm):
                self.stages.append((stage, self.clock() - t0))
                return vm
            now = self.clock()
            if now >= deadline:
                self.stages.append((stage, now - t0))
                raise self._timeout(stage, vm)
            self.sleep(min(interval, deadline - now))

    def _timeout(self, stage, vm):
        extra = dict(stage=stage, timeout=self.timeout, vm_state=vm.get('state'))
        if stage == 'running':
            self.log('timeout waiting for prepare-image script to signal it started')
            return PrepareImageDidNotRunError(
                'prepare-image script did not indicate it was run (old guest tools in VM %s?): %s was not set within '
                '%s s (prepare_timeout)' % (self.vm_uuid, STATE_KEY, self.timeout), vm_uuid=self.vm_uuid, **extra)
        if stage == 'complete':
            return prepare_image_error(self.vm_uuid, 'prepare-image script did not complete within %s s (prepare_timeout)'
                                       % self.timeout, **extra)
        return prepare_image_error(self.vm_uuid, 'VM did not shutdown within %s s (prepare_timeout)' % self.timeout, **extra)


__all__ = ('STATE_KEY', 'ERROR_KEY', 'START_POLL_INTERVAL', 'POLL_INTERVAL', 'prepare_image_error', 'Preparer')
