#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test-only module of the openzfs_tier target: drive the collection's ZFS layer on the node.

It creates ``root`` if needed (the caller destroys it). For each backend asked for
(``cli``, ``libzfs_core``, ``auto``) it runs the same sequence under ``root``: datasets, snapshots and a clone are made with the ``zfs``
command (the backends have no calls for that), then every backend call is used
(exists, which_exist, get_properties, list_snapshots, dependent_clones, unmount,
mount, rename of a snapshot and of a filesystem, destroy of a snapshot, of a
missing snapshot and of a tree, receive_argv). It returns, per backend: the
backend ``get_backend`` chose, the results with the backend's own name replaced
by ``X`` (so that the backends can be compared), the ``libzfs_core`` functions it
called and how often it ran each ``zfs`` subcommand. It runs through AnsiballZ like the
collection's modules, so over SSH it checks the collection's module_utils on the
managed node's Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import (
    LibzfsCoreBackend,
    ZfsRunner,
    get_backend,
)


class _CountingLzc:
    """Proxy of the libzfs_core module that remembers which lzc_* functions were called."""

    def __init__(self, lzc, calls):
        self._lzc = lzc
        self._calls = calls

    def __getattr__(self, name):
        value = getattr(self._lzc, name)
        if name.startswith('lzc_') and callable(value):
            def counted(*args, **kwargs):
                self._calls.add(name)
                return value(*args, **kwargs)
            return counted
        return value


def _sequence(backend, runner, root, tag):
    base = '%s/%s' % (root, tag)
    fs = base + '-fs'
    clone = base + '-clone'
    res = {}
    runner.zfs('create', fs)
    res['created'] = backend.exists(fs)
    runner.zfs('snapshot', fs + '@a')
    res['snap_exists'] = backend.exists(fs + '@a')
    res['snap_missing_exists'] = backend.exists(fs + '@nope')
    res['which_exist'] = sorted(backend.which_exist([fs, fs + '@a', fs + '@nope', base + '-nope']))
    runner.zfs('clone', fs + '@a', clone)
    res['clone_props'] = backend.get_properties(clone, ('type', 'mounted', 'origin'))[clone]
    res['dependent_clones'] = backend.dependent_clones(fs)
    res['unmounted'] = backend.unmount(clone)
    res['unmounted_again'] = backend.unmount(clone)
    res['mounted'] = backend.mount(clone)
    res['mounted_again'] = backend.mount(clone)
    runner.zfs('snapshot', fs + '@b')
    backend.rename(fs + '@b', fs + '@c')
    res['snapshots'] = backend.list_snapshots(fs)
    res['guid_is_number'] = backend.get_properties(fs + '@a', ('guid',))[fs + '@a']['guid'].isdigit()
    backend.rename(clone, clone + '2')
    res['renamed_clone_props'] = backend.get_properties(clone + '2', ('type', 'mounted', 'origin'))[clone + '2']
    backend.destroy(clone + '2', recursive=True)
    backend.destroy(fs + '@c')
    res['snapshots_after_destroy'] = backend.list_snapshots(fs)
    try:
        backend.destroy(fs + '@nope')
        res['destroy_missing'] = 'no error'
    except Exception as exc:  # pylint: disable=broad-except
        res['destroy_missing'] = type(exc).__name__
    backend.destroy(fs, recursive=True)
    res['gone'] = not backend.exists(fs)
    res['receive_argv'] = backend.receive_argv(base + '-rx')[1:]
    return res


def _recording(run_command, subcommands):
    """``run_command`` that also appends each ``zfs`` subcommand to ``subcommands``."""
    def run(args, **kwargs):
        if len(args) > 1:
            subcommands.append(args[1])
        return run_command(args, **kwargs)
    return run


def _normalise(value, tag):
    if isinstance(value, dict):
        return dict((k, _normalise(v, tag)) for k, v in value.items())
    if isinstance(value, list):
        return [_normalise(v, tag) for v in value]
    if isinstance(value, str):
        return value.replace(tag, 'X')
    return value


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='str', required=True),
            backends=dict(type='list', elements='str', default=['cli', 'libzfs_core', 'auto']),
        ),
        supports_check_mode=False,
    )
    results = {}
    ZfsRunner(module.run_command).zfs('create', '-p', module.params['root'])
    for prefer in module.params['backends']:
        subcommands = []
        runner = ZfsRunner(_recording(module.run_command, subcommands))
        lzc_calls = set()
        entry = {}
        try:
            backend = get_backend(runner, prefer=prefer)
            entry['backend'] = backend.name
            if isinstance(backend, LibzfsCoreBackend):
                backend.lzc = _CountingLzc(backend.lzc, lzc_calls)
            tag = 'probe-' + prefer.replace('_', '-')
            entry['results'] = _normalise(_sequence(backend, runner, module.params['root'], tag), tag)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(msg='backend %s: %s' % (prefer, exc), exception=traceback.format_exc(), backends=results)
        entry['lzc_calls'] = sorted(lzc_calls)
        entry['zfs_calls'] = dict((sub, subcommands.count(sub)) for sub in sorted(set(subcommands)))
        results[prefer] = entry
    module.exit_json(changed=True, backends=results)


if __name__ == '__main__':
    main()
