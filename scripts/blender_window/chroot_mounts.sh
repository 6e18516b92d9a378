#!/usr/bin/env bash
# Mount (or unmount) what a chroot needs: /proc, /sys, /dev, /dev/pts, plus /work and any HOST_PATHs bound at
# the same path inside, so the repository, its .venv and the Python that .venv links to have identical paths
# inside and outside the chroot (the add-on's "existing Python" preference is such a path).
# Usage: chroot_mounts.sh mount CHROOT_DIR [HOST_PATH ...]
#        chroot_mounts.sh umount CHROOT_DIR        (everything mounted under CHROOT_DIR, deepest first)
set -euo pipefail
ACTION="${1:-}"
CHROOT_DIR="${2:-}"
if [[ -z "$ACTION" || -z "$CHROOT_DIR" ]]; then
    echo "chroot_mounts.sh: usage: chroot_mounts.sh mount|umount CHROOT_DIR [HOST_PATH ...]" >&2
    exit 2
fi
CHROOT_DIR="$(realpath "$CHROOT_DIR")"
shift 2

bind_same_path() {  # bind a host folder at the same path inside the chroot (read-only unless it is /work)
    local host="$1" inside="$CHROOT_DIR$1"
    mkdir -p "$inside"
    mountpoint -q "$inside" && return 0
    mount --bind "$host" "$inside"
}

case "$ACTION" in
mount)
    mkdir -p "$CHROOT_DIR"/{proc,sys,dev,tmp}
    mountpoint -q "$CHROOT_DIR/proc" || mount -t proc proc "$CHROOT_DIR/proc"
    mountpoint -q "$CHROOT_DIR/sys" || mount -t sysfs sysfs "$CHROOT_DIR/sys"
    mountpoint -q "$CHROOT_DIR/dev" || mount --bind /dev "$CHROOT_DIR/dev"
    mkdir -p "$CHROOT_DIR/dev/pts"
    mountpoint -q "$CHROOT_DIR/dev/pts" || mount --bind /dev/pts "$CHROOT_DIR/dev/pts"
    chmod 1777 "$CHROOT_DIR/tmp"
    # /work is bound without its sub-mounts (plain --bind), so the chroot inside /work is not seen twice.
    bind_same_path /work
    for host in "$@"; do
        bind_same_path "$host"
    done
    cp -L /etc/resolv.conf "$CHROOT_DIR/etc/resolv.conf" 2>/dev/null || true  # DNS for apt
    ;;
umount)
    # /proc/mounts lists mount points with spaces as \040; ours have none.
    awk -v root="$CHROOT_DIR/" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r | while read -r point; do
        umount -l "$point"
    done
    ;;
*)
    echo "chroot_mounts.sh: unknown action '$ACTION' (mount or umount)" >&2
    exit 2
    ;;
esac
