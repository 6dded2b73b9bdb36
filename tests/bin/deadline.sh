# shellcheck shell=bash
# Sourced by the scripts of tests/bin: run commands with deadlines.
#   deadline SECONDS WHAT CMD...   CMD under timeout(1), in a process group of its own, TERMed at
#                                  the limit and KILLed 30 s later, whole; returns CMD's status
#                                  (124 or 137 after a "WHAT ran over" message)
# A Ctrl-C or TERM of the sourcing script is passed on to the running CMD, and the script exits 130.
# DEADLINE_PROG names the script in messages; DEADLINE_HINT (optional) says how to change a limit.
deadline_pid=""
deadline() {
    local secs=$1 what=$2 rc=0
    shift 2
    timeout --kill-after=30 "$secs" "$@" &
    deadline_pid=$!
    wait "$deadline_pid" || rc=$?
    deadline_pid=""
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "${DEADLINE_PROG:-deadline}: TIMEOUT: $what ran over its ${secs} s limit${DEADLINE_HINT:+ ($DEADLINE_HINT)} and was killed" >&2
    fi
    return "$rc"
}
# shellcheck disable=SC2317  # called by the trap
deadline_interrupted() {
    if [ -n "$deadline_pid" ]; then kill -TERM "$deadline_pid" 2>/dev/null; wait "$deadline_pid" || true; fi
    echo "${DEADLINE_PROG:-deadline}: interrupted" >&2
    exit 130
}
trap deadline_interrupted INT TERM
