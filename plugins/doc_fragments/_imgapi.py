# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors IMGAPI_ARGS in plugins/module_utils/_common.py
    DOCUMENTATION = r'''
options:
  validate_certs:
    description:
      - Verify the TLS certificates of HTTPS image sources.
      - V(false) skips verification for every source, like C(IMGADM_INSECURE=1) does for the stock C(imgadm).
        A single source can be marked insecure instead (see M(smartos.imgadm.imgadm_source)).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for an image source to connect or to send the next piece of an answer.
    type: float
    default: 30.0
  retries:
    description:
      - How many times an idempotent request (GET) is retried after a connection failure, a timeout,
        HTTP 408, 429 or 5xx, with exponential backoff that honours C(Retry-After).
    type: int
    default: 3
requirements:
  - requests (Python library on the managed node)
'''
