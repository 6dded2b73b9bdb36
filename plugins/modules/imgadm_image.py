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
  - It never destroys or changes a dataset that is not an image by the stock C(imgadm list) heuristic (a VM's dataset,
    a zone root, a dataset marked C(imgadm:ignore), or one with neither a database record nor an C(@final) snapshot);
    such a uuid fails the task with error code V(NotAnImage).
requirements:
  - requests (Python library on the managed host), to talk to image sources
  - jsonschema (Python library on the managed host), to validate manifests given with O(manifest)
  - pyzfs (C(libzfs_core) Python bindings), optional; used for the ZFS operations it offers when O(zfs_backend=auto)
    finds it, required with O(zfs_backend=libzfs_core)
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
      - The image to act on, with O(state=present), V(absent) or V(updated).
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
      - With O(state=present), an image of that name (and O(version)) installed on O(pool) satisfies the task
        without asking any source; only when there is none, the newest active one in the sources is imported
        as with O(state=latest).
      - With O(state=latest), the newest active image of that name (and O(version)) by C(published_at) across
        the sources is imported unless it is installed; the result says which uuid was chosen and why (RV(selected)).
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
        it from O(manifest) and O(file). With O(name), any installed image of that name satisfies it.
      - V(latest) imports the newest active image called O(name) across the sources (and its origin chain).
        A source that fails is reported (a warning and RV(source_errors)) rather than silently leaving an older
        image from another source; with O(strict_sources=true) it fails the task.
      - V(absent) deletes the image and its database record; an image with dependent clones (VMs or other images)
        is refused with their names. It needs O(uuid), O(uuids) or O(name).
      - V(updated) refreshes the manifests of the given images (all images on O(pool) when none is given) from the
        sources and repairs a missing C(@final) snapshot by C(files[0].dataset_guid).
      - V(vacuumed) deletes every image on O(pool) that no VM or image uses, iteratively so that unused chains go,
        except those in O(keep).
    type: str
    choices: [present, latest, absent, updated, vacuumed]
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
  strict_sources:
    description:
      - Fail the task when any image source fails, instead of going on with the sources that answered
        (and reporting the failure in RV(source_errors) and a warning).
    type: bool
    default: false
  manifest:
    description:
      - Install from local files instead of a source, with O(file) (C(imgadm install -m -f)).
      - A path to a manifest file on the managed host, or the manifest itself as a dict.
      - The manifest is upgraded from v1 if needed and validated; its origin must be installed already.
      - Only with O(state=present).
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
      - With O(state=vacuumed) only, images never to delete, as uuids, names or V(name@version).
    type: list
    elements: str
  concurrency:
    description:
      - How many images are imported at the same time when several are needed. At least 1.
    type: int
    default: 2
  lock_dir:
    description:
      - Directory of the per-image import lock files, shared with the stock C(imgadm).
      - An import takes the locks of every image it imports, each child before its origin (the stock C(imgadm)'s
        order), and of the installed origins it builds on; a delete or vacuum holds the lock of the image it
        destroys.
      - Where C(zfs receive) cannot leave what it received unmounted, the file C(smartos-imgadm.zfs-mounts.lock)
        keeps receives and mount changes of this collection apart. It is in C(/var/run) whatever this option
        says (one per host, like the ZFS daemon), and here only when C(/var/run) cannot be written.
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
    a failed import leaves no stale database record. The collection's compatibility guide lists every difference
    (C(docs/docsite/rst/guide_compatibility.rst)).
seealso:
  - module: smartos.imgadm.imgadm_source
  - ref: ansible_collections.smartos.imgadm.docsite.guide_compatibility
    description: What is compatible with the stock C(imgadm), what differs on purpose, and why.
  - ref: ansible_collections.smartos.imgadm.docsite.guide_scenarios
    description: Sources, importing by name across a fleet, building and publishing, vacuuming.
'''

EXAMPLES = r'''
- name: Import an image and its origins
  smartos.imgadm.imgadm_image:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271

- name: Some base-64-lts, installed or else the newest from the sources
  smartos.imgadm.imgadm_image:
    name: base-64-lts

- name: The newest base-64-lts from the sources, whatever is installed
  smartos.imgadm.imgadm_image:
    name: base-64-lts
    state: latest
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
  returned: success, when the task is about exactly one image (null otherwise)
  type: dict
  contains:
    manifest: {description: The image manifest., type: dict}
    zpool: {description: The pool., type: str}
    source: {description: The source URL it was imported from (absent for images installed from files)., type: str}
  sample:
    manifest: {v: 2, uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271, name: base-64-lts, version: 24.4.0}
    zpool: zones
    source: https://images.smartos.org
images:
  description: The image records (as in RV(image)) of every image the task is about that is installed (or will be, in
    check mode); empty with O(state=absent) and O(state=vacuumed).
  returned: success
  type: list
  elements: dict
  contains:
    manifest: {description: The image manifest., type: dict}
    zpool: {description: The pool., type: str}
    source: {description: The source URL (absent for images installed from files)., type: str}
imported:
  description: What this run imported or installed, base first. An image imported by another process while the task
    waited for its lock is not here (see RV(imported_by_others)). Also returned when the task fails half way.
  returned: always
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
imported_by_others:
  description: Images another process (another task, the stock C(imgadm)) imported while this task waited for their
    locks; they do not make the task changed.
  returned: always
  type: list
  elements: str
plan:
  description: The images the task imports or installs (in check mode, would), base first, with their file sizes.
  returned: when O(state=present) or O(state=latest)
  type: list
  elements: dict
  contains:
    uuid: {description: The image., type: str}
    name: {description: Its name., type: str}
    version: {description: Its version., type: str}
    bytes: {description: The size of its file., type: int}
    source: {description: The source URL (null for files)., type: str}
plan_bytes:
  description: The sum of the file sizes in RV(plan).
  returned: when O(state=present) or O(state=latest)
  type: int
selected:
  description: Which image O(name) selected and why.
  returned: when O(name) is given with O(state=present) or O(state=latest)
  type: dict
  contains:
    uuid: {description: The image chosen., type: str}
    name: {description: Its name., type: str}
    version: {description: Its version., type: str}
    source:
      description: The source it comes from; for an installed image, the source it was imported from.
      type: str
    reason: {description: Why this one., type: str}
  sample:
    uuid: 2f1dc911-6401-4fa4-8e9d-67ea2e39c271
    name: base-64-lts
    version: 24.4.0
    source: https://images.smartos.org
    reason: newest published_at (2024-12-01T00:00:00Z) of 3 active image(s) named "base-64-lts" in the sources
source_errors:
  description: The image sources that failed while the task asked them (without O(strict_sources)).
  returned: when a source failed
  type: list
  elements: dict
  contains:
    source: {description: The source URL., type: str}
    msg: {description: What went wrong., type: str}
    error_code: {description: The stock C(imgadm)'s error code for it., type: str}
deleted:
  description: Images this run deleted (in check mode, that would be), children first.
  returned: always
  type: list
  elements: dict
  contains:
    uuid: {description: The image., type: str}
    name: {description: Its name., type: str}
    version: {description: Its version., type: str}
updated:
  description: Images whose manifest was refreshed or whose C(@final) was repaired, with what changed.
  returned: always
  type: list
  elements: dict
  contains:
    uuid: {description: The image., type: str}
    changes:
      description: V(manifest) followed by the fields that changed, and/or V(final) when the original snapshot was renamed back.
      type: list
      elements: str
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
  description: On failure, the stock C(imgadm)'s error code for the same error (for example V(ImageHasDependentClones)),
    or this collection's own (V(NotAnImage), V(PoolNotFound), V(CommandTimeout), V(Usage)).
  returned: failure
  type: str
field:
  description: On a bad option, the option it is about.
  returned: failure, for bad input
  type: str
'''

from ansible_collections.smartos.imgadm.plugins.module_utils._common import (
    BINARY_ARGS,
    DATABASE_ARGS,
    IMGAPI_ARGS,
    argument_spec,
    run_module,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._image_states import run_images


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
        state=dict(type='str', choices=['present', 'latest', 'absent', 'updated', 'vacuumed'], default='present'),
        sources=dict(type='list', elements='str'),
        channel=dict(type='str'),
        strict_sources=dict(type='bool', default=False),
        manifest=dict(type='raw'),
        file=dict(type='path'),
        zstream=dict(type='bool', default=False),
        keep=dict(type='list', elements='str'),
        concurrency=dict(type='int', default=2),
        lock_dir=dict(type='path', default='/var/run'),
        zfs_backend=dict(type='str', choices=['auto', 'cli', 'libzfs_core'], default='auto'),
    )
    # which options go with which state is checked in _image_run.check_options (errors name the option)
    run_module(spec, run_images)


if __name__ == '__main__':
    main()
