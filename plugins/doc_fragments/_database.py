# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors DATABASE_ARGS in plugins/module_utils/_common.py
    DOCUMENTATION = r'''
options:
  imgadm_dir:
    description:
      - The imgadm database directory, holding C(imgadm.conf) and C(images/POOL-UUID.json).
      - The stock C(imgadm) and C(vmadm) use V(/var/imgadm); change it only for tests or chroots.
    type: path
    default: /var/imgadm
  lock_timeout:
    description:
      - Seconds to wait for a lock held by another run (of this collection or of the stock C(imgadm)) before failing.
    type: float
    default: 60.0
'''
