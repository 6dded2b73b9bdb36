# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Unit tests need neither root nor a ZFS pool: what does belongs to tests/integration.

from __future__ import absolute_import, division, print_function

__metaclass__ = type
