"""Which weights a run uses: pretrained, tiny random (tests) or real-size random (timing)."""

from __future__ import annotations

import enum
import os

from ..errors import BadInputError

MODELS_ENV = "IMAGE_TO_3D_MODELS"


class ModelMode(enum.StrEnum):
    REAL = "real"  # pretrained weights: what users run
    TINY = "tiny"  # same classes, tiny configs, random seeded weights: tests only, outputs meaningless
    FULL_RANDOM = "full-random"  # real-size architectures, random weights: timing only

    @property
    def meaningless(self) -> bool:
        """True where outputs come from random weights and every output file must say so."""
        return self is not ModelMode.REAL


def resolve_model_mode(value: str | None = None) -> ModelMode:
    """``--models`` if given, else ``$IMAGE_TO_3D_MODELS``, else ``real``."""
    raw = value if value else os.environ.get(MODELS_ENV, "") or ModelMode.REAL.value
    try:
        return ModelMode(raw)
    except ValueError:
        choices = ", ".join(m.value for m in ModelMode)
        raise BadInputError(f"unknown model mode {raw!r} (choose one of {choices})") from None
