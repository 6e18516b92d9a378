"""The extension as installed in Blender (``bl_ext.user_default.image_to_3d``), for the scripts Blender runs here:
its modules by name, the switch of generate requests to the smoke preset, its worker's CPU time."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

PKG_ID = "image_to_3d"
REPO_MODULE = "user_default"
EXTENSION_MODULE = f"bl_ext.{REPO_MODULE}.{PKG_ID}"


def addon_module(name: str):
    """``operators.job_runner`` → the installed add-on's module of that name (imported once it is enabled)."""
    return sys.modules[f"{EXTENSION_MODULE}.{name}"]


def use_smoke_preset(stage1_steps: dict[str, int | None], preset: str | None = "smoke") -> None:
    """Send generate requests to the worker with ``preset`` (the CLI's smoke preset by default; None keeps the
    panel's), and ``stage1_steps['stage1']`` stage-1 steps when that is set (read per request, so a caller can
    change it between jobs).

    With tiny random models on a CPU, Draft and above take minutes; Preview and smoke take seconds.
    """
    worker_requests = addon_module("operators.worker_requests")
    build = worker_requests.generate_request

    def smoke_request(request_id, config, out_dir):
        job = build(request_id, config, out_dir)
        changes = {"steps": stage1_steps["stage1"]} | ({"preset": preset} if preset else {})
        return dataclasses.replace(job, request={**job.request, **changes})

    worker_requests.generate_request = smoke_request


def worker_cpu_s() -> float:
    """CPU seconds (user + system) the session's worker process has used so far; NaN without a worker."""
    connection = addon_module("operators.worker_client").current_worker()
    if connection is None:
        return float("nan")
    fields = Path(f"/proc/{connection.process.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (stat fields 14, 15)


def script_args() -> list[str]:
    """The arguments after Blender's ``--``."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
