"""Choosing the torch device for a job (``--device auto|cpu|cuda``)."""

from __future__ import annotations

from .errors import BadInputError


def resolve_device(choice: str = "auto"):
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError("--device cuda was asked for but no CUDA GPU is available to torch")
        return torch.device("cuda")
    if choice == "cpu":
        return torch.device("cpu")
    raise BadInputError(f"unknown device {choice!r} (choose auto, cpu or cuda)")
