# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""Image manifest logic: UUID checks, v1 -> v2 upgrade, validation, platform
checks and small helpers. Pure functions, no I/O.

Behaviour follows SmartOS ``imgadm`` 3.9.5 and the imgmanifest library it
vendors (3.1.0), with two deliberate differences: a ``channels`` array is
accepted in minimal mode (the reference throws a TypeError) and non-boolean
strings such as ``"yes"`` in boolean fields are reported as ``Invalid``
(the reference throws a TypeError).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import datetime
import json
import math
import re
import traceback

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import UUID_RE
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    InvalidManifestError,
    InvalidUUIDError,
    ManifestValidationError,
    MissingLibraryError,
    PlatformError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest_schema import (
    MAX_TAGS_LENGTH,
    PLATFORM_TIMESTAMP_PATTERN,
    SCHEMA,
    SERVER_REQUIRED,
    ZVOL_FIELDS,
)

# jsonschema is imported on first use: an import from a source never validates,
# and the import costs about 0.1 s of every module run.
HAS_JSONSCHEMA = True  # until the lazy import fails
JSONSCHEMA_IMPORT_ERROR = None
_JSONSCHEMA = {}


def _jsonschema():
    """The jsonschema pieces we use, imported once; MissingLibraryError without it."""
    if not _JSONSCHEMA:
        try:
            from jsonschema import validators
            from jsonschema.exceptions import ValidationError
            _JSONSCHEMA.update(validators=validators, ValidationError=ValidationError)
        except ImportError:
            _JSONSCHEMA['error'] = traceback.format_exc()
    if not HAS_JSONSCHEMA or 'error' in _JSONSCHEMA:
        raise MissingLibraryError('jsonschema', exception=_JSONSCHEMA.get('error') or JSONSCHEMA_IMPORT_ERROR)
    return _JSONSCHEMA


VALIDATION_MODES = ('minimal', 'dc', 'public', 'private')

_PLATFORM_TS_RE = re.compile(PLATFORM_TIMESTAMP_PATTERN.rstrip('$') + r'\Z')
_NO_SECONDS_RE = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}Z')
_PUBLISHED_AT_FORMATS = ('%Y-%m-%dT%H:%M:%S.%fZ', '%Y-%m-%dT%H:%M:%SZ')

# Containers whose keys are data, not schema fields: errors inside them are
# reported on the container.
_OPAQUE_FIELDS = frozenset(['tags', 'traits', 'error', 'requirements.min_platform', 'requirements.max_platform'])


# ---- UUIDs

def is_uuid(value):
    """True if ``value`` is a lowercase UUID string (checked before any path or
    dataset name is built from a UUID)."""
    return isinstance(value, str) and UUID_RE.match(value) is not None


def validate_uuid(value, field='uuid'):
    """Return ``value`` if it is a lowercase UUID, else raise InvalidUUIDError naming ``field``."""
    if not is_uuid(value):
        raise InvalidUUIDError('invalid uuid: "%s"' % (value,), field=field, value=value)
    return value


# ---- JavaScript-flavoured helpers

def js_truthy(value):
    """Truthiness as in JavaScript: only false, 0, NaN, '', null/undefined are falsy."""
    if value is None or value is False:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return not (isinstance(value, float) and math.isnan(value)) and value != 0
    if isinstance(value, str):
        return value != ''
    return True


def _bool_from_string(value):
    """boolFromString without the TypeError: True/False, or None when not a boolean."""
    if isinstance(value, bool):
        return value
    if value == 'true':
        return True
    if value == 'false':
        return False
    return None


def _json_compact(value):
    return json.dumps(value, separators=(',', ':'), sort_keys=False, ensure_ascii=False)


# ---- v1 -> v2 upgrade

def _manifest_version(manifest):
    v = manifest.get('v')
    if not js_truthy(v):
        if js_truthy(manifest.get('creator_uuid')):
            return 1
        raise InvalidManifestError('manifest does not have a "v" field')
    if isinstance(v, bool):
        raise InvalidManifestError('manifest "v" field is not a number: %r' % (v,))
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InvalidManifestError('manifest "v" field is not a number: %r' % (v,))


def _compression_from_path(path):
    if not isinstance(path, str):
        return 'none'
    basename = path.rsplit('/', 1)[-1]
    # path.extname: the last '.' that is not the first character of the name
    idx = basename.rfind('.')
    ext = basename[idx:] if idx > 0 else ''
    return {'.gz': 'gzip', '.bz2': 'bzip2'}.get(ext, 'none')


def _upgrade_to_2(old):
    if not is_uuid(old.get('uuid')):
        raise InvalidManifestError('cannot upgrade v1 manifest: invalid "uuid": %r' % (old.get('uuid'),))
    if not js_truthy(old.get('creator_uuid')):
        raise InvalidManifestError('old DSAPI manifest does not have a "creator_uuid"')
    m = copy.deepcopy(old)

    if 'owner' in m and m['owner'] is not None:
        raise InvalidManifestError('cannot upgrade v1 manifest: it has both "owner" and "creator_uuid"')
    m['owner'] = m['creator_uuid']
    for key in ('creator_uuid', 'vendor_uuid', 'creator_name', 'cloud_name', 'creator_admin'):
        m.pop(key, None)

    if js_truthy(m.get('restricted_to_uuid')):
        if m.get('public') is not None:
            raise InvalidManifestError('cannot upgrade v1 manifest: it has both "public" and "restricted_to_uuid"')
        m['public'] = False
        m['acl'] = [m['restricted_to_uuid']]
    else:
        m['public'] = True
    m.pop('restricted_to_uuid', None)
    m.pop('owner_uuid', None)

    # Boolean(disabled ?? false), with JavaScript truthiness
    m['disabled'] = js_truthy(m.get('disabled'))
    m['state'] = 'disabled' if m['disabled'] else 'active'

    if not js_truthy(m.get('published_at')) and js_truthy(m.get('created_at')):
        m['published_at'] = m['created_at']
    published_at = m.get('published_at')
    if isinstance(published_at, str) and _NO_SECONDS_RE.search(published_at):
        # YYYY-MM-DDTHH:MMZ -> YYYY-MM-DDTHH:MM:00Z
        m['published_at'] = published_at[:-1] + ':00Z'

    files = m.get('files')
    if isinstance(files, list):
        for f in files:
            if not isinstance(f, dict):
                continue
            if not js_truthy(f.get('compression')):
                f['compression'] = _compression_from_path(f.get('path') or f.get('url'))
            f.pop('path', None)
            f.pop('url', None)

    if js_truthy(m.get('image_size')):
        try:
            size = float(m['image_size'])
        except (TypeError, ValueError):
            size = float('nan')
        m['image_size'] = int(size) if size.is_integer() else size

    for key in ('platform_type', 'created_at', 'updated_at', '_url'):
        m.pop(key, None)
    m['v'] = 2
    return m


def upgrade_manifest(manifest):
    """Upgrade a manifest to v2, as imgmanifest's ``upgradeManifest``.

    A v1 (DSAPI) manifest is recognised by ``creator_uuid`` when it has no
    ``v``. Always returns a deep copy; a v>=2 manifest is returned unchanged.
    Raises InvalidManifestError when the manifest cannot be upgraded.
    """
    if not isinstance(manifest, dict):
        raise InvalidManifestError('manifest is invalid: not an object')
    if _manifest_version(manifest) >= 2:
        return copy.deepcopy(manifest)
    return _upgrade_to_2(manifest)


# ---- validation

def _ecma_pattern(validator, pattern, instance, schema):
    """``pattern`` with ECMA-262 semantics for a trailing ``$``.

    Python's ``$`` also matches before a final newline, ECMA's does not.
    """
    if not validator.is_type(instance, 'string'):
        return
    if pattern.endswith('$') and not pattern.endswith('\\$'):
        pattern = pattern[:-1] + r'\Z'
    if re.search(pattern, instance) is None:
        yield _jsonschema()['ValidationError']('%r does not match %r' % (instance, pattern))


_VALIDATOR_CLASS = []


def _validator():
    validators = _jsonschema()['validators']
    if not _VALIDATOR_CLASS:
        base = validators.validator_for(SCHEMA)
        _VALIDATOR_CLASS.append(validators.extend(base, {'pattern': _ecma_pattern}))
    return _VALIDATOR_CLASS[0](SCHEMA)


def _field_name(path):
    name = ''
    for part in path:
        if isinstance(part, int):
            name += '[%d]' % part
        else:
            name = part if not name else '%s.%s' % (name, part)
        if name in _OPAQUE_FIELDS:
            break
    return name


def _err(field, code, message=None):
    e = {'field': field, 'code': code}
    if message:
        e['message'] = message
    return e


def _type_name(schema_type):
    names = {'string': 'a string', 'integer': 'an integer', 'object': 'an object',
             'array': 'an array', 'boolean': 'a boolean', 'number': 'a number'}
    return names.get(schema_type, schema_type)


def _messages_for(error):
    """Turn one jsonschema error into a list of ``{field, code, message}``."""
    path = list(error.absolute_path)
    field = _field_name(path)
    keyword = error.validator
    value = error.instance
    out = []

    if keyword == 'required':
        present = value if isinstance(value, dict) else {}
        for key in error.validator_value:
            if key not in present:
                out.append(_err(_field_name(path + [key]), 'MissingParameter', 'is required'))
        return out
    if keyword == 'additionalProperties' and error.validator_value is False and isinstance(value, dict):
        known = set(error.schema.get('properties', {}))
        for key in value:
            if key in known:
                continue
            sub = _field_name(path + [key])
            if field == 'requirements':
                out.append(_err(sub, 'Invalid', 'unsupported requirement "%s"' % key))
            elif not path:
                out.append(_err(sub, 'Invalid', 'unknown field "%s"' % key))
            else:
                out.append(_err(sub, 'Invalid', 'unknown key "%s"' % key))
        return out

    shown = _json_compact(value) if not isinstance(value, str) else '"%s"' % value
    if len(shown) > 80:
        shown = shown[:77] + '...'
    if field in _OPAQUE_FIELDS and len(path) > len(field.split('.')):
        # e.g. a bad value inside requirements.min_platform or traits
        key = path[len(field.split('.'))]
        shown = '"%s: %s"' % (key, value if isinstance(value, str) else _json_compact(value))

    if keyword == 'type':
        message = 'must be %s, got %s' % (_type_name(error.validator_value), shown)
    elif keyword == 'enum':
        allowed = [x for x in error.validator_value if x != 'null']
        message = 'invalid value %s, must be one of: %s' % (shown, ', '.join(str(x) for x in allowed))
    elif keyword == 'anyOf' and error.schema.get('anyOf', [{}])[0].get('type') == 'boolean':
        message = 'invalid boolean value %s (must be true or false)' % shown
    elif keyword == 'anyOf' and field == 'traits':
        message = 'invalid entry %s (must be a string, boolean or array)' % shown
    elif keyword == 'anyOf':
        message = 'invalid value %s' % shown
    elif keyword == 'maxLength':
        message = 'too long, max %d characters' % error.validator_value
    elif keyword == 'minLength':
        message = 'must not be empty'
    elif keyword == 'maxItems':
        message = 'too many entries, max %d' % error.validator_value
    elif keyword == 'minProperties':
        message = 'must be a non-empty object'
    elif keyword in ('minimum', 'exclusiveMinimum'):
        message = 'must be a positive integer, got %s' % shown
    elif keyword == 'pattern':
        message = _pattern_message(field, shown)
    else:
        message = 'invalid value %s' % shown
    out.append(_err(field, 'Invalid', message))
    return out


def _pattern_message(field, shown):
    if field == 'name':
        return 'image name has invalid characters (only alphanumeric characters and " ", ".", "-", "_" and "/" are allowed)'
    if field == 'version':
        return 'image version has invalid characters (only alphanumeric characters and ".", "-", "_", "/" and "+" are allowed)'
    if field == 'published_at':
        return 'published_at date not in "YYYY-MM-DDTHH:MM:SS(.SSS)Z" format'
    if field in ('homepage', 'eula'):
        return 'invalid %s URL protocol (must be http or https)' % field
    if field in ('requirements.min_platform', 'requirements.max_platform'):
        return 'entry %s is not a valid platform version (YYYYMMDDTHHMMSSZ)' % shown
    return 'invalid value %s (not a UUID)' % shown if field in ('uuid', 'owner', 'origin') or field.startswith('acl[') \
        else 'invalid value %s' % shown


def valid_platform_timestamp(value):
    """True if ``value`` is a ``YYYYMMDDTHHMMSSZ`` platform timestamp (validPlatformVersion)."""
    if not isinstance(value, str) or len(value) != 16 or not _PLATFORM_TS_RE.match(value):
        return False
    year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    hour, minute, second = int(value[9:11]), int(value[11:13]), int(value[13:15])
    return (year >= 2012 and 1 <= month <= 12 and 1 <= day <= 31
            and hour <= 23 and minute <= 59 and second <= 59)


def _cross_field_errors(m, mode):
    errs = []
    mtype = m.get('type')
    state = m.get('state')

    # "null" type/os placeholders are only for images being created
    for key in ('type', 'os'):
        if m.get(key) == 'null' and state not in ('creating', 'failed'):
            errs.append(_err(key, 'Invalid', 'invalid image %s, "null" (only allowed while state is creating or failed)' % key))

    # zvol-only fields
    for key in ZVOL_FIELDS:
        if key not in m:
            if mtype == 'zvol':
                errs.append(_err(key, 'MissingParameter', '%s is required for a zvol image' % key))
        elif mtype != 'zvol' and js_truthy(m[key]):
            errs.append(_err(key, 'Invalid', 'invalid image %s: %s (only allowed when image type is zvol)'
                             % (key, _json_compact(m[key]))))

    if 'inherited_directories' in m and mtype != 'zone-dataset':
        errs.append(_err('inherited_directories', 'Invalid',
                         'inherited_directories is only allowed when image type is zone-dataset'))

    # activated images need published_at and files
    if _bool_from_string(m.get('activated')) is True:
        if 'published_at' not in m:
            errs.append(_err('published_at', 'MissingParameter', 'if activated is "true" published_at must be present'))
        if 'files' not in m:
            errs.append(_err('files', 'MissingParameter', 'if activated is "true" files must be present'))

    tags = m.get('tags')
    if isinstance(tags, dict):
        try:
            length = len(_json_compact(tags))
        except (TypeError, ValueError):
            errs.append(_err('tags', 'Invalid', 'image "tags" cannot be serialized as JSON'))
        else:
            if length > MAX_TAGS_LENGTH:
                errs.append(_err('tags', 'Invalid', 'image "tags" string length is too long, max %d characters' % MAX_TAGS_LENGTH))

    reqs = m.get('requirements')
    if isinstance(reqs, dict):
        for key in ('min_platform', 'max_platform'):
            spec = reqs.get(key)
            if not isinstance(spec, dict):
                continue
            for ver, ts in spec.items():
                # wrong shapes were reported by the schema already
                if isinstance(ts, str) and _PLATFORM_TS_RE.match(ts) and not valid_platform_timestamp(ts):
                    errs.append(_err('requirements.%s' % key, 'Invalid',
                                     'entry "%s: %s" is not a valid platform version (YYYYMMDDTHHMMSSZ, year >= 2012)' % (ver, ts)))
        min_ram, max_ram = reqs.get('min_ram'), reqs.get('max_ram')
        if (isinstance(min_ram, int) and not isinstance(min_ram, bool) and isinstance(max_ram, int)
                and not isinstance(max_ram, bool) and min_ram > max_ram):
            errs.append(_err('requirements.max_ram', 'Invalid',
                             'min_ram must be <= max_ram, but: min_ram=%s, max_ram=%s' % (min_ram, max_ram)))
        if 'bootrom' in reqs:
            brand = reqs.get('brand')
            if brand is None:
                errs.append(_err('requirements.bootrom', 'MissingParameter',
                                 'requirements.bootrom needs requirements.brand "bhyve"'))
            elif brand != 'bhyve':
                errs.append(_err('requirements.bootrom', 'Invalid',
                                 'requirements.bootrom is only allowed with requirements.brand "bhyve", not %s'
                                 % _json_compact(brand)))

    if mode != 'minimal':
        for key in SERVER_REQUIRED:
            if key not in m:
                errs.append(_err(key, 'MissingParameter', 'is required'))
        public = _bool_from_string(m.get('public'))
        if mode == 'public' and public is False:
            errs.append(_err('public', 'Invalid', 'private images are not allowed on a public Images API'))
        elif mode == 'private' and public is True:
            errs.append(_err('public', 'Invalid', 'public images are not allowed on a private Images API'))
    return errs


def manifest_errors(manifest, mode='minimal'):
    """Return the list of ``{field, code, message}`` problems of ``manifest`` (empty if valid).

    See ``validate_manifest``.
    """
    if mode not in VALIDATION_MODES:
        raise UsageError('invalid manifest validation mode %r, must be one of: %s'
                         % (mode, ', '.join(VALIDATION_MODES)), field='mode')
    if not isinstance(manifest, dict):
        raise InvalidManifestError('manifest is invalid: not an object')
    errs = []
    for error in _validator().iter_errors(manifest):
        errs.extend(_messages_for(error))
    errs.extend(_cross_field_errors(manifest, mode))

    seen = set()
    result = []
    for e in sorted(errs, key=lambda e: (e['field'], e['code'], e.get('message') or '')):
        key = (e['field'], e['code'], e.get('message'))
        if key in seen:
            continue
        seen.add(key)
        result.append(e)
    return result


def validate_manifest(manifest, mode='minimal'):
    """Validate a (v2) manifest; raise ManifestValidationError listing every problem.

    ``mode`` is ``minimal`` (imgadm install/create: requires v, uuid, name,
    version, type, os) or one of the IMGAPI server sets ``dc``, ``public``,
    ``private`` (which also require owner, disabled, activated, published_at,
    public, state and files). Every present field is checked; unknown
    top-level keys are errors. Field names are dotted paths such as
    ``requirements.min_platform`` or ``files[0].compression``.

    Returns the manifest when it is valid. Needs the ``jsonschema`` library
    (MissingLibraryError otherwise).
    """
    errs = manifest_errors(manifest, mode=mode)
    if errs:
        uuid = manifest.get('uuid') if is_uuid(manifest.get('uuid')) else None
        raise ManifestValidationError(errs, uuid=uuid)
    return manifest


# ---- min/max platform

def _platform_message(plat_ver, ts, which, spec):
    return 'current platform version, %s/%s, does not satisfy requirements.%s=%s' % (
        plat_ver, ts, which, _json_compact(spec))


def check_platform(manifest, sysinfo):
    """Check ``requirements.min_platform``/``max_platform`` against ``sysinfo``.

    Exactly as imgadm's ``checkMinMaxPlatformSync``: the platform version is
    ``sysinfo['SDC Version']`` (or ``'6.5'``), the timestamp
    ``sysinfo['Live Image']``; all comparisons are plain string comparisons.
    Raises PlatformError with code ``MinPlatform`` or ``MaxPlatform``.
    """
    reqs = manifest.get('requirements') if isinstance(manifest, dict) else None
    if not isinstance(reqs, dict):
        return
    min_spec = reqs.get('min_platform')
    max_spec = reqs.get('max_platform')
    if not js_truthy(min_spec) and not js_truthy(max_spec):
        return
    sysinfo = sysinfo or {}
    plat_ver = sysinfo.get('SDC Version') or '6.5'
    plat_ver = str(plat_ver)
    ts = sysinfo.get('Live Image')
    ts = None if ts is None else str(ts)
    details = {'platform_version': plat_ver, 'platform_timestamp': ts}

    if isinstance(min_spec, dict) and min_spec:
        want = min_spec.get(plat_ver)
        if js_truthy(want):
            failed = ts is not None and ts < str(want)
        else:
            failed = plat_ver < sorted(str(k) for k in min_spec)[0]
        if failed:
            raise PlatformError(_platform_message(plat_ver, ts, 'min_platform', min_spec), code='MinPlatform',
                                min_platform=min_spec, **details)

    if isinstance(max_spec, dict) and max_spec:
        want = max_spec.get(plat_ver)
        if js_truthy(want):
            failed = ts is not None and ts > str(want)
        else:
            failed = plat_ver > sorted(str(k) for k in max_spec)[-1]
        if failed:
            raise PlatformError(_platform_message(plat_ver, ts, 'max_platform', max_spec), code='MaxPlatform',
                                max_platform=max_spec, **details)


# ---- helpers

def file_info(manifest):
    """``manifest['files'][0]`` as a dict, or None."""
    files = manifest.get('files') if isinstance(manifest, dict) else None
    if isinstance(files, list) and files and isinstance(files[0], dict):
        return files[0]
    return None


def file_digest(path, chunk_size=1 << 20):
    """``(size, sha1 hex)`` of an image file, read once, for ``files[0].size`` and ``files[0].sha1``."""
    sha1 = hashlib.sha1()
    size = 0
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(chunk_size)
            if not chunk:
                break
            sha1.update(chunk)
            size += len(chunk)
    return size, sha1.hexdigest()


def parse_published_at(value):
    """Parse a ``published_at`` string, with or without milliseconds, to a naive UTC datetime (or None)."""
    if not isinstance(value, str):
        return None
    for fmt in _PUBLISHED_AT_FORMATS:
        try:
            return datetime.datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def published_at_key(manifest):
    """Sort key by ``published_at``; images without one sort first (as IMGAPI sorts them as 0)."""
    parsed = parse_published_at(manifest.get('published_at') if isinstance(manifest, dict) else None)
    return parsed if parsed is not None else datetime.datetime.min


__all__ = (
    'HAS_JSONSCHEMA', 'JSONSCHEMA_IMPORT_ERROR', 'VALIDATION_MODES',
    'is_uuid', 'validate_uuid', 'js_truthy', 'upgrade_manifest', 'manifest_errors', 'validate_manifest',
    'valid_platform_timestamp', 'check_platform', 'file_info', 'file_digest', 'parse_published_at', 'published_at_key',
)
