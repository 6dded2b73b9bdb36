# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""The one home of the constants that several files share."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

COLLECTION_NAME = 'smartos.imgadm'
# keep in step with galaxy.yml
COLLECTION_VERSION = '0.1.0'

# The reference's UUID_RE: lowercase hex only. UUID is the bare pattern, for
# building larger expressions; UUID_PATTERN and UUID_RE match a whole string.
UUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
UUID_PATTERN = '^%s$' % UUID
UUID_RE = re.compile(r'^%s\Z' % UUID)

# Pool names in dataset names. The reference's POOLRE ([a-zA-Z][a-zA-Z._-]*)
# has no digits, so its "imgadm list" misses every image on a pool such as
# "zones2"; ours accepts them (docs/differences.md).
POOL = r'[a-zA-Z][a-zA-Z0-9._-]*'

# files[0].compression values, and the decompressors' names
COMPRESSIONS = ('gzip', 'bzip2', 'xz', 'none')

# imgadm.conf source types
SOURCE_TYPES = ('imgapi', 'docker', 'dsapi')

__all__ = ('COLLECTION_NAME', 'COLLECTION_VERSION', 'UUID', 'UUID_PATTERN', 'UUID_RE', 'POOL', 'COMPRESSIONS', 'SOURCE_TYPES')
