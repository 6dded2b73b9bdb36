#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: imgadm_image
short_description: Import, install, delete, update and vacuum SmartOS images
version_added: 0.1.0
description:
  - Does what C(imgadm import), C(install), C(delete), C(update) and C(vacuum) do, idempotently, with check mode and diff.
  - Imports stream in one pass, HTTP body to checksum to decompressor to C(zfs receive), with the stages in separate
    threads and processes; nothing is written outside the pool and memory stays flat whatever the image size.
  - An image is only renamed to C(POOL/UUID) after its size and sha1 verify; on any failure no C(POOL/UUID-partial),
    no final dataset and no database record is left behind.
  - Uses the stock C(imgadm)'s per-image import locks (C(/var/run/img.UUID.import.lock)), so this module and a stock
    C(imgadm) on the same host never import the same image at once.
  - The database records written are byte for byte those of the stock C(imgadm), which keeps working with them.
author:
  - smartos.imgadm developers (@smartos-imgadm)
extends_documentation_fragment:
  - smartos.imgadm._attributes
  - smartos.imgadm._attributes.ACTIONGROUP_IMGADM
  - smartos.imgadm._database
  - smartos.imgadm._imgapi
  - smartos.imgadm._binaries
attributes:
  check_mode:
    support: full
    details: Check mode queries the sources and ZFS and reports the plan (which images, how many bytes); it changes nothing.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  uuid:
    description:
      - The image to act on.
    type: str
  uuids:
    description:
      - Several images to act on in one task. With O(state=present) they are imported with bounded
        concurrency (O(concurrency)) where their origin chains allow.
    type: list
    elements: str
  name:
    description:
      - Select images by name instead of uuid.
      - With O(state=present), the newest active image of that name (and O(version)) by C(published_at) across
        the sources; the result says which uuid was chosen and why (RV(selected)).
      - With O(state=absent) or O(state=updated), the installed images of that name (and O(version)) on O(pool).
    type: str
  version:
    description:
      - With O(name), only images of this version.
    type: str
  pool:
    description:
      - The ZFS pool the images are installed on.
    type: str
    default: zones
  state:
    description:
      - V(present) imports the image and its origin chain (ancestors already on the pool are skipped), or installs
        it from O(manifest) and O(file).
      - V(absent) deletes the image and its database record; an image with dependent clones (VMs or other images)
        is refused with their names.
      - V(updated) refreshes the manifests of the given images (all images on O(pool) when none is given) from the
        sources and repairs a missing C(@final) snapshot by C(files[0].dataset_guid).
      - V(vacuumed) deletes every image on O(pool) that no VM or image uses, iteratively so that unused chains go,
        except those in O(keep).
    type: str
    choices: [present, absent, updated, vacuumed]
    default: present
  sources:
    description:
      - IMGAPI URLs to use instead of the configured sources for this task (C(imgadm import -S)).
    type: list
    elements: str
  channel:
    description:
      - The IMGAPI channel to use with every source for this task (C(imgadm import -C)).
    type: str
  manifest:
    description:
      - Install from local files instead of a source, with O(file) (C(imgadm install -m -f)).
      - A path to a manifest file on the managed host, or the manifest itself as a dict.
      - The manifest is upgraded from v1 if needed and validated; its origin must be installed already.
    type: raw
  file:
    description:
      - The image file on the managed host to install with O(manifest). Its size and sha1 must match the manifest.
    type: path
  zstream:
    description:
      - O(file) is a raw, uncompressed C(zfs send) stream; size and checksum checks are skipped (C(--zstream)).
    type: bool
    default: false
  keep:
    description:
      - With O(state=vacuumed), images never to delete, as uuids, names or V(name@version).
    type: list
    elements: str
    default: []
  concurrency:
    description:
      - How many images are imported at the same time when several are needed.
    type: int
    default: 2
  lock_dir:
    description:
      - Directory of the per-image import lock files, shared with the stock C(imgadm).
    type: path
    default: /var/run
  zfs_backend:
    description:
      - How to talk to ZFS. V(auto) uses C(libzfs_core) (pyzfs) for the operations it offers when it is installed
        and usable, and the C(zfs) command otherwise; V(cli) and V(libzfs_core) force one.
    type: str
    choices: [auto, cli, libzfs_core]
    default: auto
notes:
  - Where the stock C(imgadm) has a bug, this module does the documented thing instead. C(install) checks that the origin is
    installed, C(update) in check mode renames nothing, an error from one source does not hide an image found in another,
    a failed import leaves no stale database record. See the collection's C(docs/differences.md).
seealso:
  - module: smartos.imgadm.imgadm_source
'''

EXAMPLES = r'''
- name: Import an image and its origins
  smartos.imgadm.imgadm_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271

- name: The newest base-64-lts from the sources
  smartos.imgadm.imgadm_image:
    name: base-64-lts
  register: base

- name: Several images at once
  smartos.imgadm.imgadm_image:
    uuids:
      - 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
      - 7b5981c4-1889-11e7-b4c5-3f3bdfc9b88b
    concurrency: 3

- name: Install from files copied to the host
  smartos.imgadm.imgadm_image:
    manifest: /var/tmp/myimage.imgmanifest
    file: /var/tmp/myimage.zfs.gz

- name: Delete an image
  smartos.imgadm.imgadm_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    state: absent

- name: Refresh every manifest and repair lost @final snapshots
  smartos.imgadm.imgadm_image:
    state: updated

- name: See what a vacuum would delete
  smartos.imgadm.imgadm_image:
    state: vacuumed
    keep: [base-64-lts]
  check_mode: true
'''

RETURN = r'''
image:
  description: The image record as C(imgadm get) shows it, when the task is about one image (predicted in check mode).
  returned: success
  type: dict
  sample:
    manifest: {v: 2, uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271, name: base-64-lts, version: 24.4.0}
    zpool: zones
    source: https://images.smartos.org
images:
  description: The image records of every image the task is about.
  returned: success
  type: list
  elements: dict
imported:
  description: What was imported or installed, base first.
  returned: success
  type: list
  elements: dict
  contains:
    uuid: {description: The image., type: str}
    name: {description: Its name., type: str}
    version: {description: Its version., type: str}
    source: {description: The source URL (null for files)., type: str}
    compression: {description: The file's compression., type: str}
    bytes: {description: Bytes streamed., type: int}
    seconds: {description: Wall time of the streaming pass., type: float}
    mib_per_second: {description: Throughput., type: float}
    attempts: {description: Downloads tried (interrupted downloads are retried from the start)., type: int}
plan:
  description: The images the task imports or installs (in check mode, would), base first, with their file sizes.
  returned: when O(state=present)
  type: list
  elements: dict
plan_bytes:
  description: The sum of the file sizes in RV(plan).
  returned: when O(state=present)
  type: int
selected:
  description: Which image O(name) selected and why.
  returned: when O(state=present) and O(name) is given
  type: dict
  sample:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    name: base-64-lts
    version: 24.4.0
    source: https://images.smartos.org
    reason: newest published_at (2024-12-01T00:00:00Z) of 3 active image(s) named "base-64-lts" in the sources
deleted:
  description: Images deleted (in check mode, that would be).
  returned: success
  type: list
  elements: dict
updated:
  description: Images whose manifest was refreshed or whose C(@final) was repaired, with what changed.
  returned: success
  type: list
  elements: dict
kept:
  description: With O(state=vacuumed), the images left on the pool.
  returned: when O(state=vacuumed)
  type: list
  elements: str
zfs_backend:
  description: How the module talked to ZFS, V(libzfs_core) (pyzfs) or V(cli) (see O(zfs_backend)).
  returned: success
  type: str
  sample: cli
actions:
  description: What the task did (or would do in check mode), one line each.
  returned: always
  type: list
  elements: str
error_code:
  description: On failure, the stock C(imgadm)'s error code for the same error (for example V(ImageHasDependentClones)).
  returned: failure
  type: str
'''

from ansible_collections.smartos.imgadm.plugins.module_utils._common import (
    BINARY_ARGS,
    DATABASE_ARGS,
    IMGAPI_ARGS,
    argument_spec,
    run_module,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._image_manager import run_images


def main():
    spec = argument_spec(
        DATABASE_ARGS,
        IMGAPI_ARGS,
        BINARY_ARGS,
        uuid=dict(type='str'),
        uuids=dict(type='list', elements='str'),
        name=dict(type='str'),
        version=dict(type='str'),
        pool=dict(type='str', default='zones'),
        state=dict(type='str', choices=['present', 'absent', 'updated', 'vacuumed'], default='present'),
        sources=dict(type='list', elements='str'),
        channel=dict(type='str'),
        manifest=dict(type='raw'),
        file=dict(type='path'),
        zstream=dict(type='bool', default=False),
        keep=dict(type='list', elements='str', default=[]),
        concurrency=dict(type='int', default=2),
        lock_dir=dict(type='path', default='/var/run'),
        zfs_backend=dict(type='str', choices=['auto', 'cli', 'libzfs_core'], default='auto'),
    )
    run_module(
        spec, run_images,
        mutually_exclusive=[('name', 'uuid'), ('name', 'uuids'), ('manifest', 'uuid'), ('manifest', 'uuids'), ('manifest', 'name')],
        required_by={'version': 'name', 'file': 'manifest'},
        required_if=[('state', 'present', ('uuid', 'uuids', 'name', 'manifest'), True)],
    )


if __name__ == '__main__':
    main()
