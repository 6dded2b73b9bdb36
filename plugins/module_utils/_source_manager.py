# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""What ``imgadm_source`` does: load imgadm.conf, plan, ping, save."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib

from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImgadmConfig
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ImgadmError, SourcePingError, UsageError
from ansible_collections.smartos.imgadm.plugins.module_utils._imgapi import ImgapiClient
from ansible_collections.smartos.imgadm.plugins.module_utils._sources import (
    Source,
    effective_sources,
    plan_absent,
    plan_exclusive,
    plan_present,
    sources_text,
)


def desired_from_params(params):
    """The Source (or list of Sources, for the exclusive mode) the task asks for."""
    if params.get('sources') is not None:
        if params.get('state') == 'absent':
            raise UsageError('state=absent cannot be used with sources; list the sources to keep instead', field='state')
        result = []
        for i, item in enumerate(params['sources']):
            field = 'sources[%d].url' % i
            result.append(Source.from_params(item.get('url'), item.get('type') or 'imgapi', item.get('insecure'),
                                             item.get('channel'), field=field))
        return result
    if not params.get('url'):
        raise UsageError('one of url or sources is required', field='url')
    return Source.from_params(params['url'], params.get('type') or 'imgapi', params.get('insecure'), params.get('channel'))


def ping_source(source, params):
    """Check that a new source answers like an image server; raise SourcePingError if not."""
    client = ImgapiClient(
        source.url,
        insecure=bool(source.insecure) or not params.get('validate_certs', True),
        timeout=params.get('timeout', 30.0),
        retries=params.get('retries', 3),
        source_type=source.type,
    )
    try:
        client.ping()
    except SourcePingError:
        raise
    except ImgadmError as e:
        raise SourcePingError('unexpected ping error with "%s" image source "%s": %s' % (source.type, source.url, e),
                              url=source.url)


def run_sources(module, result, ping=ping_source):
    params = module.params
    desired = desired_from_params(params)
    state = params.get('state') or 'present'

    config = ImgadmConfig(params['imgadm_dir'])
    # check mode neither creates the database directory nor takes the lock
    guard = contextlib.nullcontext() if module.check_mode else config.lock(timeout=params.get('lock_timeout'))
    with guard:
        config.load()
        for note in config.upgrade():
            result.action(note)
        before_entries = config.source_entries()

        if isinstance(desired, list):
            plan = plan_exclusive(before_entries, desired)
        elif state == 'absent':
            plan = plan_absent(before_entries, desired.url)
        else:
            plan = plan_present(before_entries, desired)

        if plan.changed:
            if not params.get('force'):
                for source in plan.to_ping:
                    if source.type != 'docker':  # a Docker registry has no IMGAPI ping
                        ping(source, params)
            for text in plan.actions:
                result.action(text)
            config.set_source_entries(plan.entries)

        if result.changed and not module.check_mode:
            config.save()

    after_entries = plan.entries if plan.changed else before_entries
    result.set_diff(sources_text(before_entries), sources_text(after_entries))
    result.data['sources'] = [s.to_result() for s in effective_sources(after_entries)]
    result.data['path'] = config.path
    return result


__all__ = ('desired_from_params', 'ping_source', 'run_sources')
