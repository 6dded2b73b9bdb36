# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""JSON Schema (draft-07) of a SmartOS image manifest, version 2.

Ansible ships only ``.py`` module_utils to the managed node, so the schema
lives here as a Python dict. ``docs/imgmanifest-v2.schema.json`` is the same
document as a JSON file; a unit test keeps the two equal.

The schema encodes what a schema can say well: types, enums, patterns and
the length limits of the imgmanifest code that SmartOS ``imgadm`` runs
(name <= 1024, version <= 512, description <= 10240...). Rules that join
several fields (zvol-only fields, ``inherited_directories`` only for
zone-dataset, platform timestamps in range, ``min_ram <= max_ram``,
``bootrom`` only with brand bhyve, ``published_at`` when activated, the
``"null"`` type/os placeholder) are checked in ``_manifest.validate_manifest``.

Draft-07 is used rather than 2020-12 so that older ``jsonschema`` releases
(3.x) found on managed nodes can still validate with it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import COMPRESSIONS, UUID_PATTERN

NAME_PATTERN = '^[A-Za-z0-9._/ -]+$'
VERSION_PATTERN = '^[A-Za-z0-9._/+-]+$'
PUBLISHED_AT_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{3})?Z$'
PLATFORM_TIMESTAMP_PATTERN = '^[0-9]{8}T[0-9]{6}Z$'
URL_PATTERN = '^[Hh][Tt][Tt][Pp][Ss]?://'

MAX_NAME_LENGTH = 1024
MAX_VERSION_LENGTH = 512
MAX_DESCRIPTION_LENGTH = 10240
MAX_URL_LENGTH = 1024
MAX_BILLING_TAG_LENGTH = 128
# JSON.stringify(tags).length limit
MAX_TAGS_LENGTH = 100 * 1024

IMAGE_TYPES = ['zone-dataset', 'lx-dataset', 'zvol', 'docker', 'other']
IMAGE_OSES = ['smartos', 'linux', 'windows', 'bsd', 'illumos', 'other']
IMAGE_STATES = ['active', 'unactivated', 'disabled', 'creating', 'failed']
BOOTROMS = ['bios', 'uefi']
# Fields that only a zvol image may (and must) have.
ZVOL_FIELDS = ['nic_driver', 'disk_driver', 'cpu_type', 'image_size']
# Required by validateMinimalManifest (imgadm install/create).
MINIMAL_REQUIRED = ['v', 'uuid', 'name', 'version', 'type', 'os']
# Required in addition by the IMGAPI server-side sets (dc, public, private).
# The zvol fields are only enforced for zvol images.
SERVER_REQUIRED = ['owner', 'disabled', 'activated', 'published_at', 'public', 'state', 'files']


SCHEMA = {
    '$schema': 'http://json-schema.org/draft-07/schema#',
    'title': 'SmartOS image manifest (v2)',
    'description': (
        'An image manifest as validated by SmartOS imgadm (imgmanifest 3.1.0, '
        '"validateMinimalManifest"). Cross-field rules (zvol-only fields, '
        'inherited_directories only on zone-dataset, platform timestamp ranges, '
        'min_ram <= max_ram, bootrom only with brand bhyve, published_at when '
        'activated, "null" type/os only while creating/failed) are checked in code.'
    ),
    'type': 'object',
    'required': list(MINIMAL_REQUIRED),
    'additionalProperties': False,
    'definitions': {
        'uuid': {
            'type': 'string',
            'pattern': UUID_PATTERN,
        },
        'boolish': {
            'description': 'A boolean, or the strings "true"/"false" (boolFromString).',
            'anyOf': [
                {'type': 'boolean'},
                {'type': 'string', 'enum': ['true', 'false']},
            ],
        },
        'url': {
            'type': 'string',
            'maxLength': MAX_URL_LENGTH,
            'pattern': URL_PATTERN,
        },
        'platform_spec': {
            'description': 'Maps an SDC version ("7.0") to a platform timestamp YYYYMMDDTHHMMSSZ.',
            'type': 'object',
            'minProperties': 1,
            'additionalProperties': {
                'type': 'string',
                'pattern': PLATFORM_TIMESTAMP_PATTERN,
            },
        },
    },
    'properties': {
        'v': {
            'description': 'Manifest format version (2).',
            'type': 'integer',
            'minimum': 0,
        },
        'uuid': {'$ref': '#/definitions/uuid'},
        'urn': {
            'description': 'Deprecated "cloud:creator:name:version" identifier.',
            'type': 'string',
        },
        'owner': {'$ref': '#/definitions/uuid'},
        'name': {
            'type': 'string',
            'minLength': 1,
            'maxLength': MAX_NAME_LENGTH,
            'pattern': NAME_PATTERN,
        },
        'version': {
            'type': 'string',
            'minLength': 1,
            'maxLength': MAX_VERSION_LENGTH,
            'pattern': VERSION_PATTERN,
        },
        'description': {
            'type': 'string',
            'maxLength': MAX_DESCRIPTION_LENGTH,
        },
        'homepage': {'$ref': '#/definitions/url'},
        'eula': {'$ref': '#/definitions/url'},
        'icon': {'$ref': '#/definitions/boolish'},
        'state': {
            'type': 'string',
            'enum': list(IMAGE_STATES),
        },
        'error': {
            'description': 'Only when state is "failed": {message, code?, stack?}.',
            'type': 'object',
        },
        'disabled': {'$ref': '#/definitions/boolish'},
        'activated': {'$ref': '#/definitions/boolish'},
        'public': {'$ref': '#/definitions/boolish'},
        'published_at': {
            'description': 'ISO 8601 UTC, with or without milliseconds.',
            'type': 'string',
            'pattern': PUBLISHED_AT_PATTERN,
        },
        'type': {
            'description': '"null" is allowed only while state is creating or failed.',
            'type': 'string',
            'enum': list(IMAGE_TYPES) + ['null'],
        },
        'os': {
            'description': '"null" is allowed only while state is creating or failed.',
            'type': 'string',
            'enum': list(IMAGE_OSES) + ['null'],
        },
        'origin': {'$ref': '#/definitions/uuid'},
        'files': {
            'type': 'array',
            'maxItems': 1,
            'items': {
                'type': 'object',
                'required': ['sha1', 'size', 'compression'],
                'properties': {
                    'sha1': {'type': 'string', 'minLength': 1},
                    'size': {'type': 'integer', 'minimum': 1},
                    'compression': {'type': 'string', 'enum': list(COMPRESSIONS)},
                    'dataset_guid': {'description': 'ZFS guid of the image snapshot (not checked).'},
                    'stor': {'description': 'Admin field: storage type (not checked).'},
                    'digest': {'description': 'Docker layer digest (not checked).'},
                    'uncompressedDigest': {'description': 'Docker layer digest (not checked).'},
                },
            },
        },
        'acl': {
            'type': 'array',
            'items': {'$ref': '#/definitions/uuid'},
        },
        'requirements': {
            'type': 'object',
            'additionalProperties': False,
            'properties': {
                'networks': {
                    'type': 'array',
                    'items': {
                        'type': 'object',
                        'required': ['name', 'description'],
                        'additionalProperties': False,
                        'properties': {
                            'name': {'type': 'string'},
                            'description': {'type': 'string'},
                        },
                    },
                },
                'brand': {'type': 'string'},
                'ssh_key': {'type': 'boolean'},
                'min_ram': {'type': 'integer', 'minimum': 1},
                'max_ram': {'type': 'integer', 'minimum': 1},
                'min_platform': {'$ref': '#/definitions/platform_spec'},
                'max_platform': {'$ref': '#/definitions/platform_spec'},
                'bootrom': {
                    'description': 'Only with brand "bhyve".',
                    'type': 'string',
                    'enum': list(BOOTROMS),
                },
            },
        },
        'users': {
            'type': 'array',
            'items': {
                'type': 'object',
                'required': ['name'],
                'additionalProperties': False,
                'properties': {
                    'name': {'type': 'string'},
                },
            },
        },
        'billing_tags': {
            'type': 'array',
            'items': {'type': 'string', 'maxLength': MAX_BILLING_TAG_LENGTH},
        },
        'traits': {
            'type': 'object',
            'additionalProperties': {
                'anyOf': [
                    {'type': 'string'},
                    {'type': 'boolean'},
                    {'type': 'array'},
                ],
            },
        },
        'tags': {
            'description': 'Any JSON values; the JSON text must be at most 100 KiB.',
            'type': 'object',
        },
        'generate_passwords': {'$ref': '#/definitions/boolish'},
        'inherited_directories': {
            'description': 'Only for type zone-dataset.',
            'type': 'array',
            'items': {'type': 'string'},
        },
        'nic_driver': {'description': 'zvol only.', 'type': 'string'},
        'disk_driver': {'description': 'zvol only.', 'type': 'string'},
        'cpu_type': {'description': 'zvol only.', 'type': 'string'},
        'image_size': {'description': 'zvol only, MiB.', 'type': 'integer', 'minimum': 1},
        'channels': {
            'type': 'array',
            'items': {'type': 'string'},
        },
    },
}


__all__ = (
    'SCHEMA', 'NAME_PATTERN', 'VERSION_PATTERN', 'PUBLISHED_AT_PATTERN',
    'PLATFORM_TIMESTAMP_PATTERN', 'URL_PATTERN', 'MAX_NAME_LENGTH', 'MAX_VERSION_LENGTH',
    'MAX_DESCRIPTION_LENGTH', 'MAX_URL_LENGTH', 'MAX_BILLING_TAG_LENGTH', 'MAX_TAGS_LENGTH',
    'IMAGE_TYPES', 'IMAGE_OSES', 'IMAGE_STATES', 'BOOTROMS', 'ZVOL_FIELDS',
    'MINIMAL_REQUIRED', 'SERVER_REQUIRED',
)
