# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""The ``FIELD=VALUE`` filters of ``imgadm list`` and ``imgadm avail``.

``parse_filters`` checks a ``filters`` option (a dict, or a list of
``FIELD=VALUE`` strings as on the command line); ``matches`` applies them
to one image record (``{manifest, zpool?, source?, clones?}``) the way the
reference's ``filterImagesInfo`` does:

- ``VALUE`` ``true``/``false`` (or a YAML boolean) compares as a boolean,
  strictly;
- ``~SUB`` is a substring match (for a list field: one element equal to
  ``SUB``, as the reference's ``indexOf`` does on arrays);
- anything else compares the field's JavaScript ``String()`` with the value;
- ``FIELD`` may be dotted (``requirements.brand``) and may be one of the
  computed fields ``published_date``, ``published``, ``source``, ``clones``,
  ``zpool``, ``size``;
- a record without the field never matches.

Unlike the reference, the record's manifest is never changed: the reference
adds the computed fields to the manifests it prints when filters are given.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import UsageError

_MISSING = object()
_MILLIS_RE = re.compile(r'\.\d+Z$')


def js_string(value):
    """JavaScript's ``String(value)`` for JSON values."""
    if value is None:
        return 'null'
    if value is True:
        return 'true'
    if value is False:
        return 'false'
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ','.join('' if v is None else js_string(v) for v in value)
    if isinstance(value, dict):
        return '[object Object]'
    return value if isinstance(value, str) else str(value)


def parse_filters(value, field='filters'):
    """``[(path, wanted)]`` from a dict or a list of ``FIELD=VALUE`` strings.

    ``wanted`` is a bool, ``('~', SUB)`` or a string.
    """
    if not value:
        return []
    if isinstance(value, dict):
        items = sorted(value.items())
    elif isinstance(value, (list, tuple)):
        items = []
        for i, arg in enumerate(value):
            if not isinstance(arg, str) or '=' not in arg:
                raise UsageError('invalid filter %r in %s[%d]: must be FIELD=VALUE' % (arg, field, i), field=field)
            k, v = arg.split('=', 1)
            items.append((k, v))
    else:
        raise UsageError('%s must be a dict or a list of FIELD=VALUE strings' % field, field=field)
    filters = []
    for key, wanted in items:
        if not isinstance(key, str) or not key or '' in key.split('.'):
            raise UsageError('invalid filter field %r in %s' % (key, field), field=field)
        if isinstance(wanted, bool):
            pass
        elif wanted in ('true', 'false'):
            wanted = wanted == 'true'
        elif isinstance(wanted, (dict, list, tuple)) or wanted is None:
            raise UsageError('invalid value for filter "%s" in %s: must be a string, number or boolean' % (key, field),
                             field=field)
        else:
            wanted = js_string(wanted)
            if wanted.startswith('~'):
                wanted = ('~', wanted[1:])
        filters.append((key.split('.'), wanted))
    return filters


def row(info):
    """The fields a filter sees: the manifest plus the reference's computed fields (a new dict)."""
    manifest = info.get('manifest') or {}
    out = dict(manifest)
    published_at = manifest.get('published_at')
    if isinstance(published_at, str):
        out['published_date'] = published_at[:10]
        out['published'] = _MILLIS_RE.sub('Z', published_at)
    for key in ('source', 'clones', 'zpool'):
        if info.get(key) is not None:
            out[key] = info[key]
    files = manifest.get('files')
    if isinstance(files, list) and files and isinstance(files[0], dict) and 'size' in files[0]:
        out['size'] = files[0]['size']
    return out


def _lookup(value, path):
    for key in path:
        if isinstance(value, dict):
            value = value.get(key, _MISSING)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def matches(info, filters):
    """Whether the record ``info`` passes every filter of ``parse_filters``."""
    if not filters:
        return True
    fields = row(info)
    for path, wanted in filters:
        actual = _lookup(fields, path)
        if actual is _MISSING:
            return False
        if isinstance(wanted, bool):
            if actual is not wanted:
                return False
        elif isinstance(wanted, tuple):
            sub = wanted[1]
            if isinstance(actual, list):
                if sub not in actual:
                    return False
            elif sub not in js_string(actual):
                return False
        elif js_string(actual) != wanted:
            return False
    return True


__all__ = ('js_string', 'parse_filters', 'row', 'matches')
