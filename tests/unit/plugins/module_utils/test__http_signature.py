# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_http_signature.py.

Signatures are checked with the ``cryptography`` library and with the test
IMGAPI server's http-signature 0.10 parser. The ssh-agent signer talks to a
small fake agent (a unix socket server in a thread) and, when ``ssh-agent``
and ``ssh-add`` are installed, to a real one. The openssl fallback runs the
real ``openssl`` command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import email.utils
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

crypto = pytest.importorskip('cryptography')

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: E402

from ansible_collections.smartos.imgadm.plugins.module_utils import _http_signature as H  # noqa: E402
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import SigningError, UsageError  # noqa: E402

WORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, 'world')
if WORLD not in sys.path:
    sys.path.insert(0, WORLD)

import imgapi_server  # noqa: E402  pylint: disable=wrong-import-position

OPENSSL = shutil.which('openssl')
try:
    import bcrypt  # noqa: F401  pylint: disable=unused-import
    HAS_BCRYPT = True
except ImportError:
    HAS_BCRYPT = False
PASSPHRASE = 'correct horse battery staple'


# ---- keys

@pytest.fixture(scope='module')
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope='module')
def other_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key(tmp_path, key, fmt='pkcs1', passphrase=None, name='key'):
    enc = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    formats = {
        'pkcs1': serialization.PrivateFormat.TraditionalOpenSSL,
        'pkcs8': serialization.PrivateFormat.PKCS8,
        'openssh': serialization.PrivateFormat.OpenSSH,
    }
    path = tmp_path / name
    try:
        data = key.private_bytes(serialization.Encoding.PEM, formats[fmt], enc)
    except UnsupportedAlgorithm:  # an encrypted OpenSSH key needs bcrypt: let ssh-keygen encrypt it
        if not shutil.which('ssh-keygen'):
            pytest.skip('neither bcrypt nor ssh-keygen to write an encrypted OpenSSH key')
        data = None
    if data is None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, formats[fmt], serialization.NoEncryption()))
        os.chmod(str(path), 0o600)
        subprocess.check_call(['ssh-keygen', '-q', '-p', '-P', '', '-N', passphrase, '-f', str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        path.write_bytes(data)
        os.chmod(str(path), 0o600)
    return str(path)


def public_line(key):
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def public_blob(key):
    return base64.b64decode(public_line(key).split()[1])


def verify(key, sig, data, algorithm='rsa-sha256'):
    hash_cls = hashes.SHA256 if algorithm == 'rsa-sha256' else hashes.SHA1
    key.public_key().verify(sig, data, padding.PKCS1v15(), hash_cls())
    return True


def run_command(args, check_rc=False, data=None, binary_data=False, environ_update=None):
    """module.run_command's convention, with subprocess; records the calls."""
    run_command.calls.append(dict(args=list(args), env=dict(environ_update or {})))
    env = dict(os.environ)
    env.update(environ_update or {})
    if isinstance(data, str):
        data = data.encode()
    proc = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace'), proc.stderr.decode('utf-8', 'replace')


run_command.calls = []


# ---- the scheme

def test_http_date_and_signing_string():
    assert H.http_date(0) == 'Thu, 01 Jan 1970 00:00:00 GMT'
    now = H.http_date()
    assert now.endswith(' GMT')
    assert abs(email.utils.parsedate_to_datetime(now).timestamp() - time.time()) < 5
    assert H.signing_string('Thu, 01 Jan 1970 00:00:00 GMT') == 'date: Thu, 01 Jan 1970 00:00:00 GMT'


def test_authorization_header_format():
    assert H.authorization_header('alice', 'rsa-sha256', b'\x01\x02') == \
        'Signature keyId="alice",algorithm="rsa-sha256",signature="AQI="'
    for bad in ('', 'al"ice', 'a\nb', None, 'caf\u00e9'):
        with pytest.raises(UsageError) as exc:
            H.authorization_header(bad, 'rsa-sha256', b'x')
        assert exc.value.details['field'] == 'user'


@pytest.mark.parametrize('fmt', ['pkcs1', 'pkcs8', 'openssh'])
def test_key_file_signer_cryptography(tmp_path, rsa_key, fmt):
    path = write_key(tmp_path, rsa_key, fmt)
    signer = H.KeyFileSigner(path)
    assert signer.backend == 'cryptography'
    algorithm, sig = signer.sign(b'date: x')
    assert algorithm == 'rsa-sha256'
    assert verify(rsa_key, sig, b'date: x')
    assert signer.fingerprint == H.fingerprint_sha256(public_blob(rsa_key))
    assert signer.describe() == dict(source='key_file', path=path, backend='cryptography', fingerprint=signer.fingerprint)


@pytest.mark.parametrize('fmt', ['pkcs1', 'pkcs8', 'openssh'])
def test_encrypted_key_needs_passphrase(tmp_path, rsa_key, fmt):
    path = write_key(tmp_path, rsa_key, fmt, passphrase=PASSPHRASE)
    with pytest.raises(SigningError) as exc:
        H.KeyFileSigner(path)
    assert 'encrypted' in str(exc.value) and 'key_passphrase' in str(exc.value)
    assert exc.value.details['field'] == 'key_file'
    if fmt == 'openssh' and not HAS_BCRYPT:
        with pytest.raises(SigningError) as exc:
            H.KeyFileSigner(path, passphrase=PASSPHRASE)
        assert 'bcrypt' in str(exc.value) and PASSPHRASE not in str(exc.value)
        return
    signer = H.KeyFileSigner(path, passphrase=PASSPHRASE)
    assert verify(rsa_key, signer.sign(b'date: y')[1], b'date: y')
    assert PASSPHRASE not in repr(signer)
    with pytest.raises(SigningError) as exc:
        H.KeyFileSigner(path, passphrase='wrong ' + PASSPHRASE)
    assert 'wrong key_passphrase' in str(exc.value)
    assert PASSPHRASE not in str(exc.value)


def test_passphrase_for_plain_key_is_ignored(tmp_path, rsa_key):
    signer = H.KeyFileSigner(write_key(tmp_path, rsa_key, 'pkcs1'), passphrase='unused')
    assert verify(rsa_key, signer.sign(b'z')[1], b'z')


def test_non_rsa_keys_are_refused(tmp_path):
    for name, key in (('ed', ed25519.Ed25519PrivateKey.generate()), ('ec', ec.generate_private_key(ec.SECP256R1()))):
        for fmt in ('pkcs8', 'openssh') + (('pkcs1',) if name == 'ec' else ()):
            path = write_key(tmp_path, key, fmt, name='%s-%s' % (name, fmt))
            with pytest.raises(SigningError) as exc:
                H.KeyFileSigner(path)
            assert 'not an RSA key' in str(exc.value), (name, fmt)
            assert exc.value.details['field'] == 'key_file'


def test_bad_key_files(tmp_path, rsa_key):
    with pytest.raises(SigningError) as exc:
        H.KeyFileSigner(str(tmp_path / 'missing'))
    assert 'cannot read key_file' in str(exc.value)
    pub = tmp_path / 'key.pub'
    pub.write_text(public_line(rsa_key) + '\n')
    with pytest.raises(SigningError) as exc:
        H.KeyFileSigner(str(pub))
    assert 'public key' in str(exc.value)
    junk = tmp_path / 'junk'
    junk.write_text('hello')
    with pytest.raises(SigningError) as exc:
        H.KeyFileSigner(str(junk))
    assert 'not a PEM or OpenSSH private key' in str(exc.value)


def test_fingerprints(rsa_key, tmp_path):
    blob = public_blob(rsa_key)
    sha = H.fingerprint_sha256(blob)
    md5 = H.fingerprint_md5(blob)
    assert sha.startswith('SHA256:') and not sha.endswith('=')
    assert md5.startswith('MD5:') and len(md5) == 4 + 47
    assert H.key_id_matches(sha, blob) and H.key_id_matches(md5, blob) and H.key_id_matches(md5[4:].upper(), blob)
    assert not H.key_id_matches('SHA256:nope', blob) and not H.key_id_matches('alice', blob)
    assert H.blob_key_type(blob) == 'ssh-rsa'
    n = rsa_key.public_key().public_numbers()
    assert H.rsa_public_blob(n.n, n.e) == blob
    if shutil.which('ssh-keygen'):
        pub = tmp_path / 'k.pub'
        pub.write_text(public_line(rsa_key) + ' comment\n')
        out = subprocess.check_output(['ssh-keygen', '-l', '-f', str(pub)]).decode()
        assert out.split()[1] == sha
        out = subprocess.check_output(['ssh-keygen', '-l', '-E', 'md5', '-f', str(pub)]).decode()
        assert out.split()[1] == md5


# ---- openssl fallback

needs_openssl = pytest.mark.skipif(OPENSSL is None, reason='no openssl command')


@needs_openssl
@pytest.mark.parametrize('fmt', ['pkcs1', 'pkcs8', 'openssh'])
def test_openssl_backend(tmp_path, rsa_key, fmt):
    path = write_key(tmp_path, rsa_key, fmt)
    run_command.calls[:] = []
    signer = H.KeyFileSigner(path, backend='openssl', run_command=run_command)
    assert signer.backend == 'openssl'
    assert signer.fingerprint == H.fingerprint_sha256(public_blob(rsa_key))
    algorithm, sig = signer.sign(b'date: Thu, 01 Jan 1970 00:00:00 GMT')
    assert algorithm == 'rsa-sha256'
    assert verify(rsa_key, sig, b'date: Thu, 01 Jan 1970 00:00:00 GMT')
    (call,) = run_command.calls
    assert call['args'][:6] == [OPENSSL, 'dgst', '-sha256', '-sign', '/dev/stdin', '-out']
    assert not os.path.exists(os.path.dirname(call['args'][6])), 'the temporary directory was not removed'
    assert 'PRIVATE KEY' not in ' '.join(call['args'])


@needs_openssl
def test_openssl_backend_encrypted_pem(tmp_path, rsa_key):
    path = write_key(tmp_path, rsa_key, 'pkcs1', passphrase=PASSPHRASE)
    run_command.calls[:] = []
    signer = H.KeyFileSigner(path, passphrase=PASSPHRASE, backend='openssl', run_command=run_command)
    assert signer.fingerprint is None  # not known without decrypting
    assert verify(rsa_key, signer.sign(b'abc')[1], b'abc')
    (call,) = run_command.calls
    assert PASSPHRASE not in ' '.join(call['args'])  # in the environment only
    assert PASSPHRASE in call['env'].values()
    bad = H.KeyFileSigner(path, passphrase='wrong', backend='openssl', run_command=run_command)
    with pytest.raises(SigningError) as exc:
        bad.sign(b'abc')
    assert 'openssl could not sign' in str(exc.value)


def test_openssl_encrypted_openssh_needs_cryptography(tmp_path, rsa_key):
    path = write_key(tmp_path, rsa_key, 'openssh', passphrase=PASSPHRASE)
    with pytest.raises(SigningError) as exc:
        H.KeyFileSigner(path, passphrase=PASSPHRASE, backend='openssl', run_command=run_command)
    assert 'cryptography' in str(exc.value) and 'ssh-keygen -p -m PEM' in str(exc.value)


def test_openssl_missing(tmp_path, rsa_key):
    path = write_key(tmp_path, rsa_key)
    with pytest.raises(SigningError) as exc:
        H.KeyFileSigner(path, backend='openssl', openssl_path='/nonexistent/openssl', run_command=run_command)
    assert exc.value.details['field'] == 'openssl_path'


def test_auto_backend_without_cryptography(monkeypatch, tmp_path, rsa_key):
    monkeypatch.setattr(H, '_load_cryptography', lambda: None)
    if OPENSSL is None:
        with pytest.raises(SigningError):
            H.KeyFileSigner(write_key(tmp_path, rsa_key), run_command=run_command)
        return
    signer = H.KeyFileSigner(write_key(tmp_path, rsa_key), run_command=run_command)
    assert signer.backend == 'openssl'
    assert verify(rsa_key, signer.sign(b'q')[1], b'q')


# ---- ssh-agent

def _s(data):
    return struct.pack('>I', len(data)) + data


class FakeAgent(object):
    """A minimal ssh-agent: lists its keys, signs with RSA (sha2-256 when asked, else sha1)."""

    def __init__(self, keys, honour_flags=True, refuse=False):
        self.dir = tempfile.mkdtemp(prefix='agent')  # short: unix socket paths are limited
        self.path = os.path.join(self.dir, 'sock')
        self.keys = keys
        self.honour_flags = honour_flags
        self.refuse = refuse
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(5)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _blob(self, key):
        return base64.b64decode(public_line(key).split()[1])

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                while True:
                    head = conn.recv(4)
                    if len(head) < 4:
                        break
                    n = struct.unpack('>I', head)[0]
                    msg = b''
                    while len(msg) < n:
                        msg += conn.recv(n - len(msg))
                    reply = self._handle(msg[0], msg[1:])
                    conn.sendall(struct.pack('>I', len(reply)) + reply)

    def _handle(self, kind, body):
        self.requests.append(kind)
        if kind == 11:
            out = struct.pack('>I', len(self.keys))
            for key, comment in self.keys:
                out += _s(self._blob(key)) + _s(comment.encode())
            return bytes([12]) + out
        if kind == 13 and not self.refuse:
            r = H._Reader(body)
            blob, data, flags = r.string(), r.string(), r.uint32()
            for key, _c in self.keys:
                if self._blob(key) == blob and isinstance(key, rsa.RSAPrivateKey):
                    if flags & 2 and self.honour_flags:
                        return bytes([14]) + _s(_s(b'rsa-sha2-256') + _s(key.sign(data, padding.PKCS1v15(), hashes.SHA256())))
                    return bytes([14]) + _s(_s(b'ssh-rsa') + _s(key.sign(data, padding.PKCS1v15(), hashes.SHA1())))
        return bytes([5])

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake_agent():
    agents = []

    def make(keys, **kw):
        agent = FakeAgent(keys, **kw)
        agents.append(agent)
        return agent

    yield make
    for a in agents:
        a.close()


def test_agent_first_rsa_key(fake_agent, rsa_key, other_rsa_key):
    ed = ed25519.Ed25519PrivateKey.generate()
    agent = fake_agent([(ed, 'ed'), (rsa_key, 'one'), (other_rsa_key, 'two')])
    signer = H.AgentSigner(socket_path=agent.path)
    assert signer.fingerprint == H.fingerprint_sha256(public_blob(rsa_key))
    algorithm, sig = signer.sign(b'date: now')
    assert algorithm == 'rsa-sha256' and verify(rsa_key, sig, b'date: now')
    assert signer.describe() == dict(source='ssh-agent', backend='ssh-agent', fingerprint=signer.fingerprint)


def test_agent_key_id(fake_agent, rsa_key, other_rsa_key):
    ed = ed25519.Ed25519PrivateKey.generate()
    agent = fake_agent([(ed, 'ed'), (rsa_key, 'one'), (other_rsa_key, 'two')])
    for key_id in (H.fingerprint_sha256(public_blob(other_rsa_key)), H.fingerprint_md5(public_blob(other_rsa_key))[4:]):
        signer = H.AgentSigner(socket_path=agent.path, key_id=key_id)
        assert verify(other_rsa_key, signer.sign(b'x')[1], b'x')
    with pytest.raises(SigningError) as exc:
        H.AgentSigner(socket_path=agent.path, key_id=H.fingerprint_sha256(public_blob(ed)))
    assert 'ssh-ed25519' in str(exc.value) and 'only RSA' in str(exc.value)
    assert exc.value.details['field'] == 'key_id'
    with pytest.raises(SigningError) as exc:
        H.AgentSigner(socket_path=agent.path, key_id='SHA256:nothere')
    assert 'has no key SHA256:nothere' in str(exc.value)
    assert H.fingerprint_sha256(public_blob(rsa_key)) in str(exc.value)  # the listing
    with pytest.raises(UsageError) as exc:
        H.AgentSigner(socket_path=agent.path, key_id='my key')
    assert exc.value.details['field'] == 'key_id'


def test_agent_without_rsa_key(fake_agent):
    agent = fake_agent([(ed25519.Ed25519PrivateKey.generate(), 'ed')])
    with pytest.raises(SigningError) as exc:
        H.AgentSigner(socket_path=agent.path)
    assert 'no RSA key' in str(exc.value) and 'ssh-ed25519 SHA256:' in str(exc.value)
    empty = fake_agent([])
    with pytest.raises(SigningError) as exc:
        H.AgentSigner(socket_path=empty.path)
    assert 'no keys' in str(exc.value)


def test_agent_sha1_only_and_refusal(fake_agent, rsa_key):
    old = fake_agent([(rsa_key, 'one')], honour_flags=False)
    algorithm, sig = H.AgentSigner(socket_path=old.path).sign(b'd')
    assert algorithm == 'rsa-sha1' and verify(rsa_key, sig, b'd', 'rsa-sha1')
    locked = fake_agent([(rsa_key, 'one')], refuse=True)
    signer = H.AgentSigner(socket_path=locked.path)
    with pytest.raises(SigningError) as exc:
        signer.sign(b'd')
    assert 'refused to sign' in str(exc.value)


def test_agent_socket_problems(monkeypatch, tmp_path):
    monkeypatch.delenv('SSH_AUTH_SOCK', raising=False)
    with pytest.raises(SigningError) as exc:
        H.AgentSigner()
    assert 'SSH_AUTH_SOCK is not set' in str(exc.value) and exc.value.details['field'] == 'ssh_agent'
    monkeypatch.setenv('SSH_AUTH_SOCK', str(tmp_path / 'nothing'))
    with pytest.raises(SigningError) as exc:
        H.AgentSigner()
    assert 'cannot talk to the ssh-agent' in str(exc.value)


@pytest.mark.skipif(not (shutil.which('ssh-agent') and shutil.which('ssh-add')), reason='no ssh-agent/ssh-add')
def test_real_ssh_agent(tmp_path, rsa_key):
    d = tempfile.mkdtemp(prefix='ragent')
    sock = os.path.join(d, 'sock')
    agent = subprocess.Popen(['ssh-agent', '-D', '-a', sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.05)
        env = dict(os.environ, SSH_AUTH_SOCK=sock)
        ed_path = write_key(tmp_path, ed25519.Ed25519PrivateKey.generate(), 'openssh', name='ed')
        rsa_path = write_key(tmp_path, rsa_key, 'openssh', name='rsa')
        for path in (ed_path, rsa_path):
            subprocess.check_call(['ssh-add', path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        signer = H.AgentSigner(socket_path=sock)
        assert signer.fingerprint == H.fingerprint_sha256(public_blob(rsa_key))
        algorithm, sig = signer.sign(b'date: Thu, 01 Jan 1970 00:00:00 GMT')
        assert algorithm == 'rsa-sha256'
        assert verify(rsa_key, sig, b'date: Thu, 01 Jan 1970 00:00:00 GMT')
        listed = subprocess.check_output(['ssh-add', '-l'], env=env).decode()
        assert signer.fingerprint in listed
        H.AgentSigner(socket_path=sock, key_id=signer.fingerprint)
    finally:
        agent.terminate()
        agent.wait(10)
        shutil.rmtree(d, ignore_errors=True)


# ---- the auth hooks, checked by the test server's http-signature 0.10 parser

class _Req(object):
    def __init__(self):
        self.headers = {}


def test_signature_auth_headers_verify(tmp_path, rsa_key):
    clock = [1700000000.0]
    auth = H.SignatureAuth('alice', H.KeyFileSigner(write_key(tmp_path, rsa_key)), clock=lambda: clock[0])
    req = auth(_Req())
    assert req.headers['Date'] == H.http_date(1700000000)
    assert req.headers['Authorization'].startswith('Signature keyId="alice",algorithm="rsa-sha256",signature="')
    hdrs = dict((k.lower(), v) for k, v in req.headers.items())
    key_id, alg, sig, signing = imgapi_server.parse_signature_request(hdrs, 'GET', '/ping', now=clock[0] + 10)
    assert (key_id, alg, signing) == ('alice', 'RSA-SHA256', 'date: ' + req.headers['Date'])
    keys = imgapi_server.AuthKeys({'alice': [public_line(rsa_key)]})
    assert keys.verify(keys.get('alice')[0], alg, signing, sig)
    # a fresh Date (and signature) per request
    clock[0] += 61
    again = auth(_Req())
    assert again.headers['Date'] != req.headers['Date']
    assert again.headers['Authorization'] != req.headers['Authorization']
    assert auth.describe()['user'] == 'alice' and auth.describe()['type'] == 'signature'
    with pytest.raises(InvalidSignature):
        rsa_key.public_key().verify(base64.b64decode(sig), b'date: other', padding.PKCS1v15(), hashes.SHA256())


def test_basic_auth():
    auth = H.BasicAuth('bob', 's3cr3t:pw')
    req = auth(_Req())
    assert req.headers['Authorization'] == 'Basic ' + base64.b64encode(b'bob:s3cr3t:pw').decode()
    assert 's3cr3t' not in repr(auth) and auth.describe() == dict(type='basic', user='bob')
    with pytest.raises(UsageError):
        H.BasicAuth('a:b', 'x')


def test_signed_date_is_the_header_sent(rsa_key, tmp_path):
    auth = H.SignatureAuth('alice', H.KeyFileSigner(write_key(tmp_path, rsa_key)))
    headers = auth.headers()
    sig = base64.b64decode(headers['Authorization'].split('signature="')[1].rstrip('"'))
    assert verify(rsa_key, sig, ('date: %s' % headers['Date']).encode())
