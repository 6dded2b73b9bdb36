#!/usr/bin/env bash
# The test world that the integration tests and the demo share, on this machine:
#   a zfs-fuse pool, fakes of the SmartOS-only commands, and our IMGAPI server on 127.0.0.1.
#
#   world.sh up      idempotent: pool, fake state, image server (started if not running)
#   world.sh down    stop the image server and destroy the pool
#   world.sh env     print the world's settings as shell assignments
#
# Settings (environment): IMGADM_TEST_POOL (default zones), IMGADM_BUILD_POOL (default
# imgbuild), IMGADM_WORLD_DIR
# (default /var/tmp/smartos-imgadm-world), IMGADM_TEST_POOL_SIZE (default 4G).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pool=${IMGADM_TEST_POOL:-zones}
# images are built in a pool of their own: an incremental `zfs receive` finds its
# origin snapshot by guid anywhere in the target pool, so builds next to installs
# would satisfy origins that are not installed
build_pool=${IMGADM_BUILD_POOL:-imgbuild}
world=${IMGADM_WORLD_DIR:-/var/tmp/smartos-imgadm-world}
size=${IMGADM_TEST_POOL_SIZE:-4G}
top=$(cd "$here/../.." && pwd)
python=${IMGADM_WORLD_PYTHON:-$top/.venv/bin/python}
[ -x "$python" ] || python=python3

server_pid() {
    local pid
    [ -f "$world/server.pid" ] || return 1
    pid=$(cat "$world/server.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

write_env() {
    local url=$1
    cat > "$world/world.env" <<ENV
IMGADM_TEST_POOL=$pool
IMGADM_BUILD_POOL=$build_pool
IMGADM_TEST_URL=$url
IMGADM_WORLD_DIR=$world
IMGADM_SERVER_DATA=$world/server
SMARTOS_FAKE_STATE=$world/fake-state
IMGADM_FAKES_BIN=$here/fakes/bin
IMGADM_WORLD_TOOLS=$here
ENV
    cat > "$world/world.yml" <<YML
---
imgadm_test_pool: $pool
imgadm_build_pool: $build_pool
imgadm_test_url: $url
imgadm_world_dir: $world
imgadm_server_data: $world/server
imgadm_fake_state: $world/fake-state
imgadm_fakes_bin: $here/fakes/bin
imgadm_world_tools: $here
imgadm_world_python: $python
YML
}

up() {
    mkdir -p "$world/server/images" "$world/fake-state"
    bash "$here/zpool.sh" up "$pool" "$size"
    bash "$here/zpool.sh" up "$build_pool" "$size"
    if ! pid=$(server_pid); then
        rm -f "$world/server.port"
        # started without the caller's open files (see without_fds.sh)
        nohup "$here/without_fds.sh" "$python" "$here/imgapi_server.py" --data-dir "$world/server" --port 0 \
            --port-file "$world/server.port" --pid-file "$world/server.pid" \
            --channels 'dev*,staging,release' >"$world/server.log" 2>&1 &
        for _ in $(seq 1 100); do
            [ -s "$world/server.port" ] && break
            sleep 0.1
        done
        [ -s "$world/server.port" ] || { echo "world: image server did not start; see $world/server.log" >&2; cat "$world/server.log" >&2; exit 1; }
    fi
    port=$(cat "$world/server.port")
    url="http://127.0.0.1:$port"
    curl -fsS -m 10 "$url/ping" >/dev/null || { echo "world: image server at $url does not answer /ping" >&2; exit 1; }
    write_env "$url"
    echo "world: pool $pool (builds in $build_pool), image server $url, state in $world"
}

down() {
    if pid=$(server_pid); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$world/server.pid" "$world/server.port"
    bash "$here/zpool.sh" down "$pool" || true
    bash "$here/zpool.sh" down "$build_pool" || true
    # the demo's second simulated host (demo/run.sh)
    if bash "$here/zpool.sh" status "${IMGADM_DEMO_POOL2:-demohost2}" 2>/dev/null; then
        bash "$here/zpool.sh" down "${IMGADM_DEMO_POOL2:-demohost2}" || true
    fi
    # the demo's hosts' databases, locks and image files (demo/run.sh), which belong to the pools
    rm -rf "$world/demo"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    env) cat "$world/world.env" ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
