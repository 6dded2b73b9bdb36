"""Fleet benchmark: playbooks/fleet.yml on 1, 5 and 10 simulated hosts vs. a plain parallel shell loop.

For each fleet size N (default 1, 5, 10), on fresh pools each time (PREFIX01..PREFIXNN, sparse
files made with tests/world/zpool.sh), with one image server (tests/world/imgapi_server.py, its
own process, data dir and port) serving base -> child -> grandchild (incremental, gzip, built
once with tests/world/build_image.py):

  playbook  ansible-playbook -i INV -f N smartos.imgadm.fleet  (the collection playbook,
            tests/fleet's inventory: ansible_connection=local, a pool, imgadm_dir, lock_dir
            and fake SmartOS state per host); every host imports the grandchild by name
            (state latest) with its origins, then facts and summaries
  noop      the same playbook again right after: nothing to import (Ansible's fixed cost)
  baseline  N bash loops at once, one per host (fresh pools again), each doing only the
            downloads and receives the hosts need, origin first:
              for UUID in base child grandchild; do
                  curl -sS -f URL/images/UUID/file | gzip -cdfq | zfs receive POOL/UUID
              done
            no sources, no manifests, no checks, no database, no locks

Printed per N: wall seconds of each, the server's request counts (file GETs must be N x 3 in
the playbook run, 0 in the noop run), and

  RATIO fleet-N      playbook s / baseline s  (same downloads + receives, same concurrency)
  RATIO_ABOVE_NOOP fleet-N   (playbook s - noop s) / baseline s: the imports without Ansible's fixed cost
  SCALING fleet-N    playbook s(N) / playbook s(1): 1.0 = perfect parallelism, N = serial
  REQUESTS fleet-N   file_gets F expected N*3 requests R noop_file_gets 0

Every subprocess has a deadline; each fleet size holds the zfs lock
(/var/tmp/smartos-imgadm-zfs.lock, IMGADM_ZFS_LOCK; empty = none) for its own pools only.
Exit 0 (a benchmark), 1 when something could not be measured or a request count is wrong.

Usage (as root): .venv/bin/python bench/fleet_bench.py [--hosts 1,5,10] [--sizes 16,4,4] [--json F]
See bench/README.md (Fleet).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "fleet"))
import fleet  # noqa: E402  (tests/fleet/fleet.py)

WORLD = os.path.join(TOP, "tests", "world")
WORK = os.path.join(os.environ.get("IMGADM_BENCH_DIR", "/var/tmp/smartos-imgadm-bench"), "fleet")
BUILD_ROOT = os.path.join(os.environ.get("IMGADM_BENCH_DIR", "/var/tmp/smartos-imgadm-bench"), "fleet-build")
VENV_BIN = os.path.dirname(sys.executable)


class BenchError(RuntimeError):
    pass


def log(msg):
    sys.stderr.write("[fleet-bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def tree(pid):
    """pid and its descendants (ansible's workers are session leaders: a group kill misses them)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], stdout=subprocess.PIPE, text=True, timeout=30,
                         check=True).stdout
    children = {}
    for line in out.splitlines():
        c, pp = line.split()
        children.setdefault(int(pp), []).append(int(c))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def kill_tree(pid):
    pids = tree(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        time.sleep(5 if sig == signal.SIGTERM else 0)


def sh(argv, timeout, env=None, check=True, stdout=subprocess.PIPE):
    """argv with a deadline: it and all its descendants are killed past it (or on an interrupt)."""
    p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=env, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p.pid)
        p.communicate()
        raise BenchError("TIMEOUT: %s ran over %s s" % (" ".join(argv), timeout))
    except BaseException:
        kill_tree(p.pid)
        raise
    if check and p.returncode != 0:
        raise BenchError("%s failed (exit %d): %s" % (" ".join(argv[:4]), p.returncode, (err or out or "").strip()[-2000:]))
    return p.returncode, out, err


@contextlib.contextmanager
def zfs_lock(path, wait):
    """The machine's zfs lock (flock, as flock(1) takes it), waited for at most ``wait`` s."""
    if not path:
        yield
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        until = time.time() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > until:
                    raise BenchError("the zfs lock %s was held for %s s" % (path, wait))
                time.sleep(1)
        yield
    finally:
        os.close(fd)


def pools_fresh(pools, size):
    for p in pools:
        sh(["bash", os.path.join(WORLD, "zpool.sh"), "down", p], 180, check=False)
        sh(["bash", os.path.join(WORLD, "zpool.sh"), "up", p, size], 180)


def pools_down(pools):
    for p in pools:
        rc, out, err = sh(["bash", os.path.join(WORLD, "zpool.sh"), "down", p], 180, check=False)
        if rc != 0:
            log("could not destroy pool %s: %s" % (p, err.strip()))


def reset_hosts(work):
    shutil.rmtree(os.path.join(work, "hosts"), ignore_errors=True)


def requests_of(url, chain, clear=True):
    counts = fleet.request_counts(url, chain)
    if clear:
        fleet.http("DELETE", url + "/__requests")
    return counts


def run_playbook(args, inv, n, log_path, env):
    t0 = time.perf_counter()
    with open(log_path, "w") as f:
        rc, dummy, err = sh([os.path.join(VENV_BIN, "ansible-playbook"), "-i", inv, "-f", str(n), "smartos.imgadm.fleet"],
                            args.play_timeout, env=env, check=False, stdout=f)
    dt = time.perf_counter() - t0
    with open(log_path) as f:
        text = f.read()
    if rc != 0:
        raise BenchError("ansible-playbook exit %d (log %s): %s" % (rc, log_path, text[-3000:]))
    return dt, fleet.parse_recap(text)


BASELINE = """set -o pipefail
for u in {uuids}; do
    curl -sS -f "{url}/images/$u/file" | gzip -cdfq | zfs receive "{pool}/$u" || exit 1
done
"""


def run_baseline(args, url, chain, pools):
    """One bash loop per host, all at once; wall time until the last one ends."""
    uuids = " ".join(img["uuid"] for img in chain)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["timeout", "--kill-after=10", str(args.play_timeout), "bash", "-c",
                               BASELINE.format(uuids=uuids, url=url, pool=p)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for p in pools]
    errors = []
    for p, proc in zip(pools, procs):
        dummy, err = proc.communicate()
        if proc.returncode != 0:
            errors.append("%s: exit %d %s" % (p, proc.returncode, err.strip()))
    dt = time.perf_counter() - t0
    if errors:
        raise BenchError("baseline failed: %s" % "; ".join(errors))
    return dt


def check_baseline(pools, chain):
    for p in pools:
        tree = fleet.zfs_tree(p)
        for img in chain:
            if "%s/%s@final" % (p, img["uuid"]) not in tree:
                raise BenchError("baseline: %s/%s@final missing" % (p, img["uuid"]))


def measure(args, n, url, chain, env):
    prefix = args.prefix
    pools = fleet.host_names(n, prefix)
    work = os.path.join(WORK, "n%d" % n)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    inv = os.path.join(work, "inventory.yml")
    res = {"hosts": n}
    with zfs_lock(args.lock, args.lock_wait):
        try:
            log("%d host(s): fresh pools %s" % (n, ", ".join(pools)))
            pools_fresh(pools, args.pool_size)
            fleet.write_inventory(inv, n, prefix, work, url, os.path.join(WORLD, "fakes", "bin"), sys.executable, chain)
            requests_of(url, chain)
            res["playbook_s"], recap = run_playbook(args, inv, n, os.path.join(work, "run1.log"), env)
            c1 = requests_of(url, chain)
            problems = fleet.check_recap(recap, n, prefix, "all") + fleet.check_state(n, prefix, work, chain)
            problems += fleet.check_requests(c1, n, 3 * n, chain, prefix)
            log("%d host(s): playbook %.1f s, %d file GETs, %d requests"
                % (n, res["playbook_s"], c1["file_gets"], c1["requests"]))
            res["noop_s"], recap2 = run_playbook(args, inv, n, os.path.join(work, "run2.log"), env)
            c2 = requests_of(url, chain)
            problems += fleet.check_recap(recap2, n, prefix, "zero") + fleet.check_requests(c2, n, 0, chain, prefix)
            log("%d host(s): noop %.1f s, %d file GETs, %d requests" % (n, res["noop_s"], c2["file_gets"], c2["requests"]))
            res.update(file_gets=c1["file_gets"], requests=c1["requests"], by_route=c1["by_route"],
                       noop_file_gets=c2["file_gets"], noop_requests=c2["requests"], problems=problems)
            pools_fresh(pools, args.pool_size)
            res["baseline_s"] = run_baseline(args, url, chain, pools)
            check_baseline(pools, chain)
            c3 = requests_of(url, chain)
            res["baseline_file_gets"] = c3["file_gets"]
            log("%d host(s): baseline %.1f s, %d file GETs" % (n, res["baseline_s"], c3["file_gets"]))
        finally:
            pools_down(pools)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    return res


def _terminated(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminated)
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--hosts", default="1,5,10", help="fleet sizes (default 1,5,10)")
    ap.add_argument("--sizes", default="16,4,4", help="MiB of random data in base,child,grandchild (default 16,4,4)")
    ap.add_argument("--prefix", default="fleetb", help="pool name prefix (letters; default fleetb)")
    ap.add_argument("--pool-size", default="256M")
    ap.add_argument("--play-timeout", type=int, default=400)
    ap.add_argument("--lock", default=os.environ.get("IMGADM_ZFS_LOCK", "/var/tmp/smartos-imgadm-zfs.lock"))
    ap.add_argument("--lock-wait", type=int, default=1200)
    ap.add_argument("--build-root", help="a collection already staged there (default: stage this work tree)")
    ap.add_argument("--json", help="write every measurement there")
    ap.add_argument("--keep", action="store_true", help="keep the work dirs (logs, inventories, images)")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.hosts.split(",")]
    if os.geteuid() != 0:
        raise SystemExit("fleet_bench: must run as root (zfs)")

    build_root = args.build_root
    if not build_root:
        build_root = BUILD_ROOT
        sh(["bash", os.path.join(TOP, "tests", "bin", "stage.sh")], 120, env=dict(os.environ, IMGADM_BUILD_ROOT=build_root))
    info = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
            "python": platform.python_version(), "load_before": "%.2f %.2f %.2f" % os.getloadavg(),
            "build_root": build_root, "image_sizes_mib": args.sizes}
    info["ansible"] = sh([sys.executable, "-c", "import ansible.release as r; print(r.__version__)"], 60)[1].strip()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, "server", "images"))
    build_pool = args.prefix + "build"
    server = None
    results = []
    failed = False
    try:
        with zfs_lock(args.lock, args.lock_wait):
            log("building the chain (%s MiB) on %s" % (args.sizes, build_pool))
            try:
                pools_fresh([build_pool], args.pool_size)
                chain = fleet.build_chain(build_pool, os.path.join(WORK, "build"), os.path.join(WORK, "server"),
                                          tuple(float(x) for x in args.sizes.split(",")), prefix="fleetbench")
            finally:
                pools_down([build_pool])
        info["chain"] = chain
        server = subprocess.Popen([sys.executable, os.path.join(WORLD, "imgapi_server.py"), "--data-dir",
                                   os.path.join(WORK, "server"), "--port", "0",
                                   "--port-file", os.path.join(WORK, "server.port")],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "server.log"), "w"))
        port_file = os.path.join(WORK, "server.port")
        for dummy in range(100):
            if os.path.exists(port_file) and os.path.getsize(port_file):
                break
            time.sleep(0.1)
        with open(port_file) as f:
            url = "http://127.0.0.1:%s" % f.read().strip()
        info["url"] = url
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=build_root, ANSIBLE_STDOUT_CALLBACK="default",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="false",
                   ANSIBLE_LOCAL_TEMP=os.path.join(WORK, "ansible-local"),
                   PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        for n in sizes:
            try:
                results.append(measure(args, n, url, chain, env))
            except (BenchError, fleet.CheckFailed) as e:
                log("%d host(s): ERROR %s" % (n, e))
                results.append({"hosts": n, "error": str(e)})
                failed = True
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)  # the images; rebuilt by every run anyway
    info["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()

    ok = [r for r in results if "error" not in r]
    one = next((r for r in ok if r["hosts"] == 1), None)
    print()
    print("smartos.imgadm fleet benchmark  %s" % info["when"])
    print("  machine: %s cores, load avg before %s after %s; python %s; ansible-core %s"
          % (info["cores"], info["load_before"], info["load_after"], info["python"], info["ansible"]))
    print("  chain: base -> child -> grandchild, %s MiB of random data, gzip; files %s bytes"
          % (args.sizes, "/".join(str(i["size"]) for i in chain)))
    print("  playbook: ansible-playbook -f N smartos.imgadm.fleet (sources role, images role: the grandchild by name,")
    print("            state latest, origins with it; facts; summaries); fresh pools, one per host")
    print("  noop:     the same playbook right after (nothing to import): Ansible's fixed cost for N hosts")
    print("  baseline: N bash loops at once, one per host: curl FILE | gzip -cdfq | zfs receive POOL/UUID for the")
    print("            3 images in order; only the downloads and receives (no sources, checks, records, locks)")
    print("  RATIO = playbook / baseline (same work on the wire and in ZFS, same concurrency);")
    print("  above noop = (playbook - noop) / baseline: the import work alone, Ansible's fixed cost taken out;")
    print("  SCALING = playbook(N) / playbook(1) (1.0 = hosts fully in parallel, N = one after the other)")
    print()
    hdr = ["hosts", "playbook s", "noop s", "baseline s", "ratio", "above noop", "scaling", "1 host x N s", "file GETs",
           "expected", "requests", "noop GETs"]
    print("  ".join(hdr))
    for r in results:
        if "error" in r:
            print("%-5d  ERROR %s" % (r["hosts"], r["error"][:300]))
            continue
        r["ratio"] = r["playbook_s"] / r["baseline_s"]
        r["scaling"] = r["playbook_s"] / one["playbook_s"] if one else None
        r["above_noop_ratio"] = (r["playbook_s"] - r["noop_s"]) / r["baseline_s"]
        print("  ".join([str(r["hosts"]).ljust(5), ("%.1f" % r["playbook_s"]).ljust(10), ("%.1f" % r["noop_s"]).ljust(6),
                         ("%.1f" % r["baseline_s"]).ljust(10), ("%.2f" % r["ratio"]).ljust(5),
                         ("%.2f" % r["above_noop_ratio"]).ljust(10),
                         ("%.2f" % r["scaling"] if one else "-").ljust(7),
                         ("%.1f" % (one["playbook_s"] * r["hosts"]) if one else "-").ljust(12),
                         str(r["file_gets"]).ljust(9), str(3 * r["hosts"]).ljust(8), str(r["requests"]).ljust(8),
                         str(r["noop_file_gets"])]))
        if r["problems"]:
            failed = True
            for p in r["problems"]:
                print("  PROBLEM %d hosts: %s" % (r["hosts"], p))
    print()
    for r in ok:
        print("RATIO fleet-%d %.3f" % (r["hosts"], r["ratio"]))
    for r in ok:
        print("RATIO_ABOVE_NOOP fleet-%d %.3f" % (r["hosts"], r["above_noop_ratio"]))
    for r in ok:
        if one:
            print("SCALING fleet-%d %.3f" % (r["hosts"], r["scaling"]))
    for r in ok:
        print("REQUESTS fleet-%d file_gets %d expected %d requests %d noop_file_gets %d"
              % (r["hosts"], r["file_gets"], 3 * r["hosts"], r["requests"], r["noop_file_gets"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results}, f, indent=2)
        print("measurements written to %s" % args.json)
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
