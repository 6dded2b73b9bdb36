#!/usr/bin/env bash
# Test ZFS pools on sparse files, for the smartos.imgadm test world.
#
#   zpool.sh up   [POOL] [SIZE]   ensure zfs (zfs-fuse) is installed and its
#                                 daemon runs, and POOL exists (default pool
#                                 $IMGADM_TEST_POOL or "zones", size 4G), on
#                                 /var/tmp/smartos-imgadm-pools/POOL.img
#   zpool.sh down [POOL]          destroy POOL and remove its file
#   zpool.sh status [POOL]        exit 0 if POOL is imported
#
# Idempotent; needs root. Installs zfs-fuse with apt-get when `zfs` is
# missing. Prints "POOL MOUNTPOINT" after `up`. Nothing waits forever (zfs-fuse
# can wedge): every zpool/zfs/umount call has a deadline (IMGADM_ZFS_CMD_TIMEOUT,
# 60 s), the lock IMGADM_ZPOOL_LOCK_WAIT (300 s), apt-get 600 s.
set -euo pipefail

POOL_DIR=${IMGADM_TEST_POOL_DIR:-/var/tmp/smartos-imgadm-pools}
PIDFILE=/var/run/zfs-fuse.pid
DAEMON_WAIT=${IMGADM_ZFS_DAEMON_WAIT:-30}
CMD_TIMEOUT=${IMGADM_ZFS_CMD_TIMEOUT:-60}
LOCK_WAIT=${IMGADM_ZPOOL_LOCK_WAIT:-300}

die() { echo "zpool.sh: $*" >&2; exit 1; }
log() { echo "zpool.sh: $*" >&2; }

# zt CMD...: CMD with a deadline (exit 124 when it ran over; its process group is killed)
zt() {
    local rc=0
    timeout --kill-after=10 "$CMD_TIMEOUT" "$@" || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then log "TIMEOUT: '$*' ran over ${CMD_TIMEOUT}s and was killed"; fi
    return "$rc"
}

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

# zfs-fuse wedged (a new pool's mount never answered) when pools were
# created or destroyed at the same moment by two processes: creation,
# import and destruction hold this lock (shared with the unit tests' pools).
LOCK_FILE=/var/tmp/smartos-imgadm-zpool.lock
take_lock() {
    exec 9>>"$LOCK_FILE"
    flock -w "$LOCK_WAIT" 9 || die "the zpool lock $LOCK_FILE was held for ${LOCK_WAIT}s"
}

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root"
}

ensure_zfs_installed() {
    if command -v zfs >/dev/null 2>&1 && command -v zpool >/dev/null 2>&1; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "zfs is missing and apt-get is not available"
    log "installing zfs-fuse"
    export DEBIAN_FRONTEND=noninteractive
    timeout --kill-after=30 600 apt-get -o Acquire::http::Timeout=30 update || die "apt-get update failed or ran over 600 s"
    timeout --kill-after=30 600 apt-get -o Acquire::http::Timeout=30 install -y zfs-fuse \
        || die "apt-get install zfs-fuse failed or ran over 600 s"
    command -v zfs >/dev/null 2>&1 || die "zfs still missing after installing zfs-fuse"
}

daemon_answers() {
    # `zpool list` fails ("connect: Connection refused") without a daemon, and hangs
    # when the daemon is wedged: 10 s at most
    timeout --kill-after=5 10 zpool list >/dev/null 2>&1
}

ensure_daemon() {
    if daemon_answers; then
        return 0
    fi
    if command -v zfs-fuse >/dev/null 2>&1 && ! pgrep -x zfs-fuse >/dev/null 2>&1; then
        if [ ! -e /dev/fuse ]; then
            modprobe fuse >/dev/null 2>&1 || true
            [ -e /dev/fuse ] || mknod -m 666 /dev/fuse c 10 229 || true
        fi
        mkdir -p "$(dirname "$PIDFILE")" /var/lib/zfs /etc/zfs
        # A stale pid file makes zfs-fuse refuse to start.
        if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null; then
            rm -f "$PIDFILE"
        fi
        clear_stale_mounts
        log "starting zfs-fuse"
        # without the caller's open files (see without_fds.sh)
        zt "$(dirname "$0")/without_fds.sh" zfs-fuse --pidfile "$PIDFILE" || die "zfs-fuse failed to start"
    fi
    local until=$((SECONDS + DAEMON_WAIT))
    while ! daemon_answers; do
        [ "$SECONDS" -lt "$until" ] || die "zfs daemon does not answer after ${DAEMON_WAIT}s (wedged? see 'ps -C zfs,zpool')"
        sleep 0.2
    done
}

clear_stale_mounts() {
    # With no daemon running, every fuse.zfs mount left in the mount table is
    # dead ("Transport endpoint is not connected") and would make pool
    # creation or import fail on its mountpoint.
    local mp
    awk '$3 == "fuse.zfs" {print $2}' /proc/mounts 2>/dev/null | sort -r | while read -r mp; do
        mp=$(printf '%b' "$mp")
        log "unmounting stale zfs-fuse mount $mp"
        zt umount -l "$mp" 2>/dev/null || zt umount -f "$mp" 2>/dev/null || true
    done
}

clear_mountpoint() {
    # `zpool create` refuses a default mountpoint /POOL that is a non-empty
    # directory. Empty directories there are leftovers of earlier runs
    # (datasets mounted while the pool itself was not) and are removed;
    # anything else is moved aside, not deleted. (A pool mounted elsewhere
    # with -m was tried: zfs-fuse hung unmounting its children.)
    local pool=$1 mp="/$1"
    if [ -d "$mp" ] && ! mountpoint -q "$mp" 2>/dev/null; then
        find "$mp" -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true
        if [ -n "$(ls -A "$mp" 2>/dev/null)" ]; then
            local aside
            aside="$mp.aside-$(date +%Y%m%dT%H%M%S)-$$"
            mv "$mp" "$aside" || die "$mp is a non-empty directory and cannot be moved aside"
            log "$mp was a non-empty directory; moved it to $aside"
        fi
    fi
}

mount_pool() {
    # zfs-fuse imports the pools in its cache when it starts but does not
    # mount them; mount POOL and its canmount=on filesystems, parents first.
    local pool=$1 ds mp
    zt zfs list -H -o name,canmount,mounted,mountpoint -t filesystem -r "$pool" 2>/dev/null \
        | awk -F'\t' '$2 == "on" && $3 == "no" && $4 ~ /^\// {n = split($1, a, "/"); print n "\t" $1 "\t" $4}' \
        | sort -n | cut -f2- \
        | while IFS=$'\t' read -r ds mp; do
            if [ -d "$mp" ] && ! mountpoint -q "$mp" 2>/dev/null; then
                find "$mp" -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true
            fi
            zt zfs mount "$ds" >/dev/null 2>&1 || log "could not mount $ds on $mp"
        done
}

pool_exists() {
    zt zpool list -H -o name "$1" >/dev/null 2>&1
}

cmd_up() {
    local pool=$1 size=$2 img
    img="$POOL_DIR/$pool.img"
    need_root
    ensure_zfs_installed
    ensure_daemon
    take_lock
    if ! pool_exists "$pool"; then
        mkdir -p "$POOL_DIR"
        if [ -f "$img" ]; then
            # Left over from an earlier run (e.g. the daemon restarted).
            zt zpool import -d "$POOL_DIR" "$pool" >/dev/null 2>&1 || true
        fi
        if ! pool_exists "$pool"; then
            rm -f "$img"
            truncate -s "$size" "$img"
            local out
            clear_mountpoint "$pool"
            if ! out=$(zt zpool create -f "$pool" "$img" 2>&1); then
                rm -f "$img"
                die "zpool create $pool failed: $out"
            fi
            log "created pool $pool ($size) on $img"
        else
            log "imported pool $pool from $img"
        fi
    fi
    pool_exists "$pool" || die "pool $pool is not available"
    mount_pool "$pool"
    echo "$pool $(zt zfs get -H -o value mountpoint "$pool")"
}

cmd_down() {
    local pool=$1 img
    img="$POOL_DIR/$pool.img"
    need_root
    if command -v zpool >/dev/null 2>&1 && daemon_answers && pool_exists "$pool"; then
        take_lock
        local tries=0
        until zt zpool destroy -f "$pool" 2>/dev/null; do
            tries=$((tries + 1))
            if [ "$tries" -ge 10 ]; then
                zt zpool destroy -f "$pool" || die "zpool destroy $pool failed"
            fi
            # unmount deepest first, then retry
            zt zfs list -H -o name -t filesystem -r "$pool" 2>/dev/null \
                | awk -F/ '{print NF "\t" $0}' | sort -rn | cut -f2- \
                | while read -r ds; do zt zfs unmount -f "$ds" >/dev/null 2>&1 || true; done
            sleep 0.3
        done
        log "destroyed pool $pool"
    fi
    rm -f "$img"
}

cmd_status() {
    local pool=$1
    daemon_answers && pool_exists "$pool"
}

main() {
    local cmd=${1:-}
    [ -n "$cmd" ] || usage
    shift
    local pool=${1:-${IMGADM_TEST_POOL:-zones}}
    local size=${2:-4G}
    case "$pool" in
        */*|*@*|"") die "invalid pool name: '$pool'" ;;
    esac
    case "$cmd" in
        up) cmd_up "$pool" "$size" ;;
        down) cmd_down "$pool" ;;
        status) cmd_status "$pool" ;;
        -h|--help|help) usage ;;
        *) usage ;;
    esac
}

main "$@"
