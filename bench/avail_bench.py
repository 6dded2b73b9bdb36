"""Available-images benchmark: imgadm_facts gather_subset=[available] vs. a plain fetch-and-parse.

One IMGAPI server (tests/world/imgapi_server.py, its own process on
127.0.0.1, `--max-page-size 1000` like a production IMGAPI on moray) serves
10,000 realistic manifests from a data dir of the benchmark's own. Both sides
run as their own processes (same interpreter) and fetch the same pages:

  module    python bench/module_rss.py STAGED/plugins/modules/imgadm_facts.py ARGS.json
            with {"ANSIBLE_MODULE_ARGS": {"gather_subset": ["available"],
            "sources": [URL], "imgadm_dir": <empty dir>}}: everything the module
            does, including printing the whole result JSON (stdout -> a file)
  baseline  python bench/module_rss.py WORK/avail-baseline.py PAGES.json:
            one requests.Session GETs exactly the URLs the module asked for
            (copied from the server's request log after the module's warm-up
            run, same Accept/Accept-Version headers) and json.loads each body
            into one list; it prints a one-line summary (stdout -> a file)

After one untimed warm-up of each side it runs --rounds (default 5) rounds in
ABBA order, timing each process from start to exit, and prints a table, a
`RATIO avail-N <module/baseline>` line, a `PEAK_RSS_MIB avail-N module X
baseline Y` line and a `REQUESTS avail-N module A baseline B` line (counted in
the server's request log). Then it times the module's phases once more
without a profiler (a wrapper that times a few functions) and, when the ratio
is over the target (or with --profile always), runs it under cProfile and
says where the time goes. The target, ratio <= 1.5 (the reference imgadm
takes about 2x), is reported, not enforced: exit 0 whatever the figures, 1
only when something could not be measured.

Usage (from the repository; no root or ZFS needed):

  .venv/bin/python bench/avail_bench.py [--manifests 10000] [--page 1000]
      [--rounds 5] [--json FILE] [--profile auto|always|never] [--phase-runs 3]
      [--variant LABEL=STAGED_ROOT ...] [--build-root DIR] [--timeout 300]
      [--cleanup]

See bench/README.md, "Available-images benchmark".
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import import_bench as ib  # noqa: E402  (bench/import_bench.py: WORK, log, BenchError, MiB; puts tests/world on sys.path)
import imgapi_server  # noqa: E402  (tests/world/imgapi_server.py: image_json_bytes, UNSET_OWNER_UUID)

log = ib.log
BenchError = ib.BenchError
MiB = ib.MiB
WORK = ib.WORK                                    # /var/tmp/smartos-imgadm-bench ($IMGADM_BENCH_DIR)
BUILD_ROOT = os.path.join(WORK, "avail-build")   # our own staging root (import_bench.py uses WORK/build)
DATA_DIR = os.path.join(WORK, "avail-server")    # the server's data dir: images/UUID.json
IMGADM_DIR = os.path.join(WORK, "avail-imgadm")  # empty imgadm_dir for the module (no sources configured)
RUN_DIR = os.path.join(WORK, "avail-run")        # args, outputs, scripts, profiles
MODULE_REL = "ansible_collections/smartos/imgadm/plugins/modules/imgadm_facts.py"
SERVER = os.path.join(TOP, "tests", "world", "imgapi_server.py")
MODULE_RSS = os.path.join(HERE, "module_rss.py")
FLOOR = os.path.join(HERE, "floor_module.py")
CLIENT_PAGE = 1000         # the module's ImgapiClient page size (DEFAULT_PAGE_SIZE, not an option)
TARGET = 1.5
REFERENCE_RATIO = 2.0
GENERATOR = 1              # bump when the manifests change: the data dir is rebuilt
SEED = 20240601

# ---------------------------------------------------------------------------
# the baseline and the phase timer: small scripts of their own, written to RUN_DIR

BASELINE_SRC = r'''"""Plain fetch-and-parse (bench/avail_bench.py's baseline).

    python avail-baseline.py PAGES.json

GETs each URL of PAGES.json ("urls", in order) with one requests.Session and
the given headers, json.loads each body and keeps every row in one list (as
the module must). Prints one JSON line: rows, unique uuids, bytes, and the
seconds spent importing requests, in HTTP, in json.loads and in the cyclic GC.
"""
import time
T0 = time.perf_counter()
import gc
import json
import sys

import requests

T1 = time.perf_counter()
GC = {"s": 0.0, "n": 0, "t": 0.0}


def _gc(phase, info):
    if phase == "start":
        GC["t"] = time.perf_counter()
    else:
        GC["s"] += time.perf_counter() - GC["t"]
        GC["n"] += 1


gc.callbacks.append(_gc)


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    session = requests.Session()
    session.headers.update(cfg["headers"])
    rows = []
    http_s = parse_s = 0.0
    nbytes = server_ms = 0
    for url in cfg["urls"]:
        t = time.perf_counter()
        resp = session.get(url, timeout=cfg["timeout"])
        resp.raise_for_status()
        body = resp.content
        t2 = time.perf_counter()
        rows.extend(json.loads(body))
        parse_s += time.perf_counter() - t2
        http_s += t2 - t
        nbytes += len(body)
        server_ms += int(resp.headers.get("x-response-time") or 0)
    sys.stdout.write(json.dumps({
        "rows": len(rows), "uuids": len(set(m["uuid"] for m in rows)), "pages": len(cfg["urls"]),
        "bytes": nbytes, "server_ms": server_ms, "import_s": T1 - T0, "http_s": http_s, "parse_s": parse_s,
        "gc_s": GC["s"], "gc_n": GC["n"], "script_s": time.perf_counter() - T0}) + "\n")


if __name__ == "__main__":
    main()
'''

PHASES_SRC = r'''"""Run the module like module_rss.py, timing a few of its functions (bench/avail_bench.py).

    BENCH_PHASES_FILE=F python avail-phases.py MODULE.py ARGS.json

Imports what the module imports first (timed as "imports"), wraps a handful
of functions with perf_counter (a few dozen calls in all, except the per-image
filter match), runs the module as __main__ and at exit writes the seconds per
phase as JSON to $BENCH_PHASES_FILE.
"""
import time
T0 = time.perf_counter()
import atexit
import builtins
import gc
import json
import os
import runpy
import sys
import types

from ansible.module_utils import basic
from ansible_collections.smartos.imgadm.plugins.module_utils import _common, _facts, _image_sources, _imgapi

T1 = time.perf_counter()
_out = os.environ.pop("BENCH_PHASES_FILE")
acc = {"imports (ansible basic + collection module_utils)": T1 - T0}
calls = {}
ends = {}
GC = {"t": 0.0}


def _gc(phase, info):
    if phase == "start":
        GC["t"] = time.perf_counter()
    else:
        acc["cyclic GC (inside the phases above)"] = acc.get("cyclic GC (inside the phases above)", 0.0) + \
            time.perf_counter() - GC["t"]
        calls["cyclic GC (inside the phases above)"] = calls.get("cyclic GC (inside the phases above)", 0) + 1


gc.callbacks.append(_gc)


def wrap(owner, attr, name):
    raw = owner.__dict__.get(attr) if isinstance(owner, type) else None
    orig = getattr(owner, attr)

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            ends[name] = time.perf_counter()
            acc[name] = acc.get(name, 0.0) + ends[name] - t
            calls[name] = calls.get(name, 0) + 1
    setattr(owner, attr, staticmethod(timed) if isinstance(raw, staticmethod) else timed)


wrap(basic.AnsibleModule, "__init__", "AnsibleModule() (arguments)")
wrap(_imgapi, "_load_requests", "import requests")
wrap(_facts, "gather", "gather (all the work)")
wrap(_image_sources.ImageSources, "available", "ImageSources.available")
wrap(_imgapi.ImgapiClient, "list_images", "ImgapiClient.list_images")
wrap(_imgapi.ImgapiClient, "_send", "HTTP: session.send (request, wait, read body)")
wrap(_imgapi.ImgapiClient, "_check_complete", "HTTP: _check_complete")
wrap(_imgapi.ImgapiClient, "_json", "JSON: resp.json()")
wrap(_facts, "matches", "filters: matches() per image")
wrap(basic.AnsibleModule, "exit_json", "exit_json (all)")
wrap(basic, "remove_values", "exit_json: remove_values (no_log scrub)")
_json = types.SimpleNamespace(**{k: getattr(json, k) for k in dir(json) if not k.startswith("__")})
wrap(_json, "dumps", "exit_json: json.dumps")
basic.json = _json
basic.print = builtins.print
wrap(basic, "print", "exit_json: print")


def _report():
    sys.stdout.flush()
    now = time.perf_counter()
    if "exit_json (all)" in ends:
        # SystemExit unwinding: the frames (and the result, its scrubbed copy, the JSON text) are freed here
        acc["after exit_json: unwinding, freeing the result"] = now - ends["exit_json (all)"]
    acc["total (from the wrapper's start)"] = now - T0
    with open(_out, "w") as f:
        json.dump({"seconds": acc, "calls": calls}, f)


atexit.register(_report)
module = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(module))
runpy.run_path(module, run_name="__main__")
'''

PHASE_TOTAL = "total (from the wrapper's start)"
PHASE_ORDER = [  # (phase, depth) as the phase timer names them; the last two are not parts of the others
    ("imports (ansible basic + collection module_utils)", 0),
    ("AnsibleModule() (arguments)", 0),
    ("gather (all the work)", 0),
    ("ImageSources.available", 1),
    ("import requests", 2),
    ("ImgapiClient.list_images", 2),
    ("HTTP: session.send (request, wait, read body)", 3),
    ("HTTP: _check_complete", 3),
    ("JSON: resp.json()", 3),
    ("filters: matches() per image", 1),
    ("exit_json (all)", 0),
    ("exit_json: remove_values (no_log scrub)", 1),
    ("exit_json: json.dumps", 1),
    ("exit_json: print", 1),
    ("after exit_json: unwinding, freeing the result", 0),
    (PHASE_TOTAL, 0),
    ("cyclic GC (inside the phases above)", 0),
]

# ---------------------------------------------------------------------------
# small helpers


def run(argv, timeout, env=None, what=None, stdout=subprocess.PIPE):
    """subprocess.run with a timeout; BenchError on a timeout or a non-zero exit."""
    what = what or " ".join(argv[:3])
    try:
        p = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError("%s: no exit within %s s (killed)" % (what, timeout))
    if p.returncode != 0:
        out = p.stdout.decode("utf-8", "replace") if isinstance(p.stdout, bytes) else ""
        err = (p.stderr.decode("utf-8", "replace") + out).strip()[-2000:]
        raise BenchError("%s failed (exit %d): %s" % (what, p.returncode, err))
    return p


def http(url, method="GET", timeout=30):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def load_avg():
    return "%.2f %.2f %.2f" % os.getloadavg()


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# manifests

OWNERS = [imgapi_server.UNSET_OWNER_UUID] * 8 + [
    "930896af-bf8c-48d4-885c-6573a94b1853", "91ba0e64-2547-11e2-a972-df579e5fddb3",
    "86055c40-2547-11e2-8a6b-4bb37edc84ba"]
SMARTOS = ["base-64-lts", "base-64", "minimal-64-lts", "minimal-64", "base-multiarch-lts", "pkgbuild", "nodejs",
           "mongodb", "percona", "redis", "elasticsearch", "java", "postgresql", "haproxy", "mysql", "riak",
           "hadoop", "chef-server", "fauxnodejs", "sdc-smartos", "smartos-1.6.3", "standard64", "ws2012std"]
LX = [("ubuntu-16.04", "4.3.0"), ("ubuntu-18.04", "4.3.0"), ("ubuntu-20.04", "4.15.0"), ("ubuntu-22.04", "5.4.0"),
      ("debian-9", "4.3.0"), ("debian-10", "4.10.0"), ("debian-11", "5.4.0"), ("centos-7", "3.10.0"),
      ("alpine-3", "4.3.0"), ("fedora-34", "5.4.0"), ("almalinux-8", "4.18.0"), ("rockylinux-9", "5.14.0"),
      ("void", "5.4.0"), ("archlinux", "5.4.0")]
ZVOL = [("ubuntu-certified-18.04", "linux", "ubuntu"), ("ubuntu-certified-20.04", "linux", "ubuntu"),
        ("ubuntu-certified-22.04", "linux", "ubuntu"), ("centos-7", "linux", "root"), ("debian-10", "linux", "debian"),
        ("debian-11", "linux", "debian"), ("freebsd-12", "bsd", "freebsd"), ("freebsd-13", "bsd", "freebsd"),
        ("openbsd-7", "bsd", "openbsd"), ("windows-server-2016", "windows", "Administrator"),
        ("rockylinux-8", "linux", "rocky")]
DOCKER = ["library/nginx", "library/redis", "library/alpine", "library/postgres", "library/busybox",
          "joyent/triton-kbmapi", "library/node", "library/python"]
DESCRIPTIONS = {
    "zone-dataset": "A %s SmartOS image (%s), with the pkgsrc tools and a minimal set of packages for %s.",
    "lx-dataset": "Container-native %s 64-bit image (%s). Built to run on containers with bare metal speed, while "
                  "offering all the services of a typical unix host (%s).",
    "zvol": "%s (%s 64-bit). Certified cloud image for kvm and bhyve, %s.",
    "docker": "Docker image layer of %s (%s), %s",
}


def _hex(rng, bits):
    return "%0*x" % (bits // 4, rng.getrandbits(bits))


def _uuid(rng):
    return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))


def make_manifests(n, seed=SEED):
    """n realistic active manifests (zone-dataset, lx-dataset, zvol, docker), published_at strictly increasing
    (distinct, so the inclusive marker has no ties), deterministic for a seed."""
    rng = random.Random(seed)
    t = datetime.datetime(2012, 1, 1, tzinfo=datetime.timezone.utc)
    span = datetime.timedelta(days=365 * 12)
    step = span.total_seconds() / max(n, 1)
    docker_last = {}
    smartos_seen = []
    out = []
    for i in range(n):
        t += datetime.timedelta(seconds=step * rng.uniform(0.3, 1.7), milliseconds=rng.randrange(1000))
        ms = t.microsecond // 1000
        published = t.strftime("%Y-%m-%dT%H:%M:%S") + (".%03dZ" % ms if rng.random() < 0.7 else "Z")
        day = t.strftime("%Y%m%d")
        platform_ts = (t - datetime.timedelta(days=rng.randrange(30, 400))).strftime("%Y%m%dT%H%M%SZ")
        kind = rng.random()
        m = {"v": 2, "uuid": _uuid(rng), "owner": rng.choice(OWNERS)}
        tags = {}
        req = {}
        if kind < 0.45:
            name = rng.choice(SMARTOS)
            version = "%d.%d.%d" % (t.year % 100, (t.month - 1) // 3 + 1, rng.randrange(4))
            m.update(name=name, version=version, type="zone-dataset", os="smartos")
            tags.update(role="os", group=name)
            if rng.random() < 0.3:
                tags["smartdc_service"] = True
            extra = "%s, %s" % (name, rng.choice(["web", "databases", "building packages", "general use"]))
            m["description"] = DESCRIPTIONS["zone-dataset"] % (name, version, extra)
            m["homepage"] = "https://docs.joyent.com/images/smartos/%s" % name.split("-")[0]
            if rng.random() < 0.4:
                m["urn"] = "sdc:sdc:%s:%s" % (name, version)
            if rng.random() < 0.3:
                m["users"] = [{"name": "root"}, {"name": "admin"}] + ([{"name": name}] if rng.random() < 0.5 else [])
                m["generate_passwords"] = True
            if rng.random() < 0.1:
                m["inherited_directories"] = ["/opt/%s_service" % name.replace("-", "_")]
            if smartos_seen and rng.random() < 0.05:
                m["origin"] = rng.choice(smartos_seen[-50:])
            smartos_seen.append(m["uuid"])
        elif kind < 0.70:
            name, kernel = rng.choice(LX)
            version = day
            m.update(name=name, version=version, type="lx-dataset", os="linux")
            tags.update(role="os", kernel_version=kernel)
            req["brand"] = "lx"
            m["description"] = DESCRIPTIONS["lx-dataset"] % (name, version, "kernel %s" % kernel)
            m["homepage"] = "https://docs.joyent.com/images/container-native-linux"
        elif kind < 0.90:
            name, os_, user = rng.choice(ZVOL)
            version = day + (".%d" % rng.randrange(1, 4) if rng.random() < 0.1 else "")
            m.update(name=name, version=version, type="zvol", os=os_)
            tags.update(role="os", default_user=user)
            req["ssh_key"] = os_ != "windows"
            if rng.random() < 0.5:
                req["brand"] = "bhyve"
                req["bootrom"] = rng.choice(["bios", "uefi"])
            m["description"] = DESCRIPTIONS["zvol"] % (name, version, rng.choice(["virtio drivers", "cloud-init"]))
            m["homepage"] = "https://docs.joyent.com/images/linux/%s" % name
            m.update(nic_driver=rng.choice(["virtio", "virtio", "e1000"]),
                     disk_driver=rng.choice(["virtio", "virtio", "ide"]),
                     cpu_type=rng.choice(["host", "qemu64"]), image_size=rng.choice([10240, 20480, 51200, 102400]))
        else:
            repo = rng.choice(DOCKER)
            version = _hex(rng, 48)
            m.update(name="docker-layer", version=version, type="docker", os="linux")
            tags = {"docker:repo": repo, "docker:config": {
                "Cmd": [rng.choice(["/bin/sh", "nginx", "redis-server", "node", "python3"])], "Entrypoint": None,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "LANG=C.UTF-8"][:rng.randrange(1, 3)],
                "WorkingDir": rng.choice(["", "/", "/app"])}}
            if rng.random() < 0.3:
                tags["docker:tag:latest"] = True
            if repo in docker_last:
                m["origin"] = docker_last[repo]
            docker_last[repo] = m["uuid"]
            m["description"] = DESCRIPTIONS["docker"] % (repo, version, "sha256:%s" % _hex(rng, 256))
        m.update(state="active", disabled=False, public=rng.random() < 0.95, published_at=published)
        m["files"] = [{"sha1": _hex(rng, 160), "size": rng.randrange(30 * MiB, 1500 * MiB),
                       "compression": rng.choice(["gzip"] * 6 + ["xz", "bzip2", "none"])}]
        if m["type"] != "docker":
            req.setdefault("networks", [{"name": "net0", "description": "public"}])
            if rng.random() < 0.8:
                req["min_platform"] = {"7.0": platform_ts}
            if rng.random() < 0.15:
                req["max_platform"] = {"7.0": (t + datetime.timedelta(days=900)).strftime("%Y%m%dT%H%M%SZ")}
            if rng.random() < 0.2:
                req["min_ram"] = rng.choice([256, 512, 1024, 2048])
            m["requirements"] = req
        m["tags"] = tags
        out.append(m)
    return out


def ensure_data(n):
    """DATA_DIR/images holds exactly the n generated manifests (regenerated when the stamp differs)."""
    stamp_path = os.path.join(DATA_DIR, "avail-bench.json")
    stamp = {"generator": GENERATOR, "seed": SEED, "manifests": n}
    images = os.path.join(DATA_DIR, "images")
    try:
        with open(stamp_path) as f:
            have = json.load(f)
        count = sum(1 for fn in os.listdir(images) if fn.endswith(".json"))
    except (OSError, ValueError):
        have, count = None, -1
    if have == stamp and count == n:
        log("reusing the %d manifests in %s" % (n, images))
        return False
    log("writing %d manifests into %s ..." % (n, images))
    t0 = time.time()
    os.makedirs(DATA_DIR, exist_ok=True)
    tmp = images + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    size = 0
    for m in make_manifests(n):
        data = imgapi_server.image_json_bytes(m)
        size += len(data)
        with open(os.path.join(tmp, m["uuid"] + ".json"), "wb") as f:
            f.write(data)
    shutil.rmtree(images, ignore_errors=True)
    os.replace(tmp, images)
    write_json(stamp_path, stamp)
    log("wrote %d manifests (%.1f MiB as stored) in %.1f s" % (n, size / MiB, time.time() - t0))
    return True


# ---------------------------------------------------------------------------
# the server

class Server(object):
    """tests/world/imgapi_server.py as its own process on 127.0.0.1."""

    def __init__(self, data_dir, page, timeout=120):
        self.port_file = os.path.join(RUN_DIR, "server.port")
        self.err_path = os.path.join(RUN_DIR, "server.stderr")
        for p in (self.port_file,):
            if os.path.exists(p):
                os.unlink(p)
        argv = [sys.executable, SERVER, "--data-dir", data_dir, "--port", "0", "--port-file", self.port_file]
        if page:
            argv += ["--max-page-size", str(page)]
        self.argv = argv
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + timeout
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                self.stop()
                raise BenchError("the IMGAPI server exited (%s): see %s" % (self.proc.returncode, self.err_path))
            if time.time() > deadline:
                self.stop()
                raise BenchError("the IMGAPI server did not listen within %d s" % timeout)
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def clear_log(self):
        http(self.url + "/__requests", method="DELETE")

    def image_requests(self):
        """The ListImages requests since the last clear_log: [(path+query, status)]."""
        return [(e["path"], e["status"]) for e in http(self.url + "/__requests")
                if e["method"] == "GET" and e["route"].rstrip("/") == "/images"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.err.close()


# ---------------------------------------------------------------------------
# the two sides


def stage():
    env = dict(os.environ, IMGADM_BUILD_ROOT=BUILD_ROOT)
    run(["bash", os.path.join(TOP, "tests", "bin", "stage.sh")], 300, env=env, what="tests/bin/stage.sh")
    module = os.path.join(BUILD_ROOT, MODULE_REL)
    if not os.path.isfile(module):
        raise BenchError("staging did not produce %s" % module)
    return module


class Sides(object):
    def __init__(self, module_path, build_root, server, n, page, timeout):
        self.page = page
        self.module_path = module_path
        self.build_root = build_root
        self.server = server
        self.n = n
        self.timeout = timeout
        self.env = dict(os.environ, PYTHONPATH=build_root)   # the same for both sides
        self.args_path = os.path.join(RUN_DIR, "module-args.json")
        write_json(self.args_path, {"ANSIBLE_MODULE_ARGS": {
            "gather_subset": ["available"], "sources": [server.url], "imgadm_dir": IMGADM_DIR}})
        self.baseline_path = os.path.join(RUN_DIR, "avail-baseline.py")
        self.phases_path = os.path.join(RUN_DIR, "avail-phases.py")
        for path, src in ((self.baseline_path, BASELINE_SRC), (self.phases_path, PHASES_SRC)):
            with open(path, "w") as f:
                f.write(src)
        self.pages_path = os.path.join(RUN_DIR, "baseline-pages.json")
        self.floor_args = os.path.join(RUN_DIR, "floor-args.json")
        write_json(self.floor_args, {"ANSIBLE_MODULE_ARGS": {"uuid": "floor"}})
        self.module_pages = None

    def _timed(self, argv, out_path, what, env=None):
        rss_file = os.path.join(RUN_DIR, "rss.txt")
        if os.path.exists(rss_file):
            os.unlink(rss_file)
        env = dict(env or self.env, BENCH_RSS_FILE=rss_file)
        self.server.clear_log()
        with open(out_path, "wb") as out:
            t0 = time.perf_counter()
            run(argv, self.timeout, env=env, what=what, stdout=out)
            dt = time.perf_counter() - t0
        with open(rss_file) as f:
            fields = f.read().split()
        return {"seconds": dt, "rss_mib": int(fields[0]) / 1024.0, "cpu_seconds": float(fields[1]) + float(fields[2]),
                "requests": self.server.image_requests(), "stdout_bytes": os.path.getsize(out_path)}

    def module(self, variant=None):
        """One run of the module (or of a --variant: the module of another staged collection)."""
        module_path, env, what = self.module_path, self.env, "the module"
        if variant is not None:
            module_path = os.path.join(variant[1], MODULE_REL)
            env = dict(os.environ, PYTHONPATH=variant[1])
            what = "the module (variant %s)" % variant[0]
        out_path = os.path.join(RUN_DIR, "module.out" if variant is None else "module-%s.out" % variant[0])
        r = self._timed([sys.executable, MODULE_RSS, module_path, self.args_path], out_path, what, env=env)
        with open(out_path, "rb") as f:
            res = json.loads(f.read())
        avail = (res.get("ansible_facts") or {}).get("imgadm_available")
        if res.get("failed") or res.get("source_errors") or not isinstance(avail, list):
            raise BenchError("%s failed: %s" % (what, json.dumps(res)[:2000]))
        r["facts_sha1"] = hashlib.sha1(json.dumps(res["ansible_facts"], sort_keys=True).encode()).hexdigest()
        uuids = len(set(i["manifest"]["uuid"] for i in avail))
        if len(avail) != self.n or uuids != self.n:
            raise BenchError("%s returned %d images (%d uuids), not %d%s" % (
                what, len(avail), uuids, self.n, "" if not 0 < self.page < CLIENT_PAGE else
                ": the server's --page %d is below the client's page size %d, so the client stops after the first "
                "page" % (self.page, CLIENT_PAGE)))
        if any(s != 200 for dummy, s in r["requests"]):
            raise BenchError("a module request failed: %s" % r["requests"])
        r["images"] = len(avail)
        if self.module_pages is None and variant is None:
            # the baseline fetches exactly these pages
            self.module_pages = [p for p, dummy in r["requests"]]
            write_json(self.pages_path, {"urls": [self.server.url + p for p in self.module_pages],
                                         "headers": {"Accept-Version": "~2", "Accept": "application/json"},
                                         "timeout": 60})
        return r

    def baseline(self):
        out_path = os.path.join(RUN_DIR, "baseline.out")
        r = self._timed([sys.executable, MODULE_RSS, self.baseline_path, self.pages_path], out_path, "the baseline")
        with open(out_path) as f:
            summary = json.loads(f.read())
        if summary["uuids"] != self.n:
            raise BenchError("the baseline got %d uuids, not %d" % (summary["uuids"], self.n))
        r.update(summary=summary, images=summary["uuids"])
        return r

    def floor(self):
        t0 = time.perf_counter()
        run([sys.executable, FLOOR, self.floor_args], self.timeout, env=self.env, what="floor_module.py")
        return time.perf_counter() - t0

    def phases(self):
        """One module run under the phase timer: {phase: seconds}, plus the process's wall seconds."""
        out_path = os.path.join(RUN_DIR, "phases.out")
        phases_file = os.path.join(RUN_DIR, "phases.json")
        env = dict(self.env, BENCH_PHASES_FILE=phases_file)
        with open(out_path, "wb") as out:
            t0 = time.perf_counter()
            run([sys.executable, self.phases_path, self.module_path, self.args_path], self.timeout, env=env,
                what="the module under the phase timer", stdout=out)
            dt = time.perf_counter() - t0
        with open(phases_file) as f:
            res = json.load(f)
        res["wall"] = dt
        return res

    def profile(self):
        prof = os.path.join(RUN_DIR, "module.prof")
        out_path = os.path.join(RUN_DIR, "profile.out")
        with open(out_path, "wb") as out:
            t0 = time.perf_counter()
            run([sys.executable, "-m", "cProfile", "-o", prof, MODULE_RSS, self.module_path, self.args_path],
                self.timeout * 3, env=self.env, what="the module under cProfile", stdout=out)
            dt = time.perf_counter() - t0
        return prof, dt


# ---------------------------------------------------------------------------
# profile analysis


def profile_report(prof, wall, module_median):
    st = pstats.Stats(prof)
    total = st.total_tt

    def cum(path_end, func):
        return sum(v[3] for (fn, dummy, name), v in st.stats.items()
                   if name == func and fn.replace(os.sep, "/").endswith(path_end))

    mod = cum("/imgadm_facts.py", "<module>")
    main = cum("/imgadm_facts.py", "main")
    gather = cum("module_utils/_facts.py", "gather")
    avail = cum("module_utils/_image_sources.py", "available")
    listing = cum("module_utils/_imgapi.py", "list_images")
    send = cum("module_utils/_imgapi.py", "_send")
    jparse = cum("module_utils/_imgapi.py", "_json")
    exitj = cum("module_utils/basic.py", "exit_json")
    remove = cum("module_utils/common/parameters.py", "remove_values") or cum("module_utils/basic.py", "remove_values")
    record = cum("module_utils/basic.py", "_record_module_result")
    dumps = cum("json/__init__.py", "dumps")
    init = cum("module_utils/basic.py", "__init__")
    rows = [
        ("imports (module file's top level, before main)", mod - main),
        ("AnsibleModule() (argument parsing)", init),
        ("gather: ImageSources.available", avail),
        ("  ImgapiClient.list_images", listing),
        ("    HTTP: _send (request, server, body read)", send),
        ("    JSON: _json (resp.json)", jparse),
        ("  available() itself (dedupe, {manifest, source} items)", avail - listing),
        ("gather: the rest (filters, subsets)", gather - avail),
        ("exit_json", exitj),
        ("  remove_values (no_log scrub of the whole result)", remove),
        ("  _record_module_result (json.dumps + print)", record),
        ("    json.dumps (all calls)", dumps),
    ]
    lines = ["  profiled total %.2f s (wall under cProfile %.2f s; unprofiled module median %.2f s; "
             "the profiler inflates many-small-calls code most)" % (total, wall, module_median)]
    for name, s in rows:
        lines.append("    %-58s %7.3f s  %5.1f%%" % (name, s, 100.0 * s / total if total else 0))
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    top = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(top) if ln.lstrip().startswith("ncalls")), 0)
    lines.append("  top functions by own time (pstats tottime):")
    lines += ["    " + ln.strip()[:150] for ln in top[start:start + 16]]
    return lines, dict(rows)


# ---------------------------------------------------------------------------
# report


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def print_report(res, args, info):
    name = "avail-%d" % args.manifests
    mod, base, floors = res["module"], res["baseline"], res["floor"]
    print()
    print("smartos.imgadm available-images benchmark  %s" % info["when"])
    print("  machine: %s cores, load avg before %s after %s; python %s; ansible-core %s; requests %s"
          % (os.cpu_count(), info["load_before"], info["load_after"], platform.python_version(), info["ansible"],
             info["requests"]))
    print("  server:   %s (own process) %s" % (info["url"], " ".join(info["server_argv"][1:])))
    print("            %d active manifests, %.1f MiB as served (2-space JSON) per run" %
          (args.manifests, base[0]["summary"]["bytes"] / MiB))
    print("  module:   PYTHONPATH=%s python bench/module_rss.py %s ARGS.json" % (info["build_root"], info["module"]))
    print("            ARGS = gather_subset [available], sources [server], imgadm_dir (empty); stdout -> a file")
    print("  baseline: python bench/module_rss.py %s PAGES.json" % os.path.join(RUN_DIR, "avail-baseline.py"))
    print("            requests.Session GET of the module's own URLs + json.loads, all rows in one list; "
          "stdout (one line) -> a file")
    print("  %d timed rounds per side (ABBA) after one untimed warm-up each; medians shown" % args.rounds)
    print()
    hdr = ("side", "wall s", "min s", "max s", "ratio", "CPU s", "peak RSS MiB", "requests", "stdout MiB")
    rows = []
    b_med = med(base, "seconds")
    sides = [("baseline", base), ("module", mod)] + [("module[%s]" % k, v) for k, v in res["variants"].items()]
    for side, runs in sides:
        rows.append((side, "%.3f" % med(runs, "seconds"), "%.3f" % min(r["seconds"] for r in runs),
                     "%.3f" % max(r["seconds"] for r in runs), "%.3f" % (med(runs, "seconds") / b_med),
                     "%.3f" % med(runs, "cpu_seconds"), "%.1f" % max(r["rss_mib"] for r in runs),
                     str(len(runs[0]["requests"])), "%.2f" % (runs[0]["stdout_bytes"] / MiB)))
    rows.append(("floor", "%.3f" % statistics.median(floors), "%.3f" % min(floors), "%.3f" % max(floors),
                 "-", "-", "-", "0", "-"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(hdr)]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(hdr, widths)))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print()
    bs = [r["summary"] for r in base]
    server_s = statistics.median(s["server_ms"] for s in bs) / 1000.0
    m_med = med(mod, "seconds")
    print("  baseline inside: import requests %.3f s, HTTP %.3f s (of which server until headers ~%.3f s, "
          "x-response-time), json.loads %.3f s, cyclic GC %.3f s"
          % (statistics.median(s["import_s"] for s in bs), statistics.median(s["http_s"] for s in bs), server_s,
             statistics.median(s["parse_s"] for s in bs), statistics.median(s["gc_s"] for s in bs)))
    print("  ratio without the server's share (module - server) / (baseline - server): %.3f"
          % ((m_med - server_s) / (b_med - server_s)))
    print("  floor = bench/floor_module.py (interpreter + AnsibleModule + requests, no work), after each module run")
    for k, runs in res["variants"].items():
        same = all(r["facts_sha1"] == mod[0]["facts_sha1"] for r in runs)
        print("  module[%s] = the module staged under %s; its facts are %s the module's"
              % (k, res["variant_roots"][k], "the same as" if same else "DIFFERENT from"))
    print("  pages: %s" % ("the same %d URLs on both sides" % len(res["module_pages"]) if res["same_pages"]
                           else "DIFFERENT: module %s, baseline %s" % (res["module_pages"], res["baseline_pages"])))
    print("         %s" % "  ".join(p.replace("/images", "") or "(none)" for p in res["module_pages"][:2])
          + ("  ..." if len(res["module_pages"]) > 2 else ""))
    if res.get("phases"):
        print()
        ph = dict(res["phases"])
        print("  module phases, no profiler (bench's phase timer; of %d runs the one with the median total, "
              "wall %.3f s):" % (len(res["phases_runs"]), res["phases_wall"]))
        for k, depth in PHASE_ORDER:
            if k in ph:
                print("    %-62s %7.3f s" % ("  " * depth + k, ph[k]))
        top = sum(ph.get(k, 0.0) for k, depth in PHASE_ORDER[:-2] if depth == 0)
        other = ph.get(PHASE_TOTAL, 0.0) - top
        print("    %-62s %7.3f s" % ("other (runpy, main's own code) = total - the top-level phases", other))
        print("    %-62s %7.3f s" % ("interpreter start-up and final teardown = wall - total", res["phases_startup"]))
    if res.get("profile_lines"):
        print()
        print("  cProfile of one module run (%s):" % res["profile_file"])
        for ln in res["profile_lines"]:
            print(ln)
    print()
    ratio = m_med / b_med
    print("RATIO %s %.3f" % (name, ratio))
    rss_mod, rss_base = max(r["rss_mib"] for r in mod), max(r["rss_mib"] for r in base)
    print("PEAK_RSS_MIB %s module %.1f baseline %.1f" % (name, rss_mod, rss_base))
    print("REQUESTS %s module %d baseline %d" % (name, len(mod[0]["requests"]), len(base[0]["requests"])))
    for k, runs in res["variants"].items():
        print("RATIO_VARIANT %s %s %.3f" % (name, k, med(runs, "seconds") / b_med))
    print("target: ratio <= %.1f: %s (%.3f; the reference imgadm: about %.0fx)"
          % (TARGET, "met" if ratio <= TARGET else "NOT met", ratio, REFERENCE_RATIO))
    sys.stdout.flush()


# ---------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--manifests", type=int, default=10000, help="manifests served (default 10000)")
    ap.add_argument("--page", type=int, default=1000,
                    help="the server's ListImages cap, --max-page-size (default 1000, as moray; 0 = no cap, the "
                         "local-database IMGAPI). The module's client pages by 1000 whatever this is: below 1000 it "
                         "stops after the first page, and the benchmark says so")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per side (default 5)")
    ap.add_argument("--json", help="also write every measurement to this JSON file")
    ap.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                    help="cProfile one module run: auto = when the ratio is over %.1f (default)" % TARGET)
    ap.add_argument("--phase-runs", type=int, default=3, help="module runs under the phase timer (default 3, 0 = none)")
    ap.add_argument("--build-root", help="use the collection already staged under this root (e.g. a patched copy) "
                    "instead of staging this work tree into %s" % BUILD_ROOT)
    ap.add_argument("--variant", action="append", metavar="LABEL=ROOT",
                    help="also time the module of the collection staged under ROOT (e.g. a patched copy of the "
                         "staged root) in the same ABBA rounds, reported as module[LABEL]; repeatable")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed to each run of a side (default 300)")
    ap.add_argument("--cleanup", action="store_true",
                    help="at the end remove the benchmark's work dirs (%s, %s, %s, %s)"
                    % (DATA_DIR, BUILD_ROOT, IMGADM_DIR, RUN_DIR))
    args = ap.parse_args(argv)
    if args.manifests < 1 or args.rounds < 1 or args.page < 0:
        ap.error("--manifests and --rounds must be at least 1, --page at least 0")

    for d in (WORK, RUN_DIR, IMGADM_DIR):
        os.makedirs(d, exist_ok=True)
    if os.listdir(IMGADM_DIR):
        shutil.rmtree(IMGADM_DIR)
        os.makedirs(IMGADM_DIR)
    info = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "load_before": load_avg()}
    vers = run([sys.executable, "-c", "import ansible.release as a, requests as r; print(a.__version__, r.__version__)"],
               60, what="version check").stdout.decode().split()
    info["ansible"], info["requests"] = (vers + ["?", "?"])[:2]
    server = None
    res = None
    try:
        if args.build_root:
            build_root = os.path.abspath(args.build_root)
            module_path = os.path.join(build_root, MODULE_REL)
            if not os.path.isfile(module_path):
                raise BenchError("no %s under --build-root %s" % (MODULE_REL, build_root))
            log("using the collection staged under %s (not re-staged)" % build_root)
        else:
            log("staging the collection into %s" % BUILD_ROOT)
            module_path = stage()
            build_root = BUILD_ROOT
        info.update(build_root=build_root, module=module_path)
        ensure_data(args.manifests)
        server = Server(DATA_DIR, args.page)
        info.update(url=server.url, server_argv=server.argv)
        log("server %s (pid %d)" % (server.url, server.proc.pid))
        sides = Sides(module_path, build_root, server, args.manifests, args.page, args.timeout)

        variants = []
        for v in args.variant or []:
            label, sep, root = v.partition("=")
            root = os.path.abspath(root)
            if not sep or not label or not os.path.isfile(os.path.join(root, MODULE_REL)):
                raise BenchError("--variant %s: want LABEL=ROOT with ROOT/%s" % (v, MODULE_REL))
            variants.append((label, root))
        log("warm-up: module%s, then baseline" % "".join(", " + v[0] for v in variants))
        sides.module()
        for v in variants:
            sides.module(v)
        sides.baseline()
        mod, base, floors = [], [], []
        var_runs = dict((v[0], []) for v in variants)
        order = ["baseline", "module"] + [v[0] for v in variants]
        for r in range(args.rounds):
            # ABBA: a slow drift of the machine's load hits every side alike
            for side in (order if r % 2 == 0 else order[::-1]):
                if side == "module":
                    mod.append(sides.module())
                    floors.append(sides.floor())
                elif side == "baseline":
                    base.append(sides.baseline())
                else:
                    var_runs[side].append(sides.module((side, dict(variants)[side])))
            log("round %d/%d: baseline %.3f s, module %.3f s (ratio %.3f)%s, RSS baseline %.1f module %.1f MiB"
                % (r + 1, args.rounds, base[-1]["seconds"], mod[-1]["seconds"], mod[-1]["seconds"] / base[-1]["seconds"],
                   "".join(", %s %.3f s" % (k, var_runs[k][-1]["seconds"]) for k in var_runs),
                   base[-1]["rss_mib"], mod[-1]["rss_mib"]))
        module_pages = [p for p, dummy in mod[0]["requests"]]
        baseline_pages = [p for p, dummy in base[0]["requests"]]
        res = {"module": mod, "baseline": base, "floor": floors, "module_pages": module_pages,
               "baseline_pages": baseline_pages,
               "variants": var_runs, "variant_roots": dict(variants),
               "same_pages": all([p for p, dummy in x["requests"]] == module_pages
                                 for x in mod + base + [y for runs in var_runs.values() for y in runs])}
        ratio = med(mod, "seconds") / med(base, "seconds")

        if args.phase_runs > 0:
            log("module phases: %d run(s) under the phase timer" % args.phase_runs)
            runs = [sides.phases() for dummy in range(args.phase_runs)]
            res["phases_runs"] = runs
            # one consistent breakdown: the run with the median total (medians per phase would not add up)
            pick = sorted(runs, key=lambda x: x["seconds"][PHASE_TOTAL])[(len(runs) - 1) // 2]
            res["phases"] = list(pick["seconds"].items())
            res["phases_wall"] = pick["wall"]
            res["phases_startup"] = pick["wall"] - pick["seconds"][PHASE_TOTAL]
        if args.profile == "always" or (args.profile == "auto" and ratio > TARGET):
            log("profiling one module run (cProfile)")
            prof, wall = sides.profile()
            res["profile_file"] = prof
            res["profile_lines"], res["profile_buckets"] = profile_report(prof, wall, med(mod, "seconds"))
    except BenchError as e:
        log("could not measure: %s" % e)
        return 1
    finally:
        if server is not None:
            server.stop()
        if args.cleanup:
            for d in (DATA_DIR, BUILD_ROOT, IMGADM_DIR, RUN_DIR):
                shutil.rmtree(d, ignore_errors=True)
            log("removed %s, %s, %s and %s" % (DATA_DIR, BUILD_ROOT, IMGADM_DIR, RUN_DIR))
    info["load_after"] = load_avg()
    print_report(res, args, info)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": res, "ratio": med(res["module"], "seconds") / med(res["baseline"], "seconds"),
                       "target": TARGET}, f, indent=2)
        print("measurements written to %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
