# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""What ``imgadm_image`` does, one small file per state.

``present`` and ``latest``: ``_image_present`` (importing is ``_importer``);
``absent``: ``_image_absent``; ``updated``: ``_image_updated``;
``vacuumed``: ``_image_vacuumed``. Every state first finds out what to do
from read-only queries (all that check mode does), then does it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.smartos.imgadm.plugins.module_utils._image_absent import absent
from ansible_collections.smartos.imgadm.plugins.module_utils._image_present import latest, present
from ansible_collections.smartos.imgadm.plugins.module_utils._image_run import ImageRun, check_options
from ansible_collections.smartos.imgadm.plugins.module_utils._image_updated import updated
from ansible_collections.smartos.imgadm.plugins.module_utils._image_vacuumed import vacuumed

STATES = {
    'present': present,
    'latest': latest,
    'absent': absent,
    'updated': updated,
    'vacuumed': vacuumed,
}


def run_images(module, result):
    """The module's one call: check the options, then run the state."""
    result.data.update(imported=[], imported_by_others=[], deleted=[], updated=[])
    check_options(module.params)
    STATES[module.params['state']](ImageRun(module, result))


__all__ = ('STATES', 'run_images')
