# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_image_sources.py against the project's own IMGAPI server.

``tests/world/imgapi_server.py`` (the test world's server, with the real
ListImages/GetImage filters and states) runs in this process on 127.0.0.1;
a dead source is a port nobody listens on. A failing source is never
silent: ``source_errors`` and a warning, or the error with ``strict_sources``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys

import pytest

pytest.importorskip('requests')

from ansible_collections.smartos.imgadm.plugins.module_utils._common import Result  # noqa: E402
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (  # noqa: E402
    ActiveImageNotFoundError,
    ImgapiConnectionError,
    ImgapiNotFoundError,
    NoSourcesError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._image_sources import ImageSources  # noqa: E402

WORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, 'world')
if WORLD not in sys.path:
    sys.path.insert(0, WORLD)

import imgapi_server  # noqa: E402  pylint: disable=wrong-import-position

DEAD = 'http://127.0.0.1:1'
OWNER = '00000000-0000-0000-0000-000000000000'


def u(n):
    return '%08x-0000-4000-8000-%012x' % (n, n)


def manifest(n, name='base', version='1.0', published='2024-01-01', state='active', origin=None):
    m = {
        'v': 2, 'uuid': u(n), 'owner': OWNER, 'name': name, 'version': version, 'state': state,
        'disabled': state == 'disabled', 'public': True, 'published_at': '%sT00:00:00.000Z' % published,
        'type': 'zone-dataset', 'os': 'smartos', 'files': [],
    }
    if origin:
        m['origin'] = u(origin)
    return m


@pytest.fixture
def servers(tmp_path):
    """``start(*manifests)`` -> URL of a running server holding them; all stopped at teardown."""
    running = []

    def start(*manifests):
        data_dir = str(tmp_path / ('srv%d' % len(running)))
        for m in manifests:
            imgapi_server.add_image_to_data_dir(data_dir, m)
        srv = imgapi_server.start_server(data_dir)
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop()


def sources_for(tmp_path, urls, **more):
    params = dict(sources=urls, imgadm_dir=str(tmp_path / 'db'), channel=None, validate_certs=True, timeout=5.0, retries=0,
                  strict_sources=False)
    params.update(more)
    result = Result(None)
    return ImageSources(params, result), result


# ------------------------------------------------------------------ find

def test_find_skips_a_dead_source_and_says_so(tmp_path, servers):
    live = servers(manifest(1))
    srcs, result = sources_for(tmp_path, [DEAD, live.url])
    m, source = srcs.find(u(1))
    assert m['uuid'] == u(1) and m['name'] == 'base'
    assert source.url == live.url
    errors = result.data['source_errors']
    assert [(e['source'], e['error_code']) for e in errors] == [(DEAD, 'ClientError')]
    assert errors[0]['msg']
    assert len(result.warnings) == 1 and result.warnings[0].startswith('image source %s failed: ' % DEAD)
    assert len(live.requests('/images/' + u(1))) == 1


def test_find_first_source_that_has_it(tmp_path, servers):
    first, second = servers(manifest(1)), servers(manifest(1, name='other'), manifest(2))
    srcs, result = sources_for(tmp_path, [first.url, second.url])
    m, source = srcs.find(u(1))
    assert (m['name'], source.url) == ('base', first.url)
    assert second.requests('/images/') == []  # not asked once the first had it
    m, source = srcs.find(u(2))
    assert source.url == second.url
    assert 'source_errors' not in result.data and result.warnings == []


def test_find_an_inactive_image_counts_only_without_ensure_active(tmp_path, servers):
    first = servers(manifest(1, state='disabled'))
    second = servers(manifest(1, name='active-one'))
    srcs, dummy = sources_for(tmp_path, [first.url, second.url])
    m, source = srcs.find(u(1))
    assert (m['name'], source.url) == ('active-one', second.url)
    m, source = srcs.find(u(1), ensure_active=False)
    assert (m['state'], source.url) == ('disabled', first.url)

    srcs, dummy = sources_for(tmp_path, [first.url])
    with pytest.raises(ActiveImageNotFoundError) as exc:
        srcs.find(u(1))
    assert str(exc.value) == 'an active image "%s" was not found in image sources' % u(1)


def test_find_nowhere(tmp_path, servers):
    live = servers(manifest(1))
    srcs, result = sources_for(tmp_path, [live.url])
    with pytest.raises(ActiveImageNotFoundError) as exc:
        srcs.find(u(9))
    assert exc.value.code == 'ActiveImageNotFound' and exc.value.details == {'uuid': u(9)}
    assert srcs.find(u(9), ensure_active=False) == (None, None)
    assert 'source_errors' not in result.data


@pytest.mark.parametrize('ensure_active', [True, False])
def test_find_with_every_source_dead_is_the_source_error(tmp_path, servers, ensure_active):
    live = servers(manifest(1))
    srcs, result = sources_for(tmp_path, [DEAD, live.url])
    # the image is nowhere: the failure of the dead source is the answer, not "not found"
    with pytest.raises(ImgapiConnectionError):
        srcs.find(u(9), ensure_active=ensure_active)
    assert [e['source'] for e in result.data['source_errors']] == [DEAD]


def test_strict_sources_fails_at_the_first_failing_source(tmp_path, servers):
    live = servers(manifest(1))
    srcs, result = sources_for(tmp_path, [DEAD, live.url], strict_sources=True)
    with pytest.raises(ImgapiConnectionError):
        srcs.find(u(1))
    assert live.requests('/images/') == []
    assert 'source_errors' not in result.data and result.warnings == []
    with pytest.raises(ImgapiConnectionError):
        srcs.newest('base')


# ------------------------------------------------------------------ newest

def test_newest_by_published_at_across_sources(tmp_path, servers):
    a = servers(manifest(1, version='1.0', published='2024-01-01'), manifest(3, version='3.0', published='2024-02-01'),
                manifest(5, name='other', published='2025-01-01'))
    b = servers(manifest(2, version='2.0', published='2024-03-01'),
                manifest(4, version='4.0', published='2025-06-01', state='disabled'))
    srcs, result = sources_for(tmp_path, [a.url, b.url])
    m, source = srcs.newest('base')
    # the newest published, not the highest version nor the first source; the disabled one does not count
    assert (m['uuid'], source.url) == (u(2), b.url)
    assert result.data['selected'] == dict(
        uuid=u(2), name='base', version='2.0', source=b.url,
        reason='newest published_at (2024-03-01T00:00:00.000Z) of 3 active image(s) named "base" in the sources')
    # the filters went to the servers
    for srv in (a, b):
        listed = srv.requests(r'^/images\?')
        assert listed and all('name=base' in r['path'] and 'state=active' in r['path'] for r in listed), listed


def test_newest_with_version(tmp_path, servers):
    a = servers(manifest(1, version='1.0', published='2024-01-01'), manifest(2, version='1.0', published='2024-05-01'),
                manifest(3, version='2.0', published='2025-01-01'))
    srcs, result = sources_for(tmp_path, [a.url])
    m, dummy = srcs.newest('base', '1.0')
    assert m['uuid'] == u(2)
    assert result.data['selected']['reason'] == ('newest published_at (2024-05-01T00:00:00.000Z) of 2 active image(s) '
                                                 'named "base" version "1.0" in the sources')
    with pytest.raises(ActiveImageNotFoundError) as exc:
        srcs.newest('base', '9')
    assert str(exc.value) == 'no active image "base@9" was found in image sources'
    assert exc.value.details == {'name': 'base', 'version': '9'}


def test_newest_with_a_dead_source(tmp_path, servers):
    a = servers(manifest(1))
    srcs, result = sources_for(tmp_path, [DEAD, a.url])
    m, source = srcs.newest('base')
    assert source.url == a.url
    assert result.data['selected']['reason'].endswith(' in the sources that answered (1 failed, see source_errors)')
    assert [e['source'] for e in result.data['source_errors']] == [DEAD]
    assert len(result.warnings) == 1

    # nothing found, and a source failed: the failure is the answer
    srcs, result = sources_for(tmp_path, [DEAD, a.url])
    with pytest.raises(ImgapiConnectionError):
        srcs.newest('nope')
    assert 'selected' not in result.data


# ------------------------------------------------------------------ ancestry

def test_ancestry(tmp_path, servers):
    a = servers(manifest(1), manifest(2, origin=1, state='disabled'), manifest(3, origin=2))
    srcs, dummy = sources_for(tmp_path, [a.url])
    top, source = srcs.find(u(3))
    assert [m['uuid'] for m in srcs.ancestry(top, source)] == [u(3), u(2), u(1)]  # origins may be inactive


def test_ancestry_missing_origin(tmp_path, servers):
    a = servers(manifest(3, origin=2))
    srcs, dummy = sources_for(tmp_path, [a.url])
    top, source = srcs.find(u(3))
    with pytest.raises(ImgapiNotFoundError) as exc:
        srcs.ancestry(top, source)
    assert str(exc.value) == 'origin image %s of image %s was not found in the source %s' % (u(2), u(3), a.url)


# ------------------------------------------------------------------ which sources

def write_conf(tmp_path, sources):
    (tmp_path / 'db').mkdir(exist_ok=True)
    (tmp_path / 'db' / 'imgadm.conf').write_text(json.dumps({'sources': sources}))


@pytest.mark.parametrize('conf', [
    [],
    [{'url': 'https://docker.io', 'type': 'docker'}],  # docker sources are not image sources here
])
def test_no_sources(tmp_path, conf):
    write_conf(tmp_path, conf)
    srcs, dummy = sources_for(tmp_path, None)
    with pytest.raises(NoSourcesError) as exc:
        srcs.find(u(1))
    assert exc.value.code == 'NoSources'
    with pytest.raises(NoSourcesError):
        srcs.newest('base')


def test_sources_option_wins_over_imgadm_conf(tmp_path, servers):
    conf_server, option_server = servers(manifest(1, name='from-conf')), servers(manifest(1, name='from-option'))
    write_conf(tmp_path, [{'url': conf_server.url, 'type': 'imgapi'}, {'url': conf_server.url, 'type': 'imgapi'}])
    srcs, dummy = sources_for(tmp_path, None)
    assert [s.url for s in srcs.list()] == [conf_server.url]  # duplicates dropped, as the reference does
    assert srcs.find(u(1))[0]['name'] == 'from-conf'
    srcs, dummy = sources_for(tmp_path, [option_server.url])
    assert srcs.find(u(1))[0]['name'] == 'from-option'
    assert conf_server.requests('/images/') and len(option_server.requests('/images/')) == 1


# ------------------------------------------------------------------ available (imgadm avail)

def test_available_lists_every_source_once_each_image_first_source_wins(tmp_path, servers):
    first = servers(manifest(1), manifest(2, name='two'))
    second = servers(manifest(1, name='renamed'), manifest(3, name='three'), manifest(4, state='disabled'))
    srcs, result = sources_for(tmp_path, [first.url, second.url])
    found = srcs.available()
    by_uuid = dict((i['manifest']['uuid'], i) for i in found)
    assert sorted(by_uuid) == [u(1), u(2), u(3)]  # the disabled one is not listed (ListImages default: active)
    assert (by_uuid[u(1)]['manifest']['name'], by_uuid[u(1)]['source']) == ('base', first.url)
    assert by_uuid[u(3)]['source'] == second.url
    assert [i['manifest']['uuid'] for i in found] == [u(1), u(2), u(3)]  # source order, then each source's order
    assert len(first.requests('/images')) == 1 and len(second.requests('/images')) == 1
    assert 'source_errors' not in result.data


def test_available_a_dead_source_does_not_hide_the_others(tmp_path, servers):
    live = servers(manifest(1), manifest(2))
    srcs, result = sources_for(tmp_path, [DEAD, live.url])
    found = srcs.available()
    assert [i['manifest']['uuid'] for i in found] == [u(1), u(2)]
    assert [e['source'] for e in result.data['source_errors']] == [DEAD]
    assert len(result.warnings) == 1


def test_available_strict_sources_fails(tmp_path, servers):
    live = servers(manifest(1))
    srcs, dummy = sources_for(tmp_path, [live.url, DEAD], strict_sources=True)
    with pytest.raises(ImgapiConnectionError):
        srcs.available()


def test_available_passes_filters_to_every_source(tmp_path, servers):
    first = servers(manifest(1, name='a'), manifest(2, name='b'))
    second = servers(manifest(3, name='b'))
    srcs, dummy = sources_for(tmp_path, [first.url, second.url])
    assert [i['manifest']['uuid'] for i in srcs.available(name='b')] == [u(2), u(3)]
