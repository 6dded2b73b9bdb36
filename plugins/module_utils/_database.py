# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""The imgadm database: ``imgadm.conf`` and ``images/POOL-UUID.json``.

Byte-compatible with the reference imgadm 3.9.5, which writes with
``JSON.stringify(obj, null, 2)``:

* ``imgadm.conf``: 2-space indent, **no** trailing newline, keys in the order
  the reference builds them (``dockerImportSkipUuids`` first, then the file's
  keys in file order, new keys appended);
* ``images/POOL-UUID.json``: 2-space indent, **with** a trailing newline,
  ``{"manifest": ..., "zpool": ..., "source": ...}`` (no ``source`` for images
  installed from files).

Every write goes to a temporary file in the same directory, is fsync'ed and
renamed over the target, under a POSIX lock on a sibling lock file, so readers
never see half a file and concurrent writers do not lose each other's changes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import math
import os
import re
import tempfile
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import POOL, UUID_RE
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    ConfigError,
    ImgadmError,
    InvalidUUIDError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import FileLock

DEFAULT_DB_DIR = '/var/imgadm'
DEFAULT_SOURCE = OrderedDict([('type', 'imgapi'), ('url', 'https://images.smartos.org')])
CURRENT_DB_VERSION = '3.0.0'
# the old default DSAPI source that the 2.0.0 upgrader does not import
OLD_DEFAULT_DSAPI = 'https://datasets.tritondatacenter.com/datasets/'

_POOL_RE = re.compile(r'^%s\Z' % POOL)


# ---- JSON.stringify compatible serialisation

def _normalise_numbers(value):
    """Make Python's JSON output match JavaScript's for numbers.

    ``JSON.parse('1.0')`` is the number 1, which ``JSON.stringify`` prints as
    ``1``; Python keeps it as ``1.0``.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None  # JSON.stringify writes null for NaN and Infinity
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value
    if isinstance(value, dict):
        return OrderedDict((k, _normalise_numbers(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_normalise_numbers(v) for v in value]
    return value


def js_json_dumps(value):
    """Serialise like ``JSON.stringify(value, null, 2)``."""
    return json.dumps(_normalise_numbers(value), indent=2, separators=(',', ': '), ensure_ascii=False)


def json_loads_ordered(text):
    return json.loads(text, object_pairs_hook=OrderedDict)


# ---- atomic file writes

def atomic_write(path, data, mode=0o644):
    """Write bytes or text to ``path`` atomically (temp file, fsync, rename)."""
    if not isinstance(data, bytes):
        data = data.encode('utf-8')
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_text(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8')
    except IOError as e:
        if e.errno == errno.ENOENT:
            return None
        raise


# ---- imgadm.conf

class ImgadmConfig(object):
    """``imgadm.conf``: load, upgrade, and save in the reference's exact format.

    ``data`` is an OrderedDict in the key order the reference would hold in
    memory. ``raw`` is the file content as read (None when absent).
    """

    def __init__(self, db_dir=DEFAULT_DB_DIR):
        self.db_dir = db_dir
        self.path = os.path.join(db_dir, 'imgadm.conf')
        self.raw = None
        self.data = OrderedDict([('dockerImportSkipUuids', True)])

    @property
    def lock_path(self):
        return os.path.join(self.db_dir, '.imgadm.conf.lock')

    def lock(self, timeout=None):
        if not os.path.isdir(self.db_dir):
            os.makedirs(self.db_dir, 0o755)
        return FileLock(self.lock_path, timeout=timeout)

    def load(self):
        self.raw = _read_text(self.path)
        data = OrderedDict([('dockerImportSkipUuids', True)])
        if self.raw is not None:
            try:
                file_data = json_loads_ordered(self.raw)
            except ValueError as e:
                raise ConfigError('config file "%s" is not valid JSON: %s' % (self.path, e), path=self.path)
            if not isinstance(file_data, dict):
                raise ConfigError('config file "%s" does not hold a JSON object' % self.path, path=self.path)
            for k, v in file_data.items():
                data[k] = v
        self.data = data
        self._check()
        return self

    def _check(self):
        extra = self.data.get('userAgentExtra')
        if extra is not None and not isinstance(extra, str):
            raise ConfigError('"userAgentExtra" in config file "%s" is not a string' % self.path, path=self.path)
        sources = self.data.get('sources')
        if sources is None:
            return
        if not isinstance(sources, list):
            raise ConfigError('"sources" in config file "%s" is not an array' % self.path, path=self.path)
        for i, s in enumerate(sources):
            if not isinstance(s, dict) or not isinstance(s.get('url'), str):
                raise ConfigError('source %d in config file "%s" has no "url" string' % (i, self.path), path=self.path)

    # -- upgrade (reference lib/upgrade.js), only what touches imgadm.conf

    def upgrade(self, legacy_dir='/var/db/imgadm'):
        """Bring the config to the current DB version, as the reference does on every run.

        Returns a list of human-readable notes on what changed.
        """
        notes = []
        ver = _version_tuple(self.data.get('upgradedToVer') or '1.0.0')
        if ver < (2, 0, 0):
            # 2.0.0 imports the legacy sources.list as dsapi sources, unless
            # sources are configured or the file holds only the old default.
            legacy = _read_text(os.path.join(legacy_dir, 'sources.list')) if legacy_dir else None
            if legacy is not None and not self.data.get('sources'):
                urls = [line.strip() for line in legacy.splitlines() if line.strip() and not line.strip().startswith('#')]
                if urls and urls != [OLD_DEFAULT_DSAPI]:
                    self.data['sources'] = [OrderedDict([('url', u), ('type', 'dsapi')]) for u in urls]
                    notes.append('imported %d source(s) from %s/sources.list' % (len(urls), legacy_dir))
            self.data['upgradedToVer'] = '2.0.0'
        if ver < (3, 0, 0):
            for s in self.data.get('sources') or []:
                if not s.get('type'):
                    s['type'] = 'dsapi' if re.search(r'/datasets/?$', s['url']) else 'imgapi'
                    notes.append('set type "%s" on source "%s"' % (s['type'], s['url']))
            self.data['upgradedToVer'] = '3.0.0'
        if notes or ver < (3, 0, 0):
            notes.insert(0, 'upgraded the imgadm database to %s' % CURRENT_DB_VERSION)
        return notes

    # -- sources

    def source_entries(self):
        """The configured source entries, or the default source when the key is absent."""
        sources = self.data.get('sources')
        if sources is None:
            return [OrderedDict(DEFAULT_SOURCE)]
        return [OrderedDict(s) for s in sources]

    def set_source_entries(self, entries):
        self.data['sources'] = [OrderedDict(e) for e in entries]

    def serialize(self):
        return js_json_dumps(self.data)

    def save(self):
        text = self.serialize()
        try:
            atomic_write(self.path, text)
        except (IOError, OSError) as e:
            raise ConfigError('error saving config file "%s": %s' % (self.path, e), path=self.path)
        self.raw = text


def _version_tuple(ver):
    try:
        return tuple(int(p) for p in str(ver).split('.'))
    except ValueError:
        return (0,)


# ---- image records

def validate_pool_name(pool, field='pool'):
    if not isinstance(pool, str) or not _POOL_RE.match(pool) or len(pool) > 255:
        raise UsageError('invalid pool name: "%s"' % (pool,), field=field)
    return pool


class ImageDatabase(object):
    """Per-image records in ``DB_DIR/images/POOL-UUID.json``."""

    def __init__(self, db_dir=DEFAULT_DB_DIR):
        self.db_dir = db_dir
        self.images_dir = os.path.join(db_dir, 'images')

    def path(self, pool, uuid):
        if not isinstance(uuid, str) or not UUID_RE.match(uuid):
            raise InvalidUUIDError('invalid uuid: "%s"' % (uuid,), field='uuid')
        validate_pool_name(pool)
        return os.path.join(self.images_dir, '%s-%s.json' % (pool, uuid))

    @staticmethod
    def record(manifest, pool, source=None):
        rec = OrderedDict([('manifest', manifest), ('zpool', pool)])
        if source is not None:
            rec['source'] = source
        return rec

    @staticmethod
    def serialize(record):
        return js_json_dumps(record) + '\n'

    def read(self, pool, uuid):
        """The record as the reference loads it.

        A missing or corrupt file gives the minimal ``{manifest: {uuid}, zpool}``
        (with ``found`` False), as the reference does.
        """
        path = self.path(pool, uuid)
        text = _read_text(path)
        if text is not None:
            try:
                rec = json_loads_ordered(text)
                if isinstance(rec, dict) and isinstance(rec.get('manifest'), dict):
                    return rec, True
            except ValueError:
                pass
        return OrderedDict([('manifest', OrderedDict([('uuid', uuid)])), ('zpool', pool)]), False

    def read_many(self, keys):
        """``{(pool, uuid): (record, found)}`` for many images, listing the directory once.

        Only the files that exist are opened; the others get the minimal
        record, as ``read`` gives.
        """
        try:
            present = set(os.listdir(self.images_dir))
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            present = set()
        out = {}
        for pool, uuid in keys:
            if '%s-%s.json' % (pool, uuid) in present:
                out[(pool, uuid)] = self.read(pool, uuid)
            else:
                out[(pool, uuid)] = (OrderedDict([('manifest', OrderedDict([('uuid', uuid)])), ('zpool', pool)]), False)
        return out

    def write(self, pool, uuid, manifest, source=None):
        path = self.path(pool, uuid)
        try:
            atomic_write(path, self.serialize(self.record(manifest, pool, source)))
        except (IOError, OSError) as e:
            raise ImgadmError('error saving image manifest "%s": %s' % (path, e), path=path)
        return path

    def remove(self, pool, uuid):
        path = self.path(pool, uuid)
        try:
            os.unlink(path)
            return True
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise ImgadmError('cannot remove image record "%s": %s' % (path, e))


__all__ = (
    'DEFAULT_DB_DIR', 'DEFAULT_SOURCE', 'CURRENT_DB_VERSION',
    'js_json_dumps', 'json_loads_ordered', 'atomic_write',
    'ImgadmConfig', 'ImageDatabase', 'validate_pool_name',
)
