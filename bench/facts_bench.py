"""Facts benchmark: smartos.imgadm.imgadm_facts vs. the raw `zfs list` it needs.

On a pool with N (default 1,000) installed images (POOL/UUID + @final, the
datasets bench/import_bench.py also uses), each with a database record of a
realistic manifest in a database dir of the bench's own, and some VM-like
clones (POOL/UUID clones of images' @final, zone roots of the bench's own
fake `zoneadm`), this alternates, after one untimed warm-up of each side,
ROUNDS rounds in ABBA order of

  raw      zfs list -t filesystem,volume,snapshot -H -o name,origin,mountpoint,imgadm:ignore -r POOL
  zoneadm  ZONEADM list -pc   (the world's fake; timed on its own, reported separately)
  module   python module_rss.py STAGED/plugins/modules/imgadm_facts.py ARGS.json
           (the module file run as its own process, as __main__, with
           {"ANSIBLE_MODULE_ARGS": {pools: [POOL], imgadm_dir: BENCH_DB,
           zoneadm_path: FAKE, zfs_path, gather_subset: [installed]}})

timing each from process start to exit, and prints the medians with

  RATIO facts-N <module/raw>
  TARGET facts-N <1.15 * raw + 0.3> <module>   and whether the module is within it

(a benchmark, not a test: the target is reported, not enforced). Then, in
untimed runs, it counts the processes the module spawns (strace -f -e
execve when strace is there, else wrapper scripts as zfs_path and
zoneadm_path) on a small pool of its own with 10 and 100 images and on the
big pool, printing `PROCS facts-N <count>` for each.

Usage (as root, zfs-fuse running):

  .venv/bin/python bench/facts_bench.py [--rounds 5] [--images 1000] [--pool imgbench1k]
      [--small-pool imgbenchfacts] [--json FILE] [--profile FILE] [--reference-note]
      [--procs-method auto|strace|wrappers] [--no-procs] [--cleanup] [--cleanup-only]

See bench/README.md, "Facts benchmark".
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
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
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import import_bench as ib  # noqa: E402  (bench/import_bench.py: world, pools, staging, the image datasets)

TOP = ib.TOP
WORK = ib.WORK
# a staging root of our own (import_bench's may be re-staged under a running import benchmark)
BUILD_ROOT = os.path.join(WORK, "facts-build")
FACTS_REL = "ansible_collections/smartos/imgadm/plugins/modules/imgadm_facts.py"
DB_DIR = os.path.join(WORK, "facts-db")  # imgadm_dir: DB_DIR/images/POOL-UUID.json
FAKE_STATE = os.path.join(WORK, "facts-fake-state")  # SMARTOS_FAKE_STATE of our own: zones.json = the VMs
COUNT_DIR = os.path.join(WORK, "facts-count")
VM_NS = uuidlib.UUID("3f0c9a52-8d7e-4b61-a0c4-5e2d7b9f1a00")
SOURCE_URL = "https://images.smartos.org"
SMALL_POOL_SIZE = "1G"
SMALL_SIZES = (10, 100)
MAX_VMS = 200  # --clones at most
# the reference figure from the issue: stock `imgadm list -j` vs. its own `zfs list`, 1,000 images
REFERENCE = {"imgadm_list_s": 1.99, "zfs_list_s": 1.61, "ratio": 1.22}
TARGET_FACTOR, TARGET_ADD = 1.15, 0.3

# deadlines (seconds): nothing this script starts may hang it (zfs-fuse can wedge)
TIMEOUTS = {"world.sh": 900, "zpool.sh": 600, "stage.sh": 300}
CMD_TIMEOUT = 120
RUN_TIMEOUT = 300  # one timed raw / zoneadm / module run
STRACE_TIMEOUT = 600

BenchError = ib.BenchError
log = ib.log


# ---------------------------------------------------------------------------
# subprocesses, all with a deadline (also patched into import_bench, whose own helpers have none)

def run(argv, env=None, timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL):
    """(rc, stdout, stderr, wall seconds); the whole process group is killed past `timeout`."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass  # stuck in the kernel (a wedged zfs-fuse): leave it
        raise BenchError("%s ran over %d s and was killed (is zfs-fuse wedged? see bench/README.md)"
                         % (" ".join(argv)[:300], timeout)) from None
    return p.returncode, out, err, time.perf_counter() - t0


def sh(argv, env=None, check=True, timeout=None):
    if timeout is None:
        timeout = CMD_TIMEOUT
        for a in argv[:3]:
            timeout = TIMEOUTS.get(os.path.basename(str(a)), timeout)
    rc, out, err, dummy = run(argv, env=env, timeout=timeout)
    if check and rc != 0:
        raise BenchError("%s failed (exit %d): %s" % (" ".join(argv), rc, (err or out).strip()[-2000:]))
    return subprocess.CompletedProcess(argv, rc, out, err)


def run_parallel_scripts(lines, workers=2):
    """import_bench._run_parallel_scripts with a deadline (60 s + 3 s a line)."""
    if not lines:
        return
    parts = [p for p in (lines[i::workers] for i in range(workers)) if p]
    timeout = 60 + 3 * max(len(p) for p in parts)
    procs = [subprocess.Popen(["bash", "-e", "-c", "\n".join(part)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
             for part in parts]
    deadline = time.monotonic() + timeout
    errs = []
    for p in procs:
        try:
            dummy, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                try:
                    os.killpg(q.pid, signal.SIGKILL)
                except OSError:
                    pass
            raise BenchError("zfs batch ran over %d s and was killed (is zfs-fuse wedged?)" % timeout) from None
        if p.returncode != 0:
            errs.append(err.strip()[-1000:])
    if errs:
        raise BenchError("zfs batch failed: %s" % "; ".join(errs))


ib.sh = sh
ib._run_parallel_scripts = run_parallel_scripts  # pylint: disable=protected-access


# ---------------------------------------------------------------------------
# pools, image datasets, VM clones

def pool_exists(pool):
    return sh(["zpool", "list", "-H", "-o", "name", pool], check=False).returncode == 0


def pool_up(world, pool, size=ib.BENCH_POOL_SIZE):
    if ib.is_world_pool(world, pool):
        if not pool_exists(pool):
            raise BenchError("pool %s is not imported" % pool)
    else:
        sh(["bash", os.path.join(ib.WORLD_TOOLS, "zpool.sh"), "up", pool, size])


def filesystems(pool):
    """{name: (origin, canmount, mounted)} of the filesystems in `pool`."""
    p = sh(["zfs", "list", "-H", "-o", "name,origin,canmount,mounted", "-t", "filesystem", "-r", pool])
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4:
            out[parts[0]] = (parts[1], parts[2], parts[3])
    return out


def ensure_images(pool, n):
    """POOL/UUID + @final for import_bench's n deterministic uuids (ib.ensure_others), reusing what exists.

    On a pool holding nothing yet, the filesystems are created first and all
    their @final snapshots taken by one `zfs snapshot -r` (then the pool's own
    @final is destroyed); ensure_others then only checks."""
    uuids = ib.other_uuids(n)
    fs = filesystems(pool)
    if n and set(fs) == {pool}:
        log("creating %d image datasets (canmount=noauto) in the empty pool %s ..." % (n, pool))
        t0 = time.time()
        run_parallel_scripts(["zfs create -o canmount=noauto %s/%s" % (pool, u) for u in uuids])
        sh(["zfs", "snapshot", "-r", "%s@final" % pool], timeout=600)
        sh(["zfs", "destroy", "%s@final" % pool])
        log("done in %.0f s" % (time.time() - t0))
    return ib.ensure_others(pool, n)


def vm_uuids(n):
    return [str(uuidlib.uuid5(VM_NS, "facts-vm-%d" % i)) for i in range(n)]


def clone_plan(pool, n_images, n_clones):
    """{POOL/VM: POOL/IMAGE@final}: 3/4 of the VMs on distinct images, the rest on images already used."""
    images = ib.other_uuids(n_images)
    if not images or not n_clones:
        return {}
    distinct = max(1, n_clones - n_clones // 4)
    step = max(1, n_images // distinct)
    plan = {}
    for i, vm in enumerate(vm_uuids(n_clones)):
        plan["%s/%s" % (pool, vm)] = "%s/%s@final" % (pool, images[((i % distinct) * step) % n_images])
    return plan


def bench_vms(pool):
    return set("%s/%s" % (pool, v) for v in vm_uuids(MAX_VMS))


def ensure_clones(pool, plan, exact=False):
    """The VM-like clones of `plan`, not mounted. With `exact`, other clones of the bench's VM uuids go."""
    fs = filesystems(pool)
    vms = bench_vms(pool)
    lines = []
    for name, (origin, dummy, dummy2) in sorted(fs.items()):
        if name in vms and (name not in plan or plan[name] != origin) and (exact or name in plan):
            lines.append("zfs unmount %s 2>/dev/null || true; zfs destroy %s" % (name, name))
    run_parallel_scripts(lines, workers=1)
    fs = filesystems(pool)
    lines = []
    for name, src in sorted(plan.items()):
        cmds = []
        if name not in fs:
            # zfs-fuse mounts a clone even with canmount=noauto: unmount it right away
            cmds += ["zfs clone -o canmount=noauto %s %s" % (src, name), "zfs unmount %s 2>/dev/null || true" % name]
        elif fs[name][2] == "yes":
            cmds.append("zfs unmount %s" % name)
        if cmds:
            lines.append("\n".join(cmds))
    if lines:
        log("creating/fixing %d VM-like clones in %s ..." % (len(lines), pool))
        run_parallel_scripts(lines)
    fs = filesystems(pool)
    missing = [n for n in plan if n not in fs or fs[n][0] != plan[n]]
    if missing:
        raise BenchError("clones missing in %s: %s" % (pool, ", ".join(missing[:5])))
    return fs


def trim_images(pool, n):
    """Destroy the POOL/UUID datasets beyond the first n of the bench's uuids (the small pool only)."""
    keep = set("%s/%s" % (pool, u) for u in ib.other_uuids(n))
    rx = re.compile(r"^%s/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" % re.escape(pool))
    fs = filesystems(pool)
    vms = bench_vms(pool)
    extra = [name for name in fs if rx.match(name) and name not in keep and name not in vms]
    if extra:
        log("destroying %d image datasets beyond %d in %s ..." % (len(extra), n, pool))
        run_parallel_scripts(["zfs unmount %s 2>/dev/null || true; zfs destroy -r %s" % (e, e) for e in extra])


def mountpoints(pool, names):
    p = sh(["zfs", "list", "-H", "-o", "name,mountpoint", "-t", "filesystem", "-r", pool])
    mp = dict(line.split("\t", 1) for line in p.stdout.splitlines() if "\t" in line)
    return dict((n, mp.get(n)) for n in names)


# ---------------------------------------------------------------------------
# the bench's image database and fake zones

TEMPLATES = [
    # realistic manifests (from /work/shared/reference/sample-manifests), varied per image below
    {"v": 2, "uuid": None, "owner": "00000000-0000-0000-0000-000000000000", "name": "base-64-lts",
     "version": None, "state": "active", "disabled": False, "public": True, "published_at": None,
     "type": "zone-dataset", "os": "smartos",
     "files": [{"sha1": None, "size": None, "compression": "gzip"}],
     "description": "A 64-bit SmartOS image with just essential packages installed. Ideal for users who are "
                    "comfortable with setting up their own environment and tools.",
     "homepage": "https://docs.tritondatacenter.com/public-cloud/instances/infrastructure/images/smartos/base",
     "urn": "sdc:sdc:base-64-lts:",
     "requirements": {"min_platform": {"7.0": "20141030T081701Z"}, "networks": [{"name": "net0", "description": "public"}]},
     "tags": {"role": "os", "group": "base-64-lts"}},
    {"v": 2, "uuid": None, "owner": "00000000-0000-0000-0000-000000000000", "name": "ubuntu-16.04",
     "version": None, "state": "active", "disabled": False, "public": True, "published_at": None,
     "type": "lx-dataset", "os": "linux",
     "files": [{"sha1": None, "size": None, "compression": "gzip"}],
     "description": "Container-native Ubuntu 16.04 64-bit image. Built to run on containers with bare metal "
                    "speed, while offering all the services of a typical unix host.",
     "homepage": "https://docs.joyent.com/images/container-native-linux",
     "requirements": {"networks": [{"name": "net0", "description": "public"}],
                      "min_platform": {"7.0": "20160225T122859Z"}, "brand": "lx"},
     "tags": {"role": "os", "kernel_version": "4.3.0"}},
    {"v": 2, "uuid": None, "owner": "00000000-0000-0000-0000-000000000000", "name": "pkgbuild",
     "version": None, "state": "active", "disabled": False, "public": True, "published_at": None,
     "type": "zone-dataset", "os": "smartos",
     "files": [{"sha1": None, "size": None, "compression": "gzip"}],
     "description": "A SmartOS image pre-configured for building pkgsrc packages.",
     "homepage": "https://docs.joyent.com/images/smartos/pkgbuild", "urn": "sdc:sdc:pkgbuild:",
     "requirements": {"min_platform": {"7.0": "20141030T081701Z"},
                      "networks": [{"name": "net0", "description": "public"}]},
     "tags": {"role": "os", "group": "pkgbuild"}},
]


def manifest_for(i, uuid):
    m = json.loads(json.dumps(TEMPLATES[i % len(TEMPLATES)]))
    day = datetime.datetime(2016, 1, 1) + datetime.timedelta(days=i)
    m["uuid"] = uuid
    m["version"] = "%d.%d.%d" % (16 + i // 400, (i // 100) % 4, i % 100)
    m["published_at"] = day.strftime("%Y-%m-%dT%H:%M:%SZ")
    m["files"][0]["sha1"] = hashlib.sha1(uuid.encode()).hexdigest()
    m["files"][0]["size"] = 100000000 + (int(uuid[:6], 16) * 37) % 400000000
    if "urn" in m:
        m["urn"] += m["version"]
    return m


def _js_json_dumps():
    """The collection's own serialiser (ImageDatabase.serialize) when the staged copy imports, else the same."""
    if BUILD_ROOT not in sys.path:
        sys.path.insert(0, BUILD_ROOT)
    try:
        from ansible_collections.smartos.imgadm.plugins.module_utils._database import ImageDatabase  # noqa
        return ImageDatabase.serialize, "ImageDatabase.serialize (staged collection)"
    except Exception:  # pylint: disable=broad-except
        return (lambda rec: json.dumps(rec, indent=2, separators=(",", ": "), ensure_ascii=False) + "\n",
                "json.dumps(indent=2) + newline (the collection did not import)")


def is_record_of(fn, pool):
    """Whether DB file name `fn` is POOL-UUID.json of `pool` (pool names may contain "-")."""
    return re.match(r"^%s-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json$" % re.escape(pool),
                    fn) is not None


def ensure_db(pool, n):
    """DB_DIR/images/POOL-UUID.json for the n images: {manifest, zpool, source}; others of POOL removed."""
    serialize, how = _js_json_dumps()
    images_dir = os.path.join(DB_DIR, "images")
    os.makedirs(images_dir, exist_ok=True)
    wanted = {}
    for i, u in enumerate(ib.other_uuids(n)):
        rec = {"manifest": manifest_for(i, u), "zpool": pool, "source": SOURCE_URL}
        wanted["%s-%s.json" % (pool, u)] = serialize(rec)
    written = removed = 0
    for fn in os.listdir(images_dir):
        if is_record_of(fn, pool) and fn not in wanted:
            os.unlink(os.path.join(images_dir, fn))
            removed += 1
    for fn, text in wanted.items():
        path = os.path.join(images_dir, fn)
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        except OSError:
            pass
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(tmp, path)
        written += 1
    if written or removed:
        log("database %s: %d records of pool %s written, %d removed (%s)" % (images_dir, written, pool, removed, how))
    return len(wanted)


def write_zones(vms):
    """FAKE_STATE/zones.json: one zone per VM clone, its zonepath the clone's mountpoint (as vmadm makes them)."""
    os.makedirs(FAKE_STATE, exist_ok=True)
    zones = []
    for i, (name, mountpoint) in enumerate(sorted(vms.items())):
        vm = name.split("/", 1)[1]
        zones.append({"uuid": vm, "zonename": vm, "state": "installed" if i % 5 == 4 else "running",
                      "zonepath": mountpoint or "/zones/%s" % vm, "brand": "joyent"})
    tmp = os.path.join(FAKE_STATE, "zones.json.tmp")
    with open(tmp, "w") as f:
        json.dump(zones, f, indent=1)
    os.rename(tmp, os.path.join(FAKE_STATE, "zones.json"))
    try:
        os.unlink(os.path.join(FAKE_STATE, "calls.log"))  # the fake appends a line a call: keep it small
    except OSError:
        pass


class Layout(object):
    """What is in a bench pool: images, records, VM clones (their zones registered with the fake zoneadm)."""

    def __init__(self, pool, n_images, n_clones, exact=False):
        self.pool = pool
        self.n_images = n_images
        self.n_clones = n_clones
        self.exact = exact
        self.image_count = None  # POOL/UUID + @final in the pool (may exceed n_images on a shared pool)
        self.records = None
        self.vms = {}

    def ensure(self):
        if self.exact:
            ensure_clones(self.pool, {}, exact=True)  # clones first: they depend on the images
            trim_images(self.pool, self.n_images)
        self.image_count = ensure_images(self.pool, self.n_images)
        plan = clone_plan(self.pool, self.n_images, self.n_clones)
        ensure_clones(self.pool, plan, exact=self.exact)
        self.vms = mountpoints(self.pool, list(plan))
        self.records = ensure_db(self.pool, self.n_images)
        return self


def remove_layout(world, pool, n_images):
    """--cleanup: the clones, records and images the bench made in `pool` (the pool itself when it is ours)."""
    if not pool_exists(pool):
        return
    if ib.is_world_pool(world, pool):
        ensure_clones(pool, {}, exact=True)
        ib.remove_others(pool, n_images)
    else:
        ib.pool_down(world, pool)
    images_dir = os.path.join(DB_DIR, "images")
    for fn in os.listdir(images_dir) if os.path.isdir(images_dir) else []:
        if is_record_of(fn, pool):
            os.unlink(os.path.join(images_dir, fn))


# ---------------------------------------------------------------------------
# one run each way

def raw_argv(pool):
    return ["zfs", "list", "-t", "filesystem,volume,snapshot", "-H", "-o", "name,origin,mountpoint,imgadm:ignore",
            "-r", pool]


def zoneadm_env():
    return dict(os.environ, SMARTOS_FAKE_STATE=FAKE_STATE, LC_ALL="C")


def run_raw(pool):
    rc, out, err, dt = run(raw_argv(pool), env=dict(os.environ, LC_ALL="C"), timeout=RUN_TIMEOUT)
    if rc != 0:
        raise BenchError("zfs list failed (exit %d): %s" % (rc, err.strip()))
    return {"seconds": dt, "rows": out.count("\n")}


def run_zoneadm(zoneadm):
    rc, out, err, dt = run([zoneadm, "list", "-pc"], env=zoneadm_env(), timeout=RUN_TIMEOUT)
    if rc != 0:
        raise BenchError("zoneadm list -pc failed (exit %d): %s" % (rc, err.strip()))
    return {"seconds": dt, "zones": out.count("\n")}


def module_args(pool, zfs, zoneadm):
    return {"ANSIBLE_MODULE_ARGS": {
        "pools": [pool],
        "imgadm_dir": DB_DIR,
        "zfs_path": zfs,
        "zoneadm_path": zoneadm,
        "gather_subset": ["installed"],
    }}


def write_args(pool, zfs, zoneadm, tag="facts"):
    path = os.path.join(WORK, "args-%s-%s.json" % (tag, pool))
    with open(path, "w") as f:
        json.dump(module_args(pool, zfs, zoneadm), f, indent=2)
    return path


def module_env(build_root, rss_file=None):
    env = dict(os.environ, PYTHONPATH=build_root, SMARTOS_FAKE_STATE=FAKE_STATE,
               # as import_bench: the venv's bin first, so that no `python3` a fake runs is a pyenv shim
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("BENCH_RSS_FILE", None)
    if rss_file:
        env["BENCH_RSS_FILE"] = rss_file
    return env


def parse_result(stdout, rc, stderr):
    try:
        res = json.loads(stdout)
    except ValueError:
        res = None
    if rc != 0 or not isinstance(res, dict) or res.get("failed"):
        msg = res.get("msg") if isinstance(res, dict) else (stdout + stderr)[-2000:]
        raise BenchError("imgadm_facts failed (exit %d): %s" % (rc, msg))
    images = (res.get("ansible_facts") or {}).get("imgadm_images")
    if not isinstance(images, list):
        raise BenchError("imgadm_facts returned no imgadm_images: %s" % stdout[:2000])
    return images


def summarize(images):
    return {"images": len(images),
            "with_record": sum(1 for i in images if "name" in i.get("manifest", {})),
            "clone_names": sum(i.get("clones", 0) for i in images),
            "max_clones": max([i.get("clones", 0) for i in images] or [0])}


def run_module(module_path, build_root, args_path):
    rss_file = os.path.join(WORK, "facts-rss-self")
    if os.path.exists(rss_file):
        os.unlink(rss_file)
    argv = [sys.executable, os.path.join(HERE, "module_rss.py"), module_path, args_path]
    rc, out, err, dt = run(argv, env=module_env(build_root, rss_file), timeout=RUN_TIMEOUT)
    images = parse_result(out, rc, err)
    res = {"seconds": dt, "summary": summarize(images)}
    try:
        with open(rss_file) as f:
            fields = f.read().split()
        res["rss_self_mib"] = int(fields[0]) / 1024.0
        res["cpu_seconds"] = float(fields[1]) + float(fields[2])
    except (OSError, IndexError, ValueError):
        res["rss_self_mib"] = res["cpu_seconds"] = None
    return res


def run_floor():
    """bench/floor_module.py: interpreter + AnsibleModule + requests, nothing else."""
    args_path = os.path.join(WORK, "args-facts-floor.json")
    with open(args_path, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": {"uuid": "floor"}}, f)
    rc, out, err, dt = run([sys.executable, os.path.join(HERE, "floor_module.py"), args_path], timeout=RUN_TIMEOUT)
    if rc != 0:
        raise BenchError("floor module failed: %s" % (out + err)[-1000:])
    return dt


def timed_case(name, pool, module_path, build_root, zfs, zoneadm, rounds):
    args_path = write_args(pool, zfs, zoneadm)
    log("case %s: pool %s; warm-up" % (name, pool))
    run_raw(pool)
    run_zoneadm(zoneadm)
    first = run_module(module_path, build_root, args_path)
    log("case %s: the module listed %s" % (name, json.dumps(first["summary"])))
    run_floor()
    raw, zad, mod, floor = [], [], [], []
    for r in range(rounds):
        # ABBA order: a slow drift (other load) hits both sides alike
        order = ("raw", "module") if r % 2 == 0 else ("module", "raw")
        for side in order:
            if side == "raw":
                raw.append(run_raw(pool))
                zad.append(run_zoneadm(zoneadm))
            else:
                mod.append(run_module(module_path, build_root, args_path))
                floor.append(run_floor())
        log("case %s round %d/%d: zfs list %.3f s (%d rows), zoneadm %.3f s, module %.3f s (CPU %.2f s), floor %.3f s"
            % (name, r + 1, rounds, raw[-1]["seconds"], raw[-1]["rows"], zad[-1]["seconds"], mod[-1]["seconds"],
               mod[-1]["cpu_seconds"] or 0, floor[-1]))
    raw_med = statistics.median(x["seconds"] for x in raw)
    mod_med = statistics.median(x["seconds"] for x in mod)
    target = TARGET_FACTOR * raw_med + TARGET_ADD
    return {"name": name, "pool": pool, "rows": raw[-1]["rows"], "summary": first["summary"],
            "raw_median": raw_med, "zoneadm_median": statistics.median(x["seconds"] for x in zad),
            "module_median": mod_med, "ratio": mod_med / raw_med, "target": target, "within": mod_med <= target,
            "raw_min": min(x["seconds"] for x in raw), "module_min": min(x["seconds"] for x in mod),
            "floor_median": statistics.median(floor),
            "cpu_median": statistics.median(x["cpu_seconds"] or 0 for x in mod),
            "rss_self_mib": max(x["rss_self_mib"] or 0 for x in mod),
            "raw_runs": [x["seconds"] for x in raw], "zoneadm_runs": [x["seconds"] for x in zad],
            "module_runs": [x["seconds"] for x in mod], "floor_runs": floor}


# ---------------------------------------------------------------------------
# processes spawned

_RET_RE = re.compile(r"\s=\s(-?\d+)(?:\s|$)")
_CLONES = ("clone", "clone3", "fork", "vfork")


def parse_strace(path):
    """The process tree in an `strace -f -e trace=execve,clone,clone3,fork,vfork -o` file.

    Returns (root, parent, execs): `root` the process strace started (the
    module), `parent` {pid: parent pid} of every process created (not
    threads: a child forked by one of the module's threads is the module's
    child), `execs` {pid: [programs it successfully executed]}."""
    group = {}  # thread id -> the thread that created it (same process)
    parent = {}
    execs = []
    pending = {}
    root = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^(\d+)\s+(.*)$", line.rstrip("\n"))
            if not m:
                continue
            tid, rest = int(m.group(1)), m.group(2)
            r = re.match(r"<\.\.\. (\w+) resumed>(.*)$", rest)
            if r:
                call = r.group(1)
                text = pending.pop((tid, call), "") + r.group(2)
            else:
                c = re.match(r"(\w+)\(", rest)
                if not c:
                    continue  # signals, exits
                call, text = c.group(1), rest
                if "<unfinished ...>" in rest:
                    pending[(tid, call)] = rest.replace("<unfinished ...>", "")
                    continue
            ret = _RET_RE.search(text)
            if ret is None:
                continue
            ret = int(ret.group(1))
            if call == "execve" and ret == 0:
                if root is None:
                    root = tid
                prog = re.match(r'execve\("((?:[^"\\]|\\.)*)"', text)
                execs.append((tid, os.path.basename(prog.group(1)) if prog else "?"))
            elif call in _CLONES and ret > 0:
                if "CLONE_THREAD" in text:
                    group[ret] = tid
                else:
                    parent[ret] = tid

    def proc(tid):  # the process a thread belongs to (resolved at the end: lines come in any order)
        seen = set()
        while tid in group and tid not in seen:
            seen.add(tid)
            tid = group[tid]
        return tid

    by_proc = {}
    for tid, prog in execs:
        by_proc.setdefault(proc(tid), []).append(prog)
    return (proc(root) if root is not None else None), dict((k, proc(v)) for k, v in parent.items()), by_proc


def count_strace(strace, module_path, build_root, args_path):
    out_file = os.path.join(COUNT_DIR, "strace.out")
    os.makedirs(COUNT_DIR, exist_ok=True)
    argv = [strace, "-f", "-qq", "-e", "trace=execve,%s" % ",".join(_CLONES), "-o", out_file,
            sys.executable, os.path.join(HERE, "module_rss.py"), module_path, args_path]
    rc, out, err, dummy = run(argv, env=module_env(build_root), timeout=STRACE_TIMEOUT)
    images = parse_result(out, rc, err)
    root, parent, execs = parse_strace(out_file)
    if root is None:
        raise BenchError("strace recorded no execve (strace said: %s)" % err.strip()[-500:])

    def below(pid):
        kids = sorted(k for k, v in parent.items() if v == pid)
        return kids + [d for k in kids for d in below(k)]

    direct = sorted(k for k, v in parent.items() if v == root)
    programs = []
    for pid in direct:
        desc = ["->".join(execs.get(d, ["(fork)"])) for d in below(pid)]
        programs.append("->".join(execs.get(pid, ["(fork)"])) + (" [+%s]" % ", ".join(desc) if desc else ""))
    return {"method": "strace", "processes": len(direct), "tree": len(below(root)), "programs": sorted(programs),
            "summary": summarize(images)}


def count_wrappers(module_path, build_root, pool, zfs, zoneadm):
    """zfs_path and zoneadm_path pointing at scripts that log a line a call and exec the real one."""
    bin_dir = os.path.join(COUNT_DIR, "bin")
    log_file = os.path.join(COUNT_DIR, "calls")
    os.makedirs(bin_dir, exist_ok=True)
    wrappers = {}
    for name, real in (("zfs", zfs), ("zoneadm", zoneadm)):
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho \"%s $*\" >> %s\nexec %s \"$@\"\n" % (name, log_file, real))
        os.chmod(path, 0o755)
        wrappers[name] = path
    if os.path.exists(log_file):
        os.unlink(log_file)
    args_path = write_args(pool, wrappers["zfs"], wrappers["zoneadm"], tag="facts-count")
    argv = [sys.executable, os.path.join(HERE, "module_rss.py"), module_path, args_path]
    rc, out, err, dummy = run(argv, env=module_env(build_root), timeout=STRACE_TIMEOUT)
    images = parse_result(out, rc, err)
    calls = []
    if os.path.exists(log_file):
        with open(log_file, encoding="utf-8") as f:
            calls = f.read().splitlines()
    return {"method": "wrappers (zfs and zoneadm only)", "processes": len(calls), "tree": None,
            "programs": sorted(c.split(" ", 1)[0] for c in calls), "summary": summarize(images)}


def count_procs(method, strace, module_path, build_root, pool, zfs, zoneadm):
    if method in ("auto", "strace") and strace:
        try:
            return count_strace(strace, module_path, build_root, write_args(pool, zfs, zoneadm, tag="facts-strace"))
        except BenchError as e:
            if method == "strace":
                raise
            log("strace count failed (%s); counting with wrapper scripts" % e)
    elif method == "strace":
        raise BenchError("strace is not installed")
    return count_wrappers(module_path, build_root, pool, zfs, zoneadm)


# ---------------------------------------------------------------------------
# profile

def profile_module(module_path, build_root, pool, zfs, zoneadm, out_file, top=25):
    """The module once under cProfile (same args and environment as the timed runs); the top lines."""
    import pstats  # pylint: disable=import-outside-toplevel
    import io  # pylint: disable=import-outside-toplevel
    args_path = write_args(pool, zfs, zoneadm)
    argv = [sys.executable, "-m", "cProfile", "-o", out_file, os.path.join(HERE, "module_rss.py"), module_path,
            args_path]
    rc, out, err, dt = run(argv, env=module_env(build_root), timeout=RUN_TIMEOUT)
    parse_result(out, rc, err)
    text = []
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(out_file, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        text.append(buf.getvalue())
    return dt, text


# ---------------------------------------------------------------------------
# report

def print_report(case, procs, scale, info, args):
    print()
    print("smartos.imgadm facts benchmark  %s" % info["when"])
    print("  machine: %s cores, load avg before %s after %s; python %s; ansible-core %s"
          % (os.cpu_count(), info["load_before"], info["load_after"], platform.python_version(), info["ansible"]))
    if info.get("build_root_given"):
        print("  collection: as staged under %s (not re-staged; %s is at commit %s)"
              % (info["build_root"], TOP, info.get("commit", "?")))
    else:
        print("  collection: %s at commit %s, staged into %s" % (TOP, info.get("commit", "?"), info["build_root"]))
    print("  raw:     %s" % " ".join(raw_argv("POOL")))
    print("  zoneadm: %s list -pc   (SMARTOS_FAKE_STATE=%s; reported separately)" % (info["zoneadm"], FAKE_STATE))
    print("  module:  PYTHONPATH=%s python bench/module_rss.py %s ARGS.json" % (info["build_root"], info["module"]))
    print("           ARGS: pools=[POOL], imgadm_dir=%s, zfs_path=%s, zoneadm_path=the fake, gather_subset=[installed]"
          % (DB_DIR, info["zfs"]))
    print("  %d timed rounds per side (ABBA) after one untimed warm-up each; medians; wall time, process start to exit"
          % args.rounds)
    print()
    if case:
        s = case["summary"]
        print("  pool %s: %d zfs list rows; the module listed %d images (%d with a database record), "
              "%d cloneNames (max %d per image), %d VM clones / zones"
              % (case["pool"], case["rows"], s["images"], s["with_record"], s["clone_names"], s["max_clones"],
                 info["clones"]))
        rows = [("zfs list (raw)", case["raw_median"]), ("zoneadm list -pc (fake)", case["zoneadm_median"]),
                ("raw + zoneadm", case["raw_median"] + case["zoneadm_median"]),
                ("imgadm_facts module", case["module_median"]), ("floor module (no work)", case["floor_median"]),
                ("module CPU (user+sys)", case["cpu_median"])]
        for label, v in rows:
            print("    %-26s %7.3f s" % (label, v))
        print("    %-26s %7.1f MiB" % ("module peak RSS", case["rss_self_mib"]))
        print("    module - raw = %.3f s; module - raw - zoneadm - floor = %.3f s"
              % (case["module_median"] - case["raw_median"],
                 case["module_median"] - case["raw_median"] - case["zoneadm_median"] - case["floor_median"]))
        raw_runs = " ".join("%.3f" % x for x in case["raw_runs"])
        print("    runs: raw %s; module %s" % (raw_runs, " ".join("%.3f" % x for x in case["module_runs"])))
        print("    fastest runs: raw %.3f s, module %.3f s: ratio %.3f, module %s 1.15 * raw + 0.3 = %.3f s"
              % (case["raw_min"], case["module_min"], case["module_min"] / case["raw_min"],
                 "<=" if case["module_min"] <= TARGET_FACTOR * case["raw_min"] + TARGET_ADD else ">",
                 TARGET_FACTOR * case["raw_min"] + TARGET_ADD))
    for s in scale:
        if s.get("error"):
            print("  scale %s: ERROR %s" % (s["name"], s["error"]))
        else:
            print("  scale %s: zfs list %.3f s, module %.3f s, module - raw %.3f s (median of %d)"
                  % (s["name"], s["raw_median"], s["module_median"], s["module_median"] - s["raw_median"],
                     len(s["module_runs"])))
    if procs:
        print()
        for p in procs:
            if p.get("error"):
                print("  processes %s: ERROR %s" % (p["name"], p["error"]))
            else:
                print("  processes %s (%s): %d spawned by the module%s: %s; %d images listed"
                      % (p["name"], p["method"], p["processes"],
                         "" if p.get("tree") is None else " (%d in its whole tree)" % p["tree"],
                         "; ".join(p["programs"]) or "-", p["summary"]["images"]))
    if args.reference_note:
        print()
        print("  reference (the issue): stock `imgadm list -j` %.2f s vs. its `zfs list` %.2f s = %.2fx, 1,000 images"
              % (REFERENCE["imgadm_list_s"], REFERENCE["zfs_list_s"], REFERENCE["ratio"]))
        if case:
            print("  REFERENCE facts-1000 %.2f (here: %.3f)" % (REFERENCE["ratio"], case["ratio"]))
    if info.get("profile"):
        print()
        print("  cProfile of one module run (%.3f s under the profiler), written to %s:"
              % (info["profile"]["seconds"], info["profile"]["file"]))
        for block in info["profile"]["text"]:
            for line in block.splitlines():
                if line.strip():
                    print("    " + line)
    print()
    if case:
        print("RATIO %s %.3f" % (case["name"], case["ratio"]))
        print("TARGET %s %.3f %.3f" % (case["name"], case["target"], case["module_median"]))
        print("target: module <= %.2f * raw + %.1f s: %s (module %.3f s, limit %.3f s)"
              % (TARGET_FACTOR, TARGET_ADD, "met" if case["within"] else "NOT met", case["module_median"],
                 case["target"]))
    for p in procs:
        if not p.get("error"):
            print("PROCS %s %d" % (p["name"], p["processes"]))
    good = [p for p in procs if not p.get("error")]
    if len(good) > 1:
        print("processes: %s with the number of images (%s)"
              % ("constant" if len(set(p["processes"] for p in good)) == 1 else "NOT constant",
                 ", ".join("%s: %d" % (p["name"], p["processes"]) for p in good)))
    sys.stdout.flush()


# ---------------------------------------------------------------------------

def main(argv=None):
    global BUILD_ROOT  # pylint: disable=global-statement
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per side (default 5)")
    ap.add_argument("--images", type=int, default=1000, help="image datasets in --pool (default 1000)")
    ap.add_argument("--clones", type=int, default=20, help="VM-like clones in --pool (default 20)")
    ap.add_argument("--pool", default="imgbench1k",
                    help="pool with the images (default imgbench1k, import_bench's crowded pool, reused)")
    ap.add_argument("--small-pool", default="imgbenchfacts",
                    help="the bench's own small pool for the 10- and 100-image process counts (default imgbenchfacts)")
    ap.add_argument("--procs-method", choices=["auto", "strace", "wrappers"], default="auto",
                    help="how to count spawned processes (auto: strace when installed, else wrapper scripts)")
    ap.add_argument("--no-procs", action="store_true", help="skip the process counts")
    ap.add_argument("--no-scale", action="store_true", help="skip the timings on the small pool (with --no-procs too, no small pool is used)")
    ap.add_argument("--reference-note", action="store_true",
                    help="also print the reference figure from the issue (imgadm list -j 1.99 s vs zfs list 1.61 s)")
    ap.add_argument("--profile", metavar="FILE", help="also run the module once under cProfile, stats to FILE")
    ap.add_argument("--json", help="also write all measurements to this JSON file")
    ap.add_argument("--build-root", help="use the collection already staged under this root instead of staging "
                    "/work/main into %s" % BUILD_ROOT)
    ap.add_argument("--cleanup", action="store_true",
                    help="at the end remove what the bench made: clones, records, the small pool, and --pool's images "
                         "(the pool itself when it is not a world pool; import_bench recreates it when it needs it)")
    ap.add_argument("--cleanup-only", action="store_true", help="only do the --cleanup part, measure nothing")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("facts_bench.py needs root (zfs)")
    if args.rounds < 1 or args.images < 1:
        sys.exit("--rounds and --images must be at least 1")
    if not 0 <= args.clones <= MAX_VMS:
        sys.exit("--clones must be between 0 and %d" % MAX_VMS)
    small_pool = None if args.no_procs and args.no_scale else args.small_pool
    if small_pool == args.pool:
        sys.exit("--small-pool must differ from --pool")

    os.makedirs(WORK, exist_ok=True)
    try:
        world = ib.world_up()
    except BenchError as e:
        log("cannot bring the test world up: %s" % e)
        return 1
    if small_pool and ib.is_world_pool(world, small_pool):
        sys.exit("--small-pool must be a pool of the bench's own, not %s" % small_pool)
    if args.cleanup_only:
        for pool, n in ((args.pool, args.images), (args.small_pool, max(SMALL_SIZES))):
            remove_layout(world, pool, n)
        shutil.rmtree(FAKE_STATE, ignore_errors=True)
        log("cleaned up")
        return 0

    info = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "load_before": "%.2f %.2f %.2f" % os.getloadavg()}
    info["ansible"] = sh([sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
                         check=False).stdout.strip() or "?"
    head = sh(["git", "-C", TOP, "rev-parse", "--short", "HEAD"], check=False).stdout.strip() or "?"
    dirty = sh(["git", "-C", TOP, "status", "--porcelain", "--", "plugins"], check=False).stdout.strip()
    info["commit"] = head + (" (plugins/ modified)" if dirty else "")
    zfs = shutil.which("zfs")
    zoneadm = os.path.join(world["IMGADM_FAKES_BIN"], "zoneadm")
    strace = shutil.which("strace")
    info.update(zfs=zfs, zoneadm=zoneadm, strace=strace, clones=0)
    case, procs, scale = None, [], []
    failed = False
    try:
        if args.build_root:
            BUILD_ROOT = os.path.abspath(args.build_root)
            info["build_root_given"] = True
        else:
            log("staging the collection into %s" % BUILD_ROOT)
            ib.BUILD_ROOT = BUILD_ROOT
            ib.stage()
        module_path = os.path.join(BUILD_ROOT, FACTS_REL)
        if not os.path.isfile(module_path):
            raise BenchError("no %s under %s" % (FACTS_REL, BUILD_ROOT))
        info.update(build_root=BUILD_ROOT, module=module_path)

        pool_up(world, args.pool)
        big = Layout(args.pool, args.images, args.clones).ensure()
        info["clones"] = len(big.vms)
        write_zones(big.vms)
        name = "facts-%d" % big.image_count
        case = timed_case(name, args.pool, module_path, BUILD_ROOT, zfs, zoneadm, args.rounds)
        if args.profile:
            dt, text = profile_module(module_path, BUILD_ROOT, args.pool, zfs, zoneadm, args.profile)
            info["profile"] = {"file": args.profile, "seconds": dt, "text": text}
        if not args.no_procs:
            try:
                p = count_procs(args.procs_method, strace, module_path, BUILD_ROOT, args.pool, zfs, zoneadm)
                procs.append(dict(p, name=name))
            except BenchError as e:
                log("process count on %s failed: %s" % (args.pool, e))
                procs.append({"name": name, "error": str(e)})
                failed = True
        if small_pool:
            small_results = []
            try:
                pool_up(world, small_pool, SMALL_POOL_SIZE)
                for n in SMALL_SIZES:
                    lay = Layout(small_pool, n, min(args.clones, max(1, n // 5)), exact=True).ensure()
                    write_zones({**big.vms, **lay.vms})
                    sname = "facts-%d" % lay.image_count
                    if not args.no_scale:
                        s = timed_case(sname, small_pool, module_path, BUILD_ROOT, zfs, zoneadm,
                                       max(1, min(3, args.rounds)))
                        scale.append(s)
                    if not args.no_procs:
                        p = count_procs(args.procs_method, strace, module_path, BUILD_ROOT, small_pool, zfs, zoneadm)
                        small_results.append(dict(p, name=sname))
            except BenchError as e:
                log("small pool %s failed: %s" % (small_pool, e))
                small_results.append({"name": "facts-small", "error": str(e)})
                failed = True
            procs = small_results + procs
            write_zones(big.vms)
    except BenchError as e:
        log("could not measure: %s" % e)
        failed = True
        if case is None:
            info["error"] = str(e)
    finally:
        if args.cleanup:
            for pool, n in ((args.pool, args.images), (args.small_pool, max(SMALL_SIZES))):
                try:
                    remove_layout(world, pool, n)
                except BenchError as e:
                    log("cleanup of %s failed: %s" % (pool, e))
            shutil.rmtree(FAKE_STATE, ignore_errors=True)
    info["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    info.setdefault("build_root", BUILD_ROOT)
    info.setdefault("module", os.path.join(BUILD_ROOT, FACTS_REL))
    print_report(case, procs, scale, info, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "case": case, "scale": scale, "procs": procs,
                       "reference": REFERENCE, "target": {"factor": TARGET_FACTOR, "add_s": TARGET_ADD}}, f, indent=2)
        print("measurements written to %s" % args.json)
    return 1 if failed or case is None else 0


if __name__ == "__main__":
    sys.exit(main())
