# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_publisher.py against the project's own IMGAPI server.

``tests/world/imgapi_server.py`` runs in this process on 127.0.0.1, mostly
with HTTP Signature auth on (``auth_keys``): it verifies every signature as
IMGAPI does, and its request log shows exactly which calls were made.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip('requests')
pytest.importorskip('cryptography')

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from ansible_collections.smartos.imgadm.plugins.module_utils import _http_signature  # noqa: E402
from ansible_collections.smartos.imgadm.plugins.module_utils._common import Result  # noqa: E402
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (  # noqa: E402
    ImageUuidAlreadyExistsError,
    ImgadmError,
    ImgapiUnauthorizedError,
    InvalidManifestError,
    SigningError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._imgapi import ImgapiClient  # noqa: E402
from ansible_collections.smartos.imgadm.plugins.module_utils._publisher import PUBLISH_ARGS, load_manifest, publish  # noqa: E402

WORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, 'world')
if WORLD not in sys.path:
    sys.path.insert(0, WORLD)

import imgapi_server  # noqa: E402  pylint: disable=wrong-import-position

UUID = '2f1dc911-6401-4fa4-8e9d-67ea2e39c271'
OWNER0 = '00000000-0000-0000-0000-000000000000'
OWNER = '930896af-bf8c-48d4-885c-6573a94b1853'
PASSPHRASE = 'do-not-leak-this-passphrase'
PASSWORD = 'do-not-leak-this-password'
WRITES = ('POST', 'PUT', 'DELETE')


class _Module(object):
    _diff = False


def new_result():
    return Result(_Module())


@pytest.fixture(scope='module')
def keys():
    return dict(alice=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                mallory=rsa.generate_private_key(public_exponent=65537, key_size=2048))


def pub(key):
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def key_file(tmp_path, key, passphrase=None, name='id_rsa'):
    enc = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, enc))
    return str(path)


@pytest.fixture
def server(tmp_path, keys):
    """``start(**start_server options)`` -> a running server (auth with alice's key unless auth_keys=None)."""
    running = []

    def start(**opts):
        opts.setdefault('auth_keys', {'alice': [pub(keys['alice'])]})
        srv = imgapi_server.start_server(str(tmp_path / ('srv%d' % len(running))), **opts)
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop()


@pytest.fixture
def image(tmp_path):
    """``(manifest, file path)`` of a small gzip image."""
    data = os.urandom(3000)
    path = tmp_path / 'img.zfs.gz'
    path.write_bytes(data)
    manifest = {
        'v': 2, 'uuid': UUID, 'owner': OWNER0, 'name': 'myimage', 'version': '1.0.0', 'type': 'zone-dataset',
        'os': 'smartos', 'public': True, 'description': 'test image', 'state': 'active', 'disabled': False,
        'published_at': '2026-01-02T03:04:05Z',
        'files': [{'sha1': hashlib.sha1(data).hexdigest(), 'size': len(data), 'compression': 'gzip'}],
    }
    return manifest, str(path)


def params(url, **kw):
    p = dict((k, v.get('default')) for k, v in PUBLISH_ARGS.items())
    p.update(url=url, retries=0, timeout=10.0)
    p.update(kw)
    return p


def signed(srv, tmp_path, keys, **kw):
    return params(srv.url, user='alice', key_file=key_file(tmp_path, keys['alice']), **kw)


def writes(srv):
    return [(r['method'], r['path'].split('?')[0]) for r in srv.requests() if r['method'] in WRITES]


def stored(srv):
    srv.reload()
    return list(srv.app.store.all())


def run_command(args, check_rc=False, data=None, binary_data=False, environ_update=None):
    env = dict(os.environ)
    env.update(environ_update or {})
    proc = subprocess.run(args, input=data if isinstance(data, bytes) else (data or '').encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


# ---- import

def test_import_with_auth_then_no_change(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    p = signed(srv, tmp_path, keys)
    result = new_result()
    img = publish(p, manifest, path, result, False)
    assert img['uuid'] == UUID and img['state'] == 'active'
    assert img['files'][0]['sha1'] == manifest['files'][0]['sha1'] and img['files'][0]['size'] == 3000
    assert img['published_at'] == '2026-01-02T03:04:05Z'  # import keeps it
    assert result.changed and len(result.actions) == 3
    pub_info = result.data['published']
    assert pub_info['changed'] and pub_info['uuid'] == UUID and pub_info['mode'] == 'import'
    assert pub_info['auth']['type'] == 'signature' and pub_info['auth']['user'] == 'alice'
    assert pub_info['auth']['fingerprint'].startswith('SHA256:')
    reqs = srv.requests()
    assert [(r['method'], r['route']) for r in reqs] == [
        ('GET', '/images/' + UUID), ('POST', '/images/' + UUID), ('PUT', '/images/%s/file' % UUID),
        ('POST', '/images/' + UUID)]
    assert all(r.get('user') == 'alice' for r in reqs), 'every request is signed and verified'
    assert reqs[1]['path'].endswith('?action=import') and reqs[3]['path'].endswith('?action=activate')
    assert reqs[1]['headers']['content-type'] == 'application/json'
    assert reqs[2]['headers']['content-type'] == 'application/octet-stream'
    assert reqs[2]['headers']['content-length'] == '3000'
    assert 'sha1=%s' % manifest['files'][0]['sha1'] in reqs[2]['path'] and 'compression=gzip' in reqs[2]['path']
    with open(srv.app.store.file_path(UUID), 'rb') as f:
        assert f.read() == open(path, 'rb').read()

    srv.clear_requests()
    os.chmod(path, 0)  # a run that does nothing does not read the file
    try:
        result = new_result()
        again = publish(p, manifest, path, result, False)
    finally:
        os.chmod(path, 0o644)
    assert not result.changed and result.actions == [] and not result.data['published']['changed']
    assert again['uuid'] == UUID
    assert writes(srv) == []


@pytest.mark.parametrize('mode', ['import', 'create'])
def test_the_file_is_hashed_once_a_publish(server, tmp_path, keys, image, monkeypatch, mode):
    from ansible_collections.smartos.imgadm.plugins.module_utils import _publisher
    real = _publisher._check_file_sha1
    calls = []
    monkeypatch.setattr(_publisher, '_check_file_sha1', lambda path, info: calls.append(path) or real(path, info))
    srv = server()
    manifest, path = image
    more = dict(mode='create', owner='00000000-0000-0000-0000-000000000000') if mode == 'create' else {}
    img = publish(signed(srv, tmp_path, keys, **more), manifest, path, new_result(), False)
    assert img['state'] == 'active'
    assert calls == [path]


def test_check_mode_writes_nothing(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    result = new_result()
    img = publish(signed(srv, tmp_path, keys), manifest, path, result, True)
    assert result.changed and len(result.actions) == 3 and result.actions[0].startswith('import image ' + UUID)
    assert img['uuid'] == UUID and img['state'] == 'active' and img['files'][0]['sha1'] == manifest['files'][0]['sha1']
    assert writes(srv) == [] and stored(srv) == []
    publish(signed(srv, tmp_path, keys), manifest, path, new_result(), False)
    srv.clear_requests()
    result = new_result()
    publish(signed(srv, tmp_path, keys), manifest, path, result, True)
    assert not result.changed and writes(srv) == []


def test_wrong_key_is_a_clear_401_and_leaves_nothing(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    p = params(srv.url, user='alice', key_file=key_file(tmp_path, keys['mallory']))
    result = new_result()
    with pytest.raises(ImgapiUnauthorizedError) as exc:
        publish(p, manifest, path, result, False)
    e = exc.value
    assert e.code == 'UnauthorizedError' and e.status == 401
    assert 'Unauthorized' in str(e) and 'user "alice"' in str(e) and 'SHA256:' in str(e)
    assert writes(srv) == [] and stored(srv) == []
    assert not result.changed


def test_unknown_user_and_no_auth(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    p = params(srv.url, user='bob', key_file=key_file(tmp_path, keys['alice']))
    with pytest.raises(ImgapiUnauthorizedError):
        publish(p, manifest, path, new_result(), False)
    # anonymous: the passive GET works, the import is refused
    result = new_result()
    with pytest.raises(ImgapiUnauthorizedError) as exc:
        publish(params(srv.url), manifest, path, result, False)
    assert 'wants an authenticated request' in str(exc.value)
    assert stored(srv) == []
    assert writes(srv) == [('POST', '/images/' + UUID)]
    # a refused import changed nothing, and says so
    assert not result.changed and result.actions == [] and not result.data['published']['changed']


def test_same_uuid_other_file_is_an_error(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    p = signed(srv, tmp_path, keys)
    publish(p, manifest, path, new_result(), False)
    other = dict(manifest, files=[{'sha1': hashlib.sha1(b'x').hexdigest(), 'size': 3000, 'compression': 'gzip'}])
    srv.clear_requests()
    with pytest.raises(ImageUuidAlreadyExistsError) as exc:
        publish(p, other, path, new_result(), False)
    assert exc.value.code == 'ImageUuidAlreadyExists'
    assert 'already exists' in str(exc.value) and manifest['files'][0]['sha1'] in str(exc.value)
    assert writes(srv) == []
    assert [r['state'] for r in stored(srv)] == ['active']


def test_interrupted_publish_is_completed(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    p = signed(srv, tmp_path, keys)
    client = ImgapiClient(srv.url, auth=_http_signature.SignatureAuth('alice', _http_signature.KeyFileSigner(p['key_file'])))
    client.admin_import_image(manifest)
    client.add_image_file(UUID, path, 'gzip', sha1=manifest['files'][0]['sha1'], size=3000)
    srv.clear_requests()
    result = new_result()
    img = publish(p, manifest, path, result, False)
    assert img['state'] == 'active' and result.changed and result.data['published']['completed']
    assert writes(srv) == [('POST', '/images/' + UUID)]
    assert 'earlier publish left unactivated' in result.actions[0]


def test_unactivated_without_file_is_not_touched(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    p = signed(srv, tmp_path, keys)
    client = ImgapiClient(srv.url, auth=_http_signature.SignatureAuth('alice', _http_signature.KeyFileSigner(p['key_file'])))
    client.admin_import_image(manifest)
    srv.clear_requests()
    with pytest.raises(ImageUuidAlreadyExistsError) as exc:
        publish(p, manifest, path, new_result(), False)
    assert 'no file' in str(exc.value) and 'unactivated' in str(exc.value)
    assert writes(srv) == []


# ---- create

def test_create_mode(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    p = signed(srv, tmp_path, keys, mode='create', owner=OWNER)
    result = new_result()
    img = publish(p, manifest, path, result, False)
    assert img['uuid'] != UUID and img['owner'] == OWNER and img['state'] == 'active'
    assert img['published_at'] != manifest['published_at']
    assert result.data['published']['uuid'] == img['uuid']
    create = [r for r in srv.requests() if r['method'] == 'POST' and r['route'] == '/images']
    assert len(create) == 1 and create[0]['headers']['content-type'] == 'application/json'
    srv.clear_requests()
    result = new_result()
    again = publish(p, manifest, path, result, False)
    assert again['uuid'] == img['uuid'] and not result.changed and writes(srv) == []
    listing = [r for r in srv.requests() if r['route'] == '/images']
    assert 'owner=%s' % OWNER in listing[0]['path'] and 'state=all' in listing[0]['path']


def test_create_needs_an_owner(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    m = dict(manifest)
    del m['owner']
    with pytest.raises(UsageError) as exc:
        publish(signed(srv, tmp_path, keys, mode='create'), m, path, new_result(), False)
    assert exc.value.details['field'] == 'owner'
    with pytest.raises(UsageError) as exc:
        publish(signed(srv, tmp_path, keys, mode='create', owner='NOT-A-UUID'), m, path, new_result(), False)
    assert exc.value.details['field'] == 'owner'
    assert srv.requests() == []


def test_create_check_mode(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    result = new_result()
    img = publish(signed(srv, tmp_path, keys, mode='create', owner=OWNER), manifest, path, result, True)
    assert img['uuid'] is None and img['owner'] == OWNER and result.changed
    assert writes(srv) == []


# ---- failures and rollback

def test_failure_on_activate_deletes_the_image(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    srv.set_faults(method='POST', path=r'^/images/[0-9a-f-]{36}$', fail_5xx=1)
    result = new_result()
    with pytest.raises(ImgadmError) as exc:
        publish(signed(srv, tmp_path, keys, mode='create', owner=OWNER), manifest, path, result, False)
    e = exc.value
    assert e.code == 'ServiceUnavailableError'
    assert 'was deleted again' in str(e) and e.details['rolled_back'] is True
    assert result.data['published']['rolled_back'] is True and not result.data['published']['changed']
    assert not result.changed
    assert stored(srv) == []
    assert [m for m, _p in writes(srv)] == ['POST', 'PUT', 'POST', 'DELETE']


def test_failure_on_upload_deletes_the_imported_image(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    srv.set_faults(method='PUT', fail_5xx=1)
    with pytest.raises(ImgadmError) as exc:
        publish(signed(srv, tmp_path, keys), manifest, path, new_result(), False)
    assert exc.value.details['rolled_back'] is True and exc.value.details['uuid'] == UUID
    assert stored(srv) == []
    assert [m for m, _p in writes(srv)] == ['POST', 'PUT', 'DELETE'], 'a PUT is never retried'


def test_failed_rollback_is_reported(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    srv.set_faults(method='PUT', fail_5xx=1)
    srv.add_fault(method='DELETE', fail_5xx=10)
    result = new_result()
    with pytest.raises(ImgadmError) as exc:
        publish(signed(srv, tmp_path, keys, retries=1), manifest, path, result, False)
    e = exc.value
    assert e.details['rolled_back'] is False and 'rollback_error' in e.details
    assert 'left unactivated' in str(e) and 'DELETE /images/%s' % UUID in str(e)
    assert result.changed and result.data['published']['changed']
    assert [r['state'] for r in stored(srv)] == ['unactivated']


def test_lost_answer_to_activate_is_checked(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    # the activation happens, but the connection is reset in the middle of the answer
    srv.set_faults(method='POST', path=r'^/images/[0-9a-f-]{36}$', reset=True, reset_after=10)
    result = new_result()
    img = publish(signed(srv, tmp_path, keys, mode='create', owner=OWNER), manifest, path, result, False)
    assert img['state'] == 'active' and result.changed
    assert [r['state'] for r in stored(srv)] == ['active']
    assert [m for m, _p in writes(srv)] == ['POST', 'PUT', 'POST'], 'no retry, no rollback'
    assert srv.requests()[-1]['method'] == 'GET'


# ---- files and manifests

def test_file_must_match_the_manifest(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    bad_size = dict(manifest, files=[dict(manifest['files'][0], size=2999)])
    with pytest.raises(UsageError) as exc:
        publish(signed(srv, tmp_path, keys), bad_size, path, new_result(), False)
    assert exc.value.details['field'] == 'file' and exc.value.details['manifest_field'] == 'files[0].size'
    bad_sha = dict(manifest, files=[dict(manifest['files'][0], sha1='0' * 40)])
    with pytest.raises(UsageError) as exc:
        publish(signed(srv, tmp_path, keys), bad_sha, path, new_result(), True)
    assert exc.value.details['manifest_field'] == 'files[0].sha1' and 'files[0].sha1' in str(exc.value)
    assert writes(srv) == []
    for files, field in (([], 'files[0]'), ([{'sha1': 'x', 'size': 1, 'compression': 'gzip'}], 'files[0].sha1'),
                         ([{'sha1': '0' * 40, 'size': 1, 'compression': 'zip'}], 'files[0].compression'),
                         ([{'sha1': '0' * 40, 'size': 0, 'compression': 'gzip'}], 'files[0].size')):
        with pytest.raises(InvalidManifestError) as exc:
            publish(signed(srv, tmp_path, keys), dict(manifest, files=files), path, new_result(), False)
        assert exc.value.details['manifest_field'] == field
    with pytest.raises(UsageError) as exc:
        publish(signed(srv, tmp_path, keys), manifest, str(tmp_path / 'missing'), new_result(), False)
    assert exc.value.details['field'] == 'file'


def test_manifest_from_a_path(server, tmp_path, keys, image):
    manifest, path = image
    mpath = tmp_path / 'img.imgmanifest'
    mpath.write_text(json.dumps(manifest))
    assert load_manifest(str(mpath)) == manifest
    with pytest.raises(UsageError):
        load_manifest(str(tmp_path / 'nope'))
    mpath.write_text('{')
    with pytest.raises(InvalidManifestError):
        load_manifest(str(mpath))


# ---- auth variants

def test_encrypted_key_and_secrets_stay_out(server, tmp_path, keys, image):
    srv = server()
    manifest, path = image
    kf = key_file(tmp_path, keys['alice'], passphrase=PASSPHRASE, name='enc')
    with pytest.raises(SigningError) as exc:
        publish(params(srv.url, user='alice', key_file=kf), manifest, path, new_result(), False)
    assert 'key_passphrase' in str(exc.value)
    result = new_result()
    publish(params(srv.url, user='alice', key_file=kf, key_passphrase=PASSPHRASE), manifest, path, result, False)
    assert result.changed
    assert PASSPHRASE not in json.dumps(result.data) + ' '.join(result.actions)
    with pytest.raises(SigningError) as exc:
        publish(params(srv.url, user='alice', key_file=kf, key_passphrase='x' + PASSPHRASE), manifest, path, new_result(),
                False)
    assert PASSPHRASE not in str(exc.value) and PASSPHRASE not in json.dumps(exc.value.details)


@pytest.mark.skipif(shutil.which('openssl') is None, reason='no openssl command')
def test_openssl_fallback_publishes(monkeypatch, server, tmp_path, keys, image):
    monkeypatch.setattr(_http_signature, '_load_cryptography', lambda: None)
    srv = server()
    manifest, path = image
    result = new_result()
    kf = key_file(tmp_path, keys['alice'], passphrase=PASSPHRASE, name='enc')
    img = publish(params(srv.url, user='alice', key_file=kf, key_passphrase=PASSPHRASE), manifest, path, result, False,
                  run_command=run_command)
    assert img['state'] == 'active' and result.data['published']['auth']['backend'] == 'openssl'
    assert all(r.get('user') == 'alice' for r in srv.requests())


def test_ssh_agent_publishes(monkeypatch, server, tmp_path, keys, image):
    from ansible_collections.smartos.imgadm.tests.unit.plugins.module_utils.test__http_signature import FakeAgent
    agent = FakeAgent([(keys['mallory'], 'other'), (keys['alice'], 'alice')])
    try:
        monkeypatch.setenv('SSH_AUTH_SOCK', agent.path)
        srv = server()
        manifest, path = image
        fp = _http_signature.fingerprint_sha256(_http_signature.rsa_public_blob(
            keys['alice'].public_key().public_numbers().n, keys['alice'].public_key().public_numbers().e))
        result = new_result()
        img = publish(params(srv.url, user='alice', key_id=fp), manifest, path, result, False)
        assert img['state'] == 'active' and result.data['published']['auth']['source'] == 'ssh-agent'
        assert result.data['published']['auth']['fingerprint'] == fp
        # without key_id the agent's first RSA key (mallory's) signs: refused
        with pytest.raises(ImgapiUnauthorizedError):
            publish(params(srv.url, user='alice', ssh_agent=True), manifest, path, new_result(), False)
    finally:
        agent.close()


def test_basic_auth_header_is_sent(server, image):
    srv = server(auth_keys=None)
    manifest, path = image
    result = new_result()
    publish(params(srv.url, url_username='bob', url_password=PASSWORD), manifest, path, result, False)
    want = 'Basic ' + base64.b64encode(('bob:' + PASSWORD).encode()).decode()
    assert [r['headers'].get('authorization') for r in srv.requests()] == [want] * 4
    assert result.data['published']['auth'] == dict(type='basic', user='bob')
    assert PASSWORD not in json.dumps(result.data)


def test_basic_auth_against_signature_server(server, image):
    srv = server()
    manifest, path = image
    with pytest.raises(ImgapiUnauthorizedError) as exc:
        publish(params(srv.url, url_username='bob', url_password=PASSWORD), manifest, path, new_result(), False)
    assert 'bad param format' in str(exc.value) or 'scheme was not' in str(exc.value)
    assert PASSWORD not in str(exc.value) and PASSWORD not in json.dumps(exc.value.details)


@pytest.mark.parametrize('opts, field', [
    (dict(user='alice', key_file='/k', ssh_agent=True), 'key_file'),
    (dict(user='alice', key_file='/k', key_id='SHA256:x'), 'key_file'),
    (dict(user='alice'), 'user'),
    (dict(key_file='/k'), 'user'),
    (dict(ssh_agent=True), 'user'),
    (dict(url_username='bob'), 'url_username'),
    (dict(url_password='pw'), 'url_username'),
    (dict(url_username='bob', url_password='pw', user='alice', key_file='/k'), 'url_username'),
    (dict(key_passphrase='pw'), 'key_passphrase'),
    (dict(user='al"ice', key_file='/k'), 'user'),
    (dict(retries=-1), 'retries'),
    (dict(timeout=0), 'timeout'),
])
def test_option_errors_name_the_option(image, opts, field):
    manifest, path = image
    with pytest.raises(UsageError) as exc:
        publish(params('http://127.0.0.1:1', **opts), manifest, path, new_result(), False)
    assert exc.value.details['field'] == field


def test_channel(server, tmp_path, keys, image):
    srv = server(channels='dev*,staging')
    manifest, path = image
    img = publish(signed(srv, tmp_path, keys, channel='staging'), manifest, path, new_result(), False)
    assert img['state'] == 'active'
    assert all('channel=staging' in r['path'] for r in srv.requests())
    assert stored(srv)[0]['channels'] == ['staging']
