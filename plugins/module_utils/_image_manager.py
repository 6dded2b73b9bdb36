# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""What ``imgadm_image`` does: import, install, delete, update and vacuum.

Every state first builds a plan from read-only queries (which is all check
mode does), then carries it out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.smartos.imgadm.plugins.module_utils._common import Result, find_binary
from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase, ImgadmConfig, validate_pool_name
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    ActiveImageNotFoundError,
    CommandError,
    DownloadError,
    ImageHasDependentClonesError,
    ImageMissingOriginalSnapshotError,
    ImageNotActiveError,
    ImgadmError,
    ImgapiConnectionError,
    ImgapiError,
    ImgapiNotFoundError,
    InvalidManifestError,
    NoSourcesError,
    OriginNotInstalledError,
    OriginSnapshotMismatchError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._imgapi import ImgapiClient
from ansible_collections.smartos.imgadm.plugins.module_utils._importer import ZfsInstaller, file_chunks
from ansible_collections.smartos.imgadm.plugins.module_utils._installed import InstalledImages, vacuum_plan
from ansible_collections.smartos.imgadm.plugins.module_utils._locks import ImageLock
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import (
    check_platform,
    file_info,
    published_at_key,
    upgrade_manifest,
    validate_manifest,
    validate_uuid,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._sources import Source, effective_sources
from ansible_collections.smartos.imgadm.plugins.module_utils._zfs import ZfsRunner, get_backend


class ImageManager(object):
    """One module run. ``module`` gives params, check mode and ``run_command``."""

    def __init__(self, module):
        self.module = module
        p = self.params = module.params
        self.pool = validate_pool_name(p['pool'])
        self.check_mode = module.check_mode
        runner = ZfsRunner(zfs_bin=find_binary(module, p['zfs_path'], 'zfs'),
                           zpool_bin=find_binary(module, p['zpool_path'], 'zpool'))
        self.backend = get_backend(runner, prefer=p.get('zfs_backend') or 'auto')
        self.db = ImageDatabase(p['imgadm_dir'])
        self.installed = InstalledImages(self.backend, self.db, run_zoneadm=self._run_zoneadm)
        self._decompressors = None
        self._sysinfo = None
        self._source_manifests = {}  # uuid -> manifest as the source serves it (origin chains)
        self._lock = threading.Lock()
        self.result = Result(module)
        self.result.data.update(imported=[], deleted=[], updated=[], zfs_backend=self.backend.name)
        self.warnings = []

    # ---- helpers

    def _run_zoneadm(self):
        return self.module.run_command([find_binary(self.module, self.params['zoneadm_path'], 'zoneadm'), 'list', '-pc'],
                                       environ_update={'LC_ALL': 'C'})

    def decompressors(self):
        with self._lock:  # import threads ask at the same time
            if self._decompressors is None:
                found = {}
                for comp in ('gzip', 'bzip2', 'xz'):
                    try:
                        found[comp] = [find_binary(self.module, self.params['%s_path' % comp], comp), '-cdfq']
                    except ImgadmError:
                        pass
                self._decompressors = found
            return self._decompressors

    def installer(self):
        return ZfsInstaller(self.backend, self.db, _LazyDecompressors(self))

    def _read_sysinfo(self):
        path = find_binary(self.module, self.params['sysinfo_path'], 'sysinfo')
        rc, out, err = self.module.run_command([path], environ_update={'LC_ALL': 'C'})
        if rc != 0:
            raise CommandError('sysinfo failed (exit status %s): %s' % (rc, (err or out).strip()))
        try:
            return json.loads(out)
        except ValueError as e:
            raise CommandError('sysinfo printed no JSON: %s' % e)

    def prefetch_sysinfo(self):
        """Run sysinfo in the background while the sources are asked (it is slow on SmartOS)."""
        box = {}

        def run():
            try:
                box['value'] = self._read_sysinfo()
            except BaseException as e:  # pylint: disable=broad-exception-caught
                box['error'] = e
        thread = threading.Thread(target=run)
        thread.daemon = True
        thread.start()
        self._sysinfo_prefetch = (thread, box)

    def sysinfo(self):
        if self._sysinfo is None:
            prefetch = getattr(self, '_sysinfo_prefetch', None)
            if prefetch is not None:
                thread, box = prefetch
                thread.join()
                self._sysinfo_prefetch = None
                if 'error' in box:
                    raise box['error']
                self._sysinfo = box['value']
            else:
                self._sysinfo = self._read_sysinfo()
        return self._sysinfo

    def check_platform(self, manifest):
        reqs = manifest.get('requirements') or {}
        if reqs.get('min_platform') or reqs.get('max_platform'):
            check_platform(manifest, self.sysinfo())

    def sources(self):
        p = self.params
        if p.get('sources'):
            srcs = [Source.from_params(u, 'imgapi', False, None, field='sources[%d]' % i) for i, u in enumerate(p['sources'])]
        else:
            conf = ImgadmConfig(p['imgadm_dir']).load()
            srcs = effective_sources(conf.source_entries())
        srcs = [s for s in srcs if s.type != 'docker']
        if not srcs:
            raise NoSourcesError()
        return srcs

    def client(self, source):
        p = self.params
        return ImgapiClient(source.url, channel=p.get('channel'), insecure=bool(source.insecure) or not p['validate_certs'],
                            timeout=p['timeout'], retries=p['retries'], source_type=source.type)

    def find_in_sources(self, uuid, ensure_active):
        """(manifest, source, client) of the first source that has ``uuid``.

        Unlike the reference, an error from one source does not hide the image
        found in a later one; it is reported only when no source has the image.
        """
        errors = []
        for source in self.sources():
            client = self.client(source)
            try:
                manifest = client.get_image(uuid)
            except ImgapiNotFoundError:
                continue
            except ImgapiError as e:
                errors.append(e)
                continue
            if ensure_active:
                manifest = upgrade_manifest(manifest)
                if manifest.get('state') != 'active':
                    continue
            return manifest, source, client
        if errors:
            raise errors[0]
        if ensure_active:
            raise ActiveImageNotFoundError('an active image "%s" was not found in image sources' % uuid, uuid=uuid)
        return None, None, None

    def select_by_name(self, name, version):
        """The newest active image called ``name`` (``version``) across the sources."""
        candidates = []
        errors = []
        for source in self.sources():
            client = self.client(source)
            filters = dict(name=name, state='active')
            if version:
                filters['version'] = version
            try:
                for m in client.list_images(**filters):
                    candidates.append((published_at_key(m), m, source, client))
            except ImgapiError as e:
                errors.append(e)
        if not candidates:
            if errors:
                raise errors[0]
            what = '%s@%s' % (name, version) if version else name
            raise ActiveImageNotFoundError('no active image "%s" was found in image sources' % what, name=name, version=version)
        candidates.sort(key=lambda c: c[0])
        dummy, manifest, source, client = candidates[-1]
        same = [c for c in candidates if c[1]['uuid'] != manifest['uuid']]
        reason = 'newest published_at (%s) of %d active image(s) named "%s"%s in the sources' % (
            manifest.get('published_at'), len(candidates), name, ' version "%s"' % version if version else '')
        if version and same:
            reason += '; several images have this name and version, the newest was chosen'
        self.result.data['selected'] = dict(uuid=manifest['uuid'], name=manifest.get('name'), version=manifest.get('version'),
                                            source=source.url, reason=reason)
        return manifest, source, client

    def ancestry(self, manifest, client):
        """[top, ..., base] manifests; origins may be inactive."""
        chain = [manifest]
        seen = set([manifest['uuid']])
        while chain[-1].get('origin'):
            origin = validate_uuid(chain[-1]['origin'], field='origin')
            if origin in seen or len(chain) > 100:
                raise InvalidManifestError('image %s has an origin loop or a chain over 100 images' % manifest['uuid'])
            seen.add(origin)
            try:
                chain.append(client.get_image(origin))
            except ImgapiNotFoundError:
                raise ImgapiNotFoundError('origin image %s of image %s was not found in the source %s'
                                          % (origin, chain[-1]['uuid'], client.url), url=client.url)
        return chain

    # ---- state=present, from sources

    def targets(self):
        p = self.params
        uuids = []
        if p.get('uuid'):
            uuids.append(p['uuid'])
        uuids.extend(p.get('uuids') or [])
        return [validate_uuid(u, field='uuid' if p.get('uuid') == u else 'uuids') for u in uuids]

    def present(self):
        p = self.params
        if p.get('manifest') is not None or p.get('file'):
            return self.install_from_file()
        tops = []
        uuids = self.targets()
        if p.get('name') or [u for u in uuids if not self.installed.is_installed(self.pool, u)]:
            self.prefetch_sysinfo()
        if p.get('name'):
            manifest, source, client = self.select_by_name(p['name'], p.get('version'))
            tops.append((manifest['uuid'], (manifest, source, client)))
        for uuid in uuids:
            tops.append((uuid, None))

        plan = OrderedDict()  # uuid -> (manifest, source, client), base before top, each once
        top_uuids = []
        for uuid, found in tops:
            top_uuids.append(uuid)
            if self.installed.is_installed(self.pool, uuid):
                continue
            if found is None:
                found = self.find_in_sources(uuid, ensure_active=True)
            manifest, source, client = found
            if manifest.get('state') != 'active':
                raise ImageNotActiveError('image "%s" is not active (state %s)' % (uuid, manifest.get('state')), uuid=uuid)
            chain = self.ancestry(manifest, client)
            for m in chain:
                self._source_manifests.setdefault(m['uuid'], m)
            for m in reversed(chain):
                if m['uuid'] in plan or self.installed.is_installed(self.pool, m['uuid']):
                    continue
                plan[m['uuid']] = (m, source, client)
        for m, dummy, dummy2 in plan.values():
            self.check_platform(m)

        self.result.data['plan'] = [dict(uuid=u, name=m.get('name'), version=m.get('version'),
                                         bytes=(file_info(m) or {}).get('size'), source=s.url) for u, (m, s, c) in plan.items()]
        self.result.data['plan_bytes'] = sum(x['bytes'] or 0 for x in self.result.data['plan'])
        before = self._installed_lines(top_uuids + list(plan))
        for u, (m, s, c) in plan.items():
            self.result.action('import image %s (%s@%s) from %s' % (u, m.get('name'), m.get('version'), s.url))
        if plan and not self.check_mode:
            self._import_all(plan)
        if self.check_mode:
            after = sorted(set(before) | set(self._line(m) for m, s, c in plan.values()))
        else:
            after = self._installed_lines(top_uuids + list(plan))
        self.result.set_diff(_lines(before), _lines(after))
        self._set_images(top_uuids, plan)
        return self.result

    def _line(self, manifest):
        return '%s %s@%s' % (manifest['uuid'], manifest.get('name'), manifest.get('version'))

    def _installed_lines(self, uuids):
        lines = set()
        for u in uuids:
            rec = self.installed.get(self.pool, u)
            if rec is not None:
                lines.add(self._line(rec['manifest']))
        return sorted(lines)

    def _set_images(self, uuids, plan=None):
        images = []
        for u in OrderedDict((u, 1) for u in uuids):
            rec = self.installed.get(self.pool, u)
            if rec is None and plan and u in plan:  # check mode: what the record will be
                m, s, c = plan[u]
                rec = self.db.record(m, self.pool, s.url if s else None)
            if rec is not None:
                images.append(rec)
        self.result.data['images'] = images
        self.result.data['image'] = images[0] if len(images) == 1 else None

    def _import_all(self, plan):
        """Install the plan, base first; independent chains run side by side."""
        futures = {}
        workers = max(1, int(self.params.get('concurrency') or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for uuid, (m, s, c) in plan.items():  # topological: an origin is submitted before its children
                origin_future = futures.get(m.get('origin'))
                futures[uuid] = pool.submit(self._import_one, m, s, c, origin_future)
            errors = []
            for uuid, f in futures.items():
                try:
                    f.result()
                except BaseException as e:  # pylint: disable=broad-exception-caught
                    errors.append(e)
        if errors:
            raise errors[0]

    def _import_one(self, manifest, source, client, origin_future):
        if origin_future is not None:
            origin_future.result()  # raises if the origin failed: then this one is not tried
        client = self.client(source)  # one HTTP session per thread
        uuid = manifest['uuid']
        p = self.params
        installer = self.installer()
        with ImageLock(uuid, lock_dir=p['lock_dir'], timeout=p['lock_timeout']):
            installed, partial_left = installer.state(self.pool, uuid)  # after the lock: the truth now
            self.installed.mark(self.pool, uuid, installed)
            if installed:
                with self._lock:
                    self.warnings.append('image %s was imported by someone else while waiting for its lock' % uuid)
                return
            if manifest.get('origin') and not self.installed.is_installed(self.pool, manifest['origin'], fresh=origin_future is None):
                raise OriginNotInstalledError('origin %s of image %s is not installed on pool %s'
                                              % (manifest['origin'], uuid, self.pool), uuid=uuid, origin=manifest['origin'])
            if manifest.get('origin'):
                self._check_origin_snapshot(manifest)
            info = file_info(manifest) or {}
            attempts = int(p['retries']) + 1
            for attempt in range(attempts):
                installer.clean_partial(self.pool, uuid, exists=partial_left if attempt == 0 else None)
                try:
                    with client.get_image_file(uuid) as f:
                        if f.content_length is None:
                            raise DownloadError('image %s: unexpected missing or invalid Content-Length header' % uuid)
                        if info.get('size') is not None and f.content_length != int(info['size']):
                            raise DownloadError('image %s: unexpected mismatch between expected size, %s, and Content-Length header, %s'
                                                % (uuid, info['size'], f.content_length))
                        stats = installer.receive(self.pool, manifest, f.iter_chunks(), info.get('compression') or 'none',
                                                  expected_size=info.get('size'), expected_sha1=info.get('sha1'),
                                                  expected_md5=f.content_md5, source=source.url)
                    self.installed.mark(self.pool, uuid, True)
                    break
                except ImgapiConnectionError:
                    if attempt + 1 >= attempts:
                        raise
            with self._lock:
                self.result.data['imported'].append(OrderedDict([
                    ('uuid', uuid), ('name', manifest.get('name')), ('version', manifest.get('version')),
                    ('source', source.url), ('compression', info.get('compression')), ('bytes', stats.bytes),
                    ('seconds', round(stats.seconds, 3)), ('mib_per_second', stats.throughput), ('attempts', attempt + 1),
                ]))

    def _check_origin_snapshot(self, manifest):
        """Refuse an incremental image whose installed origin is not the snapshot it was sent from.

        The origin's ``files[0].dataset_guid`` (as its source serves it) names the
        snapshot; without it, ``zfs receive`` is left to judge.
        """
        origin = manifest['origin']
        om = self._source_manifests.get(origin)
        if om is None:
            om = self.db.read(self.pool, origin)[0].get('manifest') or {}
        want = (file_info(om) or {}).get('dataset_guid')
        if not want:
            return
        snap = '%s/%s@final' % (self.pool, origin)
        got = self.backend.get_properties([snap], ['guid']).get(snap, {}).get('guid')
        if got is not None and str(got) != str(want):
            raise OriginSnapshotMismatchError(
                'image %s (%s@%s) is incremental from %s with guid %s, but the installed origin %s has guid %s: '
                'the origin on pool %s is another image with the same uuid; delete it and import again'
                % (manifest['uuid'], manifest.get('name'), manifest.get('version'), snap, want, snap, got, self.pool),
                uuid=manifest['uuid'], origin=origin, expected_guid=str(want), found_guid=str(got))

    # ---- state=present, from files

    def load_manifest_param(self):
        value = self.params.get('manifest')
        if isinstance(value, dict):
            manifest = value
        elif isinstance(value, str):
            if not os.path.exists(value):
                raise UsageError('manifest path does not exist: "%s"' % value, field='manifest')
            try:
                with open(value) as f:
                    manifest = json.load(f, object_pairs_hook=OrderedDict)
            except ValueError as e:
                raise InvalidManifestError('manifest is invalid: %s: %s' % (value, e), field='manifest')
        else:
            raise UsageError('manifest must be a path on the host or a dict', field='manifest')
        if not isinstance(manifest, dict):
            raise InvalidManifestError('manifest is invalid: not a JSON object', field='manifest')
        manifest = upgrade_manifest(manifest)
        if not manifest.get('published_at'):
            manifest['published_at'] = _now_iso()
        validate_manifest(manifest, mode='minimal')
        return manifest

    def install_from_file(self):
        p = self.params
        if p.get('manifest') is None or not p.get('file'):
            raise UsageError('manifest and file go together', field='manifest' if p.get('manifest') is None else 'file')
        manifest = self.load_manifest_param()
        path = p['file']
        if not os.path.isfile(path):
            raise UsageError('file path does not exist: "%s"' % path, field='file')
        uuid = manifest['uuid']
        if self.installed.is_installed(self.pool, uuid):
            self._set_images([uuid])
            self.result.set_diff(_lines(self._installed_lines([uuid])), _lines(self._installed_lines([uuid])))
            return self.result
        self.check_platform(manifest)
        origin = manifest.get('origin')
        if origin and not self.installed.is_installed(self.pool, origin):
            raise OriginNotInstalledError('origin %s of image %s is not installed on pool %s: install it first'
                                          % (origin, uuid, self.pool), uuid=uuid, origin=origin)
        info = file_info(manifest) or {}
        zstream = p.get('zstream')
        size = os.path.getsize(path)
        if not zstream and info.get('size') is not None and int(info['size']) != size:
            raise DownloadError('image %s file size error: manifest says %s bytes, "%s" has %s bytes' % (uuid, info['size'], path, size),
                                field='file')
        self.result.data['plan'] = [dict(uuid=uuid, name=manifest.get('name'), version=manifest.get('version'), bytes=size, source=None)]
        self.result.data['plan_bytes'] = size
        self.result.action('install image %s (%s@%s) from %s' % (uuid, manifest.get('name'), manifest.get('version'), path))
        before = []
        if not self.check_mode:
            with ImageLock(uuid, lock_dir=p['lock_dir'], timeout=p['lock_timeout']):
                if not self.installed.is_installed(self.pool, uuid, fresh=True):
                    installer = self.installer()
                    installer.clean_partial(self.pool, uuid)
                    compression = 'none' if zstream else (info.get('compression') or 'none')
                    stats = installer.receive(self.pool, manifest, file_chunks(path), compression,
                                              expected_size=None if zstream else info.get('size'),
                                              expected_sha1=None if zstream else info.get('sha1'), verify=not zstream)
                    self.installed.mark(self.pool, uuid, True)
                    self.result.data['imported'].append(OrderedDict([
                        ('uuid', uuid), ('name', manifest.get('name')), ('version', manifest.get('version')),
                        ('source', None), ('compression', compression), ('bytes', stats.bytes),
                        ('seconds', round(stats.seconds, 3)), ('mib_per_second', stats.throughput), ('attempts', 1),
                    ]))
            after = self._installed_lines([uuid])
        else:
            after = [self._line(manifest)]
        self.result.set_diff(_lines(before), _lines(after))
        self._set_images([uuid], {uuid: (manifest, None, None)})
        return self.result

    # ---- state=absent

    def installed_by_name(self, name, version):
        found = []
        for img in self.installed.list(self.pool):
            m = img['record'].get('manifest', {})
            if m.get('name') == name and (not version or m.get('version') == version):
                found.append(img['uuid'])
        return found

    def absent(self):
        p = self.params
        uuids = self.targets()
        if p.get('name'):
            uuids.extend(self.installed_by_name(p['name'], p.get('version')))
        present = [u for u in OrderedDict((u, 1) for u in uuids) if self.installed.is_installed(self.pool, u)]
        records = dict((u, self.installed.get(self.pool, u)) for u in present)
        # delete children before their origins when several are asked for
        ordered = _children_first(present, dict((u, r['manifest'].get('origin')) for u, r in records.items()))
        going = set(ordered)
        for u in ordered:
            ds = '%s/%s' % (self.pool, u)
            clones = [c for c in self.backend.dependent_clones(ds) if c.split('/', 1)[-1] not in going]
            if clones:
                more = ' and %d others' % (len(clones) - 1) if len(clones) > 1 else ''
                raise ImageHasDependentClonesError('image "%s" has dependent clones: %s%s' % (u, clones[0], more),
                                                   uuid=u, clones=clones)
        before = sorted(self._line(r['manifest']) for r in records.values())
        for u in ordered:
            m = records[u]['manifest']
            self.result.action('delete image %s (%s@%s)' % (u, m.get('name'), m.get('version')))
            if not self.check_mode:
                self.backend.destroy('%s/%s' % (self.pool, u), recursive=True)
                self.installed.mark(self.pool, u, False)
                self.db.remove(self.pool, u)
            self.result.data['deleted'].append(dict(uuid=u, name=m.get('name'), version=m.get('version')))
        self.result.set_diff(_lines(before), _lines([] if ordered else before))
        self.result.data['images'] = []
        self.result.data['image'] = None
        return self.result

    # ---- state=updated

    def updated(self):
        p = self.params
        uuids = self.targets()
        if p.get('name'):
            uuids.extend(self.installed_by_name(p['name'], p.get('version')))
            if not uuids:
                raise UsageError('no installed image named "%s" on pool %s' % (p['name'], self.pool), field='name')
        if not uuids and not p.get('name'):
            uuids = [img['uuid'] for img in self.installed.list(self.pool)]
        else:
            missing = [u for u in uuids if not self.installed.is_installed(self.pool, u)]
            if missing:
                raise UsageError('no installed image with the given UUID(s) on pool %s: %s' % (self.pool, ', '.join(missing)),
                                 field='uuid')
        before, after = [], []
        for u in uuids:
            rec, dummy = self.db.read(self.pool, u)
            manifest, source, client = self.find_in_sources(u, ensure_active=False)
            if manifest is None:
                self.warnings.append('could not find image %s in image sources (skipping)' % u)
                continue
            changes = []
            local = rec.get('manifest') or {}
            if json.dumps(local, sort_keys=True) != json.dumps(manifest, sort_keys=True) or rec.get('source') != source.url:
                fields = _diff_fields(local, manifest)
                changes.append(('manifest', fields))
                before.append('%s manifest %s' % (u, json.dumps(local, sort_keys=True)))
                after.append('%s manifest %s' % (u, json.dumps(manifest, sort_keys=True)))
            ds = '%s/%s' % (self.pool, u)
            snaps = self.backend.list_snapshots(ds)
            rename = None
            if ds + '@final' not in snaps:
                rename = self._find_original_snapshot(u, ds, snaps, manifest)
                if rename:
                    changes.append(('final', rename))
                    before.append('%s snapshot %s' % (u, rename))
                    after.append('%s snapshot %s@final' % (u, ds))
            if not changes:
                continue
            for kind, what in changes:
                if kind == 'manifest':
                    self.result.action('update manifest of image %s from %s: %s' % (u, source.url, ', '.join(what) or 'source'))
                else:
                    self.result.action('rename original snapshot of image %s from %s to %s@final' % (u, what, ds))
            if not self.check_mode:
                if any(k == 'manifest' for k, w in changes):
                    self.db.write(self.pool, u, manifest, source=source.url)
                if rename:
                    self.backend.rename(rename, ds + '@final', recursive=True)
            self.result.data['updated'].append(dict(uuid=u, changes=[k if k != 'manifest' else 'manifest: ' + ', '.join(w)
                                                                     for k, w in changes]))
        self.result.set_diff(_lines(before), _lines(after))
        self._set_images(uuids)
        return self.result

    def _find_original_snapshot(self, uuid, ds, snaps, manifest):
        if not snaps:
            raise ImageMissingOriginalSnapshotError('image %s has no snapshots: cannot find its original @final' % uuid)
        guid = (file_info(manifest) or {}).get('dataset_guid')
        if not guid:
            self.warnings.append('cannot determine the original snapshot of image %s: its manifest has no files[0].dataset_guid' % uuid)
            return None
        props = self.backend.get_properties(snaps, ['guid'])
        for snap in snaps:
            if str(props.get(snap, {}).get('guid')) == str(guid):
                return snap
        raise ImageMissingOriginalSnapshotError('image %s: no snapshot has the original guid %s (snapshots: %s)'
                                                % (uuid, guid, ', '.join(snaps)), uuid=uuid, dataset_guid=guid)

    # ---- state=vacuumed

    def vacuumed(self):
        images = self.installed.list(self.pool)
        keep = list(self.params.get('keep') or [])
        doomed = vacuum_plan(images, keep)
        before = sorted(self._line(dict(img['record']['manifest'], uuid=img['uuid'])) for img in images)
        gone = set()
        for img in doomed:
            m = img['record'].get('manifest', {})
            self.result.action('delete unused image %s (%s@%s)' % (img['uuid'], m.get('name'), m.get('version')))
            self.result.data['deleted'].append(dict(uuid=img['uuid'], name=m.get('name'), version=m.get('version')))
            gone.add(img['uuid'])
            if not self.check_mode:
                self.backend.destroy(img['dataset'], recursive=True)
                self.installed.mark(self.pool, img['uuid'], False)
                self.db.remove(self.pool, img['uuid'])
        after = sorted(self._line(dict(img['record']['manifest'], uuid=img['uuid'])) for img in images if img['uuid'] not in gone)
        self.result.set_diff(_lines(before), _lines(after))
        self.result.data['kept'] = [img['uuid'] for img in images if img['uuid'] not in gone]
        return self.result


class _LazyDecompressors(object):
    """Looks up a decompressor only when an image needs it."""

    def __init__(self, manager):
        self.manager = manager

    def __getitem__(self, compression):
        found = self.manager.decompressors()
        if compression not in found:
            raise CommandError('cannot find the "%s" command needed to uncompress the image' % compression)
        return found[compression]


def _lines(lines):
    return ''.join(line + '\n' for line in lines)


def _now_iso():
    import datetime
    now = datetime.datetime.utcnow()
    return now.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (now.microsecond // 1000)


def _diff_fields(old, new):
    fields = []
    for key in sorted(set(old) | set(new)):
        if key == 'requirements' and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            for sub in sorted(set(old[key]) | set(new[key])):
                if old[key].get(sub) != new[key].get(sub):
                    fields.append('requirements.%s' % sub)
        elif old.get(key) != new.get(key):
            fields.append(key)
    return fields


def _children_first(uuids, origins):
    order = []
    remaining = list(uuids)
    while remaining:
        progressed = False
        for u in list(remaining):
            if not any(origins.get(o) == u for o in remaining if o != u):
                order.append(u)
                remaining.remove(u)
                progressed = True
        if not progressed:  # pragma: no cover - origins cannot loop on one pool
            order.extend(remaining)
            break
    return order


def run_images(module):
    manager = ImageManager(module)
    state = module.params['state']
    handler = dict(present=manager.present, absent=manager.absent, updated=manager.updated, vacuumed=manager.vacuumed)[state]
    result = handler().as_dict()
    for w in manager.warnings:
        module.warn(w)
    return result


__all__ = ('ImageManager', 'run_images')
