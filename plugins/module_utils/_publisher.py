# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""Publishing an image (manifest and file) to an IMGAPI: ``imgadm publish``, idempotently.

``publish(params, manifest, file_path, result, check_mode, run_command)``
is shared by ``imgadm_publish`` and ``imgadm_create`` (its ``publish``
option); ``params`` follows ``PUBLISH_ARGS``.

The sequence is the reference's (``publishImage``): AdminImportImage (mode
``import``, keeps the uuid) or CreateImage (mode ``create``, new uuid and an
owner), then AddImageFile, then ActivateImage. If a step fails after the
image was created, the image is deleted again and the error says whether
that worked.

Idempotence:

* import: GET /images/<uuid> first. An activated image (``active`` or
  ``disabled``) with the same ``files[0].sha1`` is the image already
  published: nothing is done. An unactivated one with the same name,
  version and file (sha1 and size) is what an interrupted earlier publish
  left (the file is uploaded, only the activation is missing): it is
  activated. Anything else under that uuid (another file, no file,
  another name or version, ``creating``/``failed``) is an error
  (``ImageUuidAlreadyExists``); nothing is ever overwritten or deleted.
* create: the uuid is new on each run, so the image is looked up by name,
  version and owner (ListImages, ``state=all``): an activated image with
  the same ``files[0].sha1`` means nothing is done; an unactivated one with
  the same file is completed as above.

On a run that does nothing, the file is not read (only its size checked);
before an upload its size and sha1 must match the manifest.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
from collections import OrderedDict

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import (
    ImageUuidAlreadyExistsError,
    ImgadmError,
    ImgapiConnectionError,
    ImgapiNotFoundError,
    ImgapiUnauthorizedError,
    InvalidManifestError,
    UsageError,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._http_signature import (
    AgentSigner,
    BasicAuth,
    KeyFileSigner,
    SignatureAuth,
    check_key_id,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._imgapi import (
    COMPRESSIONS,
    IMPORT_DROP_FIELDS,
    ImgapiClient,
)
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import (
    file_digest,
    file_info,
    published_at_key,
    upgrade_manifest,
    validate_uuid,
)

# Mirrors plugins/doc_fragments/_publish.py
PUBLISH_ARGS = dict(
    url=dict(type='str', required=True),
    mode=dict(type='str', choices=['import', 'create'], default='import'),
    owner=dict(type='str'),
    channel=dict(type='str'),
    user=dict(type='str'),
    key_file=dict(type='path', no_log=False),
    key_passphrase=dict(type='str', no_log=True),
    ssh_agent=dict(type='bool', default=False),
    key_id=dict(type='str', no_log=False),
    openssl_path=dict(type='path', default='openssl'),
    url_username=dict(type='str'),
    url_password=dict(type='str', no_log=True),
    validate_certs=dict(type='bool', default=True),
    timeout=dict(type='float', default=30.0),
    retries=dict(type='int', default=3),
)

ACTIVATED_STATES = ('active', 'disabled')
_SHA1_RE = re.compile(r'^[0-9a-f]{40}$')


# ---- inputs

def load_manifest(value, field='manifest'):
    """A manifest from a path on the host (JSON) or a dict; a dict in either case (a copy)."""
    if isinstance(value, dict):
        return copy.deepcopy(value)
    if isinstance(value, str):
        if not os.path.isfile(value):
            raise UsageError('manifest path does not exist: "%s"' % value, field=field)
        try:
            with open(value) as f:
                manifest = json.load(f, object_pairs_hook=OrderedDict)
        except ValueError as e:
            raise InvalidManifestError('manifest is invalid: %s: %s' % (value, e), field=field)
        except OSError as e:
            raise UsageError('cannot read manifest "%s": %s' % (value, e.strerror or e), field=field)
        if not isinstance(manifest, dict):
            raise InvalidManifestError('manifest is invalid: %s: not a JSON object' % value, field=field)
        return manifest
    raise UsageError('manifest must be a path on the host or a dict', field=field)


def _prepare_manifest(manifest, mode, params):
    """The v2 manifest to publish (a copy) and its ``files[0]``; errors name the manifest field."""
    if not isinstance(manifest, dict):
        raise InvalidManifestError('manifest is invalid: not an object', field='manifest')
    m = copy.deepcopy(manifest)
    if 'v' not in m and 'creator_uuid' not in m:
        m['v'] = 2  # what CreateImage defaults to; AdminImportImage requires it
    m = upgrade_manifest(m)
    for name in ('name', 'version'):
        if not isinstance(m.get(name), str) or not m.get(name):
            raise InvalidManifestError('manifest has no "%s"' % name, field='manifest', manifest_field=name)
    if mode == 'import':
        validate_uuid(m.get('uuid'), field='manifest.uuid')
    info = file_info(m)
    if info is None:
        raise InvalidManifestError('manifest has no files[0]: it must describe the image file (compression, sha1, size)',
                                   field='manifest', manifest_field='files[0]')
    if info.get('compression') not in COMPRESSIONS:
        raise InvalidManifestError('manifest files[0].compression must be one of %s, not %r'
                                   % (', '.join(COMPRESSIONS), info.get('compression')),
                                   field='manifest', manifest_field='files[0].compression')
    if not isinstance(info.get('sha1'), str) or not _SHA1_RE.match(info['sha1']):
        raise InvalidManifestError('manifest files[0].sha1 must be 40 lower-case hex digits, not %r' % (info.get('sha1'),),
                                   field='manifest', manifest_field='files[0].sha1')
    size = info.get('size')
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise InvalidManifestError('manifest files[0].size must be a positive integer (IMGAPI refuses empty files), '
                                   'not %r' % (size,), field='manifest', manifest_field='files[0].size')
    owner = params.get('owner')
    if owner is not None:
        validate_uuid(owner, field='owner')
        m['owner'] = owner
    if mode == 'create':
        if not m.get('owner'):
            raise UsageError('mode=create needs an owner: set owner (or the manifest\'s owner) to the uuid of the '
                             'account the new image belongs to', field='owner')
        validate_uuid(m['owner'], field='owner')
    elif m.get('owner') is not None:
        validate_uuid(m['owner'], field='manifest.owner')
    for name in ('public', 'disabled'):
        if name in m and not isinstance(m[name], bool):
            raise InvalidManifestError('manifest "%s" must be true or false, not %r' % (name, m[name]),
                                       field='manifest', manifest_field=name)
    return m, info


def _check_file_size(path, info):
    if not path or not os.path.isfile(path):
        raise UsageError('file path does not exist: "%s"' % path, field='file')
    size = os.path.getsize(path)
    if size != info['size']:
        raise UsageError('file "%s" is %d bytes, but the manifest\'s files[0].size says %d'
                         % (path, size, info['size']), field='file', manifest_field='files[0].size')
    return size


def _check_file_sha1(path, info):
    """Stream the file through sha1; it must be the manifest's ``files[0].sha1``."""
    try:
        size, sha1 = file_digest(path)
    except (IOError, OSError) as e:
        raise UsageError('cannot read file "%s": %s' % (path, e.strerror or e), field='file')
    if size != info['size']:
        raise UsageError('file "%s" is %d bytes, but the manifest\'s files[0].size says %d' % (path, size, info['size']),
                         field='file', manifest_field='files[0].size')
    if sha1 != info['sha1']:
        raise UsageError('file "%s" has sha1 %s, but the manifest\'s files[0].sha1 says %s'
                         % (path, sha1, info['sha1']), field='file', manifest_field='files[0].sha1')


def _check_options(p):
    for name in ('timeout', 'retries'):
        value = p.get(name)
        if value is None:
            continue
        if (name == 'timeout' and value <= 0) or (name == 'retries' and value < 0):
            raise UsageError('%s must be %s, got %s' % (name, 'greater than 0' if name == 'timeout' else 'at least 0', value),
                             field=name)
    if p.get('mode', 'import') not in ('import', 'create'):
        raise UsageError('mode must be import or create, not %r' % (p.get('mode'),), field='mode')
    if not p.get('url'):
        raise UsageError('url (the IMGAPI to publish to) is required', field='url')


# ---- auth

def make_auth(params, run_command=None):
    """The auth hook the options ask for (SignatureAuth, BasicAuth) or None; errors name the option."""
    p = params
    agent = bool(p.get('ssh_agent')) or p.get('key_id') is not None
    key_file = p.get('key_file')
    basic = p.get('url_username') is not None or p.get('url_password') is not None
    if key_file and agent:
        raise UsageError('key_file cannot be used with ssh_agent or key_id: sign with one or the other', field='key_file')
    if p.get('key_passphrase') and not key_file:
        raise UsageError('key_passphrase is only used with key_file', field='key_passphrase')
    signature = bool(key_file) or agent
    if basic and (signature or p.get('user')):
        raise UsageError('url_username/url_password (HTTP Basic) cannot be used with user, key_file or ssh_agent '
                         '(HTTP Signature): IMGAPI takes one Authorization header', field='url_username')
    if basic:
        if p.get('url_username') is None or p.get('url_password') is None:
            raise UsageError('url_username and url_password go together', field='url_username')
        return BasicAuth(p['url_username'], p['url_password'])
    if not signature:
        if p.get('user'):
            raise UsageError('user needs a key to sign with: key_file, or ssh_agent (optionally key_id)', field='user')
        return None
    if not p.get('user'):
        raise UsageError('signing requests needs user, the IMGAPI user name whose public key the server has',
                         field='user')
    check_key_id(p['user'])
    if key_file:
        signer = KeyFileSigner(key_file, passphrase=p.get('key_passphrase'), openssl_path=p.get('openssl_path'),
                               run_command=run_command)
    else:
        signer = AgentSigner(key_id=p.get('key_id'), timeout=p.get('timeout') or 30.0)
    return SignatureAuth(p['user'], signer)


def make_client(params, auth=None):
    p = params
    return ImgapiClient(p['url'], channel=p.get('channel'), insecure=not p.get('validate_certs', True),
                        timeout=p.get('timeout') or 30.0, retries=p.get('retries') or 0, auth=auth)


# ---- helpers

def _file0(image):
    files = image.get('files') if isinstance(image, dict) else None
    if isinstance(files, list) and files and isinstance(files[0], dict):
        return files[0]
    return {}


def _activated(image):
    return image.get('state') in ACTIVATED_STATES


def _label(m):
    return '%s (%s@%s)' % (m.get('uuid') or 'new image', m.get('name'), m.get('version'))


def _predicted(m, info, uuid):
    """What the server should return after publishing (check mode)."""
    image = dict((k, v) for k, v in m.items() if k not in IMPORT_DROP_FIELDS)
    image['uuid'] = uuid
    image['state'] = 'disabled' if m.get('disabled') else 'active'
    image['files'] = [dict(sha1=info['sha1'], size=info['size'], compression=info['compression'])]
    return image


class _Publish(object):
    """One publish run: the client, the result, what was created (for the rollback)."""

    def __init__(self, params, manifest, info, file_path, result, check_mode, client, summary):
        self.p = params
        self.m = manifest
        self.info = info
        self.file = file_path
        self.result = result
        self.check_mode = check_mode
        self.client = client
        self.summary = summary
        self._verified = False

    def _verify_file(self):
        """The file's sha1 against the manifest, read once a run (before anything is created on the server)."""
        if not self._verified:
            _check_file_sha1(self.file, self.info)
            self._verified = True

    def _step(self, text):
        self.result.action(text)
        self.summary['steps'].append(text)

    def _check_same_file(self, image):
        f0 = _file0(image)
        return f0.get('sha1') == self.info['sha1'] and f0.get('size') == self.info['size']

    def _done(self, image):
        """The image is published already: nothing to do."""
        self.summary['uuid'] = image.get('uuid')
        if bool(image.get('disabled')) != bool(self.m.get('disabled')):
            self.result.warn('image %s is already published, but %s on the server while the manifest says disabled=%s; '
                             'it is left as it is' % (image.get('uuid'), 'disabled' if image.get('disabled') else 'enabled',
                                                      bool(self.m.get('disabled'))))
        return image

    def _complete(self, image):
        """Activate an unactivated image that has our file (an interrupted earlier publish)."""
        uuid = image['uuid']
        self.summary['uuid'] = uuid
        self.summary['completed'] = True
        self._step('activate image %s, which an earlier publish left unactivated with this file, on %s'
                   % (_label(image), self.client.url))
        if self.check_mode:
            return _predicted(self.m, self.info, uuid)
        return self._activate(uuid)

    def _activate(self, uuid):
        try:
            return self.client.activate_image(uuid)
        except ImgapiConnectionError:
            # no answer: the activation may have happened; look before calling it a failure
            try:
                image = self.client.get_image(uuid)
            except ImgadmError:
                image = None
            if image is not None and _activated(image) and self._check_same_file(image):
                return image
            raise

    def _upload(self, uuid, m):
        self._verify_file()
        self._step('upload %s (%d bytes, %s) to image %s' % (self.file, self.info['size'], self.info['compression'], uuid))
        self.client.add_image_file(uuid, self.file, self.info['compression'], sha1=self.info['sha1'],
                                   size=self.info['size'], dataset_guid=self.info.get('dataset_guid'))
        self._step('activate image %s' % _label(m))
        return self._activate(uuid)

    def _rollback(self, uuid, error, was_changed):
        """Delete the image this run created; say in ``error`` whether that worked."""
        try:
            self.client.delete_image(uuid)
            ok, why = True, None
        except ImgapiNotFoundError:
            ok, why = True, None
        except ImgadmError as e:
            ok, why = False, str(e)
        self.summary['rolled_back'] = ok
        if ok:
            self.result.action('delete image %s again (rollback)' % uuid, changes=False)
            self.result.changed = was_changed
            self.summary['steps'].append('delete image %s again (rollback)' % uuid)
            note = 'the partially published image %s was deleted again' % uuid
        else:
            note = ('deleting the partially published image %s failed too (%s): it is left unactivated on %s; '
                    'delete it (DELETE /images/%s) before publishing again' % (uuid, why, self.client.url, uuid))
        error.message = '%s; %s' % (error.message, note)
        error.details.update(uuid=uuid, rolled_back=ok)
        if why:
            error.details['rollback_error'] = why

    def _write(self, uuid_known, create):
        """Create/import, upload, activate; roll back on failure. ``create()`` returns the new image."""
        was_changed = self.result.changed
        uuid = uuid_known
        try:
            image = create()
            uuid = image.get('uuid') or uuid
            self.summary['uuid'] = uuid
            return self._upload(uuid, image)
        except ImgapiConnectionError as e:
            # with no answer to the create/import itself, the image may or may not exist: only ours is deleted
            if uuid is None:
                e.message += ('; the server may have created an unactivated image %s@%s (owner %s) before the '
                              'connection failed: look for it (ListImages state=unactivated) and delete it'
                              % (self.m.get('name'), self.m.get('version'), self.m.get('owner')))
            elif not self.summary.get('created'):
                if self._ours_unactivated(uuid):
                    self._rollback(uuid, e, was_changed)
            else:
                self._rollback(uuid, e, was_changed)
            raise
        except ImgadmError as e:
            if self.summary.get('created'):
                self._rollback(uuid, e, was_changed)
            raise

    def _ours_unactivated(self, uuid):
        try:
            image = self.client.get_image(uuid)
        except ImgadmError:
            return False
        return (image.get('state') == 'unactivated' and image.get('name') == self.m.get('name')
                and image.get('version') == self.m.get('version'))

    # -- modes

    def run_import(self):
        m = self.m
        uuid = m['uuid']
        self.summary['uuid'] = uuid
        try:
            existing = self.client.get_image(uuid)
        except ImgapiNotFoundError:
            existing = None
        if existing is not None:
            if _activated(existing) and _file0(existing).get('sha1') == self.info['sha1']:
                return self._done(existing)
            if (existing.get('state') == 'unactivated' and self._check_same_file(existing)
                    and existing.get('name') == m.get('name') and existing.get('version') == m.get('version')):
                return self._complete(existing)
            f0 = _file0(existing)
            raise ImageUuidAlreadyExistsError(
                'image uuid %s already exists on %s as %s@%s (state %s, %s); it is not this image (files[0].sha1 %s) '
                'and is left alone' % (uuid, self.client.url, existing.get('name'), existing.get('version'),
                                       existing.get('state'),
                                       'file sha1 %s' % f0['sha1'] if f0.get('sha1') else 'no file', self.info['sha1']),
                uuid=uuid, url=self.client.url, state=existing.get('state'))
        if self.check_mode:
            self._verify_file()
            self._step('import image %s into %s' % (_label(m), self.client.url))
            self._step('upload %s (%d bytes, %s) to image %s' % (self.file, self.info['size'], self.info['compression'], uuid))
            self._step('activate image %s' % _label(m))
            return _predicted(m, self.info, uuid)

        def create():
            self._verify_file()
            try:
                image = self.client.admin_import_image(m)
            except ImgadmError as e:
                if getattr(e, 'status', None) == 409:
                    e.message += ' (it was created meanwhile, or it exists in another channel)'
                raise
            # a step, and a change, only once the server has the image (a refused import changed nothing)
            self._step('import image %s into %s' % (_label(m), self.client.url))
            self.summary['created'] = True
            return image

        return self._write(uuid, create)

    def run_create(self):
        m = self.m
        owner = m['owner']
        found = self.client.list_images(name=m['name'], version=m['version'], owner=owner, state='all')
        same = [i for i in found if isinstance(i, dict) and i.get('name') == m['name'] and i.get('version') == m['version']
                and i.get('owner') == owner]
        done = [i for i in same if _activated(i) and _file0(i).get('sha1') == self.info['sha1']]
        if done:
            return self._done(max(done, key=published_at_key))
        partial = [i for i in same if i.get('state') == 'unactivated' and self._check_same_file(i) and i.get('uuid')]
        if partial:
            return self._complete(partial[0])
        if self.check_mode:
            self._verify_file()
            self._step('create image %s owned by %s on %s' % (_label(m), owner, self.client.url))
            self._step('upload %s (%d bytes, %s) to the new image' % (self.file, self.info['size'], self.info['compression']))
            self._step('activate the new image')
            return _predicted(m, self.info, None)

        def create():
            self._verify_file()
            image = self.client.create_image(m, owner)
            if not image.get('uuid'):
                raise ImgadmError('%s: CreateImage returned no uuid' % self.client.url, code='InvalidContent')
            self._step('create image %s owned by %s on %s' % (_label(m), owner, self.client.url))
            self.summary['created'] = True
            self.summary['uuid'] = image['uuid']
            return image

        return self._write(None, create)


def publish(params, manifest, file_path, result, check_mode, run_command=None):
    """Publish ``manifest`` with the image file ``file_path`` to ``params['url']``; return the server's image.

    ``params`` follows ``PUBLISH_ARGS`` (missing keys take their defaults),
    ``manifest`` is a dict or a path on the host, ``result`` a
    ``_common.Result``, ``run_command`` the ``module.run_command``-like
    callable with a deadline (``_common.CommandRunner``), used only to sign
    with ``openssl`` when ``cryptography`` is missing.

    Each step is recorded in ``result.actions`` (in check mode: what would be
    done, with no write to the server), ``result.changed`` only when
    something was published, and ``result.data['published']`` summarises
    the run: ``url``, ``channel``, ``mode``, ``uuid`` (None for a create in
    check mode), ``changed``, ``completed`` (an earlier, interrupted publish
    was activated), ``steps``, ``auth`` (type, user, key fingerprint; never
    a secret) and, after a failure, ``rolled_back``.

    Returns the image as the server has it after the run (in check mode, the
    image as it is, or as it would be). Raises ImgadmError subclasses:
    UsageError/InvalidManifestError (bad options or manifest, file not
    matching the manifest), SigningError, ImgapiUnauthorizedError (401),
    ImageUuidAlreadyExistsError, ImgapiError, UploadError; an error after the
    image was created carries ``uuid`` and ``rolled_back``.
    """
    p = dict((k, v.get('default')) for k, v in PUBLISH_ARGS.items())
    p.update(dict((k, v) for k, v in (params or {}).items() if v is not None or k not in p))
    _check_options(p)
    mode = p['mode']
    m, info = _prepare_manifest(load_manifest(manifest), mode, p)
    _check_file_size(file_path, info)
    auth = make_auth(p, run_command=run_command)
    client = make_client(p, auth)
    summary = dict(url=client.url, channel=client.channel, mode=mode, uuid=m.get('uuid') if mode == 'import' else None,
                   changed=False, completed=False, steps=[], auth=auth.describe() if auth is not None else None)
    result.data['published'] = summary
    run = _Publish(p, m, info, file_path, result, check_mode, client, summary)
    try:
        image = run.run_import() if mode == 'import' else run.run_create()
    except ImgapiUnauthorizedError as e:
        e.message += _unauthorized_hint(auth)
        raise
    finally:
        # a rollback that worked leaves the server as it was
        summary['changed'] = bool(summary['steps']) and not summary.get('rolled_back')
        summary.pop('created', None)
        client.close()
    return image


def _unauthorized_hint(auth):
    if auth is None:
        return (' (HTTP 401: the server wants an authenticated request: set user and key_file, or ssh_agent, '
                'for HTTP Signature auth)')
    info = auth.describe()
    if info['type'] == 'basic':
        return ' (HTTP 401: the server did not accept url_username "%s" and its password)' % info['user']
    return (' (HTTP 401: the server did not accept the signature of user "%s" with key %s: the user must exist on '
            'the server with this public key, and the host clock must be within 300 s of the server\'s)'
            % (info['user'], info.get('fingerprint') or info.get('path')))


__all__ = ('PUBLISH_ARGS', 'ACTIVATED_STATES', 'load_manifest', 'make_auth', 'make_client', 'publish')
