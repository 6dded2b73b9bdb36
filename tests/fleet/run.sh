#!/usr/bin/env bash
# The fleet test: playbooks/fleet.yml (run as the collection playbook smartos.imgadm.fleet)
# against N simulated SmartOS hosts on this machine, each with its own zfs-fuse pool, imgadm
# database dir, lock dir and fake SmartOS state, all importing from one local image server.
#
#   bash tests/fleet/run.sh [N]        (as root; N default 10, or FLEET_HOSTS)
#
# 1. stages the collection (tests/bin/stage.sh, IMGADM_BUILD_ROOT honoured), takes the zfs lock
#    (IMGADM_ZFS_LOCK, default /var/tmp/smartos-imgadm-zfs.lock; empty = do not lock), creates
#    the pools PREFIX01..PREFIXNN (FLEET_PREFIX, default fleet; 128 MB sparse files) and
#    PREFIXbuild with tests/world/zpool.sh;
# 2. builds base -> child -> grandchild (incremental, gzip) with tests/world/build_image.py on
#    PREFIXbuild and serves them with tests/world/imgapi_server.py (own data dir, port 0);
# 3. run 1 (forks = N): every host imports the grandchild by name, state latest, with its origins;
#    checks the PLAY RECAP (no failure, every host changed), `zfs list` of every pool and the
#    records in every host's imgadm_dir/images, and the server's request log: N x 3 file GETs,
#    each image once per host (each host's source has its own channel, named as the host, which
#    the module sends with every request: the log says which host asked);
# 4. run 2: every host ok and changed=0, no file GET at all.
# Every command has a deadline (timeout(1)); the whole script FLEET_DEADLINE seconds (default
# 600) after it got the zfs lock (waiting for it: FLEET_LOCK_WAIT, 900). Pools, server and work
# dir (FLEET_WORK, default /var/tmp/smartos-imgadm-fleet/run.PID) go on exit, failure or
# signal; FLEET_KEEP=1 keeps the work dir (logs, inventory). Takes ~30 s for 10 hosts (2 cores).
# FLEET_POOL_SIZE (128M), FLEET_IMAGE_SIZES (MiB of data: 4,1,1), FLEET_PLAY_TIMEOUT (300 s a run).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
hosts=${1:-${FLEET_HOSTS:-10}}
prefix=${FLEET_PREFIX:-fleet}
deadline=${FLEET_DEADLINE:-600}
lock=${IMGADM_ZFS_LOCK-/var/tmp/smartos-imgadm-zfs.lock}
lock_wait=${FLEET_LOCK_WAIT:-900}
pool_size=${FLEET_POOL_SIZE:-128M}
sizes=${FLEET_IMAGE_SIZES:-4,1,1}
play_timeout=${FLEET_PLAY_TIMEOUT:-300}
export IMGADM_BUILD_ROOT=${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}
python=$top/.venv/bin/python
playbook_bin=$top/.venv/bin/ansible-playbook
world=$top/tests/world
fleet=$top/tests/fleet/fleet.py
work=${FLEET_WORK:-/var/tmp/smartos-imgadm-fleet/run.$$}
started=$SECONDS

# messages go to the script's own stderr (fd 7) even from a trap that runs while a command's
# output is redirected to a log
exec 7>&2
log() { echo "fleet: [$((SECONDS - started))s] $*" >&7; }
die() { log "FAIL: $*"; exit 1; }

case "$hosts" in ''|*[!0-9]*) die "N must be a number (got '$hosts')" ;; esac
{ [ "$hosts" -ge 1 ] && [ "$hosts" -le 99 ]; } || die "N must be 1..99"
case "$prefix" in ''|*[!a-z]*) die "FLEET_PREFIX must be lower-case letters" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (zfs)"
{ [ -x "$python" ] && [ -x "$playbook_bin" ]; } || die "no $python or $playbook_bin: run 'make bootstrap' first"

pools=()
for i in $(seq 1 "$hosts"); do pools+=("$(printf '%s%02d' "$prefix" "$i")"); done
build_pool=${prefix}build

# t SECONDS CMD...: CMD under timeout(1), in the background so that a signal reaches our trap at
# once; the lock fd 8 is closed for it (a daemon it starts must not hold the zfs lock)
child=""
t() {
    local limit=$1 rc=0
    shift
    timeout --kill-after=10 "$limit" "$@" 7>&- 8>&- &
    child=$!
    wait "$child" || rc=$?
    child=""
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then log "TIMEOUT: '$*' ran over ${limit}s and was killed"; fi
    return "$rc"
}

# tree PID: PID and all its descendants (ansible's workers are session leaders of their own,
# out of reach of a process-group kill)
tree() {
    local p
    echo "$1"
    for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$p"; done
}
# alive PID...: true while one of them runs (a zombie does not count)
alive() {
    # shellcheck disable=SC2086
    ps -o stat= -p "$(echo "$@" | tr ' ' ',')" 2>/dev/null | grep -qv '^Z'
}
# stop PID: TERM to PID's whole tree, KILL to what is left after 10 s. No `wait`: bash can block
# for good in a `wait` run by a trap that interrupted another `wait`
stop() {
    local pids i
    pids=$(tree "$1" | tr '\n' ' ')
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null
    for i in $(seq 1 100); do
        # shellcheck disable=SC2086
        alive $pids || return 0
        [ "$i" = 100 ] || sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
}

server_pid=""
watchdog=""
cleaning=""
cleanup() {
    local rc=$?
    [ -z "$cleaning" ] || return 0
    cleaning=1
    trap - INT TERM HUP
    set +e
    if [ -n "$child" ]; then log "stopping $(tree "$child" | wc -l) process(es) of the running command"; stop "$child"; fi
    if [ -n "$watchdog" ]; then stop "$watchdog"; fi
    if [ -n "$server_pid" ]; then stop "$server_pid"; fi
    if [ -n "${have_lock:-}" ]; then
        local p prc
        for p in "${pools[@]}" "$build_pool"; do
            prc=0
            timeout --kill-after=10 120 bash "$world/zpool.sh" down "$p" 7>&- 8>&- >/dev/null 2>&1 || prc=$?
            if [ "$prc" = 124 ] || [ "$prc" = 137 ]; then
                log "destroying pool $p ran over 120 s: zfs-fuse is wedged; left: ${pools[*]} $build_pool from $p on"
                log "recover (holding the zfs lock): pkill -9 -x zfs-fuse; pkill -9 umount; rm -f /var/run/zfs-fuse.pid;" \
                    "bash tests/world/world.sh up; then bash tests/world/zpool.sh down POOL for each"
                break
            elif [ "$prc" != 0 ]; then
                log "could not destroy pool $p (see: zpool list)"
            fi
        done
    fi
    if [ "${FLEET_KEEP:-0}" = 1 ]; then log "kept $work"; else
        rm -rf "$work"
        [ -n "${FLEET_WORK:-}" ] || rmdir "$(dirname "$work")" 2>/dev/null
    fi
    if [ "$rc" = 0 ]; then log "PASS ($hosts hosts, $((SECONDS - started)) s)"; else log "FAILED (exit $rc) after $((SECONDS - started)) s"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT HUP
trap 'log "terminated (deadline of ${deadline}s, or a signal)"; exit 143' TERM

mkdir -p "$work"
log "work dir $work"
collections=$(t 120 bash "$top/tests/bin/stage.sh" | tail -n 1)
[ -f "$collections/playbooks/fleet.yml" ] || die "staging did not give $collections/playbooks/fleet.yml"

# the zfs-fuse daemon is shared: one user of it at a time on this machine
if [ -n "$lock" ]; then
    exec 8>>"$lock"
    log "waiting for the zfs lock $lock (at most ${lock_wait}s)"
    flock -w "$lock_wait" 8 || die "the zfs lock $lock was held for ${lock_wait}s"
fi
have_lock=1
log "got the zfs lock after $((SECONDS - started)) s; deadline ${deadline}s from now"
started=$SECONDS
( trap 'kill "$s" 2>/dev/null; exit 0' TERM; sleep "$deadline" & s=$!; wait "$s" && kill -TERM "$$" ) 7>&- 8>&- &
watchdog=$!

# ---- pools: fresh ones (a leftover of a killed run is destroyed first)
for p in "$build_pool" "${pools[@]}"; do
    t 180 bash "$world/zpool.sh" down "$p" >/dev/null 2>&1 || die "cannot destroy the leftover pool $p"
    t 180 bash "$world/zpool.sh" up "$p" "$pool_size" >/dev/null || die "cannot create pool $p"
done
log "pools ${pools[0]}..${pools[-1]} and $build_pool ($pool_size each)"

# ---- the image chain and the server
mkdir -p "$work/server/images" "$work/build"
t 300 "$python" "$fleet" build --pool "$build_pool" --out-dir "$work/build" --server-data "$work/server" \
    --chain-file "$work/chain.json" --sizes "$sizes" --prefix "$prefix" --hosts "$hosts" \
    --channels-file "$work/channels.txt" >&2 || die "building the images failed"
# the server has its copies; the build pool is not needed any more (fewer mounts for zfs-fuse)
t 180 bash "$world/zpool.sh" down "$build_pool" >/dev/null 2>&1 || log "could not destroy $build_pool now (later)"

# one channel per host (its name), so that the request log says which host asked
"$python" "$world/imgapi_server.py" --data-dir "$work/server" --port 0 --port-file "$work/server.port" \
    --pid-file "$work/server.pid" --channels "$(cat "$work/channels.txt")" >"$work/server.log" 2>&1 7>&- 8>&- &
server_pid=$!
for _ in $(seq 1 100); do [ -s "$work/server.port" ] && break; sleep 0.1; done
[ -s "$work/server.port" ] || { cat "$work/server.log" >&2; die "the image server did not start"; }
url="http://127.0.0.1:$(cat "$work/server.port")"
t 10 curl -fsS -m 5 "$url/ping" >/dev/null || die "the image server at $url does not answer"
log "image server $url (pid $server_pid)"

t 30 "$python" "$fleet" inventory --hosts "$hosts" --prefix "$prefix" --work "$work" --url "$url" \
    --fakes "$world/fakes/bin" --python "$python" --chain-file "$work/chain.json" --out "$work/inventory.yml" >&2

# ---- the playbook: the collection playbook, from the staged collection
export ANSIBLE_COLLECTIONS_PATH=$IMGADM_BUILD_ROOT
export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_HOST_KEY_CHECKING=false ANSIBLE_RETRY_FILES_ENABLED=false
export ANSIBLE_LOCAL_TEMP=$work/ansible-local ANSIBLE_REMOTE_TEMP=$work/ansible-remote
# the fakes run `python3` from PATH: ours, not a slow shim
export PATH=$top/.venv/bin:$PATH
play() {
    local name=$1 rc=0 t0=$SECONDS
    t "$play_timeout" "$playbook_bin" -i "$work/inventory.yml" -f "$hosts" smartos.imgadm.fleet \
        >"$work/$name.log" 2>&1 || rc=$?
    log "$name: ansible-playbook exit $rc in $((SECONDS - t0)) s (log $work/$name.log)"
    # the per-host lines and the fleet line of the playbook's summary
    awk '/^TASK \[/ {show = ($0 ~ /^TASK \[(Show each host|Show the fleet)\]/)} show && /"msg":/ {sub(/^ *"msg": /, "  "); print}' \
        "$work/$name.log" >&2 || true
    if [ "$rc" != 0 ]; then tail -n 60 "$work/$name.log" >&2; die "$name: ansible-playbook failed"; fi
}

t 30 curl -fsS -m 10 -X DELETE "$url/__requests" >/dev/null
play run1
t 30 "$python" "$fleet" recap --log "$work/run1.log" --hosts "$hosts" --prefix "$prefix" --changed-all >&2
t 120 "$python" "$fleet" check-state --hosts "$hosts" --prefix "$prefix" --work "$work" --chain-file "$work/chain.json" >&2
t 30 "$python" "$fleet" check-requests --url "$url" --chain-file "$work/chain.json" --hosts "$hosts" \
    --expect-files $((hosts * 3)) --prefix "$prefix" --clear --json "$work/requests-run1.json" >&2
grep -q "fleet: $hosts host(s), $((hosts * 3)) image(s) imported" "$work/run1.log" || die "run1: no fleet summary of $((hosts * 3)) imports"

play run2
t 30 "$python" "$fleet" recap --log "$work/run2.log" --hosts "$hosts" --prefix "$prefix" --changed-zero >&2
t 120 "$python" "$fleet" check-state --hosts "$hosts" --prefix "$prefix" --work "$work" --chain-file "$work/chain.json" >&2
t 30 "$python" "$fleet" check-requests --url "$url" --chain-file "$work/chain.json" --hosts "$hosts" \
    --expect-files 0 --prefix "$prefix" --clear --json "$work/requests-run2.json" >&2
grep -q "fleet: $hosts host(s), 0 image(s) imported, 0 host(s) changed" "$work/run2.log" || die "run2: the fleet summary is not 0 imported, 0 changed"
