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
  That machinery is ``backend.torch_compile``'s, shared with stage 1's compiled VAE encoder.

``tests/test_segment_sam3_compile.py`` checks the compiled calls against the plain ones on the tiny model with
the ``aot_eager`` backend (no C++ compiler needed) and the fallback when compiling raises.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..torch_compile import inductor_backend_for
from .sam3_config import COMPILE_OFF


def compile_backend_for(device: torch.device, compile_mode: str) -> str | None:
    """``"inductor"`` where compiling is wanted and can work (CUDA with Triton), else None (the plain calls)."""
    if compile_mode == COMPILE_OFF:
        return None
    return inductor_backend_for(device)


def one_prompt(inputs: Sequence[torch.Tensor]) -> bool:
    """Whether a call is for one prompt (its first input's leading dimension is the prompt count)."""
    return bool(inputs) and inputs[0].shape[0] == 1
