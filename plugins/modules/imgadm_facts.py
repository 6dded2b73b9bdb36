#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: imgadm_facts
short_description: Gather facts about installed and available SmartOS images and image sources
version_added: 0.1.0
description:
  - Gathers what C(imgadm list -j), C(imgadm get -r), C(imgadm ancestry -j), C(imgadm sources -j), C(imgadm avail -j)
    and C(imgadm show) print, as facts, in the same shapes.
  - Installed images are found with the stock C(imgadm list) heuristic (not a zone root from C(zoneadm list), named
    exactly C(POOL/UUID), not a clone of an C(@final) snapshot without an C(@final) of its own, not marked
    C(imgadm:ignore)), with one C(zfs list), one C(zoneadm list) and one pass over the image database, however many
    images there are.
  - Unlike the stock C(imgadm list), images on pools whose names contain digits (such as C(zones2)) are found.
  - Read-only; it never changes anything, in check mode or not.
requirements:
  - requests (Python library on the managed host), only to gather the V(available) subset
author:
  - smartos.imgadm developers (@smartos-imgadm)
extends_documentation_fragment:
  - smartos.imgadm._attributes
  - smartos.imgadm._attributes.ACTIONGROUP_IMGADM
  - smartos.imgadm._attributes.FACTS
  - smartos.imgadm._database
  - smartos.imgadm._imgapi
  - smartos.imgadm._binaries
attributes:
  check_mode:
    support: full
    details: The module changes nothing; check mode gathers the same facts.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  gather_subset:
    description:
      - What to gather. V(installed) sets RV(ansible_facts.imgadm_images), V(sources) sets RV(ansible_facts.imgadm_sources),
        V(available) sets RV(ansible_facts.imgadm_available) (it asks every image source, so it is not gathered by default).
      - V(all) is all three; a leading C(!) leaves a subset out (V(!sources)). When only exclusions are given they apply
        to the default.
    type: list
    elements: str
    default: [installed, sources]
  pools:
    description:
      - Only these pools. By default images are gathered on every pool, as C(imgadm list) does.
      - A pool that does not exist fails the task (error code V(PoolNotFound)).
    type: list
    elements: str
    aliases: [pool]
  filters:
    description:
      - Keep only the images that match every filter, like the C(FIELD=VALUE) arguments of C(imgadm list) and
        C(imgadm avail). Applies to RV(ansible_facts.imgadm_images) and RV(ansible_facts.imgadm_available).
      - A dict of C(FIELD) to C(VALUE), or a list of C(FIELD=VALUE) strings.
      - C(FIELD) is a manifest field, dotted for nested ones (C(requirements.brand)), or one of the computed fields
        C(published_date), C(published) (C(published_at) without milliseconds), C(source), C(clones), C(zpool) and C(size).
      - A value V(true) or V(false) (a YAML boolean or the string) matches a boolean field exactly; C(~SUB) matches
        when the field contains C(SUB) (for a list field, when one of its elements is C(SUB)); any other value matches
        the field's text exactly. An image without the field never matches.
    type: raw
  uuids:
    description:
      - Images to look at closely. RV(ansible_facts.imgadm_images) keeps only these, and each installed one is described
        in RV(ansible_facts.imgadm_image_info) as C(imgadm get) shows it.
      - With the V(available) subset, the ones not installed are looked up in the sources, in any state, as
        C(imgadm show) does, and returned in RV(ansible_facts.imgadm_available) instead of the whole list of the sources.
      - A uuid whose dataset exists but is not an image (a VM's dataset, say) is not described; it is listed in
        RV(not_images) with the reason. The stock C(imgadm get) shows such a dataset as if it were an image.
    type: list
    elements: str
  children:
    description:
      - With O(uuids), add C(children.snapshots) and C(children.clones) to each image in
        RV(ansible_facts.imgadm_image_info), as C(imgadm get -r) does.
    type: bool
    default: false
  ancestry:
    description:
      - With O(uuids), set RV(ansible_facts.imgadm_ancestry), the origin chain of each installed image, as
        C(imgadm ancestry -j) lists it.
    type: bool
    default: false
  sources:
    description:
      - IMGAPI URLs to ask for the V(available) subset instead of the configured sources.
    type: list
    elements: str
  channel:
    description:
      - The IMGAPI channel to use with every source for the V(available) subset.
    type: str
  strict_sources:
    description:
      - Fail when any image source fails, instead of returning what the other sources have
        (and reporting the failure in RV(source_errors) and a warning).
    type: bool
    default: false
  lock_dir:
    description:
      - Accepted so that C(module_defaults) for the C(group/smartos.imgadm.imgadm) group apply; this module takes no locks.
    type: path
    default: /var/run
notes:
  - Each record of RV(ansible_facts.imgadm_images) is the image's database record as the stock C(imgadm list -j) prints it.
    The stock C(imgadm list) with filters also adds its computed fields to the manifests it prints; this module leaves
    the manifests as they are.
  - C(cloneNames) and C(clones) count the clones that have vmadm names (C(POOL/UUID), C(POOL/UUID-diskN),
    C(POOL/UUID/diskN)), as the stock C(imgadm list) does; C(children.clones) lists every clone, as C(imgadm get -r) does.
  - With several sources, an image that more than one has comes from the first source in the configured order
    (the stock C(imgadm avail) keeps the one that answered first, which varies from run to run).
seealso:
  - module: smartos.imgadm.imgadm_image
  - plugin: smartos.imgadm.imgapi
    plugin_type: lookup
'''

EXAMPLES = r'''
- name: Installed images and sources
  smartos.imgadm.imgadm_facts:

- name: Print the installed images by name
  ansible.builtin.debug:
    msg: "{{ ansible_facts.imgadm_images | map(attribute='manifest.name') | list }}"

- name: LX images on pool zones, and what the sources offer for LX
  smartos.imgadm.imgadm_facts:
    gather_subset: [installed, available]
    pools: [zones]
    filters:
      requirements.brand: lx

- name: One image with its snapshots, clones and origin chain (imgadm get -r, imgadm ancestry)
  smartos.imgadm.imgadm_facts:
    uuids: [5c7d0d24-3475-11e5-8e67-27953a8b237e]
    children: true
    ancestry: true

- name: Manifests of images not installed here (imgadm show)
  smartos.imgadm.imgadm_facts:
    gather_subset: [available]
    uuids: [2f1dc911-6401-4fa4-8e9d-67ea2e39c271]
'''

RETURN = r'''
ansible_facts:
  description: The facts gathered.
  returned: always
  type: dict
  contains:
    imgadm_images:
      description:
        - The installed images, as C(imgadm list -j) prints them (the database record of each image, with
          C(cloneNames) and C(clones) added), in C(zfs list) order.
        - Only with the V(installed) subset or O(uuids).
      returned: when gathered
      type: list
      elements: dict
      contains:
        manifest:
          description: The image manifest as stored in the database (only C(uuid) when the image has no record).
          type: dict
        zpool:
          description: The pool the image is installed on.
          type: str
        source:
          description: The source URL it was imported from; absent for images installed from files.
          type: str
        cloneNames:
          description: The vmadm-named datasets cloned from the image (VMs and incremental images).
          type: list
          elements: str
        clones:
          description: How many C(cloneNames) there are.
          type: int
    imgadm_sources:
      description: The configured image sources as C(imgadm sources -j) prints them (the default source when none is set).
      returned: when gathered
      type: list
      elements: dict
      contains:
        url:
          description: The source URL, with C(?channel=) when it has one.
          type: str
        type:
          description: V(imgapi), V(docker) or V(dsapi).
          type: str
        insecure:
          description: Present when the source sets it.
          type: bool
    imgadm_available:
      description:
        - The images the sources offer (C(imgadm avail -j)), each once; with O(uuids), the manifests of the ones
          not installed (C(imgadm show)).
        - Only with the V(available) subset.
      returned: when gathered
      type: list
      elements: dict
      contains:
        manifest: {description: The image as the source returned it., type: dict}
        source: {description: The URL of the source it came from., type: str}
    imgadm_image_info:
      description: With O(uuids), each installed image by uuid, as C(imgadm get) (with O(children), C(imgadm get -r)) shows it.
      returned: when O(uuids) is given
      type: dict
      sample:
        6d6fa6c8-b4f3-4c2a-9e2b-5c7a1f0b2a11:
          manifest: {uuid: 6d6fa6c8-b4f3-4c2a-9e2b-5c7a1f0b2a11, name: base-64-lts, version: 24.4.1}
          zpool: zones
          source: https://images.smartos.org
          children:
            snapshots: [zones/6d6fa6c8-b4f3-4c2a-9e2b-5c7a1f0b2a11@final]
            clones: [zones/4d5e3f0a-0c44-4d4c-bd5e-2a5e6d1c9f10]
    imgadm_ancestry:
      description: With O(uuids) and O(ancestry), each installed image's chain of records from itself to its base image.
      returned: when O(ancestry=true)
      type: dict
gathered:
  description: The subsets gathered.
  returned: success
  type: list
  elements: str
  sample: [installed, sources]
not_images:
  description: Of O(uuids), those whose dataset exists but is not an image, with the reason.
  returned: when O(uuids) is given
  type: dict
not_installed:
  description: Of O(uuids), those not installed on the pools looked at.
  returned: when O(uuids) is given
  type: list
  elements: str
not_found:
  description: With O(uuids) and the V(available) subset, the uuids neither installed nor in any source.
  returned: when O(uuids) is given with the V(available) subset
  type: list
  elements: str
source_errors:
  description: The image sources that failed, each with its error; the other sources' images are still returned.
  returned: when a source failed
  type: list
  elements: dict
  contains:
    source: {description: The source URL., type: str}
    msg: {description: What went wrong., type: str}
    error_code: {description: The error code., type: str}
error_code:
  description: On failure, the error code (for example V(PoolNotFound), V(CommandTimeout), V(Usage)).
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
from ansible_collections.smartos.imgadm.plugins.module_utils._facts import DEFAULT_SUBSETS, gather


def main():
    spec = argument_spec(
        DATABASE_ARGS,
        IMGAPI_ARGS,
        BINARY_ARGS,
        gather_subset=dict(type='list', elements='str', default=list(DEFAULT_SUBSETS)),
        pools=dict(type='list', elements='str', aliases=['pool']),
        filters=dict(type='raw'),
        uuids=dict(type='list', elements='str'),
        children=dict(type='bool', default=False),
        ancestry=dict(type='bool', default=False),
        sources=dict(type='list', elements='str'),
        channel=dict(type='str'),
        strict_sources=dict(type='bool', default=False),
        lock_dir=dict(type='path', default='/var/run'),
    )
    run_module(spec, gather, fast_exit=True)


if __name__ == '__main__':
    main()
