"""Create and publish benchmark: imgadm_create / imgadm_publish vs. the raw commands.

In a pool of its own (default `imgbenchcreate`, a sparse file made with
tests/world/zpool.sh, destroyed at the end unless --keep), with a VM dataset
holding a realistic payload (the bytes of /usr files, import_bench's
generator, default 128 MiB) and a fake VM record of its own (the world's fake
`vmadm`, SMARTOS_FAKE_STATE of the bench's own; brand joyent-minimal,
stopped, no origin: a full image), this alternates, for each compression
(gzip, xz, none; bzip2 too with --all), after one untimed warm-up of each
side, ROUNDS rounds in ABBA order of

  raw     bash -o pipefail -c 'zfs snapshot DS@bench; zfs send DS@bench
              | COMPRESSOR -cfq | tee FILE | sha1sum; sync FILE; zfs destroy DS@bench'
          (the fair baseline: the module also computes the sha1 on the way;
          the `sync FILE`, the fsync the module also does, is timed apart and
          not counted: the `fsync s` column)
  plain   the same with '> FILE' instead of '| tee FILE | sha1sum' (not for
          xz unless --plain always: xz alone takes ~80 s a run)
  module  python module_rss.py STAGED/plugins/modules/imgadm_create.py ARGS.json
          {"ANSIBLE_MODULE_ARGS": {vm_uuid, manifest: {name, version},
           output, compression, force: true, vmadm_path, sysinfo_path (the
           fakes), zfs_path, imgadm_dir, ...}}

then, for each compression, publishes the file the module made to a test
IMGAPI server of its own (tests/world/imgapi_server.py, 127.0.0.1, its own
data dir), once without auth and once with HTTP Signature auth (an RSA key
made for the run), alternating

  raw     bash -c 'curl POST /images/UUID?action=import (the manifest);
                   curl -T FILE PUT /images/UUID/file?compression=C&sha1=S;
                   curl POST /images/UUID?action=activate'
          (signed: each request signed with `openssl dgst -sha256 -sign`)
  module  imgadm_publish {url, manifest (dict), file[, user, key_file]}

with a fresh uuid each run and the image deleted after it (untimed). Every
side is timed from process start to exit. It prints a table, one
`RATIO <case> <module/raw>` and one `PEAK_RSS_MIB <case> <MiB>` line per
case, and exits 0 (1 only when nothing could be measured).

Usage (as root, zfs-fuse running):

  .venv/bin/python bench/create_bench.py [--size 128] [--rounds 3]
      [--compressions gzip,xz,none] [--all] [--incremental] [--no-publish]
      [--plain auto|always|never] [--pool imgbenchcreate] [--json FILE]
      [--profile CASE] [--keep] [--cleanup-only] [--build-root DIR]

See bench/README.md, "Create and publish benchmark".
"""

from __future__ import annotations

import argparse
import base64
import datetime
import email.utils
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import import_bench as ib  # noqa: E402  (world, staging, the /usr payload generator)
import facts_bench as fb  # noqa: E402  (subprocesses with deadlines; also patched into import_bench)

TOP = ib.TOP
MiB = ib.MiB
BenchError = ib.BenchError
log = ib.log
run = fb.run
sh = fb.sh

WORK = os.path.join(ib.WORK, "create")
BUILD_ROOT = os.path.join(ib.WORK, "create-build")  # a staging root of our own
CREATE_REL = "ansible_collections/smartos/imgadm/plugins/modules/imgadm_create.py"
PUBLISH_REL = "ansible_collections/smartos/imgadm/plugins/modules/imgadm_publish.py"
FAKE_STATE = os.path.join(WORK, "fake-state")  # SMARTOS_FAKE_STATE: vms/UUID.json
DB_DIR = os.path.join(WORK, "imgadm")  # imgadm_dir: the origin image's record (incremental case)
OUT_MODULE = os.path.join(WORK, "out-module")
OUT_RAW = os.path.join(WORK, "out-raw")
SERVER_DIR = os.path.join(WORK, "imgapi")  # data dirs, key dir, port files
KEY_FILE = os.path.join(WORK, "keys", "bench_rsa")
BENCH_USER = "benchadmin"

NS = uuidlib.UUID("0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d")
VM_UUID = str(uuidlib.uuid5(NS, "create-bench-vm"))
ORIGIN_UUID = str(uuidlib.uuid5(NS, "create-bench-origin"))
VM2_UUID = str(uuidlib.uuid5(NS, "create-bench-vm-incremental"))

COMPRESSORS = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz"}
EXT = {"none": "", "gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}
CMD_TIMEOUT = 120
SERVER_START_TIMEOUT = 30


def run_timeout(size_mib, comp):
    """The deadline of one timed create run: xz does ~1.6 MiB/s here, so 5x that and a margin."""
    per_mib = {"xz": 3.0, "bzip2": 0.5, "gzip": 0.4, "none": 0.2}[comp]
    return int(120 + per_mib * size_mib)


def compressor_paths():
    out = {}
    for comp, name in COMPRESSORS.items():
        p = shutil.which(name)
        if p:
            out[comp] = p
    return out


# ---------------------------------------------------------------------------
# the pool, the VM datasets, the fake VM records

def zfs_exists(name):
    return sh(["zfs", "list", "-H", "-o", "name", "-t", "all", name], check=False).returncode == 0


def zfs_get(name, prop):
    return sh(["zfs", "get", "-H", "-o", "value", prop, name]).stdout.strip()


def mountpoint_of(ds):
    mp = zfs_get(ds, "mountpoint")
    if sh(["zfs", "get", "-H", "-o", "value", "mounted", ds]).stdout.strip() != "yes":
        sh(["zfs", "mount", ds], check=False)
    if not os.path.isdir(mp):
        raise BenchError("%s is not mounted at %s" % (ds, mp))
    return mp


def write_payload(directory, size, root="/usr", prefix="payload"):
    """`size` bytes of /usr files (import_bench.UsrPayload) as 8 MiB files DIR/PREFIX/NNNN.bin."""
    target = os.path.join(directory, prefix)
    os.makedirs(target, exist_ok=True)
    for name, data in ib.UsrPayload(size, root=root).items():
        with open(os.path.join(target, os.path.basename(name)), "wb") as f:
            f.write(data)
    sh(["sync"], timeout=300)


def ensure_dataset(ds, size, tag, root="/usr", clone_of=None):
    """DS with `size` bytes of payload under DS/root, made once (the user property imgbench:payload = tag)."""
    if zfs_exists(ds):
        if sh(["zfs", "get", "-H", "-o", "value", "imgbench:payload", ds]).stdout.strip() == tag:
            return False
        sh(["zfs", "destroy", "-r", ds], timeout=300)
    log("making %s (%s)" % (ds, tag))
    t0 = time.time()
    if clone_of:
        sh(["zfs", "clone", clone_of, ds])
    else:
        sh(["zfs", "create", ds])
    mp = mountpoint_of(ds)
    write_payload(os.path.join(mp, "root"), size, root=root, prefix="payload-" + tag.split(":")[0])
    sh(["zfs", "set", "imgbench:payload=%s" % tag, ds])
    log("made %s in %.0f s" % (ds, time.time() - t0))
    return True


def write_vm(vm_uuid, pool, ds, brand, image_uuid=None):
    os.makedirs(os.path.join(FAKE_STATE, "vms"), exist_ok=True)
    rec = {"uuid": vm_uuid, "brand": brand, "state": "stopped", "zpool": pool, "zfs_filesystem": ds,
           "zonepath": mountpoint_of(ds), "quota": 10, "customer_metadata": {}, "internal_metadata": {}}
    if image_uuid:
        rec["image_uuid"] = image_uuid
    with open(os.path.join(FAKE_STATE, "vms", vm_uuid + ".json"), "w") as f:
        json.dump(rec, f, indent=2)


def write_origin_record(pool, origin_uuid):
    os.makedirs(os.path.join(DB_DIR, "images"), exist_ok=True)
    rec = {"manifest": {"v": 2, "uuid": origin_uuid, "owner": "00000000-0000-0000-0000-000000000000",
                        "name": "bench-create-origin", "version": "1.0.0", "state": "active", "disabled": False,
                        "public": True, "type": "zone-dataset", "os": "smartos",
                        "requirements": {"networks": [{"name": "net0", "description": "public"}]}},
           "zpool": pool}
    with open(os.path.join(DB_DIR, "images", "%s-%s.json" % (pool, origin_uuid)), "w") as f:
        json.dump(rec, f, indent=2)


def stream_size(snap_argv):
    """Bytes of a `zfs send` stream (untimed; also warms the send path)."""
    rc, out, err, dt = run(["bash", "-o", "pipefail", "-c", "%s | wc -c" % " ".join(snap_argv)], timeout=600)
    if rc != 0:
        raise BenchError("%s | wc -c failed: %s" % (" ".join(snap_argv), err.strip()))
    return int(out.strip())


# ---------------------------------------------------------------------------
# create: one run each way

class CreateCase(object):
    def __init__(self, name, comp, ds, vm_uuid, incremental_from=None):
        self.name = name
        self.comp = comp
        self.ds = ds
        self.vm_uuid = vm_uuid
        self.incremental_from = incremental_from  # POOL/ORIGIN@final

    def send_cmd(self, snap):
        return "zfs send %s%s" % ("-i %s " % self.incremental_from if self.incremental_from else "", snap)

    def raw_cmd(self, variant, path):
        snap = self.ds + "@bench"
        parts = [self.send_cmd(snap)]
        if self.comp != "none":
            parts.append("%s -cfq" % COMPRESSORS[self.comp])
        if variant == "raw":
            pipe = " | ".join(parts + ["tee %s" % path, "sha1sum"])
        else:
            pipe = " | ".join(parts) + " > %s" % path
        # timestamps around the pipeline: the `pipe s` column (the pipeline without snapshot/destroy)
        # `sync FILE` (fsync of the file, as the module does) is timed apart: t1..t2, the `fsync s` column,
        # subtracted from the raw wall time (the baseline is the pipeline as written, without it)
        return ("zfs snapshot {snap} || exit 1; t0=$(date +%s.%N); {pipe}; rc=$?; t1=$(date +%s.%N); "
                "sync {path}; t2=$(date +%s.%N); zfs destroy {snap}; echo \"PIPE $t0 $t1 $t2\" >&2; exit $rc"
                ).format(snap=snap, pipe=pipe, path=path)


def destroy_snapshot(snap):
    if zfs_exists(snap):
        sh(["zfs", "destroy", snap])


def run_raw_create(case, variant, timeout):
    path = os.path.join(OUT_RAW, "raw-%s.zfs%s" % (case.comp, EXT[case.comp]))
    cmd = case.raw_cmd(variant, path)
    destroy_snapshot(case.ds + "@bench")
    rc, out, err, dt = run(["bash", "-o", "pipefail", "-c", cmd], timeout=timeout)
    try:
        if rc != 0:
            raise BenchError("raw create failed (exit %d): %s: %s" % (rc, cmd, err.strip()[-1000:]))
        m = re.search(r"PIPE (\S+) (\S+) (\S+)", err)
        if not m:
            raise BenchError("raw create printed no timestamps: %s" % err.strip()[-500:])
        fsync = float(m.group(3)) - float(m.group(2))
        res = {"seconds": dt - fsync, "wall_seconds": dt, "fsync_seconds": fsync, "cmd": cmd,
               "file_bytes": os.path.getsize(path), "pipe_seconds": float(m.group(2)) - float(m.group(1))}
        if variant == "raw":
            res["sha1"] = out.split()[0] if out.split() else None
        return res
    finally:
        destroy_snapshot(case.ds + "@bench")
        try:
            os.unlink(path)
        except OSError:
            pass


def module_env(build_root, rss_file=None):
    env = dict(os.environ, PYTHONPATH=build_root, SMARTOS_FAKE_STATE=FAKE_STATE,
               # as import_bench: the venv's bin first, so that no `python3` a fake runs is a pyenv shim
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("BENCH_RSS_FILE", None)
    if rss_file:
        env["BENCH_RSS_FILE"] = rss_file
    return env


def create_args(case, world, zfs, comps, timeout, brand):
    manifest = {"name": "bench-%s" % case.name, "version": "1.0.0", "public": True}
    if not case.incremental_from:  # no origin to inherit them from: required, as with the stock imgadm create
        manifest.update({"type": "lx-dataset", "os": "linux"} if brand == "lx" else
                        {"type": "zone-dataset", "os": "smartos"})
    args = {
        "vm_uuid": case.vm_uuid,
        "manifest": manifest,
        "output": OUT_MODULE,
        "compression": case.comp,
        "incremental": bool(case.incremental_from),
        "force": True,
        "vmadm_path": os.path.join(world["IMGADM_FAKES_BIN"], "vmadm"),
        "sysinfo_path": os.path.join(world["IMGADM_FAKES_BIN"], "sysinfo"),
        "zfs_path": zfs,
        "imgadm_dir": DB_DIR,
        "command_timeout": float(timeout),
    }
    for comp, path in comps.items():
        args["%s_path" % comp] = path
    return {"ANSIBLE_MODULE_ARGS": args}


def run_module(module_path, build_root, args, tag, timeout, time_bin=None):
    """The module file run as its own process (module_rss.py); (result dict, measurements)."""
    args_path = os.path.join(WORK, "args-%s.json" % tag)
    with open(args_path, "w") as f:
        json.dump(args, f, indent=2)
    rss_file = os.path.join(WORK, "rss-self")
    tree_file = os.path.join(WORK, "rss-tree")
    for p in (rss_file, tree_file):
        if os.path.exists(p):
            os.unlink(p)
    argv = [sys.executable, os.path.join(HERE, "module_rss.py"), module_path, args_path]
    if time_bin:
        argv = [time_bin, "-f", "%M", "-o", tree_file] + argv
    rc, out, err, dt = run(argv, env=module_env(build_root, rss_file), timeout=timeout)
    try:
        res = json.loads(out)
    except ValueError:
        res = None
    if rc != 0 or not isinstance(res, dict) or res.get("failed"):
        msg = json.dumps({k: res.get(k) for k in ("msg", "error_code", "actions")}) if isinstance(res, dict) \
            else (out + err)[-2000:]
        raise BenchError("%s failed (exit %d): %s" % (os.path.basename(module_path), rc, msg[-3000:]))
    meas = {"seconds": dt}
    try:
        with open(rss_file) as f:
            fields = f.read().split()
        meas["rss_self_mib"] = int(fields[0]) / 1024.0
        meas["cpu_seconds"] = float(fields[1]) + float(fields[2])
    except (OSError, IndexError, ValueError):
        meas["rss_self_mib"] = meas["cpu_seconds"] = None
    if time_bin and os.path.exists(tree_file):
        with open(tree_file) as f:
            last = [ln for ln in f.read().split() if ln.strip().isdigit()]
        meas["rss_tree_mib"] = int(last[-1]) / 1024.0 if last else None
    return res, meas


def run_module_create(case, module_path, build_root, world, zfs, comps, timeout, time_bin, brand):
    res, meas = run_module(module_path, build_root, create_args(case, world, zfs, comps, timeout, brand),
                           "create-%s" % case.name, timeout, time_bin)
    if not res.get("changed") or not res.get("sha1"):
        raise BenchError("imgadm_create did not create the image: %s" % json.dumps(res)[:2000])
    timings = res.get("timings") or {}
    meas.update(file_bytes=res.get("size"), sha1=res.get("sha1"), send_seconds=timings.get("send"),
                timings=timings, manifest_path=res.get("manifest_path"), file_path=res.get("file_path"))
    if zfs_exists(case.ds + "@final"):
        raise BenchError("imgadm_create left %s@final behind" % case.ds)
    return meas


def run_floor():
    """Wall seconds of bench/floor_module.py: interpreter + AnsibleModule + requests, no work."""
    args_path = os.path.join(WORK, "args-floor.json")
    with open(args_path, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": {"uuid": "floor"}}, f)
    rc, out, err, dt = run([sys.executable, os.path.join(HERE, "floor_module.py"), args_path], timeout=CMD_TIMEOUT)
    if rc != 0:
        raise BenchError("floor module failed: %s" % (out + err)[-1000:])
    return dt


def rounds_abba(rounds, sides, do, label):
    """Warm-up of each side, then `rounds` rounds: sides in order, then reversed, ... {side: [results]}."""
    log("%s: warm-up" % label)
    for side in sides:
        do(side)
    out = dict((s, []) for s in sides)
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for side in order:
            out[side].append(do(side))
        log("%s round %d/%d: %s" % (label, r + 1, rounds,
                                    ", ".join("%s %.2f s" % (s, out[s][-1]["seconds"]) for s in sides)))
    return out


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def create_case(case, data_bytes, module_path, build_root, world, zfs, comps, rounds, plain, time_bin, brand):
    timeout = run_timeout(data_bytes / MiB, case.comp)
    sides = ["raw", "module"] if not plain else ["plain", "raw", "module"]

    def do(side):
        if side == "module":
            r = run_module_create(case, module_path, build_root, world, zfs, comps, timeout, time_bin, brand)
            r["floor_seconds"] = run_floor()
            return r
        return run_raw_create(case, side, timeout)

    res = rounds_abba(rounds, sides, do, "create %s" % case.name)
    raw, mod = res["raw"], res["module"]
    raw_med, mod_med = med(raw, "seconds"), med(mod, "seconds")
    file_bytes = mod[-1]["file_bytes"]
    out = {
        "name": "create-%s" % case.name, "kind": "create", "compression": case.comp,
        "data_bytes": data_bytes, "file_bytes": file_bytes, "raw_file_bytes": raw[-1]["file_bytes"],
        "raw_median": raw_med, "module_median": mod_med, "ratio": mod_med / raw_med,
        "raw_pipe_median": med(raw, "pipe_seconds"), "module_send_median": med(mod, "send_seconds"),
        "fsync_median": med(raw, "fsync_seconds"), "floor_median": med(mod, "floor_seconds"),
        "cpu_median": med(mod, "cpu_seconds"),
        "data_mib_s": data_bytes / MiB / mod_med, "file_mib_s": file_bytes / MiB / mod_med,
        "raw_data_mib_s": data_bytes / MiB / raw_med,
        "rss_self_mib": max(r["rss_self_mib"] or 0 for r in mod),
        "rss_tree_mib": max((r.get("rss_tree_mib") or 0) for r in mod) or None,
        "raw_runs": [r["seconds"] for r in raw], "module_runs": [r["seconds"] for r in mod],
        "module_timings": [r["timings"] for r in mod], "raw_cmd": raw[0]["cmd"],
        "manifest_path": mod[-1]["manifest_path"], "file_path": mod[-1]["file_path"],
    }
    if plain:
        out["plain_median"] = med(res["plain"], "seconds")
        out["plain_runs"] = [r["seconds"] for r in res["plain"]]
        out["plain_pipe_median"] = med(res["plain"], "pipe_seconds")
        out["plain_cmd"] = res["plain"][0]["cmd"]
    return out


# ---------------------------------------------------------------------------
# publish: the server, signing, one run each way

def make_key():
    """An RSA key (PKCS#1 PEM) for the run and its ssh public key line."""
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import rsa  # pylint: disable=import-outside-toplevel
    os.makedirs(os.path.dirname(KEY_FILE), exist_ok=True)
    if not os.path.exists(KEY_FILE):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        fd = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    with open(KEY_FILE, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return key, pub.decode("ascii") + " create-bench"


class Server(object):
    """tests/world/imgapi_server.py in its own process on 127.0.0.1, a data dir of its own."""

    def __init__(self, name, auth_pub=None):
        self.name = name
        self.dir = os.path.join(SERVER_DIR, name)
        self.data = os.path.join(self.dir, "data")
        self.auth_pub = auth_pub
        self.proc = None
        self.log = None
        self.url = None

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.data)
        argv = [sys.executable, os.path.join(ib.WORLD_TOOLS, "imgapi_server.py"), "--data-dir", self.data,
                "--port", "0", "--mode", "public", "--pid-file", os.path.join(self.dir, "pid")]
        if self.auth_pub:
            keys = os.path.join(self.dir, "authkeys")
            os.makedirs(keys)
            with open(os.path.join(keys, BENCH_USER + ".keys"), "w") as f:
                f.write(self.auth_pub + "\n")
            argv += ["--auth-keys", keys]
        self.log = open(os.path.join(self.dir, "server.log"), "w")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        import select  # pylint: disable=import-outside-toplevel
        while time.monotonic() < deadline:
            r, dummy, dummy2 = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline().strip()
                if line.startswith("http://"):
                    self.url = line
                    return self
            if self.proc.poll() is not None:
                break
        self.stop()
        raise BenchError("the IMGAPI server %s did not start (see %s)" % (self.name, os.path.join(self.dir, "server.log")))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


def sign_headers(key):
    """Date + Authorization (IMGAPI's HTTP Signature: keyId = user, signature over `date: DATE`)."""
    from cryptography.hazmat.primitives import hashes  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import padding  # pylint: disable=import-outside-toplevel
    date = email.utils.formatdate(usegmt=True)
    sig = key.sign(("date: %s" % date).encode(), padding.PKCS1v15(), hashes.SHA256())
    return {"Date": date, "Authorization": 'Signature keyId="%s",algorithm="rsa-sha256",signature="%s"'
            % (BENCH_USER, base64.b64encode(sig).decode())}


def http(method, url, key=None, timeout=60):
    req = urllib.request.Request(url, method=method, headers=sign_headers(key) if key is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def delete_image(server, uuid, key):
    status, body = http("DELETE", "%s/images/%s" % (server.url, uuid), key)
    if status not in (204, 404):
        raise BenchError("DELETE /images/%s: HTTP %s %s" % (uuid, status, body[:300]))


def get_image(server, uuid):
    status, body = http("GET", "%s/images/%s" % (server.url, uuid))
    return json.loads(body) if status == 200 else None


def import_body(manifest, uuid):
    m = dict((k, v) for k, v in manifest.items() if k not in ("state", "files", "channels", "icon", "error"))
    m["uuid"] = uuid
    return m


RAW_PUBLISH = r"""
set -o pipefail -e
URL=$1 UUID=$2 BODY=$3 FILE=$4 COMP=$5 SHA1=$6 KEY=$7 USER=$8
AUTH=()
sign() {
    [ -n "$KEY" ] || return 0
    local d s
    d=$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')
    s=$(printf 'date: %s' "$d" | openssl dgst -sha256 -sign "$KEY" | base64 -w0)
    AUTH=(-H "Date: $d" -H "Authorization: Signature keyId=\"$USER\",algorithm=\"rsa-sha256\",signature=\"$s\"")
}
sign
curl -sS -f -o /dev/null -w 'import %{time_total}\n' -X POST "${AUTH[@]}" -H 'Content-Type: application/json' \
    --data-binary @"$BODY" "$URL/images/$UUID?action=import"
sign
curl -sS -f -o /dev/null -w 'file %{time_total}\n' -X PUT "${AUTH[@]}" -T "$FILE" \
    -H 'Content-Type: application/octet-stream' "$URL/images/$UUID/file?compression=$COMP&sha1=$SHA1"
sign
curl -sS -f -o /dev/null -w 'activate %{time_total}\n' -X POST "${AUTH[@]}" "$URL/images/$UUID?action=activate"
"""


def run_raw_publish(server, manifest, file_path, signed, key):
    uuid = str(uuidlib.uuid4())
    body = os.path.join(WORK, "publish-body.json")
    with open(body, "w") as f:
        json.dump(import_body(manifest, uuid), f)
    f0 = manifest["files"][0]
    argv = ["bash", "-c", RAW_PUBLISH, "raw-publish", server.url, uuid, body, file_path, f0["compression"], f0["sha1"],
            KEY_FILE if signed else "", BENCH_USER]
    try:
        rc, out, err, dt = run(argv, timeout=CMD_TIMEOUT + f0["size"] // (10 * MiB))
        if rc != 0:
            raise BenchError("raw publish failed (exit %d): %s %s" % (rc, out.strip(), err.strip()[-1000:]))
        img = get_image(server, uuid)
        if not img or img.get("state") != "active" or img["files"][0]["sha1"] != f0["sha1"]:
            raise BenchError("raw publish did not leave an active image %s: %s" % (uuid, json.dumps(img)[:500]))
        steps = dict((ln.split()[0], float(ln.split()[1])) for ln in out.splitlines() if len(ln.split()) == 2)
        return {"seconds": dt, "put_seconds": steps.get("file"), "steps": steps}
    finally:
        delete_image(server, uuid, key if signed else None)


def run_module_publish(server, module_path, build_root, manifest, file_path, signed, key, time_bin):
    uuid = str(uuidlib.uuid4())
    m = dict(manifest, uuid=uuid)
    args = {"url": server.url, "manifest": m, "file": file_path, "timeout": 60.0, "retries": 0}
    if signed:
        args.update(user=BENCH_USER, key_file=KEY_FILE)
    timeout = CMD_TIMEOUT + m["files"][0]["size"] // (10 * MiB)
    try:
        res, meas = run_module(module_path, build_root, {"ANSIBLE_MODULE_ARGS": args}, "publish", timeout, time_bin)
        pub = res.get("published") or {}
        if not res.get("changed") or (res.get("image") or {}).get("state") != "active":
            raise BenchError("imgadm_publish did not publish: %s" % json.dumps(res)[:2000])
        meas["auth"] = pub.get("auth")
        return meas
    finally:
        delete_image(server, uuid, key if signed else None)


def publish_case(comp, created, server, signed, key, module_path, build_root, rounds, time_bin):
    with open(created["manifest_path"]) as f:
        manifest = json.load(f)
    file_path = created["file_path"]
    size = manifest["files"][0]["size"]
    name = "publish-%s%s" % (comp, "-signed" if signed else "")

    def do(side):
        if side == "raw":
            return run_raw_publish(server, manifest, file_path, signed, key)
        r = run_module_publish(server, module_path, build_root, manifest, file_path, signed, key, time_bin)
        r["floor_seconds"] = run_floor()
        return r

    res = rounds_abba(rounds, ["raw", "module"], do, name)
    raw, mod = res["raw"], res["module"]
    raw_med, mod_med = med(raw, "seconds"), med(mod, "seconds")
    return {
        "name": name, "kind": "publish", "compression": comp, "signed": signed, "file_bytes": size,
        "raw_median": raw_med, "module_median": mod_med, "ratio": mod_med / raw_med,
        "raw_put_median": med(raw, "put_seconds"), "cpu_median": med(mod, "cpu_seconds"),
        "floor_median": med(mod, "floor_seconds"),
        "file_mib_s": size / MiB / mod_med, "raw_file_mib_s": size / MiB / raw_med,
        "rss_self_mib": max(r["rss_self_mib"] or 0 for r in mod),
        "rss_tree_mib": max((r.get("rss_tree_mib") or 0) for r in mod) or None,
        "raw_runs": [r["seconds"] for r in raw], "module_runs": [r["seconds"] for r in mod],
        "raw_steps": [r["steps"] for r in raw], "auth": mod[-1].get("auth"),
    }


# ---------------------------------------------------------------------------
# profile

def profile_run(module_path, build_root, args, out_file, timeout, top=30):
    """One module run under cProfile (main thread only); the top lines by cumulative and own time."""
    import io  # pylint: disable=import-outside-toplevel
    import pstats  # pylint: disable=import-outside-toplevel
    args_path = os.path.join(WORK, "args-profile.json")
    with open(args_path, "w") as f:
        json.dump(args, f, indent=2)
    argv = [sys.executable, "-m", "cProfile", "-o", out_file, os.path.join(HERE, "module_rss.py"), module_path,
            args_path]
    rc, out, err, dt = run(argv, env=module_env(build_root), timeout=timeout)
    if rc != 0:
        raise BenchError("profiled run failed (exit %d): %s" % (rc, (out + err)[-2000:]))
    text = []
    for sort in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(out_file, stream=buf).strip_dirs().sort_stats(sort).print_stats(top)
        text.append(buf.getvalue())
    try:
        res = json.loads(out)
    except ValueError:
        res = {}
    return dt, text, res.get("timings")


# ---------------------------------------------------------------------------
# report

def fmt(v, spec="%.2f"):
    return "-" if v is None else spec % v


def print_table(hdr, rows):
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(hdr, widths)))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)))


def print_report(results, info, args):
    print()
    print("smartos.imgadm create and publish benchmark  %s" % info["when"])
    print("  machine: %s cores, load avg before %s after %s; python %s; ansible-core %s"
          % (os.cpu_count(), info["load_before"], info.get("load_after"), platform.python_version(), info["ansible"]))
    print("  collection: %s at commit %s, %s" % (TOP, info.get("commit", "?"),
                                                 "as staged under %s" % info["build_root"] if info.get("build_root_given")
                                                 else "staged into %s" % info["build_root"]))
    print("  pool %s; VM dataset %s: %s" % (info["pool"], info.get("dataset"), info.get("payload_desc")))
    incr = info.get("incr_stream_bytes")
    print("  zfs send stream: %s bytes (%.1f MiB)%s"
          % (info.get("stream_bytes"), (info.get("stream_bytes") or 0) / MiB,
             "; incremental stream: %.1f MiB" % (incr / MiB) if incr else ""))
    print("  create raw:   bash -o pipefail -c 'zfs snapshot DS@bench && zfs send DS@bench | COMPRESSOR -cfq"
          " | tee FILE | sha1sum; zfs destroy DS@bench'")
    print("  create plain: the same with '> FILE' (no tee, no sha1sum)")
    print("  create module: PYTHONPATH=%s python bench/module_rss.py .../imgadm_create.py ARGS.json" % info["build_root"])
    print("                 (vm_uuid, manifest {name, version, public, type, os}, output, compression, force: true,"
          " the fake vmadm and sysinfo)")
    print("  publish raw:  bash -c 'curl POST ?action=import; curl -T FILE PUT /file?compression&sha1; curl POST"
          " ?action=activate' (signed: openssl dgst -sha256 -sign per request)")
    print("  publish module: imgadm_publish {url, manifest (dict, a fresh uuid), file[, user, key_file]}")
    print("  %d timed rounds per side (ABBA) after one untimed warm-up each; medians; wall time, process start to exit"
          % args.rounds)
    print()
    creates = [r for r in results if r.get("kind") == "create"]
    if creates:
        hdr = ("case", "file MiB", "raw s", "plain s", "module s", "ratio", "mod/plain", "fsync s", "mod/(raw+fsync)",
               "raw pipe s", "mod send s", "send/pipe", "floor s", "mod CPU s", "data MiB/s", "file MiB/s",
               "raw data MiB/s", "peak RSS MiB", "tree MiB")
        rows = []
        for r in creates:
            if r.get("error"):
                rows.append((r["name"], "ERROR") + ("-",) * (len(hdr) - 2))
                continue
            rows.append((r["name"], "%.1f" % (r["file_bytes"] / MiB), fmt(r["raw_median"]), fmt(r.get("plain_median")),
                         fmt(r["module_median"]), "%.3f" % r["ratio"],
                         fmt(r["module_median"] / r["plain_median"] if r.get("plain_median") else None, "%.3f"),
                         fmt(r["fsync_median"]), fmt(r["module_median"] / (r["raw_median"] + r["fsync_median"]), "%.3f"),
                         fmt(r["raw_pipe_median"]), fmt(r["module_send_median"]),
                         fmt(r["module_send_median"] / r["raw_pipe_median"]
                             if r["module_send_median"] and r["raw_pipe_median"] else None, "%.3f"),
                         fmt(r["floor_median"]), fmt(r["cpu_median"]), "%.1f" % r["data_mib_s"], "%.1f" % r["file_mib_s"],
                         "%.1f" % r["raw_data_mib_s"], "%.1f" % r["rss_self_mib"], fmt(r.get("rss_tree_mib"), "%.1f")))
        print_table(hdr, rows)
        print()
        print("  data MiB/s = zfs send stream MiB / module s; file MiB/s = output file MiB / module s;")
        print("  raw s = snapshot + pipeline + destroy, without the fsync; fsync s = `sync FILE` right after the raw")
        print("  pipeline (the module fsyncs its file; timed apart, not in raw s); raw pipe s = the raw pipeline alone;")
        print("  mod send s = the module's timings.send (snapshot + zfs send | compressor -> sha1 + file + fsync);")
        print("  floor s = bench/floor_module.py (interpreter + AnsibleModule + requests, no work), run after each")
        print("  module run; mod CPU s = user+sys of the module process alone (not zfs send or the compressor)")
        print()
    pubs = [r for r in results if r.get("kind") == "publish"]
    if pubs:
        hdr = ("case", "file MiB", "raw s", "raw PUT s", "module s", "ratio", "floor s", "mod CPU s", "file MiB/s",
               "raw MiB/s", "peak RSS MiB", "signer")
        rows = []
        for r in pubs:
            if r.get("error"):
                rows.append((r["name"], "ERROR") + ("-",) * (len(hdr) - 2))
                continue
            rows.append((r["name"], "%.1f" % (r["file_bytes"] / MiB), fmt(r["raw_median"]), fmt(r["raw_put_median"]),
                         fmt(r["module_median"]), "%.3f" % r["ratio"], fmt(r["floor_median"]), fmt(r["cpu_median"]),
                         "%.1f" % r["file_mib_s"], "%.1f" % r["raw_file_mib_s"], "%.1f" % r["rss_self_mib"],
                         (r.get("auth") or {}).get("backend") or "-"))
        print_table(hdr, rows)
        print()
        print("  raw s = the three curl requests (and, signed, three openssl signatures); raw PUT s = curl's")
        print("  time_total of the upload alone; file MiB/s = file MiB / module s")
        print()
    for r in results:
        if r.get("error"):
            print("  %s: ERROR %s" % (r["name"], r["error"]))
    if info.get("profile"):
        p = info["profile"]
        print("  cProfile of one %s module run (%.2f s under the profiler; main thread only), stats in %s;"
              % (p["case"], p["seconds"], p["file"]))
        print("  its timings: %s" % json.dumps(p.get("timings")))
        for block in p["text"]:
            for line in block.splitlines():
                if line.strip():
                    print("    " + line)
        print()
    for r in results:
        if not r.get("error"):
            print("RATIO %s %.3f" % (r["name"], r["ratio"]))
    for r in results:
        if not r.get("error"):
            print("PEAK_RSS_MIB %s %.1f" % (r["name"], r["rss_self_mib"]))
    for r in results:
        if not r.get("error"):
            if r["kind"] == "create":
                rates = (r["name"], r["data_mib_s"], r["file_mib_s"], r["raw_data_mib_s"])
                print("MIB_S %s data %.1f file %.1f (raw data %.1f)" % rates)
            else:
                print("MIB_S %s file %.1f (raw %.1f)" % (r["name"], r["file_mib_s"], r["raw_file_mib_s"]))
    sys.stdout.flush()


# ---------------------------------------------------------------------------

def cleanup(world, pool, everything=False):
    """The pool (zpool.sh down), the VM records, database, outputs and server dirs; with `everything` WORK too."""
    for vm in (VM_UUID, VM2_UUID):
        for p in (os.path.join(FAKE_STATE, "vms", vm + ".json"),):
            try:
                os.unlink(p)
            except OSError:
                pass
    if not ib.is_world_pool(world, pool):
        sh(["bash", os.path.join(ib.WORLD_TOOLS, "zpool.sh"), "down", pool], check=False)
    for d in (FAKE_STATE, DB_DIR, OUT_MODULE, OUT_RAW, SERVER_DIR) + ((WORK, BUILD_ROOT) if everything else ()):
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None):
    global BUILD_ROOT  # pylint: disable=global-statement
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--size", type=int, default=128, help="MiB of payload in the VM dataset (default 128)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per side per case (default 3)")
    ap.add_argument("--compressions", default="gzip,xz,none", help="comma-separated subset of gzip,xz,none,bzip2")
    ap.add_argument("--all", action="store_true", help="all four compressions (bzip2 too)")
    ap.add_argument("--incremental", action="store_true",
                    help="also an incremental gzip image: a VM cloned from an origin image (--size of payload) "
                         "with --size/4 more")
    ap.add_argument("--no-publish", action="store_true", help="measure only the create cases")
    ap.add_argument("--no-signed", action="store_true", help="publish without auth only")
    ap.add_argument("--plain", choices=["auto", "always", "never"], default="auto",
                    help="also time the plain pipeline (> FILE, no sha1): auto = not for xz (default)")
    ap.add_argument("--brand", choices=["joyent-minimal", "joyent", "lx"], default="joyent-minimal")
    ap.add_argument("--pool", default="imgbenchcreate", help="the bench's own pool (default imgbenchcreate)")
    ap.add_argument("--profile", metavar="CASE",
                    help="also run the module once under cProfile for this case (create-gzip, publish-none-signed...)")
    ap.add_argument("--json", help="also write all measurements to this JSON file")
    ap.add_argument("--build-root", help="use the collection already staged under this root instead of staging "
                    "/work/main into %s" % BUILD_ROOT)
    ap.add_argument("--keep", action="store_true", help="keep the pool, its datasets and the work dirs")
    ap.add_argument("--cleanup-only", action="store_true", help="only remove what a --keep run left")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("create_bench.py needs root (zfs)")
    comps_wanted = ["gzip", "xz", "none", "bzip2"] if args.all else \
        [c.strip() for c in args.compressions.split(",") if c.strip()]
    bad = [c for c in comps_wanted if c not in EXT]
    if bad or not comps_wanted:
        sys.exit("--compressions: unknown %s" % ", ".join(bad))
    if args.rounds < 1 or args.size < 1:
        sys.exit("--rounds and --size must be at least 1")

    os.makedirs(WORK, exist_ok=True)
    try:
        world = ib.world_up()
    except BenchError as e:
        log("cannot bring the test world up: %s" % e)
        return 1
    if ib.is_world_pool(world, args.pool):
        sys.exit("--pool must be a pool of the bench's own, not the world's %s" % args.pool)
    if args.cleanup_only:
        cleanup(world, args.pool, everything=True)
        log("cleaned up")
        return 0

    info = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "load_before": "%.2f %.2f %.2f" % os.getloadavg(), "pool": args.pool}
    info["ansible"] = sh([sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
                         check=False).stdout.strip() or "?"
    head = sh(["git", "-C", TOP, "rev-parse", "--short", "HEAD"], check=False).stdout.strip() or "?"
    dirty = sh(["git", "-C", TOP, "status", "--porcelain", "--", "plugins"], check=False).stdout.strip()
    info["commit"] = head + (" (plugins/ modified)" if dirty else "")
    zfs = shutil.which("zfs")
    comps = compressor_paths()
    missing = [c for c in comps_wanted if c != "none" and c not in comps]
    if missing:
        sys.exit("compressor(s) not installed: %s" % ", ".join(missing))
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    results = []
    servers = []
    try:
        if args.build_root:
            BUILD_ROOT = os.path.abspath(args.build_root)
            info["build_root_given"] = True
        else:
            log("staging the collection into %s" % BUILD_ROOT)
            ib.BUILD_ROOT = BUILD_ROOT
            ib.stage()
        create_mod = os.path.join(BUILD_ROOT, CREATE_REL)
        publish_mod = os.path.join(BUILD_ROOT, PUBLISH_REL)
        for p in (create_mod, publish_mod):
            if not os.path.isfile(p):
                raise BenchError("no %s" % p)
        info["build_root"] = BUILD_ROOT
        for d in (OUT_MODULE, OUT_RAW):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)

        # the pool, the VM
        pool_size = "%dM" % max(1024, 4 * args.size + 768)
        fb.pool_up(world, args.pool, pool_size)
        ds = "%s/%s" % (args.pool, VM_UUID)
        ensure_dataset(ds, args.size * MiB, "%dm:usr" % args.size)
        write_vm(VM_UUID, args.pool, ds, args.brand)
        info["dataset"] = ds
        info["payload_desc"] = ("%d MiB of /usr files (ELF binaries, libraries, headers, text) in 8 MiB files; "
                                "brand %s, stopped, no origin (a full image)" % (args.size, args.brand))
        destroy_snapshot(ds + "@bench")
        sh(["zfs", "snapshot", ds + "@bench"])
        try:
            info["stream_bytes"] = stream_size(["zfs", "send", ds + "@bench"])
        finally:
            destroy_snapshot(ds + "@bench")
        cases = [CreateCase(c, c, ds, VM_UUID) for c in comps_wanted]
        if args.incremental:
            ods = "%s/%s" % (args.pool, ORIGIN_UUID)
            vds = "%s/%s" % (args.pool, VM2_UUID)
            if ensure_dataset(ods, args.size * MiB, "%dm:usr" % args.size):
                if zfs_exists(vds):
                    sh(["zfs", "destroy", "-r", vds], timeout=300)
            if not zfs_exists(ods + "@final"):
                sh(["zfs", "snapshot", ods + "@final"])
            ensure_dataset(vds, max(1, args.size // 4) * MiB, "%dm:share" % max(1, args.size // 4),
                           root="/usr/share", clone_of=ods + "@final")
            write_origin_record(args.pool, ORIGIN_UUID)
            write_vm(VM2_UUID, args.pool, vds, args.brand, image_uuid=ORIGIN_UUID)
            destroy_snapshot(vds + "@bench")
            sh(["zfs", "snapshot", vds + "@bench"])
            try:
                info["incr_stream_bytes"] = stream_size(["zfs", "send", "-i", ods + "@final", vds + "@bench"])
            finally:
                destroy_snapshot(vds + "@bench")
            cases.append(CreateCase("incr-gzip", "gzip", vds, VM2_UUID, incremental_from=ods + "@final"))

        created = {}
        for case in cases:
            plain = args.plain == "always" or (args.plain == "auto" and case.comp != "xz")
            data = info["incr_stream_bytes"] if case.incremental_from else info["stream_bytes"]
            try:
                r = create_case(case, data, create_mod, BUILD_ROOT, world, zfs, comps, args.rounds, plain, time_bin,
                                args.brand)
                results.append(r)
                if not case.incremental_from:
                    created[case.comp] = r
            except BenchError as e:
                log("case create-%s failed: %s" % (case.name, e))
                results.append({"name": "create-%s" % case.name, "kind": "create", "error": str(e)})

        key = None
        if not args.no_publish and created:
            key, pub = make_key()
            modes = [False] if args.no_signed else [False, True]
            for signed in modes:
                try:
                    server = Server("signed" if signed else "open", auth_pub=pub if signed else None).start()
                except BenchError as e:
                    log(str(e))
                    results.append({"name": "publish-%s" % ("signed" if signed else "open"), "kind": "publish",
                                    "error": str(e)})
                    continue
                servers.append(server)
                log("IMGAPI server %s at %s" % (server.name, server.url))
                for comp in comps_wanted:
                    if comp not in created:
                        continue
                    try:
                        results.append(publish_case(comp, created[comp], server, signed, key, publish_mod, BUILD_ROOT,
                                                    args.rounds, time_bin))
                    except BenchError as e:
                        name = "publish-%s%s" % (comp, "-signed" if signed else "")
                        log("case %s failed: %s" % (name, e))
                        results.append({"name": name, "kind": "publish", "error": str(e)})

        if args.profile:
            prof = os.path.join(WORK, "profile-%s.prof" % args.profile)
            target = [r for r in results if r["name"] == args.profile and not r.get("error")]
            if not target:
                log("--profile %s: no such measured case" % args.profile)
            else:
                t = target[0]
                if t["kind"] == "create":
                    case = [c for c in cases if "create-%s" % c.name == args.profile][0]
                    a = create_args(case, world, zfs, comps, run_timeout(args.size, case.comp), args.brand)
                    dt, text, timings = profile_run(create_mod, BUILD_ROOT, a, prof, run_timeout(args.size, case.comp))
                else:
                    server = [s for s in servers if s.name == ("signed" if t["signed"] else "open")][0]
                    with open(created[t["compression"]]["manifest_path"]) as f:
                        manifest = json.load(f)
                    uuid = str(uuidlib.uuid4())
                    a = {"url": server.url, "manifest": dict(manifest, uuid=uuid),
                         "file": created[t["compression"]]["file_path"], "timeout": 60.0, "retries": 0}
                    if t["signed"]:
                        a.update(user=BENCH_USER, key_file=KEY_FILE)
                    try:
                        dt, text, timings = profile_run(publish_mod, BUILD_ROOT, {"ANSIBLE_MODULE_ARGS": a}, prof, 600)
                    finally:
                        delete_image(server, uuid, key if t["signed"] else None)
                info["profile"] = {"case": args.profile, "file": prof, "seconds": dt, "text": text, "timings": timings}
    except BenchError as e:
        log("could not measure: %s" % e)
        info["error"] = str(e)
    finally:
        for s in servers:
            s.stop()
        if not args.keep:
            try:
                cleanup(world, args.pool)
            except BenchError as e:
                log("cleanup failed: %s" % e)
    info["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    info.setdefault("build_root", BUILD_ROOT)
    print_report(results, info, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results}, f, indent=2)
        print("measurements written to %s" % args.json)
    return 0 if any(not r.get("error") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
