# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_filters.py: the FIELD=VALUE filters of imgadm list/avail (imgadm-behaviour.md §3.1)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import UsageError
from ansible_collections.smartos.imgadm.plugins.module_utils._filters import js_string, matches, parse_filters, row

INFO = {
    'manifest': {
        'v': 2, 'uuid': '11111111-1111-4111-8111-111111111111', 'name': 'base-64-lts', 'version': '24.4.1',
        'public': True, 'disabled': False, 'published_at': '2024-12-30T11:22:33.456Z', 'type': 'zone-dataset',
        'os': 'smartos', 'requirements': {'brand': 'joyent', 'min_ram': 1024, 'networks': [{'name': 'net0'}]},
        'tags': {'role': 'os', 'count': 3, 'flag': False, 'list': ['a', 'b']},
        'files': [{'sha1': 'f' * 40, 'size': 12345, 'compression': 'gzip'}],
        'description': None,
    },
    'zpool': 'zones2',
    'source': 'https://images.example.org',
    'cloneNames': ['zones2/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'],
    'clones': 1,
}


@pytest.mark.parametrize('filters, expected', [
    ({}, True),
    ({'name': 'base-64-lts'}, True),
    ({'name': 'base-64'}, False),  # exact
    ({'name': '~64'}, True),  # substring
    ({'name': '~minimal'}, False),
    ({'public': True}, True),
    ({'public': 'true'}, True),  # the CLI's "true" is a boolean
    ({'public': False}, False),
    ({'disabled': 'false'}, True),
    ({'public': 'yes'}, False),  # not a boolean: compared as text with "true"
    ({'requirements.brand': 'joyent'}, True),  # dotted
    ({'requirements.brand': 'lx'}, False),
    ({'requirements.min_ram': 1024}, True),  # a YAML number compares as text
    ({'requirements.min_ram': '1024'}, True),
    ({'requirements.max_ram': '1024'}, False),  # missing field: dropped
    ({'requirements.networks.0.name': 'net0'}, True),
    ({'tags.role': 'os'}, True),
    ({'tags.count': '3'}, True),
    ({'tags.flag': 'false'}, True),
    ({'tags.flag': 'true'}, False),
    ({'tags.list': 'a,b'}, True),  # String(array)
    ({'tags.list': '~b'}, True),  # indexOf on an array: an element
    ({'tags.list': '~a,'}, False),
    ({'description': 'null'}, True),  # String(null)
    ({'published_date': '2024-12-30'}, True),  # computed fields
    ({'published': '2024-12-30T11:22:33Z'}, True),
    ({'published': '~.456'}, False),
    ({'zpool': 'zones2'}, True),
    ({'source': '~example'}, True),
    ({'clones': '1'}, True),
    ({'clones': 0}, False),
    ({'size': '12345'}, True),
    ({'name': '~base', 'os': 'smartos', 'requirements.brand': 'joyent'}, True),  # ANDed
    ({'name': '~base', 'os': 'linux'}, False),
    (['name=~64', 'os=smartos'], True),  # the CLI's list form
    (['public=false'], False),
    (['name=a=b'], False),  # the value is everything after the first "="
])
def test_matches(filters, expected):
    info = copy.deepcopy(INFO)
    assert matches(info, parse_filters(filters)) is expected
    assert info == INFO  # the record is never changed (the reference adds computed fields to manifests)


def test_a_record_without_computed_fields():
    info = {'manifest': {'uuid': '11111111-1111-4111-8111-111111111111'}, 'zpool': 'zones'}
    assert matches(info, parse_filters({'zpool': 'zones'}))
    for field in ('published', 'source', 'size', 'name'):
        assert not matches(info, parse_filters({field: '~'}))
    assert sorted(row(info)) == ['uuid', 'zpool']


@pytest.mark.parametrize('value, text', [
    (None, 'null'), (True, 'true'), (False, 'false'), (3, '3'), (3.0, '3'), (2.5, '2.5'), ('x', 'x'),
    ([1, None, 'a'], '1,,a'), ({'a': 1}, '[object Object]'), ([], ''),
])
def test_js_string(value, text):
    assert js_string(value) == text


@pytest.mark.parametrize('bad', [
    'name=x', 5, ['name'], [3], {'': 'x'}, {'a..b': 'x'}, {'name': ['x']}, {'name': {'a': 1}}, {'name': None},
])
def test_bad_filters_name_the_option(bad):
    with pytest.raises(UsageError) as exc:
        parse_filters(bad)
    assert exc.value.details['field'] == 'filters'
