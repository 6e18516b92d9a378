"""What the libraries we call print on their own, silenced in one place (issue 24: a command prints only its
own progress and result; ``-v`` shows the rest).

Three kinds of noise reach a terminal from a generate run: diffusers' and transformers' log warnings (e.g.
"There are modules in UNet2DConditionModel that should be kept in float32" when Zero123 is cast to fp16),
their and huggingface_hub's tqdm bars (transformers' "Loading weights"), and PyTorch's UserWarning that an
AccumulateGrad node's stream differs from its gradient's. None is something the user can act on.

The libraries read their verbosity and progress-bar switches from the environment when first imported, and
from their own setters afterwards; :func:`silence_third_party_output` does both, so it works whether or not
they are loaded yet (the CLI calls it before any of them is imported; a worker may have them loaded).
"""

from __future__ import annotations

import os
import sys
import warnings

# Read by each library when it is first imported (its logging module's default level, hub's bar switch).
_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
# PyTorch's autograd engine warns (a UserWarning, once per process) when a gradient arrives on another
# CUDA stream than the leaf's; harmless for us and not ours to fix.
_TORCH_STREAM_WARNING = r".*AccumulateGrad.*stream.*"


def silence_third_party_output() -> None:
    """Errors only from diffusers, transformers and huggingface_hub, no bars of theirs, no torch stream warning."""
    for name, value in _ENVIRONMENT.items():
        os.environ[name] = value
    warnings.filterwarnings("ignore", message=_TORCH_STREAM_WARNING, category=UserWarning)
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    if "diffusers" in sys.modules:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
