# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors PUBLISH_ARGS in plugins/module_utils/_publisher.py
    DOCUMENTATION = r'''
options:
  url:
    description:
      - The IMGAPI to publish to, for example V(https://images.example.com).
      - A V(?channel=NAME) in it selects the channel, as in an image source URL (see O(channel)).
    type: str
    required: true
  mode:
    description:
      - V(import) publishes with C(AdminImportImage), as C(imgadm publish) does; the image keeps its uuid (and
        C(published_at) if the manifest has one). IMGAPI allows it to operators only, and in public and private
        mode it sets the owner to V(00000000-0000-0000-0000-000000000000).
      - V(create) publishes with C(CreateImage), as C(sdc-imgadm create) and CloudAPI do; the server gives the image a
        new uuid, and O(owner) is required. C(uuid), C(published_at), C(urn) and the server-managed fields of the
        manifest are not sent.
    type: str
    choices: [import, create]
    default: import
  owner:
    description:
      - The uuid of the account the image belongs to. Required with O(mode=create) unless the manifest has an owner.
      - With O(mode=import) it replaces the manifest's owner; by default the manifest's owner is sent.
    type: str
  channel:
    description:
      - The channel of a server that has channels to publish into (C(?channel=NAME) on every request).
        Without it the server's default channel is used.
    type: str
  user:
    description:
      - The IMGAPI user name that signs the requests (HTTP Signature auth, the C(keyId)). The server checks the
        signature against that user's public keys.
      - Required with O(key_file) or O(ssh_agent).
    type: str
  key_file:
    description:
      - A private RSA key on the managed host to sign requests with, in PEM (PKCS#1 or PKCS#8) or OpenSSH format.
      - Signs with the C(cryptography) Python library when it is installed, otherwise with the C(openssl) command
        (O(openssl_path)); an encrypted OpenSSH-format key needs C(cryptography) with C(bcrypt).
      - IMGAPI accepts RSA signatures only (C(rsa-sha256), C(rsa-sha1)); other key types are refused with a clear error.
      - Mutually exclusive with O(ssh_agent) and O(key_id).
    type: path
  key_passphrase:
    description:
      - The passphrase of an encrypted O(key_file). An encrypted key without it is an error naming the option.
      - It is passed to C(openssl) in its environment, never on a command line or in a file.
    type: str
  ssh_agent:
    description:
      - Sign with an RSA key held by the C(ssh-agent) that E(SSH_AUTH_SOCK) points to in the module's environment
        (a forwarded agent, or one named with the task's C(environment)). Without O(key_id), the agent's first RSA key.
    type: bool
    default: false
  key_id:
    description:
      - The fingerprint of the agent key to sign with, as C(ssh-add -l) prints it (V(SHA256:...)) or in the MD5
        form (V(aa:bb:...:ff), with or without V(MD5:)). Implies O(ssh_agent=true).
    type: str
  openssl_path:
    description:
      - The C(openssl) command used to sign with O(key_file) when the C(cryptography) library is missing;
        a name is looked up on E(PATH).
    type: path
    default: openssl
  url_username:
    description:
      - HTTP Basic user name, for an IMGAPI behind a proxy that checks HTTP Basic auth. IMGAPI itself rejects
        Basic auth. Cannot be used with HTTP Signature auth (O(user)).
    type: str
  url_password:
    description:
      - HTTP Basic password, with O(url_username).
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of an HTTPS O(url).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for the server to connect or to send the next piece of an answer.
    type: float
    default: 30.0
  retries:
    description:
      - How many times a read (GET) or a C(DELETE) is retried after a connection failure, a timeout, HTTP 408, 429
        or 5xx, with exponential backoff that honours C(Retry-After). Writes (C(POST), C(PUT)) are never retried.
    type: int
    default: 3
requirements:
  - requests (Python library on the managed node)
  - cryptography (Python library on the managed node) or the openssl command, to sign with O(key_file)
'''
