"""Real HTTP tests of the test-world IMGAPI server (imgapi_server.py)."""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import warnings

import pytest
import requests

import imgapi_server
from world_helpers import OWNER0, b64md5, seed_image, u, uuids

ISO_MS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JSON = {"Content-Type": "application/json"}


def manifest(**kw):
    m = {"name": "foo", "version": "1.0.0", "type": "zone-dataset",
         "os": "smartos", "owner": OWNER0, "public": True}
    m.update(kw)
    return m


def publish(url, data, **kw):
    """CreateImage + AddImageFile + ActivateImage; returns the image."""
    r = requests.post(url + "/images", json=manifest(**kw))
    assert r.status_code == 200, r.text
    uuid = r.json()["uuid"]
    r = requests.put(url + "/images/%s/file?compression=none&sha1=%s"
                     % (uuid, hashlib.sha1(data).hexdigest()), data=data)
    assert r.status_code == 200, r.text
    r = requests.post(url + "/images/%s?action=activate" % uuid)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------
# basics

def test_ping(make_server):
    srv = make_server()
    r = requests.get(srv.url + "/ping", headers={"x-request-id": "req-123"})
    assert r.status_code == 200
    assert r.json() == {"ping": "pong", "version": "4.13.1", "imgapi": True}
    assert r.headers["Server"] == "imgapi/4.13.1"
    assert r.headers["x-request-id"] == "req-123"
    assert r.headers["Content-Type"] == "application/json"
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert r.text.startswith('{\n  "ping": "pong"')   # 2-space pretty
    assert "Transfer-Encoding" not in r.headers
    # no x-request-id sent -> a new uuid
    r2 = requests.get(srv.url + "/ping")
    assert re.match(r"^[0-9a-f-]{36}$", r2.headers["x-request-id"])


def test_ping_dc_mode_has_pid_and_error_samples(make_server):
    srv = make_server(mode="dc")
    assert requests.get(srv.url + "/ping").json()["pid"] == os.getpid()
    r = requests.get(srv.url + "/ping?error=ValidationFailed")
    assert r.status_code == 422 and r.json()["code"] == "ValidationFailed"
    r = requests.get(srv.url + "/ping?error=ResourceNotFound")
    assert r.status_code == 500
    r = requests.get(srv.url + "/ping?error=Bogus")
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameter"


def test_keep_alive_reuses_connection(make_server):
    srv = make_server()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/ping")
    r1 = conn.getresponse()
    assert r1.getheader("Connection") == "keep-alive"
    r1.read()
    sock = conn.sock
    conn.request("GET", "/images")
    r2 = conn.getresponse()
    assert r2.status == 200 and json.loads(r2.read()) == []
    assert conn.sock is sock    # same TCP connection
    conn.close()


def test_unknown_path_head_and_bad_methods(make_server):
    srv = make_server()
    r = requests.get(srv.url + "/x")
    assert r.status_code == 404
    assert r.json() == {"code": "ResourceNotFound",
                        "message": "/x does not exist"}
    assert "Server" not in r.headers            # pre-routing response
    r = requests.head(srv.url + "/ping")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = requests.patch(srv.url + "/images/" + u(1))
    assert r.status_code == 405
    assert r.json()["message"] == "PATCH is not allowed"
    # no channels configured -> /channels is not routed
    assert requests.get(srv.url + "/channels").status_code == 404


def test_malformed_and_uppercase_uuid_are_404(make_server):
    srv = make_server()
    for bad in ("not-a-uuid", "ABCDEF01-0000-4000-8000-00000000000A"):
        r = requests.get(srv.url + "/images/" + bad)
        assert r.status_code == 404
        assert r.json()["message"] == "/images/%s does not exist" % bad
    r = requests.get(srv.url + "/images/" + u(99))
    assert r.status_code == 404
    assert r.json() == {"code": "ResourceNotFound",
                        "message": "image %s not found" % u(99)}


def test_accept_version(make_server, tmp_path):
    d = str(tmp_path / "d")
    seed_image(d, 1, channels=["dev"])
    srv = make_server(data_dir=d, channels="dev*,staging")
    r1 = requests.get(srv.url + "/images/" + u(1))
    assert "channels" not in r1.json()
    r2 = requests.get(srv.url + "/images/" + u(1),
                      headers={"Accept-Version": "~2"})
    assert r2.json()["channels"] == ["dev"]
    assert r1.headers["Etag"] != r2.headers["Etag"]
    r = requests.get(srv.url + "/images/" + u(1),
                     headers={"Accept-Version": "~3"})
    assert r.status_code == 400 and r.json()["code"] == "InvalidVersion"
    assert "~3 is not supported by GET" in r.json()["message"]


# ---------------------------------------------------------------------------
# ListImages

@pytest.fixture
def listing_server(make_server, tmp_path):
    d = str(tmp_path / "list")
    other = "11111111-2222-4333-8444-555555555555"
    seed_image(d, 1, name="base", tags={"role": "db", "num": 3})
    seed_image(d, 2, name="base-lx", os="linux", type="lx-dataset",
               tags={"role": "web", "test": True})
    seed_image(d, 3, name="vm", type="zvol", os="linux", public=False,
               owner=other, nic_driver="virtio", disk_driver="virtio",
               cpu_type="host", image_size=10240)
    seed_image(d, 4, name="base", version="2.0.0", state="disabled",
               disabled=True)
    seed_image(d, 5, name="new", state="unactivated", published_at=None,
               files=False)
    return make_server(data_dir=d, mode="dc"), other


def test_list_filters(listing_server):
    srv, other = listing_server
    url = srv.url + "/images"

    def L(q=""):
        return uuids(requests.get(url + q))

    assert L() == [u(1), u(2), u(3)]                    # active only
    assert sorted(L("?state=all")) == [u(1), u(2), u(3), u(4), u(5)]
    assert L("?state=disabled") == [u(4)]
    assert L("?state=unactivated") == [u(5)]
    assert L("?name=base") == [u(1)]
    assert L("?name=base&state=all") == [u(1), u(4)]
    assert L("?name=~ase") == [u(1), u(2)]
    assert L("?version=1.0.2") == [u(2)]
    assert L("?version=~1.0") == [u(1), u(2), u(3)]
    assert L("?owner=" + other) == [u(3)]
    assert L("?os=linux") == [u(2), u(3)]
    assert L("?type=zvol") == [u(3)]
    assert L("?type=!zvol") == [u(1), u(2)]
    assert L("?public=false") == [u(3)]
    assert L("?public=true") == [u(1), u(2)]
    assert L("?tag.role=db") == [u(1)]
    assert L("?tag.num=3") == [u(1)]
    assert L("?tag.test=true") == [u(2)]
    assert L("?tag.role=web&tag.test=true") == [u(2)]
    assert L("?tag.role=db&tag.test=true") == []
    assert L("?account=" + other + "&public=false") == [u(3)]
    assert L("?bogus=1") == [u(1), u(2), u(3)]           # ignored


@pytest.mark.parametrize("query,code,status", [
    ("public=yes", "InvalidParameter", 422),
    ("state=bogus", "InvalidParameter", 422),
    ("limit=abc", "InvalidParameter", 422),
    ("sort=name", "InvalidParameter", 422),
    ("marker=notadate", "InvalidParameter", 422),
    ("marker=" + u(77), "ResourceNotFound", 404),
])
def test_list_bad_params(listing_server, query, code, status):
    srv, _unused = listing_server
    r = requests.get(srv.url + "/images?" + query)
    assert r.status_code == status
    assert r.json()["code"] == code


def test_public_mode_unauthenticated_lists_only_active(make_server, tmp_path):
    d = str(tmp_path / "pub")
    seed_image(d, 1)
    seed_image(d, 2, state="disabled", disabled=True)
    seed_image(d, 3, state="unactivated", published_at=None, files=False)
    srv = make_server(data_dir=d, mode="public")
    assert uuids(requests.get(srv.url + "/images?state=all")) == [u(1)]
    assert uuids(requests.get(srv.url + "/images?state=unactivated")) == []
    # ... but GetImage works for any state
    r = requests.get(srv.url + "/images/" + u(3))
    assert r.status_code == 200 and r.json()["state"] == "unactivated"
    assert "published_at" not in r.json()
    srv2 = make_server(data_dir=d, mode="public", assume_auth=True)
    assert uuids(requests.get(srv2.url + "/images?state=unactivated")) \
        == [u(3)]


@pytest.fixture
def paging_server(make_server, tmp_path):
    d = str(tmp_path / "page")
    # seeded in scrambled order; published_at day = n
    for n in (4, 1, 5, 3, 2):
        seed_image(d, n, published_at="2021-03-%02dT10:00:00.000Z" % n)
    return make_server(data_dir=d)


def test_paging_marker_is_inclusive(paging_server):
    url = paging_server.url + "/images"
    assert uuids(requests.get(url)) == [u(1), u(2), u(3), u(4), u(5)]
    page1 = uuids(requests.get(url + "?limit=2"))
    assert page1 == [u(1), u(2)]
    page2 = uuids(requests.get(url + "?limit=2&marker=" + page1[-1]))
    assert page2 == [u(2), u(3)]          # repeats the last of page 1
    assert uuids(requests.get(url + "?marker=2021-03-04T00:00:00Z")) \
        == [u(4), u(5)]
    assert uuids(requests.get(url + "?marker=2021-03-04T10:00:00.000Z")) \
        == [u(4), u(5)]                   # >= : inclusive for dates too
    assert uuids(requests.get(url + "?limit=0")) == \
        [u(1), u(2), u(3), u(4), u(5)]
    assert uuids(requests.get(url + "?limit=-1")) == []


def test_max_page_size_caps_listimages_like_moray(make_server, tmp_path):
    d = str(tmp_path / "capped")
    for n in (4, 1, 5, 3, 2):
        seed_image(d, n, published_at="2021-03-%02dT10:00:00.000Z" % n)
    srv = make_server(data_dir=d, max_page_size=2)
    url = srv.url + "/images"
    assert uuids(requests.get(url)) == [u(1), u(2)]  # no limit: capped
    assert uuids(requests.get(url + "?limit=0")) == [u(1), u(2)]
    assert uuids(requests.get(url + "?limit=5")) == [u(1), u(2)]
    assert uuids(requests.get(url + "?limit=1")) == [u(1)]  # a smaller limit stays
    assert uuids(requests.get(url + "?limit=2&marker=" + u(2))) == [u(2), u(3)]
    with pytest.raises(ValueError):
        make_server(data_dir=d, max_page_size=0)


def test_paging_desc_and_reference_loop(paging_server):
    url = paging_server.url + "/images"
    assert uuids(requests.get(url + "?sort=published_at.desc&limit=2")) \
        == [u(5), u(4)]
    assert uuids(requests.get(
        url + "?sort=published_at.desc&limit=2&marker=" + u(4))) \
        == [u(4), u(3)]
    # sdc-clients listImages loop with a small page size
    seen, marker, size = [], None, 2
    while True:
        q = "?limit=%d" % size + ("&marker=" + marker if marker else "")
        rows = requests.get(url + q).json()
        last_page = len(rows) < size
        if rows and marker and rows[0]["uuid"] == marker:
            rows = rows[1:]
        if not rows:
            break
        marker = rows[-1]["uuid"]
        seen += [r["uuid"] for r in rows]
        if last_page:
            break
    assert seen == [u(1), u(2), u(3), u(4), u(5)]


# ---------------------------------------------------------------------------
# channels

def test_channels(make_server, tmp_path):
    d = str(tmp_path / "chan")
    seed_image(d, 1, channels=["dev"])
    seed_image(d, 2, channels=["staging"])
    seed_image(d, 3, channels=["dev", "release"])
    srv = make_server(data_dir=d, channels="dev*,staging,release")
    url = srv.url
    r = requests.get(url + "/channels")
    assert r.status_code == 200
    assert [c["name"] for c in r.json()] == ["dev", "staging", "release"]
    assert r.json()[0]["default"] is True and "default" not in r.json()[1]
    assert uuids(requests.get(url + "/images")) == [u(1), u(3)]
    assert uuids(requests.get(url + "/images?channel=staging")) == [u(2)]
    assert uuids(requests.get(url + "/images?channel=*")) == \
        [u(1), u(2), u(3)]
    r = requests.get(url + "/images?channel=nope")
    assert r.status_code == 422
    assert r.json()["code"] == "ValidationFailed"
    assert r.json()["message"] == "unknown channel: nope"
    # GetImage / GetImageFile of an image not in the (default) channel
    r = requests.get(url + "/images/" + u(2))
    assert r.status_code == 404 and r.json()["message"] == "image not found"
    assert requests.get(url + "/images/%s/file" % u(2)).status_code == 404
    assert requests.get(url + "/images/%s?channel=staging" % u(2)) \
        .status_code == 200
    assert requests.get(url + "/images/%s/file?channel=*" % u(2)) \
        .status_code == 200
    r = requests.get(url + "/images/%s?channel=nope" % u(2))
    assert r.status_code == 422
    # CreateImage goes to the request's channel
    r = requests.post(url + "/images?channel=staging",
                      json=manifest(channels=["release"]),
                      headers={"Accept-Version": "~2"})
    assert r.json()["channels"] == ["staging"]
    # channel-add, then delete from one channel only
    r = requests.post(url + "/images/%s?action=channel-add&channel=dev" % u(1),
                      json={"channel": "release"},
                      headers={"Accept-Version": "*"})
    assert r.status_code == 200 and r.json()["channels"] == ["dev", "release"]
    r = requests.delete(url + "/images/%s?channel=release" % u(1))
    assert r.status_code == 204
    r = requests.get(url + "/images/%s?channel=*" % u(1),
                     headers={"Accept-Version": "*"})
    assert r.json()["channels"] == ["dev"]


# ---------------------------------------------------------------------------
# GetImage / GetImageFile

def test_get_image_etag_and_304(make_server, tmp_path):
    d = str(tmp_path / "e")
    seed_image(d, 1, description="etag test")
    srv = make_server(data_dir=d)
    r = requests.get(srv.url + "/images/" + u(1))
    assert r.status_code == 200
    body = r.json()
    compact = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    assert r.headers["Etag"] == hashlib.sha1(compact.encode()).hexdigest()
    assert list(body)[:9] == ["v", "uuid", "owner", "name", "version",
                              "state", "disabled", "public", "published_at"]
    assert "contentMD5" not in body["files"][0]        # internal field
    r2 = requests.get(srv.url + "/images/" + u(1),
                      headers={"If-None-Match": r.headers["Etag"]})
    assert r2.status_code == 304 and r2.content == b""
    r3 = requests.get(srv.url + "/images/" + u(1),
                      headers={"If-None-Match": "abc"})
    assert r3.status_code == 200


def test_get_image_file_headers(make_server, tmp_path):
    d = str(tmp_path / "f")
    content = os.urandom(200 * 1024)
    rec, _unused = seed_image(d, 1, content=content)
    seed_image(d, 2, files=False)
    srv = make_server(data_dir=d)
    url = srv.url + "/images/%s/file" % u(1)
    r = requests.get(url, headers={"Range": "bytes=0-9"})
    assert r.status_code == 200                      # Range is ignored
    assert r.content == content
    h = r.headers
    assert int(h["Content-Length"]) == len(content)
    assert h["Content-Type"] == "application/octet-stream"
    assert h["Content-MD5"] == b64md5(content)
    assert h["Etag"] == hashlib.sha1(content).hexdigest()
    assert h["Etag"] == rec["files"][0]["sha1"]
    assert re.match(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$",
                    h["Last-Modified"])
    # If-None-Match compares with the *manifest* Etag, not the file sha1
    assert requests.get(url, headers={"If-None-Match": h["Etag"]}) \
        .status_code == 200
    img_etag = requests.get(srv.url + "/images/" + u(1)).headers["Etag"]
    assert requests.get(url, headers={"If-None-Match": img_etag}) \
        .status_code == 304
    assert requests.get(url, headers={
        "If-Modified-Since": h["Last-Modified"]}).status_code == 304
    r = requests.get(srv.url + "/images/%s/file" % u(2))
    assert r.status_code == 404
    assert r.json()["message"] == 'image "%s" has no file' % u(2)
    assert requests.head(url).status_code == 405


def test_get_image_file_large_sendfile(make_server, tmp_path):
    d = str(tmp_path / "big")
    content = os.urandom(8 * 1024 * 1024 + 123)
    seed_image(d, 1, content=content)
    srv = make_server(data_dir=d)
    r = requests.get(srv.url + "/images/%s/file" % u(1), stream=True)
    h = hashlib.sha1()
    n = 0
    for chunk in r.iter_content(1024 * 1024):
        h.update(chunk)
        n += len(chunk)
    assert n == len(content)
    assert h.hexdigest() == hashlib.sha1(content).hexdigest()


# ---------------------------------------------------------------------------
# publishing

def test_publish_sequence(make_server):
    srv = make_server(mode="public")
    url = srv.url
    r = requests.post(url + "/images", json=manifest(
        description="d", tags={"a": "b"}))
    assert r.status_code == 200, r.text
    img = r.json()
    assert img["state"] == "unactivated" and img["files"] == []
    assert "published_at" not in img
    assert re.match(r"^[0-9a-f-]{36}$", img["uuid"])
    assert r.headers["Etag"]
    uuid = img["uuid"]
    assert uuids(requests.get(url + "/images")) == []
    data = os.urandom(5000)
    sha1 = hashlib.sha1(data).hexdigest()
    r = requests.put(url + "/images/%s/file?compression=gzip&sha1=%s"
                     "&dataset_guid=1234" % (uuid, sha1), data=data)
    assert r.status_code == 200, r.text
    assert r.json()["files"] == [{"sha1": sha1, "size": 5000,
                                  "compression": "gzip",
                                  "dataset_guid": "1234"}]
    r = requests.post(url + "/images/%s?action=activate" % uuid)
    assert r.status_code == 200
    assert r.json()["state"] == "active"
    assert ISO_MS_RE.match(r.json()["published_at"])
    assert uuids(requests.get(url + "/images")) == [uuid]
    f = requests.get(url + "/images/%s/file" % uuid)
    assert f.content == data and f.headers["Content-MD5"] == b64md5(data)
    r = requests.post(url + "/images/%s?action=activate" % uuid)
    assert r.status_code == 422
    assert r.json()["code"] == "ImageAlreadyActivated"
    r = requests.put(url + "/images/%s/file?compression=gzip" % uuid,
                     data=b"x")
    assert r.status_code == 422
    assert r.json()["code"] == "ImageFilesImmutable"
    r = requests.post(url + "/images/%s?action=disable" % uuid)
    assert r.json()["state"] == "disabled" and r.json()["disabled"] is True
    assert uuids(requests.get(url + "/images")) == []
    r = requests.post(url + "/images/%s?action=enable" % uuid)
    assert r.json()["state"] == "active"
    r = requests.post(url + "/images/%s?action=update" % uuid,
                      json={"description": "new"})
    assert r.status_code == 200 and r.json()["description"] == "new"
    r = requests.post(url + "/images/%s?action=update" % uuid,
                      json={"type": "zvol"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "NotAllowed"
    # persisted: a new server on the same dir sees the same image
    srv2 = make_server(data_dir=srv.data_dir)
    assert requests.get(srv2.url + "/images/" + uuid).json() == \
        requests.get(url + "/images/" + uuid).json()


def test_publish_errors(make_server):
    srv = make_server(mode="public")
    url = srv.url

    def create(body, **kw):
        return requests.post(url + "/images", json=body, **kw)

    r = create({k: v for k, v in manifest().items() if k != "owner"})
    assert r.status_code == 422 and r.json()["code"] == "ValidationFailed"
    assert {"field": "owner", "code": "MissingParameter"} in \
        r.json()["errors"]
    r = create(manifest(uuid=u(1)))
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameter"
    assert r.json()["message"] == 'invalid extra parameters: "uuid"'
    r = create(manifest(published_at="2020-01-01T00:00:00Z"))
    assert r.json()["code"] == "InvalidParameter"
    r = create(manifest(state="active"))
    assert r.status_code == 422 and r.json()["code"] == "ValidationFailed"
    assert r.json()["errors"][0]["field"] == "state"
    r = create(manifest(public=False))
    assert r.status_code == 422
    assert "private images are not allowed" in \
        r.json()["errors"][0]["message"]
    r = create(manifest(origin=u(42)))
    assert r.status_code == 422 and r.json()["code"] == "OriginDoesNotExist"
    r = requests.post(url + "/images", data=json.dumps(manifest()),
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    r = requests.post(url + "/images?action=bogus", json=manifest())
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameter"

    uuid = create(manifest()).json()["uuid"]
    iu = url + "/images/" + uuid
    r = requests.post(iu + "?action=activate")
    assert r.status_code == 422 and r.json()["code"] == "NoActivationNoFile"
    r = requests.post(iu + "?action=bogus")
    assert r.status_code == 422
    assert r.json()["message"] == '"bogus" is not a valid action'
    r = requests.post(iu)
    assert r.json()["message"] == 'no image "action" was specified'
    r = requests.put(iu + "/file", data=b"abc")
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameter"
    r = requests.put(iu + "/file?compression=zip", data=b"abc")
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameter"
    r = requests.put(iu + "/file?compression=none", data=b"")
    assert r.status_code == 400 and r.json()["code"] == "Download"
    r = requests.put(iu + "/file?compression=none&sha1=" + "0" * 40,
                     data=b"abc")
    assert r.status_code == 400 and r.json()["code"] == "Download"
    assert "does not match the uploaded file sha1" in r.json()["message"]
    assert requests.get(iu).json()["files"] == []       # discarded
    assert not os.path.exists(srv.app.store.file_path(uuid))
    r = requests.post(iu + "?action=activate", headers={"If-Match": "abc"})
    assert r.status_code == 412


def test_upload_chunked_and_keepalive_after_error(make_server):
    srv = make_server(mode="dc")
    url = srv.url
    s = requests.Session()
    uuid = s.post(url + "/images", json=manifest()).json()["uuid"]
    # an error response to a PUT with a body must not break keep-alive
    r = s.put(url + "/images/%s/file?compression=zip" % uuid,
              data=b"x" * 100000)
    assert r.status_code == 422
    data = os.urandom(3 * 1024 * 1024 + 7)

    def gen():
        for i in range(0, len(data), 100000):
            yield data[i:i + 100000]

    r = s.put(url + "/images/%s/file?compression=xz" % uuid, data=gen())
    assert r.status_code == 200, r.text
    assert r.json()["files"][0]["sha1"] == hashlib.sha1(data).hexdigest()
    assert srv.requests()[-1]["headers"]["transfer-encoding"] == "chunked"
    assert s.get(url + "/images/%s/file" % uuid).content == data


def test_admin_import(make_server, tmp_path):
    srv = make_server(mode="public")
    url = srv.url
    body = manifest(v=2, uuid=u(7),
                    owner="11111111-2222-4333-8444-555555555555",
                    published_at="2018-04-09T08:25:52Z", state="active",
                    files=[{"sha1": "x", "size": 1, "compression": "gzip"}])
    r = requests.post(url + "/images/%s?action=import" % u(7), json=body)
    assert r.status_code == 200, r.text
    img = r.json()
    assert img["owner"] == OWNER0                 # forced in public mode
    assert img["state"] == "unactivated" and img["files"] == []
    assert img["published_at"] == "2018-04-09T08:25:52Z"
    requests.put(url + "/images/%s/file?compression=gzip" % u(7), data=b"z")
    r = requests.post(url + "/images/%s?action=activate" % u(7))
    assert r.json()["published_at"] == "2018-04-09T08:25:52Z"   # kept
    r = requests.post(url + "/images/%s?action=import" % u(7), json=body)
    assert r.status_code == 409
    assert r.json()["code"] == "ImageUuidAlreadyExists"
    r = requests.post(url + "/images/%s?action=import" % u(8), json=body)
    assert r.status_code == 422 and r.json()["code"] == "InvalidParameter"
    nov = dict(body, uuid=u(9))
    del nov["v"]
    r = requests.post(url + "/images/%s?action=import" % u(9), json=nov)
    assert r.status_code == 422 and r.json()["code"] == "ValidationFailed"
    assert {"field": "v", "code": "MissingParameter"} in r.json()["errors"]
    # dc mode: the unset owner becomes the admin uuid
    dc = make_server(mode="dc", admin_uuid=u(1000))
    r = requests.post(dc.url + "/images/%s?action=import" % u(7),
                      json=dict(body, owner=OWNER0))
    assert r.json()["owner"] == u(1000)


def test_delete_image_and_dependents(make_server, tmp_path):
    d = str(tmp_path / "del")
    seed_image(d, 1)
    seed_image(d, 2, origin=u(1))
    srv = make_server(data_dir=d)
    r = requests.delete(srv.url + "/images/" + u(1))
    assert r.status_code == 422
    assert r.json()["code"] == "ImageHasDependentImages"
    assert u(2) in r.json()["message"]
    r = requests.delete(srv.url + "/images/" + u(2))
    assert r.status_code == 204 and r.content == b""
    assert requests.delete(srv.url + "/images/" + u(1)).status_code == 204
    assert requests.get(srv.url + "/images/" + u(1)).status_code == 404
    assert os.listdir(os.path.join(d, "images")) == []


def test_acl_icon_and_account_scoping(make_server, tmp_path):
    d = str(tmp_path / "acl")
    alice = "aaaaaaaa-0000-4000-8000-000000000001"
    bob = "bbbbbbbb-0000-4000-8000-000000000002"
    seed_image(d, 1, public=False, owner=alice)
    seed_image(d, 2, public=True)
    srv = make_server(data_dir=d, mode="dc")
    url = srv.url + "/images/" + u(1)
    assert requests.get(url + "?account=" + alice).status_code == 200
    r = requests.get(url + "?account=" + bob)
    assert r.status_code == 404 and r.json()["message"] == "image not found"
    assert uuids(requests.get(srv.url + "/images?account=" + bob)) == [u(2)]
    r = requests.post(url + "/acl?account=" + alice, json=[bob])
    assert r.status_code == 200 and r.json()["acl"] == [bob]
    assert requests.get(url + "?account=" + bob).status_code == 200
    assert uuids(requests.get(srv.url + "/images?account=" + bob)) == \
        [u(1), u(2)]
    r = requests.post(url + "?action=update&account=" + bob,
                      json={"description": "x"})
    assert r.status_code == 422 and r.json()["code"] == "NotImageOwner"
    assert requests.post(url + "/acl", json={"a": 1}).status_code == 422
    r = requests.post(url + "/acl?action=remove", json=[bob])
    assert "acl" not in r.json()
    # icons
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(100)
    assert requests.get(url + "/icon").status_code == 404
    r = requests.put(url + "/icon", data=png,
                     headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["icon"] is True
    r = requests.get(url + "/icon")
    assert r.content == png and r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-MD5"] == b64md5(png)
    assert requests.put(url + "/icon", data=png, headers={
        "Content-Type": "text/plain"}).json()["code"] == "Upload"
    r = requests.delete(url + "/icon")
    assert r.status_code == 200 and "icon" not in r.json()


def test_images_added_to_data_dir_are_picked_up(make_server, tmp_path):
    d = str(tmp_path / "live")
    srv = make_server(data_dir=d)
    assert uuids(requests.get(srv.url + "/images")) == []
    seed_image(d, 1)
    seed_image(d, 2)
    assert uuids(requests.get(srv.url + "/images")) == [u(1), u(2)]
    os.unlink(os.path.join(d, "images", u(1) + ".json"))
    assert uuids(requests.get(srv.url + "/images")) == [u(2)]
    # replaced by rename (what add_image_to_data_dir does): picked up
    seed_image(d, 2, description="v2")
    assert requests.get(srv.url + "/images/" + u(2)).json()[
        "description"] == "v2"
    # rewritten in place: needs a forced reload (srv.reload or HTTP)
    path = os.path.join(d, "images", u(2) + ".json")
    rec = json.load(open(path))
    rec["description"] = "v3"
    with open(path, "r+") as f:
        f.write(json.dumps(rec))
        f.truncate()
    assert requests.post(srv.url + "/__reload").json() == {"images": 1}
    assert requests.get(srv.url + "/images/" + u(2)).json()[
        "description"] == "v3"


def test_request_log(make_server):
    srv = make_server()
    requests.get(srv.url + "/images?name=x",
                 headers={"x-request-id": "abc", "User-Agent": "imgadm/9",
                          "Accept-Version": "*"})
    log = srv.requests()
    assert log[-1]["method"] == "GET"
    assert log[-1]["path"] == "/images?name=x"
    assert log[-1]["status"] == 200
    assert log[-1]["headers"]["x-request-id"] == "abc"
    assert log[-1]["headers"]["user-agent"] == "imgadm/9"
    assert log[-1]["headers"]["accept-version"] == "*"
    over_http = requests.get(srv.url + "/__requests").json()
    assert over_http[-1]["path"] == "/images?name=x"
    assert all(not e["path"].startswith("/__") for e in over_http)
    assert requests.delete(srv.url + "/__requests").status_code == 204
    assert requests.get(srv.url + "/__requests").json() == []


# ---------------------------------------------------------------------------
# faults

@pytest.fixture
def file_server(make_server, tmp_path):
    d = str(tmp_path / "faults")
    content = os.urandom(256 * 1024)
    seed_image(d, 1, content=content)
    srv = make_server(data_dir=d)
    return srv, srv.url + "/images/%s/file" % u(1), content


def test_fault_truncate(file_server):
    srv, url, content = file_server
    srv.set_faults(truncate_after=1000, path="/file$", count=2)
    r = requests.get(url, stream=True)
    assert int(r.headers["Content-Length"]) == len(content)
    with pytest.raises((requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ConnectionError)):
        r.content
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/images/%s/file" % u(1))
    resp = conn.getresponse()
    assert resp.getheader("Content-Length") == str(len(content))
    with pytest.raises(http.client.IncompleteRead) as ei:
        resp.read()
    assert ei.value.partial == content[:1000]
    conn.close()
    # count=2 used up: the next download is whole
    assert requests.get(url).content == content
    assert srv.faults()[0]["applied"] == 2


def test_fault_truncate_json_and_path_filter(file_server):
    srv, url, content = file_server
    srv.set_faults(truncate_after=5, path="^/images$")
    assert requests.get(srv.url + "/ping").status_code == 200  # not matched
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/images")
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()


def test_fault_corrupt(file_server):
    srv, url, content = file_server
    srv.set_faults(corrupt=True)
    r = requests.get(url)
    assert r.status_code == 200
    assert len(r.content) == len(content)
    assert hashlib.sha1(r.content).hexdigest() != r.headers["Etag"]
    assert b64md5(r.content) != r.headers["Content-MD5"]
    srv.clear_faults()
    assert hashlib.sha1(requests.get(url).content).hexdigest() == \
        hashlib.sha1(content).hexdigest()


def test_fault_5xx_then_success_with_retry_after(file_server):
    srv, url, content = file_server
    srv.set_faults(fail_5xx=2, retry_after=3, path="/file")
    for dummy in range(2):
        r = requests.get(url)
        assert r.status_code == 503
        assert r.json()["code"] == "ServiceUnavailableError"
        assert r.headers["Retry-After"] == "3"
    r = requests.get(url)
    assert r.status_code == 200 and r.content == content
    assert [e["status"] for e in srv.requests(path="/file")] == \
        [503, 503, 200]


def test_fault_reset(file_server):
    srv, url, content = file_server
    srv.set_faults(reset=True, reset_after=4096)
    with pytest.raises((requests.exceptions.ConnectionError,
                        requests.exceptions.ChunkedEncodingError)):
        requests.get(url).content
    # at the socket level it is a reset, not a clean close
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /images/%s/file HTTP/1.1\r\nHost: x\r\n\r\n"
              % u(1).encode())
    with pytest.raises(ConnectionResetError):
        while s.recv(65536):
            pass
    s.close()


def test_fault_slow_and_timeout(file_server):
    srv, url, content = file_server
    srv.set_faults(slow=2, path="/ping")
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(srv.url + "/ping", timeout=0.5)
    assert time.monotonic() - t0 < 1.5
    srv.set_faults(slow_body_bps=512 * 1024)
    t0 = time.monotonic()
    r = requests.get(url)
    assert r.content == content
    assert time.monotonic() - t0 >= 0.4           # 256 KiB at 512 KiB/s


def test_faults_over_http(file_server):
    srv, url, content = file_server
    r = requests.post(srv.url + "/__faults",
                      json={"fail_5xx": 1, "path": "/ping"})
    assert r.status_code == 200 and r.json()[0]["fail_5xx"] == 1
    assert requests.get(srv.url + "/ping").status_code == 503
    assert requests.get(srv.url + "/ping").status_code == 200
    assert requests.get(srv.url + "/__faults").json()[0]["applied"] == 1
    r = requests.post(srv.url + "/__faults?append=true",
                      json=[{"corrupt": True}])
    assert len(r.json()) == 2
    assert requests.post(srv.url + "/__faults",
                         json={"nope": 1}).status_code == 400
    assert requests.delete(srv.url + "/__faults").status_code == 204
    assert requests.get(srv.url + "/__faults").json() == []


def test_cli_server(tmp_path):
    d = str(tmp_path / "cli")
    seed_image(d, 1, channels=["staging"])
    port_file = str(tmp_path / "port")
    pid_file = str(tmp_path / "pid")
    script = os.path.join(os.path.dirname(imgapi_server.__file__),
                          "imgapi_server.py")
    p = subprocess.Popen(
        [sys.executable, script, "--data-dir", d, "--port", "0",
         "--port-file", port_file, "--pid-file", pid_file,
         "--channels", "dev*,staging", "--fail-5xx", "1",
         "--fault-path", "^/ping$", "--retry-after", "1"],
        stdout=subprocess.PIPE, universal_newlines=True)
    try:
        url = p.stdout.readline().strip()
        assert re.match(r"^http://127\.0\.0\.1:\d+$", url)
        assert open(port_file).read().strip() == url.rsplit(":", 1)[1]
        assert int(open(pid_file).read()) == p.pid
        r = requests.get(url + "/ping")
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert requests.get(url + "/ping").status_code == 200
        assert uuids(requests.get(url + "/images?channel=staging")) == [u(1)]
    finally:
        p.terminate()
        rc = p.wait(10)
    assert rc == 0
    assert not os.path.exists(pid_file)


# ---------------------------------------------------------------------------
# HTTP Signature auth (imgapi.md section 9)

def _rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def sig_keys():
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric import dsa
    return {"alice": _rsa_key(), "other": _rsa_key(),
            "dsa": dsa.generate_private_key(key_size=1024)}   # SSH: 1024


def _publine(key):
    from cryptography.hazmat.primitives import serialization
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # SSH DSA keys are deprecated
        return key.public_key().public_bytes(
            serialization.Encoding.OpenSSH,
            serialization.PublicFormat.OpenSSH).decode()


def sig_headers(key, user="alice", algorithm="rsa-sha256", date=None,
                signed=None, extra=None, url=None, method="GET"):
    """Date + Authorization as http-signature 0.10 wants them."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, padding
    date = date or imgapi_server.http_date()
    hdrs = {"Date": date}
    hdrs.update(extra or {})
    lower = {k.lower(): v for k, v in hdrs.items()}
    lines = []
    for h in (signed or ["date"]):
        if h == "request-line":
            lines.append("%s %s HTTP/1.1" % (method, url))
        else:
            lines.append("%s: %s" % (h, lower[h]))
    data = "\n".join(lines).encode()
    hcls = hashes.SHA1 if algorithm.endswith("sha1") else hashes.SHA256
    if isinstance(key, dsa.DSAPrivateKey):
        sig = key.sign(data, hcls())
    else:
        sig = key.sign(data, padding.PKCS1v15(), hcls())
    authz = 'Signature keyId="%s",algorithm="%s"' % (user, algorithm)
    if signed:
        authz += ',headers="%s"' % " ".join(signed)
    authz += ',signature="%s"' % base64.b64encode(sig).decode()
    hdrs["Authorization"] = authz
    return hdrs


@pytest.fixture
def auth_server(make_server, sig_keys):
    return make_server(auth_keys={
        "alice": [_publine(sig_keys["alice"]), "ssh-rsa garbage"],
        "dsa": [_publine(sig_keys["dsa"])]})


def _unauth(r, message):
    assert r.status_code == 401, r.text
    assert r.json() == {"code": "UnauthorizedError", "message": message}
    assert r.headers["Server"] == "imgapi/4.13.1"


def test_auth_writes_need_a_signature(auth_server, sig_keys):
    srv = auth_server
    _unauth(requests.post(srv.url + "/images", json=manifest()),
            "Unauthorized")
    _unauth(requests.delete(srv.url + "/images/" + u(1)), "Unauthorized")
    _unauth(requests.put(srv.url + "/images/%s/file?compression=none"
                         % u(1), data=b"x"), "Unauthorized")
    srv.reload()
    assert srv.app.store.all() == []
    # signed: the whole publish sequence works, and the log has the user
    key = sig_keys["alice"]
    r = requests.post(srv.url + "/images", json=manifest(),
                      headers=sig_headers(key))
    assert r.status_code == 200, r.text
    uuid = r.json()["uuid"]
    data = b"signed image"
    r = requests.put(srv.url + "/images/%s/file?compression=none&sha1=%s"
                     % (uuid, hashlib.sha1(data).hexdigest()), data=data,
                     headers=sig_headers(key))
    assert r.status_code == 200, r.text
    r = requests.post(srv.url + "/images/%s?action=activate" % uuid,
                      headers=sig_headers(key))
    assert r.status_code == 200 and r.json()["state"] == "active"
    assert [e.get("user") for e in srv.requests()][-3:] == ["alice"] * 3
    r = requests.delete(srv.url + "/images/" + uuid, headers=sig_headers(key))
    assert r.status_code == 204


def test_auth_passive_and_unchecked_endpoints(auth_server, sig_keys,
                                              tmp_path):
    srv = auth_server
    seed_image(srv.data_dir, 1)
    for path in ("/ping", "/images", "/images/" + u(1)):
        assert requests.get(srv.url + path).status_code == 200
        # a sent Authorization must verify
        bad = sig_headers(sig_keys["other"])
        _unauth(requests.get(srv.url + path, headers=bad), "Unauthorized")
        assert requests.get(srv.url + path, headers=sig_headers(
            sig_keys["alice"])).status_code == 200
    # file, icon, jobs: never checked, even with garbage
    junk = {"Authorization": "Basic Zm9vOmJhcg=="}
    r = requests.get(srv.url + "/images/%s/file" % u(1), headers=junk)
    assert r.status_code == 200
    r = requests.get(srv.url + "/images/%s/icon" % u(1), headers=junk)
    assert r.status_code == 404   # no icon, but not a 401
    # unknown routes: 404 before auth
    r = requests.post(srv.url + "/nope")
    assert r.status_code == 404


def test_auth_channels_passive(make_server, sig_keys):
    srv = make_server(channels="dev*,staging",
                      auth_keys={"alice": [_publine(sig_keys["alice"])]})
    assert requests.get(srv.url + "/channels").status_code == 200
    _unauth(requests.get(srv.url + "/channels",
                         headers=sig_headers(sig_keys["other"])),
            "Unauthorized")


def test_auth_ping_user_and_listing(auth_server, sig_keys):
    srv = auth_server
    assert requests.get(srv.url + "/ping").json() == {
        "ping": "pong", "version": "4.13.1", "imgapi": True}
    body = requests.get(srv.url + "/ping",
                        headers=sig_headers(sig_keys["alice"])).json()
    assert body["user"] == "alice" and body["pid"] == os.getpid()
    seed_image(srv.data_dir, 2, state="unactivated", published_at=None)
    assert uuids(requests.get(srv.url + "/images?state=unactivated")) == []
    assert uuids(requests.get(srv.url + "/images?state=unactivated",
                              headers=sig_headers(sig_keys["alice"]))) \
        == [u(2)]
    r = requests.get(srv.url + "/images?inclAdminFields=true")
    assert r.status_code == 401
    r = requests.get(srv.url + "/images?inclAdminFields=true",
                     headers=sig_headers(sig_keys["alice"]))
    assert r.status_code == 200


def test_auth_error_messages(auth_server, sig_keys):
    url = auth_server.url + "/images"
    key = sig_keys["alice"]
    body = manifest()

    def post(headers):
        return requests.post(url, json=body, headers=headers)

    h = sig_headers(key)
    del h["Date"]
    _unauth(post(h), "date was not in the request")
    _unauth(post({"Authorization": "Basic Ym9iOnMzY3JldA=="}),
            "bad param format")
    h = sig_headers(key)
    h["Authorization"] = h["Authorization"].replace('keyId="alice",', "")
    _unauth(post(h), "keyId was not specified")
    _unauth(post({"Authorization": 'Signature keyId="alice",'
                  'algorithm="rsa-sha256"', "Date": imgapi_server.http_date()}),
            "signature was not specified")
    h = sig_headers(key)
    h["Authorization"] = h["Authorization"].replace("Signature ", "Sig ")
    _unauth(post(h), 'scheme was not "Signature"')
    old = imgapi_server.http_date(time.time() - 3600)
    r = post(sig_headers(key, date=old))
    assert r.status_code == 401
    assert re.match(r"^clock skew of 3600(\.\d+)?s was greater than 300s$",
                    r.json()["message"])
    assert post(sig_headers(key, date=imgapi_server.http_date(
        time.time() - 200))).status_code == 200
    h = sig_headers(key)
    h["Authorization"] = h["Authorization"].replace("rsa-sha256",
                                                    "hmac-sha256")
    _unauth(post(h), 'Unauthorized ("HMAC-SHA256" is not a supported '
            'http-signature signing algorithm)')
    h["Authorization"] = h["Authorization"].replace("hmac-sha256",
                                                    "ecdsa-sha256")
    _unauth(post(h), "ecdsa-sha256 is not supported")
    h["Authorization"] = h["Authorization"].replace("ecdsa-sha256",
                                                    "rsa-sha512")
    _unauth(post(h), 'Unauthorized ("RSA-SHA512" is not a supported '
            'http-signature signing algorithm)')
    _unauth(post(sig_headers(key, user="nobody")), "Unauthorized")
    _unauth(post(sig_headers(sig_keys["other"])), "Unauthorized")
    h = sig_headers(key, signed=["request-line"], url="/images",
                    method="POST")
    _unauth(post(h), "date was not a signed header")


def test_auth_algorithms_and_signed_headers(auth_server, sig_keys):
    url = auth_server.url
    key = sig_keys["alice"]
    r = requests.post(url + "/images", json=manifest(),
                      headers=sig_headers(key, algorithm="rsa-sha1"))
    assert r.status_code == 200, r.text
    r = requests.post(url + "/images", json=manifest(),
                      headers=sig_headers(sig_keys["dsa"], user="dsa",
                                          algorithm="dsa-sha1"))
    assert r.status_code == 200, r.text
    # a signature made with another hash than announced does not verify
    h = sig_headers(key, algorithm="rsa-sha1")
    h["Authorization"] = h["Authorization"].replace("rsa-sha1", "rsa-sha256")
    _unauth(requests.post(url + "/images", json=manifest(), headers=h),
            "Unauthorized")
    h = sig_headers(key, signed=["date", "request-line"], method="POST",
                    url="/images?channel=x")
    # request-line covers the query: another query does not verify
    _unauth(requests.post(url + "/images?channel=y", json=manifest(),
                          headers=h), "Unauthorized")
    h = sig_headers(key, signed=["date", "request-line"], method="POST",
                    url="/images")
    assert requests.post(url + "/images", json=manifest(),
                         headers=h).status_code == 200
    h = sig_headers(key, signed=["x-date"],
                    extra={"x-date": imgapi_server.http_date()})
    del h["Date"]
    assert requests.post(url + "/images", json=manifest(),
                         headers=h).status_code == 200


def test_auth_keys_dir_reload_and_cli(tmp_path, sig_keys):
    keys_dir = tmp_path / "authkeys"
    keys_dir.mkdir()
    (keys_dir / "alice.keys").write_text(
        "# comment\n%s alice@host\n" % _publine(sig_keys["alice"]))
    d = str(tmp_path / "data")
    script = os.path.join(os.path.dirname(imgapi_server.__file__),
                          "imgapi_server.py")
    p = subprocess.Popen([sys.executable, script, "--data-dir", d,
                          "--auth-keys", str(keys_dir)],
                         stdout=subprocess.PIPE, universal_newlines=True)
    try:
        url = p.stdout.readline().strip()
        r = requests.get(url + "/ping", headers=sig_headers(sig_keys["alice"]))
        assert r.json()["user"] == "alice"
        _unauth(requests.get(url + "/ping", headers=sig_headers(
            sig_keys["other"], user="bob")), "Unauthorized")
        (keys_dir / "bob.keys").write_text(_publine(sig_keys["other"]) + "\n")
        _unauth(requests.post(url + "/authkeys/reload"), "Unauthorized")
        r = requests.post(url + "/authkeys/reload",
                          headers=sig_headers(sig_keys["alice"]))
        assert r.status_code == 200 and r.json() == {}
        r = requests.get(url + "/ping", headers=sig_headers(
            sig_keys["other"], user="bob"))
        assert r.json()["user"] == "bob"
    finally:
        p.terminate()
        assert p.wait(10) == 0
    # a missing keys directory is a clear start-up error
    r = subprocess.run([sys.executable, script, "--data-dir", d,
                        "--auth-keys", str(tmp_path / "missing")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30, check=False)
    assert r.returncode == 2 and "imgapi_server:" in r.stderr


def test_auth_refused_in_dc_mode_and_without_crypto(tmp_path, monkeypatch):
    with pytest.raises(ValueError):
        imgapi_server.start_server(str(tmp_path / "d"), mode="dc",
                                   auth_keys={})
    monkeypatch.setattr(imgapi_server, "_load_crypto", lambda: None)
    with pytest.raises(RuntimeError) as ei:
        imgapi_server.start_server(str(tmp_path / "d"), auth_keys={})
    assert "cryptography" in str(ei.value)


def test_no_auth_by_default_ignores_authorization(make_server):
    srv = make_server()
    r = requests.post(srv.url + "/images", json=manifest(),
                      headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 200
    assert srv.requests()[-1]["headers"]["authorization"] == \
        "Basic Zm9vOmJhcg=="
