"""Import benchmark: smartos.imgadm.imgadm_image vs. the raw pipeline.

For each image, on the same IMGAPI server (the test world's) and the same
pool, in the same run, this alternates N rounds of

  raw     bash -o pipefail -c 'curl -sS -f URL/images/UUID/file | DECOMPRESSOR -cdfq
                               | zfs receive [-u] POOL/bench-raw'
  module  python module_rss.py STAGED/plugins/modules/imgadm_image.py ARGS.json
          (= the real module file run as its own process, as __main__, with
          {"ANSIBLE_MODULE_ARGS": {...}}; module_rss.py only records the
          process's own peak RSS at exit)

timing each from process start to exit, after one untimed warm-up of each
side (page-cache state cannot be reset here, so both sides see a warm server
file). Then it puts 1,000 other image datasets (POOL/UUID + @final) in a pool
and measures the gzip image again there. It prints a table, one
`RATIO <case> <module/raw>` line per case and one `PEAK_RSS_MIB <case> <MiB>`
line per case, and exits 0 (a benchmark, not a test: the targets,
ratio <= 1.15 and peak RSS < 100 MiB, are reported, not enforced).

Usage (as root, zfs-fuse running):

  .venv/bin/python bench/import_bench.py [--rounds 3] [--sizes full|small]
      [--payload usr|text|random] [--pool imgbench] [--crowded-pool imgbench1k]
      [--others 1000] [--cases gzip,xz,none,crowded] [--json FILE]
      [--cleanup] [--cleanup-only]

See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
WORLD_TOOLS = os.path.join(TOP, "tests", "world")
sys.path.insert(0, WORLD_TOOLS)
import build_image as bi  # noqa: E402  (tests/world/build_image.py)

MiB = 1 << 20
WORK = os.environ.get("IMGADM_BENCH_DIR", "/var/tmp/smartos-imgadm-bench")
# a staging root of our own: others may re-stage the default one (rsync --delete) mid-run
BUILD_ROOT = os.path.join(WORK, "build")
MODULE_REL = "ansible_collections/smartos/imgadm/plugins/modules/imgadm_image.py"
IMAGE_VERSION = "1.0.0"
OTHERS_NS = uuidlib.UUID("6c2b1f0e-5d1a-4c1e-9a57-0b3f1c3a1e00")
BENCH_POOL_SIZE = "3G"
SIZES = {
    # MiB of data in the image dataset (before zfs send / compression)
    "full": {"gzip": 256, "xz": 128, "none": 128, "others": 1000},
    "small": {"gzip": 4, "xz": 2, "none": 2, "others": 20},
}
DECOMPRESSORS = {"gzip": "gzip -cdfq", "bzip2": "bzip2 -cdfq", "xz": "xz -cdfq"}
PAYLOAD_BLOB = 8 * MiB


class BenchError(RuntimeError):
    pass


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def sh(argv, env=None, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, check=False)
    if check and p.returncode != 0:
        raise BenchError("%s failed (exit %d): %s" % (" ".join(argv), p.returncode, (p.stderr or p.stdout).strip()))
    return p


# ---------------------------------------------------------------------------
# the world, pools, staging

def world_up():
    sh(["bash", os.path.join(WORLD_TOOLS, "world.sh"), "up"])
    world_dir = os.environ.get("IMGADM_WORLD_DIR", "/var/tmp/smartos-imgadm-world")
    env = {}
    with open(os.path.join(world_dir, "world.env")) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


def is_world_pool(world, pool):
    return pool in (world["IMGADM_TEST_POOL"], world["IMGADM_BUILD_POOL"])


def pool_up(world, pool):
    if not is_world_pool(world, pool):
        sh(["bash", os.path.join(WORLD_TOOLS, "zpool.sh"), "up", pool, BENCH_POOL_SIZE])
    elif sh(["zpool", "list", "-H", "-o", "name", pool], check=False).returncode != 0:
        raise BenchError("pool %s is not imported" % pool)


def pool_down(world, pool):
    if not is_world_pool(world, pool):
        sh(["bash", os.path.join(WORLD_TOOLS, "zpool.sh"), "down", pool], check=False)


def stage():
    env = dict(os.environ, IMGADM_BUILD_ROOT=BUILD_ROOT)
    path = sh(["bash", os.path.join(TOP, "tests", "bin", "stage.sh")], env=env).stdout.strip().splitlines()[-1]
    module = os.path.join(BUILD_ROOT, MODULE_REL)
    if not os.path.isfile(module):
        raise BenchError("staging did not produce %s (stage.sh printed %s)" % (module, path))
    return module


def receive_supports_u():
    p = subprocess.run(["zfs", "receive"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return any("u" in m.group(1) for m in re.finditer(r"receive \[-([A-Za-z]+)\]", p.stdout))


def destroy(name):
    try:
        bi.zfs_destroy(name, dependents=True)
    except bi.ZfsError as e:
        raise BenchError(str(e))


# ---------------------------------------------------------------------------
# images

class UsrPayload(object):
    """`files=` for build_image, produced lazily: the bytes of the regular files
    under /usr (sorted walk, symlinks skipped) concatenated and cut into
    8 MiB blobs data/payload/NNNN.bin, `size` bytes in all. A realistic OS-image
    mix: ELF binaries and libraries, headers, scripts, text, some already
    compressed files. Nothing is held in memory beyond one blob."""

    def __init__(self, size, root="/usr"):
        self.size = int(size)
        self.root = root

    def __bool__(self):
        return True

    def _pieces(self):
        while True:
            got = False
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames.sort()
                for fn in sorted(filenames):
                    p = os.path.join(dirpath, fn)
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    try:
                        with open(p, "rb") as f:
                            while True:
                                b = f.read(MiB)
                                if not b:
                                    break
                                got = True
                                yield b
                    except OSError:
                        continue
            if not got:
                raise BenchError("no readable files under %s" % self.root)

    def items(self):
        left = self.size
        n = 0
        buf = bytearray()
        for piece in self._pieces():  # endless: the walk starts over when /usr is exhausted
            buf += piece
            while len(buf) >= min(PAYLOAD_BLOB, left):
                want = min(PAYLOAD_BLOB, left)
                yield "data/payload/%04d.bin" % n, bytes(buf[:want])
                del buf[:want]
                left -= want
                n += 1
                if left <= 0:
                    return


def image_name(comp, size_mib, payload):
    return "bench-import-%s-%sm-%s" % (comp, size_mib, payload)


def find_cached(data_dir, name):
    images = os.path.join(data_dir, "images")
    best = None
    for fn in os.listdir(images) if os.path.isdir(images) else []:
        if not fn.endswith(".json"):
            continue
        try:
            with open(os.path.join(images, fn)) as f:
                m = json.load(f)
        except (OSError, ValueError):
            continue
        if m.get("name") != name or m.get("version") != IMAGE_VERSION or m.get("state") != "active":
            continue
        fp = os.path.join(images, m["uuid"] + ".file")
        files = m.get("files") or [{}]
        if not os.path.isfile(fp) or os.path.getsize(fp) != files[0].get("size"):
            continue
        if best is None or (m.get("published_at") or "") > (best.get("published_at") or ""):
            best = m
    return best


def ensure_image(world, comp, size_mib, payload):
    data_dir = world["IMGADM_SERVER_DATA"]
    name = image_name(comp, size_mib, payload)
    m = find_cached(data_dir, name)
    if m is not None:
        return m, False
    log("building %s (%s MiB of %s data, %s) in pool %s ..." % (name, size_mib, payload, comp, world["IMGADM_BUILD_POOL"]))
    t0 = time.time()
    out_dir = os.path.join(WORK, "build-out")
    kw = dict(compression=comp, server_data_dir=data_dir,
              tags={"test": True, "bench": "imgadm-import"},
              description="smartos.imgadm import benchmark image: %s MiB of %s data, %s" % (size_mib, payload, comp))
    if payload == "usr":
        kw["files"] = UsrPayload(size_mib * MiB)
    else:
        kw.update(size_mib=size_mib, data=payload)
    res = bi.build_image(world["IMGADM_BUILD_POOL"], out_dir, name, IMAGE_VERSION, **kw)
    # the server has its own copy; the build dataset is not needed for a full image
    destroy(res["dataset"])
    for p in (res["file_path"], res["manifest_path"]):
        try:
            os.unlink(p)
        except OSError:
            pass
    sh(["curl", "-sS", "-f", "-X", "POST", world["IMGADM_TEST_URL"] + "/__reload"], check=False)
    log("built %s in %.0f s: %s, %.1f MiB" % (name, time.time() - t0, res["uuid"],
                                              res["manifest"]["files"][0]["size"] / MiB))
    m = find_cached(data_dir, name)
    if m is None:
        raise BenchError("built %s but cannot find it in %s" % (name, data_dir))
    return m, True


# ---------------------------------------------------------------------------
# the 1,000 other image datasets

def other_uuids(n):
    return [str(uuidlib.uuid5(OTHERS_NS, "other-%d" % i)) for i in range(n)]


def list_names(pool, types):
    p = sh(["zfs", "list", "-H", "-o", "name", "-t", types, "-r", pool], check=False)
    return set(p.stdout.split()) if p.returncode == 0 else set()


def image_dataset_count(pool):
    """POOL/UUID filesystems with an @final snapshot (what imgadm would call images)."""
    rx = re.compile(r"^%s/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" % re.escape(pool))
    snaps = list_names(pool, "snapshot")
    return sum(1 for n in list_names(pool, "filesystem") if rx.match(n) and n + "@final" in snaps)


def _run_parallel_scripts(lines, workers=2):
    if not lines:
        return
    parts = [lines[i::workers] for i in range(workers)]
    procs = [subprocess.Popen(["bash", "-e", "-c", "\n".join(part)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for part in parts if part]
    errs = []
    for p in procs:
        dummy, err = p.communicate()
        if p.returncode != 0:
            errs.append(err.strip())
    if errs:
        raise BenchError("zfs batch failed: %s" % "; ".join(errs))


def ensure_others(pool, n):
    """POOL/UUID + @final for n deterministic uuids, reusing what exists.

    They are created with canmount=noauto, i.e. not mounted: zfs-fuse serves
    at most about 1,000 mounted filesystems on the whole host (the 1,000th
    mount fails with "Input/output error"), shared with every other pool.
    Nothing in an import looks at whether other datasets are mounted."""
    uuids = other_uuids(n)
    p = sh(["zfs", "list", "-H", "-o", "name,canmount,mounted", "-t", "filesystem", "-r", pool], check=False)
    fs = {}
    for line in p.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            fs[parts[0]] = (parts[1], parts[2])
    snaps = list_names(pool, "snapshot")
    lines = []
    for u in uuids:
        ds = "%s/%s" % (pool, u)
        cmds = []
        if ds not in fs:
            cmds.append("zfs create -o canmount=noauto %s" % ds)
        else:
            canmount, mounted = fs[ds]
            if mounted == "yes":
                cmds.append("zfs unmount %s" % ds)
            if canmount != "noauto":
                cmds.append("zfs set canmount=noauto %s" % ds)
        if ds + "@final" not in snaps:
            cmds.append("zfs snapshot %s@final" % ds)
        if cmds:
            lines.append("\n".join(cmds))
    if lines:
        log("creating/fixing %d other image datasets (+@final, canmount=noauto) in %s ..." % (len(lines), pool))
        t0 = time.time()
        _run_parallel_scripts(lines)
        log("done in %.0f s" % (time.time() - t0))
    return image_dataset_count(pool)


def remove_others(pool, n):
    fs = list_names(pool, "filesystem")
    lines = []
    for u in other_uuids(n):
        ds = "%s/%s" % (pool, u)
        if ds in fs:
            lines.append("zfs unmount %s 2>/dev/null || true; zfs destroy -r %s" % (ds, ds))
    log("destroying %d other image datasets in %s ..." % (len(lines), pool))
    _run_parallel_scripts(lines)


# ---------------------------------------------------------------------------
# one import each way

def run_raw(world, manifest, pool, recv_u):
    target = "%s/bench-raw" % pool
    if bi.zfs_exists(target):
        destroy(target)
    comp = manifest["files"][0]["compression"]
    parts = ["curl -sS -f %s/images/%s/file" % (world["IMGADM_TEST_URL"], manifest["uuid"])]
    if comp != "none":
        parts.append(DECOMPRESSORS[comp])
    parts.append("zfs receive %s%s" % ("-u " if recv_u else "", target))
    cmd = " | ".join(parts)
    t0 = time.perf_counter()
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, check=False)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError("raw pipeline failed (exit %d): %s: %s" % (p.returncode, cmd, p.stderr.strip()))
    destroy(target)
    return {"seconds": dt, "cmd": cmd}


def module_args(world, manifest, pool):
    return {"ANSIBLE_MODULE_ARGS": {
        "uuid": manifest["uuid"],
        "pool": pool,
        "state": "present",
        "sources": [world["IMGADM_TEST_URL"]],
        "imgadm_dir": os.path.join(WORK, "imgadm"),
        "lock_dir": os.path.join(WORK, "locks"),
        "sysinfo_path": os.path.join(world["IMGADM_FAKES_BIN"], "sysinfo"),
        "zoneadm_path": os.path.join(world["IMGADM_FAKES_BIN"], "zoneadm"),
    }}


def clean_module_import(pool, uuid):
    for ds in ("%s/%s" % (pool, uuid), "%s/%s-partial" % (pool, uuid)):
        if bi.zfs_exists(ds):
            destroy(ds)
    try:
        os.unlink(os.path.join(WORK, "imgadm", "images", "%s-%s.json" % (pool, uuid)))
    except OSError:
        pass


def run_module(world, module_path, build_root, manifest, pool, time_bin):
    uuid = manifest["uuid"]
    clean_module_import(pool, uuid)
    os.makedirs(os.path.join(WORK, "imgadm"), exist_ok=True)
    os.makedirs(os.path.join(WORK, "locks"), exist_ok=True)
    args_path = os.path.join(WORK, "args-%s.json" % uuid)
    with open(args_path, "w") as f:
        json.dump(module_args(world, manifest, pool), f, indent=2)
    rss_file = os.path.join(WORK, "rss-self")
    tree_file = os.path.join(WORK, "rss-tree")
    for p in (rss_file, tree_file):
        if os.path.exists(p):
            os.unlink(p)
    env = dict(os.environ, PYTHONPATH=build_root, SMARTOS_FAKE_STATE=world["SMARTOS_FAKE_STATE"],
               BENCH_RSS_FILE=rss_file,
               # the fake sysinfo runs `python3` from PATH; here that is a pyenv shim costing ~0.4 s
               # per call, a test-world artifact (SmartOS's sysinfo answers from a cache): use ours
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    argv = [sys.executable, os.path.join(HERE, "module_rss.py"), module_path, args_path]
    if time_bin:
        argv = [time_bin, "-f", "%M", "-o", tree_file] + argv
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, check=False)
    dt = time.perf_counter() - t0
    try:
        res = json.loads(p.stdout)
    except ValueError:
        res = None
    if p.returncode != 0 or not isinstance(res, dict) or res.get("failed"):
        msg = res.get("msg") if isinstance(res, dict) else (p.stdout + p.stderr)[-2000:]
        clean_module_import(pool, uuid)
        raise BenchError("module import failed (exit %d): %s" % (p.returncode, msg))
    imported = res.get("imported") or []
    if not res.get("changed") or len(imported) != 1:
        clean_module_import(pool, uuid)
        raise BenchError("module did not import the image: %s" % json.dumps(res)[:2000])
    out = {"seconds": dt, "stream_seconds": imported[0].get("seconds"), "bytes": imported[0].get("bytes"),
           "module_mib_s": imported[0].get("mib_per_second")}
    with open(rss_file) as f:
        fields = f.read().split()
    out["rss_self_mib"] = int(fields[0]) / 1024.0
    out["cpu_seconds"] = float(fields[1]) + float(fields[2])
    if time_bin and os.path.exists(tree_file):
        with open(tree_file) as f:
            last = [ln for ln in f.read().split() if ln.strip().isdigit()]
        out["rss_tree_mib"] = int(last[-1]) / 1024.0 if last else None
    clean_module_import(pool, uuid)
    return out


def run_floor(time_bin=None):
    """Wall seconds of floor_module.py: interpreter + AnsibleModule + requests, nothing else."""
    args_path = os.path.join(WORK, "args-floor.json")
    with open(args_path, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": {"uuid": "floor"}}, f)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.join(HERE, "floor_module.py"), args_path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, check=False)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError("floor module failed: %s" % (p.stdout + p.stderr)[-1000:])
    return dt


# ---------------------------------------------------------------------------
# a case

def run_case(world, case, manifest, pool, module_path, build_root, rounds, recv_u, time_bin):
    comp = manifest["files"][0]["compression"]
    size_mib = manifest["files"][0]["size"] / MiB
    log("case %s: %s (%s, %.1f MiB file) into %s; warm-up" % (case["name"], manifest["uuid"], comp, size_mib, pool))
    run_raw(world, manifest, pool, recv_u)
    run_module(world, module_path, build_root, manifest, pool, time_bin)
    raw, mod = [], []
    for r in range(rounds):
        # ABBA order so that a slow drift (other load, pool filling) hits both sides alike
        order = ("raw", "module") if r % 2 == 0 else ("module", "raw")
        for side in order:
            if side == "raw":
                raw.append(run_raw(world, manifest, pool, recv_u))
            else:
                mod.append(run_module(world, module_path, build_root, manifest, pool, time_bin))
                mod[-1]["floor_seconds"] = run_floor()
        log("case %s round %d/%d: raw %.2f s, module %.2f s (stream %.2f s), module RSS %.1f MiB"
            % (case["name"], r + 1, rounds, raw[-1]["seconds"], mod[-1]["seconds"], mod[-1]["stream_seconds"] or 0,
               mod[-1]["rss_self_mib"]))
    raw_med = statistics.median(x["seconds"] for x in raw)
    mod_med = statistics.median(x["seconds"] for x in mod)
    size = manifest["files"][0]["size"]
    return dict(case, uuid=manifest["uuid"], compression=comp, file_bytes=size, pool=pool,
                raw_median=raw_med, module_median=mod_med, ratio=mod_med / raw_med,
                stream_median=statistics.median(x["stream_seconds"] or 0 for x in mod),
                cpu_median=statistics.median(x["cpu_seconds"] for x in mod),
                floor_median=statistics.median(x["floor_seconds"] for x in mod),
                module_mib_s=size / MiB / mod_med,
                rss_self_mib=max(x["rss_self_mib"] for x in mod),
                rss_tree_mib=max((x.get("rss_tree_mib") or 0) for x in mod) or None,
                raw_runs=[x["seconds"] for x in raw], module_runs=[x["seconds"] for x in mod],
                stream_runs=[x["stream_seconds"] for x in mod], raw_cmd=raw[0]["cmd"])


def print_report(results, args, info):
    print()
    print("smartos.imgadm import benchmark  %s" % info["when"])
    print("  machine: %s cores, load avg before %s after %s; python %s; ansible-core %s"
          % (os.cpu_count(), info["load_before"], info["load_after"], platform.python_version(), info["ansible"]))
    print("  server %s, images built in pool %s, payload: %s" % (info["url"], info["build_pool"], info["payload_desc"]))
    print("  raw:    bash -o pipefail -c 'curl -sS -f URL/images/UUID/file | DECOMPRESSOR -cdfq | zfs receive%s POOL/bench-raw'"
          % (" -u" if info["recv_u"] else ""))
    print("          (zfs receive -u is %ssupported by this zfs)" % ("" if info["recv_u"] else "not "))
    print("  module: PYTHONPATH=%s python bench/module_rss.py %s ARGS.json" % (info["build_root"], info["module"]))
    print("          (PATH starts with the venv's bin, so the fake sysinfo's python3 is not a pyenv shim)")
    print("  %d timed rounds per side per case (ABBA order) after one untimed warm-up each; medians shown" % args.rounds)
    print("  peak RSS: module process alone = its own getrusage(RUSAGE_SELF).ru_maxrss at exit (bench/module_rss.py);")
    print("            'tree' = /usr/bin/time %M, the largest of the module and its waited-for children")
    print()
    hdr = ("case", "compr", "data MiB", "file MiB", "pool", "others", "raw s", "module s", "ratio",
           "stream s", "stream/raw", "floor s", "mod CPU s", "module MiB/s", "peak RSS MiB", "tree MiB")
    rows = []
    for r in results:
        if r.get("error"):
            rows.append((r["name"], r.get("compression", "?"), str(r["size_mib"]), "-", r.get("pool", "-"), "-",
                         "ERROR", "-", "-", "-", "-", "-", "-", "-", "-", "-"))
            continue
        rows.append((r["name"], r["compression"], str(r["size_mib"]), "%.1f" % (r["file_bytes"] / MiB), r["pool"],
                     str(r["others"]), "%.2f" % r["raw_median"], "%.2f" % r["module_median"], "%.3f" % r["ratio"],
                     "%.2f" % r["stream_median"], "%.3f" % (r["stream_median"] / r["raw_median"]),
                     "%.2f" % r["floor_median"], "%.2f" % r["cpu_median"], "%.1f" % r["module_mib_s"], "%.1f" % r["rss_self_mib"],
                     "%.1f" % r["rss_tree_mib"] if r.get("rss_tree_mib") else "-"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    print("  ".join(h.ljust(w) for h, w in zip(hdr, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print()
    print("  data MiB = data written into the image dataset; file MiB = the served (compressed) file;")
    print("  stream s = the module's own 'imported[0].seconds' (HTTP->decompressor->zfs receive pass);")
    print("  stream/raw = stream s / raw s: the module's pipeline alone against the raw one;")
    print("  floor s = bench/floor_module.py (interpreter + AnsibleModule + requests, no work), run after each module run;")
    print("  mod CPU s = user+sys CPU seconds of the module process alone (not its decompressor or zfs receive);")
    print("  module MiB/s = file MiB / module median wall seconds; others = image datasets already in the pool")
    for r in results:
        if r.get("error"):
            print("  %s: ERROR %s" % (r["name"], r["error"]))
    print()
    for r in results:
        if not r.get("error"):
            print("RATIO %s %.3f" % (r["name"], r["ratio"]))
    for r in results:
        if not r.get("error"):
            print("PEAK_RSS_MIB %s %.1f" % (r["name"], r["rss_self_mib"]))
    good = [r for r in results if not r.get("error")]
    if good:
        worst = max(r["ratio"] for r in good)
        peak = max(r["rss_self_mib"] for r in good)
        print("targets: ratio <= 1.15: %s (worst %.3f); peak RSS < 100 MiB: %s (max %.1f MiB)"
              % ("met" if worst <= 1.15 else "NOT met", worst, "met" if peak < 100 else "NOT met", peak))
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per side per case (default 3)")
    ap.add_argument("--sizes", choices=sorted(SIZES), default="full",
                    help="full: gzip 256, xz 128, none 128 MiB, 1000 others; small: 4/2/2 MiB, 20 others (smoke test)")
    ap.add_argument("--payload", choices=["usr", "text", "random"], default="usr",
                    help="image data: usr = real files from /usr concatenated (default, partly compressible); "
                         "text = build_image's repeated line (very compressible); random = incompressible")
    ap.add_argument("--pool", default="imgbench",
                    help="pool for the first three cases (default imgbench, a bench pool on a sparse file; "
                         "the world's pool 'zones' works too)")
    ap.add_argument("--crowded-pool", default="imgbench1k",
                    help="pool that holds the other image datasets for the last case (default imgbench1k; "
                         "may equal --pool)")
    ap.add_argument("--others", type=int, help="how many other image datasets (default: 1000, small: 20)")
    ap.add_argument("--cases", default="gzip,xz,none,crowded", help="comma-separated subset of gzip,xz,none,crowded")
    ap.add_argument("--json", help="also write all measurements to this JSON file")
    ap.add_argument("--build-root", help="use the collection already staged under this root "
                    "(ROOT/ansible_collections/smartos/imgadm), e.g. a patched copy; default: stage /work/main "
                    "into %s" % BUILD_ROOT)
    ap.add_argument("--cleanup", action="store_true",
                    help="at the end also destroy the other image datasets (and the crowded bench pool)")
    ap.add_argument("--cleanup-only", action="store_true", help="only do the --cleanup part, measure nothing")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("import_bench.py needs root (zfs)")
    sizes = SIZES[args.sizes]
    others = args.others if args.others is not None else sizes["others"]
    cases_wanted = [c.strip() for c in args.cases.split(",") if c.strip()]

    os.makedirs(WORK, exist_ok=True)
    world = world_up()
    if args.cleanup_only:
        if not is_world_pool(world, args.crowded_pool):
            pool_down(world, args.crowded_pool)
        elif sh(["zpool", "list", "-H", args.crowded_pool], check=False).returncode == 0:
            remove_others(args.crowded_pool, others)
        log("cleaned up")
        return 0

    info = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "url": world["IMGADM_TEST_URL"],
            "build_pool": world["IMGADM_BUILD_POOL"], "load_before": "%.2f %.2f %.2f" % os.getloadavg()}
    info["ansible"] = sh([sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
                         check=False).stdout.strip() or "?"
    if args.build_root:
        build_root = os.path.abspath(args.build_root)
        module_path = os.path.join(build_root, MODULE_REL)
        if not os.path.isfile(module_path):
            sys.exit("no %s under --build-root %s" % (MODULE_REL, build_root))
        log("using the collection staged under %s (not re-staged)" % build_root)
    else:
        log("staging the collection into %s" % BUILD_ROOT)
        module_path = stage()
        build_root = BUILD_ROOT
    info["build_root"] = build_root
    info["module"] = module_path
    recv_u = receive_supports_u()
    info["recv_u"] = recv_u
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    pool_up(world, args.pool)

    comps = [c for c in ("gzip", "xz", "none") if c in cases_wanted]
    if "crowded" in cases_wanted and "gzip" not in comps:
        comps.insert(0, "gzip")
    manifests = {}
    for comp in comps:
        manifests[comp], dummy = ensure_image(world, comp, sizes[comp], args.payload)
    payload_desc = {"usr": "real files from /usr concatenated (ELF binaries, libraries, headers, text, some "
                           "compressed files)",
                    "text": "build_image data='text' (one repeated line)",
                    "random": "build_image data='random' (incompressible)"}[args.payload]
    ratios = []
    for comp in comps:
        m = manifests[comp]
        ratios.append("%s %.2fx" % (comp, sizes[comp] * MiB / float(m["files"][0]["size"])))
    info["payload_desc"] = payload_desc + "; data/file size: " + ", ".join(ratios)

    cases = []
    for comp in ("gzip", "xz", "none"):
        if comp in cases_wanted:
            cases.append({"name": "%s-%dM" % (comp, sizes[comp]), "comp": comp, "size_mib": sizes[comp],
                          "pool_key": "pool"})
    if "crowded" in cases_wanted:
        cases.append({"name": "gzip-%dM-%dds" % (sizes["gzip"], others), "comp": "gzip", "size_mib": sizes["gzip"],
                      "pool_key": "crowded"})

    results = []
    try:
        for case in cases:
            pool = args.pool if case["pool_key"] == "pool" else args.crowded_pool
            try:
                if case["pool_key"] == "crowded":
                    pool_up(world, pool)
                    ensure_others(pool, others)
                case = dict(case, others=image_dataset_count(pool))
                if case["pool_key"] == "crowded":  # named by what is there (more may be left from a full run)
                    case["name"] = "gzip-%dM-%dds" % (case["size_mib"], case["others"])
                results.append(run_case(world, case, manifests[case["comp"]], pool, module_path, build_root, args.rounds,
                                        recv_u, time_bin))
            except BenchError as e:
                log("case %s failed: %s" % (case["name"], e))
                results.append(dict(case, pool=pool, error=str(e)))
    finally:
        for comp, m in manifests.items():
            for pool in sorted(set([args.pool, args.crowded_pool])):
                if sh(["zpool", "list", "-H", pool], check=False).returncode != 0:
                    continue
                clean_module_import(pool, m["uuid"])
                if bi.zfs_exists("%s/bench-raw" % pool):
                    destroy("%s/bench-raw" % pool)
        if args.pool != args.crowded_pool:
            pool_down(world, args.pool)  # the bench's own pool for the plain cases is empty now
        if args.cleanup:
            if is_world_pool(world, args.crowded_pool):
                remove_others(args.crowded_pool, others)
            else:
                pool_down(world, args.crowded_pool)
    info["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    print_report(results, args, info)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results}, f, indent=2)
        print("measurements written to %s" % args.json)
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
