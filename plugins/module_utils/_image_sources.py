# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""Finding images in the image sources: by uuid, the newest by name, origin chains.

A source that fails is never silent: it is listed in the result's
``source_errors`` and warned about, and an error from one source does not
hide an image another source has (the reference fails the whole import
then). With ``strict_sources`` a failing source fails the task.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImgadmConfig
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    ActiveImageNotFoundError,
    ImgapiError,
    ImgapiNotFoundError,
    InvalidManifestError,
    NoSourcesError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._imgapi import ImgapiClient
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import published_at_key, upgrade_manifest, validate_uuid
from ansible_collections.smartos.imgadm.plugins.module_utils._sources import Source, effective_sources

MAX_CHAIN = 100


class ImageSources(object):
    """The sources of one run (``sources`` option, else ``imgadm.conf``), asked lazily."""

    def __init__(self, params, result):
        self.params = params
        self.result = result
        self._sources = None

    def list(self):
        if self._sources is None:
            p = self.params
            if p.get('sources'):
                srcs = [Source.from_params(u, 'imgapi', False, None, field='sources[%d]' % i) for i, u in enumerate(p['sources'])]
            else:
                srcs = effective_sources(ImgadmConfig(p['imgadm_dir']).load().source_entries())
            self._sources = [s for s in srcs if s.type != 'docker']
        if not self._sources:
            raise NoSourcesError()
        return self._sources

    def client(self, source):
        """A new client (one HTTP session: one per thread)."""
        p = self.params
        return ImgapiClient(source.url, channel=p.get('channel'), insecure=bool(source.insecure) or not p['validate_certs'],
                            timeout=p['timeout'], retries=p['retries'], source_type=source.type)

    def _failed(self, source, error):
        """A source that failed: said in the result and as a warning; fatal with strict_sources."""
        if self.params.get('strict_sources'):
            raise error
        self.result.data.setdefault('source_errors', []).append(dict(source=source.url, msg=str(error), error_code=error.code))
        self.result.warn('image source %s failed: %s' % (source.url, error))

    def find(self, uuid, ensure_active=True):
        """``(manifest, source)`` of the first source that has ``uuid``; ``(None, None)`` when none has it.

        With ``ensure_active`` only an active image counts (upgraded from v1)
        and none at all is ``ActiveImageNotFound``.
        """
        errors = []
        for source in self.list():
            client = self.client(source)
            try:
                manifest = client.get_image(uuid)
            except ImgapiNotFoundError:
                continue
            except ImgapiError as e:
                errors.append(e)
                self._failed(source, e)
                continue
            finally:
                client.close()
            if ensure_active:
                manifest = upgrade_manifest(manifest)
                if manifest.get('state') != 'active':
                    continue
            return manifest, source
        if errors:
            raise errors[0]
        if ensure_active:
            raise ActiveImageNotFoundError('an active image "%s" was not found in image sources' % uuid, uuid=uuid)
        return None, None

    def newest(self, name, version=None):
        """``(manifest, source)``: the newest active image called ``name`` (``version``) across the sources.

        Sets ``selected`` in the result, with the reason.
        """
        candidates = []
        errors = []
        filters = dict(name=name, state='active')
        if version:
            filters['version'] = version
        for source in self.list():
            try:
                for m in self.client(source).list_images(**filters):
                    candidates.append((published_at_key(m), m, source))
            except ImgapiError as e:
                errors.append(e)
                self._failed(source, e)
        what = '%s@%s' % (name, version) if version else name
        if not candidates:
            if errors:
                raise errors[0]
            raise ActiveImageNotFoundError('no active image "%s" was found in image sources' % what, name=name, version=version)
        candidates.sort(key=lambda c: c[0])
        dummy, manifest, source = candidates[-1]
        reason = 'newest published_at (%s) of %d active image(s) named "%s"%s in the sources' % (
            manifest.get('published_at'), len(candidates), name, ' version "%s"' % version if version else '')
        if errors:
            reason += ' that answered (%d failed, see source_errors)' % len(errors)
        self.result.data['selected'] = dict(uuid=manifest['uuid'], name=manifest.get('name'), version=manifest.get('version'),
                                            source=source.url, reason=reason)
        return manifest, source

    def available(self, **filters):
        """``imgadm avail``: ``[{manifest, source}]`` from every source, the sources asked at once.

        Each source is listed with all its pages (ListImages, ``filters`` as
        IMGAPI query parameters). An image several sources have is kept once,
        from the first source in the configured order that has it (the
        reference keeps the one that answered first, which varies from run to
        run). A failing source is reported (``source_errors``, a warning) and
        the others' images are still returned; with ``strict_sources`` the
        first failure, in source order, fails the task.
        """
        sources = self.list()
        answers = [None] * len(sources)

        def one(i):
            client = None
            try:
                client = self.client(sources[i])
                answers[i] = ('ok', client.list_images(**filters))
            except ImgapiError as e:
                answers[i] = ('error', e)
            except Exception as e:  # an unexpected failure of one source is still that source's failure
                answers[i] = ('error', ImgapiError('%s: %s' % (sources[i].url, e), url=sources[i].url))
            finally:
                if client is not None:
                    client.close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(1, len(sources))]
        for t in threads:
            t.daemon = True
            t.start()
        one(0)
        for t in threads:
            t.join()
        found = []
        seen = set()
        for source, (kind, value) in zip(sources, answers):
            if kind == 'error':
                self._failed(source, value)
                continue
            for manifest in value:
                uuid = manifest.get('uuid') if isinstance(manifest, dict) else None
                if uuid is None or uuid in seen:
                    continue
                seen.add(uuid)
                found.append({'manifest': manifest, 'source': source.url})
        return found

    def ancestry(self, manifest, source):
        """``[top, ..., base]`` manifests from ``source``; origins may be inactive."""
        client = self.client(source)
        chain = [manifest]
        seen = set([manifest['uuid']])
        while chain[-1].get('origin'):
            origin = validate_uuid(chain[-1]['origin'], field='origin')
            if origin in seen or len(chain) > MAX_CHAIN:
                raise InvalidManifestError('image %s has an origin loop or a chain over %d images' % (manifest['uuid'], MAX_CHAIN))
            seen.add(origin)
            try:
                chain.append(client.get_image(origin))
            except ImgapiNotFoundError:
                raise ImgapiNotFoundError('origin image %s of image %s was not found in the source %s'
                                          % (origin, chain[-1]['uuid'], source.url), url=source.url)
        return chain


__all__ = ('ImageSources',)
