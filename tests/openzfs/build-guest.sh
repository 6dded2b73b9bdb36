#!/usr/bin/env bash
# Build the OpenZFS test guest of the real-host tier: a small Debian 12 system with
# OpenZFS (zfs-dkms, zfsutils-linux, python3-pyzfs) from Debian packages, as a raw ext4
# image plus the kernel and initrd to boot it with, and an SSH key made for it.
#
#   build-guest.sh           build unless the cache already holds this build; prints its directory
#   build-guest.sh --dir     print the directory of the build for these settings (built or not)
#   build-guest.sh --force   rebuild even if cached
#   build-guest.sh --resume  go on with a failed build of these settings from its first unfinished
#                            step (the work tree of a failed build is kept until the next build)
#
# The build is cached in $IMGADM_OPENZFS_CACHE (default /var/tmp/smartos-imgadm-openzfs) as
# guest-STAMP/, STAMP being the sha256 of this script and its settings; other guest-*
# builds are removed after a successful build. Needs root; installs the host packages
# it needs (qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client) with apt-get.
# Timings of every step are printed on stderr and kept in guest-STAMP/timings.
#
# Every command that could wait forever has a deadline (timeout(1) kills its whole process
# group, chroot'd apt/dpkg/dkms included); a step over its deadline fails the build with its name.
# Deadlines (environment, seconds; not part of the stamp): IMGADM_OPENZFS_APT_TIMEOUT (host apt-get,
# debootstrap, each package step in the chroot: 900), IMGADM_OPENZFS_DKMS_TIMEOUT (zfs-dkms, 1500),
# IMGADM_OPENZFS_LOCK_TIMEOUT (waiting for another build of the cache: 1800).
#
# Settings (environment; all of them are part of the stamp):
#   IMGADM_OPENZFS_SUITE       Debian suite of the guest             (bookworm)
#   IMGADM_OPENZFS_ZFS_SUITE   suite OpenZFS comes from: bookworm (2.1) or bookworm-backports (2.3)
#   IMGADM_OPENZFS_MIRROR      Debian mirror                         (http://deb.debian.org/debian)
#   IMGADM_OPENZFS_SECURITY    Debian security mirror                (http://deb.debian.org/debian-security)
#   IMGADM_OPENZFS_DISK_SIZE   size of the root file system          (3G, sparse)
# The world's tools (fakes, build_image.py) are not in the image: guest.sh copies them at boot.
set -euo pipefail

cache=${IMGADM_OPENZFS_CACHE:-/var/tmp/smartos-imgadm-openzfs}
suite=${IMGADM_OPENZFS_SUITE:-bookworm}
zfs_suite=${IMGADM_OPENZFS_ZFS_SUITE:-$suite}
mirror=${IMGADM_OPENZFS_MIRROR:-http://deb.debian.org/debian}
security=${IMGADM_OPENZFS_SECURITY:-http://deb.debian.org/debian-security}
disk_size=${IMGADM_OPENZFS_DISK_SIZE:-3G}
apt_timeout=${IMGADM_OPENZFS_APT_TIMEOUT:-900}
dkms_timeout=${IMGADM_OPENZFS_DKMS_TIMEOUT:-1500}
lock_timeout=${IMGADM_OPENZFS_LOCK_TIMEOUT:-1800}

# Packages of the guest, besides the kernel and OpenZFS.
base_pkgs="systemd-sysv udev kmod iproute2 procps openssh-server python3 python3-requests
python3-jsonschema gzip bzip2 xz-utils"

settings="suite=$suite zfs_suite=$zfs_suite mirror=$mirror security=$security disk_size=$disk_size"
stamp=$( { cat "$0"; echo "$settings"; } | sha256sum | cut -c1-16)
out="$cache/guest-$stamp"

log() { echo "build-guest: $*" >&2; }
die() { log "$*"; exit 1; }
# deadline SECONDS WHAT CMD...: CMD with a time limit. timeout(1) runs it in a process group
# of its own and kills that whole group at the limit (KILL 30 s later); a Ctrl-C or TERM of
# this script is passed on to it. Returns CMD's status, or 124 after a "WHAT ran over" message.
deadline_pid=""
deadline() {
    local secs=$1 what=$2 rc=0
    shift 2
    timeout --kill-after=30 "$secs" "$@" &
    deadline_pid=$!
    wait "$deadline_pid" || rc=$?
    deadline_pid=""
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        log "TIMEOUT: $what ran over its ${secs} s limit and was killed"
        return 124
    fi
    return "$rc"
}
# shellcheck disable=SC2317  # called by the traps
interrupted() {
    if [ -n "$deadline_pid" ]; then kill -TERM "$deadline_pid" 2>/dev/null; wait "$deadline_pid" || true; fi
    log "interrupted"
    exit 130
}
trap interrupted INT TERM

force=0
resume=0
case "${1:-}" in
    --dir) echo "$out"; exit 0 ;;
    --force) force=1 ;;
    --resume) resume=1 ;;
    "") ;;
    *) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

if [ "$force" = 0 ] && [ -f "$out/.done" ]; then
    log "cached: $out"
    echo "$out"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock -w "$lock_timeout" 9 || die "another build of $cache held its lock for ${lock_timeout} s"
if [ "$force" = 0 ] && [ -f "$out/.done" ]; then   # built by another process meanwhile
    echo "$out"
    exit 0
fi

t_all=$SECONDS
work="$cache/work-$stamp"
tree="$work/tree"
timing_lines=""

step_t0=0
step_begin() { step_t0=$SECONDS; log "step $1 ..."; }
step_end() {
    local secs=$((SECONDS - step_t0))
    log "step $1: ${secs} s"
    timing_lines+="$1 $secs"$'\n'
    if [ -d "$work" ]; then echo "$secs" > "$work/.step-$1"; fi
}
step_done() {  # with --resume: NAME finished in the failed build this one resumes
    if [ "$resume" = 1 ] && [ -f "$work/.step-$1" ]; then
        log "step $1: done before ($(cat "$work/.step-$1") s), skipped"
        timing_lines+="$1 $(cat "$work/.step-$1") (earlier run)"$'\n'
        return 0
    fi
    return 1
}

cleanup_mounts() {
    local m
    for m in dev/pts proc sys; do
        if mountpoint -q "$tree/$m" 2>/dev/null; then umount -l "$tree/$m" || true; fi
    done
}
trap cleanup_mounts EXIT

# --- host packages ----------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || need+=(e2fsprogs)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
if [ "${#need[@]}" -gt 0 ]; then
    step_begin host-packages
    export DEBIAN_FRONTEND=noninteractive
    deadline "$apt_timeout" "apt-get update" apt-get -o Acquire::Retries=5 -o Acquire::http::Timeout=30 update -qq
    # no recommends: no GUI; the guest's NIC is given no option ROM, so ipxe is not needed
    deadline "$apt_timeout" "apt-get install ${need[*]}" apt-get -o Acquire::Retries=5 -o Acquire::http::Timeout=30 \
        install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    step_end host-packages
fi
export PATH="$PATH:/usr/sbin:/sbin"

cleanup_mounts
if grep -q " $cache/work-" /proc/mounts; then die "file systems still mounted under $cache/work-*; unmount them first"; fi
if [ "$resume" = 1 ] && [ -d "$work" ]; then
    log "resuming the build in $work"
else
    resume=0
    rm -rf "$cache"/work-*
fi
mkdir -p "$work"
rm -rf "$work/out"
log "building $out ($settings)"

# --- debootstrap ------------------------------------------------------------
if ! step_done debootstrap; then
    step_begin debootstrap
    # a mirror hiccup on a fresh CI machine should not fail the run: three tries
    for try in 1 2 3; do
        rm -rf "$tree"
        if deadline "$apt_timeout" debootstrap \
                debootstrap --variant=minbase --components=main,contrib "$suite" "$tree" "$mirror" \
                > "$work/debootstrap.log" 2>&1; then
            break
        fi
        tail -n 30 "$work/debootstrap.log" >&2
        [ "$try" -lt 3 ] || die "debootstrap failed 3 times; log: $work/debootstrap.log"
        log "debootstrap failed (try $try); again in $((try * 10)) s"
        sleep $((try * 10))
    done
    step_end debootstrap
fi

# --- configuration before any package is added ------------------------------
{
    echo "deb $mirror $suite main contrib"
    echo "deb $mirror $suite-updates main contrib"
    echo "deb $security $suite-security main contrib"
    if [ "$zfs_suite" != "$suite" ]; then echo "deb $mirror $zfs_suite main contrib"; fi
} > "$tree/etc/apt/sources.list"
cat > "$tree/etc/apt/apt.conf.d/90smartos-imgadm" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
Acquire::Retries "5";
Acquire::http::Timeout "30";
EOF
cat > "$tree/etc/dpkg/dpkg.cfg.d/90smartos-imgadm-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
# no service starts inside the chroot
printf '#!/bin/sh\nexit 101\n' > "$tree/usr/sbin/policy-rc.d"
chmod 755 "$tree/usr/sbin/policy-rc.d"
echo openzfs-guest > "$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\topenzfs-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$tree/etc/hosts"

mount -t proc proc "$tree/proc"
mount -t sysfs sysfs "$tree/sys"
mkdir -p "$tree/dev/pts"
mount -t devpts devpts "$tree/dev/pts"

in_chroot() {   # [--limit SECONDS] SCRIPT (default limit: the apt one)
    local limit=$apt_timeout
    if [ "$1" = --limit ]; then limit=$2; shift 2; fi
    deadline "$limit" "the chroot script ${1:0:60}..." chroot "$tree" /usr/bin/env -i DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 HOME=/root \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -euo pipefail -c "$1"
}
apt_in_chroot() {   # NAME [--limit SECONDS] SCRIPT...
    local name=$1 limit=$apt_timeout; shift
    if [ "$1" = --limit ]; then limit=$2; shift 2; fi
    in_chroot --limit "$limit" "$*" > "$work/$name.log" 2>&1 \
        || { tail -n 40 "$work/$name.log" >&2; die "step $name failed; log: $work/$name.log"; }
}

# --- packages ---------------------------------------------------------------
if ! step_done kernel; then
    step_begin kernel
    apt_in_chroot kernel "apt-get update -q && apt-get install -y -q linux-image-cloud-amd64 linux-headers-cloud-amd64"
    step_end kernel
fi
kvers=$(ls "$tree/lib/modules")
[ "$(echo "$kvers" | wc -l)" = 1 ] || die "expected one kernel in the guest, found: $kvers"
kver=$kvers
log "guest kernel $kver"

if ! step_done base-packages; then
    step_begin base-packages
    apt_in_chroot base-packages "apt-get install -y -q ${base_pkgs//$'\n'/ }"
    step_end base-packages
fi

if ! step_done zfs-dkms; then
    step_begin zfs-dkms
    zfs_t=""
    [ "$zfs_suite" != "$suite" ] && zfs_t="-t $zfs_suite"
    apt_in_chroot zfs-dkms --limit "$dkms_timeout" "apt-get install -y -q $zfs_t zfs-dkms zfsutils-linux python3-pyzfs
        if [ -z \"\$(find /lib/modules/$kver -name 'zfs.ko*')\" ]; then
            echo 'zfs.ko missing after the postinst: dkms autoinstall -k $kver'
            dkms autoinstall -k $kver
        fi
        [ -n \"\$(find /lib/modules/$kver -name 'zfs.ko*')\" ]"
    step_end zfs-dkms
fi

# --- slimming ---------------------------------------------------------------
# Compiler, headers and DKMS go; the modules DKMS built stay (purging zfs-dkms runs
# 'dkms remove', so they are set aside and put back).
runtime_pkgs="zfsutils-linux python3-pyzfs libzfs4linux libzpool5linux libnvpair3linux libuutil3linux
python3-cffi-backend python3 python3-requests python3-jsonschema openssh-server systemd-sysv udev kmod
linux-image-$kver"
if ! step_done slim; then
    step_begin slim
    apt_in_chroot slim "
        mkdir -p /root/zfs-modules
        if [ -n \"\$(find /lib/modules/$kver -path '*/updates/*' -name 'zfs.ko*')\" ]; then
            rm -rf /root/zfs-modules && mkdir -p /root/zfs-modules
            cd /lib/modules/$kver && find . -path '*/updates/*' -name '*.ko*' -exec cp --parents {} /root/zfs-modules/ \;
            cd /
        fi
        [ -n \"\$(find /root/zfs-modules -name 'zfs.ko*')\" ]
        # named, because APT keeps the kernel's build packages from autoremove, and apt's
        # Suggests (dpkg-dev) and dpkg-dev's Recommends (gcc) would keep the compiler
        build_pkgs=\$(dpkg-query -W -f '\${db:Status-Abbrev} \${Package}\n' | awk '\$1 == \"ii\" && \$2 ~ /^(linux-(headers|kbuild|compiler)-.*|zfs-dkms|dkms|dpkg-dev|gcc|gcc-12|cpp|cpp-12|make|binutils|libc6-dev|patch)\$/ {print \$2}')
        echo purging: \$build_pkgs
        apt-get purge -y -q --auto-remove -o APT::AutoRemove::SuggestsImportant=false \
            -o APT::AutoRemove::RecommendsImportant=false \$build_pkgs
        for p in ${runtime_pkgs//$'\n'/ }; do
            dpkg-query -W -f '\${db:Status-Abbrev}' \$p 2>/dev/null | grep -q '^ii' || { echo \"runtime package \$p was removed\" >&2; exit 1; }
        done
        if dpkg-query -W -f '\${db:Status-Abbrev} \${Package}\n' | grep -E '^ii +(gcc-12|cpp-12|binutils|make|perl)( |\$)'; then
            echo 'compiler packages are still installed' >&2; exit 1
        fi
        cp -a /root/zfs-modules/. /lib/modules/$kver/
        rm -rf /root/zfs-modules
        depmod -a $kver
        echo zfs.ko version: \$(modinfo -k $kver -F version zfs)
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
            /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/log/*.log /var/log/apt/* /tmp/* /var/tmp/*
        # pyzfs loads libzfs_core.so at import (ABI mode: no compiler needed)
        python3 -c 'import libzfs_core, sys; print(\"pyzfs\", libzfs_core.__file__, sys.version.split()[0])'
    "
    step_end slim
fi

# --- guest configuration ----------------------------------------------------
step_begin configure
# zfs is loaded at boot by a unit of its own that does not hold up SSH (the module load takes
# seconds under TCG); nothing is imported or mounted at boot: every boot gets blank pool disks
cat > "$tree/etc/systemd/system/smartos-imgadm-zfs.service" <<'UNIT'
[Unit]
Description=Load the zfs module (smartos.imgadm test guest)

[Service]
Type=oneshot
ExecStart=/sbin/modprobe zfs
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
UNIT
cat > "$tree/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,noatime,errors=remount-ro 0 0
EOF
# Static address on QEMU's user-mode network (guest.sh starts it with net=192.0.2.0/24,
# restrict=on): no DHCP wait, and the guest cannot reach anything beyond QEMU.
mkdir -p "$tree/etc/systemd/network"
cat > "$tree/etc/systemd/network/10-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
Address=192.0.2.15/24
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
mkdir -p "$tree/etc/ssh/sshd_config.d"
cat > "$tree/etc/ssh/sshd_config.d/90-smartos-imgadm.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
AllowTcpForwarding yes
GatewayPorts no
MaxStartups 30:30:100
MaxSessions 30
EOF
in_chroot "
    systemctl enable systemd-networkd.service ssh.service smartos-imgadm-zfs.service >/dev/null 2>&1
    systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
        e2scrub_all.timer e2scrub_reap.service fstrim.timer zfs-zed.service zfs-load-module.service \
        zfs-import-cache.service zfs-import-scan.service zfs-mount.service zfs-share.service \
        zfs-volume-wait.service systemd-udev-settle.service >/dev/null 2>&1 || true
    : > /etc/machine-id
    rm -f /var/lib/dbus/machine-id
" > "$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; die "configure failed"; }
rm -f "$tree/usr/sbin/policy-rc.d"

mkdir -p "$work/out"
ssh-keygen -q -t ed25519 -N '' -C smartos-imgadm-openzfs -f "$work/out/id_ed25519"
install -d -m 700 "$tree/root/.ssh"
install -m 600 "$work/out/id_ed25519.pub" "$tree/root/.ssh/authorized_keys"
cp "$tree/boot/vmlinuz-$kver" "$work/out/vmlinuz"
cp "$tree/boot/initrd.img-$kver" "$work/out/initrd.img"
echo "$kver" > "$work/out/kernel-version"
in_chroot "dpkg-query -W -f '\${Package} \${Version}\n' zfsutils-linux python3-pyzfs python3 openssh-server linux-image-$kver" > "$work/out/packages"
step_end configure

# --- disk image -------------------------------------------------------------
step_begin mkfs
cleanup_mounts
tree_mib=$(du -sm "$tree" | cut -f1)
log "guest tree: $tree_mib MiB"
deadline "$apt_timeout" mkfs.ext4 mkfs.ext4 -q -F -L openzfs-root -E root_owner=0:0 -d "$tree" "$work/out/root.img" "$disk_size"
step_end mkfs

echo "$settings" > "$work/out/settings"
mkdir -p "$work/out/logs"
cp "$work"/*.log "$work/out/logs/" 2>/dev/null || true
printf '%stotal %s\n' "$timing_lines" "$((SECONDS - t_all))" > "$work/out/timings"
rm -rf "$out"
mv "$work/out" "$out"
touch "$out/.done"
rm -rf "$work"
# only the newest build stays
for old in "$cache"/guest-*; do
    [ "$old" = "$out" ] || rm -rf "$old"
done
log "done in $((SECONDS - t_all)) s: $out (root.img $(du -sm "$out/root.img" | cut -f1) MiB allocated, tree was $tree_mib MiB)"
echo "$out"
