"""Fake SmartOS `zoneadm` for the smartos.imgadm test world.

Only `zoneadm [-z ZONE | -u UUID] list [-c] [-i] [-p] [-v]` is supported.
Zones come from $SMARTOS_FAKE_STATE/zones.json (default state dir
/var/tmp/smartos-fake-state): a JSON list of objects with keys
    uuid (required), zonename (default uuid), state (default "installed"),
    zonepath (default /zones/UUID), brand (default "joyent"),
    ip_type (default "excl"), zoneid (default: a number when running,
    else "-").
The VMs of the fake vmadm ($SMARTOS_FAKE_STATE/vms/UUID.json, see
vmadm.py) are listed too, after those of zones.json (a uuid in both is
listed once, from zones.json): zonename = uuid (or the record's zonename),
zonepath and brand from the record, state running -> running, stopped ->
installed. The global zone line `0:global:running:/::liveimg:shared` always
comes first. Without -c only running zones are listed, with -i installed ones
too. Anything else is a usage error (exit 1), as with zoneadm. Each call
is appended to STATE/calls.log (JSON lines) when the state dir exists.
"""

import json
import os
import sys
import time

import vmadm as vmfake

STATE = os.environ.get("SMARTOS_FAKE_STATE", "/var/tmp/smartos-fake-state")
PROG = "zoneadm"
USAGE = """usage:  zoneadm [-z <zone>] [-u <uuid-match>] list
usage:  zoneadm list [-cipv]
"""
INSTALLED_STATES = ("installed", "ready", "running", "shutting_down",
                    "down", "mounted")


def log_call():
    if os.path.isdir(STATE):
        try:
            with open(os.path.join(STATE, "calls.log"), "a") as f:
                f.write(json.dumps({"cmd": "zoneadm", "argv": sys.argv[1:],
                                    "time": time.time()}) + "\n")
        except OSError:
            pass


def usage(msg=None):
    if msg:
        sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.stderr.write(USAGE)
    return 1


def load_zones():
    zones = [{"zoneid": "0", "zonename": "global", "state": "running",
              "zonepath": "/", "uuid": "", "brand": "liveimg",
              "ip_type": "shared"}]
    path = os.path.join(STATE, "zones.json")
    data = []
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            sys.stderr.write("%s: cannot read %s: %s\n" % (PROG, path, e))
            sys.exit(1)
    if isinstance(data, dict):
        data = data.get("zones", [])
    try:
        vms = vmfake.list_vms()
    except vmfake.Exit as e:
        sys.stderr.write("%s: %s\n" % (PROG, e.msg))
        sys.exit(1)
    seen = set(z.get("uuid") for z in data)
    for vm in vms:
        if vm["uuid"] in seen:
            continue
        data.append({"uuid": vm["uuid"],
                     "zonename": vm.get("zonename") or vm["uuid"],
                     "state": {"running": "running"}.get(vm.get("state"),
                                                         "installed"),
                     "zonepath": vm.get("zonepath",
                                        "/zones/%s" % vm["uuid"]),
                     "brand": vm.get("brand", "joyent")})
    next_id = 1
    for z in data:
        u = z.get("uuid", "")
        state = z.get("state", "installed")
        zid = z.get("zoneid")
        if zid is None:
            if state == "running":
                zid = str(next_id)
                next_id += 1
            else:
                zid = "-"
        zones.append({
            "zoneid": str(zid),
            "zonename": z.get("zonename", u),
            "state": state,
            "zonepath": z.get("zonepath", "/zones/%s" % u),
            "uuid": u,
            "brand": z.get("brand", "joyent"),
            "ip_type": z.get("ip_type", z.get("ip-type", "excl")),
        })
    return zones


def main(argv):
    log_call()
    zone = uuid_match = None
    args = list(argv)
    while args and args[0] in ("-z", "-u"):
        if len(args) < 2:
            return usage("option requires an argument -- %s" % args[0][1])
        if args[0] == "-z":
            zone = args[1]
        else:
            uuid_match = args[1]
        args = args[2:]
    if not args or args[0] != "list":
        return usage("unknown or unsupported subcommand" if args else None)
    flags = set()
    for a in args[1:]:
        if not a.startswith("-") or len(a) < 2:
            return usage("unexpected argument '%s'" % a)
        for ch in a[1:]:
            if ch not in "cipv":
                return usage("illegal option -- %s" % ch)
            flags.add(ch)
    zones = load_zones()
    if zone is not None or uuid_match is not None:
        zones = [z for z in zones
                 if (zone is None or z["zonename"] == zone) and
                 (uuid_match is None or z["uuid"] == uuid_match)]
        if not zones:
            sys.stderr.write("%s: %s: No such zone configured\n"
                             % (PROG, zone or uuid_match))
            return 1
    elif "c" in flags:
        pass
    elif "i" in flags:
        zones = [z for z in zones if z["state"] in INSTALLED_STATES]
    else:
        zones = [z for z in zones if z["state"] == "running"]
    out = []
    if "p" in flags:
        for z in zones:
            out.append(":".join([z["zoneid"], z["zonename"], z["state"],
                                 z["zonepath"], z["uuid"], z["brand"],
                                 z["ip_type"]]))
    elif "v" in flags:
        out.append("  ID NAME             STATUS     PATH"
                   "                           BRAND    IP    ")
        for z in zones:
            out.append("%4s %-16s %-10s %-30s %-8s %-6s" % (
                z["zoneid"], z["zonename"], z["state"], z["zonepath"],
                z["brand"], z["ip_type"]))
    else:
        out = [z["zonename"] for z in zones]
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    try:
        rc = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # e.g. `sysinfo | head`: exit quietly like a C program would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        rc = 0
    sys.exit(rc)
