"""Tests of the fake SmartOS commands in tests/world/fakes/bin."""

import json
import os
import subprocess

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
