"""``torch.compile`` for the static path's prompt-dependent calls (text encoder, decoding), inside our CUDA graphs.

With every launch already in a CUDA graph (``backend.cuda_graph``), what is left of a further prompt is the
GPU's own time for ~1,400 small kernels: ~360 linear layers, ~100 layer norms, residual adds, the box bias.
Inductor fuses the norms, adds and element-wise math into fewer Triton kernels; our :class:`CudaGraph` then
captures the compiled call as it captured the plain one (inductor's own CUDA graphs stay off: the modes allowed
here have none, ``COMPILE_MODES``).

- An option, off by default (``Sam3SegmentConfig.compile_mode``): on an H200 it saved 1.9 ms a further prompt
  and cost 52 s at a process's first prompt (docs/performance.md). Asked for, it runs on CUDA when Triton
  imports; the CPU runs the plain calls.
- Only calls for one prompt are compiled (``StaticPromptDecoder`` passes :func:`one_prompt`), specialised to
  their shapes (``dynamic=False``): each prompt count would be a compile of its own, and one prompt at a time
  is the interactive case that the ≤ 5 ms target is about; batches run the plain calls (in their own graphs),
  whose launches they already share.
- Compiling happens at the first call (inside the graph's warm-up) and is timed and logged; the first prompt
  of a process pays it once (``scripts/bench_sam3.py`` reports how long: ``compile``, ``first_prompt_cold_s``).
  Inductor keeps what it built on disk, in ``$TORCHINDUCTOR_CACHE_DIR`` (set to ``<user cache>/torchinductor``
  when unset), so later processes compile faster.
- Any failure (no Triton, no C compiler for Triton's launcher, an op inductor cannot lower, compiled code that a
  CUDA graph cannot capture, e.g. a copy from pageable host memory) logs one warning and leaves the plain call
  for the rest of the process: never an error for the user. Running out of GPU memory is raised, as everywhere.

``tests/test_segment_sam3_compile.py`` checks the compiled calls against the plain ones on the tiny model with
the ``aot_eager`` backend (no C++ compiler needed) and the fallback when compiling raises.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence

import torch

from ..cuda_graph import CudaGraph, input_signature
from .sam3_config import COMPILE_OFF

logger = logging.getLogger(__name__)

Backend = str | Callable  # a torch.compile backend: a registered name or a callable (tests)


def compile_backend_for(device: torch.device, compile_mode: str) -> str | None:
    """``"inductor"`` where compiling is wanted and can work (CUDA with Triton), else None (the plain calls)."""
    if compile_mode == COMPILE_OFF or device.type != "cuda":
        return None
    if not _triton_usable():
        return None
    _use_our_inductor_cache()
    return "inductor"


@functools.cache
def _triton_usable() -> bool:
    """Whether Triton (inductor's GPU code generator) is installed and, off Windows, has the C compiler it builds
    its CUDA launcher with (``$CC``, cc, gcc or clang; triton-windows brings its own). Said once per process
    when not: without it a compile would fail only after tracing the model, every process."""
    if importlib.util.find_spec("triton") is None:
        logger.info("Triton is not installed: SAM 3 runs uncompiled (compile_mode 'off' says so explicitly)")
        return False
    if sys.platform != "win32" and not (os.environ.get("CC") or any(map(shutil.which, ("cc", "gcc", "clang")))):
        logger.info("no C compiler for Triton ($CC, cc, gcc or clang): SAM 3 runs uncompiled")
        return False
    return True


def _use_our_inductor_cache() -> None:
    """Point inductor's on-disk cache at our per-user cache folder, unless the user chose one."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return
    from ..errors import BadInputError
    from ..private_dirs import private_folder, user_cache_dir

    try:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(private_folder(user_cache_dir() / "torchinductor"))
    except BadInputError as exc:  # not ours to use: inductor's default (a folder under the temp dir) serves
        logger.info("inductor's cache stays at its default: %s", exc)


def one_prompt(inputs: Sequence[torch.Tensor]) -> bool:
    """Whether a call is for one prompt (its first input's leading dimension is the prompt count)."""
    return bool(inputs) and inputs[0].shape[0] == 1


class CompiledCall:
    """``fn`` through ``torch.compile`` for the calls ``wanted`` picks, ``fn`` itself for the others and, from
    the first failure on, for all (see the module doc).

    first_call_seconds: per input signature, the wall time of its first compiled call (compiling plus one run,
    CUDA synchronised): the compile time a process pays. failure: why compiling failed, or None.
    """

    def __init__(self, fn: Callable[..., object], name: str, backend: Backend, mode: str | None = None,
                 wanted: Callable[[Sequence[torch.Tensor]], bool] = one_prompt):
        self.plain = fn
        self.wanted = wanted
        self.name = name
        self.backend_name = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
        options = {"mode": mode} if mode and mode != "default" else {}
        self.compiled = torch.compile(fn, backend=backend, dynamic=False, **options)
        self.first_call_seconds: dict[tuple, float] = {}
        self.failure: str | None = None

    def __call__(self, *inputs: torch.Tensor):
        if not self.compiling(inputs):
            return self.plain(*inputs)
        key = input_signature(inputs)
        first = key not in self.first_call_seconds
        started = time.perf_counter()
        try:
            out = self.compiled(*inputs)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed compile leaves the plain call, which is correct
            self.give_up(_describe(exc))
            return self.plain(*inputs)
        if first:
            if inputs and inputs[0].is_cuda and not torch.cuda.is_current_stream_capturing():
                torch.cuda.synchronize(inputs[0].device)
            self.first_call_seconds[key] = time.perf_counter() - started
            logger.info("compiled SAM 3's %s (%s) for inputs %s in %.1f s", self.name, self.backend_name, key,
                        self.first_call_seconds[key])
        return out

    def compiling(self, inputs: Sequence[torch.Tensor]) -> bool:
        """Whether a call with ``inputs`` goes through the compiled code."""
        return self.failure is None and self.wanted(inputs)

    def give_up(self, why: str) -> None:
        """The plain call from now on, said once."""
        self.failure = why
        logger.warning("torch.compile (%s) of SAM 3's %s failed (%s); running it uncompiled", self.backend_name,
                       self.name, why)

    def graph_capture(self, fn: Callable[..., object], inputs: Sequence[torch.Tensor]):
        """``CudaGraph(fn, inputs)`` for ``GraphCache(capture=...)``: when the compiled call cannot be captured,
        :meth:`give_up` and capture the plain call instead (what the graph held before compiling)."""
        try:
            return CudaGraph(fn, inputs)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:
            if not self.compiling(inputs):
                raise  # the plain call failed: GraphCache's own fallback (eager) takes it from here
            self.give_up(f"a CUDA graph cannot capture the compiled call: {_describe(exc)}")
            return CudaGraph(fn, inputs)

    @property
    def compile_seconds(self) -> float:
        """All first calls together: what compiling has cost this process so far."""
        return sum(self.first_call_seconds.values())


def _describe(exc: BaseException) -> str:
    """One line: the exception's type and the first line of its root cause (dynamo wraps a backend's error)."""
    root = exc
    while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None and inner is not root:
        root = inner
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    cause = f"{type(root).__name__}: {lines[0] if lines else ''}"
    return cause if root is exc else f"{type(exc).__name__} ← {cause}"
