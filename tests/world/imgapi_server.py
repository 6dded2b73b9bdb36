"""A local IMGAPI (Triton Images API) server for tests.

It follows /work/shared/reference/imgapi.md (IMGAPI 4.13.1 as observed on
a real server): endpoints, error codes and messages, channels, paging,
Etags, file headers. Only the Python standard library is used.

Storage (DATA_DIR/images/):
    UUID.json   the full image object (state, files, channels, plus the
                internal file fields contentMD5/mtime/stor), 2-space JSON
    UUID.file   the image file bytes
    UUID.icon   the icon bytes, if any

Images written into DATA_DIR by other tools (e.g. build_image.py) while
the server runs are picked up automatically.

Run:  python imgapi_server.py --data-dir DIR [--port 0] [--port-file F]
          [--pid-file F] [--mode public|private|dc]
          [--channels 'dev*,staging,release'] [--max-page-size N]
          [--auth-keys DIR] [fault flags]
The URL is printed on stdout line 1 once the server listens.

In-process:  srv = start_server(data_dir, mode='public', channels=None,
                                faults=None, max_page_size=None,
                                auth_keys=None, ...)
             srv.url, srv.port, srv.set_faults(**rule), srv.requests(),
             srv.stop()

HTTP Signature auth (opt-in, off by default; IMGAPI's authType
"signature", imgapi.md section 9): --auth-keys DIR (files DIR/USER.keys,
one ssh public key per line, as IMGAPI's etc/authkeys/local) or
auth_keys={user: [ssh public key lines]} (or a directory path). Then:
  - writes (POST/PUT/DELETE) need a valid signature: without an
    Authorization header 401 {"code": "UnauthorizedError",
    "message": "Unauthorized"};
  - GET /ping, /images, /images/:uuid and /channels are passive: anonymous
    is fine, but a sent Authorization header must verify;
  - GET /images/:uuid/file, /icon and /jobs are never checked.
The header is parsed as http-signature 0.10 parses it (the old Joyent
"Signature" scheme: keyId = user name, signing string "date: <Date>" unless
headers="..." says otherwise, 300 s clock skew) and IMGAPI's own checks
follow (algorithms rsa-sha1, rsa-sha256, dsa-sha1; every key of the user is
tried). 401 messages are the server's: "Unauthorized", "date was not in the
request", "bad param format", "keyId was not specified", "clock skew of
Ns was greater than 300s", 'Unauthorized ("HMAC-SHA256" is not a supported
http-signature signing algorithm)', "ecdsa-sha256 is not supported"...
An authenticated request is treated as IMGAPI treats one (ListImages any
state, inclAdminFields, "pid" and "user" in /ping); the request log entry
gets "user". POST /authkeys/reload (authenticated) rereads --auth-keys DIR.
Verification uses the `cryptography` library; without it an auth-mode
server refuses to start (the rest of the server stays standard-library
only). Not in dc mode, which IMGAPI always runs without auth.

Page cap (opt-in, off by default): --max-page-size N / max_page_size=N
makes ListImages behave like a production IMGAPI on moray, which caps a
query at 1000 rows: a request without `limit`, with `limit=0` (no limit)
or with a limit larger than N returns at most N rows (a smaller positive
limit and a negative one are unchanged). Without it the server is the
local-database IMGAPI, which has no cap. With N = 1000 a client's
sdc-clients paging loop really pages (bench/avail_bench.py uses it).

Test-only endpoints (not part of IMGAPI, never logged or faulted):
    GET /__requests      the request log (list of dicts)
    DELETE /__requests   clear it
    GET /__faults        the fault rules
    POST /__faults       set them (JSON object = one rule, list = rules,
                         {} = none; ?append=true adds instead of replacing)
    DELETE /__faults     clear them
    POST /__reload       rescan DATA_DIR now
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import email.utils
import hashlib
import http.server
import json
import math
import os
import re
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
import uuid as uuidlib
import warnings
from urllib.parse import parse_qs, unquote, urlsplit

IMGAPI_VERSION = "4.13.1"
SERVER_HEADER = "imgapi/" + IMGAPI_VERSION
UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UNSET_OWNER_UUID = "00000000-0000-0000-0000-000000000000"
DEFAULT_ADMIN_UUID = "930896af-bf8c-48d4-885c-6573a94b1853"
CHUNK = 1024 * 1024
MAX_IMAGE_SIZE = 20 * 1024 * 1024 * 1024
MAX_ICON_SIZE = 128 * 1024
MAX_JSON_BODY = 8 * 1024 * 1024
DRAIN_LIMIT = 16 * 1024 * 1024
VALID_COMPRESSIONS = ["gzip", "bzip2", "xz", "none"]
VALID_STORAGES = ["local", "manta"]
VALID_STATES = ["active", "unactivated", "disabled", "creating", "failed"]
VALID_TYPES = ["zone-dataset", "lx-dataset", "lxd", "zvol", "docker",
               "other"]
VALID_OSES = ["smartos", "linux", "windows", "bsd", "illumos", "other"]
ICON_CONTENT_TYPES = ["image/jpeg", "image/gif", "image/png"]
NAME_RE = re.compile(r"^[A-Za-z0-9._/ -]+$")
VERSION_RE = re.compile(r"^[A-Za-z0-9._/+-]+$")
PUBLISHED_AT_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
PLATFORM_RE = re.compile(r"^\d{8}T\d{6}Z$")
CHANNEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
SUPPORTED_VERSIONS = [(2, 0, 0), (1, 0, 0)]   # best first

# Serialization order of an image (Image.prototype.serialize).
IMAGE_KEY_ORDER = [
    "v", "uuid", "owner", "name", "version", "state", "disabled", "public",
    "published_at", "type", "os", "files", "acl", "description", "homepage",
    "eula", "icon", "urn", "requirements", "users", "generate_passwords",
    "inherited_directories", "origin", "nic_driver", "disk_driver",
    "cpu_type", "image_size", "tags", "billing_tags", "traits", "error",
    "channels",
]
ZVOL_FIELDS = ["nic_driver", "disk_driver", "cpu_type", "image_size"]
# Fields UpdateImage accepts (imgapi.md section 5).
UPDATABLE_FIELDS = [
    "owner", "name", "version", "description", "homepage", "eula", "public",
    "os", "acl", "requirements", "users", "tags", "generate_passwords",
    "inherited_directories", "nic_driver", "disk_driver", "cpu_type",
    "image_size", "channels",
]
ADMIN_ONLY_UPDATE_FIELDS = ["state", "error", "billing_tags", "traits"]

# Error names GET /ping?error=NAME knows (samples) or merely recognises.
PING_SAMPLES = {
    "ValidationFailed": (422, "boom", []),
    "InvalidParameter": (422, 'invalid "foo"',
                         [{"field": "foo", "code": "Invalid"}]),
    "ImageFilesImmutable": (
        422, "cannot modify files on activated image "
        "82ce32a2-9cb4-9a4c-a303-7a63254bacf4", None),
    "ImageAlreadyActivated": (
        422, 'image "ed8cd007-2065-0140-8d41-e32247b71748" is already '
        'activated', None),
    "NoActivationNoFile": (
        422, 'image "ed8cd007-2065-0140-8d41-e32247b71748" cannot be '
        'activated: it has no file', None),
    "OperatorOnly": (403, "this endpoint may only be called by an operator",
                     None),
    "ImageUuidAlreadyExists": (409, 'image uuid "undefined" already exists',
                               None),
    "StorageIsDown": (503, "storage is down at the moment", None),
    "StorageUnsupported": (503, "storage type is unsupported", None),
    "RemoteSourceError": (503, "", None),
    "InternalError": (500, "boom", None),
}
KNOWN_ERROR_NAMES = set(PING_SAMPLES) | {
    "Upload", "Download", "OwnerDoesNotExist", "AccountDoesNotExist",
    "NotImageOwner", "ImageNotShared", "NotMantaPathOwner",
    "OriginDoesNotExist", "OriginIsNotActive", "InsufficientServerVersion",
    "ImageHasDependentImages", "NotAvailable", "NotImplemented",
    "ResourceNotFound", "InvalidHeader", "ServiceUnavailableError",
    "UnauthorizedError", "BadRequestError",
}
LOGGED_HEADERS = [
    "x-request-id", "request-id", "user-agent", "accept-version", "accept",
    "accept-encoding", "content-type", "content-length", "transfer-encoding",
    "content-md5", "if-none-match", "if-match", "if-modified-since",
    "range", "expect", "connection", "date", "authorization", "host",
]


# ---------------------------------------------------------------------------
# small helpers

def now_ms():
    return int(time.time() * 1000)


def iso_from_ms(ms):
    dt = datetime.datetime.fromtimestamp(ms / 1000.0, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (int(ms) % 1000)


def iso_now():
    return iso_from_ms(now_ms())


_ISO_DATE_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$")


def parse_date_ms(value):
    """Parse a date string roughly like JS `new Date(s)`; ms or None."""
    if not isinstance(value, str):
        return None
    s = value.strip()
    m = _ISO_DATE_RE.match(s)
    if m:
        year, mon, day, hh, mi, ss, frac, tz = m.groups()
        try:
            dt = datetime.datetime(
                int(year), int(mon), int(day), int(hh or 0), int(mi or 0),
                int(ss or 0), tzinfo=datetime.timezone.utc)
        except ValueError:
            return None
        ms = int(dt.timestamp()) * 1000
        if frac:
            ms += int((frac + "00")[:3])
        if tz and tz != "Z":
            sign = -1 if tz[0] == "+" else 1
            tzd = tz[1:].replace(":", "")
            ms += sign * (int(tzd[:2]) * 60 + int(tzd[2:])) * 60000
        return ms
    try:
        dt = email.utils.parsedate_to_datetime(s)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


_JS_NUM_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def js_number(s):
    """JS Number(string): float, or NaN."""
    s = s.strip()
    if s == "":
        return 0.0
    if _JS_NUM_RE.match(s):
        return float(s)
    if re.match(r"^0[xX][0-9a-fA-F]+$", s):
        return float(int(s, 16))
    if s in ("Infinity", "+Infinity"):
        return math.inf
    if s == "-Infinity":
        return -math.inf
    return math.nan


def js_str(v):
    """String conversion like JS template/concat for scalar tag values."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        if v.is_integer():
            return str(int(v))
        return repr(v)
    return str(v)


def http_date(ts=None):
    return email.utils.formatdate(ts, usegmt=True)


def compact_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def pretty_json(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False)


def etag_of(obj):
    return hashlib.sha1(compact_json(obj).encode("utf-8")).hexdigest()


def bool_from_string(value, default, name):
    """utils.boolFromString: None -> default; 'true'/'false' or bool."""
    if value is None:
        return default
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    raise ApiError(422, "InvalidParameter",
                   'invalid value for "%s" param: %s is not a boolean'
                   % (name, json.dumps(value)),
                   [{"field": name, "code": "Invalid"}])


def canonical_image(rec):
    """Return `rec` with keys in IMGAPI serialization order."""
    out = {}
    for k in IMAGE_KEY_ORDER:
        if k in rec:
            out[k] = rec[k]
    for k in rec:
        if k not in out:
            out[k] = rec[k]
    return out


def is_activated(rec):
    if isinstance(rec.get("activated"), bool):
        return rec["activated"]
    return rec.get("state") in ("active", "disabled")


def tags_search_array(tags):
    out = []
    if isinstance(tags, dict):
        for k, v in tags.items():
            if isinstance(v, (str, int, float, bool)):
                out.append("%s=%s" % (k, js_str(v)))
            else:
                out.append("%s=" % k)
    return out


def _as_bool(v):
    if v is True or v == "true":
        return True
    return False


# ---------------------------------------------------------------------------
# errors

class ApiError(Exception):
    """An error response. `prerouting` ones lack the routed headers."""

    def __init__(self, status, code, message, errors=None, headers=None,
                 prerouting=False):
        Exception.__init__(self, "%s %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or []
        self.prerouting = prerouting

    def body(self):
        b = {"code": self.code, "message": self.message}
        if self.errors is not None:
            b["errors"] = self.errors
        return b


def validation_failed(message, errors):
    return ApiError(422, "ValidationFailed", message, errors)


def invalid_parameter(message, errors):
    return ApiError(422, "InvalidParameter", message, errors)


def not_found(message):
    return ApiError(404, "ResourceNotFound", message)


class _Abort(Exception):
    """The connection was deliberately dropped; stop handling."""


# ---------------------------------------------------------------------------
# storage

def _atomic_write(path, data):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def image_json_bytes(rec):
    return (pretty_json(canonical_image(rec)) + "\n").encode("utf-8")


def add_image_to_data_dir(data_dir, manifest, file_path=None, channels=None,
                          verify=True, mtime=None):
    """Put an image (manifest dict + optional file) into a server DATA_DIR.

    The file is copied to images/UUID.file; files[0] gets sha1/size filled
    in when missing (and checked when `verify`), plus the internal
    contentMD5/mtime/stor fields the server uses for GetImageFile headers.
    Returns the stored record. Works whether or not a server is running.
    """
    rec = copy.deepcopy(manifest)
    u = rec.get("uuid")
    if not isinstance(u, str) or not UUID_RE.match(u):
        raise ValueError("manifest has no valid uuid: %r" % (u,))
    images_dir = os.path.join(data_dir, "images")
    os.makedirs(images_dir, exist_ok=True)
    if channels is not None:
        rec["channels"] = list(channels)
    if file_path is not None:
        dest = os.path.join(images_dir, u + ".file")
        sha1 = hashlib.sha1()
        md5 = hashlib.md5()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=images_dir)
        try:
            with open(file_path, "rb") as src, os.fdopen(fd, "wb") as dst:
                while True:
                    buf = src.read(CHUNK)
                    if not buf:
                        break
                    sha1.update(buf)
                    md5.update(buf)
                    size += len(buf)
                    dst.write(buf)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        files = rec.get("files") or [{}]
        f0 = dict(files[0])
        if verify:
            if f0.get("sha1") not in (None, sha1.hexdigest()):
                raise ValueError("sha1 mismatch for %s: manifest %s, file %s"
                                 % (file_path, f0.get("sha1"),
                                    sha1.hexdigest()))
            if f0.get("size") not in (None, size):
                raise ValueError("size mismatch for %s: manifest %s, file %s"
                                 % (file_path, f0.get("size"), size))
        f0.setdefault("sha1", sha1.hexdigest())
        f0.setdefault("size", size)
        f0.setdefault("compression", "none")
        f0["contentMD5"] = base64.b64encode(md5.digest()).decode("ascii")
        f0["mtime"] = mtime or iso_now()
        f0["stor"] = "local"
        rec["files"] = [f0] + list(files[1:])
    elif "files" not in rec:
        rec["files"] = []
    rec = canonical_image(rec)
    _atomic_write(os.path.join(images_dir, u + ".json"), image_json_bytes(rec))
    return rec


class ImageStore:
    """Images in memory, persisted to DATA_DIR/images. Records are never
    mutated in place: writers deep-copy, change and `save()`."""

    def __init__(self, data_dir):
        self.data_dir = os.path.abspath(data_dir)
        self.images_dir = os.path.join(self.data_dir, "images")
        os.makedirs(self.images_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.records = {}
        self._stat = {}
        self._dir_mtime = None
        self.refresh(force=True)

    @staticmethod
    def _key(st):
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self, force=False):
        """Pick up JSON files added, replaced or removed by other tools.

        Cheap: only when the directory changed (its mtime, which is just
        jiffy-granular, so it is re-checked for 3 s after a change), and
        then by dirent inode; a file replaced by rename gets a new inode.
        `force` also stats every file, catching in-place rewrites."""
        try:
            dst = os.stat(self.images_dir)
        except FileNotFoundError:
            os.makedirs(self.images_dir, exist_ok=True)
            dst = os.stat(self.images_dir)
        recent = time.time_ns() - dst.st_mtime_ns < 3 * 10 ** 9
        if not force and not recent and dst.st_mtime_ns == self._dir_mtime:
            return
        with self.lock:
            seen = set()
            for ent in os.scandir(self.images_dir):
                name = ent.name
                if not name.endswith(".json"):
                    continue
                u = name[:-5]
                if not UUID_RE.match(u):
                    continue
                seen.add(u)
                known = self._stat.get(u) if u in self.records else None
                if known is not None and not force and \
                        known[0] == ent.inode():
                    continue
                try:
                    key = self._key(ent.stat())
                except FileNotFoundError:
                    seen.discard(u)
                    continue
                if known == key:
                    continue
                try:
                    with open(ent.path, "rb") as f:
                        rec = json.loads(f.read().decode("utf-8"))
                    if not isinstance(rec, dict):
                        raise ValueError("not an object")
                except (OSError, ValueError) as e:
                    sys.stderr.write("imgapi_server: skipping %s: %s\n"
                                     % (ent.path, e))
                    continue
                rec["uuid"] = u
                if not isinstance(rec.get("files"), list):
                    rec["files"] = []
                self.records[u] = rec
                self._stat[u] = key
            for u in list(self.records):
                if u not in seen:
                    del self.records[u]
                    self._stat.pop(u, None)
            self._dir_mtime = dst.st_mtime_ns

    def get(self, u):
        with self.lock:
            return self.records.get(u)

    def all(self):
        with self.lock:
            return list(self.records.values())

    def save(self, rec):
        rec = canonical_image(rec)
        path = os.path.join(self.images_dir, rec["uuid"] + ".json")
        with self.lock:
            _atomic_write(path, image_json_bytes(rec))
            self.records[rec["uuid"]] = rec
            try:
                self._stat[rec["uuid"]] = self._key(os.stat(path))
            except OSError:
                pass
        return rec

    def delete(self, u):
        with self.lock:
            for ext in (".json", ".file", ".icon"):
                try:
                    os.unlink(os.path.join(self.images_dir, u + ext))
                except FileNotFoundError:
                    pass
            self.records.pop(u, None)
            self._stat.pop(u, None)

    def file_path(self, u):
        return os.path.join(self.images_dir, u + ".file")

    def icon_path(self, u):
        return os.path.join(self.images_dir, u + ".icon")


# ---------------------------------------------------------------------------
# faults

FAULT_KEYS = {
    "path": str, "method": str, "fail_5xx": int, "retry_after": (int, float),
    "truncate_after": int, "corrupt": bool, "corrupt_offset": int,
    "reset": bool, "reset_after": int, "slow": (int, float),
    "slow_body_bps": int, "count": int,
}


class FaultRule:
    """One fault rule. Applies to requests whose method (optional) and path
    (optional regex, re.search on the path without query) match.

    fail_5xx N     the next N matching requests get 503
                   ServiceUnavailableError (Retry-After: retry_after)
    truncate_after send the full Content-Length, then close after N bytes
    corrupt        flip a byte of GetImageFile bodies (at corrupt_offset,
                   default the middle); same length, different sha1
    reset          send reset_after body bytes (default half), then RST
    slow           seconds to wait before the response headers
    slow_body_bps  throttle the body to this many bytes per second
    count          how many requests the non-5xx switches apply to
                   (default: unlimited); 5xx requests do not use it up
    """

    def __init__(self, **kw):
        clean = {}
        for k, v in kw.items():
            if k not in FAULT_KEYS:
                raise ValueError("unknown fault switch %r (known: %s)"
                                 % (k, ", ".join(sorted(FAULT_KEYS))))
            if v is not None and not isinstance(v, FAULT_KEYS[k]):
                if FAULT_KEYS[k] is bool and v in (0, 1, "true", "false"):
                    v = v in (1, "true")
                elif FAULT_KEYS[k] is not bool and FAULT_KEYS[k] is not str \
                        and isinstance(v, str):
                    v = float(v) if "." in v else int(v)
                else:
                    raise ValueError("fault switch %r: bad value %r" % (k, v))
            clean[k] = v
        kw = clean
        if kw.get("path"):
            re.compile(kw["path"])
        self.path = kw.get("path")
        self._path_re = re.compile(self.path) if self.path else None
        self.method = kw.get("method")
        self.fail_5xx = int(kw.get("fail_5xx") or 0)
        self.retry_after = kw.get("retry_after")
        self.truncate_after = kw.get("truncate_after")
        self.corrupt = bool(kw.get("corrupt"))
        self.corrupt_offset = kw.get("corrupt_offset")
        self.reset = bool(kw.get("reset"))
        self.reset_after = kw.get("reset_after")
        self.slow = float(kw.get("slow") or 0)
        self.slow_body_bps = kw.get("slow_body_bps")
        self.count = kw.get("count")
        self.applied = 0

    def has_other(self):
        return (self.truncate_after is not None or self.corrupt or
                self.reset or self.slow > 0 or bool(self.slow_body_bps))

    def matches(self, method, path):
        if self.method and self.method.upper() != method:
            return False
        if self._path_re and not self._path_re.search(path):
            return False
        return True

    def describe(self):
        d = {}
        for k in FAULT_KEYS:
            v = getattr(self, k)
            if v is None or v is False or (k in ("slow", "fail_5xx")
                                           and not v):
                continue
            d[k] = v
        d["applied"] = self.applied
        return d


class AppliedFaults:
    def __init__(self):
        self.fail = False
        self.retry_after = None
        self.truncate_after = None
        self.corrupt = False
        self.corrupt_offset = None
        self.reset = False
        self.reset_after = None
        self.slow = 0.0
        self.slow_body_bps = None
        self.names = []

    def affects_body(self, is_file):
        return (self.truncate_after is not None or self.reset or
                bool(self.slow_body_bps) or (self.corrupt and is_file))


class FaultSet:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def set(self, rules):
        with self.lock:
            self.rules = list(rules)

    def add(self, rule):
        with self.lock:
            self.rules.append(rule)

    def describe(self):
        with self.lock:
            return [r.describe() for r in self.rules]

    def match(self, method, path):
        with self.lock:
            if not self.rules:
                return None
            ap = AppliedFaults()
            hit = False
            for r in self.rules:
                if not r.matches(method, path):
                    continue
                if r.fail_5xx > 0:
                    r.fail_5xx -= 1
                    r.applied += 1
                    ap.fail = True
                    ap.retry_after = r.retry_after
                    ap.names = ["fail_5xx"]
                    return ap
                if not r.has_other():
                    continue
                if r.count is not None:
                    if r.count <= 0:
                        continue
                    r.count -= 1
                r.applied += 1
                hit = True
                if r.truncate_after is not None:
                    ap.truncate_after = r.truncate_after
                    ap.names.append("truncate_after")
                if r.corrupt:
                    ap.corrupt = True
                    ap.corrupt_offset = r.corrupt_offset
                    ap.names.append("corrupt")
                if r.reset:
                    ap.reset = True
                    ap.reset_after = r.reset_after
                    ap.names.append("reset")
                if r.slow:
                    ap.slow = max(ap.slow, r.slow)
                    ap.names.append("slow")
                if r.slow_body_bps:
                    ap.slow_body_bps = r.slow_body_bps
                    ap.names.append("slow_body_bps")
            return ap if hit else None


def rules_from_json(body):
    if body is None:
        return []
    if isinstance(body, dict) and "rules" in body:
        body = body["rules"]
    if isinstance(body, dict):
        return [FaultRule(**body)] if body else []
    if isinstance(body, list):
        return [FaultRule(**r) for r in body]
    raise ValueError("faults must be an object or a list of objects")


# ---------------------------------------------------------------------------
# request log

class RequestLog:
    def __init__(self, limit=20000):
        self.lock = threading.Lock()
        self.entries = []
        self.limit = limit
        self.seq = 0

    def add(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.entries.append(entry)
            if len(self.entries) > self.limit:
                del self.entries[:len(self.entries) - self.limit]
        return entry

    def list(self):
        with self.lock:
            return [dict(e) for e in self.entries]

    def clear(self):
        with self.lock:
            self.entries = []


# ---------------------------------------------------------------------------
# request body

class BodyReader:
    """Reads a request body with Content-Length or chunked encoding."""

    def __init__(self, handler):
        self.rfile = handler.rfile
        te = (handler.headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        self.length = None
        self.remaining = 0
        self.chunk_left = 0
        self.done = False
        self.received = 0
        self.bad_length = False
        if not self.chunked:
            cl = handler.headers.get("Content-Length")
            if cl is not None:
                try:
                    self.length = int(cl.strip())
                    if self.length < 0:
                        raise ValueError(cl)
                except ValueError:
                    self.bad_length = True
                    self.length = 0
                self.remaining = self.length
            self.done = self.remaining == 0

    @property
    def present(self):
        return self.chunked or bool(self.length)

    def _readline(self):
        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionError("connection closed in chunked body")
        return line

    def read(self, n=CHUNK):
        """Up to n bytes; b'' at the end. ConnectionError if cut short."""
        if self.done:
            return b""
        if not self.chunked:
            data = self.rfile.read1(min(n, self.remaining)) \
                if hasattr(self.rfile, "read1") else \
                self.rfile.read(min(n, self.remaining))
            if not data:
                raise ConnectionError("connection closed after %d of %d "
                                      "body bytes"
                                      % (self.received, self.length))
            self.remaining -= len(data)
            self.received += len(data)
            if self.remaining == 0:
                self.done = True
            return data
        if self.chunk_left == 0:
            line = self._readline().split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise ConnectionError("bad chunk size line %r" % line)
            if size == 0:
                while self._readline() not in (b"\r\n", b"\n"):
                    pass
                self.done = True
                return b""
            self.chunk_left = size
        data = self.rfile.read1(min(n, self.chunk_left)) \
            if hasattr(self.rfile, "read1") else \
            self.rfile.read(min(n, self.chunk_left))
        if not data:
            raise ConnectionError("connection closed in chunked body")
        self.chunk_left -= len(data)
        self.received += len(data)
        if self.chunk_left == 0:
            self._readline()
        return data

    def read_all(self, limit=MAX_JSON_BODY):
        parts = []
        total = 0
        while True:
            data = self.read(CHUNK)
            if not data:
                break
            total += len(data)
            if total > limit:
                raise ApiError(413, "RequestEntityTooLarge",
                               "request body too large")
            parts.append(data)
        return b"".join(parts)

    def drain(self, limit=DRAIN_LIMIT):
        """Read and drop the rest of the body; False if it was too big or
        the connection broke."""
        total = 0
        try:
            while not self.done:
                data = self.read(CHUNK)
                total += len(data)
                if total > limit:
                    return False
        except (ConnectionError, OSError, socket.timeout):
            return False
        return True


# ---------------------------------------------------------------------------
# Accept-Version (a small node-semver subset)

def _parse_ver(s):
    s = s.strip().lstrip("v=")
    parts = s.split(".")
    out = []
    for p in parts[:3]:
        if p in ("x", "X", "*"):
            out.append(None)
        elif p.isdigit():
            out.append(int(p))
        else:
            raise ValueError(s)
    while len(out) < 3:
        out.append(None)
    return tuple(out)


def _comparator_ok(comp, ver):
    comp = comp.strip()
    if comp in ("", "*", "x", "X", "latest"):
        return True
    m = re.match(r"^(>=|<=|>|<|=|~|\^)?\s*(.*)$", comp)
    op, rest = m.group(1) or "", m.group(2)
    want = _parse_ver(rest)
    fixed = [w if w is not None else 0 for w in want]
    if op in ("", "="):
        return all(w is None or w == v for w, v in zip(want, ver))
    if op == "~":
        if want[1] is None:
            return ver[0] == fixed[0]
        return ver[:2] == tuple(fixed[:2]) and ver >= tuple(fixed)
    if op == "^":
        return ver[0] == fixed[0] and ver >= tuple(fixed)
    if op == ">=":
        return ver >= tuple(fixed)
    if op == ">":
        return ver > tuple(fixed)
    if op == "<=":
        return ver <= tuple(fixed)
    if op == "<":
        return ver < tuple(fixed)
    return False


def negotiate_version(header):
    """Highest supported API major for an Accept-Version range, or None."""
    if header is None:
        header = "~1"
    try:
        for alt in header.split("||"):
            comps = alt.split()
            for v in SUPPORTED_VERSIONS:
                if all(_comparator_ok(c, v) for c in comps) if comps \
                        else True:
                    return v[0]
    except ValueError:
        return None
    return None


# ---------------------------------------------------------------------------
# the application state

def parse_channels(spec):
    """'dev*,staging,release' or 'dev*:Desc,...' or list -> channel list."""
    if spec in (None, "", []):
        return None
    out = []
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    for it in items:
        if isinstance(it, dict):
            ch = {"name": it["name"],
                  "description": it.get("description",
                                        "%s channel" % it["name"])}
            if it.get("default"):
                ch["default"] = True
        else:
            name, _sep, desc = it.partition(":")
            name = name.strip()
            default = name.endswith("*")
            name = name.rstrip("*")
            ch = {"name": name,
                  "description": desc.strip() or "%s channel" % name}
            if default:
                ch["default"] = True
        if not CHANNEL_NAME_RE.match(ch["name"]):
            raise ValueError("invalid channel name %r" % ch["name"])
        out.append(ch)
    if sum(1 for c in out if c.get("default")) > 1:
        raise ValueError("more than one default channel")
    return out


# ---------------------------------------------------------------------------
# HTTP Signature auth (imgapi.md section 9)

# http-signature 0.10's own algorithm list (parseRequest)
HTTPSIG_ALGORITHMS = ["rsa-sha1", "rsa-sha256", "rsa-sha512", "dsa-sha1",
                      "hmac-sha1", "hmac-sha256", "hmac-sha512"]
# IMGAPI's list, checked after parsing (upper-cased, as parsed.algorithm)
IMGAPI_SIG_ALGORITHMS = ["RSA-SHA1", "RSA-SHA256", "DSA-SHA1"]
CLOCK_SKEW = 300


class HttpSigError(Exception):
    """An http-signature parse error; the message goes in the 401."""


def _load_crypto():
    """The cryptography pieces for verification, or None."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
    except ImportError:
        return None
    return {"InvalidSignature": InvalidSignature, "hashes": hashes,
            "serialization": serialization, "padding": padding, "rsa": rsa,
            "dsa": dsa}


def parse_signature_request(headers, method, url, http_version="1.1",
                            now=None):
    """http-signature 0.10 parseRequest: (keyId, algorithm upper-cased,
    signature, signing string) or HttpSigError. `headers`: lower-case
    name -> value."""
    authz = headers.get("authorization")
    if not authz:
        raise HttpSigError("no authorization header present in the request")
    scheme = ""
    params = {}
    in_params = False
    sub = "name"
    name = value = ""
    for c in authz:
        if not in_params:
            if c != " ":
                scheme += c
            else:
                in_params = True
            continue
        if sub == "name":
            if "A" <= c <= "Z" or "a" <= c <= "z":
                name += c
            elif c == "=":
                if not name:
                    raise HttpSigError("bad param format")
                sub = "quote"
            else:
                raise HttpSigError("bad param format")
        elif sub == "quote":
            if c == '"':
                value = ""
                sub = "value"
            else:
                raise HttpSigError("bad param format")
        elif sub == "value":
            if c == '"':
                params[name] = value
                sub = "comma"
            else:
                value += c
        else:   # comma
            if c == ",":
                name = ""
                sub = "name"
            else:
                raise HttpSigError("bad param format")
    required = ["x-date" if headers.get("x-date") else "date"]
    if params.get("headers"):
        signed = params["headers"].split(" ")
    else:
        signed = ["x-date" if headers.get("x-date") else "date"]
    if scheme != "Signature":
        raise HttpSigError('scheme was not "Signature"')
    if not params.get("keyId"):
        raise HttpSigError("keyId was not specified")
    if not params.get("algorithm"):
        raise HttpSigError("algorithm was not specified")
    if not params.get("signature"):
        raise HttpSigError("signature was not specified")
    algorithm = params["algorithm"].lower()
    if algorithm not in HTTPSIG_ALGORITHMS:
        raise HttpSigError("%s is not supported" % algorithm)
    lines = []
    for h in signed:
        h = h.lower()
        if h == "request-line":
            lines.append("%s %s HTTP/%s" % (method, url, http_version))
        else:
            v = headers.get(h)
            if not v:
                raise HttpSigError("%s was not in the request" % h)
            lines.append("%s: %s" % (h, v))
    date = headers.get("x-date") or headers.get("date")
    if date:
        try:
            when = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            when = None   # JS: new Date(junk) is NaN, and NaN > x is false
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            ref = now if now is not None else time.time()
            skew = abs(ref - when.timestamp())
            if skew > CLOCK_SKEW:
                raise HttpSigError("clock skew of %ss was greater than %ds"
                                   % (js_str(round(skew * 1000) / 1000.0),
                                      CLOCK_SKEW))
    for h in required:
        if h not in [x.lower() for x in signed]:
            raise HttpSigError("%s was not a signed header" % h)
    return (params["keyId"], algorithm.upper(), params["signature"],
            "\n".join(lines))


def load_auth_keys_dir(path):
    """{user: [ssh public key lines]} from DIR/USER.keys files."""
    keys = {}
    for name in sorted(os.listdir(path)):
        if not name.endswith(".keys"):
            continue
        with open(os.path.join(path, name)) as f:
            lines = [ln.strip() for ln in f
                     if ln.strip() and not ln.lstrip().startswith("#")]
        keys[name[:-len(".keys")]] = lines
    return keys


class AuthKeys:
    """The user -> public keys map of an auth-mode server."""

    def __init__(self, source):
        self.crypto = _load_crypto()
        if self.crypto is None:
            raise RuntimeError(
                "HTTP Signature auth (auth_keys/--auth-keys) needs the "
                "Python cryptography library, which is not installed")
        self.dir = source if isinstance(source, str) else None
        self.lock = threading.Lock()
        self.keys = {}
        self.load({} if self.dir else source)

    def load(self, mapping=None):
        if self.dir:
            mapping = load_auth_keys_dir(self.dir)
        parsed = {}
        ser = self.crypto["serialization"]
        for user, lines in (mapping or {}).items():
            if isinstance(lines, str):
                lines = [lines]
            out = []
            for line in lines:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")   # ssh-dss
                        out.append(ser.load_ssh_public_key(
                            line.strip().encode("ascii")))
                except Exception:   # skipped, as IMGAPI skips a "bad ssh key"
                    continue
            parsed[user] = out
        with self.lock:
            self.keys = parsed

    def get(self, user):
        with self.lock:
            return self.keys.get(user)

    def verify(self, key, algorithm, signing_string, signature):
        c = self.crypto
        try:
            sig = base64.b64decode(signature)
        except (ValueError, TypeError):
            return False
        data = signing_string.encode("utf-8")
        hash_cls = {"SHA1": c["hashes"].SHA1,
                    "SHA256": c["hashes"].SHA256}[algorithm.split("-")[1]]
        try:
            if algorithm.startswith("RSA-"):
                if not isinstance(key, c["rsa"].RSAPublicKey):
                    return False
                key.verify(sig, data, c["padding"].PKCS1v15(), hash_cls())
            elif algorithm.startswith("DSA-"):
                if not isinstance(key, c["dsa"].DSAPublicKey):
                    return False
                key.verify(sig, data, hash_cls())
            else:
                return False
        except (c["InvalidSignature"], ValueError, TypeError):
            return False
        return True


class App:
    def __init__(self, data_dir, mode="public", channels=None,
                 assume_auth=False, admin_uuid=DEFAULT_ADMIN_UUID,
                 max_file_size=MAX_IMAGE_SIZE, verbose=False, faults=None,
                 max_page_size=None, auth_keys=None):
        if mode not in ("public", "private", "dc"):
            raise ValueError("mode must be public, private or dc")
        if auth_keys is not None and mode == "dc":
            raise ValueError("IMGAPI in dc mode runs without auth: "
                             "auth_keys needs mode public or private")
        # None: authType none; else HTTP Signature auth with these keys
        self.auth = AuthKeys(auth_keys) if auth_keys is not None else None
        if max_page_size is not None and int(max_page_size) < 1:
            raise ValueError("max_page_size must be at least 1")
        self.mode = mode
        # ListImages row cap (moray's 1000); None = no cap (local database)
        self.max_page_size = int(max_page_size) if max_page_size else None
        self.store = ImageStore(data_dir)
        self.channels = parse_channels(channels)
        self.channel_by_name = None
        self.default_channel = None
        if self.channels:
            self.channel_by_name = {c["name"]: c for c in self.channels}
            for c in self.channels:
                if c.get("default"):
                    self.default_channel = c
        self.assume_auth = assume_auth
        self.admin_uuid = admin_uuid
        self.max_file_size = max_file_size
        self.verbose = verbose
        self.faults = FaultSet()
        if faults:
            self.faults.set(faults)
        self.reqlog = RequestLog()
        self.stop_event = threading.Event()
        self.hostname = socket.gethostname()

    def image_channels(self, rec):
        ch = rec.get("channels")
        if isinstance(ch, list):
            return ch
        if self.default_channel:
            return [self.default_channel["name"]]
        return []

    def serialize(self, rec, v2, admin=False):
        out = {}
        v = rec.get("v", 2)
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        out["v"] = v
        for k in ("uuid", "owner", "name", "version", "state"):
            if rec.get(k) is not None:
                out[k] = rec[k]
        out["disabled"] = _as_bool(rec.get("disabled", False))
        out["public"] = _as_bool(rec.get("public", False))
        if rec.get("published_at"):
            out["published_at"] = rec["published_at"]
        for k in ("type", "os"):
            if rec.get(k) is not None and rec.get(k) != "null":
                out[k] = rec[k]
        files = []
        for f in rec.get("files") or []:
            fo = {"sha1": f.get("sha1"), "size": f.get("size"),
                  "compression": f.get("compression")}
            fo = {k: val for k, val in fo.items() if val is not None}
            if f.get("dataset_guid") is not None:
                fo["dataset_guid"] = f["dataset_guid"]
            for k in ("digest", "uncompressedDigest"):
                if f.get(k) is not None:
                    fo[k] = f[k]
            if admin:
                fo["stor"] = f.get("stor", "local")
            files.append(fo)
        out["files"] = files
        if rec.get("acl"):
            out["acl"] = rec["acl"]
        for k in ("description", "homepage", "eula"):
            if rec.get(k):
                out[k] = rec[k]
        if rec.get("icon"):
            out["icon"] = True
        if rec.get("urn"):
            out["urn"] = rec["urn"]
        for k in ("requirements", "users"):
            if rec.get(k) is not None:
                out[k] = rec[k]
        if rec.get("generate_passwords"):
            out["generate_passwords"] = _as_bool(rec["generate_passwords"])
        for k in ("inherited_directories", "origin", "nic_driver",
                  "disk_driver", "cpu_type"):
            if rec.get(k):
                out[k] = rec[k]
        if rec.get("image_size") is not None:
            out["image_size"] = rec["image_size"]
        if rec.get("tags") is not None:
            out["tags"] = rec["tags"]
        if self.mode != "public":
            if rec.get("billing_tags"):
                out["billing_tags"] = rec["billing_tags"]
            if rec.get("traits"):
                out["traits"] = rec["traits"]
        if rec.get("state") == "failed" and rec.get("error"):
            out["error"] = rec["error"]
        if v2 and self.channel_by_name is not None:
            out["channels"] = self.image_channels(rec)
        return out

    # -- validation (imgmanifest subset) --

    def validate(self, rec):
        errs = []

        def err(field, code="Invalid", message=None):
            e = {"field": field, "code": code}
            if message:
                e["message"] = message
            errs.append(e)

        v = rec.get("v")
        if v is None:
            err("v", "MissingParameter")
        elif isinstance(v, bool) or not isinstance(v, (int, float, str)) or \
                (isinstance(v, str) and not v.isdigit()) or \
                (not isinstance(v, str) and v < 0):
            err("v", message='"v" must be a positive integer')
        for f in ("uuid", "owner"):
            val = rec.get(f)
            if val is None:
                err(f, "MissingParameter")
            elif not isinstance(val, str) or not UUID_RE.match(val):
                err(f)
        name = rec.get("name")
        if name is None:
            err("name", "MissingParameter")
        elif not isinstance(name, str) or len(name) > 512:
            err("name", message="image name is too long, max 512 characters")
        elif not NAME_RE.match(name):
            err("name", message='image name has invalid characters (only '
                'alpha-numeric characters and " ", ".", "-", "_" and "/" '
                'are allowed)')
        ver = rec.get("version")
        if ver is None:
            err("version", "MissingParameter")
        elif not isinstance(ver, str) or len(ver) > 128:
            err("version",
                message="image version is too long, max 128 characters")
        elif not VERSION_RE.match(ver):
            err("version", message='image version has invalid characters '
                '(only alpha-numeric characters and ".", "-", "_" and "/" '
                'are allowed)')
        desc = rec.get("description")
        if desc is not None and (not isinstance(desc, str) or
                                 len(desc) > 512):
            err("description", message="image description is too long, "
                "max 512 characters")
        for f, label in (("homepage", "homepage"), ("eula", "EULA")):
            val = rec.get(f)
            if val is None:
                continue
            if not isinstance(val, str) or \
                    not re.match(r"^https?://", val):
                err(f, message="invalid image %s URL protocol" % label)
            elif len(val) > 128:
                err(f, message="image %s URL is too long (max 128 "
                    "characters)" % label)
        for f in ("disabled", "public", "generate_passwords"):
            val = rec.get(f)
            if val is not None and val not in (True, False, "true", "false"):
                err(f)
        if rec.get("public") is not None and \
                rec.get("public") in (True, False, "true", "false"):
            pub = _as_bool(rec["public"])
            if self.mode == "public" and not pub:
                err("public", message="private images are not allowed on "
                    "a public Images API")
            elif self.mode == "private" and pub:
                err("public", message="public images are not allowed on "
                    "a private Images API")
        state = rec.get("state")
        if state not in VALID_STATES:
            err("state", "MissingParameter" if state is None else "Invalid")
        pa = rec.get("published_at")
        if pa is None and is_activated(rec):
            err("published_at", "MissingParameter",
                'if activated is "true" published_at must be present')
        elif pa is not None and (not isinstance(pa, str) or
                                 not PUBLISHED_AT_RE.match(pa)):
            err("published_at", message='published_at date not in '
                '"YYYY-MM-DDTHH:MM:SS(.SSS)Z" format')
        placeholder = state in ("creating", "failed")
        typ = rec.get("type")
        if typ is None:
            err("type", "MissingParameter")
        elif not (typ == "null" and placeholder) and typ not in VALID_TYPES:
            err("type", message='invalid image type, "%s", must be one of: '
                '%s' % (typ, ", ".join(VALID_TYPES)))
        os_ = rec.get("os")
        if os_ is None:
            err("os", "MissingParameter")
        elif not (os_ == "null" and placeholder) and os_ not in VALID_OSES:
            err("os", message='invalid image os, "%s", must be one of: %s'
                % (os_, ", ".join(VALID_OSES)))
        for f in ZVOL_FIELDS:
            val = rec.get(f)
            if val is None:
                if typ == "zvol":
                    err(f, "MissingParameter")
            elif typ != "zvol":
                err(f, message='invalid image %s: "%s" (cannot have a value '
                    'when image type is not zvol)' % (f, val))
            elif f == "image_size":
                if isinstance(val, bool) or not isinstance(val, int) or \
                        val <= 0:
                    err(f, message='invalid image image_size: "%s" (must be '
                        'a positive integer)' % (val,))
            elif not isinstance(val, str):
                err(f, message='invalid image %s: "%s" (must be a string)'
                    % (f, val))
        origin = rec.get("origin")
        if origin is not None and (not isinstance(origin, str) or
                                   not UUID_RE.match(origin)):
            err("origin")
        acl = rec.get("acl")
        if acl is not None and (not isinstance(acl, list) or not all(
                isinstance(a, str) and UUID_RE.match(a) for a in acl)):
            err("acl")
        req = rec.get("requirements")
        if req is not None:
            if not isinstance(req, dict):
                err("requirements")
            else:
                for f in ("min_ram", "max_ram"):
                    if f in req and (isinstance(req[f], bool) or
                                     not isinstance(req[f], int) or
                                     req[f] <= 0):
                        err("requirements.%s" % f)
                for f in ("min_platform", "max_platform"):
                    if f in req:
                        p = req[f]
                        if not isinstance(p, dict) or not all(
                                isinstance(k, str) and isinstance(pv, str)
                                and PLATFORM_RE.match(pv)
                                for k, pv in p.items()):
                            err("requirements.%s" % f)
                if "networks" in req and not isinstance(req["networks"],
                                                        list):
                    err("requirements.networks")
        users = rec.get("users")
        if users is not None and (not isinstance(users, list) or not all(
                isinstance(u, dict) and isinstance(u.get("name"), str)
                for u in users)):
            err("users")
        for f in ("billing_tags", "inherited_directories"):
            val = rec.get(f)
            if val is not None and (not isinstance(val, list) or not all(
                    isinstance(x, str) for x in val)):
                err(f)
        for f in ("tags", "traits"):
            val = rec.get(f)
            if val is not None and not isinstance(val, dict):
                err(f)
        icon = rec.get("icon")
        if icon and not (isinstance(icon, dict) and icon.get("contentMD5")):
            err("icon", message='invalid image "icon": icon missing '
                '"contentMD5" field')
        ch = rec.get("channels")
        if ch is not None and self.channel_by_name is not None:
            if not isinstance(ch, list) or not all(
                    c in self.channel_by_name for c in ch):
                err("channels")
        if errs:
            raise validation_failed(
                "invalid image data: " + ", ".join(e["field"] for e in errs),
                errs)


# ---------------------------------------------------------------------------
# HTTP server

class ImgapiHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, app):
        self.app = app
        self._conns = set()
        self._conns_lock = threading.Lock()
        http.server.ThreadingHTTPServer.__init__(self, addr, handler)

    def server_bind(self):
        # Skip HTTPServer.server_bind's getfqdn() (slow without DNS).
        import socketserver
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def get_request(self):
        sock, addr = http.server.ThreadingHTTPServer.get_request(self)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        with self._conns_lock:
            self._conns.add(sock)
        return sock, addr

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        http.server.ThreadingHTTPServer.shutdown_request(self, request)

    def close_all_connections(self):
        with self._conns_lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = SERVER_HEADER
    sys_version = ""
    timeout = 300

    # -- plumbing --

    @property
    def app(self):
        return self.server.app

    def log_message(self, fmt, *args):
        if self.server.app.verbose:
            sys.stderr.write("imgapi_server: %s - %s\n"
                             % (self.address_string(), fmt % args))

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def qget(self, name):
        vals = self.query.get(name)
        return vals[0] if vals else None

    def _sleep(self, seconds):
        if seconds > 0 and self.app.stop_event.wait(seconds):
            self.close_connection = True
            raise _Abort()

    def _dispatch(self):
        self._t0 = time.monotonic()
        self._status_sent = None
        self._faults = None
        self._etag = None
        self.remote_user = None
        self._req_id = (self.headers.get("x-request-id") or
                        self.headers.get("request-id") or
                        str(uuidlib.uuid4()))
        split = urlsplit(self.path)
        self.req_path = split.path
        self.req_url = self.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.body = BodyReader(self)
        entry = self._log_entry = None
        control = self.req_path.startswith("/__")
        if not control:
            hdrs = {}
            for h in LOGGED_HEADERS:
                val = self.headers.get(h)
                if val is not None:
                    hdrs[h] = val
            entry = self.app.reqlog.add({
                "time": iso_now(), "method": self.command, "path": self.path,
                "route": self.req_path, "headers": hdrs, "status": None,
                "faults": []})
            self._log_entry = entry
            self.app.store.refresh()
            self._faults = self.app.faults.match(self.command, self.req_path)
            if self._faults:
                entry["faults"] = list(self._faults.names)
        try:
            try:
                if self.body.bad_length:
                    raise ApiError(400, "BadRequestError",
                                   "invalid Content-Length header",
                                   prerouting=True)
                if control:
                    self._control()
                elif self._faults and self._faults.fail:
                    hdrs = []
                    if self._faults.retry_after is not None:
                        ra = self._faults.retry_after
                        hdrs.append(("Retry-After",
                                     str(int(ra) if float(ra).is_integer()
                                         else ra)))
                    raise ApiError(503, "ServiceUnavailableError",
                                   "service unavailable (injected fault)",
                                   headers=hdrs)
                else:
                    self._route()
            except ApiError as e:
                if self._status_sent is not None:
                    raise _Abort()
                self._send_error(e)
        except _Abort:
            self.close_connection = True
        except (ConnectionError, BrokenPipeError, socket.timeout, OSError) \
                as e:
            if self.app.verbose:
                sys.stderr.write("imgapi_server: connection error: %s\n" % e)
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            if self._status_sent is None:
                try:
                    self._send_json(500, {"code": "InternalError",
                                          "message": "internal error"})
                except Exception:
                    pass
            self.close_connection = True
        finally:
            if entry is not None:
                entry["status"] = self._status_sent
                entry["request_body_bytes"] = self.body.received
            if not self.body.done:
                self.close_connection = True

    def _begin(self, status, headers=(), routed=True):
        """Send the status line and headers."""
        if not self.body.done and not self.body.drain():
            self.close_connection = True
        if self._faults and self._faults.slow:
            self._sleep(self._faults.slow)
        if self._log_entry is not None:
            # before the client can see the response
            self._log_entry["status"] = status
            self._log_entry["request_body_bytes"] = self.body.received
        self.send_response_only(status)
        if routed:
            self.send_header("Server", SERVER_HEADER)
        self.send_header("Date", http_date())
        for k, v in headers:
            self.send_header(k, v)
        if routed:
            self.send_header("x-request-id", self._req_id)
            self.send_header("x-response-time", str(int(
                (time.monotonic() - self._t0) * 1000)))
            self.send_header("x-server-name", self.app.hostname)
        self.send_header("Connection",
                         "close" if self.close_connection else "keep-alive")
        self.end_headers()
        self._status_sent = status

    def _send_json(self, status, obj, headers=(), routed=True):
        body = pretty_json(obj).encode("utf-8")
        hdrs = [("Content-Type", "application/json"),
                ("Content-Length", str(len(body)))] + list(headers)
        self._begin(status, hdrs, routed)
        if self.command != "HEAD":
            self._write_body([body], len(body), is_file=False)

    def _send_image(self, rec, status=200):
        ser = self.app.serialize(rec, self.api_v2)
        self._send_json(status, ser, [("Etag", etag_of(ser))])

    def _send_error(self, e):
        self._send_json(e.status, e.body(), e.headers,
                        routed=not e.prerouting)

    def _send_empty(self, status, headers=()):
        self._begin(status, list(headers))

    def _rst(self):
        s = self.connection
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            fd = s.detach()
            os.close(fd)
        except OSError:
            pass
        raise _Abort()

    def _write_body(self, chunks, length, is_file, fileobj=None):
        """Write a body of `length` bytes from `fileobj` or the iterable
        `chunks`, applying body faults."""
        f = self._faults
        sock = self.connection
        if f is None or not f.affects_body(is_file):
            if fileobj is not None:
                sent = 0
                if length > 0:
                    sent = sock.sendfile(fileobj, 0, length)
                if sent < length:
                    self.close_connection = True   # file shorter than said
            else:
                for c in chunks:
                    sock.sendall(c)
            return
        if fileobj is not None:
            def gen():
                while True:
                    b = fileobj.read(CHUNK)
                    if not b:
                        return
                    yield b
            chunks = gen()
        limit = length
        end_action = None
        if f.truncate_after is not None and f.truncate_after < length:
            limit = max(0, f.truncate_after)
            end_action = "fin"
        if f.reset:
            ra = f.reset_after if f.reset_after is not None else length // 2
            ra = max(0, min(ra, length))
            if ra <= limit:
                limit = ra
                end_action = "rst"
        corrupt_at = None
        if f.corrupt and is_file and length > 0:
            corrupt_at = f.corrupt_offset if f.corrupt_offset is not None \
                else length // 2
            corrupt_at = max(0, min(corrupt_at, length - 1))
        bps = f.slow_body_bps
        piece = CHUNK if not bps else max(1, min(CHUNK, bps // 20))
        sent = 0
        t0 = time.monotonic()
        buf = b""
        it = iter(chunks)
        while sent < limit:
            if not buf:
                buf = next(it, b"")
                if not buf:
                    break
            data, buf = buf[:min(piece, limit - sent)], \
                buf[min(piece, limit - sent):]
            if corrupt_at is not None and sent <= corrupt_at < \
                    sent + len(data):
                ba = bytearray(data)
                ba[corrupt_at - sent] ^= 0xFF
                data = bytes(ba)
            sock.sendall(data)
            sent += len(data)
            if bps:
                delay = t0 + sent / float(bps) - time.monotonic()
                if delay > 0:
                    self._sleep(delay)
        if end_action == "rst":
            self._rst()
        if end_action == "fin" or sent < length:
            self.close_connection = True

    # -- request helpers --

    def json_body(self):
        raw = self.body.read_all()
        if not raw.strip():
            return None
        ct = (self.headers.get("Content-Type") or "").split(";")[0]
        ct = ct.strip().lower()
        if ct and ct != "application/json" and not ct.endswith("+json"):
            raise ApiError(400, "InvalidContent",
                           'unsupported Content-Type "%s" for a JSON body '
                           '(send "Content-Type: application/json")' % ct)
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "InvalidContent", "Invalid JSON: %s" % e)

    def req_channel(self, allow_star):
        """Channel for this request: a channel dict, '*' or None."""
        app = self.app
        if app.channel_by_name is None:
            return None
        name = self.qget("channel")
        if not name:
            if app.default_channel:
                return app.default_channel
            raise validation_failed(
                "channel not specified and the server has no default "
                "channel", [{"field": "channel", "code": "MissingParameter"}])
        if name == "*" and allow_star:
            return "*"
        if name not in app.channel_by_name:
            raise validation_failed("unknown channel: " + name,
                                    [{"field": "channel", "code": "Invalid"}])
        return app.channel_by_name[name]

    def account_param(self):
        acc = self.qget("account")
        if acc and not UUID_RE.match(acc):
            raise invalid_parameter('invalid "account": not a UUID: "%s"'
                                    % acc,
                                    [{"field": "account", "code": "Invalid"}])
        return acc or None

    @property
    def authed(self):
        """An authenticated request (or a server told to assume one)."""
        return self.app.assume_auth or self.remote_user is not None

    def authenticate(self, passive):
        """IMGAPI's reqSignatureAuth middleware (strict or passive)."""
        auth = self.app.auth
        if auth is None:
            return
        authz = self.headers.get("Authorization")
        if not authz:
            if passive:
                return
            raise ApiError(401, "UnauthorizedError", "Unauthorized")
        hdrs = dict((k.lower(), v) for k, v in self.headers.items())
        try:
            key_id, alg, sig, signing = parse_signature_request(
                hdrs, self.command, self.path,
                self.request_version.split("/")[-1])
        except HttpSigError as e:
            raise ApiError(401, "UnauthorizedError", str(e))
        if alg not in IMGAPI_SIG_ALGORITHMS:
            raise ApiError(401, "UnauthorizedError",
                           'Unauthorized ("%s" is not a supported '
                           'http-signature signing algorithm)' % alg)
        keys = auth.get(key_id)
        if keys is None:
            raise ApiError(401, "UnauthorizedError", "Unauthorized")
        for key in keys:
            if auth.verify(key, alg, signing, sig):
                self.remote_user = key_id
                if self._log_entry is not None:
                    self._log_entry["user"] = key_id
                return
        raise ApiError(401, "UnauthorizedError", "Unauthorized")

    def incl_admin_fields(self):
        v = bool_from_string(self.qget("inclAdminFields"), False,
                             "inclAdminFields")
        if v and self.app.mode != "dc" and not self.authed:
            raise ApiError(401, "UnauthorizedError", 'Unauthorized (auth '
                           'required to use "inclAdminFields" parameter)')
        return v

    def get_image(self, u, channel):
        """reqGetImage: the record, or 404; applies channel and account."""
        rec = self.app.store.get(u)
        if rec is None:
            raise not_found("image %s not found" % u)
        if isinstance(channel, dict) and \
                channel["name"] not in self.app.image_channels(rec):
            raise not_found("image not found")
        account = self.account_param()
        if account:
            if rec.get("owner") == account:
                ok = True
            elif not is_activated(rec):
                ok = False
            elif _as_bool(rec.get("public")):
                ok = True
            else:
                ok = account in (rec.get("acl") or [])
            if not ok:
                raise not_found("image not found")
        self._etag = etag_of(self.app.serialize(rec, self.api_v2))
        return rec

    def ensure_owner(self, rec):
        account = self.account_param()
        if account and account != rec.get("owner"):
            raise ApiError(422, "NotImageOwner",
                           "account %s is not the owner of image %s"
                           % (account, rec["uuid"]))

    def _etag_list(self, header):
        out = []
        for part in (header or "").split(","):
            p = part.strip()
            if p.startswith("W/"):
                p = p[2:]
            out.append(p.strip('"'))
        return [p for p in out if p]

    def conditional(self, etag, last_modified_ms=None):
        """restify.conditionalRequest. True if a 304 was sent."""
        im = self.headers.get("If-Match")
        if im:
            tags = self._etag_list(im)
            if "*" not in tags and etag not in tags:
                raise ApiError(412, "PreconditionFailed",
                               "if-match '%s' didn't match etag '%s'"
                               % (im, etag))
        inm = self.headers.get("If-None-Match")
        if inm:
            tags = self._etag_list(inm)
            if "*" in tags or etag in tags:
                if self.command in ("GET", "HEAD"):
                    self._send_empty(304, [("Etag", etag)])
                    return True
                raise ApiError(412, "PreconditionFailed",
                               "if-none-match '%s' matched etag '%s'"
                               % (inm, etag))
            return False
        ims = self.headers.get("If-Modified-Since")
        if ims and last_modified_ms is not None and \
                self.command in ("GET", "HEAD"):
            t = parse_date_ms(ims)
            if t is not None and last_modified_ms // 1000 * 1000 <= t:
                self._send_empty(304, [("Etag", etag)])
                return True
        return False

    # -- routing --

    def _control(self):
        p = self.req_path.rstrip("/")
        m = self.command
        app = self.app
        if p == "/__requests":
            if m == "GET":
                reqs = app.reqlog.list()
                pat = self.qget("path")
                if pat:
                    rx = re.compile(pat)
                    reqs = [r for r in reqs if rx.search(r["path"])]
                return self._send_json(200, reqs)
            if m == "DELETE":
                app.reqlog.clear()
                return self._send_empty(204)
        elif p == "/__faults":
            if m == "GET":
                return self._send_json(200, app.faults.describe())
            if m == "DELETE":
                app.faults.set([])
                return self._send_empty(204)
            if m == "POST":
                raw = self.body.read_all()
                try:
                    body = json.loads(raw.decode("utf-8")) if raw.strip() \
                        else {}
                    rules = rules_from_json(body)
                except (ValueError, TypeError, re.error) as e:
                    raise ApiError(400, "BadRequestError", str(e))
                if self.qget("append") == "true":
                    for r in rules:
                        app.faults.add(r)
                else:
                    app.faults.set(rules)
                return self._send_json(200, app.faults.describe())
        elif p == "/__reload":
            if m == "POST":
                app.store.refresh(force=True)
                return self._send_json(200, {"images": len(app.store.all())})
        raise ApiError(404, "ResourceNotFound", "%s does not exist" % p)

    def _route(self):
        path = self.req_path
        if path != "/" and path.endswith("/"):
            path = path.rstrip("/") or "/"
        segs = [unquote(s) for s in path.split("/")[1:]]
        m = self.command
        routes = None
        if path == "/ping":
            routes = {"GET": self.api_ping}
        elif path == "/images":
            routes = {"GET": self.api_list_images,
                      "POST": self.api_post_images}
        elif len(segs) == 2 and segs[0] == "images":
            routes = {"GET": self.api_get_image,
                      "POST": self.api_post_image,
                      "DELETE": self.api_delete_image}
        elif len(segs) == 3 and segs[0] == "images" and segs[2] == "file":
            routes = {"GET": self.api_get_image_file,
                      "PUT": self.api_add_image_file}
        elif len(segs) == 3 and segs[0] == "images" and segs[2] == "icon":
            routes = {"GET": self.api_get_image_icon,
                      "PUT": self.api_add_image_icon,
                      "DELETE": self.api_delete_image_icon}
        elif len(segs) == 3 and segs[0] == "images" and segs[2] == "acl":
            routes = {"POST": self.api_image_acl}
        elif len(segs) == 3 and segs[0] == "images" and segs[2] == "jobs":
            routes = {"GET": self.api_image_jobs}
        elif path == "/channels" and self.app.channel_by_name is not None:
            routes = {"GET": self.api_list_channels}
        elif path == "/authkeys/reload" and self.app.auth is not None:
            routes = {"POST": self.api_reload_auth_keys}
        if routes is None:
            raise ApiError(404, "ResourceNotFound",
                           "%s does not exist" % self.req_path,
                           prerouting=True)
        if m not in routes:
            raise ApiError(405, "MethodNotAllowedError",
                           "%s is not allowed" % m,
                           headers=[("Allow", ", ".join(routes))],
                           prerouting=True)
        av = self.headers.get("Accept-Version")
        major = negotiate_version(av)
        if major is None:
            raise ApiError(400, "InvalidVersion",
                           "%s is not supported by %s %s"
                           % (av, m, self.req_path), prerouting=True)
        self.api_v2 = major >= 2
        if self.app.auth is not None:
            # per route, after routing and before the handler (restify)
            if m != "GET":
                self.authenticate(passive=False)
            elif len(segs) == 3 and segs[0] == "images":
                pass    # file, icon, jobs: never checked
            else:
                self.authenticate(passive=True)
        if len(segs) >= 2 and segs[0] == "images":
            self.path_uuid = segs[1]
            if not UUID_RE.match(segs[1]):
                raise not_found("%s does not exist" % self.req_url)
        routes[m]()

    # -- endpoints --

    def api_ping(self):
        err = self.qget("error")
        if err is not None:
            name = err[:-5] if err.endswith("Error") and \
                err[:-5] in KNOWN_ERROR_NAMES else err
            if name in PING_SAMPLES:
                status, msg, errs = PING_SAMPLES[name]
                code = name
                msg = self.qget("message") or msg
                raise ApiError(status, code, msg, errs)
            if name in KNOWN_ERROR_NAMES:
                raise ApiError(500, "InternalError",
                               'do not have a sample "%s" error' % err)
            raise invalid_parameter('unknown error name: "%s"' % err,
                                    [{"field": "error", "code": "Invalid"}])
        data = {"ping": "pong", "version": IMGAPI_VERSION, "imgapi": True}
        if self.app.mode == "dc" or self.authed:
            data["pid"] = os.getpid()
        if self.authed:
            data["user"] = self.remote_user or "admin"
        self._send_json(200, data)

    def api_reload_auth_keys(self):
        self.body.read_all()
        self.app.auth.load()
        self._send_json(200, {})

    def api_list_channels(self):
        self._send_json(200, self.app.channels)

    def api_list_images(self):
        app = self.app
        channel = self.req_channel(allow_star=True)
        admin = self.incl_admin_fields()
        limit_to_active = app.mode != "dc" and not self.authed
        limit = None
        raw_limit = self.qget("limit")
        if raw_limit:
            n = js_number(raw_limit)
            if math.isnan(n):
                raise invalid_parameter('invalid limit: "%s"' % raw_limit,
                                        [{"field": "state",
                                          "code": "Invalid"}])
            limit = n
        state = self.qget("state")
        q = {}
        if not state or state == "active":
            q["activated"] = True
            q["disabled"] = False
        elif state == "disabled":
            if limit_to_active:
                return self._send_json(200, [])
            q["activated"] = True
            q["disabled"] = True
        elif state == "unactivated":
            if limit_to_active:
                return self._send_json(200, [])
            q["activated"] = False
        elif state == "all":
            if limit_to_active:
                q["activated"] = True
                q["disabled"] = False
        elif state in ("creating", "failed"):
            if limit_to_active:
                return self._send_json(200, [])
            q["state"] = state
        else:
            raise invalid_parameter('invalid state: "%s"' % state,
                                    [{"field": "state", "code": "Invalid"}])
        if self.qget("public") is not None:
            q["public"] = bool_from_string(self.qget("public"), True,
                                           "public")
        for f in ("name", "version", "owner", "os", "type"):
            if self.qget(f) is not None:
                q[f] = self.qget(f)
        if isinstance(channel, dict):
            q["channel"] = channel["name"]
        tags = []
        for k, vals in self.query.items():
            if k.startswith("tag."):
                for val in vals:
                    tags.append("%s=%s" % (k[4:], val))
        if tags:
            q["tags"] = tags
        if self.query.get("billing_tag"):
            q["billing_tags"] = list(self.query["billing_tag"])
        account = self.qget("account")
        owner = q.pop("owner", None)
        filters = []
        base = dict(q)
        if not account:
            f = dict(base)
            if owner is not None:
                f["owner"] = owner
            filters.append(f)
        elif owner is None or owner == account:
            f = dict(base)
            f["owner"] = account
            filters.append(f)
            if owner is None and q.get("activated") is not False and \
                    q.get("disabled") is not True:
                if q.get("public") is not False:
                    f = dict(base)
                    f["public"] = True
                    f["activated"] = True
                    filters.append(f)
                if not q.get("public"):
                    f = dict(base)
                    f["public"] = False
                    f["activated"] = True
                    f["acl"] = account
                    filters.append(f)
        elif q.get("activated") is not False and q.get("disabled") is not True:
            if q.get("public") is not False:
                f = dict(base)
                f.update(owner=owner, public=True, activated=True)
                filters.append(f)
            if q.get("public") is not True:
                f = dict(base)
                f.update(owner=owner, public=False, activated=True,
                         acl=account)
                filters.append(f)
        # sort
        sort_attr, sort_order = "published_at", "ASC"
        sort = self.qget("sort")
        if sort:
            attr, _sep, order = sort.partition(".")
            sort_attr = attr
            if order:
                sort_order = order
        if sort_attr != "published_at":
            raise invalid_parameter(
                "invalid 'sort': not a valid sorting attribute: '%s'"
                % sort_attr, [{"field": "sort", "code": "Invalid"}])
        asc = sort_order in ("ASC", "asc")
        # marker
        marker_ms = None
        marker = self.qget("marker")
        if marker:
            if UUID_RE.match(marker):
                mrec = app.store.get(marker)
                if mrec is None:
                    raise not_found("image %s not found" % marker)
                if mrec.get("published_at"):
                    marker_ms = parse_date_ms(mrec["published_at"])
            else:
                marker_ms = parse_date_ms(marker)
                if marker_ms is None:
                    raise invalid_parameter(
                        'invalid value for "marker" param: %s is not a '
                        'UUID or date string' % json.dumps(marker),
                        [{"field": "marker", "code": "Invalid"}])
        hits = []
        for rec in app.store.all():
            if not any(self._match(rec, f) for f in filters):
                continue
            pa = parse_date_ms(rec.get("published_at")) \
                if rec.get("published_at") else None
            if marker_ms is not None:
                if pa is None:
                    continue
                if asc and pa < marker_ms or not asc and pa > marker_ms:
                    continue
            hits.append((pa or 0, rec["uuid"], rec))
        hits.sort(key=lambda h: (h[0], h[1]), reverse=not asc)
        cap = app.max_page_size
        if cap is not None and (limit is None or limit == 0 or limit > cap):
            limit = cap     # like moray: no limit / a larger one -> cap
        if limit is not None and limit:
            if limit < 0:
                hits = []
            elif not math.isinf(limit):
                hits = hits[:int(limit)]
        self._send_json(200, [app.serialize(h[2], self.api_v2, admin)
                              for h in hits])

    def _match(self, rec, f):
        app = self.app
        for k, want in f.items():
            if k == "activated":
                if is_activated(rec) != want:
                    return False
            elif k == "disabled":
                if _as_bool(rec.get("disabled", False)) != want:
                    return False
            elif k == "public":
                if _as_bool(rec.get("public", False)) != want:
                    return False
            elif k == "state":
                if rec.get("state") != want:
                    return False
            elif k in ("name", "version"):
                val = rec.get(k)
                if not isinstance(val, str):
                    return False
                if want.startswith("~"):
                    if want[1:] not in val:
                        return False
                elif val != want:
                    return False
            elif k in ("owner", "os"):
                if rec.get(k) != want:
                    return False
            elif k == "type":
                if want.startswith("!"):
                    if rec.get("type") == want[1:]:
                        return False
                elif rec.get("type") != want:
                    return False
            elif k == "channel":
                if want not in app.image_channels(rec):
                    return False
            elif k == "tags":
                have = tags_search_array(rec.get("tags"))
                if not all(t in have for t in want):
                    return False
            elif k == "billing_tags":
                have = rec.get("billing_tags") or []
                if not all(t in have for t in want):
                    return False
            elif k == "acl":
                if want not in (rec.get("acl") or []):
                    return False
        return True

    def api_get_image(self):
        channel = self.req_channel(allow_star=True)
        rec = self.get_image(self.path_uuid, channel)
        admin = self.incl_admin_fields()
        if self.conditional(self._etag):
            return
        ser = self.app.serialize(rec, self.api_v2, admin)
        self._send_json(200, ser, [("Etag", etag_of(ser))])

    def api_get_image_file(self):
        channel = self.req_channel(allow_star=True)
        rec = self.get_image(self.path_uuid, channel)
        u = rec["uuid"]
        files = rec.get("files") or []
        idx_s = self.qget("index")
        idx = 0
        if idx_s is not None:
            if not re.match(r"^\d+$", idx_s):
                raise invalid_parameter('invalid "index": "%s"' % idx_s,
                                        [{"field": "index",
                                          "code": "Invalid"}])
            idx = int(idx_s)
        if not files:
            raise not_found('image "%s" has no file' % u)
        if idx >= len(files):
            raise not_found('image "%s" has no file at index %d' % (u, idx))
        f = files[idx]
        path = self.app.store.file_path(u)
        try:
            fobj = open(path, "rb")
        except OSError:
            raise ApiError(500, "InternalError", "error getting image file")
        with fobj:
            st = os.fstat(fobj.fileno())
            size = f.get("size")
            if not isinstance(size, int):
                size = st.st_size
            mtime_ms = parse_date_ms(f.get("mtime")) if f.get("mtime") \
                else int(st.st_mtime * 1000)
            md5 = f.get("contentMD5")
            if not md5:
                md5 = self._compute_md5(rec, fobj)
                fobj.seek(0)
            if self.conditional(self._etag, mtime_ms):
                return
            hdrs = [("Etag", f.get("sha1") or ""),
                    ("Last-Modified", http_date(mtime_ms / 1000.0)),
                    ("Content-Length", str(size)),
                    ("Content-Type", "application/octet-stream"),
                    ("Content-MD5", md5)]
            self._begin(200, hdrs)
            if self.command != "HEAD":
                self._write_body(None, size, is_file=True, fileobj=fobj)

    def _compute_md5(self, rec, fobj):
        h = hashlib.md5()
        while True:
            b = fobj.read(CHUNK)
            if not b:
                break
            h.update(b)
        md5 = base64.b64encode(h.digest()).decode("ascii")
        with self.app.store.lock:
            cur = self.app.store.get(rec["uuid"])
            if cur is not None and cur.get("files"):
                new = copy.deepcopy(cur)
                new["files"][0]["contentMD5"] = md5
                try:
                    self.app.store.save(new)
                except OSError:
                    pass
        return md5

    def api_post_images(self):
        channel = self.req_channel(allow_star=False)
        action = self.qget("action")
        if action is None:
            return self.api_create_image(channel)
        if action == "create-from-vm":
            raise ApiError(501, "NotAvailable",
                           "custom image creation is not currently available")
        if action in ("import-docker-image", "import-lxd-image"):
            raise ApiError(501, "NotAvailable",
                           "%s is not available on this test server"
                           % action)
        raise invalid_parameter('"%s" is not a valid action' % action,
                                [{"field": "action", "code": "Invalid"}])

    def _raw_from_data(self, data, is_import):
        """Image.create: build the raw record; error on extra fields."""
        data = dict(data)
        raw = {"v": data.pop("v", None)}
        if is_import:
            raw["uuid"] = data.pop("uuid", None)
            if raw["uuid"] is None:
                raise invalid_parameter('missing "uuid"', [
                    {"field": "uuid", "code": "MissingParameter"}])
        else:
            raw["uuid"] = str(uuidlib.uuid4())
        raw["owner"] = data.pop("owner", None)
        raw["name"] = data.pop("name", None)
        raw["version"] = data.pop("version", None)
        raw["state"] = "unactivated"
        raw["disabled"] = data.pop("disabled", None) or False
        raw["public"] = data.pop("public", None) or False
        if is_import:
            pa = data.pop("published_at", None)
            if pa is not None and not isinstance(pa, str):
                raise invalid_parameter('invalid "published_at"', [
                    {"field": "published_at", "code": "Invalid"}])
            if pa:
                raw["published_at"] = pa
            urn = data.pop("urn", None)
            if urn:
                raw["urn"] = urn
        raw["type"] = data.pop("type", None)
        raw["os"] = data.pop("os", None)
        raw["files"] = []
        for k in ("description", "homepage", "eula", "icon"):
            val = data.pop(k, None)
            if val:
                raw[k] = val
        for k in ("acl", "error", "requirements", "users", "traits", "tags",
                  "billing_tags", "generate_passwords",
                  "inherited_directories", "origin", "channels"):
            if k in data:
                val = data.pop(k)
                if val is not None:
                    raw[k] = val
        if raw.get("type") == "zvol":
            for k in ZVOL_FIELDS:
                if k in data:
                    raw[k] = data.pop(k)
            if raw.get("image_size") is not None and \
                    isinstance(raw["image_size"], str):
                n = js_number(raw["image_size"])
                raw["image_size"] = int(n) if not math.isnan(n) and \
                    n.is_integer() else raw["image_size"]
        data.pop("files", None)
        data.pop("state", None)
        extra = list(data.keys())
        if extra:
            raise invalid_parameter(
                'invalid extra parameters: "%s"' % '", "'.join(extra),
                [{"field": f, "code": "Invalid"} for f in extra])
        return raw

    def _check_origin(self, data):
        origin = data.get("origin")
        if origin and self.app.store.get(origin) is None:
            raise ApiError(422, "OriginDoesNotExist",
                           'origin image "%s" does not exist' % origin)

    def api_create_image(self, channel):
        data = self.json_body()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise validation_failed("missing request body (image manifest)",
                                    [{"field": "body",
                                      "code": "MissingParameter"}])
        account = self.account_param()
        if account:
            if not data.get("owner"):
                data["owner"] = account
            elif data["owner"] != account:
                raise invalid_parameter(
                    'invalid owner: given owner, "%s", does not match '
                    'account, "%s"' % (data["owner"], account),
                    [{"field": "owner", "code": "Invalid"}])
        if "state" in data:
            raise validation_failed('invalid image data: "state"', [{
                "field": "state", "code": "NotAllowed",
                "message": "Parameter cannot be set"}])
        if data.get("v") is None:
            data["v"] = 2
        data.pop("channels", None)
        if isinstance(channel, dict):
            data["channels"] = [channel["name"]]
        self._check_origin(data)
        raw = self._raw_from_data(data, is_import=False)
        self.app.validate(raw)
        rec = self.app.store.save(raw)
        self._send_image(rec)

    def api_import_image(self, channel, data):
        if self.qget("account"):
            raise ApiError(403, "OperatorOnly",
                           "this endpoint may only be called by an operator")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise validation_failed("missing request body (image manifest)",
                                    [{"field": "body",
                                      "code": "MissingParameter"}])
        if data.get("uuid") != self.path_uuid:
            raise invalid_parameter(
                'URL UUID, "%s" and body UUID, "%s" do not match'
                % (self.path_uuid, data.get("uuid", "undefined")),
                [{"field": "uuid", "code": "Invalid"}])
        bool_from_string(self.qget("skip_owner_check"), False,
                         "skip_owner_check")
        data = _upgrade_manifest(data)
        data.pop("channels", None)
        if isinstance(channel, dict):
            data["channels"] = [channel["name"]]
        with self.app.store.lock:
            if self.app.store.get(self.path_uuid) is not None:
                raise ApiError(409, "ImageUuidAlreadyExists",
                               'image uuid "%s" already exists'
                               % self.path_uuid)
            self._check_origin(data)
            if self.app.mode == "dc":
                if data.get("owner") == UNSET_OWNER_UUID:
                    data["owner"] = self.app.admin_uuid
            else:
                data["owner"] = UNSET_OWNER_UUID
            raw = self._raw_from_data(data, is_import=True)
            self.app.validate(raw)
            rec = self.app.store.save(raw)
        self._send_image(rec)

    def api_post_image(self):
        channel = self.req_channel(allow_star=False)
        action = self.qget("action")
        body = self.json_body()
        if action in ("import-remote", "import-from-datacenter"):
            raise ApiError(503, "ServiceUnavailableError",
                           "Workflow API is down.")
        if action == "import":
            if self.qget("source") is not None:
                raise ApiError(501, "NotAvailable", "import from a remote "
                               "source is not available on this test server")
            return self.api_import_image(channel, body)
        store = self.app.store
        with store.lock:
            rec = self.get_image(self.path_uuid, channel)
            if action == "change-stor":
                if self.qget("account"):
                    raise ApiError(403, "OperatorOnly", "this endpoint may "
                                   "only be called by an operator")
                stor = self.qget("stor")
                if not stor:
                    raise validation_failed(
                        'missing "stor" query parameter',
                        [{"field": "stor", "code": "MissingParameter"}])
                if stor != "local":
                    raise validation_failed(
                        'unknown storage type "%s"' % stor,
                        [{"field": "stor", "code": "Invalid"}])
                return self._send_json(200, self.app.serialize(rec, True,
                                                               True))
            self.ensure_owner(rec)
            if action == "export":
                raise ApiError(503, "StorageUnsupported",
                               "storage type is unsupported")
            if self.conditional(self._etag):
                return
            new = copy.deepcopy(rec)
            if action == "activate":
                if is_activated(rec):
                    raise ApiError(422, "ImageAlreadyActivated",
                                   'image "%s" is already activated'
                                   % rec["uuid"])
                if not rec.get("files"):
                    raise ApiError(422, "NoActivationNoFile",
                                   'image "%s" cannot be activated: it has '
                                   'no file' % rec["uuid"])
                if not new.get("published_at"):
                    new["published_at"] = iso_now()
                new.pop("activated", None)
                new["state"] = "disabled" if _as_bool(
                    new.get("disabled")) else "active"
            elif action in ("enable", "disable"):
                dis = action == "disable"
                new["disabled"] = dis
                if is_activated(rec):
                    new["state"] = "disabled" if dis else "active"
            elif action == "channel-add" and \
                    self.app.channel_by_name is not None:
                name = (body or {}).get("channel") \
                    if isinstance(body, dict) else None
                if name not in self.app.channel_by_name:
                    raise validation_failed(
                        "unknown channel: %s" % name,
                        [{"field": "channel", "code": "Invalid"}])
                chans = list(self.app.image_channels(rec))
                if name not in chans:
                    chans.append(name)
                new["channels"] = chans
            elif action == "update":
                new = self._apply_update(rec, body)
            elif action:
                raise invalid_parameter('"%s" is not a valid action' % action,
                                        [{"field": "action",
                                          "code": "Invalid"}])
            else:
                raise invalid_parameter('no image "action" was specified',
                                        [{"field": "action",
                                          "code": "MissingParameter"}])
            new = store.save(new)
        self._send_image(new)

    def _apply_update(self, rec, data):
        if not isinstance(data, dict):
            raise validation_failed("missing request body", [
                {"field": "body", "code": "MissingParameter"}])
        if not data:
            raise validation_failed(
                "invalid image update data: no parameters provided", [])
        errs = []
        activated = is_activated(rec)
        for k in data:
            if k in UPDATABLE_FIELDS or k in ADMIN_ONLY_UPDATE_FIELDS:
                continue
            if k == "origin" and not activated and not self.qget("account"):
                continue
            errs.append({"field": k, "code": "NotAllowed",
                         "message": "Parameter cannot be updated"})
        if self.qget("account"):
            for k in ADMIN_ONLY_UPDATE_FIELDS:
                if k in data:
                    errs.append({"field": k, "code": "NotAllowed",
                                 "message": "Can only be updated by "
                                 "operators"})
        if errs:
            raise validation_failed(
                "invalid image update data: " +
                ", ".join(e["field"] for e in errs), errs)
        new = copy.deepcopy(rec)
        for k, val in data.items():
            if val is None:
                new.pop(k, None)
            else:
                new[k] = val
        self.app.validate(new)
        return new

    def api_delete_image(self):
        channel = self.req_channel(allow_star=False)
        store = self.app.store
        with store.lock:
            rec = self.get_image(self.path_uuid, channel)
            self.ensure_owner(rec)
            force = bool_from_string(self.qget("force_all_channels"), False,
                                     "force_all_channels")
            deps = []
            for other in store.all():
                if other.get("origin") != rec["uuid"]:
                    continue
                if isinstance(channel, dict) and channel["name"] not in \
                        self.app.image_channels(other):
                    continue
                deps.append(other["uuid"])
            if deps:
                deps.sort()
                summary = ", ".join(deps) if len(deps) < 10 else \
                    "%s, and %d more..." % (", ".join(deps[:5]),
                                            len(deps) - 5)
                raise ApiError(422, "ImageHasDependentImages",
                               'image "%s" has %d dependent incremental '
                               'image(s): %s' % (rec["uuid"], len(deps),
                                                 summary))
            chans = self.app.image_channels(rec)
            if isinstance(channel, dict) and len(chans) > 1 and not force:
                new = copy.deepcopy(rec)
                new["channels"] = [c for c in chans if c != channel["name"]]
                store.save(new)
            else:
                store.delete(rec["uuid"])
        self._send_empty(204)

    def api_add_image_file(self):
        channel = self.req_channel(allow_star=False)
        rec = self.get_image(self.path_uuid, channel)
        self.ensure_owner(rec)
        u = rec["uuid"]
        if is_activated(rec):
            raise ApiError(422, "ImageFilesImmutable",
                           "cannot modify files on activated image %s" % u)
        compression = self.qget("compression")
        if not compression:
            raise invalid_parameter('missing "compression"', [
                {"field": "compression", "code": "Missing"}])
        if compression not in VALID_COMPRESSIONS:
            raise invalid_parameter(
                'invalid compression "%s" (must be one of %s)'
                % (compression, ", ".join(VALID_COMPRESSIONS)),
                [{"field": "compression", "code": "Invalid"}])
        storage = self.qget("storage")
        if storage and self.qget("account"):
            raise invalid_parameter('invalid storage "%s"' % storage, [{
                "field": "storage", "code": "NotAllowed",
                "message": "Parameter cannot be specified by non-operators"}])
        if storage and storage not in VALID_STORAGES:
            raise invalid_parameter(
                'invalid storage "%s" (must be one of %s)'
                % (storage, ", ".join(VALID_STORAGES)),
                [{"field": "storage", "code": "Invalid"}])
        max_size = self.app.max_file_size
        if self.body.length is not None and self.body.length > max_size:
            raise ApiError(400, "Upload", "image file size %d (from "
                           "Content-Length) exceeds the maximum allowed size"
                           % self.body.length)
        store = self.app.store
        sha1 = hashlib.sha1()
        md5 = hashlib.md5()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=".upload-%s-" % u,
                                   dir=store.images_dir)
        keep = False
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    data = self.body.read(CHUNK)
                    if not data:
                        break
                    size += len(data)
                    if size > max_size:
                        raise ApiError(400, "Upload", "image file size "
                                       "exceeds the maximum allowed size")
                    sha1.update(data)
                    md5.update(data)
                    out.write(data)
            if size == 0:
                raise ApiError(400, "Download", "image file size is 0 bytes, "
                               "empty files are not allowed")
            digest = sha1.hexdigest()
            want = self.qget("sha1")
            if want and want != digest:
                raise ApiError(400, "Download",
                               '"sha1" hash, %s, does not match the uploaded '
                               'file sha1 hash, %s' % (want, digest))
            fentry = {"sha1": digest, "size": size,
                      "compression": compression,
                      "contentMD5": base64.b64encode(md5.digest()).decode(),
                      "mtime": iso_now(), "stor": storage or "local"}
            if self.qget("dataset_guid"):
                fentry["dataset_guid"] = self.qget("dataset_guid")
            with store.lock:
                cur = store.get(u)
                if cur is None:
                    raise not_found("image %s not found" % u)
                if is_activated(cur):
                    raise ApiError(422, "ImageAlreadyActivated",
                                   'image "%s" is already activated' % u)
                os.chmod(tmp, 0o644)
                os.replace(tmp, store.file_path(u))
                keep = True
                new = copy.deepcopy(cur)
                new["files"] = [fentry]
                new = store.save(new)
        finally:
            if not keep:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        self._send_image(new)

    def api_get_image_icon(self):
        channel = self.req_channel(allow_star=True)
        rec = self.get_image(self.path_uuid, channel)
        icon = rec.get("icon")
        if not isinstance(icon, dict):
            raise not_found('image "%s" has no icon' % rec["uuid"])
        try:
            with open(self.app.store.icon_path(rec["uuid"]), "rb") as f:
                data = f.read()
        except OSError:
            raise ApiError(500, "InternalError", "error getting icon file")
        mtime_ms = parse_date_ms(icon.get("mtime") or "") or now_ms()
        if self.conditional(self._etag, mtime_ms):
            return
        hdrs = [("Etag", icon.get("sha1", "")),
                ("Last-Modified", http_date(mtime_ms / 1000.0)),
                ("Content-Length", str(len(data))),
                ("Content-Type", icon.get("contentType",
                                          "application/octet-stream")),
                ("Content-MD5", icon.get("contentMD5", ""))]
        self._begin(200, hdrs)
        if self.command != "HEAD":
            self._write_body([data], len(data), is_file=False)

    def api_add_image_icon(self):
        channel = self.req_channel(allow_star=False)
        rec = self.get_image(self.path_uuid, channel)
        self.ensure_owner(rec)
        ct = self.headers.get("Content-Type")
        if ct not in ICON_CONTENT_TYPES:
            raise ApiError(400, "Upload",
                           "invalid content-type, %s, must be one of %s"
                           % (ct, ", ".join(ICON_CONTENT_TYPES)))
        data = self.body.read_all(limit=MAX_ICON_SIZE + 1)
        if len(data) > MAX_ICON_SIZE:
            raise ApiError(400, "Upload", "icon size, %d, exceeds the maximum "
                           "allowed file size, 128 KiB" % len(data))
        digest = hashlib.sha1(data).hexdigest()
        want = self.qget("sha1")
        if want and want != digest:
            raise ApiError(400, "Upload", '"sha1" hash, %s, does not match '
                           'the uploaded icon file sha1 hash, %s'
                           % (want, digest))
        store = self.app.store
        with store.lock:
            _atomic_write(store.icon_path(rec["uuid"]), data)
            new = copy.deepcopy(store.get(rec["uuid"]))
            new["icon"] = {
                "sha1": digest, "size": len(data), "contentType": ct,
                "contentMD5": base64.b64encode(
                    hashlib.md5(data).digest()).decode(),
                "mtime": iso_now(), "stor": "local"}
            new = store.save(new)
        self._send_image(new)

    def api_delete_image_icon(self):
        channel = self.req_channel(allow_star=False)
        store = self.app.store
        with store.lock:
            rec = self.get_image(self.path_uuid, channel)
            self.ensure_owner(rec)
            if not rec.get("icon"):
                raise not_found('image "%s" has no icon' % rec["uuid"])
            try:
                os.unlink(store.icon_path(rec["uuid"]))
            except OSError:
                pass
            new = copy.deepcopy(rec)
            new.pop("icon", None)
            new = store.save(new)
        self._send_image(new)

    def api_image_acl(self):
        channel = self.req_channel(allow_star=False)
        body = self.json_body()
        action = self.qget("action")
        store = self.app.store
        with store.lock:
            rec = self.get_image(self.path_uuid, channel)
            self.ensure_owner(rec)
            if action not in (None, "add", "remove"):
                raise invalid_parameter('"%s" is not a valid action' % action,
                                        [{"field": "action",
                                          "code": "Invalid"}])
            if not isinstance(body, list):
                raise invalid_parameter('invalid image "acl" (not an array)',
                                        [{"field": "acl",
                                          "code": "Invalid"}])
            for i, a in enumerate(body):
                if not isinstance(a, str) or not UUID_RE.match(a):
                    raise invalid_parameter(
                        'invalid image "acl" (item %d is not a UUID): %s'
                        % (i, a), [{"field": "acl", "code": "Invalid"}])
            new = copy.deepcopy(rec)
            acl = list(new.get("acl") or [])
            if action == "remove":
                acl = [a for a in acl if a not in body]
            else:
                for a in body:
                    if a not in acl:
                        acl.append(a)
            new["acl"] = acl
            new = store.save(new)
        self._send_image(new)

    def api_image_jobs(self):
        channel = self.req_channel(allow_star=True)
        self.get_image(self.path_uuid, channel)
        raise ApiError(503, "ServiceUnavailableError",
                       "Workflow API is down.")


def _upgrade_manifest(data):
    """A minimal imgmanifest.upgradeManifest for v1 (dsmanifest) input."""
    data = dict(data)
    v = data.get("v")
    if v in (1, "1") or (v is None and "creator_uuid" in data):
        if "creator_uuid" in data and "owner" not in data:
            data["owner"] = data["creator_uuid"]
        for k in ("creator_uuid", "creator_name", "vendor_uuid",
                  "platform_type", "cloud_name", "created_at", "updated_at",
                  "restricted_to_uuid", "owner_uuid", "nic_driver_v1"):
            data.pop(k, None)
        data["v"] = 2
        if "disabled" not in data:
            data["disabled"] = False
        if "public" not in data:
            data["public"] = True
        files = []
        for f in data.get("files") or []:
            files.append({k: f[k] for k in ("sha1", "size", "compression")
                          if k in f})
        data["files"] = files
    return data


# ---------------------------------------------------------------------------
# public API

class ServerHandle:
    """A running server (see start_server)."""

    def __init__(self, httpd, app, thread):
        self.httpd = httpd
        self.app = app
        self.thread = thread
        self.port = httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.data_dir = app.store.data_dir

    def set_faults(self, **rule):
        """Replace all fault rules by this one rule (none if empty)."""
        self.app.faults.set([FaultRule(**rule)] if rule else [])

    def add_fault(self, **rule):
        self.app.faults.add(FaultRule(**rule))

    def clear_faults(self):
        self.app.faults.set([])

    def faults(self):
        return self.app.faults.describe()

    def requests(self, path=None):
        """The request log; `path` is an optional regex on path+query."""
        reqs = self.app.reqlog.list()
        if path:
            rx = re.compile(path)
            reqs = [r for r in reqs if rx.search(r["path"])]
        return reqs

    def clear_requests(self):
        self.app.reqlog.clear()

    def reload(self):
        self.app.store.refresh(force=True)

    def stop(self):
        self.app.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_all_connections()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_server(data_dir, port=0, mode="public", channels=None, faults=None,
                 assume_auth=False, admin_uuid=DEFAULT_ADMIN_UUID,
                 max_file_size=MAX_IMAGE_SIZE, verbose=False,
                 max_page_size=None, auth_keys=None):
    """Start a server on 127.0.0.1 in a background thread.

    `channels`: None, 'dev*,staging,release' or a list; `faults`: None, a
    dict (one rule) or a list of rule dicts (see FaultRule);
    `max_page_size`: None (no cap) or N, ListImages returns at most N rows
    (see the module docstring); `auth_keys`: None (no auth) or
    {user: [ssh public key lines]} or a directory of USER.keys files:
    HTTP Signature auth (see the module docstring).
    """
    if isinstance(faults, dict):
        faults = [faults]
    rules = [FaultRule(**r) for r in (faults or [])]
    app = App(data_dir, mode=mode, channels=channels, assume_auth=assume_auth,
              admin_uuid=admin_uuid, max_file_size=max_file_size,
              verbose=verbose, faults=rules, max_page_size=max_page_size,
              auth_keys=auth_keys)
    httpd = ImgapiHTTPServer(("127.0.0.1", port), Handler, app)
    t = threading.Thread(target=httpd.serve_forever,
                         kwargs={"poll_interval": 0.1},
                         name="imgapi-server-%d" % httpd.server_address[1],
                         daemon=True)
    t.start()
    return ServerHandle(httpd, app, t)


def main(argv=None):
    p = argparse.ArgumentParser(description="Local IMGAPI test server.")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--pid-file")
    p.add_argument("--mode", choices=["public", "private", "dc"],
                   default="public")
    p.add_argument("--channels", default=None,
                   help="e.g. 'dev*,staging,release' (* = default)")
    p.add_argument("--assume-auth", action="store_true",
                   help="treat every request as authenticated")
    p.add_argument("--admin-uuid", default=DEFAULT_ADMIN_UUID)
    p.add_argument("--max-file-size", type=int, default=MAX_IMAGE_SIZE)
    p.add_argument("--max-page-size", type=int, default=None, metavar="N",
                   help="cap ListImages at N rows when it has no limit, "
                        "limit=0 or a larger limit, as a production "
                        "IMGAPI (moray) does at 1000 (default: no cap)")
    p.add_argument("--auth-keys", default=None, metavar="DIR",
                   help="HTTP Signature auth with the ssh public keys in "
                        "DIR/USER.keys (needs the cryptography library)")
    p.add_argument("--verbose", "-v", action="store_true")
    g = p.add_argument_group("faults (one rule; or --faults JSON)")
    g.add_argument("--faults", help="JSON object or list of rule objects")
    g.add_argument("--fault-path", help="regex on the request path")
    g.add_argument("--fault-method")
    g.add_argument("--fault-count", type=int)
    g.add_argument("--fail-5xx", type=int)
    g.add_argument("--retry-after", type=float)
    g.add_argument("--truncate-after", type=int)
    g.add_argument("--corrupt", action="store_true")
    g.add_argument("--corrupt-offset", type=int)
    g.add_argument("--reset", action="store_true")
    g.add_argument("--reset-after", type=int)
    g.add_argument("--slow", type=float)
    g.add_argument("--slow-body-bps", type=int)
    a = p.parse_args(argv)

    faults = []
    if a.faults:
        faults = json.loads(a.faults)
        if isinstance(faults, dict):
            faults = faults.get("rules", [faults] if faults else [])
        rules_from_json(faults)     # validate
    rule = {}
    for k, attr in (("path", "fault_path"), ("method", "fault_method"),
                    ("count", "fault_count"), ("fail_5xx", "fail_5xx"),
                    ("truncate_after", "truncate_after"),
                    ("corrupt_offset", "corrupt_offset"),
                    ("reset_after", "reset_after"),
                    ("slow_body_bps", "slow_body_bps")):
        if getattr(a, attr) is not None:
            rule[k] = getattr(a, attr)
    for k in ("retry_after", "slow"):
        if getattr(a, k) is not None:
            val = getattr(a, k)
            rule[k] = int(val) if float(val).is_integer() else val
    if a.corrupt:
        rule["corrupt"] = True
    if a.reset:
        rule["reset"] = True
    if rule:
        faults.append(rule)

    try:
        srv = start_server(a.data_dir, port=a.port, mode=a.mode,
                           channels=a.channels, faults=faults,
                           assume_auth=a.assume_auth,
                           admin_uuid=a.admin_uuid,
                           max_file_size=a.max_file_size, verbose=a.verbose,
                           max_page_size=a.max_page_size,
                           auth_keys=a.auth_keys)
    except (RuntimeError, ValueError, OSError) as e:
        sys.stderr.write("imgapi_server: %s\n" % e)
        return 2
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.port)
        os.replace(tmp, a.port_file)
    sys.stdout.write(srv.url + "\n")
    sys.stdout.flush()

    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not done.wait(1):
            pass
    finally:
        srv.stop()
        for f in (a.pid_file, a.port_file):
            if f:
                try:
                    os.unlink(f)
                except OSError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
