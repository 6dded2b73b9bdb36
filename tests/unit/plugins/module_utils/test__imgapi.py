# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the IMGAPI client against a real HTTP server on 127.0.0.1.

The server replays a script of (method, path) -> responses built from the
recorded IMGAPI bodies in fixtures/, and records every request it gets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

requests = pytest.importorskip('requests')

from ansible_collections.smartos.imgadm.plugins.module_utils import _imgapi as I  # noqa: E402
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (  # noqa: E402
    ImgapiConnectionError,
    ImgapiError,
    ImgapiNotFoundError,
    InvalidUUIDError,
    MissingLibraryError,
    SourcePingError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._sources import norm_url, split_channel  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, 'fixtures')
UUID = 'ec0dff6e-578b-48cf-a780-0ff6fc222093'
MISSING = '3c6b5cb8-6c3b-4a7a-9a8f-2f3b0e4c1d2e'
UUID4_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$')


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as f:
        return json.load(f)


def sample_images():
    """The v2 sample manifests, sorted like ListImages sorts (published_at ascending)."""
    names = sorted(n for n in os.listdir(os.path.join(FIXTURES, 'manifests')) if not n.startswith('dsapi-v1'))
    images = [fixture('manifests', n) for n in names]
    return sorted(images, key=lambda m: m['published_at'].replace('Z', '.000Z')[:23])


# ---- the scripted server

class R(object):
    """One scripted response."""

    def __init__(self, status=200, body=None, headers=None, delay=0.0, reset=False,
                 truncate_to=None, rst_after=False, chunked=False):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.delay = delay
        self.reset = reset
        self.truncate_to = truncate_to
        self.rst_after = rst_after
        self.chunked = chunked

    def payload(self):
        if self.body is None:
            return b'', None
        if isinstance(self.body, bytes):
            return self.body, 'application/octet-stream'
        if isinstance(self.body, str):
            return self.body.encode('utf-8'), 'text/html'
        return json.dumps(self.body, indent=2).encode('utf-8'), 'application/json'


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _read_body(self):
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            data = b''
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def _rst(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()
        self.close_connection = True

    def _handle(self):
        parts = urlsplit(self.path)
        body = self._read_body()
        self.server.recorded.append({
            'method': self.command,
            'path': parts.path,
            'query': parse_qsl(parts.query, keep_blank_values=True),
            'headers': dict((k.lower(), v) for k, v in self.headers.items()),
            'body': body,
            'time': time.monotonic(),
        })
        queue = self.server.script.get((self.command, parts.path))
        r = queue.pop(0) if queue else R(599, {'code': 'ScriptExhausted', 'message': '%s %s' % (self.command, self.path)})
        if r.delay:
            time.sleep(r.delay)
        if r.reset:
            self._rst()
            return
        data, ctype = r.payload()
        self.send_response(r.status)
        headers = {'Server': 'imgapi/4.13.1', 'x-request-id': self.headers.get('x-request-id', '')}
        if ctype:
            headers['Content-Type'] = ctype
        headers.update(r.headers)
        for key, value in headers.items():
            self.send_header(key, value)
        if r.chunked:
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            for i in range(0, len(data), 4096):
                piece = data[i:i + 4096]
                self.wfile.write(b'%x\r\n%s\r\n' % (len(piece), piece))
            self.wfile.write(b'0\r\n\r\n')
            return
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if r.truncate_to is None:
            if self.command != 'HEAD':
                self.wfile.write(data)
            return
        self.wfile.write(data[:r.truncate_to])
        self.wfile.flush()
        if r.rst_after:
            time.sleep(0.05)
            self._rst()
        else:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # clients that hang up early (timeouts, resets) are part of the tests
        pass


class FakeImgapi(object):
    def __init__(self):
        self.httpd = QuietServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.script = {}
        self.httpd.recorded = []
        self.url = 'http://127.0.0.1:%d' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.05})
        self.thread.daemon = True

    def add(self, method, path, *responses):
        self.httpd.script.setdefault((method, path), []).extend(responses)

    @property
    def requests(self):
        return self.httpd.recorded

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    srv = FakeImgapi()
    srv.start()
    yield srv
    srv.stop()


def client(srv, **kwargs):
    kwargs.setdefault('backoff', 0.01)
    kwargs.setdefault('timeout', 5)
    return I.ImgapiClient(kwargs.pop('url', srv.url), **kwargs)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- pure helpers

@pytest.mark.parametrize('url, expected', [
    ('images.smartos.org', 'http://images.smartos.org'),
    ('https://images.smartos.org/', 'https://images.smartos.org'),
    ('https://images.smartos.org:443', 'https://images.smartos.org'),
    ('http://example.com:80/', 'http://example.com'),
    ('http://example.com:443', 'http://example.com:443'),
    ('https://example.com:80', 'https://example.com:80'),
    ('HTTPS://Updates.TritonDataCenter.com/', 'https://updates.tritondatacenter.com'),
    ('example.com:9999/datasets/', 'http://example.com:9999/datasets'),
    ('http://example.com//', 'http://example.com/'),
    ('https://updates.tritondatacenter.com/?channel=experimental', 'https://updates.tritondatacenter.com?channel=experimental'),
    ('http://[::1]:80/', 'http://[::1]'),
    ('http://user:pw@host:80/x/', 'http://user:pw@host/x'),
])
def test_norm_url(url, expected):
    assert norm_url(url) == expected


@pytest.mark.parametrize('url', ['', '   ', None, 42])
def test_norm_url_rejects(url):
    with pytest.raises(UsageError):
        norm_url(url)


@pytest.mark.parametrize('url, expected', [
    ('https://updates.tritondatacenter.com?channel=experimental', ('https://updates.tritondatacenter.com', 'experimental')),
    ('https://u.example.com/x?a=1&channel=dev&b=2', ('https://u.example.com/x?a=1&b=2', 'dev')),
    ('https://u.example.com/x?channel=', ('https://u.example.com/x', None)),
    ('https://u.example.com/x', ('https://u.example.com/x', None)),
])
def test_split_channel(url, expected):
    assert split_channel(url) == expected


NOW = datetime.datetime(2026, 11, 26, 22, 10, 17, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize('value, expected', [
    ('5', 5.0),
    ('0.25', 0.25),
    ('-3', 0.0),
    ('Thu, 26 Nov 2026 22:10:27 GMT', 10.0),
    ('Thu, 26 Nov 2026 22:00:00 GMT', 0.0),
    ('soon', None),
    ('', None),
    (None, None),
])
def test_parse_retry_after(value, expected):
    assert I.parse_retry_after(value, now=NOW) == expected


def test_default_user_agent_format():
    assert re.match(r'^smartos\.imgadm/[0-9][^ ]* \(python/3\.[0-9]+\.[0-9]+[^;]*; requests/[0-9][^)]*\)$',
                    I.default_user_agent())


@pytest.mark.parametrize('module', [
    'ansible_collections.smartos.imgadm.plugins.modules.imgadm_source',
    'ansible_collections.smartos.imgadm.plugins.modules.imgadm_image',
])
def test_modules_load_without_importing_requests(module):
    # requests is imported when a client is first made, not when a module loads
    code = ('import sys, importlib; importlib.import_module(%r); '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in ("requests", "urllib3")))' % module)
    res = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                         check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == '[]'


def test_first_client_imports_requests(monkeypatch):
    monkeypatch.setattr(I, 'HAS_REQUESTS', None)
    monkeypatch.setattr(I, 'requests', None)
    monkeypatch.setattr(I, '_rexc', None)
    client = I.ImgapiClient('http://127.0.0.1:1')
    assert I.HAS_REQUESTS is True
    assert I.requests is not None and I._rexc is not None
    assert 'requests/' + I.requests.__version__ in client.session.headers['User-Agent']


def test_missing_requests_raises_missing_library(monkeypatch):
    monkeypatch.setattr(I, 'HAS_REQUESTS', False)
    with pytest.raises(MissingLibraryError) as exc:
        I.ImgapiClient('http://127.0.0.1:1')
    assert exc.value.library == 'requests'


@pytest.mark.parametrize('kwargs', [{'source_type': 'ftp'}, {'page_size': 0}, {'timeout': (1, 2, 3)}])
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(UsageError):
        I.ImgapiClient('http://127.0.0.1:1', **kwargs)


# ---- headers, session settings

def test_default_headers(server):
    server.add('GET', '/images/%s' % UUID, R(body=fixture('imgapi', 'image-foo-active.json')),
               R(body=fixture('imgapi', 'image-foo-active.json')))
    c = client(server)
    assert c.get_image(UUID) == fixture('imgapi', 'image-foo-active.json')
    c.get_image(UUID)
    first, second = server.requests
    for req in (first, second):
        assert req['headers']['accept-version'] == '~2'
        assert req['headers']['accept'] == 'application/json'
        assert req['headers']['user-agent'] == I.default_user_agent()
        assert 'content-type' not in req['headers']
        assert req['query'] == []
    assert UUID4_RE.match(first['headers']['x-request-id'])
    assert first['headers']['x-request-id'] == second['headers']['x-request-id'] == c.request_id


def test_explicit_user_agent_and_request_id(server):
    server.add('GET', '/ping', R(body=fixture('imgapi', 'ping.json')))
    c = client(server, user_agent='my-agent/1.0', request_id='req-123')
    assert c.ping() == fixture('imgapi', 'ping.json')
    assert server.requests[0]['headers']['user-agent'] == 'my-agent/1.0'
    assert server.requests[0]['headers']['x-request-id'] == 'req-123'


def test_request_ids_differ_between_clients(server):
    assert client(server).request_id != client(server).request_id


class RecordingSession(requests.Session):
    def __init__(self):
        super(RecordingSession, self).__init__()
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append(kwargs)
        return super(RecordingSession, self).send(request, **kwargs)


@pytest.mark.parametrize('insecure', [True, False])
def test_insecure_sets_verify(server, insecure):
    server.add('GET', '/ping', R(body=fixture('imgapi', 'ping.json')))
    session = RecordingSession()
    c = client(server, session=session, insecure=insecure, timeout=(3, 7))
    c.ping()
    assert c.session is session
    assert session.verify is (not insecure)
    sent = session.sent[0]
    if insecure:
        assert sent['verify'] is False
    else:
        # True, or the CA bundle path from REQUESTS_CA_BUNDLE
        assert sent['verify'] is True or isinstance(sent['verify'], str)
    assert sent['timeout'] == (3.0, 7.0)


# ---- ListImages paging

def test_list_images_three_pages_inclusive_marker(server):
    a, b, c_, d, e = sample_images()[:5]
    server.add('GET', '/images', R(body=[a, b, c_]), R(body=[c_, d, e]), R(body=[e]))
    c = client(server, page_size=3, channel='dev')
    images = c.list_images(state='all', type='zone-dataset')
    assert [i['uuid'] for i in images] == [x['uuid'] for x in (a, b, c_, d, e)]
    assert len(set(i['uuid'] for i in images)) == 5
    queries = [r['query'] for r in server.requests]
    assert queries == [
        [('state', 'all'), ('type', 'zone-dataset'), ('channel', 'dev')],
        [('state', 'all'), ('type', 'zone-dataset'), ('limit', '3'), ('marker', c_['uuid']), ('channel', 'dev')],
        [('state', 'all'), ('type', 'zone-dataset'), ('limit', '3'), ('marker', e['uuid']), ('channel', 'dev')],
    ]


def test_list_images_short_first_page_is_the_last(server):
    a, b = sample_images()[:2]
    server.add('GET', '/images', R(body=[a, b]))
    assert [i['uuid'] for i in client(server).list_images()] == [a['uuid'], b['uuid']]
    assert len(server.requests) == 1
    assert server.requests[0]['query'] == []


def test_list_images_default_page_size_is_1000(server):
    images = [dict(sample_images()[0], uuid='00000000-0000-4000-8000-%012d' % i) for i in range(1000)]
    server.add('GET', '/images', R(body=images), R(body=[images[-1]]))
    assert len(client(server).list_images()) == 1000
    assert ('limit', '1000') in server.requests[1]['query']
    assert ('marker', images[-1]['uuid']) in server.requests[1]['query']


def test_list_images_stops_when_marker_does_not_move(server):
    a, b, c_ = sample_images()[:3]
    # a server that answers the marker page with the marker as last row
    server.add('GET', '/images', R(body=[a, b, c_]), R(body=[a, b, c_]))
    images = client(server, page_size=3).list_images()
    assert len(server.requests) == 2
    assert [i['uuid'] for i in images] == [a['uuid'], b['uuid'], c_['uuid'], a['uuid'], b['uuid'], c_['uuid']]


def test_list_images_filters(server):
    server.add('GET', '/images', R(body=[]))
    client(server).list_images(public=True, tags={'role': 'os', 'group': 'x'}, billing_tag=['a', 'b'],
                               owner='00000000-0000-0000-0000-000000000000', name='~base', channel='*')
    assert server.requests[0]['query'] == [
        ('billing_tag', 'a'), ('billing_tag', 'b'), ('name', '~base'),
        ('owner', '00000000-0000-0000-0000-000000000000'), ('public', 'true'),
        ('tag.group', 'x'), ('tag.role', 'os'), ('channel', '*')]


def test_list_images_explicit_limit_is_one_page(server):
    a, b = sample_images()[:2]
    server.add('GET', '/images', R(body=[a, b]))
    assert len(client(server, page_size=2).list_images(limit=2)) == 2
    assert len(server.requests) == 1
    assert ('limit', '2') in server.requests[0]['query']


@pytest.mark.parametrize('filters', [{'public': 'yes'}, {'owner': 'NOT-A-UUID'}])
def test_list_images_bad_filters_are_not_sent(server, filters):
    with pytest.raises(UsageError):
        client(server).list_images(**filters)
    assert server.requests == []


def test_list_images_non_array(server):
    server.add('GET', '/images', R(body={'oops': 1}))
    with pytest.raises(ImgapiError) as exc:
        client(server).list_images()
    assert exc.value.code == 'InvalidContent'


# ---- channels

def test_channel_from_url_goes_on_every_request(server):
    server.add('GET', '/ping', R(body=fixture('imgapi', 'ping.json')))
    server.add('GET', '/images/%s' % UUID, R(body=fixture('imgapi', 'image-foo-active.json')))
    server.add('GET', '/images', R(body=[]))
    server.add('GET', '/images/%s/file' % UUID, R(body=b'data'))
    c = client(server, url=server.url + '/?channel=staging')
    assert c.url == server.url
    assert c.channel == 'staging'
    c.ping()
    c.get_image(UUID)
    c.list_images()
    with c.get_image_file(UUID) as f:
        assert b''.join(f.iter_chunks()) == b'data'
    assert [r['query'] for r in server.requests] == [[('channel', 'staging')]] * 4


def test_explicit_channel_wins_and_per_call_override(server):
    server.add('GET', '/images/%s' % UUID, R(body={}), R(body={}))
    c = client(server, url=server.url + '?channel=staging', channel='release')
    assert c.channel == 'release'
    c.get_image(UUID)
    c.get_image(UUID, channel='dev')
    assert server.requests[0]['query'] == [('channel', 'release')]
    assert server.requests[1]['query'] == [('channel', 'dev')]


# ---- retries

def test_retry_503_then_200_honours_retry_after(server):
    server.add('GET', '/images/%s' % UUID,
               R(503, fixture('imgapi', 'error-service-unavailable.json'), headers={'Retry-After': '0.4'}),
               R(body=fixture('imgapi', 'image-foo-active.json')))
    c = client(server, backoff=0.001)
    started = time.monotonic()
    assert c.get_image(UUID)['uuid'] == UUID
    first, second = server.requests
    gap = second['time'] - first['time']
    assert gap >= 0.38
    assert time.monotonic() - started < 3
    # the same request id on the retry
    assert first['headers']['x-request-id'] == second['headers']['x-request-id']


def test_retry_after_is_capped(server):
    server.add('GET', '/images/%s' % UUID, R(429, {'code': 'TooMany', 'message': 'slow down'}, headers={'Retry-After': '30'}),
               R(body={}))
    c = client(server, max_retry_after=0.05)
    started = time.monotonic()
    c.get_image(UUID)
    assert time.monotonic() - started < 2
    assert len(server.requests) == 2


def test_retry_uses_exponential_backoff_without_retry_after(server):
    server.add('GET', '/ping', R(502, 'bad gateway'), R(500, {'code': 'InternalError', 'message': 'x'}),
               R(body=fixture('imgapi', 'ping.json')))
    client(server, backoff=0.1).ping()
    times = [r['time'] for r in server.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.09
    assert times[2] - times[1] >= 0.19


def test_retries_exhausted_gives_server_error(server):
    server.add('GET', '/images/%s' % UUID, *[R(503, fixture('imgapi', 'error-service-unavailable.json'))] * 3)
    with pytest.raises(ImgapiError) as exc:
        client(server, retries=2).get_image(UUID)
    assert len(server.requests) == 3
    assert exc.value.status == 503
    assert exc.value.code == 'ServiceUnavailableError'
    assert not isinstance(exc.value, ImgapiConnectionError)


@pytest.mark.parametrize('status', [400, 401, 404, 409, 412, 422, 501])
def test_no_retry_on_client_errors(server, status):
    server.add('GET', '/images/%s' % UUID, R(status, {'code': 'Whatever', 'message': 'no'}), R(body={}))
    with pytest.raises(ImgapiError) as exc:
        client(server).get_image(UUID)
    assert len(server.requests) == 1
    assert exc.value.status == status


def test_retry_after_connection_reset(server):
    server.add('GET', '/images/%s' % UUID, R(reset=True), R(body=fixture('imgapi', 'image-foo-active.json')))
    assert client(server).get_image(UUID)['name'] == 'foo'
    assert len(server.requests) == 2


# ---- transport failures

def test_connection_reset_is_connection_error(server):
    server.add('GET', '/images/%s' % UUID, R(reset=True), R(reset=True))
    with pytest.raises(ImgapiConnectionError) as exc:
        client(server, retries=1).get_image(UUID)
    assert len(server.requests) == 2
    assert exc.value.code == 'ClientError'
    assert exc.value.status is None
    assert server.url in str(exc.value)


def test_truncated_json_body_is_connection_error(server):
    body = fixture('imgapi', 'image-foo-active.json')
    server.add('GET', '/images/%s' % UUID, R(body=body, truncate_to=50), R(body=body, truncate_to=50))
    with pytest.raises(ImgapiConnectionError):
        client(server, retries=1).get_image(UUID)
    assert len(server.requests) == 2


def test_read_timeout(server):
    server.add('GET', '/images/%s' % UUID, R(body={}, delay=1.5))
    started = time.monotonic()
    with pytest.raises(ImgapiConnectionError) as exc:
        client(server, timeout=(2, 0.3), retries=0).get_image(UUID)
    assert time.monotonic() - started < 1.2
    assert 'timeout' in str(exc.value)


def test_connection_refused():
    c = I.ImgapiClient('http://127.0.0.1:%d' % free_port(), retries=1, backoff=0.01, timeout=2)
    with pytest.raises(ImgapiConnectionError) as exc:
        c.get_image(UUID)
    assert exc.value.details['attempts'] == 2


# ---- error mapping

def test_error_body_mapping(server):
    path = '/images/%s' % UUID
    server.add('GET', path, R(422, fixture('imgapi', 'error-validation-failed.json'), headers={'x-request-id': 'abc'}))
    c = client(server)
    with pytest.raises(ImgapiError) as exc:
        c.get_image(UUID)
    err = exc.value
    assert err.code == 'ValidationFailed'
    assert err.status == 422
    assert err.url == server.url + path
    assert str(err).startswith(server.url + path + ': invalid image data: name, version')
    assert '    name: MissingParameter' in str(err)
    assert err.details['errors'] == fixture('imgapi', 'error-validation-failed.json')['errors']
    assert err.details['request_id'] == 'abc'
    assert err.body == fixture('imgapi', 'error-validation-failed.json')


def test_not_found_mapping(server):
    server.add('GET', '/images/%s' % MISSING, R(404, fixture('imgapi', 'error-resource-not-found.json')))
    with pytest.raises(ImgapiNotFoundError) as exc:
        client(server).get_image(MISSING)
    assert exc.value.code == 'ResourceNotFound'
    assert exc.value.status == 404
    assert str(exc.value) == '%s/images/%s: image %s not found' % (server.url, MISSING, MISSING)


def test_not_found_without_body(server):
    server.add('GET', '/images/%s' % MISSING, R(404))
    with pytest.raises(ImgapiNotFoundError) as exc:
        client(server).get_image(MISSING)
    assert exc.value.code == 'ResourceNotFound'
    assert 'HTTP 404' in str(exc.value)


def test_non_json_error_body(server):
    server.add('GET', '/images/%s' % UUID, R(502, '<html><body>502 Bad Gateway</body></html>'))
    with pytest.raises(ImgapiError) as exc:
        client(server, retries=0).get_image(UUID)
    assert exc.value.code == 'APIError'
    assert exc.value.status == 502
    assert 'HTTP 502' in str(exc.value)
    assert '502 Bad Gateway' in str(exc.value)
    assert exc.value.body is None


def test_non_json_success_body(server):
    server.add('GET', '/images/%s' % UUID, R(200, 'not json'))
    with pytest.raises(ImgapiError) as exc:
        client(server).get_image(UUID)
    assert exc.value.code == 'InvalidContent'


def test_invalid_uuid_sends_nothing(server):
    c = client(server)
    for call in (lambda: c.get_image(UUID.upper()), lambda: c.get_image_file('../etc'),
                 lambda: c.get_image_file(UUID + '\n'), lambda: c.list_images(owner='x')):
        with pytest.raises(InvalidUUIDError):
            call()
    assert server.requests == []


# ---- ping

def test_ping_ok(server):
    server.add('GET', '/ping', R(body=fixture('imgapi', 'ping.json')))
    assert client(server).ping()['imgapi'] is True
    assert server.requests[0]['path'] == '/ping'


@pytest.mark.parametrize('response', [
    R(body={'ping': 'pong'}),
    R(body={'ping': 'pong', 'imgapi': 'true'}),
    R(body='<html>hello</html>'),
    R(500, {'code': 'InternalError', 'message': 'boom'}),
    R(404),
])
def test_ping_failure(server, response):
    server.add('GET', '/ping', response)
    with pytest.raises(SourcePingError) as exc:
        client(server, retries=0).ping()
    assert exc.value.code == 'SourcePing'
    assert '"%s"' % server.url in str(exc.value)
    assert exc.value.details['url'] == server.url


def test_ping_connection_refused():
    url = 'http://127.0.0.1:%d' % free_port()
    with pytest.raises(SourcePingError) as exc:
        I.ImgapiClient(url, retries=0).ping()
    assert url in str(exc.value)


def test_dsapi_ping_needs_only_200(server):
    server.add('GET', '/ping', R(body='pong'))
    assert client(server, url=server.url + '/datasets/', source_type='dsapi').ping() == {}
    assert server.requests[0]['path'] == '/ping'


def test_dsapi_url_must_end_in_datasets(server):
    c = client(server, source_type='dsapi')
    with pytest.raises(UsageError) as exc:
        c.ping()
    assert '/datasets' in str(exc.value)
    assert server.requests == []


def test_docker_source_is_a_clear_error(server):
    c = client(server, source_type='docker')
    for call in (c.ping, lambda: c.get_image(UUID), c.list_images):
        with pytest.raises(UsageError) as exc:
            call()
        assert 'docker' in str(exc.value)
    assert server.requests == []


def test_dsapi_get_image_and_file(server):
    body = b'dsapi-bytes' * 100
    manifest = {'uuid': UUID, 'files': [{'url': server.url + '/files/x.zfs.bz2', 'size': len(body)}]}
    server.add('GET', '/datasets/%s' % UUID, R(body=manifest), R(body=manifest))
    server.add('GET', '/files/x.zfs.bz2', R(body=body), R(body=body))
    # DSAPI has no channels: a channel is not sent
    c = client(server, url=server.url + '/datasets', source_type='dsapi', channel='ignored')
    assert c.get_image(UUID) == manifest
    with c.get_image_file(UUID) as f:
        assert b''.join(f.iter_chunks(100)) == body
    with c.get_image_file(UUID, manifest=manifest) as f:
        assert f.content_length == len(body)
        assert b''.join(f.iter_chunks()) == body
    assert [r['path'] for r in server.requests] == ['/datasets/%s' % UUID, '/datasets/%s' % UUID,
                                                    '/files/x.zfs.bz2', '/files/x.zfs.bz2']
    assert all(r['query'] == [] for r in server.requests)


# ---- streamed download

def test_streaming_download_in_chunks(server):
    body = os.urandom(300 * 1024 + 17)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode('ascii')
    sha1 = hashlib.sha1(body).hexdigest()
    server.add('GET', '/images/%s/file' % UUID, R(body=body, headers={'Content-MD5': md5, 'Etag': sha1}))
    c = client(server)
    with c.get_image_file(UUID) as f:
        assert f.content_length == len(body)
        assert f.content_md5 == md5
        assert f.etag == sha1
        assert f.headers['Content-Type'] == 'application/octet-stream'
        chunks = list(f.iter_chunks(size=64 * 1024))
    assert b''.join(chunks) == body
    assert len(chunks) >= 5
    assert max(len(ch) for ch in chunks) <= 64 * 1024
    assert f.bytes_read == len(body)
    req = server.requests[0]
    assert req['headers']['accept-encoding'] == 'identity'
    assert req['query'] == []


def test_streaming_download_index(server):
    server.add('GET', '/images/%s/file' % UUID, R(body=b'x'))
    with client(server).get_image_file(UUID, index=1) as f:
        assert list(f.iter_chunks()) == [b'x']
    assert server.requests[0]['query'] == [('index', '1')]


def test_streaming_download_chunked_without_length(server):
    body = os.urandom(20000)
    server.add('GET', '/images/%s/file' % UUID, R(body=body, chunked=True))
    with client(server).get_image_file(UUID) as f:
        assert f.content_length is None
        assert b''.join(f.iter_chunks(size=4096)) == body


def test_streaming_truncated_body(server):
    body = os.urandom(100000)
    server.add('GET', '/images/%s/file' % UUID, R(body=body, truncate_to=40000))
    with client(server).get_image_file(UUID) as f:
        got = []
        with pytest.raises(ImgapiConnectionError) as exc:
            for chunk in f.iter_chunks(size=8192):
                got.append(chunk)
    assert 0 < sum(len(c) for c in got) <= 40000
    assert exc.value.details['content_length'] == 100000


def test_streaming_reset_mid_body(server):
    body = os.urandom(200000)
    server.add('GET', '/images/%s/file' % UUID, R(body=body, truncate_to=30000, rst_after=True))
    with client(server).get_image_file(UUID) as f:
        with pytest.raises(ImgapiConnectionError):
            for dummy in f.iter_chunks(size=8192):
                pass
    assert f.bytes_read < len(body)


def test_streaming_not_found_and_retry(server):
    server.add('GET', '/images/%s/file' % UUID, R(503, 'busy'), R(body=b'abc'))
    server.add('GET', '/images/%s/file' % MISSING,
               R(404, {'code': 'ResourceNotFound', 'message': 'image "%s" has no file' % MISSING}))
    c = client(server)
    with c.get_image_file(UUID) as f:
        assert b''.join(f.iter_chunks()) == b'abc'
    with pytest.raises(ImgapiNotFoundError) as exc:
        c.get_image_file(MISSING)
    assert 'has no file' in str(exc.value)
    assert len(server.requests) == 3


class _ShortRaw(object):
    """A raw stream that ends early without an error (urllib3 1.x does not enforce Content-Length)."""

    def stream(self, size, decode_content=False):
        assert decode_content is False
        yield b'12345'


class _ShortResponse(object):
    status_code = 200
    headers = requests.structures.CaseInsensitiveDict({'Content-Length': '10'})
    raw = _ShortRaw()
    closed = False

    def close(self):
        self.closed = True


def test_image_file_checks_length_itself():
    resp = _ShortResponse()
    with I.ImageFile(resp, 'http://x/images/%s/file' % UUID) as f:
        with pytest.raises(ImgapiConnectionError) as exc:
            list(f.iter_chunks())
    assert 'expected 10 bytes' in str(exc.value)
    assert f.bytes_read == 5
    assert resp.closed
