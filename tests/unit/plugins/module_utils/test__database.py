# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
from collections import OrderedDict

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._database import (
    ImageDatabase,
    ImgadmConfig,
    atomic_write,
    js_json_dumps,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ConfigError, InvalidUUIDError, UsageError

UUID = '22222222-2222-4222-8222-222222222222'

# on-disk-formats.md: what the reference writes right after its first command
FRESH_CONF = '{\n  "dockerImportSkipUuids": true,\n  "upgradedToVer": "3.0.0"\n}'
ONE_SOURCE_CONF = ('{\n  "dockerImportSkipUuids": true,\n  "upgradedToVer": "3.0.0",\n  "sources": [\n'
                   '    {\n      "type": "imgapi",\n      "url": "http://127.0.0.1:PORT"\n    }\n  ]\n}')


@pytest.mark.parametrize('value, text', [
    ({}, '{}'),
    ([], '[]'),
    (OrderedDict([('a', [])]), '{\n  "a": []\n}'),
    (OrderedDict([('b', 1.0), ('a', 1.5)]), '{\n  "b": 1,\n  "a": 1.5\n}'),
    (OrderedDict([('s', u'caf\u00e9 "q" \\')]), u'{\n  "s": "caf\u00e9 \\"q\\" \\\\"\n}'),
    ([OrderedDict([('x', True)]), None], '[\n  {\n    "x": true\n  },\n  null\n]'),
    (OrderedDict([('n', float('nan'))]), '{\n  "n": null\n}'),
])
def test_js_json_dumps(value, text):
    assert js_json_dumps(value) == text


def test_fresh_config_upgrade_is_reference_bytes(tmp_path):
    conf = ImgadmConfig(str(tmp_path)).load()
    assert conf.raw is None
    notes = conf.upgrade(legacy_dir=str(tmp_path / 'nolegacy'))
    assert notes
    conf.save()
    with open(conf.path, 'rb') as f:
        assert f.read() == FRESH_CONF.encode()
    assert stat.S_IMODE(os.stat(conf.path).st_mode) == 0o644


def test_config_source_roundtrip_bytes(tmp_path):
    (tmp_path / 'imgadm.conf').write_text(FRESH_CONF)
    conf = ImgadmConfig(str(tmp_path)).load()
    assert conf.upgrade() == []
    assert 'sources' not in conf.data
    assert conf.source_entries() == [OrderedDict([('type', 'imgapi'), ('url', 'https://images.smartos.org')])]
    conf.set_source_entries([OrderedDict([('type', 'imgapi'), ('url', 'http://127.0.0.1:PORT')])])
    conf.save()
    assert (tmp_path / 'imgadm.conf').read_bytes() == ONE_SOURCE_CONF.encode()


def test_config_key_order_preserved(tmp_path):
    (tmp_path / 'imgadm.conf').write_text('{"sources": [], "userAgentExtra": "x", "upgradedToVer": "3.0.0", "dockerImportSkipUuids": false}')
    conf = ImgadmConfig(str(tmp_path)).load()
    # dockerImportSkipUuids keeps its first place (the reference's default object), with the file's value
    assert list(conf.data.keys()) == ['dockerImportSkipUuids', 'sources', 'userAgentExtra', 'upgradedToVer']
    assert conf.data['dockerImportSkipUuids'] is False


def test_upgrade_sets_types_and_appends_version(tmp_path):
    (tmp_path / 'imgadm.conf').write_text('{"sources": [{"url": "https://d.example/datasets/"}, {"url": "https://i.example"}]}')
    conf = ImgadmConfig(str(tmp_path)).load()
    conf.upgrade(legacy_dir=None)
    assert [s['type'] for s in conf.data['sources']] == ['dsapi', 'imgapi']
    assert list(conf.data.keys()) == ['dockerImportSkipUuids', 'sources', 'upgradedToVer']
    assert conf.data['upgradedToVer'] == '3.0.0'


def test_upgrade_imports_legacy_sources_list(tmp_path):
    legacy = tmp_path / 'legacy'
    legacy.mkdir()
    (legacy / 'sources.list').write_text('https://old.example/datasets\n')
    conf = ImgadmConfig(str(tmp_path / 'db')).load()
    conf.upgrade(legacy_dir=str(legacy))
    assert conf.data['sources'] == [OrderedDict([('url', 'https://old.example/datasets'), ('type', 'dsapi')])]


def test_upgrade_skips_old_default_legacy_source(tmp_path):
    legacy = tmp_path / 'legacy'
    legacy.mkdir()
    (legacy / 'sources.list').write_text('https://datasets.tritondatacenter.com/datasets/\n')
    conf = ImgadmConfig(str(tmp_path / 'db')).load()
    conf.upgrade(legacy_dir=str(legacy))
    assert 'sources' not in conf.data


@pytest.mark.parametrize('content, what', [
    ('{not json', 'not valid JSON'),
    ('[1, 2]', 'JSON object'),
    ('{"sources": {}}', 'not an array'),
    ('{"sources": [{"type": "imgapi"}]}', 'has no "url"'),
    ('{"userAgentExtra": 5}', 'userAgentExtra'),
])
def test_bad_config_is_config_error(tmp_path, content, what):
    (tmp_path / 'imgadm.conf').write_text(content)
    with pytest.raises(ConfigError) as exc:
        ImgadmConfig(str(tmp_path)).load()
    assert what in str(exc.value)
    assert exc.value.code == 'ConfigError'


def test_image_record_bytes(tmp_path):
    db = ImageDatabase(str(tmp_path))
    manifest = OrderedDict([('v', 2), ('uuid', UUID), ('name', 'x'), ('files', [OrderedDict([('sha1', 'ab'), ('size', 751), ('compression', 'gzip')])])])
    path = db.write('zones', UUID, manifest, source='http://127.0.0.1:PORT')
    assert path == str(tmp_path / 'images' / ('zones-%s.json' % UUID))
    data = (tmp_path / 'images' / ('zones-%s.json' % UUID)).read_bytes()
    assert data.endswith(b'}\n') and not data.endswith(b'\n\n')
    assert data.startswith(b'{\n  "manifest": {\n    "v": 2,\n    "uuid": "')
    assert data.rstrip(b'\n').endswith(b'  "zpool": "zones",\n  "source": "http://127.0.0.1:PORT"\n}')
    rec, found = db.read('zones', UUID)
    assert found and rec['manifest'] == manifest and list(rec.keys()) == ['manifest', 'zpool', 'source']


def test_image_record_without_source(tmp_path):
    db = ImageDatabase(str(tmp_path))
    db.write('zones', UUID, OrderedDict([('uuid', UUID)]))
    text = (tmp_path / 'images' / ('zones-%s.json' % UUID)).read_text()
    assert text.endswith('  "zpool": "zones"\n}\n')
    assert 'source' not in json.loads(text)


def test_image_record_missing_or_corrupt_is_minimal(tmp_path):
    db = ImageDatabase(str(tmp_path))
    rec, found = db.read('zones', UUID)
    assert not found and rec == OrderedDict([('manifest', OrderedDict([('uuid', UUID)])), ('zpool', 'zones')])
    os.makedirs(db.images_dir)
    (tmp_path / 'images' / ('zones-%s.json' % UUID)).write_text('{"manifest": ')
    rec, found = db.read('zones', UUID)
    assert not found and rec['manifest'] == {'uuid': UUID}


def test_image_record_remove(tmp_path):
    db = ImageDatabase(str(tmp_path))
    db.write('zones', UUID, {'uuid': UUID})
    db.write('other', UUID, {'uuid': UUID})
    assert db.remove('zones', UUID) is True
    assert db.remove('zones', UUID) is False
    assert sorted(os.listdir(db.images_dir)) == ['other-%s.json' % UUID]


@pytest.mark.parametrize('pool, uuid, err', [
    ('zones', 'ABCDEF01-2222-4222-8222-222222222222', InvalidUUIDError),
    ('zones', '../../etc/passwd', InvalidUUIDError),
    ('../x', UUID, UsageError),
    ('zones/sub', UUID, UsageError),
    ('zones:x', UUID, UsageError),  # the pool names _installed recognises: no ':'
    ('zones', UUID + '\n', InvalidUUIDError),
])
def test_image_record_path_is_checked(tmp_path, pool, uuid, err):
    with pytest.raises(err):
        ImageDatabase(str(tmp_path)).path(pool, uuid)


def test_atomic_write_leaves_no_temp_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'f.json'
    target.write_text('old')

    def boom(src, dst):
        raise OSError('rename failed')
    monkeypatch.setattr(os, 'rename', boom)
    with pytest.raises(OSError):
        atomic_write(str(target), 'new')
    assert target.read_text() == 'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['f.json']
