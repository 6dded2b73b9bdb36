"""Fake SmartOS `sysinfo` for the smartos.imgadm test world.

Prints a JSON object like real SmartOS sysinfo. Keys from
$SMARTOS_FAKE_STATE/sysinfo.json (default state dir
/var/tmp/smartos-fake-state) override the defaults; a null value removes a
key. `-p` prints the parseable KEY='value' form (scalars only), `-f` is
accepted and ignored. Each call is appended to STATE/calls.log (JSON
lines) when the state dir exists.
"""

import json
import os
import socket
import sys
import time
import uuid

STATE = os.environ.get("SMARTOS_FAKE_STATE", "/var/tmp/smartos-fake-state")


def log_call():
    if os.path.isdir(STATE):
        try:
            with open(os.path.join(STATE, "calls.log"), "a") as f:
                f.write(json.dumps({"cmd": "sysinfo", "argv": sys.argv[1:],
                                    "time": time.time()}) + "\n")
        except OSError:
            pass


def defaults():
    host = socket.gethostname()
    try:
        mem_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") \
            // (1024 * 1024)
    except (ValueError, OSError):
        mem_mib = 4096
    pool = os.environ.get("IMGADM_TEST_POOL", "zones")
    return {
        "Live Image": "20260101T000000Z",
        "System Type": "SunOS",
        "Boot Time": "1767225600",
        "SDC Version": "7.0",
        "Manufacturer": "Joyent",
        "Product": "SmartOS test world",
        "Serial Number": "imgtest-0001",
        "SKU Number": "",
        "HW Version": "",
        "HW Family": "",
        "Setup": "false",
        "VM Capable": True,
        "Bhyve Capable": False,
        "Bhyve Max Vcpus": 0,
        "HVM API": False,
        "CPU Type": "Unknown",
        "CPU Virtualization": "none",
        "CPU Physical Cores": 1,
        "Admin NIC Tag": "",
        "UUID": str(uuid.uuid5(uuid.NAMESPACE_DNS,
                               "smartos-fake-sysinfo." + host)),
        "Hostname": host,
        "CPU Total Cores": os.cpu_count() or 1,
        "MiB of Memory": str(mem_mib),
        "Zpool": pool,
        "Zpool Disks": "",
        "Zpool Profile": "striped",
        "Zpool Creation": 1767225600,
        "Zpool Size in GiB": 4,
        "Disks": {},
        "Boot Parameters": {"smartos": "true", "console": "text",
                            "boot_args": "", "bootargs": ""},
        "Network Interfaces": {},
        "Virtual Network Interfaces": {},
        "Link Aggregations": {},
    }


def load():
    info = defaults()
    path = os.path.join(STATE, "sysinfo.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                override = json.load(f)
        except (OSError, ValueError) as e:
            sys.stderr.write("sysinfo: cannot read %s: %s\n" % (path, e))
            sys.exit(1)
        for k, v in override.items():
            if v is None:
                info.pop(k, None)
            else:
                info[k] = v
    return info


def main(argv):
    log_call()
    parseable = False
    for a in argv:
        if a == "-p":
            parseable = True
        elif a == "-f":
            pass
        else:
            sys.stderr.write("Usage: sysinfo [-f] [-p]\n")
            return 1
    info = load()
    if parseable:
        for k, v in info.items():
            if isinstance(v, (dict, list)):
                continue
            if isinstance(v, bool):
                v = "true" if v else "false"
            sys.stdout.write("%s='%s'\n" % (k.replace(" ", "_"), v))
    else:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
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
