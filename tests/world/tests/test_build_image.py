"""Tests of build_image.py and zpool.sh on real ZFS pools (zfs-fuse).

The `pools` fixture creates a build pool and a separate receive pool; if
ZFS cannot be set up these tests fail (they are never skipped).
"""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
import requests

import build_image
from build_image import (ZfsError, build_image as build, compress_stream,
                         decompressor_argv, zfs_destroy, zfs_exists, zfs_get)
from world_helpers import ZPOOL_SH, zpool_sh

ISO_MS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}
KEY_ORDER = ["v", "uuid", "owner", "name", "version", "state", "disabled",
             "public", "published_at", "type", "os", "files", "description",
             "requirements", "tags", "origin"]


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def receive(path, compression, target):
    """Decompress `path` the way imgadm does and `zfs receive` it."""
    with open(path, "rb") as f:
        dec = decompressor_argv(compression)
        if dec is None:
            return subprocess.run(["zfs", "receive", target], stdin=f,
                                  stderr=subprocess.PIPE, check=False)
        d = subprocess.Popen(dec, stdin=f, stdout=subprocess.PIPE)
        try:
            return subprocess.run(["zfs", "receive", target],
                                  stdin=d.stdout, stderr=subprocess.PIPE, check=False)
        finally:
            d.stdout.close()
            d.wait()


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "none"])
def test_compress_stream_roundtrip(tmp_path, compression):
    data = os.urandom(300000) + b"abc" * 100000
    out = str(tmp_path / "out")
    info = compress_stream(data, out, compression)
    assert info["size"] == os.path.getsize(out)
    assert info["sha1"] == sha1_file(out)
    raw = open(out, "rb").read()
    if compression == "none":
        assert raw == data
    else:
        assert raw.startswith(MAGIC[compression])
        back = subprocess.run(decompressor_argv(compression), input=raw,
                              stdout=subprocess.PIPE, check=True).stdout
        assert back == data
    # a file object with a real fd streams straight into the compressor
    src = str(tmp_path / "src")
    with open(src, "wb") as f:
        f.write(data)
    with open(src, "rb") as f:
        info2 = compress_stream(f, str(tmp_path / "out2"), compression)
    if compression in ("none", "bzip2", "xz"):   # deterministic output
        assert info2["sha1"] == info["sha1"]


def test_compress_stream_rejects_unknown(tmp_path):
    with pytest.raises(ValueError):
        compress_stream(b"x", str(tmp_path / "o"), "zstd")


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "none"])
def test_full_and_incremental_images(pools, tmp_path, compression):
    build_pool, recv_pool = pools
    out = str(tmp_path / "out")
    base = build(build_pool, out, "base-" + compression, "1.0.0",
                 compression=compression, size_mib=0.25, data="random")
    inc = build(build_pool, out, "inc-" + compression, "2.0.0",
                compression=compression, origin=base, size_mib=0.1,
                data="text", files={"etc/inc.txt": "incremental\n"})
    bm, im = base["manifest"], inc["manifest"]

    for res, m in ((base, bm), (inc, im)):
        fp = res["file_path"]
        assert fp.endswith(".zfs" + build_image.EXTENSIONS[compression])
        assert os.path.basename(fp).startswith("%s-%s.zfs"
                                               % (m["name"], m["version"]))
        assert m["files"][0]["size"] == os.path.getsize(fp)
        assert m["files"][0]["sha1"] == sha1_file(fp)
        assert m["files"][0]["compression"] == compression
        assert m["files"][0]["dataset_guid"] == zfs_get(res["snapshot"],
                                                        "guid")
        assert ISO_MS_RE.match(m["published_at"])
        assert m["owner"] == "00000000-0000-0000-0000-000000000000"
        assert m["state"] == "active" and m["disabled"] is False
        assert m["requirements"] == {
            "min_platform": {"7.0": "20130101T000000Z"}}
        assert [k for k in KEY_ORDER if k in m] == list(m)
        with open(res["manifest_path"]) as f:
            assert json.load(f) == m
        head = open(fp, "rb").read(8)
        if compression == "none":
            assert not any(head.startswith(x) for x in MAGIC.values())
        else:
            assert head.startswith(MAGIC[compression])
    assert "origin" not in bm
    assert im["origin"] == bm["uuid"]
    assert zfs_get(inc["dataset"], "origin") == base["snapshot"]

    # The streams are valid, and the incremental one needs its origin.
    rb = "%s/%s" % (recv_pool, bm["uuid"])
    ri = "%s/%s" % (recv_pool, im["uuid"])
    try:
        p = receive(inc["file_path"], compression, ri)
        assert p.returncode != 0, "incremental received without its origin"
        assert b"origin" in p.stderr, p.stderr
        assert not zfs_exists(ri)
        p = receive(base["file_path"], compression, rb)
        assert p.returncode == 0, p.stderr
        assert zfs_get(rb + "@final", "guid") == bm["files"][0][
            "dataset_guid"]
        p = receive(inc["file_path"], compression, ri)
        assert p.returncode == 0, p.stderr
        assert zfs_get(ri, "origin") == rb + "@final"
        assert zfs_get(ri + "@final", "guid") == im["files"][0][
            "dataset_guid"]
        mnt = zfs_get(ri, "mountpoint")
        marker = json.load(open(os.path.join(mnt, "etc",
                                             "imgtest-" + im["uuid"])))
        assert marker["uuid"] == im["uuid"] and \
            marker["origin"] == bm["uuid"]
        # the base image's files are inherited through the clone
        assert os.path.exists(os.path.join(mnt, "etc",
                                           "imgtest-" + bm["uuid"]))
        assert os.path.getsize(os.path.join(
            mnt, "data", "blob-" + bm["uuid"])) == 256 * 1024
        assert open(os.path.join(mnt, "etc", "inc.txt")).read() == \
            "incremental\n"
    finally:
        zfs_destroy(ri)
        zfs_destroy(rb)
    assert not zfs_exists(rb)


def test_build_into_server_data_dir(pools, tmp_path, make_server):
    build_pool, _unused = pools
    d = str(tmp_path / "srv")
    res = build(build_pool, str(tmp_path / "out"), "served", "1.0.0",
                server_data_dir=d, channels=["staging"],
                extra_manifest={"tags": {"role": "db"}, "description": None},
                published_at="2024-05-06T07:08:09.123Z")
    m = res["manifest"]
    assert m["tags"] == {"role": "db"} and "description" not in m
    srv = make_server(data_dir=d, channels="dev*,staging")
    assert requests.get(srv.url + "/images/" + m["uuid"]).status_code == 404
    r = requests.get(srv.url + "/images/%s?channel=staging" % m["uuid"],
                     headers={"Accept-Version": "~2"})
    assert r.status_code == 200
    got = r.json()
    assert got["channels"] == ["staging"]
    assert got["published_at"] == "2024-05-06T07:08:09.123Z"
    assert got["files"] == m["files"]
    f = requests.get(srv.url + "/images/%s/file?channel=staging" % m["uuid"])
    assert hashlib.sha1(f.content).hexdigest() == m["files"][0]["sha1"]
    assert f.headers["Content-Length"] == str(m["files"][0]["size"])


def test_build_errors(pools, tmp_path):
    build_pool, _unused = pools
    with pytest.raises(ZfsError, match="was not built"):
        build(build_pool, str(tmp_path), "orphan", "1",
              origin="11111111-2222-4333-8444-555555555555")
    res = build(build_pool, str(tmp_path), "dup", "1")
    with pytest.raises(ZfsError, match="already exists"):
        build(build_pool, str(tmp_path), "dup", "2", uuid=res["uuid"])
    with pytest.raises(ValueError):
        build(build_pool, str(tmp_path), "bad", "1", compression="zip")


def test_cli_build(pools, tmp_path):
    build_pool, _unused = pools
    script = os.path.join(os.path.dirname(build_image.__file__),
                          "build_image.py")
    out = str(tmp_path / "cli")
    p = subprocess.run(
        [sys.executable, script, "--pool", build_pool, "--out-dir", out,
         "--name", "cli", "--version", "1.2.3", "--compression", "bzip2",
         "--size-mib", "0.05", "--data", "zeros", "--state", "disabled",
         "--uuid", "99999999-8888-4777-8666-555555555555",
         "--file", "etc/motd=hello", "--server-data-dir", out + "/srv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, check=False)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    m = res["manifest"]
    assert m["uuid"] == "99999999-8888-4777-8666-555555555555"
    assert m["state"] == "disabled" and m["disabled"] is True
    assert res["file_path"] == os.path.join(out, "cli-1.2.3.zfs.bz2")
    stored = json.load(open(os.path.join(out, "srv", "images",
                                         m["uuid"] + ".json")))
    assert stored["files"][0]["sha1"] == m["files"][0]["sha1"]
    assert stored["files"][0]["contentMD5"]


def test_cleanup_builds(pools, tmp_path):
    """Runs last in this module: it removes every build dataset."""
    build_pool, _unused = pools
    base = build(build_pool, str(tmp_path), "cb", "1")
    inc = build(build_pool, str(tmp_path), "cb", "2", origin=base)
    # An incremental received into the *build* pool becomes a clone of the
    # build snapshot (found by GUID): cleanup refuses unless forced.
    outside = "%s/outside-%s" % (build_pool, inc["uuid"][:8])
    p = receive(inc["file_path"], "gzip", outside)
    assert p.returncode == 0, p.stderr
    assert zfs_get(outside, "origin") == base["snapshot"]
    with pytest.raises(ZfsError, match="dependent clones"):
        build_image.cleanup_builds(build_pool)
    assert zfs_exists(base["dataset"])
    assert build_image.cleanup_builds(build_pool, force=True) is True
    assert not zfs_exists(build_image.build_root(build_pool))
    assert not zfs_exists(outside)
    assert build_image.cleanup_builds(build_pool) is False


def test_zpool_sh_up_is_idempotent_and_down_removes(pools):
    pool = "worldtestz"
    try:
        first = zpool_sh("up", pool, "128M").stdout.strip()
        assert first == "%s /%s" % (pool, pool)
        assert zpool_sh("up", pool, "128M").stdout.strip() == first
        assert zpool_sh("status", pool, check=False).returncode == 0
        assert os.path.exists("/var/tmp/smartos-imgadm-pools/%s.img" % pool)
    finally:
        zpool_sh("down", pool)
    assert zpool_sh("status", pool, check=False).returncode == 1
    assert not os.path.exists("/var/tmp/smartos-imgadm-pools/%s.img" % pool)
    p = subprocess.run([ZPOOL_SH, "up", "bad/name"], stderr=subprocess.PIPE, check=False)
    assert p.returncode != 0
