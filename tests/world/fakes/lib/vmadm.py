"""Fake SmartOS `vmadm` for the smartos.imgadm test world.

VMs are JSON records in $SMARTOS_FAKE_STATE/vms/UUID.json (default state
dir /var/tmp/smartos-fake-state), with the vmadm fields the image-creation
flow uses:

    uuid, brand (joyent|joyent-minimal|lx|bhyve|kvm), state
    (running|stopped), zpool, zfs_filesystem, zonepath, image_uuid, quota,
    customer_metadata {}, internal_metadata {}, disks [{zfs_filesystem,
    image_uuid, zpool, ...}] (bhyve/kvm), bootrom (bhyve), and any others.

plus a test-only `_fake` object that steers the fake (never shown by
`vmadm get`):

    on_start     what `vmadm start` does (default "run"):
        run          state -> running; internal_metadata["operator-script"],
                     if set, runs detached; when it exits the VM halts
                     (state -> stopped). Without a script the VM just runs.
        never_start  state -> running, but the script never runs
        crash        the script runs; after `crash_after` seconds the VM
                     "crashes": state -> stopped and the script's process
                     group is killed (a script that ends sooner halts the
                     VM normally)
        never_stop   the script runs, but the VM stays running after it
        start_fails  `vmadm start` exits 1 ("Unable to start VM U: ..."),
                     state unchanged
    crash_after  seconds for "crash" (default 1)
    start_error  message for "start_fails"
    root         directory the script runs in and FAKE_VM_ROOT (default:
                 zonepath if it is a directory, else STATE/vm-work/UUID,
                 e.g. for a bhyve/kvm VM whose disks are zvols)
    script_timeout  seconds after which a still running script is killed
                 and the VM stopped, a safety net (default 1200)

The script is internal_metadata["operator-script"] (the guest's
sdc:operator-script) written to vms/UUID.operator-script: run directly when
it starts with "#!", else with /bin/sh; cwd and FAKE_VM_ROOT = root; env
PATH=<fakes bin>:<PATH of vmadm start>, HOME, LC_ALL=C, FAKE_VM_UUID,
FAKE_VM_ROOT, SMARTOS_FAKE_STATE; stdout and stderr are appended to
vms/UUID.log. The detached supervisor's pid (= its process group, which
the script shares) is in vms/UUID.run while a script runs; the outcome
of the last run (exited with exit_status, crashed, killed by vmadm stop,
timeout) is in vms/UUID.last-run.json. A script can halt its own VM with
`vmadm stop $FAKE_VM_UUID` (as a guest would with shutdown): the VM stops
and the script's process group is killed.

Subcommands (messages and exit codes as vmadm's; a bad or missing UUID is
a usage error, exit 2; an unknown VM exits 1 with
"zoneadm: UUID: No such zone configured" on stderr; success messages go to
stderr, as vmadm's do):

    get|json UUID            the record (minus `_fake`, plus zonename and
                             zone_state when missing) as 2-space JSON
    start|boot UUID          see on_start; already running: message, exit 0
    stop|halt UUID [-F]      kills a running script (process group),
                             state -> stopped; not running and no -F:
                             "VM U is already not 'running' (currently: S)",
                             exit 0; with -F always succeeds
    update UUID [-f FILE]    JSON object from FILE or stdin ("-"), or
    update UUID k=v ...      set_/remove_customer_metadata,
                             set_/remove_internal_metadata, set_/remove_tags;
                             other keys replace top-level fields (null
                             deletes); uuid cannot change
    list [-p] [-H] [-o f,..] [-s f,..] [k=v|k=~re ...]

Record changes are made under an flock on vms/UUID.lock and written
atomically (temp file + rename), so mdata-put from a running script and
`vmadm update` do not lose each other's writes. Each call (not the internal
supervisor) is appended to STATE/calls.log as a JSON line {cmd, argv, time}
(update adds "payload").
"""

import contextlib
import fcntl
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid as uuidlib

STATE = os.environ.get("SMARTOS_FAKE_STATE", "/var/tmp/smartos-fake-state")
PROG = "vmadm"
HERE = os.path.dirname(os.path.abspath(__file__))
FAKES_BIN = os.path.join(os.path.dirname(HERE), "bin")
ON_START = ("run", "never_start", "crash", "never_stop", "start_fails")
DEFAULT_CRASH_AFTER = 1.0
DEFAULT_SCRIPT_TIMEOUT = 1200.0
SELF_KILL = []

COMMANDS = ["start", "boot", "console", "create", "create-snapshot",
            "delete", "destroy", "delete-snapshot", "stop", "halt", "help",
            "info", "install", "get", "json", "list", "lookup", "reboot",
            "receive", "recv", "reprovision", "rollback-snapshot", "send",
            "sysrq", "update", "validate"]
SUPPORTED = ("start", "boot", "stop", "halt", "get", "json", "update",
             "list", "help")
USAGE = """Usage: vmadm <command> [options]

create [-f <filename>]
create-snapshot <uuid> <snapname>
console <uuid>
delete <uuid>
delete-snapshot <uuid> <snapname>
get <uuid>
info <uuid> [type,...]
install <uuid>
list [-p] [-H] [-o field,...] [-s field,...] [field=value ...]
lookup [-j|-1] [-o field,...] [field=value ...]
reboot <uuid> [-F]
receive [-f <filename>]
reprovision [-f <filename>]
rollback-snapshot <uuid> <snapname>
send <uuid> [target]
start <uuid> [option=value ...]
stop <uuid> [-F]
sysrq <uuid> <nmi|screenshot>
update <uuid> [-f <filename>]
 -or- update <uuid> property=value [property=value ...]
validate create [-f <filename>]
validate update <brand> [-f <filename>]

For more detailed information on the use of this command,type 'man vmadm'.
"""
LIST_FIELDS = {
    "alias": 10, "autoboot": 8, "billing_id": 36, "boot_timestamp": 24,
    "brand": 14, "cpu_cap": 7, "cpu_shares": 9, "cpu_type": 8,
    "create_timestamp": 24, "dns_domain": 32, "do_not_inventory": 5,
    "docker": 6, "firewall_enabled": 16, "hostname": 32, "image_uuid": 36,
    "ram": 7, "max_locked_memory": 10, "max_lwps": 7,
    "max_physical_memory": 8, "max_swap": 8, "owner_uuid": 36,
    "pid": 6, "quota": 5, "zone_state": 10, "state": 16, "type": 4,
    "uuid": 36, "vcpus": 5, "zfs_io_priority": 11, "zpool": 12,
    "zonename": 12, "zonepath": 40, "zoneid": 6,
}
LIST_HEADERS = {"cpu_shares": "CPU_SHARE", "dns_domain": "DOMAIN",
                "do_not_inventory": "DNI", "max_locked_memory": "MAX_LOCKED",
                "max_lwps": "MAX_LWP", "max_physical_memory": "MAX_PHYS",
                "zfs_io_priority": "IO_PRIORITY"}
BRAND_TYPES = {"joyent": "OS", "joyent-minimal": "OS", "lx": "LX",
               "kvm": "KVM", "bhyve": "BHYV"}


class Exit(Exception):
    """Print `msg` to stderr (if any) and exit with `code`."""

    def __init__(self, code, msg=None):
        Exception.__init__(self, msg)
        self.code = code
        self.msg = msg


# --- state files shared with mdata.py and zoneadm.py

def vms_dir():
    return os.path.join(STATE, "vms")


def vm_file(u, suffix):
    return os.path.join(vms_dir(), u + suffix)


def valid_uuid(u):
    """vmadm's own check: 36 characters with dashes at 8, 13, 18, 23."""
    return (len(u) == 36 and u[8] == "-" and u[13] == "-" and
            u[18] == "-" and u[23] == "-")


def not_found(u):
    return Exit(1, "zoneadm: %s: No such zone configured" % u)


@contextlib.contextmanager
def locked(u):
    """Exclusive flock on vms/UUID.lock for the duration."""
    os.makedirs(vms_dir(), exist_ok=True)
    fd = os.open(vm_file(u, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_json(path):
    """The JSON in `path`, None if it does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise Exit(1, "%s: cannot read %s: %s" % (PROG, path, e))


def write_json(path, obj):
    """Atomically replace `path` (temp file in the same dir + rename)."""
    d, base = os.path.split(path)
    tmp = os.path.join(d, ".%s.tmp%d" % (base, os.getpid()))
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def load_vm(u):
    """The record of VM `u` (with `_fake`); Exit(1) if there is none."""
    rec = read_json(vm_file(u, ".json"))
    if not isinstance(rec, dict):
        raise not_found(u)
    return rec


def save_vm(rec):
    write_json(vm_file(rec["uuid"], ".json"), rec)


def list_vms():
    """All VM records, sorted by uuid (temp files are skipped)."""
    out = []
    try:
        names = sorted(os.listdir(vms_dir()))
    except FileNotFoundError:
        return out
    for name in names:
        if name.startswith(".") or not name.endswith(".json") or \
                name.endswith(".last-run.json"):
            continue
        rec = read_json(os.path.join(vms_dir(), name))
        if isinstance(rec, dict) and rec.get("uuid"):
            out.append(rec)
    return out


def log_call(cmd, argv, **extra):
    if not os.path.isdir(STATE):
        return
    entry = {"cmd": cmd, "argv": list(argv), "time": time.time()}
    entry.update(extra)
    line = (json.dumps(entry) + "\n").encode()
    try:
        fd = os.open(os.path.join(STATE, "calls.log"),
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)      # one write: lines do not interleave
        finally:
            os.close(fd)
    except OSError:
        pass


def fake_opts(rec):
    f = rec.get("_fake")
    return f if isinstance(f, dict) else {}


# --- processes

def _proc_stat(pid):
    """(state, pgrp) of `pid` from /proc, None if it is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    return fields[0], int(fields[2])


def group_alive(pgid):
    """Whether a live (not zombie) process is in process group `pgid`."""
    try:
        pids = os.listdir("/proc")
    except OSError:
        return False
    for p in pids:
        if not p.isdigit():
            continue
        st = _proc_stat(p)
        if st and st[1] == pgid and st[0] not in ("Z", "X"):
            return True
    return False


def kill_group(pgid, grace=1.0):
    """SIGTERM process group `pgid`, SIGKILL what is left after `grace`
    seconds, and wait (bounded) until it is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.02)


def finish_run(u, outcome, **extra):
    """Record the outcome of the current run and forget it (lock held)."""
    run = read_json(vm_file(u, ".run")) or {}
    last = {"token": run.get("token"), "pid": run.get("pid"),
            "mode": run.get("mode"), "started": run.get("started"),
            "ended": time.time(), "outcome": outcome}
    last.update(extra)
    write_json(vm_file(u, ".last-run.json"), last)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(vm_file(u, ".run"))


def kill_run(u, outcome="killed"):
    """Kill the script of VM `u` if one runs (lock held). True if it did."""
    run = read_json(vm_file(u, ".run"))
    if not isinstance(run, dict):
        return False
    pid = run.get("pid")
    finish_run(u, outcome)
    if isinstance(pid, int) and pid > 1:
        if pid == os.getpgrp():
            # called from the VM's own script: finish first, then go down
            # with the group (see main)
            SELF_KILL.append(pid)
        else:
            kill_group(pid)
    return True


def vm_root(rec):
    root = fake_opts(rec).get("root")
    if root:
        return root
    zp = rec.get("zonepath")
    if zp and os.path.isdir(zp):
        return zp
    return os.path.join(STATE, "vm-work", rec["uuid"])


# --- subcommands

def get_uuid(command, args):
    if args:
        u = args.pop(0)
        if valid_uuid(u):
            return u
    raise Exit(2, "Invalid or missing UUID for %s\n%s" % (command, USAGE))


def view(rec):
    out = {k: v for k, v in rec.items() if k != "_fake"}
    out.setdefault("zonename", rec.get("uuid"))
    if "zone_state" not in out:
        out["zone_state"] = {"stopped": "installed"}.get(
            rec.get("state"), rec.get("state"))
    return out


def cmd_get(u):
    rec = load_vm(u)
    sys.stdout.write(json.dumps(view(rec), indent=2, ensure_ascii=False)
                     + "\n")


def cmd_start(u, extra):
    for a in extra:
        key = a.split("=", 1)[0]
        if "=" not in a or key not in ("order", "disk", "cdrom"):
            raise Exit(2, "Invalid argument to start: %s\n%s" % (key, USAGE))
    with locked(u):
        rec = load_vm(u)
        if rec.get("state") == "running":
            return "VM %s is already 'running'" % u
        opts = fake_opts(rec)
        mode = opts.get("on_start", "run")
        if mode not in ON_START:
            raise Exit(1, "Unable to start VM %s: fake vmadm: bad "
                       "_fake.on_start %r (one of %s)"
                       % (u, mode, ", ".join(ON_START)))
        if mode == "start_fails":
            raise Exit(1, "Unable to start VM %s: %s" % (u, opts.get(
                "start_error",
                "zoneadm: zone '%s': call to zoneadmd failed" % u)))
        fake_secs(u, opts)               # fail before any change
        kill_run(u, "killed")            # a stale run, defensively
        rec["state"] = "running"
        save_vm(rec)
        script = (rec.get("internal_metadata") or {}).get("operator-script")
        if script and mode != "never_start":
            spawn(rec, mode, script, opts)
    return "Successfully started VM %s" % u


def fake_secs(u, opts):
    secs = {}
    for key, default in (("crash_after", DEFAULT_CRASH_AFTER),
                         ("script_timeout", DEFAULT_SCRIPT_TIMEOUT)):
        try:
            secs[key] = float(opts.get(key, default))
        except (TypeError, ValueError):
            raise Exit(1, "Unable to start VM %s: fake vmadm: _fake.%s is "
                       "not a number of seconds: %r" % (u, key, opts[key]))
    return secs


def spawn(rec, mode, script, opts):
    """Start the supervisor of the operator-script, detached (lock held)."""
    u = rec["uuid"]
    root = vm_root(rec)
    os.makedirs(root, exist_ok=True)
    spath = vm_file(u, ".operator-script")
    with open(spath, "w") as f:
        f.write(script)
    os.chmod(spath, 0o700)
    secs = fake_secs(u, opts)
    run = {"token": str(uuidlib.uuid4()), "pid": None, "mode": mode,
           "root": root, "script": spath, "log": vm_file(u, ".log"),
           "started": time.time(),
           "crash_after": secs["crash_after"],
           "script_timeout": secs["script_timeout"],
           "path": "%s:%s" % (FAKES_BIN, os.environ.get(
               "PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"))}
    write_json(vm_file(u, ".run"), run)
    logfd = os.open(run["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                    0o644)
    try:
        p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_supervise", u,
             run["token"]],
            stdin=subprocess.DEVNULL, stdout=logfd, stderr=logfd,
            close_fds=True, start_new_session=True, cwd="/")
    finally:
        os.close(logfd)
    run["pid"] = p.pid                 # = its process group (setsid)
    write_json(vm_file(u, ".run"), run)


def supervise(u, token):
    """The detached part of `vmadm start`: run the script, then halt."""
    def current_run():
        run = read_json(vm_file(u, ".run"))
        return run if isinstance(run, dict) and \
            run.get("token") == token else None

    with locked(u):
        run = current_run()
    if run is None:
        return 0
    deadline = time.time() + 10
    while run.get("pid") is None:        # written right after our spawn
        if time.time() > deadline:
            return 1
        time.sleep(0.01)
        with locked(u):
            run = current_run()
        if run is None:
            return 0
    with open(run["script"], "rb") as f:
        shebang = f.read(2) == b"#!"
    argv = [run["script"]] if shebang else ["/bin/sh", run["script"]]
    env = {"PATH": run["path"], "HOME": os.environ.get("HOME", "/root"),
           "LC_ALL": "C", "FAKE_VM_UUID": u, "FAKE_VM_ROOT": run["root"],
           "SMARTOS_FAKE_STATE": STATE}
    note("operator-script of VM %s starts (%s): %s in %s"
         % (u, run["mode"], " ".join(argv), run["root"]))
    try:
        p = subprocess.Popen(argv, cwd=run["root"], env=env,
                             stdin=subprocess.DEVNULL)
    except OSError as e:
        note("cannot run the operator-script: %s" % e)
        with locked(u):
            if current_run():
                halt(u, "exited", exit_status=127)
        return 1
    limit = run["script_timeout"]
    outcome = "exited"
    if run["mode"] == "crash" and run["crash_after"] < limit:
        limit, outcome = run["crash_after"], "crashed"
    try:
        rc = p.wait(timeout=limit)
        outcome = "exited"
    except subprocess.TimeoutExpired:
        rc = None
        if outcome != "crashed":
            outcome = "timeout"
    note("operator-script of VM %s: %s%s" % (
        u, outcome, "" if rc is None else " with status %d" % rc))
    with locked(u):
        if not current_run():            # stopped (and maybe restarted)
            return 0
        if outcome == "exited" and run["mode"] == "never_stop":
            finish_run(u, outcome, exit_status=rc)
            return 0
        halt(u, outcome, exit_status=rc)
    # the VM is down: nothing of it keeps running (this kills us too)
    sys.stdout.flush()
    sys.stderr.flush()
    os.killpg(os.getpgrp(), signal.SIGKILL)
    return 0


def halt(u, outcome, **extra):
    """State -> stopped and forget the run (lock held)."""
    rec = load_vm(u)
    rec["state"] = "stopped"
    save_vm(rec)
    finish_run(u, outcome, **extra)


def note(msg):
    sys.stderr.write("=== fake vmadm %s: %s\n"
                     % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        msg))
    sys.stderr.flush()


def cmd_stop(u, force):
    with locked(u):
        rec = load_vm(u)
        state = rec.get("state")
        if state != "running" and not force:
            return "VM %s is already not 'running' (currently: %s)" % (
                u, state)
        kill_run(u, "killed")
        rec["state"] = "stopped"
        save_vm(rec)
    return "Successfully completed stop for VM %s" % u


def read_payload(filename):
    if filename == "-":
        if sys.stdin.isatty():
            raise Exit(2, "Will not update from stdin when stdin is a "
                       "tty.\n" + USAGE)
        data = sys.stdin.read()
    else:
        try:
            with open(filename) as f:
                data = f.read()
        except FileNotFoundError:
            raise Exit(1, "File: %s does not exist." % filename)
        except OSError as e:
            raise Exit(1, "Error reading: %s %s" % (filename, e))
    try:
        return json.loads(data)
    except ValueError as e:
        raise Exit(1, "Invalid JSON payload: %s" % e)


def apply_update(rec, payload):
    if not isinstance(payload, dict):
        raise Exit(1, "Invalid JSON payload: not an object")
    for key, val in payload.items():
        m = re.match(r"^(set|remove)_(customer_metadata|internal_metadata|"
                     r"tags)$", key)
        if m:
            field = rec.get(m.group(2))
            if not isinstance(field, dict):
                field = rec[m.group(2)] = {}
            if m.group(1) == "set":
                if not isinstance(val, dict):
                    raise Exit(1, "Invalid value for %s: must be an object"
                               % key)
                field.update(val)
            else:
                if not isinstance(val, list):
                    raise Exit(1, "Invalid value for %s: must be an array"
                               % key)
                for k in val:
                    field.pop(k, None)
        elif key == "uuid":
            if val != rec["uuid"]:
                raise Exit(1, "Invalid update: uuid cannot be changed")
        elif val is None:
            rec.pop(key, None)
        else:
            rec[key] = val


def cmd_update(u, payload):
    with locked(u):
        rec = load_vm(u)
        apply_update(rec, payload)
        save_vm(rec)
    return "Successfully updated VM %s" % u


def flatten(rec, field):
    cur = rec
    for part in field.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and \
                int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def js_str(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def list_field_ok(f):
    return f in LIST_FIELDS or re.match(
        r"^(tags|customer_metadata|internal_metadata)\..+|"
        r"^(disks|nics)\.\d+\.\w+$", f) is not None


def cmd_list(opts, filters):
    order = opts.get("o", "uuid,type,ram,state,alias").split(",")
    sortby = opts.get("s", "ram,uuid").split(",")
    for f in order:
        if not list_field_ok(f):
            raise Exit(1, "invalid order field: %s" % f)
    for f in sortby:
        if not list_field_ok(f.lstrip("+-")):
            raise Exit(1, "invalid sort field: %s" % f)
    vms = []
    for rec in list_vms():
        m = view(rec)
        m["type"] = BRAND_TYPES.get(m.get("brand"), "OS")
        if m.get("brand") != "kvm":
            m["ram"] = m.get("max_physical_memory")
        ok = True
        for k, want in filters:
            have = flatten(m, k)
            have = "" if have is None else js_str(have)
            if want.startswith("~"):
                ok = re.search(want[1:], have) is not None
            else:
                ok = have == want
            if not ok:
                break
        if ok:
            vms.append(m)

    def cmp(a, b):
        for f in sortby:
            d = -1 if f.startswith("-") else 1
            f = f.lstrip("+-")
            av, bv = flatten(a, f), flatten(b, f)
            if av == bv:
                continue
            if av is None or (bv is not None and not av):
                return d
            if bv is None or not bv:
                return -d
            try:
                return d if av > bv else -d
            except TypeError:
                return d if js_str(av) > js_str(bv) else -d
        return 0

    vms.sort(key=functools.cmp_to_key(cmp))
    parsable = "p" in opts
    header = opts.get("header", not parsable)
    lines = []
    rows = [None] * header + vms
    for m in rows:
        vals = []
        for f in order:
            if m is None:
                v = LIST_HEADERS.get(f, f.upper())
            else:
                v = flatten(m, f)
                v = js_str(v) if v not in (None, "", 0, False) else (
                    "" if parsable else "-")
            vals.append(v if parsable else
                        "%-*s" % (LIST_FIELDS.get(f, 20), v))
        lines.append((":" if parsable else "  ").join(vals).rstrip())
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def main(argv):
    if argv[:1] == ["_supervise"] and len(argv) == 3:
        return supervise(argv[1], argv[2])
    logged = []

    def log(**extra):
        if not logged:
            logged.append(1)
            log_call(PROG, argv, **extra)

    try:
        if not argv:
            log()
            raise Exit(2, USAGE.rstrip("\n"))
        command = argv[0]
        if command in ("-h", "-?", "help"):
            log()
            sys.stdout.write(USAGE)
            return 0
        if command not in COMMANDS:
            log()
            raise Exit(2, 'Invalid command: "%s".\n%s' % (command, USAGE))
        if command not in SUPPORTED:
            log()
            raise Exit(1, "vmadm (fake): '%s' is not implemented" % command)
        args, opts = [], {}
        rest = argv[1:]
        while rest:
            a = rest.pop(0)
            if a in ("-v", "--verbose", "-d", "--debug"):
                continue
            if command in ("stop", "halt") and a in ("-F", "--force"):
                opts["F"] = True
            elif command == "update" and a in ("-f", "--file"):
                if not rest:
                    raise Exit(2, USAGE.rstrip("\n"))
                opts["f"] = rest.pop(0)
            elif command == "list" and a in ("-o", "--order", "-s",
                                             "--sortby"):
                if not rest:
                    raise Exit(2, USAGE.rstrip("\n"))
                opts[a.lstrip("-")[0]] = rest.pop(0)
            elif command == "list" and a in ("-p", "--parsable"):
                opts["p"] = True
            elif command == "list" and a in ("-H", "-h", "--header"):
                opts["header"] = a == "-h" or a == "--header"
            else:
                args.append(a)
        if command == "update":
            u = get_uuid(command, args)
            if args:
                payload = {}
                for a in args:
                    if "=" not in a:
                        raise Exit(2, "Bad arguments: unable to split %s\n%s"
                                   % (a, USAGE))
                    k, v = a.split("=", 1)
                    payload[k] = v
            else:
                try:
                    payload = read_payload(opts.get("f", "-"))
                except Exit:
                    log()
                    raise
            log(payload=payload)
            msg = cmd_update(u, payload)
        else:
            log()
            if command == "list":
                filters = []
                for a in args:
                    if "=" not in a:
                        raise Exit(2, "Bad arguments: unable to split %s\n%s"
                                   % (a, USAGE))
                    filters.append(tuple(a.split("=", 1)))
                cmd_list(opts, filters)
                return 0
            u = get_uuid(command, args)
            if command in ("get", "json"):
                if args:
                    raise Exit(2, USAGE.rstrip("\n"))
                cmd_get(u)
                return 0
            if command in ("start", "boot"):
                msg = cmd_start(u, args)
            else:
                if args:
                    raise Exit(2, USAGE.rstrip("\n"))
                msg = cmd_stop(u, opts.get("F", False))
        sys.stderr.write(msg + "\n")
        if SELF_KILL:
            sys.stderr.flush()
            os.killpg(SELF_KILL[0], signal.SIGKILL)
        return 0
    except Exit as e:
        log()
        if e.msg:
            sys.stderr.write(e.msg.rstrip("\n") + "\n")
        return e.code


if __name__ == "__main__":
    try:
        rc = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        rc = 0
    sys.exit(rc)
