"""The choices a user makes, declared once with their defaults: presets, segmentation modes, SAM variants,
devices, model modes. Torch-free: the CLI's argument parser and the add-on's menus are built from these.

What a preset *does* (its step counts and sizes) lives in backend.generate.presets, keyed by these names.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models.catalog import DEFAULT_SAM_VARIANT, SAM_VARIANTS
from .models.mode import ModelMode


@dataclass(frozen=True)
class Choice:
    """One option of a menu: the value a request carries, and what a person reads."""

    name: str
    label: str
    description: str


PRESETS: tuple[Choice, ...] = (
    Choice("draft", "Draft", "Fewest steps, quickest"),
    Choice("standard", "Standard", "The default"),
    Choice("high", "High", "Most steps, best texture"),
)
TEST_PRESETS: tuple[Choice, ...] = (  # offered by the CLI, not the add-on
    Choice("smoke", "Smoke", "Tiny sizes for tests and the offline smoke run"),
)
DEFAULT_PRESET = "standard"

SEGMENTATION_MODES: tuple[Choice, ...] = (
    Choice("fast", "Fast", "SAM prompted from the text heatmap"),
    Choice("paper", "Paper", "SAM automatic masks fused by the IoU rule"),
)
DEFAULT_SEGMENTATION_MODE = "fast"

_SAM_LABELS = {"vit_h": ("ViT-H", "Best masks, 2.5 GB"), "vit_l": ("ViT-L", "1.2 GB"),
               "vit_b": ("ViT-B", "Smallest and quickest, 375 MB")}
SAM_VARIANT_CHOICES: tuple[Choice, ...] = tuple(Choice(v, *_SAM_LABELS[v]) for v in SAM_VARIANTS)
DEFAULT_SAM = DEFAULT_SAM_VARIANT

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"
MODEL_MODES: tuple[str, ...] = tuple(mode.value for mode in ModelMode)


def names(choices: tuple[Choice, ...]) -> list[str]:
    """The values of ``choices``, e.g. for argparse's ``choices=``."""
    return [choice.name for choice in choices]


def enum_items(choices: tuple[Choice, ...]) -> list[tuple[str, str, str]]:
    """``choices`` as Blender EnumProperty items (identifier, name, description)."""
    return [(choice.name, choice.label, choice.description) for choice in choices]
