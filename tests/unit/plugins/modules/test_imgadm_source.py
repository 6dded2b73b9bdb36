# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.smartos.imgadm.plugins.modules import imgadm_source

DEAD_URL = 'http://127.0.0.1:1'


def conf_bytes(db):
    p = db / 'imgadm.conf'
    return p.read_bytes() if p.exists() else None


def test_add_check_real_repeat(tmp_path, run_module, ping_server):
    url, seen = ping_server
    args = dict(url=url, imgadm_dir=str(tmp_path))
    failed, res = run_module(imgadm_source.main, args, check_mode=True, diff=True)
    assert not failed and res['changed']
    assert conf_bytes(tmp_path) is None, 'check mode wrote imgadm.conf'
    assert res['diff']['after'].endswith('%s imgapi\n' % url)
    assert [s['url'] for s in res['sources']] == ['https://images.smartos.org', url]

    failed, res = run_module(imgadm_source.main, args)
    assert not failed and res['changed']
    data = json.loads(conf_bytes(tmp_path))
    assert data['sources'] == [{'type': 'imgapi', 'url': 'https://images.smartos.org'}, {'type': 'imgapi', 'url': url}]
    assert not conf_bytes(tmp_path).endswith(b'\n')
    assert seen.count('/ping') == 2  # once in check mode, once for real

    failed, res = run_module(imgadm_source.main, args)
    assert not failed and not res['changed'] and res['actions'] == []
    assert seen.count('/ping') == 2, 'an unchanged source must not be pinged again'


def test_failed_ping_writes_nothing(tmp_path, run_module):
    failed, res = run_module(imgadm_source.main, dict(url=DEAD_URL, imgadm_dir=str(tmp_path), retries=0, timeout=2))
    assert failed
    assert res['error_code'] == 'SourcePing'
    assert DEAD_URL in res['msg']
    assert conf_bytes(tmp_path) is None


def test_force_skips_ping(tmp_path, run_module):
    failed, res = run_module(imgadm_source.main, dict(url=DEAD_URL, force=True, insecure=True, imgadm_dir=str(tmp_path)))
    assert not failed and res['changed']
    assert json.loads(conf_bytes(tmp_path))['sources'][-1] == {'type': 'imgapi', 'url': DEAD_URL, 'insecure': True}


def test_absent_and_exclusive(tmp_path, run_module, ping_server):
    url, seen = ping_server
    db = str(tmp_path)
    failed, res = run_module(imgadm_source.main, dict(url='https://images.smartos.org/', state='absent', imgadm_dir=db))
    assert not failed and res['changed'] and res['sources'] == []
    assert json.loads(conf_bytes(tmp_path))['sources'] == []

    sources = [dict(url=url, channel='staging'), dict(url=DEAD_URL + '/datasets', type='dsapi')]
    failed, res = run_module(imgadm_source.main, dict(sources=sources, force=True, imgadm_dir=db))
    assert not failed and res['changed']
    assert json.loads(conf_bytes(tmp_path))['sources'] == [
        {'type': 'imgapi', 'url': url + '?channel=staging'},
        {'type': 'dsapi', 'url': DEAD_URL + '/datasets'},
    ]
    assert res['sources'][0]['channel'] == 'staging' and res['sources'][0]['base_url'] == url
    failed, res = run_module(imgadm_source.main, dict(sources=sources, imgadm_dir=db))
    assert not failed and not res['changed']


def test_bad_input_names_field(tmp_path, run_module):
    failed, res = run_module(imgadm_source.main, dict(url='http://x/images', type='dsapi', force=True, imgadm_dir=str(tmp_path)))
    assert failed and res['field'] == 'url' and '/datasets' in res['msg']
    failed, res = run_module(imgadm_source.main, dict(url='http://x?channel=a', channel='b', force=True, imgadm_dir=str(tmp_path)))
    assert failed and res['field'] == 'channel'
    failed, res = run_module(imgadm_source.main, dict(sources=[dict(url='http://a'), dict(url='http://a/')], force=True, imgadm_dir=str(tmp_path)))
    assert failed and res['field'] == 'sources'
    assert conf_bytes(tmp_path) is None


def test_corrupt_config_is_reported_not_overwritten(tmp_path, run_module):
    (tmp_path / 'imgadm.conf').write_text('{"sources": [')
    failed, res = run_module(imgadm_source.main, dict(url='http://a', force=True, imgadm_dir=str(tmp_path)))
    assert failed and res['error_code'] == 'ConfigError'
    assert conf_bytes(tmp_path) == b'{"sources": ['
