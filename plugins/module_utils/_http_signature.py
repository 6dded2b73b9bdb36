# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""IMGAPI authentication: the Joyent HTTP "Signature" scheme, and HTTP Basic.

IMGAPI (``authType: signature``) verifies requests with ``http-signature``
0.10, the old Joyent scheme, not the later draft with ``(request-target)``.
A request carries::

    Date: Thu, 26 Nov 2026 22:14:26 GMT
    Authorization: Signature keyId="<user>",algorithm="rsa-sha256",signature="<base64>"

and the signature is over the string ``date: <the Date value>``. ``keyId`` is
the user name; the server tries each public key it has for that user.
IMGAPI accepts only ``rsa-sha1``, ``rsa-sha256`` and ``dsa-sha1``, so only
RSA keys are supported here.

Signers:

* ``KeyFileSigner``: a private key file (PEM PKCS#1 or PKCS#8, or the
  OpenSSH format, optionally encrypted). It uses the ``cryptography``
  library when it can be imported, else the ``openssl`` command run with the
  caller's ``run_command`` (which carries a deadline). The key goes to
  ``openssl`` on its standard input, the passphrase in its environment:
  neither is written to a file or a command line. An encrypted OpenSSH-format
  key needs ``cryptography``.
* ``AgentSigner``: a key held by an ``ssh-agent``, over ``SSH_AUTH_SOCK``
  (the agent protocol spoken in pure Python). It asks for an
  ``rsa-sha2-256`` signature and falls back to ``rsa-sha1`` for an agent
  that only signs ``ssh-rsa``.

``SignatureAuth`` and ``BasicAuth`` are called with each prepared request
(``requests``' auth protocol) and set its headers; a signature is computed
per request, so every attempt of a retried request has a fresh ``Date``.
Secrets (passphrase, password) are kept out of every message and ``repr``.

Errors raised: SigningError, UsageError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import email.utils
import hashlib
import os
import re
import shutil
import socket
import struct
import tempfile
import time
import traceback

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import SigningError, UsageError

# cryptography is imported on first use (it costs a noticeable part of a module's start-up)
_CRYPTO = {}
CRYPTOGRAPHY_IMPORT_ERROR = None

# algorithms IMGAPI accepts (its own list, after http-signature's)
IMGAPI_ALGORITHMS = ('rsa-sha1', 'rsa-sha256', 'dsa-sha1')

# ssh-agent protocol (draft-miller-ssh-agent)
SSH_AGENT_FAILURE = 5
SSH2_AGENTC_REQUEST_IDENTITIES = 11
SSH2_AGENT_IDENTITIES_ANSWER = 12
SSH2_AGENTC_SIGN_REQUEST = 13
SSH2_AGENT_SIGN_RESPONSE = 14
SSH_AGENT_RSA_SHA2_256 = 2
_AGENT_MAX_MESSAGE = 256 * 1024

_PASSPHRASE_ENV = 'SMARTOS_IMGADM_KEY_PASSPHRASE'
_PEM_RE = re.compile(br'-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----', re.S)
_MD5_FP_RE = re.compile(r'^(?:MD5:)?((?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2})$')
_RSA_OID = b'\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01'  # 1.2.840.113549.1.1.1 rsaEncryption


def _load_cryptography():
    """The cryptography pieces used here, imported once; None when the library is missing."""
    global CRYPTOGRAPHY_IMPORT_ERROR
    if not _CRYPTO:
        try:
            from cryptography.exceptions import UnsupportedAlgorithm
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import padding, rsa
        except ImportError:
            CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
            _CRYPTO['missing'] = True
        else:
            _CRYPTO.update(hashes=hashes, serialization=serialization, padding=padding, rsa=rsa,
                           UnsupportedAlgorithm=UnsupportedAlgorithm)
    return None if _CRYPTO.get('missing') else _CRYPTO


def has_cryptography():
    """True when the ``cryptography`` library can be imported."""
    return _load_cryptography() is not None


# ---- the scheme

def http_date(when=None):
    """An RFC 1123 ``Date`` value in GMT (``Thu, 26 Nov 2026 22:14:26 GMT``)."""
    return email.utils.formatdate(time.time() if when is None else when, usegmt=True)


def signing_string(date):
    """What http-signature 0.10 signs by default: ``date: <Date header value>``."""
    return 'date: %s' % date


def check_key_id(user):
    """The IMGAPI user name (``keyId``): printable ASCII without ``"``."""
    if not isinstance(user, str) or not user:
        raise UsageError('user (the IMGAPI user name that signs requests) must be a non-empty string', field='user')
    if any(c == '"' or ord(c) < 0x20 or ord(c) > 0x7e for c in user):
        raise UsageError('user %r cannot be sent as an http-signature keyId: use printable ASCII without \'"\'' % user,
                         field='user')
    return user


def authorization_header(key_id, algorithm, signature):
    """``Signature keyId="..",algorithm="..",signature=".."`` (comma-separated, no spaces)."""
    if isinstance(signature, bytes):
        signature = base64.b64encode(signature).decode('ascii')
    return 'Signature keyId="%s",algorithm="%s",signature="%s"' % (check_key_id(key_id), algorithm, signature)


# ---- SSH wire format and fingerprints

def _ssh_string(data):
    if isinstance(data, str):
        data = data.encode('utf-8')
    return struct.pack('>I', len(data)) + data


def _ssh_mpint(value):
    if value == 0:
        return _ssh_string(b'')
    raw = value.to_bytes((value.bit_length() + 8) // 8, 'big')  # one spare bit keeps it positive
    return _ssh_string(raw)


class _Reader(object):
    """Reads SSH wire-format fields; ValueError when the data is short."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def uint32(self):
        if self.pos + 4 > len(self.data):
            raise ValueError('truncated data')
        value = struct.unpack('>I', self.data[self.pos:self.pos + 4])[0]
        self.pos += 4
        return value

    def byte(self):
        if self.pos + 1 > len(self.data):
            raise ValueError('truncated data')
        value = self.data[self.pos]
        self.pos += 1
        return value

    def string(self):
        n = self.uint32()
        if self.pos + n > len(self.data):
            raise ValueError('truncated data')
        value = self.data[self.pos:self.pos + n]
        self.pos += n
        return value

    def mpint(self):
        return int.from_bytes(self.string(), 'big')


def rsa_public_blob(n, e):
    """The SSH public key blob of an RSA key: string "ssh-rsa", mpint e, mpint n."""
    return _ssh_string(b'ssh-rsa') + _ssh_mpint(e) + _ssh_mpint(n)


def blob_key_type(blob):
    """The key type named in an SSH public key blob (``ssh-rsa``, ``ssh-ed25519``...), or ``unknown``."""
    try:
        return _Reader(blob).string().decode('ascii', 'replace')
    except ValueError:
        return 'unknown'


def fingerprint_sha256(blob):
    """``SHA256:<base64 without padding>``, as ``ssh-keygen -l`` prints it."""
    return 'SHA256:' + base64.b64encode(hashlib.sha256(blob).digest()).decode('ascii').rstrip('=')


def fingerprint_md5(blob):
    """``MD5:aa:bb:..``, as ``ssh-keygen -l -E md5`` prints it."""
    digest = hashlib.md5(blob).hexdigest()
    return 'MD5:' + ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


def key_id_matches(key_id, blob):
    """True if ``key_id`` is this key's SHA256 or MD5 fingerprint (with or without the ``MD5:`` prefix)."""
    key_id = key_id.strip()
    if key_id.startswith('SHA256:'):
        return key_id.rstrip('=') == fingerprint_sha256(blob)
    m = _MD5_FP_RE.match(key_id)
    if m:
        return 'MD5:' + m.group(1).lower() == fingerprint_md5(blob)
    return False


def _check_fingerprint_syntax(key_id):
    key_id = key_id.strip()
    if key_id.startswith('SHA256:') or _MD5_FP_RE.match(key_id):
        return key_id
    raise UsageError('key_id "%s" is not a key fingerprint: give it as "SHA256:<base64>" or as the MD5 form '
                     '"aa:bb:...:ff" (see ssh-keygen -l / ssh-add -l)' % key_id, field='key_id')


# ---- DER (just enough for RSA keys)

def _der_length(n):
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(raw)]) + raw


def _der_int(value):
    raw = value.to_bytes((value.bit_length() + 8) // 8, 'big') if value else b'\x00'
    return b'\x02' + _der_length(len(raw)) + raw


def _der_seq(*items):
    body = b''.join(items)
    return b'\x30' + _der_length(len(body)) + body


def _der_tlv(data, pos=0):
    """(tag, value, next position) of the DER element at ``pos``; ValueError if malformed."""
    if pos + 2 > len(data):
        raise ValueError('truncated DER')
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        nbytes = length & 0x7f
        if nbytes == 0 or nbytes > 4 or pos + nbytes > len(data):
            raise ValueError('bad DER length')
        length = int.from_bytes(data[pos:pos + nbytes], 'big')
        pos += nbytes
    if pos + length > len(data):
        raise ValueError('truncated DER')
    return tag, data[pos:pos + length], pos + length


def _der_ints(seq_body):
    out = []
    pos = 0
    while pos < len(seq_body):
        tag, value, pos = _der_tlv(seq_body, pos)
        if tag != 0x02:
            raise ValueError('not an INTEGER')
        out.append(int.from_bytes(value, 'big'))
    return out


def _pkcs1_public_numbers(der):
    """(n, e) of a PKCS#1 RSAPrivateKey."""
    tag, body, _end = _der_tlv(der)
    if tag != 0x30:
        raise ValueError('not a SEQUENCE')
    ints = _der_ints(body)
    if len(ints) < 9:
        raise ValueError('not an RSA private key')
    return ints[1], ints[2]


def _pkcs8_rsa_der(der):
    """The PKCS#1 key inside an unencrypted PKCS#8 PrivateKeyInfo, or None when it is not RSA."""
    tag, body, _end = _der_tlv(der)
    if tag != 0x30:
        raise ValueError('not a SEQUENCE')
    _tag, _version, pos = _der_tlv(body)
    tag, alg, pos = _der_tlv(body, pos)
    if tag != 0x30:
        raise ValueError('no AlgorithmIdentifier')
    tag, oid, _p = _der_tlv(alg)
    if tag != 0x06:
        raise ValueError('no algorithm OID')
    if oid != _RSA_OID:
        return None
    tag, inner, pos = _der_tlv(body, pos)
    if tag != 0x04:
        raise ValueError('no private key OCTET STRING')
    return inner


def _pem(label, der):
    b64 = base64.b64encode(der).decode('ascii')
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ('-----BEGIN %s-----\n%s\n-----END %s-----\n' % (label, '\n'.join(lines), label)).encode('ascii')


# ---- private key files

class _KeyInfo(object):
    """What can be told about a private key file without decrypting it."""

    def __init__(self, fmt, encrypted, key_type=None, public=None, pkcs1_der=None):
        self.fmt = fmt                # 'pkcs1', 'pkcs8', 'pkcs8-encrypted', 'openssh'
        self.encrypted = encrypted
        self.key_type = key_type      # 'ssh-rsa', 'ssh-ed25519'... or None (unknown until decrypted)
        self.public = public          # (n, e) when known
        self.pkcs1_der = pkcs1_der    # the unencrypted key in PKCS#1 DER, when it could be built


def _parse_openssh(body, path):
    """Facts about an OpenSSH-format private key (``openssh-key-v1``)."""
    magic = b'openssh-key-v1\x00'
    if not body.startswith(magic):
        raise SigningError('key_file "%s" is not a valid OpenSSH private key' % path, field='key_file')
    r = _Reader(body[len(magic):])
    try:
        cipher = r.string().decode('ascii', 'replace')
        r.string()  # kdf name
        r.string()  # kdf options
        nkeys = r.uint32()
        if nkeys != 1:
            raise ValueError('%d keys in the file' % nkeys)
        public_blob = r.string()
        private = r.string()
    except ValueError as e:
        raise SigningError('key_file "%s" is not a valid OpenSSH private key: %s' % (path, e), field='key_file')
    key_type = blob_key_type(public_blob)
    pub = None
    if key_type == 'ssh-rsa':
        pr = _Reader(public_blob)
        pr.string()
        e = pr.mpint()
        n = pr.mpint()
        pub = (n, e)
    info = _KeyInfo('openssh', cipher != 'none', key_type, pub)
    if info.encrypted or key_type != 'ssh-rsa':
        return info
    pr = _Reader(private)
    try:
        check1, check2 = pr.uint32(), pr.uint32()
        if check1 != check2:
            raise ValueError('check bytes differ')
        if pr.string() != b'ssh-rsa':
            raise ValueError('the private part is not an RSA key')
        n, e, d, iqmp, p, q = pr.mpint(), pr.mpint(), pr.mpint(), pr.mpint(), pr.mpint(), pr.mpint()
    except ValueError as exc:
        raise SigningError('key_file "%s" is not a valid OpenSSH private key: %s' % (path, exc), field='key_file')
    info.pkcs1_der = _der_seq(_der_int(0), _der_int(n), _der_int(e), _der_int(d), _der_int(p), _der_int(q),
                              _der_int(d % (p - 1)), _der_int(d % (q - 1)), _der_int(iqmp))
    return info


def inspect_key_file(data, path='key'):
    """Tell the format, encryption and (when visible) the type of a private key file's bytes.

    Raises SigningError for something that is not a private key, or a key
    that is not RSA when the type can be seen without decrypting it.
    """
    m = _PEM_RE.search(data)
    if not m:
        if data.lstrip().startswith(b'ssh-') or b'PUBLIC KEY' in data:
            raise SigningError('key_file "%s" is a public key: give the private key' % path, field='key_file')
        raise SigningError('key_file "%s" is not a PEM or OpenSSH private key' % path, field='key_file')
    label = m.group(1).decode('ascii')
    text = m.group(2)
    headers = {}
    b64 = []
    for line in text.splitlines():
        line = line.strip()
        if b':' in line:
            k, _sep, v = line.partition(b':')
            headers[k.strip().lower()] = v.strip()
        elif line:
            b64.append(line)
    try:
        body = base64.b64decode(b''.join(b64), validate=True)
    except (binascii.Error, ValueError):
        raise SigningError('key_file "%s" is not a valid %s (bad base64)' % (path, label), field='key_file')
    if label == 'OPENSSH PRIVATE KEY':
        info = _parse_openssh(body, path)
    elif label == 'RSA PRIVATE KEY':
        encrypted = b'ENCRYPTED' in headers.get(b'proc-type', b'')
        info = _KeyInfo('pkcs1', encrypted, 'ssh-rsa')
        if not encrypted:
            try:
                info.public = _pkcs1_public_numbers(body)
            except ValueError as e:
                raise SigningError('key_file "%s" is not a valid RSA private key: %s' % (path, e), field='key_file')
            info.pkcs1_der = body
    elif label == 'PRIVATE KEY':
        try:
            inner = _pkcs8_rsa_der(body)
            if inner is not None:
                pub = _pkcs1_public_numbers(inner)
        except ValueError as e:
            raise SigningError('key_file "%s" is not a valid private key: %s' % (path, e), field='key_file')
        info = _KeyInfo('pkcs8', False, 'ssh-rsa' if inner is not None else 'non-RSA')
        if inner is not None:
            info.public = pub
            info.pkcs1_der = inner
    elif label == 'ENCRYPTED PRIVATE KEY':
        info = _KeyInfo('pkcs8-encrypted', True)
    elif label in ('EC PRIVATE KEY', 'DSA PRIVATE KEY'):
        info = _KeyInfo('pem', False, label.split()[0])
    else:
        raise SigningError('key_file "%s" holds a "%s", not a private key' % (path, label), field='key_file')
    if info.key_type is not None and info.key_type != 'ssh-rsa':
        raise SigningError('key_file "%s" is not an RSA key (%s): IMGAPI accepts only RSA keys for http-signature '
                           '(rsa-sha256, rsa-sha1)' % (path, info.key_type), field='key_file')
    return info


class KeyFileSigner(object):
    """Signs with an RSA private key file (rsa-sha256).

    ``backend``: ``auto`` (cryptography when importable, else openssl),
    ``cryptography`` or ``openssl``. The openssl backend needs
    ``run_command`` (the ``module.run_command`` convention: ``args, data=,
    binary_data=, environ_update=`` returning ``(rc, out, err)``).
    """

    algorithm = 'rsa-sha256'

    def __init__(self, path, passphrase=None, backend='auto', openssl_path='openssl', run_command=None):
        self.path = path
        self._passphrase = passphrase or None
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as e:
            raise SigningError('cannot read key_file "%s": %s' % (path, e.strerror or e), field='key_file')
        info = inspect_key_file(data, path)
        if info.encrypted and not self._passphrase:
            raise SigningError('key_file "%s" is encrypted: give its passphrase with key_passphrase, '
                               'or load the key into an ssh-agent and use ssh_agent' % path, field='key_file')
        crypto = _load_cryptography() if backend in ('auto', 'cryptography') else None
        if backend == 'cryptography' and crypto is None:
            raise SigningError('the cryptography Python library is not installed', field='key_file')
        if backend not in ('auto', 'cryptography', 'openssl'):
            raise UsageError('unknown signing backend %r' % backend)
        self.fingerprint = None
        self._key = None
        self._key_pem = None
        self._run_command = run_command
        self._openssl = None
        if crypto is not None:
            self.backend = 'cryptography'
            self._key = self._load_with_cryptography(crypto, data, info)
            numbers = self._key.public_key().public_numbers()
            self.fingerprint = fingerprint_sha256(rsa_public_blob(numbers.n, numbers.e))
        else:
            self.backend = 'openssl'
            if info.fmt == 'openssh':
                if info.encrypted:
                    raise SigningError(
                        'key_file "%s" is an encrypted OpenSSH-format key, which needs the cryptography Python '
                        'library: install it, convert the key to PEM (ssh-keygen -p -m PEM -f KEY), or use '
                        'ssh_agent' % path, field='key_file')
                self._key_pem = _pem('RSA PRIVATE KEY', info.pkcs1_der)
            else:
                self._key_pem = data
            if info.public is not None:
                self.fingerprint = fingerprint_sha256(rsa_public_blob(*info.public))
            self._openssl = self._find_openssl(openssl_path)
            if run_command is None:
                raise SigningError('signing with openssl needs a command runner (internal error)')

    def __repr__(self):
        return '<KeyFileSigner %s %s %s>' % (self.path, self.backend, self.fingerprint)

    def describe(self):
        return dict(source='key_file', path=self.path, backend=self.backend, fingerprint=self.fingerprint)

    def _load_with_cryptography(self, crypto, data, info):
        ser = crypto['serialization']
        password = self._passphrase.encode('utf-8') if info.encrypted else None
        try:
            if info.fmt == 'openssh':
                key = ser.load_ssh_private_key(data, password=password)
            else:
                key = ser.load_pem_private_key(data, password=password)
        except crypto['UnsupportedAlgorithm'] as e:
            hint = ''
            if info.fmt == 'openssh' and info.encrypted:
                hint = (' (an encrypted OpenSSH-format key needs the bcrypt Python library: install it, convert the '
                        'key to PEM with ssh-keygen -p -m PEM -f KEY, or use ssh_agent)')
            raise SigningError('key_file "%s" cannot be loaded: %s%s' % (self.path, e, hint), field='key_file')
        except (ValueError, TypeError) as e:
            hint = ' (wrong key_passphrase?)' if info.encrypted else ''
            raise SigningError('key_file "%s" cannot be loaded%s: %s' % (self.path, hint, e), field='key_file')
        except ImportError as e:  # e.g. bcrypt, needed for encrypted OpenSSH keys
            raise SigningError('key_file "%s" cannot be loaded: %s' % (self.path, e), field='key_file')
        if not isinstance(key, crypto['rsa'].RSAPrivateKey):
            raise SigningError('key_file "%s" is not an RSA key (%s): IMGAPI accepts only RSA keys for http-signature'
                               % (self.path, type(key).__name__.replace('PrivateKey', '').lstrip('_')), field='key_file')
        return key

    @staticmethod
    def _find_openssl(openssl_path):
        path = openssl_path or 'openssl'
        if os.path.isabs(path):
            if os.access(path, os.X_OK):
                return path
        else:
            found = shutil.which(path)
            if found:
                return found
        raise SigningError('the cryptography Python library is not installed and the openssl command ("%s", '
                           'openssl_path) was not found: one of them is needed to sign with key_file' % path,
                           field='openssl_path')

    def sign(self, data):
        """``(algorithm, signature bytes)`` of ``data`` (bytes)."""
        if self._key is not None:
            crypto = _load_cryptography()
            sig = self._key.sign(data, crypto['padding'].PKCS1v15(), crypto['hashes'].SHA256())
            return self.algorithm, sig
        return self.algorithm, self._sign_openssl(data)

    def _sign_openssl(self, data):
        tmpdir = tempfile.mkdtemp(prefix='imgadm-sign-')
        try:
            data_path = os.path.join(tmpdir, 'data')
            sig_path = os.path.join(tmpdir, 'sig')
            with open(data_path, 'wb') as f:
                f.write(data)
            # the key on stdin: nothing secret on disk or on the command line
            argv = [self._openssl, 'dgst', '-sha256', '-sign', '/dev/stdin', '-out', sig_path]
            env = None
            if self._passphrase:
                argv += ['-passin', 'env:%s' % _PASSPHRASE_ENV]
                env = {_PASSPHRASE_ENV: self._passphrase}
            argv.append(data_path)
            rc, _out, err = self._run_command(argv, data=self._key_pem, binary_data=True, environ_update=env)
            if rc != 0:
                err = (err or '').strip().splitlines()
                raise SigningError('openssl could not sign with key_file "%s" (exit %s)%s'
                                   % (self.path, rc, ': %s' % ' '.join(err[:3]) if err else ''),
                                   field='key_file')
            try:
                with open(sig_path, 'rb') as f:
                    sig = f.read()
            except OSError:
                sig = b''
            if not sig:
                raise SigningError('openssl produced no signature with key_file "%s"' % self.path, field='key_file')
            return sig
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


# ---- ssh-agent

class AgentSigner(object):
    """Signs with an RSA key held by an ssh-agent (``SSH_AUTH_SOCK``).

    ``key_id`` picks the key by fingerprint (``SHA256:...`` or the MD5
    ``aa:bb:..`` form); without it the agent's first RSA key is used.
    """

    backend = 'ssh-agent'

    def __init__(self, key_id=None, socket_path=None, timeout=30.0):
        self.socket_path = socket_path or os.environ.get('SSH_AUTH_SOCK')
        self.timeout = timeout
        if not self.socket_path:
            raise SigningError('ssh_agent: SSH_AUTH_SOCK is not set for the module: forward an agent to the host '
                               '(ssh ForwardAgent) or set SSH_AUTH_SOCK with the task\'s environment',
                               field='ssh_agent')
        if key_id is not None:
            key_id = _check_fingerprint_syntax(key_id)
        keys = self.identities()
        if key_id is not None:
            chosen = [k for k in keys if key_id_matches(key_id, k[0])]
            if not chosen:
                raise SigningError('the ssh-agent at %s has no key %s (it has: %s)'
                                   % (self.socket_path, key_id, self._listing(keys)), field='key_id')
            blob = chosen[0][0]
            if blob_key_type(blob) != 'ssh-rsa':
                raise SigningError('key %s in the ssh-agent is a %s key: IMGAPI accepts only RSA keys for '
                                   'http-signature (rsa-sha256, rsa-sha1)' % (key_id, blob_key_type(blob)),
                                   field='key_id')
        else:
            rsa_keys = [k for k in keys if blob_key_type(k[0]) == 'ssh-rsa']
            if not rsa_keys:
                raise SigningError('the ssh-agent at %s has no RSA key (it has: %s); IMGAPI accepts only RSA keys '
                                   'for http-signature' % (self.socket_path, self._listing(keys)), field='ssh_agent')
            blob = rsa_keys[0][0]
        self.blob = blob
        self.fingerprint = fingerprint_sha256(blob)

    def __repr__(self):
        return '<AgentSigner %s %s>' % (self.socket_path, self.fingerprint)

    def describe(self):
        return dict(source='ssh-agent', backend=self.backend, fingerprint=self.fingerprint)

    @staticmethod
    def _listing(keys):
        if not keys:
            return 'no keys'
        return ', '.join('%s %s' % (blob_key_type(b), fingerprint_sha256(b)) for b, _c in keys)

    def _call(self, msg_type, payload=b''):
        sock = None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
            sock.sendall(struct.pack('>IB', len(payload) + 1, msg_type) + payload)
            head = self._recv(sock, 4)
            length = struct.unpack('>I', head)[0]
            if length < 1 or length > _AGENT_MAX_MESSAGE:
                raise SigningError('the ssh-agent at %s sent a bad message length (%d)' % (self.socket_path, length),
                                   field='ssh_agent')
            body = self._recv(sock, length)
        except (socket.error, OSError) as e:
            raise SigningError('cannot talk to the ssh-agent at %s (SSH_AUTH_SOCK): %s' % (self.socket_path, e),
                               field='ssh_agent')
        finally:
            if sock is not None:
                sock.close()
        return body[0], body[1:]

    def _recv(self, sock, n):
        buf = b''
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise SigningError('the ssh-agent at %s closed the connection' % self.socket_path, field='ssh_agent')
            buf += chunk
        return buf

    def identities(self):
        """``[(public key blob, comment bytes)]`` of the agent's keys."""
        msg_type, body = self._call(SSH2_AGENTC_REQUEST_IDENTITIES)
        if msg_type != SSH2_AGENT_IDENTITIES_ANSWER:
            raise SigningError('the ssh-agent at %s refused to list its keys (message %d)' % (self.socket_path, msg_type),
                               field='ssh_agent')
        r = _Reader(body)
        keys = []
        try:
            for _i in range(r.uint32()):
                keys.append((r.string(), r.string()))
        except ValueError:
            raise SigningError('the ssh-agent at %s sent a malformed key list' % self.socket_path, field='ssh_agent')
        return keys

    def sign(self, data):
        """``(algorithm, signature bytes)``: rsa-sha256, or rsa-sha1 from an agent that only does ``ssh-rsa``."""
        payload = _ssh_string(self.blob) + _ssh_string(data) + struct.pack('>I', SSH_AGENT_RSA_SHA2_256)
        msg_type, body = self._call(SSH2_AGENTC_SIGN_REQUEST, payload)
        if msg_type == SSH_AGENT_FAILURE:
            raise SigningError('the ssh-agent at %s refused to sign with key %s (a locked agent, a declined '
                               'confirmation, or a key removed meanwhile)' % (self.socket_path, self.fingerprint),
                               field='ssh_agent')
        if msg_type != SSH2_AGENT_SIGN_RESPONSE:
            raise SigningError('the ssh-agent at %s answered a signing request with message %d'
                               % (self.socket_path, msg_type), field='ssh_agent')
        try:
            r = _Reader(_Reader(body).string())
            sig_type = r.string()
            sig = r.string()
        except ValueError:
            raise SigningError('the ssh-agent at %s sent a malformed signature' % self.socket_path, field='ssh_agent')
        if sig_type == b'rsa-sha2-256':
            return 'rsa-sha256', sig
        if sig_type == b'ssh-rsa':
            return 'rsa-sha1', sig
        raise SigningError('the ssh-agent at %s signed with "%s", which IMGAPI does not accept'
                           % (self.socket_path, sig_type.decode('ascii', 'replace')), field='ssh_agent')


# ---- auth hooks (called with each prepared request)

class SignatureAuth(object):
    """Sets ``Date`` and ``Authorization: Signature ...`` on each request, signed afresh."""

    kind = 'signature'

    def __init__(self, user, signer, clock=None):
        self.user = check_key_id(user)
        self.signer = signer
        self._clock = clock or time.time

    def __repr__(self):
        return '<SignatureAuth %s %r>' % (self.user, self.signer)

    def headers(self):
        """The ``Date`` and ``Authorization`` headers for one request."""
        date = http_date(self._clock())
        algorithm, sig = self.signer.sign(signing_string(date).encode('ascii'))
        return {'Date': date, 'Authorization': authorization_header(self.user, algorithm, sig)}

    def __call__(self, request):
        request.headers.update(self.headers())
        return request

    def describe(self):
        info = dict(type=self.kind, user=self.user)
        info.update(self.signer.describe())
        return info


class BasicAuth(object):
    """Sets ``Authorization: Basic ...`` (for an IMGAPI behind a proxy that checks it)."""

    kind = 'basic'

    def __init__(self, username, password):
        if not username or ':' in username:
            raise UsageError('url_username must be non-empty and cannot contain ":"', field='url_username')
        self.username = username
        token = base64.b64encode(('%s:%s' % (username, password or '')).encode('utf-8')).decode('ascii')
        self._header = 'Basic ' + token

    def __repr__(self):
        return '<BasicAuth %s>' % self.username

    def __call__(self, request):
        request.headers['Authorization'] = self._header
        return request

    def describe(self):
        return dict(type=self.kind, user=self.username)


__all__ = (
    'IMGAPI_ALGORITHMS', 'CRYPTOGRAPHY_IMPORT_ERROR', 'has_cryptography', 'http_date', 'signing_string',
    'check_key_id', 'authorization_header', 'rsa_public_blob', 'blob_key_type', 'fingerprint_sha256',
    'fingerprint_md5', 'key_id_matches', 'inspect_key_file', 'KeyFileSigner', 'AgentSigner', 'SignatureAuth',
    'BasicAuth',
)
