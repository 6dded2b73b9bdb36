# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of plugins/module_utils/_image_absent.py: the delete order and the clone check, as tables."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ImageHasDependentClonesError
from ansible_collections.smartos.imgadm.plugins.module_utils._image_absent import children_first, refuse_clones


@pytest.mark.parametrize('uuids, origins, order', [
    ([], {}, []),
    (['a'], {}, ['a']),
    (['a', 'b'], {}, ['a', 'b']),  # independent images keep their order
    (['b', 'a'], {}, ['b', 'a']),
    (['base', 'inc'], {'inc': 'base'}, ['inc', 'base']),
    (['inc', 'base'], {'inc': 'base'}, ['inc', 'base']),
    (['base', 'inc', 'inc2'], {'inc': 'base', 'inc2': 'inc'}, ['inc2', 'inc', 'base']),
    (['inc', 'base', 'inc2'], {'inc': 'base', 'inc2': 'inc'}, ['inc2', 'inc', 'base']),
    (['base', 'inc2'], {'inc': 'base', 'inc2': 'inc'}, ['base', 'inc2']),  # the link is not being deleted
    (['base', 'x', 'inc'], {'inc': 'base', 'x': 'other'}, ['x', 'inc', 'base']),
    (['base', 'c1', 'c2'], {'c1': 'base', 'c2': 'base'}, ['c1', 'c2', 'base']),
    (['b1', 'b2', 'c2', 'c1'], {'c1': 'b1', 'c2': 'b2'}, ['c2', 'c1', 'b1', 'b2']),
    (['a'], {'a': 'a'}, ['a']),  # its own origin does not block it
    (['a', 'b'], {'a': None, 'b': None}, ['a', 'b']),
])
def test_children_first(uuids, origins, order):
    got = children_first(uuids, origins)
    assert got == order
    for child, origin in origins.items():
        if child in got and origin in got and child != origin:
            assert got.index(child) < got.index(origin)


def test_children_first_does_not_change_its_input():
    uuids = ['base', 'inc']
    children_first(uuids, {'inc': 'base'})
    assert uuids == ['base', 'inc']


class Backend(object):
    def __init__(self, clones):
        self.clones = clones

    def dependent_clones(self, ds):
        return self.clones.get(ds, [])


class Run(object):
    pool = 'zones'

    def __init__(self, clones):
        self.backend = Backend(clones)


@pytest.mark.parametrize('clones, going, refused, text', [
    ({}, (), None, None),
    ({'zones/a': ['zones/vm1']}, (), ['zones/vm1'], 'image "a" has dependent clones: zones/vm1'),
    ({'zones/a': ['zones/vm1', 'zones/vm2', 'zones/vm3']}, (), ['zones/vm1', 'zones/vm2', 'zones/vm3'],
     'image "a" has dependent clones: zones/vm1 and 2 others'),
    ({'zones/a': ['zones/b']}, ('a', 'b'), None, None),  # a clone deleted in the same task is no user
    ({'zones/a': ['zones/b', 'zones/vm1']}, ('a', 'b'), ['zones/vm1'], 'image "a" has dependent clones: zones/vm1'),
    ({'zones/a': ['data/b']}, ('b',), None, None),  # by uuid, whatever its pool
    ({'zones/a': ['zones/b-disk0']}, ('b',), ['zones/b-disk0'], 'has dependent clones: zones/b-disk0'),
])
def test_refuse_clones(clones, going, refused, text):
    run = Run(clones)
    if refused is None:
        refuse_clones(run, 'a', set(going))
        return
    with pytest.raises(ImageHasDependentClonesError) as exc:
        refuse_clones(run, 'a', set(going))
    assert exc.value.code == 'ImageHasDependentClones'
    assert exc.value.details == {'uuid': 'a', 'clones': refused}
    assert text in str(exc.value)
