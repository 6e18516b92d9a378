"""``torch.compile`` where it can work, and the plain call wherever it cannot: never an error for the user.

Two callers compile today, each off or on by its own measured rule: SAM 3's one-prompt text encoder and decoding
(``backend.segment.sam3_compile``, an option) and stage 1's VAE encoder in batches of rows
(``GuidanceConfig.compile_vae_encoder``; docs/batch.md). What they share lives here:

- :func:`inductor_backend_for`: inductor compiles on CUDA only where Triton imports and, off Windows, a C compiler
  for Triton's launcher exists; said once per process when not. Its on-disk cache goes to our per-user cache
  folder (``<user cache>/torchinductor``) unless ``$TORCHINDUCTOR_CACHE_DIR`` says otherwise, so a later process
  on the same machine compiles in a fraction of the first one's time.
- :class:`CompiledCall`: the compiled function for the calls it is wanted for; any failure (an op inductor cannot
  lower, compiled code a CUDA graph cannot capture) logs one warning and leaves the plain call for the rest of the
  process. Running out of GPU memory is raised, as everywhere.
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

from .cuda_graph import CudaGraph, input_signature

logger = logging.getLogger(__name__)

Backend = str | Callable  # a torch.compile backend: a registered name or a callable (tests)


def inductor_backend_for(device: torch.device) -> str | None:
    """``"inductor"`` where compiling can work on ``device`` (CUDA with Triton), else None (the plain calls)."""
    if device.type != "cuda" or not _triton_usable():
        return None
    _use_our_inductor_cache()
    return "inductor"


@functools.cache
def _triton_usable() -> bool:
    """Whether Triton (inductor's GPU code generator) is installed and, off Windows, has the C compiler it builds
    its CUDA launcher with (``$CC``, cc, gcc or clang; triton-windows brings its own). Said once per process
    when not: without it a compile would fail only after tracing the model, every process."""
    if importlib.util.find_spec("triton") is None:
        logger.info("Triton is not installed: torch.compile is skipped, everything runs uncompiled")
        return False
    if sys.platform != "win32" and not (os.environ.get("CC") or any(map(shutil.which, ("cc", "gcc", "clang")))):
        logger.info("no C compiler for Triton ($CC, cc, gcc or clang): everything runs uncompiled")
        return False
    return True


def _use_our_inductor_cache() -> None:
    """Point inductor's on-disk cache at our per-user cache folder, unless the user chose one."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return
    from .errors import BadInputError
    from .private_dirs import private_folder, user_cache_dir

    try:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(private_folder(user_cache_dir() / "torchinductor"))
    except BadInputError as exc:  # not ours to use: inductor's default (a folder under the temp dir) serves
        logger.info("inductor's cache stays at its default: %s", exc)


def every_call(inputs: Sequence[torch.Tensor]) -> bool:
    """Compile for every call (each input signature is a compile of its own)."""
    return True


class CompiledCall:
    """``fn`` through ``torch.compile`` for the calls ``wanted`` picks, ``fn`` itself for the others and, from
    the first failure on, for all (see the module doc). ``name`` says what is compiled in the log ("SAM 3's text
    encoder").

    first_call_seconds: per input signature, the wall time of its first compiled call (compiling plus one run,
    CUDA synchronised): the compile time a process pays. failure: why compiling failed, or None.
    """

    def __init__(self, fn: Callable[..., object], name: str, backend: Backend, mode: str | None = None,
                 wanted: Callable[[Sequence[torch.Tensor]], bool] = every_call):
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
            logger.info("compiled %s (%s) for inputs %s in %.1f s", self.name, self.backend_name, key,
                        self.first_call_seconds[key])
        return out

    def compiling(self, inputs: Sequence[torch.Tensor]) -> bool:
        """Whether a call with ``inputs`` goes through the compiled code."""
        return self.failure is None and self.wanted(inputs)

    def give_up(self, why: str) -> None:
        """The plain call from now on, said once."""
        self.failure = why
        logger.warning("torch.compile (%s) of %s failed (%s); running it uncompiled", self.backend_name, self.name,
                       why)

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
