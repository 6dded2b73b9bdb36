# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``imgadm create``: the manifest of the new image and where it is written. Pure functions.

``build_manifest`` follows the stock ``imgadm create`` (imgadm-behaviour.md
4.4, step 5): ``{v: 2, uuid: <new>}`` overlaid with the given fields, then
the fields inherited from the origin image (even without ``incremental``),
then ``requirements.min_platform`` / ``brand`` / ``bootrom`` from the VM and
the platform, then ``origin`` for an incremental image. ``files`` is added
once the image file is written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import re
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    CommandError,
    MaxOriginDepthError,
    VmHasNoOriginError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import js_truthy

MANIFEST_V = 2

# Copied from the origin image when the given manifest does not have them (empty lists are skipped).
INHERITED_FIELDS = ('type', 'os', 'requirements', 'users', 'billing_tags', 'traits', 'generate_passwords',
                    'inherited_directories', 'nic_driver', 'disk_driver', 'cpu_type', 'image_size')
# Brands whose images get requirements.min_platform = the current platform (their binaries are built on it).
MIN_PLATFORM_BRANDS = ('joyent', 'joyent-minimal')
# Brands whose images get requirements.brand = the VM's brand.
BRAND_REQUIREMENT_BRANDS = ('bhyve', 'lx', 'kvm')

COMPRESSION_EXTENSIONS = OrderedDict([('none', ''), ('gzip', '.gz'), ('bzip2', '.bz2'), ('xz', '.xz')])

_SLUG_DROP_RE = re.compile(r'[^A-Za-z0-9_\s._-]')
_SLUG_DASH_RE = re.compile(r'[-\s]+')


def path_slugify(value):
    """The stock ``imgadm``'s ``pathSlugify``: drop ``[^\\w\\s._-]``, trim, lower-case, ``[-\\s]+`` -> ``-``."""
    text = _SLUG_DROP_RE.sub('', '%s' % (value,)).strip().lower()
    return _SLUG_DASH_RE.sub('-', text)


def output_prefix(output, name, version, isdir=os.path.isdir):
    """The path prefix of the two files: ``DIR/<slug(name)>-<slug(version)>`` when ``output`` is a directory,
    else ``output`` itself."""
    if isdir(output):
        return os.path.join(output, '%s-%s' % (path_slugify(name), path_slugify(version)))
    return output


def output_paths(prefix, manifest_type, compression):
    """``(manifest_path, file_path)``: ``PREFIX.imgmanifest`` and ``PREFIX.zfs[.gz|.bz2|.xz]`` (``.zvol...`` for zvol)."""
    ext = '.zvol' if manifest_type == 'zvol' else '.zfs'
    return prefix + '.imgmanifest', prefix + ext + COMPRESSION_EXTENSIONS[compression]


def needs_sysinfo(vm, given):
    """Whether ``build_manifest`` will need ``sysinfo`` (for ``requirements.min_platform``)."""
    reqs = given.get('requirements')
    return vm.get('brand') in MIN_PLATFORM_BRANDS and not (isinstance(reqs, dict) and js_truthy(reqs.get('min_platform')))


def build_manifest(given, vm, origin_manifest, sysinfo, incremental, new_uuid):
    """The manifest of the new image (without ``files``) and the notes of where its fields came from.

    ``given``: the fields the user gave (they win, ``v`` and ``uuid`` too);
    ``vm``: the VM object; ``origin_manifest``: the manifest of the image the
    VM was made from when it is installed (None otherwise); ``sysinfo``: only
    read when ``needs_sysinfo``. Returns ``(manifest, notes)``.
    """
    m = OrderedDict([('v', MANIFEST_V), ('uuid', new_uuid)])
    for key, value in given.items():
        m[key] = copy.deepcopy(value)
    notes = OrderedDict([('inherited', []), ('set', [])])
    if origin_manifest is not None:
        for field in INHERITED_FIELDS:
            if field in m or field not in origin_manifest:
                continue
            value = origin_manifest[field]
            if isinstance(value, list) and not value:
                continue
            m[field] = copy.deepcopy(value)
            notes['inherited'].append(field)
    brand = vm.get('brand')
    given_reqs = given.get('requirements') if isinstance(given.get('requirements'), dict) else {}

    def requirements():
        if 'requirements' not in m:
            m['requirements'] = OrderedDict()
        return m['requirements'] if isinstance(m['requirements'], dict) else None

    if needs_sysinfo(vm, given):
        sysinfo = sysinfo or {}
        if sysinfo.get('SDC Version') is None or sysinfo.get('Live Image') is None:
            raise CommandError('sysinfo has no "SDC Version" or "Live Image": cannot set requirements.min_platform '
                               'of an image of a %s VM' % brand)
        reqs = requirements()
        if reqs is not None:
            reqs['min_platform'] = OrderedDict([('%s' % sysinfo['SDC Version'], sysinfo['Live Image'])])
            notes['set'].append('requirements.min_platform')
    if brand in BRAND_REQUIREMENT_BRANDS and 'brand' not in given_reqs:
        reqs = requirements()
        if reqs is not None:
            reqs['brand'] = brand
            notes['set'].append('requirements.brand')
    if brand == 'bhyve' and vm.get('bootrom') and 'bootrom' not in given_reqs:
        reqs = requirements()
        if reqs is not None:
            reqs['bootrom'] = vm['bootrom']
            notes['set'].append('requirements.bootrom')
    if incremental:
        if origin_manifest is None:
            raise VmHasNoOriginError('cannot create an incremental image: vm "%s" has no origin' % vm.get('uuid'),
                                     vm_uuid=vm.get('uuid'))
        m['origin'] = origin_manifest['uuid']
        notes['set'].append('origin')
    return m, notes


def origin_chain(origin_manifest, read_manifest, limit=1000):
    """The uuids of the origin chain of a new image made from ``origin_manifest``: its uuid, its origin, ...

    ``read_manifest(uuid)`` gives an ancestor's manifest, or None when it is
    unknown (the chain is then cut after its uuid).
    """
    chain = [origin_manifest['uuid']]
    m = origin_manifest
    while isinstance(m, dict) and m.get('origin') and len(chain) < limit:
        uuid = m['origin']
        if uuid in chain:
            break
        chain.append(uuid)
        m = read_manifest(uuid)
    return chain


def check_max_origin_depth(max_depth, origin_manifest, read_manifest):
    """``MaxOriginDepth`` when the origin chain has more than ``max_depth`` images.

    As the stock ``imgadm``: only checked when the origin is itself
    incremental (a chain of one never exceeds the minimum of 2), and also
    without ``incremental``.
    """
    if not max_depth or origin_manifest is None or not origin_manifest.get('origin'):
        return None
    chain = origin_chain(origin_manifest, read_manifest)
    if len(chain) > max_depth:
        raise MaxOriginDepthError('cannot create image: maximum origin depth "%s" has been reached' % max_depth,
                                  max_origin_depth=max_depth, origin_chain=chain)
    return chain


__all__ = (
    'MANIFEST_V', 'INHERITED_FIELDS', 'MIN_PLATFORM_BRANDS', 'BRAND_REQUIREMENT_BRANDS', 'COMPRESSION_EXTENSIONS',
    'path_slugify', 'output_prefix', 'output_paths', 'needs_sysinfo', 'build_manifest', 'origin_chain',
    'check_max_origin_depth',
)
