"""How torch's CPU threads wait for each other: asleep, not spinning (``OMP_WAIT_POLICY=PASSIVE``).

Between two parallel operations an OpenMP thread that has finished its share spins on a core until the
others catch up (libgomp's default). That is cheap on an idle machine and ruinous on a busy one: the
spinning thread holds the core the late thread needs. Measured on a shared 2-core machine at load average 10:
one forward of the tiny test UNet took 5.5 s with the default policy, 0.15 s with PASSIVE, 0.10 s on one
thread; a Preview run with the Best method, 106 s to 175 s wall with the default, 39 s to 41 s with PASSIVE.
An artist's laptop is busy too (Blender draws while the worker fits); on an idle one a sleeping thread costs a
wake-up per parallel region, microseconds (not measured here: this machine is never idle).

The runtime reads the variable once, when torch loads it, so this runs before any torch import (the
package's ``__init__``). A value already in the environment wins. Not inside Blender: its own OpenMP runtime
is loaded already, and the host's environment is not ours to change; the worker, a process of its own, sets
it there.
"""

from __future__ import annotations

import os
import sys

OPENMP_WAIT_POLICY = "PASSIVE"


def prefer_sleeping_threads() -> None:
    """Set ``OMP_WAIT_POLICY`` to PASSIVE unless it is set already or this is Blender's own process."""
    if "bpy" in sys.modules:
        return
    os.environ.setdefault("OMP_WAIT_POLICY", OPENMP_WAIT_POLICY)
