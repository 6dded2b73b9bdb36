"""Tests of the fake SmartOS commands in tests/world/fakes/bin."""

import json
import os
import subprocess
import time

import pytest

from world_helpers import WORLD

BIN = os.path.join(WORLD, "fakes", "bin")
Z1 = "4b9ad0c1-3f3c-4bd0-9bd5-1f0a4b2a0b01"
Z2 = "9e1b4f3c-1e4c-4e5b-8c31-3b1c9a7f2d11"


def run(state, *argv):
    env = dict(os.environ, SMARTOS_FAKE_STATE=str(state))
    return subprocess.run([os.path.join(BIN, argv[0])] + list(argv[1:]),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, check=False)


def test_sysinfo_defaults_and_override(tmp_path):
    p = run(tmp_path, "sysinfo")
    assert p.returncode == 0
    info = json.loads(p.stdout)
    assert info["Live Image"] == "20260101T000000Z"
    assert info["System Type"] == "SunOS"
    assert info["SDC Version"] == "7.0"
    assert len(info["UUID"]) == 36 and info["Hostname"]
    assert "Zpool" in info
    (tmp_path / "sysinfo.json").write_text(json.dumps(
        {"Live Image": "20180101T000000Z", "Zpool": None, "Extra": 1}))
    info = json.loads(run(tmp_path, "sysinfo").stdout)
    assert info["Live Image"] == "20180101T000000Z"
    assert "Zpool" not in info and info["Extra"] == 1
    p = run(tmp_path, "sysinfo", "-p")
    assert "Live_Image='20180101T000000Z'" in p.stdout.splitlines()
    assert run(tmp_path, "sysinfo", "--bogus").returncode == 1
    calls = [json.loads(ln) for ln in
             (tmp_path / "calls.log").read_text().splitlines()]
    assert [c["argv"] for c in calls][-2:] == [["-p"], ["--bogus"]]


def test_zoneadm_list(tmp_path):
    p = run(tmp_path, "zoneadm", "list", "-pc")
    assert p.returncode == 0
    assert p.stdout == "0:global:running:/::liveimg:shared\n"
    (tmp_path / "zones.json").write_text(json.dumps([
        {"uuid": Z1, "state": "running", "brand": "lx"},
        {"uuid": Z2, "zonename": "web", "zonepath": "/zones/web"}]))
    lines = run(tmp_path, "zoneadm", "list", "-pc").stdout.splitlines()
    assert lines == [
        "0:global:running:/::liveimg:shared",
        "1:%s:running:/zones/%s:%s:lx:excl" % (Z1, Z1, Z1),
        "-:web:installed:/zones/web:%s:joyent:excl" % Z2,
    ]
    assert run(tmp_path, "zoneadm", "list", "-c", "-p").stdout \
        .splitlines() == lines
    assert len(run(tmp_path, "zoneadm", "list", "-p").stdout
               .splitlines()) == 2               # running only
    assert run(tmp_path, "zoneadm", "list").stdout.split() == ["global", Z1]


@pytest.mark.parametrize("argv", [[], ["boot"], ["list", "-x"],
                                  ["-z", "web", "halt"], ["list", "foo"]])
def test_zoneadm_usage_errors(tmp_path, argv):
    p = run(tmp_path, "zoneadm", *argv)
    assert p.returncode == 1
    assert "usage:" in p.stderr and p.stdout == ""


# --- fake vmadm, mdata-get, mdata-put

VM1 = "2f7c1d2e-6a1b-4c3d-9e8f-0a1b2c3d4e51"
VM2 = "2f7c1d2e-6a1b-4c3d-9e8f-0a1b2c3d4e52"


def wait_for(pred, timeout=10.0, what="condition"):
    """Poll `pred` until it returns a truthy value (returned) or fail."""
    deadline = time.time() + timeout
    while True:
        val = pred()
        if val:
            return val
        if time.time() > deadline:
            pytest.fail("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.02)


def run_in(state, argv, input=None, env=None, timeout=20):
    e = dict(os.environ, SMARTOS_FAKE_STATE=str(state))
    e.update(env or {})
    return subprocess.run([os.path.join(BIN, argv[0])] + list(argv[1:]),
                          input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          env=e, check=False, timeout=timeout)


@pytest.fixture
def vms(tmp_path):
    """make(uuid, script=None, **fields) writes a VM record (stopped, brand
    joyent, zonepath a fresh temp dir) and returns a helper for it; every
    VM is stopped with -F at teardown so no script outlives the test."""
    state = tmp_path / "state"
    (state / "vms").mkdir(parents=True)
    made = []

    class VM(object):
        def __init__(self, u):
            self.uuid = u
            self.state_dir = state

        def vmadm(self, *argv, **kw):
            return run_in(state, ("vmadm",) + argv, **kw)

        def mdata(self, tool, *argv, **kw):
            return run_in(state, (tool,) + argv,
                          env={"FAKE_VM_UUID": self.uuid}, **kw)

        def get(self):
            p = self.vmadm("get", self.uuid)
            assert p.returncode == 0, p.stderr
            return json.loads(p.stdout)

        def md(self, key=None):
            m = self.get().get("customer_metadata", {})
            return m if key is None else m.get(key)

        def last_run(self):
            path = state / "vms" / (self.uuid + ".last-run.json")
            return json.loads(path.read_text()) if path.exists() else None

        def wait_state(self, want, timeout=10):
            wait_for(lambda: self.get()["state"] == want, timeout,
                     "VM state %s" % want)

        def log(self):
            path = state / "vms" / (self.uuid + ".log")
            return path.read_text() if path.exists() else ""

    def make(u=VM1, script=None, **fields):
        root = tmp_path / ("root-" + u[-4:])
        root.mkdir()
        rec = {"uuid": u, "brand": "joyent", "state": "stopped",
               "zpool": "zones", "zfs_filesystem": "zones/" + u,
               "zonepath": str(root), "image_uuid": Z1, "quota": 10,
               "customer_metadata": {}, "internal_metadata": {}}
        rec.update(fields)
        if script is not None:
            rec["internal_metadata"] = dict(rec["internal_metadata"])
            rec["internal_metadata"]["operator-script"] = script
        (state / "vms" / (u + ".json")).write_text(json.dumps(rec))
        made.append(u)
        vm = VM(u)
        vm.root = root
        return vm

    make.state = state
    yield make
    for u in made:
        run_in(state, ("vmadm", "stop", u, "-F"))


def proc_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return True
    return st[st.rfind(")") + 2] in "ZX"


def test_vmadm_get_unknown_and_usage(vms):
    vm = vms(_fake={"on_start": "never_start"}, customer_metadata={"a": "b"})
    rec = vm.get()
    assert rec["uuid"] == VM1 and rec["state"] == "stopped"
    assert rec["customer_metadata"] == {"a": "b"}
    assert "_fake" not in rec
    assert rec["zonename"] == VM1 and rec["zone_state"] == "installed"
    p = vm.vmadm("get", VM2)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == "zoneadm: %s: No such zone configured\n" % VM2
    for argv in (["get"], ["get", "nope"], ["bogus"], []):
        p = vm.vmadm(*argv)
        assert p.returncode == 2 and "Usage: vmadm" in p.stderr, argv
    assert vm.vmadm("create").returncode == 1      # known, not faked
    for argv in (["update", VM2], ["start", VM2], ["stop", VM2, "-F"]):
        p = vm.vmadm(*argv, input="{}")
        assert p.returncode == 1 and "No such zone" in p.stderr, argv
    calls = [json.loads(ln) for ln in
             (vms.state / "calls.log").read_text().splitlines()]
    assert calls[0] == {"cmd": "vmadm", "argv": ["get", VM1],
                        "time": calls[0]["time"]}
    assert [c["argv"][0] for c in calls[-3:]] == ["update", "start", "stop"]
    assert calls[-3]["payload"] == {}


def test_vmadm_update(vms, tmp_path):
    vm = vms(customer_metadata={"keep": "1", "prepare-image:state": "x",
                                "prepare-image:error": "y"},
             internal_metadata={"i": "1"})
    p = vm.vmadm("update", VM1, input=json.dumps(
        {"set_internal_metadata": {"operator-script": "echo hi"},
         "remove_customer_metadata": ["prepare-image:state",
                                      "prepare-image:error", "absent"],
         "set_customer_metadata": {"new": "v"},
         "quota": 0, "image_uuid": None}))
    assert p.returncode == 0, p.stderr
    assert p.stderr == "Successfully updated VM %s\n" % VM1
    rec = vm.get()
    assert rec["customer_metadata"] == {"keep": "1", "new": "v"}
    assert rec["internal_metadata"] == {"i": "1", "operator-script": "echo hi"}
    assert rec["quota"] == 0 and "image_uuid" not in rec
    f = tmp_path / "upd.json"
    f.write_text('{"remove_internal_metadata": ["operator-script"]}')
    assert vm.vmadm("update", VM1, "-f", str(f)).returncode == 0
    assert vm.get()["internal_metadata"] == {"i": "1"}
    assert vm.vmadm("update", VM1, "alias=web", "quota=20").returncode == 0
    rec = vm.get()
    assert rec["alias"] == "web" and rec["quota"] == "20"   # strings, as vmadm
    p = vm.vmadm("update", VM1, input="{not json")
    assert p.returncode == 1 and p.stderr.startswith("Invalid JSON payload")
    p = vm.vmadm("update", VM1, "-f", str(tmp_path / "nope.json"))
    assert p.returncode == 1 and "does not exist" in p.stderr
    p = vm.vmadm("update", VM1, input='{"uuid": "%s"}' % VM2)
    assert p.returncode == 1
    # a test can flip the _fake switches with update too; get hides them
    assert vm.vmadm("update", VM1, input='{"_fake": {"on_start": '
                    '"start_fails"}}').returncode == 0
    assert "_fake" not in vm.get()
    p = vm.vmadm("start", VM1)
    assert p.returncode == 1 and p.stderr.startswith(
        "Unable to start VM %s: " % VM1)
    assert vm.get()["state"] == "stopped"
    for bad in ({"on_start": "bogus"}, {"crash_after": "soon"}):
        assert vm.vmadm("update", VM1, input=json.dumps(
            {"_fake": bad})).returncode == 0
        p = vm.vmadm("start", VM1)
        assert p.returncode == 1 and "fake vmadm" in p.stderr, bad
        assert vm.get()["state"] == "stopped"


PREPARE = """#!/bin/bash
set -e
echo "cwd=$(pwd) root=$FAKE_VM_ROOT uuid=$FAKE_VM_UUID"
echo "$PATH" > path.txt
mdata-get sdc:operator-script > script-copy.txt
mdata-put prepare-image:state running
while [ ! -e go ]; do sleep 0.02; done
%s
echo done > marker
"""


def test_vmadm_start_runs_prepare_script_detached(vms):
    vm = vms(script=PREPARE % "mdata-put prepare-image:state success")
    t0 = time.time()
    p = vm.vmadm("start", VM1, timeout=10)   # the script blocks: detached
    assert p.returncode == 0, p.stderr
    assert p.stderr == "Successfully started VM %s\n" % VM1
    assert time.time() - t0 < 5
    assert vm.get()["state"] == "running"
    wait_for(lambda: vm.md("prepare-image:state") == "running",
             what="prepare-image:state running")
    p = vm.vmadm("start", VM1)
    assert p.returncode == 0
    assert p.stderr == "VM %s is already 'running'\n" % VM1
    (vm.root / "go").write_text("")
    wait_for(lambda: vm.md("prepare-image:state") == "success",
             what="prepare-image:state success")
    vm.wait_state("stopped")
    assert vm.last_run()["outcome"] == "exited"
    assert vm.last_run()["exit_status"] == 0
    assert (vm.root / "marker").read_text() == "done\n"
    assert (vm.root / "script-copy.txt").read_text() == \
        PREPARE % "mdata-put prepare-image:state success" + "\n"
    assert (vm.root / "path.txt").read_text().startswith(BIN + ":")
    assert "cwd=%s root=%s uuid=%s" % (vm.root, vm.root, VM1) in vm.log()
    calls = [json.loads(ln) for ln in
             (vms.state / "calls.log").read_text().splitlines()]
    puts = [c["argv"] for c in calls if c["cmd"] == "mdata-put"]
    assert puts == [["prepare-image:state", "running"],
                    ["prepare-image:state", "success"]]
    assert all(c["vm"] == VM1 for c in calls if c["cmd"].startswith("mdata"))
    p = vm.vmadm("stop", VM1)
    assert p.returncode == 0
    assert p.stderr == ("VM %s is already not 'running' (currently: "
                        "stopped)\n" % VM1)


def test_vmadm_prepare_script_error(vms):
    vm = vms(script="mdata-put prepare-image:state running\n"
             "mdata-put prepare-image:state error\n"
             "mdata-put prepare-image:error 'boom'\nexit 3\n")
    assert vm.vmadm("start", VM1).returncode == 0
    vm.wait_state("stopped")
    md = vm.md()
    assert md["prepare-image:state"] == "error"
    assert md["prepare-image:error"] == "boom"
    assert vm.last_run()["exit_status"] == 3


def test_vmadm_never_start(vms):
    vm = vms(script="mdata-put prepare-image:state running\n",
             _fake={"on_start": "never_start"})
    assert vm.vmadm("start", VM1).returncode == 0
    assert vm.get()["state"] == "running"
    time.sleep(0.5)                  # what a started script would take
    assert vm.md() == {} and vm.last_run() is None
    assert vm.get()["state"] == "running"
    p = vm.vmadm("stop", VM1)
    assert p.returncode == 0
    assert p.stderr == "Successfully completed stop for VM %s\n" % VM1
    assert vm.get()["state"] == "stopped"


def test_vmadm_never_stop(vms):
    vm = vms(script="mdata-put prepare-image:state running\n"
             "mdata-put prepare-image:state success\n",
             _fake={"on_start": "never_stop"})
    assert vm.vmadm("start", VM1).returncode == 0
    wait_for(vm.last_run, what="the script to end")
    assert vm.last_run()["outcome"] == "exited"
    assert vm.md("prepare-image:state") == "success"
    assert vm.get()["state"] == "running"
    assert vm.vmadm("stop", VM1).returncode == 0
    assert vm.get()["state"] == "stopped"


def test_vmadm_crash(vms):
    vm = vms(script="echo $$ > pid\nmdata-put prepare-image:state running\n"
             "while :; do sleep 0.05; done\n",
             _fake={"on_start": "crash", "crash_after": 1})
    assert vm.vmadm("start", VM1).returncode == 0
    vm.wait_state("stopped")
    assert vm.md("prepare-image:state") == "running"
    assert vm.last_run()["outcome"] == "crashed"
    pid = int((vm.root / "pid").read_text())
    wait_for(lambda: proc_gone(pid), 5, "the script to be killed")
    assert not (vms.state / "vms" / (VM1 + ".run")).exists()


def test_vmadm_stop_force_kills_hanging_script(vms):
    vm = vms(script="echo $$ > pid\nmdata-put prepare-image:state running\n"
             "sleep 600\n")
    assert vm.vmadm("start", VM1).returncode == 0
    wait_for(lambda: vm.md("prepare-image:state") == "running",
             what="the script to start")
    pid = int((vm.root / "pid").read_text())
    assert not proc_gone(pid)
    t0 = time.time()
    p = vm.vmadm("stop", VM1, "-F")
    assert p.returncode == 0, p.stderr
    assert time.time() - t0 < 5
    assert vm.get()["state"] == "stopped"
    wait_for(lambda: proc_gone(pid), 5, "the script to be killed")
    assert vm.last_run()["outcome"] == "killed"
    # -F on a stopped VM is fine too; a restart runs the script again
    assert vm.vmadm("stop", VM1, "-F").returncode == 0
    assert vm.vmadm("update", VM1, input='{"remove_customer_metadata": '
                    '["prepare-image:state"]}').returncode == 0
    assert vm.vmadm("start", VM1).returncode == 0
    wait_for(lambda: vm.md("prepare-image:state") == "running",
             what="the script to run again")
    assert vm.vmadm("stop", VM1).returncode == 0


def test_vmadm_stop_from_the_script_halts_the_vm(vms):
    vm = vms(script="mdata-put prepare-image:state success\n"
             "vmadm stop $FAKE_VM_UUID\necho after > after\n")
    assert vm.vmadm("start", VM1).returncode == 0
    vm.wait_state("stopped")
    wait_for(vm.last_run, what="the run to end")
    assert vm.last_run()["outcome"] == "killed"
    assert not (vm.root / "after").exists()
    assert "Successfully completed stop" in vm.log()


@pytest.mark.parametrize("cmd", ["shutdown -h now", "halt", "poweroff"])
def test_guest_shutdown_commands_halt_the_fake_vm_not_the_host(vms, cmd):
    vm = vms(script="mdata-put prepare-image:state success\n%s\necho after > after\n" % cmd)
    assert vm.vmadm("start", VM1).returncode == 0
    vm.wait_state("stopped")
    wait_for(vm.last_run, what="the run to end")
    assert not (vm.root / "after").exists()
    # outside a fake VM they refuse
    p = subprocess.run([os.path.join(BIN, cmd.split()[0])], capture_output=True, text=True, timeout=20, check=False,
                       env=dict(os.environ, FAKE_VM_UUID=""))
    assert p.returncode == 1 and "refusing" in p.stderr


def test_vmadm_bhyve_without_zonepath_dir_runs_in_work_dir(vms):
    vm = vms(script="pwd > $FAKE_VM_ROOT/where\n", brand="bhyve",
             zonepath="/nonexistent/zones/" + VM1, bootrom="uefi",
             disks=[{"zfs_filesystem": "zones/%s/disk0" % VM1,
                     "image_uuid": Z1, "zpool": "zones", "boot": True}])
    assert vm.vmadm("start", VM1).returncode == 0
    vm.wait_state("stopped")
    work = vms.state / "vm-work" / VM1
    assert (work / "where").read_text() == "%s\n" % work
    assert vm.get()["disks"][0]["image_uuid"] == Z1


def test_mdata_get_put(vms):
    vm = vms(script="echo hi", customer_metadata={"k": "v"},
             internal_metadata={"other": "x"})
    p = vm.mdata("mdata-get", "k")
    assert (p.returncode, p.stdout) == (0, "v\n")
    p = vm.mdata("mdata-get", "nope")
    assert p.returncode == 1 and p.stderr == "No metadata for 'nope'\n"
    assert vm.mdata("mdata-get", "sdc:uuid").stdout == VM1 + "\n"
    assert vm.mdata("mdata-get", "sdc:operator-script").stdout == "echo hi\n"
    assert vm.mdata("mdata-get", "sdc:other").returncode == 1
    assert vm.mdata("mdata-put", "a", "1 2").returncode == 0
    assert vm.mdata("mdata-put", "b", input="multi\nline\n").returncode == 0
    assert vm.md() == {"k": "v", "a": "1 2", "b": "multi\nline\n"}
    assert vm.mdata("mdata-put", "sdc:uuid", "x").returncode == 2
    assert vm.mdata("mdata-get").returncode == 2
    assert vm.mdata("mdata-put", "a", "b", "c").returncode == 2
    p = run_in(vms.state, ("mdata-get", "k"))          # no FAKE_VM_UUID
    assert p.returncode == 2 and "FAKE_VM_UUID" in p.stderr
    p = run_in(vms.state, ("mdata-get", "k"), env={"FAKE_VM_UUID": VM2})
    assert p.returncode == 2


def test_concurrent_mdata_put_and_vmadm_update_lose_nothing(vms):
    n = 12
    vm = vms(script="for i in $(seq %d); do mdata-put s$i $i; done\n" % n,
             _fake={"on_start": "never_stop"})
    env = dict(os.environ, SMARTOS_FAKE_STATE=str(vms.state),
               FAKE_VM_UUID=VM1)
    assert vm.vmadm("start", VM1).returncode == 0
    procs = []
    for i in range(n):
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "mdata-put"), "p%d" % i, str(i)], env=env))
        u = subprocess.Popen([os.path.join(BIN, "vmadm"), "update", VM1],
                             stdin=subprocess.PIPE, env=env,
                             stderr=subprocess.DEVNULL,
                             universal_newlines=True)
        u.stdin.write(json.dumps({"set_customer_metadata": {"u%d" % i:
                                                            str(i)}}))
        u.stdin.close()
        procs.append(u)
    assert [p.wait(timeout=30) for p in procs] == [0] * len(procs)
    wait_for(vm.last_run, what="the script to end")
    md = vm.md()
    want = {}
    for i in range(n):
        want.update({"p%d" % i: str(i), "u%d" % i: str(i),
                     "s%d" % (i + 1): str(i + 1)})
    assert md == want


def test_zoneadm_lists_vms(vms):
    vm = vms(_fake={"on_start": "never_start"}, brand="lx")
    vms(VM2, brand="bhyve", zonepath="/zones/" + VM2)
    (vms.state / "zones.json").write_text(json.dumps([
        {"uuid": Z1, "state": "running"}, {"uuid": VM2, "zonepath": "/x"}]))
    lines = run_in(vms.state, ("zoneadm", "list", "-pc")).stdout.splitlines()
    assert lines == [
        "0:global:running:/::liveimg:shared",
        "1:%s:running:/zones/%s:%s:joyent:excl" % (Z1, Z1, Z1),
        "-:%s:installed:/x:%s:joyent:excl" % (VM2, VM2),   # zones.json wins
        "-:%s:installed:%s:%s:lx:excl" % (VM1, vm.root, VM1),
    ]
    assert vm.vmadm("start", VM1).returncode == 0
    p = run_in(vms.state, ("zoneadm", "-z", VM1, "list", "-p"))
    assert p.stdout == "2:%s:running:%s:%s:lx:excl\n" % (VM1, vm.root, VM1)
    p = vm.vmadm("list", "-p", "-o", "uuid,state")
    assert p.stdout.splitlines() == ["%s:running" % VM1, "%s:stopped" % VM2]
    p = vm.vmadm("list", "-H", "-o", "uuid,brand", "state=stopped")
    assert p.stdout.split() == [VM2, "bhyve"]
    p = vm.vmadm("list", "-o", "uuid,type", "-s", "-uuid")
    assert p.stdout.split() == ["UUID", "TYPE", VM2, "BHYV", VM1, "LX"]
