#!/usr/bin/env bash
# The real-host tier (`make test-openzfs`): the openzfs_tier integration target against a
# Debian 12 + OpenZFS guest reached over SSH, as a SmartOS operator runs the modules: only what
# zfs-fuse cannot show (zvols, libzfs_core, `zfs send -c -L -e` streams, `zfs list -p`, a wrong
# origin guid); `make integration` runs every other case on zfs-fuse.
#   1. bootstrap (virtualenvs), the controller's test world (image server on 127.0.0.1)
#   2. build the guest (cached by a stamp of its inputs; ~5-6.5 min from scratch), boot it
#   3. ansible-test integration with the guest as an SSH target: openzfs_tier (aliased
#      `unsupported`), its imgadm_image cases once per backend of IMGADM_OPENZFS_BACKENDS
#      (default "auto", i.e. libzfs_core; "auto cli" adds a pass with the CLI and checks
#      that both give the same results; the ZFS-layer probe compares the backends every run)
#   4. guest down (IMGADM_OPENZFS_KEEP=1 keeps it running), timings
# Extra arguments go to ansible-test instead of the target name (e.g. `imgadm_source` to try
# another target on the guest). Deadlines: IMGADM_OPENZFS_TARGETS_TIMEOUT (900 s) for
# ansible-test; the build, boot and SSH commands have their own (build-guest.sh, guest.sh).
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

# IMGADM_OPENZFS_BACKENDS: the zfs_backend values openzfs_tier runs its imgadm_image cases
# with, in one ansible-test run (var imgadm_openzfs_backends); it checks that they agree
backends=${IMGADM_OPENZFS_BACKENDS:-auto}
backends_yaml=""
for backend in $backends; do
    case "$backend" in auto|cli|libzfs_core) ;; *) echo "openzfs: unknown backend '$backend'" >&2; exit 2 ;; esac
    backends_yaml+="${backends_yaml:+, }$backend"
done
{ cat "$run/openzfs.yml"; echo "imgadm_openzfs_backends: [$backends_yaml]"; } > "$coll/tests/integration/integration_config.yml"
[ $# -gt 0 ] || set -- openzfs_tier
targets_timeout=${IMGADM_OPENZFS_TARGETS_TIMEOUT:-900}
rc=0
starts=$run/target-starts
: > "$starts"
t=$(now)
echo "openzfs: === ansible-test integration $* (backends: $backends; limit ${targets_timeout} s) ==="
(
    cd "$coll"
    # --foreground: in the terminal's process group, so that Ctrl-C reaches it; at the deadline
    # ansible-test gets TERM (KILL 30 s later), and what it started ends with the guest (or with
    # the step's process group under make test)
    timeout --foreground --kill-after=30 "$targets_timeout" "$top/.venv/bin/ansible-test" integration --color no -v \
        --target "ssh:root@127.0.0.1:$port,python=3.11@/usr/bin/python3" \
        --allow-destructive --allow-root --allow-unsupported "$@" < /dev/null 2>&1
) | while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
        "Running "*" integration test role") echo "$(now) ${line#Running } ($backends)" >> "$starts" ;;
    esac
done || rc=$?
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "openzfs: TIMEOUT: ansible-test ran over its limit of ${targets_timeout} s (IMGADM_OPENZFS_TARGETS_TIMEOUT) and was killed"
fi
echo "$(now) end" >> "$starts"
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
        name, backends = what.split()[0], what.split('(', 1)[-1].rstrip(')')
        print('openzfs:   %-16s %-14s %4.0f s' % (name, backends, float(t1) - float(t0)))
PY
echo "openzfs: total $(since "$t_start") s"
exit "$rc"
