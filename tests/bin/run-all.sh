#!/usr/bin/env bash
# Everything `make test` runs, in order; each step's output goes to the console.
# Ends with one summary line "steps: N passed, N failed" counting the steps.
#
# Nothing here can hang: every step runs under timeout(1) in a process group of its own
# (stdin /dev/null); a step over its limit gets TERM, its whole group KILL 30 s later, is
# reported as "TIMED OUT after N s (limit VAR=N)", counts as failed, and the next step runs.
# Limits in seconds, each overridable from the environment:
#   IMGADM_TIMEOUT_BOOTSTRAP    1200  Debian packages and virtualenvs (before the steps)
#   IMGADM_TIMEOUT_WORLD_UP      300  tests/world/world.sh up (before the steps)
#   IMGADM_TIMEOUT_SANITY        900  each of the two sanity steps
#   IMGADM_TIMEOUT_UNITS         600
#   IMGADM_TIMEOUT_WORLD_TESTS   600
#   IMGADM_TIMEOUT_INTEGRATION  1200
#   IMGADM_TIMEOUT_FLEET         600  the fleet playbook on 10 simulated hosts (tests/fleet/run.sh)
#   IMGADM_TIMEOUT_DOCS          900  make docs: ansible-doc, antsibull-docs lint, examples, the HTML site
#   IMGADM_TIMEOUT_PACKAGE      1500  make package: the artefact, galaxy-importer, install, demo, ansible-lint
#   IMGADM_TIMEOUT_OPENZFS      1500  the real-host tier, guest build included
#   IMGADM_TIMEOUT_TOTAL        4800  the whole run: a step gets at most what is left of it
#                                     (CI stops a job at 90 min; the summary must come first)
#   IMGADM_TIMEOUT_KILL_AFTER     30  from TERM to KILL
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
export IMGADM_BUILD_ROOT=${IMGADM_BUILD_ROOT:-/var/tmp/smartos-imgadm-build}

lim_bootstrap=${IMGADM_TIMEOUT_BOOTSTRAP:-1200}
lim_world_up=${IMGADM_TIMEOUT_WORLD_UP:-300}
lim_sanity=${IMGADM_TIMEOUT_SANITY:-900}
lim_units=${IMGADM_TIMEOUT_UNITS:-600}
lim_world_tests=${IMGADM_TIMEOUT_WORLD_TESTS:-600}
lim_integration=${IMGADM_TIMEOUT_INTEGRATION:-1200}
lim_fleet=${IMGADM_TIMEOUT_FLEET:-600}
lim_docs=${IMGADM_TIMEOUT_DOCS:-900}
lim_package=${IMGADM_TIMEOUT_PACKAGE:-1500}
lim_openzfs=${IMGADM_TIMEOUT_OPENZFS:-1500}
lim_total=${IMGADM_TIMEOUT_TOTAL:-4800}
kill_after=${IMGADM_TIMEOUT_KILL_AFTER:-30}
for v in lim_bootstrap lim_world_up lim_sanity lim_units lim_world_tests lim_integration lim_fleet lim_docs lim_package lim_openzfs lim_total kill_after; do
    case "${!v}" in ''|*[!0-9]*) echo "run-all: ${v#lim_} limit '${!v}' is not a number of seconds" >&2; exit 2 ;; esac
done
# what the summary and the world's teardown need after the last step
reserve=$((kill_after + 60))
end_of_run=$((SECONDS + lim_total))

passed=0; failed=0; failures=(); not_run=""
current=""      # pid of the timeout(1) running the current step, and id of the step's process group

# sweep_group PGID: TERM what is left of a step's process group, KILL it kill_after s later
# (timeout(1) KILLs the group only while the step's own command still runs)
sweep_group() {
    local i
    pgrep -g "$1" >/dev/null 2>&1 || return 0
    echo "run-all: stopping what is left of the step: $(pgrep -g "$1" -d ' ' -l 2>/dev/null)"
    kill -TERM -- "-$1" 2>/dev/null
    for ((i = 0; i < kill_after; i++)); do
        pgrep -g "$1" >/dev/null 2>&1 || return 0
        sleep 1
    done
    kill -KILL -- "-$1" 2>/dev/null || true
}

# limited SECONDS CMD...: CMD under timeout(1), which puts it in a process group of its own and
# signals that whole group (TERM, then KILL after kill_after s). Returns CMD's status, or 124
# when the limit was reached.
limited() {
    local secs=$1 t0=$SECONDS rc=0 pgid
    shift
    timeout --kill-after="$kill_after" "$secs" "$@" < /dev/null &
    current=$!
    pgid=$current
    wait "$current" || rc=$?
    current=""
    # 124: TERMed at the limit; 137: it had to be KILLed (or died of KILL: then before the limit)
    if [ "$rc" = 124 ] || { [ "$rc" = 137 ] && [ $((SECONDS - t0)) -ge "$secs" ]; }; then
        sweep_group "$pgid"
        return 124
    fi
    return "$rc"
}

# Ctrl-C or a TERM of this script reaches the step too (timeout(1) passes it on to its group)
on_signal() {
    trap - INT TERM HUP
    echo; echo "run-all: interrupted ($1); stopping the current step"
    if [ -n "$current" ]; then
        kill -s "$1" "$current" 2>/dev/null
        wait "$current" 2>/dev/null
        sweep_group "$current"
    fi
    stop_guest
    exit 130
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# the OpenZFS guest's QEMU daemonizes (it is out of the step's process group): a step that ran
# over or was interrupted has it stopped here, by the pids guest.sh recorded
stop_guest() {
    if [ "${IMGADM_OPENZFS_KEEP:-0}" != 1 ] && [ -e "${IMGADM_OPENZFS_CACHE:-/var/tmp/smartos-imgadm-openzfs}/run/qemu.pid" ]; then
        timeout --kill-after=10 120 bash tests/openzfs/guest.sh down < /dev/null || true
    fi
}

# step NAME LIMIT-VARIABLE LIMIT CMD...
step() {
    local name=$1 var=$2 limit=$3 left rc=0 t0 note=""
    shift 3
    left=$((end_of_run - SECONDS - reserve))
    if [ "$left" -lt "$limit" ]; then
        limit=$left
        note=", cut to what is left of IMGADM_TIMEOUT_TOTAL=$lim_total"
    fi
    if [ "$limit" -lt 1 ]; then
        echo "=================== $name: NOT RUN (no time left of IMGADM_TIMEOUT_TOTAL=$lim_total s) ==================="
        failed=$((failed + 1)); failures+=("$name (no time left)")
        return
    fi
    echo "=================== $name (limit ${limit} s, $var$note) ==================="
    t0=$SECONDS
    limited "$limit" "$@" || rc=$?
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1)); echo "--- $name: ok ($((SECONDS - t0)) s)"
    elif [ "$rc" = 124 ]; then
        failed=$((failed + 1)); failures+=("$name (TIMED OUT after $limit s)")
        echo "--- $name: TIMED OUT: ran over its limit of $limit s ($var$note) and was killed with its whole process group ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1)); failures+=("$name")
        echo "--- $name: FAILED ($((SECONDS - t0)) s)"
    fi
}

# before the steps, with deadlines of their own: the virtualenvs (quiet unless they fail), then
# the ZFS daemon, pools and image server (the units' real-ZFS tests need the daemon)
echo "=================== bootstrap (limit $lim_bootstrap s, IMGADM_TIMEOUT_BOOTSTRAP) ==================="
bootstrap_log=$(mktemp /tmp/smartos-imgadm-bootstrap.XXXXXX)
rc=0; limited "$lim_bootstrap" make -s bootstrap > "$bootstrap_log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
    cat "$bootstrap_log"; rm -f "$bootstrap_log"
    [ "$rc" = 124 ] && echo "run-all: the bootstrap ran over its limit of $lim_bootstrap s (IMGADM_TIMEOUT_BOOTSTRAP) and was killed"
    echo "run-all: the bootstrap failed; no step can run"; echo "steps: 0 passed, 1 failed"; exit 1
fi
rm -f "$bootstrap_log"
rc=0; limited "$lim_world_up" bash tests/world/world.sh up || rc=$?
if [ "$rc" != 0 ]; then
    [ "$rc" = 124 ] && echo "run-all: world.sh up ran over its limit of $lim_world_up s (IMGADM_TIMEOUT_WORLD_UP) and was killed"
    echo "the test world did not come up"; echo "steps: 0 passed, 1 failed"; exit 1
fi

step "sanity (ansible-core 2.19)" IMGADM_TIMEOUT_SANITY "$lim_sanity" make -s sanity-2.19
step "sanity (ansible-core 2.21)" IMGADM_TIMEOUT_SANITY "$lim_sanity" make -s sanity-2.21
step "units" IMGADM_TIMEOUT_UNITS "$lim_units" make -s units
step "test world" IMGADM_TIMEOUT_WORLD_TESTS "$lim_world_tests" make -s world-tests
step "integration" IMGADM_TIMEOUT_INTEGRATION "$lim_integration" make -s integration
step "fleet (10 simulated hosts)" IMGADM_TIMEOUT_FLEET "$lim_fleet" make -s fleet
step "docs (antsibull-docs site)" IMGADM_TIMEOUT_DOCS "$lim_docs" make -s docs
step "package (artefact, galaxy-importer, demo from the install, ansible-lint)" IMGADM_TIMEOUT_PACKAGE "$lim_package" make -s package
# the real-host tier: the openzfs_tier target over SSH against a Debian 12 + OpenZFS guest
# (built and cached on first use, ~6.5 min; then a few minutes under TCG).
# IMGADM_TEST_OPENZFS=0 leaves it out of a quick local run (reported below, never hidden).
if [ "${IMGADM_TEST_OPENZFS:-1}" = 0 ]; then
    echo "=================== real-host tier (OpenZFS guest): NOT RUN (IMGADM_TEST_OPENZFS=0) ==================="
    not_run="real-host tier (IMGADM_TEST_OPENZFS=0)"
else
    step "real-host tier (OpenZFS guest)" IMGADM_TIMEOUT_OPENZFS "$lim_openzfs" make -s test-openzfs
    stop_guest
fi
limited 120 bash tests/world/world.sh down >/dev/null 2>&1 || true

echo
if [ "$failed" -gt 0 ]; then
    failed_list=$(printf '%s; ' "${failures[@]}")
    echo "failed steps: ${failed_list%; }"
fi
if [ -n "${not_run:-}" ]; then
    echo "not run: $not_run"
fi
echo "run-all: $SECONDS s in all"
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
