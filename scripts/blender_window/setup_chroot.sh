#!/usr/bin/env bash
# Build a Debian 13 (trixie) chroot that holds a real Blender (Debian's `blender`
# package, 4.3.2 with Python 3.13) plus a virtual X server, so the add-on can be
# driven in a real Blender window and screenshotted on a headless Linux box.
#
# Usage (as root, on a Debian/Ubuntu host with network to deb.debian.org):
#   bash scripts/blender_window/setup_chroot.sh [CHROOT_DIR]
# CHROOT_DIR defaults to /work/chroot-trixie. It is kept OUT of the repository
# (it is ~2 GB). Re-running is safe: debootstrap is skipped when the chroot exists.
# Takes ~10-20 min (debootstrap + ~1 GB of packages).
set -euo pipefail

CHROOT_DIR="${1:-${CHROOT_DIR:-/work/chroot-trixie}}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

if [[ $EUID -ne 0 ]]; then
    echo "setup_chroot.sh: must run as root (debootstrap, chroot)" >&2
    exit 2
fi
command -v debootstrap >/dev/null || apt-get install -y debootstrap

if [[ ! -x "$CHROOT_DIR/usr/bin/apt-get" ]]; then
    debootstrap --variant=minbase trixie "$CHROOT_DIR" "$MIRROR"
fi

# The chroot needs /proc, /dev and /sys for apt's maintainer scripts and for
# Blender/Xvfb later; run_in_chroot.sh mounts them the same way.
bash "$(dirname "$0")/chroot_mounts.sh" mount "$CHROOT_DIR"
trap 'bash "$(dirname "$0")/chroot_mounts.sh" umount "$CHROOT_DIR"' EXIT

chroot "$CHROOT_DIR" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    apt-get update
# blender: the GUI under test. xvfb + xauth: xvfb-run's virtual display.
# libgl1-mesa-dri: software OpenGL (llvmpipe) for Blender under Xvfb.
# imagemagick: `import -window root` screenshots. xdotool: keys/clicks by hand
# (the scripts here drive Blender from Python and do not need it).
# python3-numpy: Debian's blender runs on the system python3.13 and takes numpy
# from it. The lib* packages are the shared libraries a host-built Python
# (the repo's .venv, a pyenv 3.11 bound in by run_in_chroot.sh) loads for
# ssl, ctypes, sqlite3, bz2, lzma, readline: the worker runs on that Python.
chroot "$CHROOT_DIR" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends \
    blender xvfb xauth imagemagick xdotool python3-numpy fonts-dejavu-core \
    ca-certificates libssl3t64 libffi8 libsqlite3-0 libbz2-1.0 liblzma5 \
    zlib1g libexpat1 libuuid1 libcrypt1 libreadline8t64 libncursesw6 libgomp1 \
    libgl1-mesa-dri
# Blender lists mounted file systems (its file browser's bookmarks) from /etc/mtab, which minbase lacks.
ln -sf /proc/self/mounts "$CHROOT_DIR/etc/mtab"
chroot "$CHROOT_DIR" blender --version | head -1
