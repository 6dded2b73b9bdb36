# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the smartos.imgadm.imgapi lookup against the project's own IMGAPI server.

The real lookup (loaded by Ansible's plugin loader, so its documented options
and defaults apply) asks ``tests/world/imgapi_server.py`` running in this
process on 127.0.0.1, with images written into the server's data directory.
A dead source is a port nobody listens on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys
from urllib.parse import parse_qsl, urlsplit

import pytest

pytest.importorskip('requests')

from ansible.errors import AnsibleError, AnsibleLookupError  # noqa: E402
from ansible.plugins.loader import lookup_loader  # noqa: E402

WORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, 'world')
if WORLD not in sys.path:
    sys.path.insert(0, WORLD)

import imgapi_server  # noqa: E402  pylint: disable=wrong-import-position

DEAD = 'http://127.0.0.1:9'
OWNER = '00000000-0000-0000-0000-000000000000'
OTHER_OWNER = '11111111-2222-4333-8444-555555555555'


def u(n):
    return '%08x-0000-4000-8000-%012x' % (n, n)


def manifest(n, name='base', version='1.0', published='2024-01-01', state='active', **more):
    m = {
        'v': 2, 'uuid': u(n), 'owner': OWNER, 'name': name, 'version': version, 'state': state,
        'disabled': state == 'disabled', 'public': True, 'published_at': '%sT00:00:00.000Z' % published,
        'type': 'zone-dataset', 'os': 'smartos', 'files': [],
    }
    m.update(more)
    return m


@pytest.fixture
def servers(tmp_path):
    """``start(*manifests, channels=None, mode='public', image_channels=None)`` -> a running server holding them.

    ``image_channels`` maps an image number to the channels it is in.
    """
    running = []

    def start(*manifests, **kw):
        data_dir = str(tmp_path / ('srv%d' % len(running)))
        os.makedirs(data_dir)
        image_channels = kw.pop('image_channels', None) or {}
        for m in manifests:
            chans = [c for n, c in image_channels.items() if u(n) == m['uuid']]
            imgapi_server.add_image_to_data_dir(data_dir, m, channels=chans[0] if chans else None)
        srv = imgapi_server.start_server(data_dir, **kw)
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop()


@pytest.fixture
def lookup(monkeypatch):
    """``(run, warnings)``: ``run(*terms, **options)`` runs the real lookup; ``warnings`` collects its warnings."""
    plugin = lookup_loader.get('smartos.imgadm.imgapi')
    assert plugin is not None
    module = sys.modules[type(plugin).__module__]
    warnings = []
    monkeypatch.setattr(module.display, 'warning', lambda msg, *a, **kw: warnings.append(msg))

    def run(*terms, **options):
        options.setdefault('retries', 0)
        options.setdefault('timeout', 5.0)
        # a new plugin object each time, as Ansible gives each lookup() call
        return lookup_loader.get('smartos.imgadm.imgapi').run(list(terms), variables={}, **options)

    return run, warnings


def queries(srv, path=r'^/images(\?|$)'):
    """The query parameters of the server's logged requests on ``path``, one list of pairs per request."""
    return [parse_qsl(urlsplit(r['path']).query) for r in srv.requests(path)]


# ------------------------------------------------------------------ search

def test_one_match_is_the_manifest(servers, lookup):
    run, warnings = lookup
    srv = servers(manifest(1, name='base-64-lts', version='24.4.1', tags={'role': 'db'}), manifest(2, name='other'))
    res = run(name='base-64-lts', url=srv.url)
    assert isinstance(res, list) and len(res) == 1
    m = res[0]
    assert m['uuid'] == u(1) and m['name'] == 'base-64-lts' and m['version'] == '24.4.1'
    assert m['tags'] == {'role': 'db'} and m['published_at'] == '2024-01-01T00:00:00.000Z'
    assert warnings == []
    # the filters went to the server (no client-side filtering), with the default state
    assert queries(srv) == [[('name', 'base-64-lts'), ('state', 'active')]]
    # a URL given as a string is the same as a one-element list
    assert run(name='base-64-lts', url=[srv.url]) == res


def test_output_uuid(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1), manifest(2, name='other'))
    assert run(name='other', output='uuid', url=srv.url) == [u(2)]


def test_no_match_names_the_filters(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1))
    with pytest.raises(AnsibleLookupError) as exc:
        run(name='nope', version='~24', os='linux', url=srv.url)
    msg = str(exc.value)
    assert 'no image matches name=nope, version=~24, os=linux, state=active in the image sources (%s)' % srv.url in msg


def test_several_matches_are_an_error_listing_them(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1, version='1.0', published='2024-01-01'),
                  manifest(2, version='2.0', published='2024-03-01'),
                  manifest(3, version='3.0', published='2024-02-01'))
    with pytest.raises(AnsibleLookupError) as exc:
        run(name='base', url=srv.url)
    msg = str(exc.value)
    assert msg.startswith('3 images match name=base, state=active (newest first: '
                          '%s base@2.0, %s base@3.0, %s base@1.0); ' % (u(2), u(3), u(1)))
    assert 'most_recent=true' in msg and 'more' not in msg


def test_many_matches_list_the_first_few(servers, lookup):
    run, dummy = lookup
    srv = servers(*[manifest(n, version='%d.0' % n, published='2024-01-%02d' % n) for n in range(1, 9)])
    with pytest.raises(AnsibleLookupError) as exc:
        run(name='base', url=srv.url)
    msg = str(exc.value)
    assert msg.startswith('8 images match name=base, state=active (newest first: %s base@8.0, ' % u(8))
    assert '%s base@4.0, and 3 more);' % u(4) in msg
    assert u(3) not in msg


def test_most_recent_picks_the_newest_published(servers, lookup):
    run, dummy = lookup
    # the newest is neither the highest version nor the highest uuid nor the last written
    srv = servers(manifest(1, version='1.0', published='2024-01-01'),
                  manifest(2, version='2.0', published='2025-06-01'),
                  manifest(3, version='3.0', published='2024-02-01'))
    res = run(name='base', most_recent=True, url=srv.url)
    assert [m['uuid'] for m in res] == [u(2)]
    assert run(name='base', most_recent=True, output='uuid', url=srv.url) == [u(2)]


def test_most_recent_with_one_match_and_with_none(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1))
    assert run(name='base', most_recent=True, output='uuid', url=srv.url) == [u(1)]
    with pytest.raises(AnsibleLookupError, match='no image matches name=other, state=active'):
        run(name='other', most_recent=True, url=srv.url)


def test_most_recent_parses_both_time_forms(servers, lookup):
    run, dummy = lookup
    # imported images often have published_at without milliseconds
    srv = servers(manifest(1, published_at='2024-05-01T10:00:00Z'), manifest(2, published_at='2024-05-01T09:59:59.999Z'))
    assert run(name='base', most_recent=True, output='uuid', url=srv.url) == [u(1)]


@pytest.mark.parametrize('options, expected', [
    (dict(version='~24.'), [u(2), u(3)]),
    (dict(version='~24.4'), [u(3)]),
    (dict(version='24'), []),
    (dict(name='~64-lts'), [u(1), u(2), u(3)]),
    (dict(name='~LTS'), []),  # case-sensitive, as IMGAPI
    (dict(name='~64'), [u(1), u(2), u(3), u(4)]),
    (dict(name='~base', version='~.4.'), [u(1), u(3)]),
])
def test_substring_filters(servers, lookup, options, expected):
    run, dummy = lookup
    srv = servers(manifest(1, name='base-64-lts', version='23.4.0', published='2024-01-01'),
                  manifest(2, name='base-64-lts', version='24.2.0', published='2024-02-01'),
                  manifest(3, name='base-64-lts', version='24.4.1', published='2024-03-01'),
                  manifest(4, name='minimal-64', version='25.1.0', published='2024-04-01'))
    if not expected:
        with pytest.raises(AnsibleLookupError, match='no image matches'):
            run(url=srv.url, **options)
        return
    if len(expected) > 1:
        with pytest.raises(AnsibleLookupError, match='%d images match' % len(expected)):
            run(url=srv.url, **options)
    assert run(url=srv.url, most_recent=True, output='uuid', **options) == [expected[-1]]
    # the ~ went to the server as it was given
    sent = dict(queries(srv)[-1])
    for key, value in options.items():
        assert sent[key] == value


def test_tags(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1, tags={'role': 'db', 'smartdc_service': True}),
                  manifest(2, tags={'role': 'web', 'smartdc_service': True}),
                  manifest(3, tags={'role': 'db', 'smartdc_service': False}))
    assert run(name='base', tags={'role': 'web'}, output='uuid', url=srv.url) == [u(2)]
    assert run(name='base', tags={'role': 'db', 'smartdc_service': True}, output='uuid', url=srv.url) == [u(1)]
    assert run(name='base', tags={'role': 'db', 'smartdc_service': 'false'}, output='uuid', url=srv.url) == [u(3)]
    assert dict(queries(srv)[0]) == {'name': 'base', 'state': 'active', 'tag.role': 'web'}
    assert dict(queries(srv)[1]) == {'name': 'base', 'state': 'active', 'tag.role': 'db', 'tag.smartdc_service': 'true'}
    with pytest.raises(AnsibleLookupError) as exc:
        run(name='base', tags={'role': 'cache'}, url=srv.url)
    assert 'no image matches name=base, state=active, tag.role=cache in the image sources' in str(exc.value)
    with pytest.raises(AnsibleLookupError, match='2 images match name=base, state=active, tag.role=db '):
        run(name='base', tags={'role': 'db'}, url=srv.url)
    # booleans are named as they are sent
    with pytest.raises(AnsibleLookupError, match='no image matches name=base, state=active, public=false, tag.smartdc_service=false, '
                                                 'tag.test=true in'):
        run(name='base', public=False, tags={'test': True, 'smartdc_service': False}, url=srv.url)


def test_os_type_owner_public(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1), manifest(2, os='linux', type='lx-dataset'), manifest(3, os='linux', type='zvol'),
                  manifest(4, owner=OTHER_OWNER), manifest(5, public=False), mode='dc')
    assert run(os='linux', type='lx-dataset', output='uuid', url=srv.url) == [u(2)]
    assert run(os='linux', type='!lx-dataset', output='uuid', url=srv.url) == [u(3)]
    assert run(owner=OTHER_OWNER, output='uuid', url=srv.url) == [u(4)]
    assert run(public=False, output='uuid', url=srv.url) == [u(5)]
    assert dict(queries(srv)[-1]) == {'public': 'false', 'state': 'active'}
    with pytest.raises(AnsibleLookupError, match='owner must be an account uuid'):
        run(owner='bob', url=srv.url)


def test_state(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1, version='1.0'), manifest(2, version='2.0', state='disabled'), mode='dc')
    assert run(name='base', output='uuid', url=srv.url) == [u(1)]
    assert run(name='base', state='disabled', output='uuid', url=srv.url) == [u(2)]
    with pytest.raises(AnsibleLookupError, match='2 images match name=base, state=all '):
        run(name='base', state='all', url=srv.url)
    with pytest.raises(AnsibleError, match='state'):
        run(name='base', state='bogus', url=srv.url)


def test_two_urls_one_dead_gives_the_good_answer_and_a_warning(servers, lookup):
    run, warnings = lookup
    srv = servers(manifest(1))
    assert run(name='base', output='uuid', url=[DEAD, srv.url]) == [u(1)]
    assert len(warnings) == 1 and warnings[0].startswith('image source %s failed: ' % DEAD)
    del warnings[:]
    assert run(name='base', output='uuid', url=[srv.url, DEAD]) == [u(1)]
    assert len(warnings) == 1 and DEAD in warnings[0]


def test_no_match_in_the_live_source_mentions_the_dead_one(servers, lookup):
    run, warnings = lookup
    srv = servers(manifest(1))
    with pytest.raises(AnsibleLookupError) as exc:
        run(name='other', url=[srv.url, DEAD])
    assert 'no image matches name=other, state=active' in str(exc.value)
    assert '(1 image source(s) failed: %s' % DEAD in str(exc.value)


@pytest.mark.parametrize('terms', [[], [u(1)]])
def test_a_dead_single_url_is_an_error(lookup, terms):
    run, warnings = lookup
    options = {} if terms else dict(name='base')
    with pytest.raises(AnsibleLookupError) as exc:
        run(*terms, url=DEAD, **options)
    assert str(exc.value).startswith('%s/images' % DEAD) and 'connection error' in str(exc.value)
    # the error itself, no warning before it
    assert warnings == []


def test_every_url_dead_is_an_error(lookup):
    run, warnings = lookup
    with pytest.raises(AnsibleLookupError) as exc:
        run(name='base', url=[DEAD, 'http://127.0.0.1:1'])
    assert str(exc.value).startswith('every image source failed: %s/images: ' % DEAD)
    assert '; http://127.0.0.1:1/images: ' in str(exc.value)
    assert len(warnings) == 2


def test_an_image_in_several_sources_is_taken_from_the_first(servers, lookup):
    run, dummy = lookup
    first = servers(manifest(1, description='from first'))
    second = servers(manifest(1, description='from second'), manifest(2, version='2.0', published='2023-01-01'))
    res = run(name='base', most_recent=True, url=[second.url, first.url])
    assert [(m['uuid'], m['description']) for m in res] == [(u(1), 'from second')]
    res = run(name='base', most_recent=True, url=[first.url, second.url])
    assert [(m['uuid'], m['description']) for m in res] == [(u(1), 'from first')]
    # the same image in both is one match, not several
    assert run(name='base', version='1.0', output='uuid', url=[first.url, second.url]) == [u(1)]
    with pytest.raises(AnsibleLookupError, match='2 images match'):
        run(name='base', url=[first.url, second.url])


def test_equal_published_at_the_first_found_wins(servers, lookup):
    run, dummy = lookup
    first = servers(manifest(5, published='2024-01-01'))
    second = servers(manifest(1, published='2024-01-01'))
    assert run(name='base', most_recent=True, output='uuid', url=[first.url, second.url]) == [u(5)]
    assert run(name='base', most_recent=True, output='uuid', url=[second.url, first.url]) == [u(1)]


# ------------------------------------------------------------------ channels

def test_channel(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1, version='1.0'), manifest(2, version='2.0', published='2024-02-01'),
                  channels='dev*,staging,release', image_channels={1: ['dev', 'release'], 2: ['staging']})
    # the default channel (dev) only
    assert run(name='base', output='uuid', url=srv.url) == [u(1)]
    assert run(name='base', channel='staging', output='uuid', url=srv.url) == [u(2)]
    assert run(name='base', channel='release', output='uuid', url=srv.url) == [u(1)]
    assert run(name='base', channel='*', most_recent=True, output='uuid', url=srv.url) == [u(2)]
    # a ?channel= in the URL, and the option over it
    assert run(name='base', output='uuid', url=srv.url + '?channel=staging') == [u(2)]
    assert run(name='base', channel='dev', output='uuid', url=srv.url + '?channel=staging') == [u(1)]
    with pytest.raises(AnsibleLookupError, match='no image matches name=base, version=2.0, state=active, channel=release'):
        run(name='base', version='2.0', channel='release', url=srv.url)
    # GetImage in a channel
    assert run(u(2), channel='staging', output='uuid', url=srv.url) == [u(2)]
    with pytest.raises(AnsibleLookupError, match='an active image "%s" was not found' % u(2)):
        run(u(2), url=srv.url)
    # an unknown channel is the server's error
    with pytest.raises(AnsibleLookupError, match='unknown channel: nope'):
        run(name='base', channel='nope', url=srv.url)
    assert [dict(q).get('channel') for q in queries(srv)][:4] == [None, 'staging', 'release', '*']


# ------------------------------------------------------------------ terms (GetImage)

def test_terms_are_fetched_one_result_each_in_order(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1, name='a'), manifest(2, name='b'), manifest(3, name='c'))
    res = run(u(3), u(1), url=srv.url)
    assert [(m['uuid'], m['name']) for m in res] == [(u(3), 'c'), (u(1), 'a')]
    assert run(u(2), u(2), output='uuid', url=srv.url) == [u(2), u(2)]
    # GetImage, no search
    assert queries(srv) == []
    assert len(srv.requests('^/images/%s$' % u(3))) == 1
    # a list as a term: its uuids (query('...', uuid_list))
    assert run([u(2), u(3)], u(1), output='uuid', url=srv.url) == [u(2), u(3), u(1)]


def test_unknown_uuid_is_an_error(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1))
    with pytest.raises(AnsibleLookupError) as exc:
        run(u(1), u(9), url=srv.url)
    assert str(exc.value).startswith('an active image "%s" was not found in image sources' % u(9))
    with pytest.raises(AnsibleLookupError, match='image "%s" was not found in the image sources' % u(9)):
        run(u(9), state='all', url=srv.url)


def test_a_term_that_is_not_a_uuid(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1))
    with pytest.raises(AnsibleLookupError, match='term "base" is not an image uuid'):
        run('base', url=srv.url)
    # IMGAPI uuids are lower-case
    with pytest.raises(AnsibleLookupError, match='term "%s" is not an image uuid' % u(0xabc).upper()):
        run(u(0xabc).upper(), url=srv.url)
    with pytest.raises(AnsibleLookupError, match='term "7" is not an image uuid'):
        run(7, url=srv.url)
    assert srv.requests() == []


def test_terms_and_search_options_do_not_mix(servers, lookup):
    run, dummy = lookup
    srv = servers(manifest(1))
    with pytest.raises(AnsibleLookupError, match=r'image uuids \(terms\) and search options \(name, most_recent\) '
                                                 'are mutually exclusive'):
        run(u(1), name='base', most_recent=True, url=srv.url)


def test_terms_and_state(servers, lookup):
    run, warnings = lookup
    srv = servers(manifest(1), manifest(2, state='disabled'))
    with pytest.raises(AnsibleLookupError, match='an active image "%s" was not found' % u(2)):
        run(u(2), url=srv.url)
    assert run(u(2), state='all', output='uuid', url=srv.url) == [u(2)]
    assert run(u(2), state='disabled', output='uuid', url=srv.url) == [u(2)]
    with pytest.raises(AnsibleLookupError, match='image "%s" is active, not disabled' % u(1)):
        run(u(1), state='disabled', url=srv.url)
    # a dead source before the live one: warned about, the image still found
    assert run(u(1), output='uuid', url=[DEAD, srv.url]) == [u(1)]
    assert len(warnings) == 1 and warnings[0].startswith('image source %s failed: ' % DEAD)


# ------------------------------------------------------------------ options

@pytest.mark.parametrize('options, message', [
    (dict(url=[]), 'url must name at least one image source'),
    (dict(url=['http://127.0.0.1:9'], timeout=0), 'timeout must be above 0'),
    (dict(url=['http://127.0.0.1:9'], retries=-1), 'retries must be 0 or more'),
])
def test_bad_options(lookup, options, message):
    run, dummy = lookup
    with pytest.raises(AnsibleLookupError, match=message):
        run(name='base', **options)


def test_url_is_required():
    with pytest.raises(AnsibleError, match='url'):
        lookup_loader.get('smartos.imgadm.imgapi').run([], variables={}, name='base')


# ------------------------------------------------------------------ lookup() and query() in a template

def test_lookup_and_query_in_templates(servers):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    srv = servers(manifest(1, version='1.0'), manifest(2, version='2.0', published='2024-02-01'))
    templar = Templar(loader=DataLoader(), variables={'url': srv.url, 'a': u(1), 'b': u(2)})

    def render(expr):
        return templar.template(trust_as_template('{{ %s }}' % expr))

    # lookup() of one result is that result; query() is always the list
    m = render("lookup('smartos.imgadm.imgapi', name='base', most_recent=true, url=url)")
    assert isinstance(m, dict) and m['uuid'] == u(2)
    assert render("query('smartos.imgadm.imgapi', name='base', most_recent=true, url=url) | map(attribute='version') | list") == ['2.0']
    assert render("lookup('smartos.imgadm.imgapi', name='base', version='1.0', output='uuid', url=url)") == u(1)
    assert render("query('smartos.imgadm.imgapi', name='base', version='1.0', output='uuid', url=url)") == [u(1)]
    # lookup() joins several strings with commas, as Ansible does for every lookup
    assert render("lookup('smartos.imgadm.imgapi', b, a, output='uuid', url=url)") == '%s,%s' % (u(2), u(1))
    assert render("query('smartos.imgadm.imgapi', b, a, output='uuid', url=url)") == [u(2), u(1)]
    assert [x['version'] for x in render("query('smartos.imgadm.imgapi', a, b, url=url)")] == ['1.0', '2.0']
    assert render("query('smartos.imgadm.imgapi', [b, a], output='uuid', url=url)") == [u(2), u(1)]
