#!/usr/bin/env bash
# Start or stop a background process of the target, with a deadline.
#   background.sh start PIDFILE DEADLINE LOG CMD...   start CMD under `timeout DEADLINE` in a
#                                                     session of its own; PIDFILE gets the pid
#   background.sh stop PIDFILE                        TERM (then KILL) that session, by its pid
set -u
case "$1" in
    start)
        pidfile=$2 deadline=$3 log=$4; shift 4
        setsid timeout --kill-after=5 "$deadline" "$@" </dev/null >"$log" 2>&1 &
        echo $! > "$pidfile"
        ;;
    stop)
        pidfile=$2
        [ -s "$pidfile" ] || exit 0
        pid=$(cat "$pidfile")
        # setsid made `timeout` a session (and process group) leader: end the whole group
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        rm -f "$pidfile"
        ;;
    *) echo "usage: $0 start PIDFILE DEADLINE LOG CMD... | stop PIDFILE" >&2; exit 2 ;;
esac
