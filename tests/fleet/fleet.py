"""Helpers of the fleet test (tests/fleet/run.sh) and benchmark (bench/fleet_bench.py).

Standard library only (plus tests/world/build_image.py). Every subprocess has a deadline.

  fleet.py build --pool P --out-dir D --server-data D --chain-file F [--sizes 4,1,1] [--prefix fleet]
      the image chain base -> child -> grandchild (incremental), gzip, built on the build pool P
      and stored for imgapi_server.py; F gets [{uuid, name, version, origin, size}, ...]
  fleet.py inventory --hosts N --prefix fleet --work W --url URL --fakes BIN --python PY --chain-file F --out INV
      a YAML inventory: N hosts (ansible_connection=local), each with its own pool PREFIXNN,
      imgadm_dir, lock_dir and fake SmartOS state under W/hosts/HOST
  fleet.py check-state --hosts N --prefix fleet --work W --chain-file F
      zfs list per pool (the 3 images with @final, origins right, nothing else) and the
      database records in each host's imgadm_dir/images/
  fleet.py check-requests --url URL --chain-file F --hosts N --expect-files K [--clear] [--json OUT]
      the server's request log: K file GETs (each host each image exactly once when K > 0)
  fleet.py recap --log LOG --hosts N --prefix fleet (--changed-zero | --changed-all)
      the PLAY RECAP of an ansible-playbook run: every host ok, none failed or unreachable,
      changed=0 everywhere (--changed-zero) or changed>0 everywhere (--changed-all)
Exit status 0 when the check passes, 1 when it fails (the reasons on stderr), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
WORLD = os.path.join(TOP, "tests", "world")
CMD_TIMEOUT = int(os.environ.get("FLEET_CMD_TIMEOUT", "60"))
HOST_NS = uuidlib.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class CheckFailed(Exception):
    pass


def host_names(n, prefix):
    return ["%s%02d" % (prefix, i) for i in range(1, n + 1)]


def run(argv, timeout=CMD_TIMEOUT):
    """(rc, stdout, stderr) of argv, killed past timeout seconds."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CheckFailed("TIMEOUT: %s ran over %s s" % (" ".join(argv), timeout))
    return p.returncode, p.stdout, p.stderr


def http(method, url, timeout=30):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


# ---------------------------------------------------------------------------
# build

def channel_list(hosts, prefix):
    """The server's --channels: one channel per host (named as the host), the first the default."""
    names = host_names(hosts, prefix)
    return ",".join([names[0] + "*"] + names[1:])


def build_chain(pool, out_dir, server_data, sizes=(4, 1, 1), prefix="fleet", compression="gzip", hosts=10,
                channel_prefix=None):
    """base -> child -> grandchild on ``pool`` (a build pool, never one a host installs into).

    Every image is in the channels of ``hosts`` hosts (one channel per host, named as the host):
    each host's source has its own ``?channel=HOST``, which the module sends with every request,
    so the server's request log says which host asked (one HTTP client per download: x-request-id
    does not tell the hosts apart)."""
    sys.path.insert(0, WORLD)
    import build_image as bi  # tests/world/build_image.py
    chain = []
    origin = None
    for level, size in zip(("base", "child", "grandchild"), sizes):
        res = bi.build_image(pool, out_dir, "%s-%s" % (prefix, level), "1.0.0", compression=compression,
                             origin=origin, size_mib=size, server_data_dir=server_data,
                             channels=host_names(hosts, channel_prefix or prefix),
                             tags={"test": True, "fleet": level},
                             description="smartos.imgadm fleet test image (%s)" % level)
        m = res["manifest"]
        chain.append({"uuid": m["uuid"], "name": m["name"], "version": m["version"], "origin": m.get("origin"),
                      "size": m["files"][0]["size"], "sha1": m["files"][0]["sha1"]})
        origin = res
    return chain


# ---------------------------------------------------------------------------
# inventory

def host_dirs(work, host):
    base = os.path.join(work, "hosts", host)
    return {"imgadm_dir": os.path.join(base, "imgadm"), "lock_dir": os.path.join(base, "lock"),
            "fake_state": os.path.join(base, "fake-state")}


def write_inventory(path, hosts, prefix, work, url, fakes, python, chain):
    """YAML (JSON is YAML) inventory; the hosts' dirs and fake sysinfo state are created."""
    host_vars = collections.OrderedDict()
    for host in host_names(hosts, prefix):
        d = host_dirs(work, host)
        for p in d.values():
            os.makedirs(p, exist_ok=True)
        with open(os.path.join(d["fake_state"], "sysinfo.json"), "w") as f:
            json.dump({"Hostname": host, "UUID": str(uuidlib.uuid5(HOST_NS, host)), "Zpool": host}, f)
        host_vars[host] = {
            "fleet_pool": host,
            "fleet_sources": [{"url": url, "channel": host}],
            "fleet_imgadm_dir": d["imgadm_dir"],
            "fleet_lock_dir": d["lock_dir"],
            "fleet_environment": {"SMARTOS_FAKE_STATE": d["fake_state"], "IMGADM_TEST_POOL": host},
        }
    inv = {"all": {"children": {"smartos": {
        "hosts": host_vars,
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": python,
            # the grandchild by name, newest in the sources: its origins come with it
            "fleet_images": [{"name": chain[-1]["name"], "latest": True}],
            "fleet_sysinfo_path": os.path.join(fakes, "sysinfo"),
            "fleet_zoneadm_path": os.path.join(fakes, "zoneadm"),
        },
    }}}}
    with open(path, "w") as f:
        json.dump(inv, f, indent=2)
    return inv


# ---------------------------------------------------------------------------
# checks

def zfs_tree(pool):
    """{name: (type, origin)} of everything in the pool."""
    rc, out, err = run(["zfs", "list", "-H", "-t", "all", "-o", "name,type,origin", "-r", pool])
    if rc != 0:
        raise CheckFailed("zfs list -r %s failed: %s" % (pool, err.strip()))
    tree = {}
    for line in out.splitlines():
        name, typ, origin = line.split("\t")
        tree[name] = (typ, None if origin == "-" else origin)
    return tree


def check_host(host, pool, imgadm_dir, chain):
    """Problems (strings) of one host: its pool and its database records."""
    problems = []
    tree = zfs_tree(pool)
    want = {pool: ("filesystem", None)}
    prev = None
    for img in chain:
        ds = "%s/%s" % (pool, img["uuid"])
        want[ds] = ("filesystem", "%s/%s@final" % (pool, prev["uuid"]) if prev else None)
        want[ds + "@final"] = ("snapshot", None)
        prev = img
    # where zfs receive has no -u (zfs-fuse) images are received under POOL/imgadm-partial, never mounted
    # (plugins/module_utils/_importer.py); the empty parent stays
    allowed_extra = {"%s/imgadm-partial" % pool}
    for name, what in sorted(want.items()):
        if name not in tree:
            problems.append("%s: %s is missing" % (host, name))
        elif tree[name] != what:
            problems.append("%s: %s is %s origin %s, want %s origin %s"
                            % (host, name, tree[name][0], tree[name][1], what[0], what[1]))
    for name in sorted(set(tree) - set(want) - allowed_extra):
        problems.append("%s: unexpected %s %s (origin %s)" % (host, tree[name][0], name, tree[name][1]))
    # the database: images/POOL-UUID.json, one per image, nothing else
    images_dir = os.path.join(imgadm_dir, "images")
    files = sorted(os.listdir(images_dir)) if os.path.isdir(images_dir) else []
    want_files = sorted("%s-%s.json" % (pool, img["uuid"]) for img in chain)
    if files != want_files:
        problems.append("%s: %s has %s, want %s" % (host, images_dir, files, want_files))
    for img in chain:
        path = os.path.join(images_dir, "%s-%s.json" % (pool, img["uuid"]))
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError) as e:
            problems.append("%s: cannot read %s: %s" % (host, path, e))
            continue
        m = rec.get("manifest") or {}
        for key in ("uuid", "name", "version", "origin"):
            if m.get(key) != img[key]:
                problems.append("%s: %s manifest.%s = %r, want %r" % (host, path, key, m.get(key), img[key]))
        if (m.get("files") or [{}])[0].get("sha1") != img["sha1"]:
            problems.append("%s: %s has another file sha1" % (host, path))
        if rec.get("zpool") != pool:
            problems.append("%s: %s zpool = %r, want %r" % (host, path, rec.get("zpool"), pool))
        source = rec.get("source")  # the URL the image came from (imgadm 3.9.5 writes a string)
        source = source.get("url") if isinstance(source, dict) else source
        if not isinstance(source, str) or not source.startswith("http://127.0.0.1:") or ("channel=%s" % host) not in source:
            problems.append("%s: %s source = %r" % (host, path, rec.get("source")))
    return problems


def check_state(hosts, prefix, work, chain):
    problems = []
    for host in host_names(hosts, prefix):
        problems += check_host(host, host, host_dirs(work, host)["imgadm_dir"], chain)
    return problems


def request_counts(url, chain):
    """The server's request log, summed up: requests, file GETs per image and per client run."""
    log = http("GET", url + "/__requests")
    uuids = {img["uuid"] for img in chain}
    file_rx = re.compile(r"^/images/(%s)/file(?:\?(.*))?$" % UUID_RE)
    files = []
    for e in log:
        m = file_rx.match(e["path"])
        if e["method"] == "GET" and m:
            query = urllib.parse.parse_qs(m.group(2) or "")
            files.append({"uuid": m.group(1), "status": e["status"], "host": (query.get("channel") or ["?"])[0]})
    per_image = collections.Counter(f["uuid"] for f in files)
    # the host is the channel of its source (see build_chain)
    per_host = collections.defaultdict(list)
    for f in files:
        per_host[f["host"]].append(f["uuid"])
    return {
        "requests": len(log),
        "by_route": dict(collections.Counter(e.get("route") or e["path"].split("?")[0] for e in log)),
        "file_gets": len(files),
        "file_gets_not_200": sum(1 for f in files if f["status"] != 200),
        "file_gets_per_image": {u: per_image.get(u, 0) for u in sorted(uuids)},
        "file_gets_per_host": dict((h, sorted(v)) for h, v in sorted(per_host.items())),
        "foreign_file_gets": sum(1 for f in files if f["uuid"] not in uuids),
    }


def check_requests(counts, hosts, expect_files, chain, prefix="fleet"):
    problems = []
    if counts["file_gets"] != expect_files:
        problems.append("%d file GETs, want %d" % (counts["file_gets"], expect_files))
    if counts["file_gets_not_200"] or counts["foreign_file_gets"]:
        problems.append("%d file GETs not 200, %d of other images" % (counts["file_gets_not_200"],
                                                                      counts["foreign_file_gets"]))
    if expect_files:
        per_host = expect_files // len(chain)
        for u, n in counts["file_gets_per_image"].items():
            if n != per_host:
                problems.append("image %s: %d file GETs, want %d (one per host)" % (u, n, per_host))
        want = sorted(img["uuid"] for img in chain)
        got = counts["file_gets_per_host"]
        for host in host_names(hosts, prefix):
            if got.get(host) != want:
                problems.append("%s downloaded %s, want each image of the chain once" % (host, got.get(host)))
        for host in sorted(set(got) - set(host_names(hosts, prefix))):
            problems.append("file GETs from an unknown host (channel) %s: %s" % (host, got[host]))
    return problems


RECAP_RX = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                      r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)")


def parse_recap(text):
    recap = {}
    seen = False
    for line in text.splitlines():
        if line.startswith("PLAY RECAP"):
            seen = True
            recap = {}
            continue
        m = RECAP_RX.match(line.strip()) if seen else None
        if m:
            keys = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
            recap[m.group(1)] = dict(zip(keys, (int(x) for x in m.groups()[1:])))
    return recap


def check_recap(recap, hosts, prefix, changed):
    problems = []
    names = host_names(hosts, prefix)
    if sorted(recap) != names:
        problems.append("PLAY RECAP hosts %s, want %s" % (sorted(recap), names))
    for host in names:
        r = recap.get(host)
        if r is None:
            continue
        if r["failed"] or r["unreachable"] or r["ok"] == 0:
            problems.append("%s: %s" % (host, r))
        if changed == "zero" and r["changed"] != 0:
            problems.append("%s: changed=%d, want 0" % (host, r["changed"]))
        if changed == "all" and r["changed"] == 0:
            problems.append("%s: changed=0, want > 0" % host)
    return problems


# ---------------------------------------------------------------------------

def load_chain(path):
    with open(path) as f:
        return json.load(f)


def report(problems, ok_msg):
    if problems:
        for p in problems:
            sys.stderr.write("FAIL: %s\n" % p)
        return 1
    print(ok_msg)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--pool", required=True)
    b.add_argument("--out-dir", required=True)
    b.add_argument("--server-data", required=True)
    b.add_argument("--chain-file", required=True)
    b.add_argument("--sizes", default="4,1,1")
    b.add_argument("--prefix", default="fleet")
    b.add_argument("--hosts", type=int, default=10, help="put the images in the channels of this many hosts")
    b.add_argument("--channels-file", help="write the server's --channels value there")
    i = sub.add_parser("inventory")
    for s in (i,):
        s.add_argument("--url", required=True)
        s.add_argument("--fakes", required=True)
        s.add_argument("--python", required=True)
        s.add_argument("--out", required=True)
    for s in (i, sub.add_parser("check-state")):
        s.add_argument("--hosts", type=int, required=True)
        s.add_argument("--prefix", default="fleet")
        s.add_argument("--work", required=True)
        s.add_argument("--chain-file", required=True)
    r = sub.add_parser("check-requests")
    r.add_argument("--url", required=True)
    r.add_argument("--chain-file", required=True)
    r.add_argument("--hosts", type=int, required=True)
    r.add_argument("--expect-files", type=int, required=True)
    r.add_argument("--prefix", default="fleet")
    r.add_argument("--clear", action="store_true", help="clear the log afterwards")
    r.add_argument("--json", help="write the counts there")
    c = sub.add_parser("recap")
    c.add_argument("--log", required=True)
    c.add_argument("--hosts", type=int, required=True)
    c.add_argument("--prefix", default="fleet")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--changed-zero", action="store_const", dest="changed", const="zero")
    g.add_argument("--changed-all", action="store_const", dest="changed", const="all")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "build":
            chain = build_chain(a.pool, a.out_dir, a.server_data, tuple(float(x) for x in a.sizes.split(",")), a.prefix,
                                hosts=a.hosts)
            if a.channels_file:
                with open(a.channels_file, "w") as f:
                    f.write(channel_list(a.hosts, a.prefix) + "\n")
            with open(a.chain_file, "w") as f:
                json.dump(chain, f, indent=2)
            for img in chain:
                print("built %s %s@%s origin %s (%d bytes)"
                      % (img["uuid"], img["name"], img["version"], img["origin"], img["size"]))
            return 0
        if a.cmd == "inventory":
            write_inventory(a.out, a.hosts, a.prefix, a.work, a.url, a.fakes, a.python, load_chain(a.chain_file))
            print("inventory: %d hosts in %s" % (a.hosts, a.out))
            return 0
        if a.cmd == "check-state":
            chain = load_chain(a.chain_file)
            return report(check_state(a.hosts, a.prefix, a.work, chain),
                          "state: %d hosts, each pool has the %d images with @final and the right origins, and "
                          "their %d records" % (a.hosts, len(chain), len(chain)))
        if a.cmd == "check-requests":
            chain = load_chain(a.chain_file)
            counts = request_counts(a.url, chain)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(counts, f, indent=2)
            if a.clear:
                http("DELETE", a.url + "/__requests")
            return report(check_requests(counts, a.hosts, a.expect_files, chain, a.prefix),
                          "requests: %d in all, %d file GETs (%s per image; %d hosts downloaded: %s) %s"
                          % (counts["requests"], counts["file_gets"],
                             "/".join(str(n) for n in counts["file_gets_per_image"].values()),
                             len(counts["file_gets_per_host"]),
                             " ".join("%s:%d" % (h, len(v)) for h, v in counts["file_gets_per_host"].items()) or "-",
                             json.dumps(counts["by_route"], sort_keys=True)))
        if a.cmd == "recap":
            with open(a.log) as f:
                recap = parse_recap(f.read())
            return report(check_recap(recap, a.hosts, a.prefix, a.changed),
                          "recap: %d hosts ok, changed %s"
                          % (len(recap), ",".join(str(recap[h]["changed"]) for h in sorted(recap))))
    except CheckFailed as e:
        sys.stderr.write("FAIL: %s\n" % e)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
