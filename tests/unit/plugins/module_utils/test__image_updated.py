# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_image_updated.py: which manifest fields changed, as a table."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._image_updated import diff_fields


@pytest.mark.parametrize('old, new, fields', [
    ({}, {}, []),
    ({'a': 1}, {'a': 1}, []),
    ({'a': 1}, {'a': 2}, ['a']),
    ({'name': 'x'}, {'name': 'x', 'description': 'd'}, ['description']),
    ({'name': 'x', 'description': 'd'}, {'name': 'x'}, ['description']),
    ({'b': 1, 'a': 1, 'c': 1}, {'c': 2, 'b': 2}, ['a', 'b', 'c']),  # sorted, removed keys too
    ({'a': None}, {}, []),  # a null field and a missing one are the same
    ({'a': 1}, {'a': 1.0}, []),
    ({'a': 1}, {'a': '1'}, ['a']),
    ({'tags': {'a': 1}}, {'tags': {'a': 2}}, ['tags']),  # only requirements is diffed key by key
    ({'requirements': {'brand': 'lx', 'networks': []}}, {'requirements': {'brand': 'bhyve', 'networks': []}},
     ['requirements.brand']),
    ({'requirements': {'min_platform': {'7.0': 'x'}}}, {'requirements': {'max_platform': {'7.0': 'y'}}},
     ['requirements.max_platform', 'requirements.min_platform']),
    ({'requirements': {}}, {'requirements': {}}, []),
    ({'requirements': {'brand': 'lx'}}, {'requirements': None}, ['requirements']),
    ({}, {'requirements': {'brand': 'lx'}}, ['requirements']),
    ({'requirements': {'brand': 'lx'}, 'name': 'a'}, {'requirements': {'brand': 'lx', 'ssh_key': True}, 'name': 'b'},
     ['name', 'requirements.ssh_key']),
    ({'files': [{'sha1': 'a'}]}, {'files': [{'sha1': 'a', 'dataset_guid': '1'}]}, ['files']),
])
def test_diff_fields(old, new, fields):
    assert diff_fields(old, new) == fields
