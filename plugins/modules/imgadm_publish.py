#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: imgadm_publish
short_description: Publish a SmartOS image (manifest and file) to an IMGAPI
version_added: 0.1.0
description:
  - Does what C(imgadm publish -m MANIFEST -f FILE URL) does, idempotently and with authentication.
  - The calls are the reference's, in its order - C(AdminImportImage) (or C(CreateImage) with O(mode=create)),
    C(AddImageFile) with the file streamed from disk and its sha1, then C(ActivateImage). If a step fails after the
    image was created, the image is deleted again, and the error says whether that worked (RV(rolled_back)).
  - An image that is published already (same uuid, or with O(mode=create) same name, version and owner, with the same
    C(files[0].sha1)) is left alone and the task is not changed. An image that an interrupted earlier publish left
    unactivated, with this file uploaded, is activated.
  - Another image under the uuid (another file, no file, another name or version) is never overwritten or deleted;
    the task fails with error code V(ImageUuidAlreadyExists).
  - Requests are signed with HTTP Signature auth (the IMGAPI C(Signature) scheme) when O(user) and O(key_file) or
    O(ssh_agent) are given, which IMGAPI servers with C(authType=signature) require for writes. The passphrase and
    password options are never returned or logged.
  - The file's size must match the manifest's C(files[0].size), and before an upload its sha1 must match
    C(files[0].sha1); when nothing is to be done, the file is not read.
requirements:
  - requests (Python library on the managed host)
author:
  - smartos.imgadm developers (@smartos-imgadm)
extends_documentation_fragment:
  - smartos.imgadm._attributes
  - smartos.imgadm._attributes.ACTIONGROUP_IMGADM
  - smartos.imgadm._publish
attributes:
  check_mode:
    support: full
    details: Check mode asks the server whether the image is there (reads only) and reports the calls it would make.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - With O(mode=create), the published image is found again by name, version and owner with ListImages; a server
        that does not list it to this client (a disabled image, to an unauthenticated client of a public IMGAPI)
        gets it again.
options:
  manifest:
    description:
      - The image manifest, as a path to a JSON file on the managed host or as a dict.
      - It must have C(name), C(version) and C(files[0]) with C(compression), C(sha1) and C(size) (as C(imgadm create)
        writes them), and with O(mode=import) a C(uuid). A v1 manifest is upgraded to v2 first.
      - Other fields are checked by the server, which answers a bad manifest with its list of problems.
    type: raw
    required: true
  file:
    description:
      - The image file on the managed host, as C(imgadm create) writes it (for example C(NAME-VERSION.zfs.gz)).
    type: path
    required: true
  command_timeout:
    description:
      - Deadline in seconds for the C(openssl) command, when it signs requests (see O(openssl_path)). Must be greater
        than 0.
    type: float
    default: 60
notes:
  - The stock C(imgadm publish) sends no credentials, so it only works with servers that need none (C(authType=none),
    as in a Triton data center). This module signs as C(sdc-imgadm) does.
  - IMGAPI accepts RSA keys only (signatures C(rsa-sha256) and C(rsa-sha1)); Ed25519 and ECDSA keys cannot be used.
    The host clock must be within 300 s of the server's.
  - In public mode an IMGAPI accepts only images with C(public=true), in private mode only C(public=false).
seealso:
  - module: smartos.imgadm.imgadm_image
'''

EXAMPLES = r'''
- name: Publish an image built with imgadm create, signing with a key file
  smartos.imgadm.imgadm_publish:
    url: https://images.example.com
    manifest: /var/tmp/myimage-1.0.0.imgmanifest
    file: /var/tmp/myimage-1.0.0.zfs.gz
    user: admin
    key_file: /root/.ssh/imgapi_rsa

- name: Publish with a new uuid for an account, signing with a forwarded ssh-agent key
  smartos.imgadm.imgadm_publish:
    url: https://images.example.com
    mode: create
    owner: 930896af-bf8c-48d4-885c-6573a94b1853
    channel: staging
    manifest: "{{ lookup('ansible.builtin.file', 'myimage.imgmanifest') | from_json }}"
    file: /var/tmp/myimage-1.0.0.zfs.gz
    user: admin
    key_id: SHA256:72ymGq2PaihUXOtTkt6e32PupKd79gOK3mSnDH6MU7I
  environment:
    SSH_AUTH_SOCK: "{{ lookup('ansible.builtin.env', 'SSH_AUTH_SOCK') }}"

- name: See what would be published
  smartos.imgadm.imgadm_publish:
    url: https://images.example.com
    manifest: /var/tmp/myimage-1.0.0.imgmanifest
    file: /var/tmp/myimage-1.0.0.zfs.gz
    user: admin
    key_file: /root/.ssh/imgapi_rsa
  check_mode: true
'''

RETURN = r'''
image:
  description:
    - The image as the server has it after the task.
    - In check mode, the image as it is on the server, or as it would be after publishing (with a null C(uuid) for
      O(mode=create)).
  returned: success
  type: dict
  contains:
    uuid: {description: The image uuid., type: str}
    owner: {description: The owner (set by the server with O(mode=import) in public and private mode)., type: str}
    name: {description: The name., type: str}
    version: {description: The version., type: str}
    state: {description: V(active) (or V(disabled) for a disabled image)., type: str}
    published_at: {description: When the image was published (set by the server on activation)., type: str}
    files:
      description: The image file as the server recorded it.
      type: list
      elements: dict
      contains:
        sha1: {description: The sha1 of the file., type: str}
        size: {description: Its size in bytes., type: int}
        compression: {description: Its compression., type: str}
  sample:
    v: 2
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    owner: 00000000-0000-0000-0000-000000000000
    name: myimage
    version: 1.0.0
    state: active
    disabled: false
    public: true
    published_at: '2026-11-26T22:10:17.633Z'
    type: zone-dataset
    os: smartos
    files: [{sha1: fc6dbee4a619343b12d2e5686aea105ae81d767e, size: 46, compression: gzip}]
published:
  description: What the task did, also returned when it fails.
  returned: always, except for bad options
  type: dict
  contains:
    url: {description: The IMGAPI URL (without the channel)., type: str}
    channel: {description: The channel published into (null for the server's default)., type: str}
    mode: {description: V(import) or V(create)., type: str}
    uuid: {description: The image uuid (null for O(mode=create) before the server created it)., type: str}
    changed:
      description: Whether something was published (or would be, in check mode).
      type: bool
    completed:
      description: Whether an image left unactivated by an interrupted earlier publish was activated.
      type: bool
    steps:
      description: The calls made (or that would be made), one line each.
      type: list
      elements: str
    rolled_back:
      description: After a failure, whether the image this task had created was deleted again.
      type: bool
      returned: when the task failed after creating the image
    auth:
      description: How the requests were authenticated; null when they were not. Never holds a secret.
      type: dict
      contains:
        type: {description: V(signature) or V(basic)., type: str}
        user: {description: The user name (O(user) or O(url_username))., type: str}
        source: {description: V(key_file) or V(ssh-agent)., type: str}
        path: {description: The key file., type: str}
        backend:
          description: What signed - V(cryptography), V(openssl) or V(ssh-agent).
          type: str
        fingerprint: {description: The SHA256 fingerprint of the signing key (null when not known)., type: str}
actions:
  description: What the task did (or would do in check mode), one line each.
  returned: always
  type: list
  elements: str
error_code:
  description:
    - On failure, the error code - the server's (for example V(UnauthorizedError), V(ValidationFailed)) or this
      collection's (V(ImageUuidAlreadyExists), V(SigningError), V(UploadError), V(Usage)).
  returned: failure
  type: str
field:
  description: On a bad option, manifest or file, the option it is about.
  returned: failure, for bad input
  type: str
rolled_back:
  description: When the task failed after creating the image, whether deleting it again worked.
  returned: failure, after the image was created
  type: bool
'''

from ansible_collections.smartos.imgadm.plugins.module_utils._common import CommandRunner, argument_spec, run_module
from ansible_collections.smartos.imgadm.plugins.module_utils._publisher import PUBLISH_ARGS, load_manifest, publish


def run(module, result):
    p = module.params
    manifest = load_manifest(p['manifest'])
    result.data['image'] = publish(p, manifest, p['file'], result, module.check_mode,
                                   run_command=CommandRunner(module, p['command_timeout']))


def main():
    spec = argument_spec(
        PUBLISH_ARGS,
        manifest=dict(type='raw', required=True),
        file=dict(type='path', required=True),
        command_timeout=dict(type='float', default=60.0),
    )
    run_module(spec, run)


if __name__ == '__main__':
    main()
