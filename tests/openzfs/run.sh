#!/usr/bin/env bash
# The real-host tier (`make test-openzfs`): the collection's integration targets against a
# Debian 12 + OpenZFS guest reached over SSH, as a SmartOS operator runs them.
#   1. bootstrap (virtualenvs), the controller's test world (image server on 127.0.0.1)
#   2. build the guest (cached by a stamp of its inputs; ~6.5 min from scratch), boot it
#   3. ansible-test integration with the guest as an SSH target: every target, plus the
#      `unsupported` openzfs_tier checks (zfs list -p, pyzfs, zvols, backend choice)
#   4. guest down (IMGADM_OPENZFS_KEEP=1 keeps it running), timings
# Extra arguments go to ansible-test (e.g. a target name). IMGADM_OPENZFS_BACKENDS="auto cli"
# runs the targets once per zfs_backend (var imgadm_zfs_backend); IMGADM_OPENZFS_KEEP=1 keeps the guest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top"
export IMGADM_BUILD_ROOT=${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}
export PATH="$IMGADM_BUILD_ROOT/bin:$PATH"
cache=${IMGADM_OPENZFS_CACHE:-/var/tmp/smartos-imgadm-openzfs}
run=$cache/run

now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.0f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }

t_start=$(now)
bash tests/bin/bootstrap.sh
bash tests/world/world.sh up

t=$(now)
gdir=$(bash "$here/build-guest.sh" --dir)
if [ -f "$gdir/.done" ]; then build_note="cached"; else build_note="built"; fi
bash "$here/build-guest.sh" >/dev/null
build_s=$(since "$t")
if [ "$build_note" = built ]; then build_note="built: $(tr '\n' ' ' < "$gdir/timings")"; fi

# shellcheck disable=SC2317  # called by the EXIT trap
guest_down() {
    if [ "${IMGADM_OPENZFS_KEEP:-0}" = 1 ]; then
        echo "openzfs: guest kept running (bash $here/guest.sh down stops it)"
    else
        bash "$here/guest.sh" down || true
    fi
}
trap guest_down EXIT

t=$(now)
bash "$here/guest.sh" up
up_s=$(since "$t")
boot_s=$(sed -n 's/^boot //p' "$run/timings")
port=$(cat "$run/ssh.port")

# A staged copy of the collection of its own, so that `make integration` (zfs-fuse, same
# machine) and this run do not share integration_config.yml.
coll=$(IMGADM_BUILD_ROOT="$cache/stage" bash tests/bin/stage.sh)
# ansible-test connects to SSH targets with tests/output/.tmp/id_rsa when it exists: the guest's key
mkdir -p "$coll/tests/output/.tmp"
install -m 600 "$run/id_ed25519" "$coll/tests/output/.tmp/id_rsa"
install -m 644 "$run/id_ed25519.pub" "$coll/tests/output/.tmp/id_rsa.pub"

# IMGADM_OPENZFS_BACKENDS: the zfs_backend values to run the targets with, one ansible-test
# run each (the targets read imgadm_zfs_backend); default: auto (libzfs_core on this guest)
backends=${IMGADM_OPENZFS_BACKENDS:-auto}
rc=0
starts=$run/target-starts
: > "$starts"
t=$(now)
for backend in $backends; do
    case "$backend" in auto|cli|libzfs_core) ;; *) echo "openzfs: unknown backend '$backend'" >&2; exit 2 ;; esac
    sed "s/^imgadm_zfs_backend: .*/imgadm_zfs_backend: $backend/" "$run/openzfs.yml" \
        > "$coll/tests/integration/integration_config.yml"
    echo "openzfs: === targets with zfs_backend=$backend ==="
    (
        cd "$coll"
        "$top/.venv/bin/ansible-test" integration --color no -v \
            --target "ssh:root@127.0.0.1:$port,python=3.11@/usr/bin/python3" \
            --allow-destructive --allow-root --allow-unsupported "$@" 2>&1
    ) | while IFS= read -r line; do
        printf '%s\n' "$line"
        case "$line" in
            "Running "*" integration test role") echo "$(now) ${line#Running } ($backend)" >> "$starts" ;;
        esac
    done || rc=$?
    echo "$(now) end" >> "$starts"
done
test_s=$(since "$t")

echo
echo "openzfs: guest build ${build_s} s ($build_note)"
echo "openzfs: guest up ${up_s} s (boot to SSH ${boot_s} s; then tunnel, pools, tools)"
echo "openzfs: integration targets ${test_s} s (exit $rc)"
# each target's time: from its start to the next line (the next target or the end of its run)
python3 - "$starts" <<'PY'
import sys
rows = [line.split(' ', 1) for line in open(sys.argv[1]).read().splitlines() if line]
for (t0, what), (t1, _) in zip(rows, rows[1:]):
    if what != 'end':
        name, backend = what.split()[0], what.rsplit(' ', 1)[-1]
        print('openzfs:   %-16s %-14s %4.0f s' % (name, backend, float(t1) - float(t0)))
PY
echo "openzfs: total $(since "$t_start") s"
exit "$rc"
