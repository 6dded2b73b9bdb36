# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: imgapi
short_description: Find an image in IMGAPI image sources by name, version, tags and other filters
version_added: 0.1.0
description:
  - Runs on the controller and answers "which image" before any host is touched, like the C(triton_image) data source of
    Terraform or the source image filter of Packer's Triton builder.
  - Without terms it searches the image sources (ListImages with the filters as IMGAPI query parameters, every page) and
    returns the one image that matches. No match is an error naming the filters; several matches are an error listing
    them unless O(most_recent=true), which takes the newest by C(published_at).
  - With terms (image uuids) it fetches each image (GetImage) instead of searching, one result per term, in order.
  - Several O(url)s are asked at once; an image several of them have is taken from the first in O(url) order. A source
    that fails is warned about and the others' answers are used; when every source fails, the lookup fails. With a
    single O(url), its failure is the lookup's error.
  - The filters are sent to the server as they are, so the server's rules apply; for example a public IMGAPI answers
    O(state=all) and the other states as the stock IMGAPI does for anonymous callers (only active images, see the
    IMGAPI documentation).
requirements:
  - requests (Python library on the controller)
author:
  - smartos.imgadm developers (@smartos-imgadm)
options:
  _terms:
    description:
      - Image uuids to fetch (GetImage) instead of searching; one result per uuid. A list given as a term is taken as
        its uuids.
      - The search filters (O(name), O(version), O(os), O(type), O(owner), O(tags), O(public), O(most_recent)) cannot
        be given with terms. O(state) applies; by default each image must be active, and the first source that has it
        active answers.
    type: list
    elements: str
    required: false
  url:
    description:
      - The IMGAPI image source(s) to ask, in order of preference, for example V(https://images.smartos.org).
      - A C(?channel=NAME) in a URL selects that channel for that source unless O(channel) is given.
    type: list
    elements: str
    required: true
  name:
    description:
      - Only images of this name. V(~TEXT) matches names that contain TEXT (case-sensitive), as IMGAPI does.
    type: str
  version:
    description:
      - Only images of this version. V(~TEXT) matches versions that contain TEXT (case-sensitive), as IMGAPI does.
    type: str
  os:
    description:
      - Only images for this OS (V(smartos), V(linux), V(windows), V(bsd), V(illumos), V(other)).
    type: str
  type:
    description:
      - Only images of this type (V(zone-dataset), V(lx-dataset), V(lxd), V(zvol), V(docker), V(other)).
        V(!TYPE) excludes a type, as IMGAPI does.
    type: str
  owner:
    description:
      - Only images owned by this account uuid.
    type: str
  tags:
    description:
      - Only images that have all these tags with these values; each becomes an IMGAPI C(tag.KEY=VALUE) filter.
        Booleans are sent as V(true)/V(false), as IMGAPI stores them.
    type: dict
  channel:
    description:
      - The IMGAPI channel to search or fetch from, on servers that have channels; V(*) is every channel.
        Overrides a C(?channel=) in O(url). Without it the server's default channel applies.
    type: str
  state:
    description:
      - Only images in this state; V(all) is any state.
      - A public IMGAPI only lists active images to anonymous callers, whatever this is.
    type: str
    default: active
    choices: [active, disabled, unactivated, creating, failed, all]
  public:
    description:
      - Only public (V(true)) or only private (V(false)) images. Not set, both.
    type: bool
  most_recent:
    description:
      - When several images match, take the newest by C(published_at) instead of failing.
      - On equal C(published_at) the one found first wins (first O(url), then the server's order).
    type: bool
    default: false
  output:
    description:
      - V(manifest) returns each image manifest as the source returns it; V(uuid) only its uuid.
    type: str
    default: manifest
    choices: [manifest, uuid]
  validate_certs:
    description:
      - Verify the TLS certificates of HTTPS image sources.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for an image source to connect or to send the next piece of an answer.
    type: float
    default: 30.0
  retries:
    description:
      - How many times a request is retried after a connection failure, a timeout, HTTP 408, 429 or 5xx, with
        exponential backoff that honours C(Retry-After).
    type: int
    default: 3
notes:
  - The lookup runs on the controller, with the same IMGAPI client as the modules of this collection.
  - Because C(lookup()) returns a single element as it is, C(lookup()) of a search gives the manifest (or uuid) itself;
    C(query()) always gives a list.
seealso:
  - module: smartos.imgadm.imgadm_image
  - module: smartos.imgadm.imgadm_facts
'''

EXAMPLES = r'''
- name: The newest base-64-lts image on images.smartos.org
  ansible.builtin.set_fact:
    base_image: "{{ lookup('smartos.imgadm.imgapi', name='base-64-lts', most_recent=true,
                           url='https://images.smartos.org') }}"

- name: Import it on the hosts
  smartos.imgadm.imgadm_image:
    uuid: "{{ base_image.uuid }}"

- name: Only the uuid of exactly one image of a version (fails when there are none or several)
  ansible.builtin.debug:
    msg: "{{ lookup('smartos.imgadm.imgapi', name='base-64-lts', version='24.4.1', output='uuid',
                    url='https://images.smartos.org') }}"

- name: The newest 24.x LX image with a tag, from two sources (the first is preferred, a failing one is warned about)
  ansible.builtin.set_fact:
    lx_uuid: "{{ lookup('smartos.imgadm.imgapi', name='~ubuntu', version='~24.', type='lx-dataset',
                        tags={'role': 'web'}, most_recent=true, output='uuid',
                        url=['https://imgapi.example.com', 'https://images.smartos.org']) }}"

- name: From a channel of an updates server
  ansible.builtin.set_fact:
    pi: "{{ lookup('smartos.imgadm.imgapi', name='gz-tools', channel='release', most_recent=true,
                   url='https://updates.tritondatacenter.com') }}"

- name: Manifests of known uuids (one per term); query() always gives a list
  ansible.builtin.debug:
    msg: "{{ query('smartos.imgadm.imgapi', '2f1dc911-6401-4fa4-8e9d-67ea2e39c271',
                   'c2e3fd74-0f5c-11ee-8f2a-4f0c1bcd7d2e', url='https://images.smartos.org')
             | map(attribute='published_at') }}"
'''

RETURN = r'''
_raw:
  description:
    - One element for a search, or one per term in term order.
    - With O(output=manifest) the image manifest as the image source returns it (C(uuid), C(name), C(version), C(state),
      C(published_at), C(files), C(tags)...); with O(output=uuid) its uuid.
  type: list
  elements: raw
'''

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.smartos.imgadm.plugins.module_utils._errors import ImgadmError
from ansible_collections.smartos.imgadm.plugins.module_utils._image_sources import ImageSources
from ansible_collections.smartos.imgadm.plugins.module_utils._manifest import published_at_key, validate_uuid

display = Display()

# the options that make a search; none of them goes with terms
SEARCH_OPTIONS = ('name', 'version', 'os', 'type', 'owner', 'tags', 'public')
# how many matches an "several images match" error lists
SHOWN_MATCHES = 5


class _LookupResult(object):
    """What ImageSources reports into: ``data`` (``source_errors``) and warnings, shown at once."""

    def __init__(self):
        self.data = {}
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)
        display.warning(text)


def _params(plugin):
    """The lookup's options as the ``params`` dict of ImageSources (a module's params)."""
    urls = plugin.get_option('url') or []
    if isinstance(urls, str):
        urls = [urls]
    urls = [u for u in urls if u is not None and str(u).strip()]
    if not urls:
        raise AnsibleLookupError('url must name at least one image source')
    timeout = plugin.get_option('timeout')
    if timeout is None or not timeout > 0:
        raise AnsibleLookupError('timeout must be above 0, not %r' % (timeout,))
    retries = plugin.get_option('retries')
    if retries is None or retries < 0:
        raise AnsibleLookupError('retries must be 0 or more, not %r' % (retries,))
    return dict(
        sources=urls,
        # never used: ``sources`` is always given (imgadm.conf is the managed host's, not the controller's)
        imgadm_dir=None,
        channel=plugin.get_option('channel') or None,
        validate_certs=plugin.get_option('validate_certs'),
        timeout=float(timeout),
        retries=int(retries),
        # one source: its failure is the error itself (no warning first); several: warned, the others answer
        strict_sources=len(urls) == 1,
    )


def _describe(filters):
    """``name=x, tag.k=v``: the filters as they are sent (booleans as ``true``/``false``)."""
    def text(value):
        if isinstance(value, bool):
            return 'true' if value else 'false'
        return value
    return ', '.join('%s=%s' % (k, text(v)) for k, v in filters)


def _label(manifest):
    return '%s %s@%s' % (manifest.get('uuid'), manifest.get('name'), manifest.get('version'))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        params = _params(self)
        result = _LookupResult()
        sources = ImageSources(params, result)
        # query('...', uuid_list) and with_smartos.imgadm.imgapi give the uuids as one list
        terms = self._flatten(terms or [])
        try:
            if terms:
                manifests = self._fetch(sources, result, terms)
            else:
                manifests = [self._search(sources, result)]
        except ImgadmError as e:
            raise AnsibleLookupError(str(e)) from e
        if self.get_option('output') == 'uuid':
            return [m['uuid'] for m in manifests]
        return manifests

    # -- terms: GetImage

    def _fetch(self, sources, result, terms):
        given = [o for o in SEARCH_OPTIONS if self.get_option(o) not in (None, '', {})]
        if self.get_option('most_recent'):
            given.append('most_recent')
        if given:
            raise AnsibleLookupError('image uuids (terms) and search options (%s) are mutually exclusive' % ', '.join(given))
        uuids = []
        for term in terms:
            if not isinstance(term, str) or not term.strip():
                raise AnsibleLookupError('term "%s" is not an image uuid' % (term,))
            try:
                uuids.append(validate_uuid(term.strip(), field='_terms'))
            except ImgadmError as e:
                raise AnsibleLookupError('term "%s" is not an image uuid: %s' % (term, e))
        state = self.get_option('state')
        manifests = []
        for uuid in uuids:
            if state == 'active':
                # the first source that has it active; none: ActiveImageNotFound
                manifest, dummy = sources.find(uuid, ensure_active=True)
            else:
                manifest, dummy = sources.find(uuid, ensure_active=False)
                if manifest is None:
                    raise AnsibleLookupError('image "%s" was not found in the image sources (%s)%s'
                                             % (uuid, ', '.join(_urls(sources)), _failures(result)))
                if state != 'all' and manifest.get('state') != state:
                    raise AnsibleLookupError('image "%s" is %s, not %s' % (uuid, manifest.get('state'), state))
            manifests.append(manifest)
        return manifests

    # -- search: ListImages

    def _filters(self):
        """``[(name, value)]``: the ListImages filters, as given."""
        filters = []
        for key in ('name', 'version', 'os', 'type'):
            value = self.get_option(key)
            if value not in (None, ''):
                filters.append((key, value))
        owner = self.get_option('owner')
        if owner not in (None, ''):
            try:
                filters.append(('owner', validate_uuid(owner, field='owner')))
            except ImgadmError as e:
                raise AnsibleLookupError('owner must be an account uuid: %s' % e)
        tags = self.get_option('tags')
        if tags:
            filters.append(('tags', dict(tags)))
        filters.append(('state', self.get_option('state')))
        public = self.get_option('public')
        if public is not None:
            filters.append(('public', bool(public)))
        return filters

    def _search(self, sources, result):
        filters = self._filters()
        shown = [(k, v) for k, v in filters if k != 'tags'] + [('tag.%s' % k, v) for k, v in sorted(dict(filters).get('tags', {}).items())]
        channel = sources.params.get('channel')
        if channel:
            shown.append(('channel', channel))
        found = sources.available(**dict(filters))
        urls = _urls(sources)
        errors = result.data.get('source_errors') or []
        if errors and len(errors) == len(urls):
            raise AnsibleLookupError('every image source failed: %s' % '; '.join(e['msg'] for e in errors))
        if not found:
            raise AnsibleLookupError('no image matches %s in the image sources (%s)%s'
                                     % (_describe(shown), ', '.join(urls), _failures(result)))
        if len(found) == 1:
            return found[0]['manifest']
        # the newest; on equal published_at the first found (source order, then the server's order)
        newest_first = sorted(found, key=lambda f: published_at_key(f['manifest']), reverse=True)
        if self.get_option('most_recent'):
            best = found[0]
            for f in found[1:]:
                if published_at_key(f['manifest']) > published_at_key(best['manifest']):
                    best = f
            return best['manifest']
        listed = ', '.join(_label(f['manifest']) for f in newest_first[:SHOWN_MATCHES])
        more = len(found) - SHOWN_MATCHES
        raise AnsibleLookupError('%d images match %s (newest first: %s%s); narrow the search or set most_recent=true '
                                 'to take the newest by published_at%s'
                                 % (len(found), _describe(shown), listed, ', and %d more' % more if more > 0 else '',
                                    _failures(result)))


def _urls(sources):
    return list(sources.params['sources'])


def _failures(result):
    errors = result.data.get('source_errors') or []
    if not errors:
        return ''
    return ' (%d image source(s) failed: %s)' % (len(errors), '; '.join(e['msg'] for e in errors))
