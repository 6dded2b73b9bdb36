"""Fixtures for the test-world tests (server, pools)."""

import os
import sys

import pytest

WORLD = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if WORLD not in sys.path:
    sys.path.insert(0, WORLD)

import build_image  # noqa: E402
import imgapi_server  # noqa: E402

from world_helpers import zpool_sh  # noqa: E402

BUILD_POOL = os.environ.get("IMGADM_WORLD_BUILD_POOL", "worldtest")
RECV_POOL = os.environ.get("IMGADM_WORLD_RECV_POOL", "worldtestrx")


@pytest.fixture
def make_server(tmp_path):
    """make_server(**start_server options) -> running ServerHandle; all
    are stopped at teardown. `data_dir=` picks the storage dir."""
    servers = []

    def make(**opts):
        data_dir = opts.pop("data_dir", None) or \
            str(tmp_path / ("srv%d" % len(servers)))
        srv = imgapi_server.start_server(data_dir, **opts)
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def pools():
    """(build pool, receive pool), created with zpool.sh. Fails loudly if
    ZFS cannot be set up; destroys both pools afterwards."""
    try:
        for pool in (BUILD_POOL, RECV_POOL):
            zpool_sh("down", pool)      # start from empty pools
            zpool_sh("up", pool, "512M")
    except (RuntimeError, OSError) as e:
        pytest.fail("cannot set up ZFS test pools: %s" % e, pytrace=False)
    yield BUILD_POOL, RECV_POOL
    errors = []
    try:
        build_image.cleanup_builds(BUILD_POOL, force=True)
    except Exception as e:   # still take the pools down
        errors.append(e)
    for pool in (RECV_POOL, BUILD_POOL):
        p = zpool_sh("down", pool, check=False)
        if p.returncode != 0:
            errors.append(p.stderr)
    assert not errors, errors
