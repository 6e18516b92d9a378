#!/usr/bin/env bash
# The whole real-Blender-window run in one command: build the small extension zip, install it into the
# chroot's Blender (Debian trixie's blender 4.3.2, Python 3.13), drive the panel under Xvfb (the Method menu,
# Segment, Generate with Preview, a cancelled Generate, an error and its Details, the preferences' Models
# section), take the screenshots, time the same jobs under `blender -b`, and copy the cropped screenshots
# into docs/images/ (about 6 minutes on a loaded 2-core CPU).
#
# Usage (as root, from anywhere; the chroot comes from setup_chroot.sh):
#   bash scripts/blender_window/screenshots.sh
# Environment: CHROOT_DIR (default /work/chroot-trixie), WORKER_PYTHON (default <repo>/.venv/bin/python, a
# Python with the backend's packages; it runs the worker, so Blender's own process never imports torch),
# RUN_DIR (default <repo>/out/blender-window: logs, full screenshots, results JSON), NO_DOCS=1 to leave
# docs/images/ alone, SKIP_BACKGROUND=1 to leave out the `blender -b` timing run.
# Exit codes: 0 every step ran; 2 usage (not root, no chroot); 1 a step failed or Blender crashed (the
# summary says which; logs are in RUN_DIR).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CHROOT_DIR="${CHROOT_DIR:-/work/chroot-trixie}"
WORKER_PYTHON="${WORKER_PYTHON:-$REPO/.venv/bin/python}"
RUN_DIR="${RUN_DIR:-$REPO/out/blender-window}"
PROMPT="a coffee cup"
SCREEN=1600x1150  # tall enough that the sidebar shows the mask preview whole

if [[ $EUID -ne 0 ]]; then
    echo "screenshots.sh: must run as root (chroot)" >&2
    exit 2
fi
if [[ ! -x "$CHROOT_DIR/usr/bin/blender" ]]; then
    echo "screenshots.sh: no Blender in $CHROOT_DIR; build it with scripts/blender_window/setup_chroot.sh" >&2
    exit 2
fi
case "$REPO" in /work/*) ;; *)
    echo "screenshots.sh: the repository must live under /work (bound into the chroot at the same path)" >&2
    exit 2 ;;
esac

# Start clean, but only ever delete a folder an earlier run made (it holds the marker file).
if [[ -e "$RUN_DIR" && ! -e "$RUN_DIR/.blender-window-run" ]]; then
    echo "screenshots.sh: $RUN_DIR exists and is not an earlier run's folder; set RUN_DIR elsewhere" >&2
    exit 2
fi
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/shots"
touch "$RUN_DIR/.blender-window-run"
# The worker's interpreter must exist inside the chroot at the same path: bind the Python install that the
# venv links to (a pyenv build under /root here) next to /work.
WORKER_PYTHON_REAL="$(readlink -f "$WORKER_PYTHON")"
PYTHON_PREFIX="$(dirname "$(dirname "$WORKER_PYTHON_REAL")")"
PHOTO="$("$WORKER_PYTHON" -c 'import pathlib, skimage; print(pathlib.Path(skimage.__file__).parent / "data" / "coffee.png")')"

# 1. the small zip (no wheels): what a user installs from disk
"$REPO/.venv/bin/python" "$REPO/scripts/build_extension.py" --platform any --out "$RUN_DIR/dist" >"$RUN_DIR/build.log" 2>&1
ZIP="$(ls "$RUN_DIR"/dist/image_to_3d-*.zip | head -1)"

bash "$HERE/chroot_mounts.sh" mount "$CHROOT_DIR" "$PYTHON_PREFIX"
trap 'bash "$HERE/chroot_mounts.sh" umount "$CHROOT_DIR"' EXIT

# Everything inside runs with a clean environment: a fresh Blender user folder, tiny models, no network for
# models, caches in the run folder. The worker inherits this environment from Blender.
in_chroot() {
    chroot "$CHROOT_DIR" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
        BLENDER_USER_RESOURCES="$RUN_DIR/blender-user" IMAGE_TO_3D_MODELS=tiny HF_HUB_OFFLINE=1 \
        XDG_CACHE_HOME="$RUN_DIR/cache" HF_HOME="$RUN_DIR/hf" TORCH_EXTENSIONS_DIR="$RUN_DIR/torch-ext" \
        "$@"
}

# 2. install + enable + preferences (worker Python, CPU, output folder), saved in the fresh user folder
in_chroot blender -b --python "$HERE/install_extension.py" -- --zip "$ZIP" --worker-python "$WORKER_PYTHON" \
    --jobs-dir "$RUN_DIR/jobs" >"$RUN_DIR/install.log" 2>&1 || { tail -20 "$RUN_DIR/install.log"; exit 1; }
grep '^install_extension:' "$RUN_DIR/install.log"

# 3. the window: xvfb-run gives Blender a display; the driver takes the screenshots with ImageMagick
set +e
# Each run has its own job cache (masks, stage-1 Gaussians), so neither reuses the other's work.
in_chroot env IMAGE_TO_3D_CACHE="$RUN_DIR/cache-window" xvfb-run -a -s "-screen 0 ${SCREEN}x24" blender -p 0 0 "${SCREEN%x*}" "${SCREEN#*x}" \
    --python "$HERE/drive_panel.py" -- --photo "$PHOTO" --prompt "$PROMPT" --shots "$RUN_DIR/shots" \
    --results "$RUN_DIR/window.json" >"$RUN_DIR/window.log" 2>&1
WINDOW_CODE=$?
# 4. the same jobs under blender -b (SKIP_BACKGROUND=1 leaves them out)
[[ "${SKIP_BACKGROUND:-}" == 1 ]] || in_chroot env IMAGE_TO_3D_CACHE="$RUN_DIR/cache-background" blender -b --python "$HERE/drive_background.py" -- --photo "$PHOTO" --prompt "$PROMPT" \
    --results "$RUN_DIR/background.json" >"$RUN_DIR/background.log" 2>&1
BACKGROUND_CODE=$?
[[ "${SKIP_BACKGROUND:-}" == 1 ]] && BACKGROUND_CODE=0
set -e

echo "window run: exit $WINDOW_CODE (log $RUN_DIR/window.log); background run: exit $BACKGROUND_CODE"
grep -h -i -E "segmentation fault|crash|Traceback|Error" "$RUN_DIR/window.log" "$RUN_DIR/background.log" | head -20 || true
"$REPO/.venv/bin/python" "$HERE/summarise_run.py" "$RUN_DIR" || true  # the last line decides the exit code

if [[ "${NO_DOCS:-}" != 1 && $WINDOW_CODE -eq 0 ]]; then
    for shot in panel-idle method-choice panel-segmented progress cancelling after-import error error-details \
        preferences-models; do
        cp "$RUN_DIR/shots/$shot.png" "$REPO/docs/images/blender-$shot.png"
    done
    echo "copied the screenshots to docs/images/blender-*.png"
fi
[[ $WINDOW_CODE -eq 0 && $BACKGROUND_CODE -eq 0 ]] || exit 1
