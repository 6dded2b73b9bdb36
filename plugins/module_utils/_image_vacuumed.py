# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""``state=vacuumed``: delete every image no one uses (``imgadm vacuum -f``), except ``keep``.

Only images by the list heuristic that have a database record or an
``@final`` are candidates (``_installed.vacuum_plan``); every clone, whatever
its name, counts as a user. Each destroy holds the image's import lock and
re-checks, under it, that the image still has no clone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.smartos.imgadm.plugins.module_utils._image_absent import refuse_clones
from ansible_collections.smartos.imgadm.plugins.module_utils._image_run import lines
from ansible_collections.smartos.imgadm.plugins.module_utils._installed import vacuum_plan
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import ImageLock


def vacuumed(run):
    p = run.params
    run.require_pool()
    images = run.installed.list(run.pool)
    doomed = vacuum_plan(images, p.get('keep') or [])

    def line(img):
        return run.line(dict(img['record']['manifest'], uuid=img['uuid']))

    before = sorted(line(img) for img in images)
    gone = set()
    try:
        for img in doomed:
            m = img['record'].get('manifest', {})
            if not run.check_mode:
                with ImageLock(img['uuid'], lock_dir=p['lock_dir'], timeout=p['lock_timeout']):
                    if not run.require_images([img['uuid']]):
                        continue  # deleted by someone else meanwhile
                    refuse_clones(run, img['uuid'], ())
                    run.backend.destroy(img['dataset'], recursive=True)
                    run.installed.mark(run.pool, img['uuid'], False)
                    run.db.remove(run.pool, img['uuid'])
            gone.add(img['uuid'])
            run.result.action('delete unused image %s (%s@%s)' % (img['uuid'], m.get('name'), m.get('version')))
            run.result.data['deleted'].append(dict(uuid=img['uuid'], name=m.get('name'), version=m.get('version')))
    finally:
        run.result.set_diff(lines(before), lines(sorted(line(img) for img in images if img['uuid'] not in gone)))
        run.result.data['kept'] = [img['uuid'] for img in images if img['uuid'] not in gone]
    run.result.data['images'] = []
    run.result.data['image'] = None


__all__ = ('vacuumed',)
