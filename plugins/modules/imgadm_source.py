#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: imgadm_source
short_description: Manage the image sources of SmartOS imgadm
version_added: 0.1.0
description:
  - Adds, removes or replaces the image sources (IMGAPI, Docker or legacy DSAPI servers) that the
    SmartOS C(imgadm) imports images from, like C(imgadm sources -a), C(-d) and C(-e).
  - Edits C(imgadm.conf) directly, in exactly the format the stock C(imgadm) writes, under a lock,
    atomically. The stock C(imgadm) and C(vmadm) keep working with the result.
  - A new source is checked with a ping first, unless O(force=true); a failed ping is an error and nothing is written.
  - Like the stock C(imgadm), the first run on a host upgrades an old or missing C(imgadm.conf) to the current
    database version (3.0.0); that counts as a change.
  - Where C(imgadm sources -a) would add a second entry for a URL that is already configured with another
    O(type) or O(insecure) flag, this module updates the existing entry instead.
  - The stock C(imgadm) 3.9.5 inverts the per-source insecure flag (an insecure source gets its certificate
    checked); the sources this module writes are the same, but the collection's own modules honour the flag as documented.
author:
  - smartos.imgadm developers (@smartos-imgadm)
extends_documentation_fragment:
  - smartos.imgadm._attributes
  - smartos.imgadm._attributes.ACTIONGROUP_IMGADM
  - smartos.imgadm._database
  - smartos.imgadm._imgapi
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  url:
    description:
      - The source URL, for example V(https://images.smartos.org).
      - It may carry a channel as V(?channel=NAME), as the stock C(imgadm) stores it; see also O(channel).
      - URLs are compared as the stock C(imgadm) does, after normalisation (V(http://) added when there is
        no scheme, one trailing V(/) and default ports dropped).
      - Exactly one of O(url) and O(sources) is required.
    type: str
  channel:
    description:
      - The IMGAPI channel to use with O(url), stored in the URL as V(?channel=NAME).
      - An error if O(url) already names another channel.
    type: str
  type:
    description:
      - The kind of server behind O(url). V(docker) and V(dsapi) are deprecated in SmartOS.
      - A V(dsapi) URL must end in V(/datasets).
      - Ignored with O(state=absent), where every source with that URL goes.
    type: str
    choices: [imgapi, docker, dsapi]
    default: imgapi
  state:
    description:
      - V(present) adds the source at the end of the list, or updates its O(type) and O(insecure) in place.
      - V(absent) deletes every source with that URL.
    type: str
    choices: [present, absent]
    default: present
  insecure:
    description:
      - Do not check the TLS certificate of this HTTPS source (C(imgadm sources -k)).
    type: bool
    default: false
  force:
    description:
      - Skip the ping check of new sources (C(imgadm sources -f)).
      - V(docker) sources are never pinged.
    type: bool
    default: false
  sources:
    description:
      - The whole ordered list of sources. Sources not listed are removed, missing ones added,
        and the list reordered to match, like C(imgadm sources -e).
      - An empty list leaves the host with no sources at all (the stock C(imgadm) then refuses to import).
      - Mutually exclusive with O(url); O(state=absent) cannot be used with it.
    type: list
    elements: dict
    suboptions:
      url:
        description: The source URL, as for O(url).
        type: str
        required: true
      type:
        description: The kind of server, as for O(type).
        type: str
        choices: [imgapi, docker, dsapi]
        default: imgapi
      channel:
        description: The IMGAPI channel, as for O(channel).
        type: str
      insecure:
        description: Skip the TLS certificate check, as for O(insecure).
        type: bool
        default: false
notes:
  - The C(images.smartos.org) default source is used by the stock C(imgadm) while C(imgadm.conf) has no
    C(sources) key; adding a first source keeps it, as C(imgadm sources -a) does. Remove it explicitly, or use O(sources).
  - C(imgadm.conf) is read, changed and written whole under a lock on C(IMGADM_DIR/.imgadm.conf.lock), through a
    temporary file renamed over it. That keeps two tasks of this collection on one host from losing each other's
    changes, and every reader from seeing a half-written file. It cannot keep out the stock C(imgadm sources -a/-d/-e),
    which takes no lock; a stock change made between this module's read and write is lost (the last writer wins).
seealso:
  - module: smartos.imgadm.imgadm_image
    description: Import images from the configured sources.
'''

EXAMPLES = r'''
- name: Use a local image server in addition to the default
  smartos.imgadm.imgadm_source:
    url: https://imgapi.example.com

- name: Add the experimental channel of the updates server
  smartos.imgadm.imgadm_source:
    url: https://updates.tritondatacenter.com
    channel: experimental

- name: Remove the default public server
  smartos.imgadm.imgadm_source:
    url: https://images.smartos.org
    state: absent

- name: A lab server with a self-signed certificate, not reachable from the controller yet
  smartos.imgadm.imgadm_source:
    url: https://imgapi.lab.example.com
    insecure: true
    force: true

- name: Exactly these sources, in this order
  smartos.imgadm.imgadm_source:
    sources:
      - url: https://imgapi.example.com
      - url: https://images.smartos.org
'''

RETURN = r'''
sources:
  description: The image sources configured after the task (predicted in check mode), in order.
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The URL as stored, with any V(?channel=).
      type: str
      sample: https://updates.tritondatacenter.com?channel=experimental
    base_url:
      description: The URL without its channel.
      type: str
      sample: https://updates.tritondatacenter.com
    channel:
      description: The channel in the URL, or V(null).
      type: str
      sample: experimental
    type:
      description: The kind of server.
      type: str
      sample: imgapi
    insecure:
      description: Whether the TLS certificate check is skipped for this source.
      type: bool
      sample: false
  sample:
    - url: https://images.smartos.org
      base_url: https://images.smartos.org
      channel: null
      type: imgapi
      insecure: false
actions:
  description: What the task did (or would do in check mode), one line each.
  returned: always
  type: list
  elements: str
  sample:
    - add source "https://imgapi.example.com imgapi"
path:
  description: The C(imgadm.conf) file that was read and written.
  returned: always
  type: str
  sample: /var/imgadm/imgadm.conf
error_code:
  description: On failure, the error code the stock C(imgadm) uses for the same error (for example V(SourcePing)).
  returned: failure
  type: str
  sample: SourcePing
'''

from ansible_collections.smartos.imgadm.plugins.module_utils._common import DATABASE_ARGS, IMGAPI_ARGS, argument_spec, run_module
from ansible_collections.smartos.imgadm.plugins.module_utils._constants import SOURCE_TYPES
from ansible_collections.smartos.imgadm.plugins.module_utils._source_manager import run_sources


def main():
    spec = argument_spec(
        DATABASE_ARGS,
        IMGAPI_ARGS,
        url=dict(type='str'),
        channel=dict(type='str'),
        type=dict(type='str', choices=list(SOURCE_TYPES), default='imgapi'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        insecure=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        sources=dict(type='list', elements='dict', options=dict(
            url=dict(type='str', required=True),
            type=dict(type='str', choices=list(SOURCE_TYPES), default='imgapi'),
            channel=dict(type='str'),
            insecure=dict(type='bool', default=False),
        )),
    )
    run_module(
        spec, run_sources,
        mutually_exclusive=[('url', 'sources'), ('channel', 'sources')],
        required_one_of=[('url', 'sources')],
    )


if __name__ == '__main__':
    main()
