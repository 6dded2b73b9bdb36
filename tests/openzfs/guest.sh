#!/usr/bin/env bash
# Run the OpenZFS test guest (built by build-guest.sh) under QEMU, as an ordinary SSH
# managed node on 127.0.0.1, with the test world's image server reachable from it.
#
#   guest.sh up       boot a fresh guest (new qcow2 overlay, new blank pool disks), wait for
#                     SSH, open the reverse tunnel to the image server, create the pools
#                     `zones` (vdb) and `imgbuild` (vdc), copy the world's tools into the
#                     guest, write the inventory and the vars file; idempotent while it runs
#   guest.sh down     stop the tunnel and QEMU (only the recorded pids) and drop the disks
#   guest.sh status   exit 0 if the guest answers over SSH
#   guest.sh ssh [CMD...]   run CMD (or a shell) on the guest as root
#   guest.sh sync     copy the world's tools into the guest again
#   guest.sh env      print the run's settings as shell assignments
#
# The controller's image server must be up first (tests/world/world.sh up): its URL is read
# from $IMGADM_WORLD_DIR/world.env, and `ssh -R 127.0.0.1:PORT:127.0.0.1:PORT` makes the guest
# see it at the same http://127.0.0.1:PORT. QEMU's user-mode network is `restrict=on`: the
# guest reaches nothing but what SSH forwards; SSH listens on 127.0.0.1 only.
# Runs in $IMGADM_OPENZFS_CACHE/run (default /var/tmp/smartos-imgadm-openzfs/run):
# qemu.pid, tunnel.pid, ssh.port, ssh_config, inventory.ini, openzfs.yml, console.log, timings.
# Settings: IMGADM_OPENZFS_MEM (MiB, 2048), IMGADM_OPENZFS_CPUS (2), IMGADM_OPENZFS_POOL_SIZE (4G),
# IMGADM_OPENZFS_ACCEL (auto|tcg|kvm), IMGADM_OPENZFS_TCG_CPU (qemu64), IMGADM_OPENZFS_SSH_PORT (a free port),
# IMGADM_OPENZFS_BOOT_TIMEOUT (300 s), IMGADM_OPENZFS_ZFS_BACKEND (auto: the imgadm_zfs_backend var written),
# IMGADM_OPENZFS_SSH_TIMEOUT (300 s: the deadline of every command run in the guest over SSH; SSH
# itself has ConnectTimeout 10 and ServerAliveInterval 15 x 4).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${IMGADM_OPENZFS_CACHE:-/var/tmp/smartos-imgadm-openzfs}
run=$cache/run
world=${IMGADM_WORLD_DIR:-/var/tmp/smartos-imgadm-world}
mem=${IMGADM_OPENZFS_MEM:-2048}
cpus=${IMGADM_OPENZFS_CPUS:-2}
pool_size=${IMGADM_OPENZFS_POOL_SIZE:-4G}
accel_setting=${IMGADM_OPENZFS_ACCEL:-auto}
boot_timeout=${IMGADM_OPENZFS_BOOT_TIMEOUT:-300}
ssh_timeout=${IMGADM_OPENZFS_SSH_TIMEOUT:-300}
# qemu64 rather than max: Python in the guest runs ~1.5x faster without the vector extensions
# TCG has to emulate (glibc picks AVX2 string functions), and the zfs module loads faster
tcg_cpu=${IMGADM_OPENZFS_TCG_CPU:-qemu64}
test_pool=zones
build_pool=imgbuild
# where the guest keeps the world: the same layout as on the controller
guest_world_dir=/var/tmp/smartos-imgadm-world
guest_top=/opt/smartos-imgadm
guest_tools=$guest_top/tests/world

log() { echo "guest: $*" >&2; }
die() { log "$*"; exit 1; }

pid_alive() {   # FILE EXPECTED-COMMAND-NAME: the pid in FILE runs, and is that command
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    echo "$pid"
}

stop_pid() {    # FILE COMMAND-NAME
    local pid _
    if pid=$(pid_alive "$1" "$2"); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$2 ($pid) did not stop, killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped $2 (pid $pid)"
    fi
    rm -f "$1"
}

# a command in the guest, with a deadline (--foreground: ssh may read a terminal; it has no children)
gssh() { timeout --foreground --kill-after=10 "$ssh_timeout" ssh -F "$run/ssh_config" openzfs-guest "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

choose_accel() {
    case "$accel_setting" in
        tcg) echo tcg ;;
        kvm) echo kvm ;;
        auto)
            # /dev/kvm of the nested kvm_pvm kind cannot run a stock Debian kernel
            if [ -d /sys/module/kvm_pvm ] || [ ! -w /dev/kvm ]; then echo tcg; else echo kvm; fi ;;
        *) die "IMGADM_OPENZFS_ACCEL must be auto, tcg or kvm" ;;
    esac
}

world_url() {
    [ -f "$world/world.env" ] || die "no $world/world.env: bring the world up first (bash tests/world/world.sh up)"
    local url
    url=$(sed -n 's/^IMGADM_TEST_URL=//p' "$world/world.env")
    case "$url" in
        http://127.0.0.1:[0-9]*) echo "$url" ;;
        *) die "IMGADM_TEST_URL in $world/world.env is not http://127.0.0.1:PORT: '$url'" ;;
    esac
}

write_ssh_config() {
    local port=$1 key=$2
    cat > "$run/ssh_config" <<EOF
Host openzfs-guest
    HostName 127.0.0.1
    Port $port
    User root
    IdentityFile $key
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    BatchMode yes
    ConnectTimeout 10
    ServerAliveInterval 15
    ServerAliveCountMax 4
EOF
}

sync_tools() {
    # the world's tools change more often than the guest: copied at every boot
    tar -C "$top" --exclude __pycache__ --exclude '*.pyc' --exclude 'tests/world/tests' \
        -cf - tests/world/fakes tests/world/build_image.py tests/world/zpool.sh tests/world/imgapi_server.py \
        tests/world/README.md \
        | gssh "rm -rf $guest_tools && mkdir -p $guest_top && tar -C $guest_top -xf - && mkdir -p $guest_world_dir/fake-state"
}

write_vars() {
    local port=$1 key=$2 url=$3 server_data
    server_data=$(sed -n 's/^IMGADM_SERVER_DATA=//p' "$world/world.env")
    cat > "$run/openzfs.yml" <<EOF
---
# The OpenZFS guest (tests/openzfs/guest.sh) as the managed node of the integration targets.
# Paths are on the guest except imgadm_server_data, the image server's data dir on the
# controller: with imgadm_publish true, test images are published to the server over HTTP
# (imgadm_test_url) instead of being written there.
imgadm_test_pool: $test_pool
imgadm_build_pool: $build_pool
imgadm_test_url: $url
imgadm_world_dir: $guest_world_dir
imgadm_server_data: $server_data
imgadm_fake_state: $guest_world_dir/fake-state
imgadm_fakes_bin: $guest_tools/fakes/bin
imgadm_world_tools: $guest_tools
imgadm_world_python: /usr/bin/python3
imgadm_world_remote: true
imgadm_publish: true
# the zfs_backend the targets should use (run.sh: IMGADM_OPENZFS_BACKENDS runs them per backend)
imgadm_zfs_backend: ${IMGADM_OPENZFS_ZFS_BACKEND:-auto}
EOF
    cat > "$run/inventory.ini" <<EOF
[openzfs]
openzfs-guest ansible_host=127.0.0.1 ansible_port=$port ansible_user=root ansible_ssh_private_key_file=$key ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes'
EOF
}

start_tunnel() {
    local url=$1 sport
    sport=${url##*:}
    stop_pid "$run/tunnel.pid" ssh
    # -R binds 127.0.0.1:PORT on the guest (GatewayPorts no) to the controller's 127.0.0.1:PORT
    nohup ssh -F "$run/ssh_config" -N -o ExitOnForwardFailure=yes \
        -R "127.0.0.1:$sport:127.0.0.1:$sport" openzfs-guest > "$run/tunnel.log" 2>&1 < /dev/null &
    echo $! > "$run/tunnel.pid"
    echo "$url" > "$run/tunnel.url"
    local _
    for _ in $(seq 1 100); do
        if gssh "python3 -c 'import sys, urllib.request; sys.exit(0 if b\"imgapi\" in urllib.request.urlopen(\"$url/ping\", timeout=5).read() else 1)'" 2>/dev/null; then
            log "image server $url reachable from the guest (tunnel pid $(cat "$run/tunnel.pid"))"
            return 0
        fi
        pid_alive "$run/tunnel.pid" ssh >/dev/null || { cat "$run/tunnel.log" >&2; die "the SSH reverse tunnel exited"; }
        sleep 0.2
    done
    die "the guest cannot reach $url through the tunnel; see $run/tunnel.log"
}

cmd_up() {
    local gdir key port accel url t0 pid
    [ "$(id -u)" = 0 ] || die "must run as root"
    url=$(world_url)
    if pid=$(pid_alive "$run/qemu.pid" qemu-system-x86) && gssh true 2>/dev/null; then
        log "already running (qemu pid $pid)"
        # a new tunnel when it died or the image server moved to another port
        if ! pid_alive "$run/tunnel.pid" ssh >/dev/null || [ "$(cat "$run/tunnel.url" 2>/dev/null)" != "$url" ]; then
            start_tunnel "$url"
        fi
        sync_tools
        write_vars "$(cat "$run/ssh.port")" "$(cat "$run/key.path")" "$url"
        return 0
    fi
    cmd_down >/dev/null 2>&1 || true
    gdir=$(bash "$here/build-guest.sh")
    [ -f "$gdir/.done" ] || die "no guest build in $gdir"
    mkdir -p "$run"
    key=$run/id_ed25519
    install -m 600 "$gdir/id_ed25519" "$key"
    install -m 644 "$gdir/id_ed25519.pub" "$key.pub"
    echo "$key" > "$run/key.path"
    port=${IMGADM_OPENZFS_SSH_PORT:-$(free_port)}
    echo "$port" > "$run/ssh.port"
    write_ssh_config "$port" "$key"
    qemu-img create -q -f qcow2 -F raw -b "$gdir/root.img" "$run/root.qcow2"
    rm -f "$run/$test_pool.img" "$run/$build_pool.img"
    truncate -s "$pool_size" "$run/$test_pool.img" "$run/$build_pool.img"
    accel=$(choose_accel)
    local accel_args
    if [ "$accel" = kvm ]; then
        accel_args=(-accel kvm -cpu host)
    else
        accel_args=(-accel "tcg,thread=multi" -cpu "$tcg_cpu")
    fi
    rm -f "$run/console.log" "$run/qemu.pid"
    t0=$(date +%s.%N)
    # user-mode network on a documentation range (not a private one), isolated by restrict=on;
    # the only way in is the SSH port forwarded from 127.0.0.1
    # -daemonize: returns once QEMU runs (the daemon leaves this process group); bounded all the same
    timeout --kill-after=10 120 qemu-system-x86_64 -name smartos-imgadm-openzfs "${accel_args[@]}" -m "$mem" -smp "$cpus" \
        -nodefaults -display none -monitor none -serial "file:$run/console.log" \
        -kernel "$gdir/vmlinuz" -initrd "$gdir/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 biosdevname=0 quiet systemd.show_status=auto" \
        -drive "file=$run/root.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap" \
        -drive "file=$run/$test_pool.img,if=virtio,format=raw,cache=unsafe,discard=unmap" \
        -drive "file=$run/$build_pool.img,if=virtio,format=raw,cache=unsafe,discard=unmap" \
        -netdev "user,id=n0,net=192.0.2.0/24,host=192.0.2.2,restrict=on,ipv6=off,hostfwd=tcp:127.0.0.1:$port-192.0.2.15:22" \
        -device virtio-net-pci,netdev=n0,romfile= \
        -device virtio-rng-pci \
        -daemonize -pidfile "$run/qemu.pid"
    pid=$(pid_alive "$run/qemu.pid" qemu-system-x86) || die "qemu did not start"
    log "qemu pid $pid ($accel, ${cpus} CPUs, ${mem} MiB), SSH on 127.0.0.1:$port; waiting for SSH"
    local deadline=$((SECONDS + boot_timeout))
    until gssh true 2>/dev/null; do
        pid_alive "$run/qemu.pid" qemu-system-x86 >/dev/null || { tail -n 30 "$run/console.log" >&2; die "qemu exited during boot"; }
        [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$run/console.log" >&2; die "no SSH after ${boot_timeout}s"; }
        sleep 0.5
    done
    local boot_s
    boot_s=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
    log "SSH answers after ${boot_s} s"
    echo "boot $boot_s" > "$run/timings"
    start_tunnel "$url"
    t0=$(date +%s.%N)
    gssh "set -e
        modprobe zfs
        udevadm settle
        zpool create -f $test_pool /dev/vdb
        zpool create -f $build_pool /dev/vdc
        zpool list -H -o name,size,health" >&2
    echo "pools $(python3 -c "import time; print('%.1f' % (time.time() - $t0))")" >> "$run/timings"
    sync_tools
    write_vars "$port" "$key" "$url"
    log "up: $(gssh 'zfs version | head -n 2 | tr "\n" " "; uname -r')"
    log "inventory $run/inventory.ini, vars $run/openzfs.yml, ssh: bash $here/guest.sh ssh"
}

cmd_down() {
    # no clean shutdown: the overlay and the pool disks are thrown away
    stop_pid "$run/tunnel.pid" ssh
    stop_pid "$run/qemu.pid" qemu-system-x86
    rm -f "$run/root.qcow2" "$run/$test_pool.img" "$run/$build_pool.img" "$run/tunnel.url"
}

cmd_status() {
    local pid
    pid=$(pid_alive "$run/qemu.pid" qemu-system-x86) || { echo "guest: not running"; return 1; }
    gssh true 2>/dev/null || { echo "guest: qemu pid $pid runs, SSH does not answer"; return 1; }
    echo "guest: running (qemu pid $pid, SSH 127.0.0.1:$(cat "$run/ssh.port"), tunnel pid $(pid_alive "$run/tunnel.pid" ssh || echo none))"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    ssh) shift; [ -f "$run/ssh_config" ] || die "not up"; if [ $# -gt 0 ]; then gssh "$@"; else ssh -F "$run/ssh_config" -t openzfs-guest; fi ;;
    sync) sync_tools ;;
    env) cat <<EOF
IMGADM_OPENZFS_RUN=$run
IMGADM_OPENZFS_SSH_PORT=$(cat "$run/ssh.port" 2>/dev/null)
IMGADM_OPENZFS_KEY=$(cat "$run/key.path" 2>/dev/null)
IMGADM_OPENZFS_INVENTORY=$run/inventory.ini
IMGADM_OPENZFS_VARS=$run/openzfs.yml
EOF
        ;;
    *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
