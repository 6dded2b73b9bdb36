# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Module-level tests of imgadm_publish against the test IMGAPI server (in this process, with auth)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import sys

import pytest

pytest.importorskip('requests')
pytest.importorskip('cryptography')

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from ansible_collections.smartos.imgadm.plugins.modules import imgadm_publish  # noqa: E402

WORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, 'world')
if WORLD not in sys.path:
    sys.path.insert(0, WORLD)

import imgapi_server  # noqa: E402  pylint: disable=wrong-import-position

UUID = '7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b'
PASSPHRASE = 'module-passphrase-never-shown'
PASSWORD = 'module-password-never-shown'


@pytest.fixture(scope='module')
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def world(tmp_path, key):
    """A server with auth for alice, an encrypted key file, a manifest file and an image file."""
    data = os.urandom(2048)
    (tmp_path / 'img.zfs.gz').write_bytes(data)
    manifest = {'v': 2, 'uuid': UUID, 'owner': '00000000-0000-0000-0000-000000000000', 'name': 'modimage',
                'version': '2.0', 'type': 'zone-dataset', 'os': 'smartos', 'public': True,
                'files': [{'sha1': hashlib.sha1(data).hexdigest(), 'size': len(data), 'compression': 'gzip'}]}
    (tmp_path / 'img.imgmanifest').write_text(json.dumps(manifest))
    (tmp_path / 'id_rsa').write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    srv = imgapi_server.start_server(str(tmp_path / 'srv'), auth_keys={'alice': [line]})
    args = dict(url=srv.url, manifest=str(tmp_path / 'img.imgmanifest'), file=str(tmp_path / 'img.zfs.gz'),
                user='alice', key_file=str(tmp_path / 'id_rsa'), key_passphrase=PASSPHRASE, retries=0)
    try:
        yield srv, args, manifest
    finally:
        srv.stop()


def writes(srv):
    return [r for r in srv.requests() if r['method'] in ('POST', 'PUT', 'DELETE')]


def test_check_then_publish_then_unchanged(run_module, world):
    srv, args, manifest = world
    failed, res = run_module(imgadm_publish.main, args, check_mode=True)
    assert not failed and res['changed'] and len(res['actions']) == 3
    assert res['image']['uuid'] == UUID and writes(srv) == []

    failed, res = run_module(imgadm_publish.main, args)
    assert not failed, res
    assert res['changed'] and res['image']['state'] == 'active'
    assert res['image']['files'][0]['sha1'] == manifest['files'][0]['sha1']
    assert res['published']['auth']['user'] == 'alice' and res['published']['auth']['fingerprint'].startswith('SHA256:')
    assert len(writes(srv)) == 3
    assert PASSPHRASE not in json.dumps(res)

    srv.clear_requests()
    failed, res = run_module(imgadm_publish.main, args)
    assert not failed and not res['changed'] and res['actions'] == [] and writes(srv) == []


def test_manifest_as_dict(run_module, world):
    srv, args, manifest = world
    failed, res = run_module(imgadm_publish.main, dict(args, manifest=manifest))
    assert not failed and res['changed'] and res['image']['uuid'] == UUID


def test_failure_reports_error_code_and_rollback(run_module, world):
    srv, args, manifest = world
    srv.set_faults(method='PUT', fail_5xx=1)
    failed, res = run_module(imgadm_publish.main, args)
    assert failed
    assert res['error_code'] == 'ServiceUnavailableError' and res['rolled_back'] is True and res['uuid'] == UUID
    assert res['published']['rolled_back'] is True and not res['changed']
    assert 'deleted again' in res['msg']
    assert PASSPHRASE not in json.dumps(res)


def test_unauthorized_and_secrets(run_module, world, tmp_path):
    srv, args, manifest = world
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / 'other').write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    failed, res = run_module(imgadm_publish.main, dict(args, key_file=str(tmp_path / 'other'), key_passphrase=None))
    assert failed and res['error_code'] == 'UnauthorizedError' and 'Unauthorized' in res['msg']
    assert writes(srv) == []
    basic = dict(args, user=None, key_file=None, key_passphrase=None, url_username='bob', url_password=PASSWORD)
    failed, res = run_module(imgadm_publish.main, basic)
    assert failed and res['error_code'] == 'UnauthorizedError'
    assert PASSWORD not in json.dumps(res)


def test_bad_options(run_module, world):
    srv, args, manifest = world
    failed, res = run_module(imgadm_publish.main, dict(args, key_passphrase=None))
    assert failed and res['error_code'] == 'SigningError' and res['field'] == 'key_file'
    assert 'key_passphrase' in res['msg']
    failed, res = run_module(imgadm_publish.main, dict(args, ssh_agent=True))
    assert failed and res['error_code'] == 'Usage' and res['field'] == 'key_file'
    failed, res = run_module(imgadm_publish.main, dict(args, command_timeout=0))
    assert failed and res['field'] == 'command_timeout'
    failed, res = run_module(imgadm_publish.main, dict(args, mode='create', owner='nobody'))
    assert failed and res['field'] == 'owner'
    assert writes(srv) == []


def test_create_mode(run_module, world):
    srv, args, manifest = world
    owner = '930896af-bf8c-48d4-885c-6573a94b1853'
    failed, res = run_module(imgadm_publish.main, dict(args, mode='create', owner=owner))
    assert not failed and res['changed'] and res['image']['owner'] == owner and res['image']['uuid'] != UUID
    failed, res = run_module(imgadm_publish.main, dict(args, mode='create', owner=owner))
    assert not failed and not res['changed']
