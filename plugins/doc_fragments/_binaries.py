# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Mirrors BINARY_ARGS in plugins/module_utils/_common.py
    DOCUMENTATION = r'''
options:
  zfs_path:
    description:
      - Path of the C(zfs) command. When it does not exist, C(zfs) is looked up on E(PATH).
    type: path
    default: /usr/sbin/zfs
  sysinfo_path:
    description:
      - Path of the SmartOS C(sysinfo) command, used for the platform checks of images.
        When it does not exist, C(sysinfo) is looked up on E(PATH).
    type: path
    default: /usr/bin/sysinfo
  zoneadm_path:
    description:
      - Path of the C(zoneadm) command, used to tell zone roots from images.
        When it does not exist, C(zoneadm) is looked up on E(PATH).
    type: path
    default: /usr/sbin/zoneadm
  gzip_path:
    description:
      - Path of C(gzip), used to uncompress gzip images while they stream into C(zfs receive).
        When it does not exist, C(gzip) is looked up on E(PATH).
    type: path
    default: /usr/bin/gzip
  bzip2_path:
    description:
      - Path of C(bzip2), used to uncompress bzip2 images. When it does not exist, C(bzip2) is looked up on E(PATH).
    type: path
    default: /usr/bin/bzip2
  xz_path:
    description:
      - Path of C(xz), used to uncompress xz images. When it does not exist, C(xz) is looked up on E(PATH).
    type: path
    default: /usr/bin/xz
  command_timeout:
    description:
      - Deadline in seconds for every external command the module runs (C(zfs), C(zoneadm), C(sysinfo)).
        A command still running after that long is killed and the task fails with a message naming the command
        (error code V(CommandTimeout)) instead of hanging the play.
      - For the streaming C(zfs receive) of an import, the deadline applies to a stall (no byte accepted for
        this long) and to the wait for the receive to finish once the whole stream has been written.
      - Must be greater than 0.
    type: float
    default: 300
'''
