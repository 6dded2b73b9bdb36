# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""A client for the Triton/SmartOS Images API (IMGAPI), and minimal DSAPI.

Built on ``requests``. What it does the way SmartOS ``imgadm`` and
``sdc-clients`` do: URL normalisation, ``?channel=`` handling,
``Accept-Version: ~2``, the ListImages paging loop with an inclusive marker,
the ping check and the ``<url>: <message>`` error text. What it adds:
retries with exponential backoff and ``Retry-After`` for idempotent
requests, (connect, read) timeouts, and strict detection of truncated or
reset downloads.

Writes (AdminImportImage, CreateImage, AddImageFile, ActivateImage,
DeleteImage) go through the same plumbing. An ``auth`` hook (see
``_http_signature``) sets the credentials on every request to the source,
computed per request so that each attempt has a fresh ``Date``. Requests
that are not idempotent (POST, PUT) are never retried.

Errors raised: ImgapiError (server error body, ``code`` = the body's code),
ImgapiNotFoundError (404), ImgapiUnauthorizedError (401),
ImgapiConnectionError (no answer, reset, timeout, truncated body),
UploadError (the server recorded another file than the one sent),
SourcePingError, InvalidUUIDError, UsageError and MissingLibraryError
(``requests`` not installed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import email.utils
import json
import math
import os
import platform
import re
import time
import traceback
import uuid as _uuid_mod
import warnings

from urllib.parse import parse_qsl, urlsplit, urlunsplit

# ``requests`` (and urllib3) are imported on first use, not when the module
# loads: they are the largest part of a module's start-up (about 60 ms on a
# host, a second under emulation), and most runs that find nothing to change
# never talk HTTP.
requests = None
_rexc = None
_Urllib3HTTPError = None
_InsecureRequestWarning = None
HAS_REQUESTS = None  # None until the first try
REQUESTS_IMPORT_ERROR = None


def _load_requests():
    """Import ``requests`` once; True when it is available."""
    global requests, _rexc, _Urllib3HTTPError, _InsecureRequestWarning, HAS_REQUESTS, REQUESTS_IMPORT_ERROR
    if HAS_REQUESTS is None:
        try:
            import requests as _requests
            from requests import exceptions as _exceptions
        except ImportError:
            REQUESTS_IMPORT_ERROR = traceback.format_exc()
            HAS_REQUESTS = False
            return False
        try:
            from urllib3.exceptions import HTTPError, InsecureRequestWarning
            _Urllib3HTTPError, _InsecureRequestWarning = HTTPError, InsecureRequestWarning
        except ImportError:
            pass
        requests, _rexc = _requests, _exceptions
        HAS_REQUESTS = True
    return HAS_REQUESTS


from http.client import HTTPException as _HTTPException

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import (
    COLLECTION_NAME,
    COLLECTION_VERSION,
    SOURCE_TYPES,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    ImgapiConnectionError,
    ImgapiError,
    ImgapiNotFoundError,
    ImgapiUnauthorizedError,
    MissingLibraryError,
    SourcePingError,
    UploadError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import is_uuid, validate_uuid
from ansible_collections.smartos.imgadm.plugins.module_utils._sources import norm_url, split_channel

ACCEPT_VERSION = '~2'
DEFAULT_PAGE_SIZE = 1000
DEFAULT_TIMEOUT = 30
MAX_RETRY_AFTER = 60.0
IDEMPOTENT_METHODS = frozenset(['GET', 'HEAD', 'DELETE', 'OPTIONS'])
# 501 NotAvailable and 505 are not transient
_NO_RETRY_5XX = frozenset([501, 505])

_DSAPI_RE = re.compile(r'/datasets/?$')

COMPRESSIONS = ('gzip', 'bzip2', 'xz', 'none')
# server-managed fields that are never sent with AdminImportImage (the server ignores them)
IMPORT_DROP_FIELDS = ('state', 'files', 'channels', 'icon', 'error')
# ... and with CreateImage, which rejects them (422) or sets them itself
CREATE_DROP_FIELDS = IMPORT_DROP_FIELDS + ('uuid', 'published_at', 'urn')
_JSON_HEADERS = {'Content-Type': 'application/json'}


# ---- URLs

def default_user_agent():
    """``smartos.imgadm/<ver> (python/<ver>; requests/<ver>)``."""
    _load_requests()
    req_ver = getattr(requests, '__version__', 'none') if requests is not None else 'none'
    return '%s/%s (python/%s; requests/%s)' % (COLLECTION_NAME, COLLECTION_VERSION, platform.python_version(), req_ver)


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if math.isnan(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _timeout_tuple(timeout):
    if isinstance(timeout, (tuple, list)):
        if len(timeout) != 2:
            raise UsageError('timeout must be a number or a (connect, read) pair', field='timeout')
        return (float(timeout[0]), float(timeout[1]))
    if timeout is None:
        return None
    return (float(timeout), float(timeout))


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bool_param(value, name):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value in ('true', 'false'):
        return value
    raise UsageError('%s must be true or false, not %r' % (name, value), field=name)


def _transport_errors():
    """Exception classes that mean "the connection failed" (no or partial answer)."""
    errs = [OSError]
    _load_requests()
    if _rexc is not None:
        errs.extend([_rexc.ConnectionError, _rexc.Timeout, _rexc.ChunkedEncodingError, _rexc.ContentDecodingError])
    if _Urllib3HTTPError is not None:
        errs.append(_Urllib3HTTPError)
    errs.append(_HTTPException)
    return tuple(errs)


# ---- streamed file

class ImageFile(object):
    """A streamed image file response. Use as a context manager.

    ``headers``, ``status``, ``content_length`` (int or None), ``content_md5``
    (base64 string or None), ``etag``, ``bytes_read``; ``iter_chunks(size)``
    yields the raw bytes (no content decoding) and raises
    ImgapiConnectionError on a reset or a body shorter than Content-Length.
    """

    def __init__(self, response, url):
        self._response = response
        self.url = url
        self.status = response.status_code
        self.headers = response.headers
        self.content_length = _int_or_none(response.headers.get('Content-Length'))
        self.content_md5 = response.headers.get('Content-MD5')
        self.etag = response.headers.get('Etag')
        self.bytes_read = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, tb):
        self.close()
        return False

    def close(self):
        self._response.close()

    def iter_chunks(self, size=1 << 20):
        try:
            for chunk in self._response.raw.stream(size, decode_content=False):
                if chunk:
                    self.bytes_read += len(chunk)
                    yield chunk
        except _transport_errors() as exc:
            raise ImgapiConnectionError(
                '%s: connection lost after %d bytes of the image file: %s' % (self.url, self.bytes_read, exc),
                url=self.url, bytes_read=self.bytes_read, content_length=self.content_length)
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise ImgapiConnectionError(
                '%s: truncated image file: expected %d bytes (Content-Length), got %d'
                % (self.url, self.content_length, self.bytes_read),
                url=self.url, bytes_read=self.bytes_read, content_length=self.content_length)


# ---- client

class ImgapiClient(object):
    """IMGAPI (or DSAPI) client on a ``requests.Session``.

    ``url`` is normalised (``norm_url``); a ``?channel=X`` in it becomes the
    default channel unless ``channel`` is given. ``timeout`` is a number or a
    (connect, read) pair. Idempotent requests (GET, HEAD, DELETE) are retried
    ``retries`` times on connection errors, timeouts, 408, 429 and 5xx, with
    ``backoff * 2**n`` seconds between tries, or the server's ``Retry-After``
    (capped at ``max_retry_after``).

    ``auth`` is None or a callable that takes a prepared request, sets its
    credential headers and returns it (``_http_signature.SignatureAuth``,
    ``BasicAuth``); it is called for every request to the source (not for a
    DSAPI file on another host), each attempt anew.
    """

    def __init__(self, url, channel=None, insecure=False, timeout=DEFAULT_TIMEOUT, retries=3, backoff=0.5,
                 user_agent=None, request_id=None, session=None, source_type='imgapi',
                 page_size=DEFAULT_PAGE_SIZE, max_retry_after=MAX_RETRY_AFTER, auth=None):
        if not _load_requests():
            raise MissingLibraryError('requests', exception=REQUESTS_IMPORT_ERROR)
        if source_type not in SOURCE_TYPES:
            raise UsageError('invalid source type %r, must be one of: %s' % (source_type, ', '.join(SOURCE_TYPES)),
                             field='type')
        base, url_channel = split_channel(norm_url(url))
        parts = urlsplit(base)
        # any other query parameters of the source URL go on every request
        self._url_params = parse_qsl(parts.query, keep_blank_values=True)
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, '', ''))
        self.channel = channel if channel else url_channel
        self.source_type = source_type
        self.insecure = bool(insecure)
        self.verify = not self.insecure
        self.timeout = _timeout_tuple(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_retry_after = float(max_retry_after)
        self.page_size = int(page_size)
        if self.page_size < 1:
            raise UsageError('page_size must be at least 1', field='page_size')
        self.user_agent = user_agent or default_user_agent()
        self.request_id = request_id or str(_uuid_mod.uuid4())
        self.auth = auth
        self._sleep = time.sleep

        self._config_error = None
        self._base = self.url
        if source_type == 'dsapi':
            if not _DSAPI_RE.search(self.url):
                self._config_error = UsageError(
                    '"dsapi" source URL does not end with "/datasets": "%s"' % self.url, field='url')
            else:
                self._base = _DSAPI_RE.sub('', self.url)
        elif source_type == 'docker':
            self._config_error = UsageError(
                'docker image sources are not supported by the IMGAPI client (source "%s")' % self.url, field='type')

        self.session = session if session is not None else requests.Session()
        self.session.verify = self.verify
        self.session.headers.update({
            'Accept-Version': ACCEPT_VERSION,
            'Accept': 'application/json',
            'User-Agent': self.user_agent,
            'x-request-id': self.request_id,
        })

    def __repr__(self):
        return '<ImgapiClient %s %s%s>' % (self.source_type, self.url,
                                           ' channel=%s' % self.channel if self.channel else '')

    def close(self):
        self.session.close()

    # -- plumbing

    def _check_usable(self):
        if self._config_error is not None:
            raise self._config_error

    def _retry_delay(self, attempt, response=None):
        delay = None
        if response is not None:
            delay = parse_retry_after(response.headers.get('Retry-After'))
        if delay is None:
            delay = self.backoff * (2 ** attempt)
        return min(delay, self.max_retry_after)

    @staticmethod
    def _retryable_status(status):
        return status in (408, 429) or (500 <= status <= 599 and status not in _NO_RETRY_5XX)

    def _build_params(self, params, channel):
        out = list(self._url_params)
        if params:
            items = params.items() if isinstance(params, dict) else params
            for key, value in items:
                if value is None:
                    continue
                if isinstance(value, bool):
                    value = 'true' if value else 'false'
                out.append((key, str(value)))
        channel = channel or self.channel
        if channel and self.source_type != 'dsapi':
            out.append(('channel', channel))
        return out

    def _send(self, method, url, params, headers, stream, data=None):
        req = requests.Request(method, url, params=params, headers=headers or {}, data=data)
        prep = self.session.prepare_request(req)
        if self.auth is not None and (url == self._base or url.startswith(self._base + '/')):
            # per request (and per attempt): a signature covers a fresh Date
            prep = self.auth(prep) or prep
        # verify=False stays False; True may become the REQUESTS_CA_BUNDLE path
        settings = self.session.merge_environment_settings(prep.url, {}, stream, self.verify, None)
        with warnings.catch_warnings():
            if self.insecure and _InsecureRequestWarning is not None:
                warnings.simplefilter('ignore', _InsecureRequestWarning)
            return self.session.send(prep, timeout=self.timeout, allow_redirects=True, **settings)

    def _request(self, method, path, params=None, headers=None, stream=False, channel=None, url=None, data=None):
        """Send a request; return the ``requests.Response`` (status < 400) or raise.

        Only idempotent methods are retried; ``data`` (bytes or a file
        object) is the request body.
        """
        self._check_usable()
        if url is None:
            url = self._base + path
            params = self._build_params(params, channel)
        else:
            # an absolute URL elsewhere (DSAPI file): no source parameters or channel
            params = list(params or [])
        headers = dict(headers or {})
        attempts = 1 + (self.retries if method in IDEMPOTENT_METHODS else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._send(method, url, params, headers, stream, data=data)
                if not stream:
                    self._check_complete(resp, url)
            except _rexc.SSLError as exc:
                raise ImgapiConnectionError('%s: TLS error: %s' % (url, exc), url=url)
            except (_rexc.ConnectionError, _rexc.Timeout, _rexc.ChunkedEncodingError,
                    _rexc.ContentDecodingError, ImgapiConnectionError) as exc:
                if last:
                    if isinstance(exc, ImgapiConnectionError):
                        raise
                    kind = 'timeout' if isinstance(exc, _rexc.Timeout) else 'connection error'
                    raise ImgapiConnectionError('%s: %s: %s' % (url, kind, exc), url=url, attempts=attempt + 1)
                self._sleep(self._retry_delay(attempt))
                continue
            except _rexc.RequestException as exc:
                raise ImgapiError('%s: request error: %s' % (url, exc), url=url, code='ClientError')

            status = resp.status_code
            if not last and self._retryable_status(status):
                delay = self._retry_delay(attempt, resp)
                resp.close()
                self._sleep(delay)
                continue
            if status >= 400:
                try:
                    self._raise_for_response(resp, url)
                finally:
                    resp.close()
            return resp
        raise ImgapiConnectionError('%s: no response' % url, url=url)  # pragma: no cover

    @staticmethod
    def _check_complete(resp, url):
        """Raise ImgapiConnectionError if a non-streamed body is shorter than Content-Length."""
        expected = _int_or_none(resp.headers.get('Content-Length'))
        encoding = (resp.headers.get('Content-Encoding') or 'identity').lower()
        if expected is None or encoding != 'identity' or resp.request.method == 'HEAD':
            return
        got = len(resp.content)
        if got != expected:
            raise ImgapiConnectionError('%s: truncated response: expected %d bytes, got %d' % (url, expected, got),
                                        url=url, status=resp.status_code)

    @staticmethod
    def _raise_for_response(resp, url):
        status = resp.status_code
        body = None
        try:
            content = resp.content or b''
        except _transport_errors():
            content = b''
        if content:
            try:
                body = json.loads(content.decode('utf-8'))
            except ValueError:
                body = None
        details = {}
        req_id = resp.headers.get('x-request-id')
        if req_id:
            details['request_id'] = req_id
        if isinstance(body, dict) and isinstance(body.get('code'), str) and body.get('message') is not None:
            code = body['code']
            message = str(body['message'])
            errors = body.get('errors')
            if isinstance(errors, list):
                details['errors'] = errors
                for e in errors:
                    if isinstance(e, dict):
                        message += '\n    %s: %s' % (e.get('field'), e.get('code'))
                        if e.get('message'):
                            message += ': %s' % e['message']
        else:
            code = None
            text = content[:512].decode('utf-8', 'replace').strip()
            message = 'HTTP %d %s' % (status, resp.reason or '')
            message = message.strip()
            if text:
                message += ': %s' % text
        cls = {404: ImgapiNotFoundError, 401: ImgapiUnauthorizedError}.get(status, ImgapiError)
        raise cls('%s: %s' % (url, message), url=url, status=status, code=code, body=body, **details)

    @staticmethod
    def _json(resp, url):
        try:
            return resp.json()
        except ValueError:
            snippet = resp.content[:200].decode('utf-8', 'replace') if resp.content else ''
            raise ImgapiError('%s: invalid JSON in response (HTTP %d): %r' % (url, resp.status_code, snippet),
                              url=url, status=resp.status_code, code='InvalidContent')

    def _get_json(self, path, params=None, channel=None):
        url = self._base + path
        resp = self._request('GET', path, params=params, channel=channel)
        return self._json(resp, url)

    # -- API

    def ping(self):
        """GET /ping. IMGAPI must answer 200 with ``"imgapi": true``; DSAPI just 200.

        Returns the parsed body (``{}`` for a non-JSON DSAPI answer). Raises
        SourcePingError naming the source URL, or UsageError for a docker source.
        """
        self._check_usable()
        try:
            resp = self._request('GET', '/ping')
        except (ImgapiError, UsageError) as exc:
            raise SourcePingError('unexpected ping error with "%s" image source "%s": %s'
                                  % (self.source_type, self.url, exc), url=self.url, source_type=self.source_type)
        if resp.status_code != 200:
            raise SourcePingError('unexpected ping error with "%s" image source "%s": HTTP status %d'
                                  % (self.source_type, self.url, resp.status_code),
                                  url=self.url, source_type=self.source_type, status=resp.status_code)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if self.source_type == 'dsapi':
            return body if isinstance(body, dict) else {}
        if not isinstance(body, dict) or body.get('imgapi') is not True:
            raise SourcePingError('unexpected ping error with "%s" image source "%s": not an IMGAPI '
                                  '(the /ping response has no "imgapi": true)' % (self.source_type, self.url),
                                  url=self.url, source_type=self.source_type)
        return body

    def _filter_params(self, filters):
        params = []
        for key, value in sorted(filters.items()):
            if value is None:
                continue
            if key == 'tags' and isinstance(value, dict):
                for tkey, tvalue in sorted(value.items()):
                    params.append(('tag.%s' % tkey, tvalue))
            elif key == 'public':
                # a non-boolean value crashes the server
                params.append(('public', _bool_param(value, 'public')))
            elif key in ('owner', 'account'):
                params.append((key, validate_uuid(value, field=key)))
            elif isinstance(value, (list, tuple)):
                params.extend((key, v) for v in value)
            else:
                params.append((key, value))
        return params

    def list_images(self, **filters):
        """ListImages with all pages: a list of image dicts.

        Filters are the IMGAPI query parameters (``state``, ``name``,
        ``version``, ``owner``, ``os``, ``type``, ``public``, ``account``,
        ``billing_tag``...); ``tags={'k': 'v'}`` becomes ``tag.k=v``;
        ``channel`` overrides the client's channel (``'*'`` = all). With an
        explicit ``limit`` only that one page is fetched. Otherwise the
        sdc-clients loop runs: a first request without limit, then
        ``limit=page_size&marker=<last uuid>`` (the marker is inclusive, so a
        repeated first row is dropped) until a page is shorter than the page
        size or the marker does not move.
        """
        channel = filters.pop('channel', None)
        if self.source_type == 'dsapi':
            self._check_usable()
            return self._list_page('/datasets', self._filter_params(filters), channel)
        params = self._filter_params(filters)
        if 'limit' in filters or 'marker' in filters:
            return self._list_page('/images', params, channel)

        images = []
        marker = None
        while True:
            query = list(params)
            if marker is not None:
                query += [('limit', self.page_size), ('marker', marker)]
            page = self._list_page('/images', query, channel)
            last_page = len(page) < self.page_size
            if marker is not None and page and isinstance(page[0], dict) and page[0].get('uuid') == marker:
                page = page[1:]
            if not page:
                break
            new_marker = page[-1].get('uuid') if isinstance(page[-1], dict) else None
            images.extend(page)
            if last_page or new_marker is None or new_marker == marker:
                break
            marker = new_marker
        return images

    def _list_page(self, path, params, channel):
        page = self._get_json(path, params=params, channel=channel)
        if not isinstance(page, list):
            raise ImgapiError('%s%s: unexpected ListImages response (not an array)' % (self._base, path),
                              url=self._base + path, code='InvalidContent')
        return page

    def get_image(self, uuid, channel=None):
        """GetImage: the image dict, or ImgapiNotFoundError. DSAPI: GET /datasets/<uuid>."""
        validate_uuid(uuid)
        if self.source_type == 'dsapi':
            return self._get_json('/datasets/%s' % uuid, channel=channel)
        return self._get_json('/images/%s' % uuid, channel=channel)

    def get_image_file(self, uuid, index=0, channel=None, manifest=None):
        """GetImageFile as a streamed ImageFile (a context manager).

        For DSAPI the file is fetched from ``files[0].url`` of the manifest
        (given, or fetched with ``get_image``).
        """
        validate_uuid(uuid)
        headers = {'Accept': '*/*', 'Accept-Encoding': 'identity'}
        if self.source_type == 'dsapi':
            self._check_usable()
            if manifest is None:
                manifest = self.get_image(uuid, channel=channel)
            files = manifest.get('files') or []
            file_url = files[index].get('url') if len(files) > index and isinstance(files[index], dict) else None
            if not file_url:
                raise ImgapiNotFoundError('%s/datasets/%s: dataset has no file url at index %d' % (self._base, uuid, index),
                                          url='%s/datasets/%s' % (self._base, uuid))
            resp = self._request('GET', '', url=file_url, headers=headers, stream=True)
            return ImageFile(resp, file_url)
        path = '/images/%s/file' % uuid
        params = [('index', int(index))] if index else None
        resp = self._request('GET', path, params=params, headers=headers, stream=True, channel=channel)
        return ImageFile(resp, self._base + path)

    # -- writes (IMGAPI only)

    def _check_writable(self):
        self._check_usable()
        if self.source_type != 'imgapi':
            raise UsageError('"%s" source "%s" cannot be written to: only an IMGAPI can' % (self.source_type, self.url),
                             field='url')

    def _post_json(self, path, params, body, channel):
        # always Content-Type: application/json: without it IMGAPI misreads the body, and POST /images crashes
        data = json.dumps(body).encode('utf-8') if body is not None else None
        resp = self._request('POST', path, params=params, headers=dict(_JSON_HEADERS) if data is not None else None,
                             channel=channel, data=data)
        return self._image_response(resp, self._base + path)

    def _image_response(self, resp, url):
        image = self._json(resp, url)
        if not isinstance(image, dict):
            raise ImgapiError('%s: unexpected response (not an image object)' % url, url=url, code='InvalidContent')
        return image

    @staticmethod
    def _check_fields(manifest):
        """Values that crash IMGAPI 4.13.1 or that it misreads are refused before sending."""
        owner = manifest.get('owner')
        if owner is not None and not is_uuid(owner):
            raise UsageError('invalid manifest owner "%s": must be a lower-case UUID' % (owner,), field='owner')
        for name in ('public', 'disabled'):
            if name in manifest and not isinstance(manifest[name], bool):
                raise UsageError('manifest "%s" must be true or false, not %r' % (name, manifest[name]), field=name)

    def admin_import_image(self, manifest, channel=None):
        """AdminImportImage: ``POST /images/<uuid>?action=import`` with the manifest; the unactivated image.

        The uuid (and ``published_at``) are kept; the server ignores
        ``state`` and ``files`` (not sent). In public and private mode it
        sets the owner to ``00000000-0000-0000-0000-000000000000``.
        """
        self._check_writable()
        if not isinstance(manifest, dict):
            raise UsageError('manifest must be a dict', field='manifest')
        uuid = validate_uuid(manifest.get('uuid'), field='uuid')
        body = dict((k, v) for k, v in manifest.items() if k not in IMPORT_DROP_FIELDS)
        self._check_fields(body)
        return self._post_json('/images/%s' % uuid, [('action', 'import')], body, channel)

    def create_image(self, manifest, owner, channel=None):
        """CreateImage: ``POST /images`` with the manifest minus the server's own fields; the unactivated image.

        ``owner`` (a uuid) is required: IMGAPI 4.13.1 crashes on a create
        without one. The server picks the new uuid.
        """
        self._check_writable()
        if not isinstance(manifest, dict):
            raise UsageError('manifest must be a dict', field='manifest')
        owner = validate_uuid(owner, field='owner')
        body = dict((k, v) for k, v in manifest.items() if k not in CREATE_DROP_FIELDS)
        body['owner'] = owner
        self._check_fields(body)
        return self._post_json('/images', None, body, channel)

    def add_image_file(self, uuid, path, compression, sha1=None, size=None, channel=None, dataset_guid=None):
        """AddImageFile: ``PUT /images/<uuid>/file?compression=..&sha1=..``, streamed from ``path``.

        Sent with ``Content-Length`` and ``Content-Type:
        application/octet-stream``; never retried. The returned image's
        ``files[0]`` must have the ``sha1`` and ``size`` given (UploadError
        otherwise).
        """
        self._check_writable()
        validate_uuid(uuid)
        if compression not in COMPRESSIONS:
            raise UsageError('invalid compression "%s": must be one of %s' % (compression, ', '.join(COMPRESSIONS)),
                             field='compression')
        params = [('compression', compression)]
        if sha1:
            params.append(('sha1', sha1))
        if dataset_guid:
            params.append(('dataset_guid', str(dataset_guid)))
        url = self._base + '/images/%s/file' % uuid
        try:
            f = open(path, 'rb')
        except OSError as e:
            raise UploadError('cannot read "%s" to upload it to image %s: %s' % (path, uuid, e.strerror or e),
                              uuid=uuid, path=path)
        with f:
            length = os.fstat(f.fileno()).st_size
            if size is not None and int(size) != length:
                raise UploadError('"%s" is %d bytes, not %s: not uploading it to image %s' % (path, length, size, uuid),
                                  uuid=uuid, path=path)
            headers = {'Content-Type': 'application/octet-stream', 'Content-Length': str(length)}
            resp = self._request('PUT', '/images/%s/file' % uuid, params=params, headers=headers, channel=channel,
                                 data=f)
        image = self._image_response(resp, url)
        files = image.get('files') if isinstance(image.get('files'), list) else []
        got = files[0] if files and isinstance(files[0], dict) else {}
        problems = []
        if sha1 and got.get('sha1') != sha1:
            problems.append('sha1 %s, not %s' % (got.get('sha1'), sha1))
        if got.get('size') != length:
            problems.append('size %s, not %d' % (got.get('size'), length))
        if problems:
            raise UploadError('%s: the server recorded another file for image %s than the one sent (%s)'
                              % (url, uuid, '; '.join(problems)), url=url, uuid=uuid)
        return image

    def activate_image(self, uuid, channel=None):
        """ActivateImage: ``POST /images/<uuid>?action=activate``; the image (``state`` active or disabled)."""
        self._check_writable()
        validate_uuid(uuid)
        return self._post_json('/images/%s' % uuid, [('action', 'activate')], None, channel)

    def delete_image(self, uuid, channel=None, force_all_channels=False):
        """DeleteImage: ``DELETE /images/<uuid>`` (204). Retried like a GET: deleting twice is harmless."""
        self._check_writable()
        validate_uuid(uuid)
        params = [('force_all_channels', 'true')] if force_all_channels else None
        resp = self._request('DELETE', '/images/%s' % uuid, params=params, channel=channel)
        resp.close()


__all__ = (
    'HAS_REQUESTS', 'REQUESTS_IMPORT_ERROR', 'ACCEPT_VERSION', 'DEFAULT_PAGE_SIZE', 'MAX_RETRY_AFTER',
    'COMPRESSIONS', 'IMPORT_DROP_FIELDS', 'CREATE_DROP_FIELDS',
    'default_user_agent', 'parse_retry_after', 'ImageFile', 'ImgapiClient',
)
