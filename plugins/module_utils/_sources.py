# -*- coding: utf-8 -*-
# Copyright (c) smartos.imgadm contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE: this file is internal to the smartos.imgadm collection and may change
# without notice. Do not import it from other collections.

"""Image sources: URL rules and the add/delete/replace plans of ``imgadm sources``.

Pure logic, no I/O: the plans take and return lists of source entries (the
dicts stored under ``sources`` in ``imgadm.conf``) and mirror the reference:

* URLs are compared after normalisation (``http://`` added when there is no
  scheme, one trailing ``/`` dropped, default ports dropped, scheme and host
  lower-cased); the ``?channel=`` query is part of the URL and so of the
  comparison;
* a stored entry is ``{"type", "url"}`` plus ``"insecure": true`` only for
  insecure sources, as ``sources -a [-k]`` writes it;
* deleting rewrites the list from the de-duplicated sources, as ``sources -d``
  does; replacing the whole list writes exactly the given entries, as
  ``sources -e`` does.

Where ``imgadm sources -a`` would append a *second* entry for a URL that is
already configured with another type or insecure flag, ``state=present``
updates the existing entry in place: a declarative module describes the one
source for that URL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

try:
    from urllib.parse import urlsplit, urlunsplit, parse_qsl, urlencode
except ImportError:  # pragma: no cover
    from urlparse import urlsplit, urlunsplit, parse_qsl  # type: ignore
    from urllib import urlencode  # type: ignore

from ansible_collections.smartos.imgadm.plugins.module_utils._constants import SOURCE_TYPES
from ansible_collections.smartos.imgadm.plugins.module_utils._errors import UsageError

_SCHEME_RE = re.compile(r'^\w+://')


def norm_url(url):
    """The reference's ``normUrlFromUrl``."""
    if not isinstance(url, str) or not url.strip():
        raise UsageError('invalid source URL: %r' % (url,), field='url')
    url = url.strip()
    if not _SCHEME_RE.match(url):
        url = 'http://' + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    userinfo = ''
    hostport = netloc
    if '@' in netloc:
        userinfo, hostport = netloc.rsplit('@', 1)
        userinfo += '@'
    host, port = hostport, None
    m = re.match(r'^(\[[^\]]*\]|[^:]*)(?::(\d*))?$', hostport)
    if m:
        host, port = m.group(1), m.group(2)
    host = host.lower()
    if port and ((scheme == 'https' and port == '443') or (scheme == 'http' and port == '80')):
        port = None
    if port:
        hostport = '%s:%s' % (host, port)
    else:
        hostport = host
    path = parts.path
    if path.endswith('/'):
        path = path[:-1]
    return urlunsplit((scheme, userinfo + hostport, path, parts.query, parts.fragment))


def split_channel(url):
    """Split ``URL?channel=C`` into ``(URL, C)``; C is None without a channel."""
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    query = parse_qsl(parts.query, keep_blank_values=True)
    channel = None
    rest = []
    for k, v in query:
        if k == 'channel':
            channel = v or None
        else:
            rest.append((k, v))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return base, channel


def url_with_channel(url, channel, field='channel'):
    """Put ``channel`` into the URL as ``?channel=``, as the reference stores it."""
    if not channel:
        return url
    base, current = split_channel(url)
    if current is not None:
        if current != channel:
            raise UsageError('%s "%s" conflicts with the channel "%s" in the URL "%s"' % (field, channel, current, url), field=field)
        return url
    sep = '&' if urlsplit(url).query else '?'
    return '%s%schannel=%s' % (url, sep, channel)


class Source(object):
    """One image source. ``insecure`` is None (unset), False or True, as in the reference."""

    def __init__(self, url, type='imgapi', insecure=None):
        self.url = url
        self.type = type
        self.insecure = insecure

    @classmethod
    def from_entry(cls, entry):
        return cls(entry['url'], entry.get('type') or 'imgapi', entry.get('insecure'))

    @classmethod
    def from_params(cls, url, type='imgapi', insecure=False, channel=None, field='url'):
        if not isinstance(url, str) or not url.strip():
            raise UsageError('%s must be a non-empty URL' % field, field=field)
        url = url.strip()
        if type not in SOURCE_TYPES:
            raise UsageError('type "%s" for source "%s" is invalid: must be one of "%s"' % (type, url, '", "'.join(SOURCE_TYPES)),
                             field='type')
        if type == 'dsapi' and not re.search(r'/datasets/?$', split_channel(url)[0]):
            raise UsageError('dsapi source URL "%s" must end in "/datasets"' % url, field=field)
        url = url_with_channel(url, channel, field=field.replace('url', 'channel') if field != 'url' else 'channel')
        return cls(url, type, True if insecure else None)

    @property
    def norm_url(self):
        return norm_url(self.url)

    @property
    def channel(self):
        return split_channel(self.url)[1]

    def key(self):
        """What makes two sources the same for the reference's ``_addSource``."""
        return (self.norm_url, self.type, self.insecure)

    def to_entry(self):
        entry = OrderedDict([('type', self.type), ('url', self.url)])
        if self.insecure is not None:
            entry['insecure'] = self.insecure
        return entry

    def to_result(self):
        base, channel = split_channel(self.url)
        result = dict(url=self.url, type=self.type, insecure=bool(self.insecure), channel=channel, base_url=base)
        return result

    def describe(self):
        return '%s %s%s' % (self.url, self.type, ' insecure' if self.insecure else '')

    def __eq__(self, other):
        return isinstance(other, Source) and self.to_entry() == other.to_entry()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return 'Source(%r, %r, %r)' % (self.url, self.type, self.insecure)


def effective_sources(entries):
    """The sources the reference builds from config entries: duplicates dropped."""
    seen = set()
    result = []
    for entry in entries:
        s = Source.from_entry(entry)
        if s.key() in seen:
            continue
        seen.add(s.key())
        result.append(s)
    return result


class Plan(object):
    """What a sources change does: the new entry list and the sources to ping."""

    def __init__(self, entries, changed, to_ping=None, actions=None):
        self.entries = entries
        self.changed = changed
        self.to_ping = to_ping or []
        self.actions = actions or []


def plan_present(entries, source):
    """Ensure ``source`` is configured (``sources -a``, or an in-place update)."""
    same_url = [i for i, e in enumerate(entries) if Source.from_entry(e).norm_url == source.norm_url]
    for i in same_url:
        current = Source.from_entry(entries[i])
        if current.type == source.type and bool(current.insecure) == bool(source.insecure):
            return Plan(entries, False)
    new_entries = list(entries)
    if same_url:
        i = same_url[0]
        old = Source.from_entry(entries[i])
        new_entries[i] = source.to_entry()
        return Plan(new_entries, True, [source], ['update source "%s": %s -> %s' % (source.url, old.describe(), source.describe())])
    new_entries.append(source.to_entry())
    return Plan(new_entries, True, [source], ['add source "%s"' % source.describe()])


def plan_absent(entries, url):
    """Remove every source whose normalised URL equals ``url``'s (``sources -d``)."""
    target = norm_url(url)
    current = effective_sources(entries)
    kept = [s for s in current if s.norm_url != target]
    if len(kept) == len(current):
        return Plan(entries, False)
    removed = [s for s in current if s.norm_url == target]
    return Plan([s.to_entry() for s in kept], True, [], ['delete source "%s"' % s.describe() for s in removed])


def plan_exclusive(entries, sources):
    """Make the configured list exactly ``sources``, in order (``sources -e``)."""
    current = effective_sources(entries)
    desired_entries = [s.to_entry() for s in sources]
    seen = set()
    for s in sources:
        if s.key() in seen:
            raise UsageError('source "%s" (%s) is listed twice' % (s.url, s.type), field='sources')
        seen.add(s.key())
    if [s.to_entry() for s in current] == desired_entries and len(entries) == len(current):
        return Plan(entries, False)
    old_keys = set((s.type, s.url, s.insecure) for s in current)
    new_keys = set((s.type, s.url, s.insecure) for s in sources)
    actions = []
    for s in current:
        if (s.type, s.url, s.insecure) not in new_keys:
            actions.append('delete source "%s"' % s.describe())
    to_ping = []
    for s in sources:
        if (s.type, s.url, s.insecure) not in old_keys:
            actions.append('add source "%s"' % s.describe())
            to_ping.append(s)
    if not actions:
        actions.append('reorder sources')
    return Plan(desired_entries, True, to_ping, actions)


def sources_text(entries):
    """The list as ``imgadm sources -e`` shows it, one ``URL TYPE [insecure]`` a line."""
    return ''.join(Source.from_entry(e).describe() + '\n' for e in entries)


__all__ = (
    'norm_url', 'split_channel', 'url_with_channel', 'Source',
    'effective_sources', 'Plan', 'plan_present', 'plan_absent', 'plan_exclusive', 'sources_text',
)
