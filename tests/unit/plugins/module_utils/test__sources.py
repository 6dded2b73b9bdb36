# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import UsageError
from ansible_collections.smartos.imgadm.plugins.module_utils._sources import (
    Source,
    effective_sources,
    norm_url,
    plan_absent,
    plan_exclusive,
    plan_present,
    sources_text,
    split_channel,
    url_with_channel,
)

DEFAULT = OrderedDict([('type', 'imgapi'), ('url', 'https://images.smartos.org')])


def e(url, type='imgapi', insecure=None):
    entry = OrderedDict([('type', type), ('url', url)])
    if insecure is not None:
        entry['insecure'] = insecure
    return entry


@pytest.mark.parametrize('url, expected', [
    ('http://127.0.0.1:8080', 'http://127.0.0.1:8080'),
    ('http://127.0.0.1:8080/', 'http://127.0.0.1:8080'),
    ('127.0.0.1:8080', 'http://127.0.0.1:8080'),
    ('images.smartos.org', 'http://images.smartos.org'),
    ('https://images.smartos.org:443/', 'https://images.smartos.org'),
    ('http://example.com:80/x/', 'http://example.com/x'),
    ('https://example.com:80/', 'https://example.com:80'),
    ('HTTPS://Example.COM/Path/', 'https://example.com/Path'),
    ('https://updates.tritondatacenter.com/?channel=experimental', 'https://updates.tritondatacenter.com?channel=experimental'),
    ('http://a.example//', 'http://a.example/'),
])
def test_norm_url(url, expected):
    assert norm_url(url) == expected


@pytest.mark.parametrize('url, base, channel', [
    ('https://u.example?channel=dev', 'https://u.example', 'dev'),
    ('https://u.example/?channel=dev&x=1', 'https://u.example/?x=1', 'dev'),
    ('https://u.example', 'https://u.example', None),
])
def test_split_channel(url, base, channel):
    assert split_channel(url) == (base, channel)


def test_url_with_channel():
    assert url_with_channel('https://u.example', 'staging') == 'https://u.example?channel=staging'
    assert url_with_channel('https://u.example?channel=staging', 'staging') == 'https://u.example?channel=staging'
    assert url_with_channel('https://u.example', None) == 'https://u.example'
    with pytest.raises(UsageError) as exc:
        url_with_channel('https://u.example?channel=dev', 'staging')
    assert exc.value.details['field'] == 'channel'


@pytest.mark.parametrize('kwargs, field', [
    (dict(url=''), 'url'),
    (dict(url='http://x', type='bogus'), 'type'),
    (dict(url='http://x/images', type='dsapi'), 'url'),
])
def test_source_from_params_rejects(kwargs, field):
    with pytest.raises(UsageError) as exc:
        Source.from_params(**kwargs)
    assert exc.value.details['field'] == field


def test_source_entry_shape():
    assert list(Source.from_params('http://x').to_entry().items()) == [('type', 'imgapi'), ('url', 'http://x')]
    assert list(Source.from_params('http://x', insecure=True).to_entry().items()) == [('type', 'imgapi'), ('url', 'http://x'), ('insecure', True)]
    assert Source.from_params('http://x/datasets', type='dsapi').to_entry()['type'] == 'dsapi'


def test_present_appends_after_default():
    plan = plan_present([DEFAULT], Source.from_params('http://127.0.0.1:9'))
    assert plan.changed
    assert plan.entries == [DEFAULT, e('http://127.0.0.1:9')]
    assert [s.url for s in plan.to_ping] == ['http://127.0.0.1:9']


@pytest.mark.parametrize('existing', ['http://127.0.0.1:9', 'http://127.0.0.1:9/', '127.0.0.1:9'])
def test_present_is_idempotent_on_normalised_url(existing):
    entries = [e(existing)]
    plan = plan_present(entries, Source.from_params('http://127.0.0.1:9'))
    assert not plan.changed
    assert plan.entries is entries


def test_present_channel_is_another_source():
    plan = plan_present([e('http://h')], Source.from_params('http://h', channel='dev'))
    assert plan.changed
    assert plan.entries[-1]['url'] == 'http://h?channel=dev'


def test_present_updates_insecure_in_place():
    entries = [e('https://a'), e('https://b'), e('https://c')]
    plan = plan_present(entries, Source.from_params('https://b', insecure=True))
    assert plan.changed
    assert plan.entries == [e('https://a'), e('https://b', insecure=True), e('https://c')]


def test_present_keeps_other_entries_untouched():
    odd = OrderedDict([('url', 'https://a'), ('type', 'imgapi'), ('insecure', False)])
    plan = plan_present([odd], Source.from_params('https://b'))
    assert list(plan.entries[0].items()) == list(odd.items())


def test_absent_rewrites_deduplicated():
    entries = [e('https://a'), e('https://a'), e('https://b'), e('https://b/', 'imgapi', True)]
    plan = plan_absent(entries, 'https://b')
    assert plan.changed
    assert plan.entries == [e('https://a')]


def test_absent_of_last_leaves_empty_list():
    plan = plan_absent([DEFAULT], 'https://images.smartos.org/')
    assert plan.changed and plan.entries == []


def test_absent_missing_is_noop():
    plan = plan_absent([DEFAULT], 'http://nope')
    assert not plan.changed


def test_absent_keeps_channel_variant():
    plan = plan_absent([e('http://h'), e('http://h?channel=dev')], 'http://h')
    assert plan.entries == [e('http://h?channel=dev')]


def test_exclusive_reorder_adds_deletes():
    entries = [e('https://a'), e('https://b'), e('https://c')]
    want = [Source.from_params('https://c'), Source.from_params('https://a'), Source.from_params('https://d')]
    plan = plan_exclusive(entries, want)
    assert plan.changed
    assert plan.entries == [e('https://c'), e('https://a'), e('https://d')]
    assert [s.url for s in plan.to_ping] == ['https://d']
    assert 'delete source "https://b imgapi"' in plan.actions


def test_exclusive_reorder_only():
    plan = plan_exclusive([e('https://a'), e('https://b')], [Source.from_params('https://b'), Source.from_params('https://a')])
    assert plan.changed and plan.actions == ['reorder sources'] and plan.to_ping == []


def test_exclusive_same_is_noop():
    entries = [e('https://a'), e('https://b', insecure=True)]
    plan = plan_exclusive(entries, [Source.from_params('https://a'), Source.from_params('https://b', insecure=True)])
    assert not plan.changed


def test_exclusive_rejects_duplicates():
    with pytest.raises(UsageError):
        plan_exclusive([], [Source.from_params('https://a'), Source.from_params('https://a/')])


def test_exclusive_empty():
    plan = plan_exclusive([DEFAULT], [])
    assert plan.changed and plan.entries == []


def test_effective_sources_dedup_matches_reference_keys():
    # insecure unset and insecure false are different sources for the reference
    got = effective_sources([e('http://a'), e('http://a/'), e('http://a', insecure=False)])
    assert [s.insecure for s in got] == [None, False]


def test_sources_text():
    assert sources_text([e('http://a'), e('https://b', insecure=True)]) == 'http://a imgapi\nhttps://b imgapi insecure\n'
