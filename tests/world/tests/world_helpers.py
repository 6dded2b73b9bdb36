"""Helpers shared by the test-world tests."""

import base64
import hashlib
import os
import subprocess
import tempfile

import imgapi_server

WORLD = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZPOOL_SH = os.path.join(WORLD, "zpool.sh")

OWNER0 = "00000000-0000-0000-0000-000000000000"


def u(n):
    """A deterministic image uuid."""
    return "%08x-0000-4000-8000-%012x" % (n, n)


def seed_image(data_dir, n, content=None, files=True, channels=None,
               **fields):
    """Put image u(n) straight into a server data dir; returns
    (record, content)."""
    content = content if content is not None else \
        (b"image %d " % n) * 1000
    m = {
        "v": 2, "uuid": u(n), "owner": OWNER0, "name": "img%d" % n,
        "version": "1.0.%d" % n, "state": "active", "disabled": False,
        "public": True,
        "published_at": "2020-01-%02dT00:00:00.000Z" % (n % 28 + 1),
        "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": hashlib.sha1(content).hexdigest(),
                   "size": len(content), "compression": "none"}],
    }
    for k, v in fields.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    if not files:
        m["files"] = []
        rec = imgapi_server.add_image_to_data_dir(data_dir, m,
                                                  channels=channels)
        return rec, None
    fd, path = tempfile.mkstemp()
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    try:
        rec = imgapi_server.add_image_to_data_dir(data_dir, m, path,
                                                  channels=channels)
    finally:
        os.unlink(path)
    return rec, content


def b64md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def uuids(resp):
    assert resp.status_code == 200, resp.text
    return [i["uuid"] for i in resp.json()]


def zpool_sh(*args, check=True):
    """Run tests/world/zpool.sh; RuntimeError (with its output) on
    failure when `check`."""
    p = subprocess.run([ZPOOL_SH] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if check and p.returncode != 0:
        raise RuntimeError("zpool.sh %s failed (exit %d):\n%s%s"
                           % (" ".join(args), p.returncode, p.stdout,
                              p.stderr))
    return p
