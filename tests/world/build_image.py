"""Build real SmartOS-style test images on a real ZFS pool.

An image is a ZFS dataset POOL/imgbuild/UUID (or, for an incremental
image, a clone of POOL/imgbuild/ORIGIN@final built earlier by this tool)
with a few files in it, snapshotted as @final and sent with
`zfs send [-i POOL/imgbuild/ORIGIN@final] POOL/imgbuild/UUID@final`
through gzip/bzip2/xz (or nothing) into OUT_DIR/NAME-VERSION.zfs[.gz|.bz2|.xz].
A v2 manifest goes to OUT_DIR/NAME-VERSION.imgmanifest.
With --type zvol the dataset is a volume (`zfs create -V`) whose device
gets the data; --send-flags adds `zfs send` flags (e.g. "-c -L -e").

Everything streams through pipes between subprocesses; no image stream
is ever held in memory. Only the Python standard library is used.

Build datasets stay (later incremental builds need them); remove them with
cleanup_builds(pool). Build in a pool that imgadm does NOT install into:
`zfs receive` of an incremental stream finds its origin snapshot by GUID
anywhere in the target pool, so POOL/imgbuild/ORIGIN@final would satisfy
it and hide a missing origin image.

CLI:
  build_image.py --pool P --out-dir D --name N --version V [options]
  build_image.py cleanup --pool P [--force]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib

CHUNK = 1024 * 1024
UNSET_OWNER_UUID = "00000000-0000-0000-0000-000000000000"
BUILD_PARENT = "imgbuild"
COMPRESSIONS = ("gzip", "bzip2", "xz", "none")
EXTENSIONS = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "none": ""}
MANIFEST_KEY_ORDER = [
    "v", "uuid", "owner", "name", "version", "state", "disabled", "public",
    "published_at", "type", "os", "files", "description", "requirements",
    "tags", "origin", "nic_driver", "disk_driver", "cpu_type", "image_size",
]
ZVOL_MIN_MIB = 8
ZVOL_DEV_TIMEOUT = 60
DEFAULT_REQUIREMENTS = {"min_platform": {"7.0": "20130101T000000Z"}}
_DEFAULT = object()


class ZfsError(RuntimeError):
    pass


# ---------------------------------------------------------------------------
# zfs helpers

def run(argv, check=True, input=None):
    """Run a command, capture output; ZfsError with stderr on failure."""
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    if check and p.returncode != 0:
        raise ZfsError("%s failed (exit %d): %s"
                       % (" ".join(argv), p.returncode,
                          p.stderr.decode("utf-8", "replace").strip()))
    return p


def zfs_exists(name, zfs="zfs"):
    return run([zfs, "list", "-H", "-o", "name", "-t", "all", name],
               check=False).returncode == 0


def zfs_get(name, prop, zfs="zfs"):
    """Exact property value (`zfs get -Hp -o value`)."""
    return run([zfs, "get", "-Hp", "-o", "value", prop, name]) \
        .stdout.decode().strip()


def zfs_list(root, zfs="zfs", types="filesystem"):
    p = run([zfs, "list", "-H", "-o", "name", "-t", types, "-r", root],
            check=False)
    if p.returncode != 0:
        return []
    return [ln for ln in p.stdout.decode().splitlines() if ln]


def _pool_of(name):
    return name.split("/", 1)[0].split("@", 1)[0]


def zfs_dependents(name, zfs="zfs"):
    """Filesystems (anywhere in the pool) that are clones of snapshots of
    `name` or of its descendants, transitively (outside `name` itself)."""
    pool = _pool_of(name)
    p = run([zfs, "list", "-H", "-o", "name,origin", "-t",
             "filesystem,volume", "-r", pool], check=False)
    origin_of = {}
    for ln in p.stdout.decode().splitlines():
        parts = ln.split("\t")
        if len(parts) == 2 and parts[1] not in ("-", ""):
            origin_of[parts[0]] = parts[1].split("@", 1)[0]

    def inside(ds, roots):
        return any(ds == r or ds.startswith(r + "/") for r in roots)

    roots = [name]
    deps = []
    changed = True
    while changed:
        changed = False
        for ds, org in origin_of.items():
            if inside(org, roots) and not inside(ds, roots):
                roots.append(ds)
                deps.append(ds)
                changed = True
    return deps


def zfs_unmount_tree(name, zfs="zfs"):
    """Unmount every filesystem under `name`, deepest first (zfs-fuse
    cannot destroy or rename mounted filesystems)."""
    for ds in sorted(zfs_list(name, zfs), key=lambda d: d.count("/"),
                     reverse=True):
        if zfs_get(ds, "mounted", zfs) == "yes":
            run([zfs, "unmount", ds], check=False)


def zfs_destroy(name, zfs="zfs", dependents=False):
    """Unmount and destroy `name` recursively. With `dependents`, clones of
    its snapshots elsewhere in the pool are destroyed too (zfs destroy -R);
    without, their presence is an error. Returns False if it did not
    exist."""
    if not zfs_exists(name, zfs):
        return False
    deps = zfs_dependents(name, zfs) if "@" not in name else []
    if deps and not dependents:
        raise ZfsError("%s has dependent clones: %s" % (name, ", ".join(deps)))
    for d in deps:
        zfs_unmount_tree(d, zfs)
    if "@" not in name:
        zfs_unmount_tree(name, zfs)
    last = None
    for dummy in range(5):
        p = run([zfs, "destroy", "-R" if deps else "-r", name], check=False)
        if p.returncode == 0 or not zfs_exists(name, zfs):
            return True
        last = p.stderr.decode("utf-8", "replace").strip()
        time.sleep(0.2)
        if "@" not in name:
            zfs_unmount_tree(name, zfs)
    raise ZfsError("zfs destroy %s failed: %s" % (name, last))


def build_root(pool):
    return "%s/%s" % (pool, BUILD_PARENT)


def build_dataset(pool, image_uuid):
    return "%s/%s/%s" % (pool, BUILD_PARENT, image_uuid)


def cleanup_builds(pool, zfs="zfs", force=False):
    """Destroy POOL/imgbuild and every build dataset under it. Clones of
    build snapshots outside it (e.g. an incremental image received into
    the same pool) are an error unless `force`, which destroys them too."""
    return zfs_destroy(build_root(pool), zfs=zfs, dependents=force)


# ---------------------------------------------------------------------------
# compression

def compressor_argv(compression, level=None):
    """argv of the compressor writing to stdout, or None for 'none'."""
    if compression not in COMPRESSIONS:
        raise ValueError("compression must be one of %s, not %r"
                         % (", ".join(COMPRESSIONS), compression))
    if compression == "none":
        return None
    argv = [compression, "-c"]
    if level is not None:
        argv.append("-%d" % int(level))
    return argv


def decompressor_argv(compression):
    """What imgadm runs to decompress (`gzip -cdfq` etc.), or None."""
    if compression not in COMPRESSIONS:
        raise ValueError("unknown compression %r" % (compression,))
    if compression == "none":
        return None
    return [compression, "-cdfq"]


def compress_stream(src, dst, compression="gzip", level=None):
    """Stream `src` through the compressor into `dst`.

    src: a path, a binary file object (one with a real fileno, such as a
         subprocess pipe, is handed straight to the compressor), bytes, or
         an iterable of bytes.
    dst: a path or a writable binary file object.
    Returns {"size", "sha1", "md5"} of the bytes written to dst (i.e. the
    compressed stream). Raises subprocess.CalledProcessError if the
    compressor fails.
    """
    close_src = close_dst = False
    if isinstance(src, (str, os.PathLike)):
        src = open(src, "rb")
        close_src = True
    if isinstance(dst, (str, os.PathLike)):
        dst = open(dst, "wb")
        close_dst = True
    sha1 = hashlib.sha1()
    md5 = hashlib.md5()
    size = 0

    def emit(data):
        nonlocal size
        sha1.update(data)
        md5.update(data)
        size += len(data)
        dst.write(data)

    def chunks_of(obj):
        if isinstance(obj, (bytes, bytearray, memoryview)):
            yield bytes(obj)
        elif hasattr(obj, "read"):
            while True:
                b = obj.read(CHUNK)
                if not b:
                    return
                yield b
        else:
            yield from obj

    try:
        argv = compressor_argv(compression, level)
        if argv is None:
            for b in chunks_of(src):
                emit(b)
            return {"size": size, "sha1": sha1.hexdigest(),
                    "md5": md5.hexdigest()}
        fileno = None
        if hasattr(src, "fileno"):
            try:
                fileno = src.fileno()
            except (OSError, ValueError):
                fileno = None
        errf = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            argv, stdin=fileno if fileno is not None else subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=errf)
        feeder = None
        feed_err = []
        if fileno is None:
            def feed():
                try:
                    for b in chunks_of(src):
                        proc.stdin.write(b)
                except Exception as e:   # e.g. BrokenPipe if it died
                    feed_err.append(e)
                finally:
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass
            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
        try:
            while True:
                b = proc.stdout.read(CHUNK)
                if not b:
                    break
                emit(b)
        finally:
            proc.stdout.close()
            rc = proc.wait()
            if feeder is not None:
                feeder.join()
        if rc != 0:
            errf.seek(0)
            raise subprocess.CalledProcessError(rc, argv,
                                                stderr=errf.read())
        errf.close()
        if feed_err:
            raise feed_err[0]
        return {"size": size, "sha1": sha1.hexdigest(),
                "md5": md5.hexdigest()}
    finally:
        if close_src:
            src.close()
        if close_dst:
            dst.close()


# ---------------------------------------------------------------------------
# building

def iso_ms(dt=None):
    dt = dt or datetime.datetime.now(datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
        dt.microsecond // 1000)


def _write_data(path, size_mib, kind, seed):
    with open(path, "wb") as f:
        _write_data_to(f, size_mib, kind, seed)


def _write_data_to(f, size_mib, kind, seed):
    """Write `size_mib` MiB of `kind` data to the open binary file `f` and
    fsync it."""
    mib = 1024 * 1024
    text_line = ("imgtest %s the quick brown fox jumps over the lazy dog "
                 "0123456789\n" % seed).encode()
    text_block = (text_line * (mib // len(text_line) + 1))[:mib]
    zeros = b"\0" * mib
    for dummy in range(int(size_mib)):
        if kind == "random":
            f.write(os.urandom(mib))
        elif kind == "zeros":
            f.write(zeros)
        elif kind == "text":
            f.write(text_block)
        else:
            raise ValueError("data must be random, zeros or text")
    frac = size_mib - int(size_mib)
    if frac > 0:
        n = int(frac * mib)
        f.write(os.urandom(n) if kind == "random" else
                (zeros[:n] if kind == "zeros" else text_block[:n]))
    f.flush()
    os.fsync(f.fileno())


def zvol_device(ds):
    return "/dev/zvol/" + ds


def _write_zvol(ds, vol_mib, size_mib, kind, marker):
    """Write a 4 KiB JSON marker block, then `size_mib` MiB of `kind` data
    from offset 1 MiB, to the device of volume `ds` (waiting for the device
    node to appear) and fsync it."""
    if size_mib + 1 > vol_mib:
        raise ValueError("%s MiB of data do not fit the %d MiB volume %s"
                         % (size_mib, vol_mib, ds))
    dev = zvol_device(ds)
    deadline = time.monotonic() + ZVOL_DEV_TIMEOUT
    while not os.path.exists(dev):
        if time.monotonic() > deadline:
            raise ZfsError("the device %s of volume %s did not appear "
                           "within %d s" % (dev, ds, ZVOL_DEV_TIMEOUT))
        time.sleep(0.2)
    block = (json.dumps(marker) + "\n").encode()
    block += b"\0" * (4096 - len(block) % 4096)
    with open(dev, "r+b") as f:
        f.write(block)
        if size_mib:
            f.seek(1024 * 1024)
            _write_data_to(f, size_mib, kind, marker["uuid"])
        f.flush()
        os.fsync(f.fileno())


def _origin_uuid(origin):
    if origin is None:
        return None
    if isinstance(origin, dict):
        if "manifest" in origin:
            return origin["manifest"]["uuid"]
        return origin["uuid"]
    return str(origin)


def _server_module():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "imgapi_server.py")
    name = "_imgtest_world_imgapi_server"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def publish_image(url, manifest, file_path, channels=None, timeout=120):
    """Publish a built image to an IMGAPI over HTTP, as an operator would.

    AdminImportImage (keeps uuid and published_at), AddImageFile (streamed,
    with sha1 and dataset_guid), then ActivateImage (and DisableImage for a
    disabled image); more channels with ChannelAddImage. Works from any host
    that reaches the server, e.g. a test guest through an SSH tunnel.
    """
    import urllib.parse
    import urllib.request

    def call(method, path, query=None, body=None, data=None, ctype=None, length=None):
        q = dict(query or {})
        if channels:
            q.setdefault("channel", channels[0])
        full = url.rstrip("/") + path + ("?" + urllib.parse.urlencode(q) if q else "")
        headers = {"Accept": "application/json", "Accept-Version": "~2"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif ctype:
            headers["Content-Type"] = ctype
        if length is not None:
            headers["Content-Length"] = str(length)
        req = urllib.request.Request(full, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read().decode() or "null")
        except urllib.error.HTTPError as e:
            raise RuntimeError("%s %s: %s %s" % (method, full, e.code, e.read().decode("utf-8", "replace")))

    uuid = manifest["uuid"]
    body = {k: v for k, v in manifest.items() if k not in ("files", "state", "channels")}
    call("POST", "/images/%s" % uuid, {"action": "import"}, body=body)
    f0 = manifest["files"][0]
    q = {"compression": f0["compression"], "sha1": f0["sha1"]}
    if f0.get("dataset_guid"):
        q["dataset_guid"] = f0["dataset_guid"]
    with open(file_path, "rb") as fh:
        call("PUT", "/images/%s/file" % uuid, q, data=fh, ctype="application/octet-stream",
             length=os.path.getsize(file_path))
    if manifest.get("state", "active") in ("active", "disabled"):
        call("POST", "/images/%s" % uuid, {"action": "activate"})
    for extra in (channels or [])[1:]:
        call("POST", "/images/%s" % uuid, {"action": "channel-add"}, body={"channel": extra})
    return call("GET", "/images/%s" % uuid)


def build_image(pool, out_dir, name, version, compression="gzip",
                origin=None, size_mib=0, files=None, uuid=None,
                type="zone-dataset", os=None, server_data_dir=None,
                published_at=None, state="active", channels=None, zfs="zfs",
                extra_manifest=None, data="random", tags=_DEFAULT,
                description=None, public=True, owner=UNSET_OWNER_UUID,
                level=None, publish_url=None, send_flags=None):
    """Build one image; returns dict(manifest=, file_path=, manifest_path=,
    dataset=, snapshot=, uuid=).

    origin: uuid (or a previous build_image result / manifest) of an image
        built earlier by this tool in the same pool: the new dataset is a
        clone of its @final and the stream is incremental (`send -i`).
    size_mib: MiB of `data` ('random' incompressible, 'zeros', 'text'
        compressible) written to data/blob-UUID (fractions allowed).
    files: {relative path: bytes or str} extra files to write.
    Always written: etc/imgtest-UUID (JSON with uuid/name/version/origin).
    state: manifest state (active|disabled|unactivated|...); published_at
        defaults to now (ISO, ms, Z) for active/disabled images.
    tags: default {"test": true}; {} or None omits them.
    server_data_dir: also store file+manifest in an imgapi_server DATA_DIR
        (with `channels` when given).
    publish_url: also publish it to that IMGAPI over HTTP (publish_image).
    extra_manifest: keys merged into the manifest last (None deletes).
    level: compression level passed to the compressor (-N).
    send_flags: extra `zfs send` flags, a list or a shell-style string
        (e.g. "-c -L -e" on OpenZFS); default none.
    type: "zone-dataset" (a filesystem) or "zvol": a volume
        (`zfs create -V`, at least 8 MiB, and 1 MiB more than size_mib) whose
        device /dev/zvol/POOL/imgbuild/UUID gets a JSON marker block and then
        the data; the manifest gets the required zvol fields (nic_driver,
        disk_driver virtio, cpu_type host, image_size = volsize in MiB).
        For an incremental zvol image, origin must be a zvol image too.
    os: manifest os; default "smartos", "other" for a zvol.
    """
    _os = __import__("os")
    if compression not in COMPRESSIONS:
        raise ValueError("compression must be one of %s" % (COMPRESSIONS,))
    if type not in ("zone-dataset", "zvol"):
        raise ValueError("type must be zone-dataset or zvol, not %r" % (type,))
    is_zvol = type == "zvol"
    if os is None:
        os = "other" if is_zvol else "smartos"
    if is_zvol and files:
        raise ValueError("a zvol image has no files")
    if isinstance(send_flags, str):
        send_flags = shlex.split(send_flags)
    image_uuid = uuid or str(uuidlib.uuid4())
    origin_uuid = _origin_uuid(origin)
    ds = build_dataset(pool, image_uuid)
    snap = ds + "@final"
    _os.makedirs(out_dir, exist_ok=True)

    if zfs_exists(ds, zfs):
        raise ZfsError("%s already exists (uuid reused?)" % ds)
    if not zfs_exists(build_root(pool), zfs):
        run([zfs, "create", "-p", build_root(pool)])
    origin_snap = None
    if origin_uuid:
        origin_snap = build_dataset(pool, origin_uuid) + "@final"
        if not zfs_exists(origin_snap, zfs):
            raise ZfsError("origin %s was not built in pool %s (%s missing)"
                           % (origin_uuid, pool, origin_snap))
        origin_type = zfs_get(build_dataset(pool, origin_uuid), "type", zfs)
        if (origin_type == "volume") != is_zvol:
            raise ZfsError("origin %s is a %s, the image a %s"
                           % (origin_uuid, origin_type, type))
        run([zfs, "clone", origin_snap, ds])
    elif is_zvol:
        vol_mib = max(ZVOL_MIN_MIB, int(-(-size_mib // 1)) + 1)
        run([zfs, "create", "-V", "%dM" % vol_mib, ds])
    else:
        run([zfs, "create", ds])

    try:
        if is_zvol:
            vol_mib = int(zfs_get(ds, "volsize", zfs)) // (1024 * 1024)
            _write_zvol(ds, vol_mib, size_mib, data, {
                "uuid": image_uuid, "name": name, "version": version,
                "origin": origin_uuid})
        else:
            if zfs_get(ds, "mounted", zfs) != "yes":
                run([zfs, "mount", ds])
            mnt = zfs_get(ds, "mountpoint", zfs)
            _os.makedirs(_os.path.join(mnt, "etc"), exist_ok=True)
            marker = _os.path.join(mnt, "etc", "imgtest-" + image_uuid)
            with open(marker, "w") as f:
                json.dump({"uuid": image_uuid, "name": name, "version": version,
                           "origin": origin_uuid}, f)
                f.write("\n")
                f.flush()
                _os.fsync(f.fileno())
            if size_mib:
                _os.makedirs(_os.path.join(mnt, "data"), exist_ok=True)
                _write_data(_os.path.join(mnt, "data", "blob-" + image_uuid),
                            size_mib, data, image_uuid)
            for rel, content in (files or {}).items():
                p = _os.path.join(mnt, rel.lstrip("/"))
                _os.makedirs(_os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(content.encode() if isinstance(content, str)
                            else content)
                    f.flush()
                    _os.fsync(f.fileno())
        run([zfs, "snapshot", snap])
        guid = zfs_get(snap, "guid", zfs)

        file_path = _os.path.join(out_dir, "%s-%s.zfs%s" % (
            name, version, EXTENSIONS[compression]))
        send_argv = [zfs, "send"] + list(send_flags or [])
        if origin_snap:
            send_argv += ["-i", origin_snap]
        send_argv.append(snap)
        errf = tempfile.TemporaryFile()
        send = subprocess.Popen(send_argv, stdout=subprocess.PIPE,
                                stderr=errf)
        info = None
        try:
            info = compress_stream(send.stdout, file_path, compression,
                                   level=level)
        finally:
            send.stdout.close()     # so a blocked sender gets EPIPE
            rc = send.wait()
        if rc != 0:
            errf.seek(0)
            raise ZfsError("%s failed (exit %d): %s" % (
                " ".join(send_argv), rc,
                errf.read().decode("utf-8", "replace").strip()))
    except BaseException:
        try:
            zfs_destroy(ds, zfs)
        except ZfsError:
            pass
        raise

    if is_zvol:
        vol_mib = int(zfs_get(ds, "volsize", zfs)) // (1024 * 1024)
    if published_at is None and state in ("active", "disabled"):
        published_at = iso_ms()
    if tags is _DEFAULT:
        tags = {"test": True}
    manifest = {
        "v": 2,
        "uuid": image_uuid,
        "owner": owner,
        "name": name,
        "version": version,
        "state": state,
        "disabled": state == "disabled",
        "public": public,
    }
    if published_at:
        manifest["published_at"] = published_at
    manifest["type"] = type
    manifest["os"] = os
    manifest["files"] = [{"sha1": info["sha1"], "size": info["size"],
                          "compression": compression,
                          "dataset_guid": guid}]
    manifest["description"] = description or "test image %s %s" % (
        name, version)
    manifest["requirements"] = json.loads(json.dumps(DEFAULT_REQUIREMENTS))
    if tags:
        manifest["tags"] = tags
    if origin_uuid:
        manifest["origin"] = origin_uuid
    if is_zvol:
        manifest["nic_driver"] = "virtio"
        manifest["disk_driver"] = "virtio"
        manifest["cpu_type"] = "host"
        manifest["image_size"] = vol_mib
    for k, v in (extra_manifest or {}).items():
        if v is None:
            manifest.pop(k, None)
        else:
            manifest[k] = v
    ordered = {k: manifest[k] for k in MANIFEST_KEY_ORDER if k in manifest}
    ordered.update({k: v for k, v in manifest.items() if k not in ordered})
    manifest = ordered

    manifest_path = _os.path.join(out_dir, "%s-%s.imgmanifest"
                                  % (name, version))
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    if server_data_dir:
        _server_module().add_image_to_data_dir(
            server_data_dir, manifest, file_path, channels=channels)
    if publish_url:
        publish_image(publish_url, manifest, file_path, channels=channels)
    return {"manifest": manifest, "file_path": file_path,
            "manifest_path": manifest_path, "dataset": ds, "snapshot": snap,
            "uuid": image_uuid, "md5": info["md5"]}


# ---------------------------------------------------------------------------
# CLI

def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "cleanup":
        p = argparse.ArgumentParser(prog="build_image.py cleanup")
        p.add_argument("--pool", required=True)
        p.add_argument("--zfs", default="zfs")
        p.add_argument("--force", action="store_true",
                       help="also destroy clones of build snapshots")
        a = p.parse_args(argv[1:])
        done = cleanup_builds(a.pool, zfs=a.zfs, force=a.force)
        print("destroyed %s" % build_root(a.pool) if done else
              "%s did not exist" % build_root(a.pool))
        return 0
    p = argparse.ArgumentParser(
        description="Build a test image on a ZFS pool (prints JSON).")
    p.add_argument("--pool", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--compression", default="gzip", choices=COMPRESSIONS)
    p.add_argument("--level", type=int)
    p.add_argument("--origin", help="uuid of an image built earlier")
    p.add_argument("--size-mib", type=float, default=0)
    p.add_argument("--data", default="random",
                   choices=["random", "zeros", "text"])
    p.add_argument("--file", action="append", default=[],
                   metavar="REL=CONTENT", help="extra file (repeatable)")
    p.add_argument("--uuid")
    p.add_argument("--type", default="zone-dataset",
                   choices=["zone-dataset", "zvol"])
    p.add_argument("--os", help="default smartos, other for a zvol")
    p.add_argument("--send-flags", default="",
                   help='extra zfs send flags, e.g. "-c -L -e" (OpenZFS)')
    p.add_argument("--server-data-dir")
    p.add_argument("--publish", metavar="URL",
                   help="publish the image to this IMGAPI over HTTP")
    p.add_argument("--published-at")
    p.add_argument("--state", default="active")
    p.add_argument("--channels", help="comma-separated channel names")
    p.add_argument("--zfs", default="zfs")
    p.add_argument("--extra-manifest", help="JSON object merged last")
    a = p.parse_args(argv)
    files = {}
    for spec in a.file:
        rel, _sep, content = spec.partition("=")
        files[rel] = content
    res = build_image(
        a.pool, a.out_dir, a.name, a.version, compression=a.compression,
        origin=a.origin, size_mib=a.size_mib, files=files, uuid=a.uuid,
        type=a.type, os=a.os, server_data_dir=a.server_data_dir,
        published_at=a.published_at, state=a.state,
        channels=a.channels.split(",") if a.channels else None, zfs=a.zfs,
        extra_manifest=json.loads(a.extra_manifest) if a.extra_manifest
        else None, data=a.data, level=a.level, publish_url=a.publish,
        send_flags=a.send_flags)
    json.dump(res, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
