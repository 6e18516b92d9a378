"""The choices a user makes, declared once with their defaults: generation methods, presets, segmentation modes,
segmenters and SAM 3's options, SAM variants, devices, batch's rows per process, model modes, the seed's range. Torch-free: the CLI's
argument parser and the add-on's menus are built from these.

What a preset *does* (its step counts and sizes) lives in backend.generate.presets, keyed by these names.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadInputError
from .models.catalog import DEFAULT_SAM_VARIANT, SAM_VARIANTS
from .models.mode import ModelMode


@dataclass(frozen=True)
class Choice:
    """One option of a menu: the value a request carries, and what a person reads."""

    name: str
    label: str
    description: str


# How generate makes the object (docs/quick-method.md says when to use which).
DREAMGAUSSIAN = "dreamgaussian"  # Gaussians fitted with Zero123 SDS, mesh, baked + refined texture (minutes)
QUICK = "quick"  # one TripoSR forward pass: mesh from its density, texture from its colour field (seconds)
QUICK_REFINE = "quick+refine"  # DreamGaussian's stages, stage 1 started from TripoSR's surface with fewer steps
METHODS: tuple[Choice, ...] = (
    Choice(DREAMGAUSSIAN, "Best (minutes)",
           "Fit the object to the photo with a diffusion prior: the most photo detail, slow"),
    Choice(QUICK, "Quick (seconds)", "TripoSR makes the whole object in one pass: plausible back, softer texture"),
    Choice(QUICK_REFINE, "Quick + refine", "Start from TripoSR's object, then a shorter fit to the photo"),
)
DEFAULT_METHOD = DREAMGAUSSIAN  # until quick and quick+refine are compared with real weights

PRESETS: tuple[Choice, ...] = (
    Choice("preview", "Preview", "Rough shape to try the workflow; not final quality. The fewest steps, a coarse "
                                 "mesh, a small texture: seconds on a GPU once the models are loaded; on a "
                                 "laptop CPU about a minute with Quick, minutes with Best"),
    Choice("draft", "Draft", "Few steps: a usable object, quicker than Standard"),
    Choice("standard", "Standard", "The default"),
    Choice("high", "High", "Most steps, best texture"),
)
TEST_PRESETS: tuple[Choice, ...] = (  # offered by the CLI, not the add-on
    Choice("smoke", "Smoke", "Tiny sizes for tests and the offline smoke run"),
)
DEFAULT_PRESET = "standard"

SEGMENTATION_MODES: tuple[Choice, ...] = (
    Choice("fast", "Follow the text (quick)",
           "The words point Segment Anything at the object once: quick, right for one clear object"),
    Choice("paper", "Compare shapes (slow)",
           "Segment Anything outlines every shape in the photo and the one that best matches the words wins: "
           "slower, better when objects touch (the paper's method)"),
)
DEFAULT_SEGMENTATION_MODE = "fast"

_SAM_LABELS = {"vit_h": ("ViT-H", "Best masks, 2.5 GB"), "vit_l": ("ViT-L", "1.2 GB"),
               "vit_b": ("ViT-B", "Smallest and quickest, 375 MB")}
SAM_VARIANT_CHOICES: tuple[Choice, ...] = tuple(Choice(v, *_SAM_LABELS[v]) for v in SAM_VARIANTS)
DEFAULT_SAM = DEFAULT_SAM_VARIANT

# Which model turns the text into a mask (docs/segmentation.md says when to use which).
SEGMENTERS: tuple[Choice, ...] = (
    Choice("clipseg-sam", "Text + Segment Anything",
           "The paper's segmenter: a CLIPSeg heatmap picks Segment Anything masks (Mode: fast or paper)"),
    Choice("sam3", "SAM 3 concepts",
           "SAM 3 finds every instance of the phrase with a score; pick the best, another, or all of them. "
           "Gated weights under Meta's SAM License (consent in the preferences)"),
)
DEFAULT_SEGMENTER = "clipseg-sam"
# SAM 3: which found instance is the object: "best", "union" (all of them) or a rank "N" (1 = best)
DEFAULT_SAM3_INSTANCE = "best"
# SAM 3's presence head: the probability that the phrase names something in the photo. Below 0.5 the model
# finds absence more likely than presence, which is what "nothing matched" (exit 3) means.
DEFAULT_SAM3_PRESENCE_THRESHOLD = 0.5
# An instance counts when sigmoid(its logit) × presence exceeds this: transformers' default for
# Sam3Processor.post_process_instance_segmentation. Chosen, not tuned: `eval-phrasecut --segmenter sam3` tunes it.
DEFAULT_SAM3_INSTANCE_THRESHOLD = 0.3
SAM3_HALF_DTYPES: tuple[str, ...] = ("bfloat16", "float16")  # on CUDA with half precision; bfloat16 as SAM 3 ships

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"
# batch --rows-per-process and --workers-per-gpu: a whole number K, or this word for "chosen from the device's free
# memory" (backend.batch.row_groups: choose_rows_per_process, choose_workers_per_gpu).
AUTO_CHOICE = "auto"
# GPU memory one row of a group needs: a draft row peaked under 5 GB (docs/batch.md, one H200) and a standard
# photo→GLB job at 4.7 GB (docs/performance.md); 6 GiB leaves a margin. A shared call that runs out of memory
# fails every row of its group (exit 5), so auto must not promise rows a small GPU cannot hold.
ROW_GPU_MEMORY = 6 * 2**30  # bytes
# The largest group measured: 8 draft rows per process, 16.10 rows/min against 7.51 for 1 on one H200
# (docs/batch.md); larger groups are unmeasured.
MAX_AUTO_ROWS_PER_PROCESS = 8
# batch --ray, --workers-per-gpu auto: worker processes sharing each GPU when it has room for each worker's rows.
# Two let one worker's CPU stages (mesh, UVs, bake, export: ~7.5 s of a 25.5 s group of 8 draft rows) overlap the
# other's GPU work: on one H200, 8 rows per process, 24.55 rows/min steady with two workers against 19.89 with one
# (medians of two runs, docs/batch.md). More than two is unmeasured with groups.
AUTO_WORKERS_PER_GPU = 2
# batch --compile-vae-encoder: stage 1's VAE encoder through torch.compile. auto: on where rows run in groups
# (--rows-per-process above 1, not on the CPU), where a stage-1 step is GPU-bound and the encoder is most of its GPU
# time: one H200, 1x2x8, mid-run 26.77 rows/min compiled against 24.45 (docs/batch.md). The compile costs each
# process ~30 s the first time on a machine and a few seconds once inductor's on-disk cache holds it.
COMPILE_VAE_ENCODER_CHOICES: tuple[str, ...] = (AUTO_CHOICE, "on", "off")
MODEL_MODES: tuple[str, ...] = tuple(mode.value for mode in ModelMode)


# Seeds go to numpy (non-negative only) and to torch generators (64 bits; stage 1 also seeds one with seed + 1),
# so a seed is a non-negative 63-bit integer.
SEED_LIMIT = 2**63


def check_seed(seed: int) -> int:
    """``seed`` if usable, else BadInputError naming it (exit 2), never a numpy error deep in a stage."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise BadInputError(f"--seed must be a whole number from 0 to {SEED_LIMIT - 1}, got {seed!r}")
    return seed


def check_method(method: str) -> str:
    """``method`` if declared, else BadInputError naming it and the choices (exit 2)."""
    if method not in names(METHODS):
        raise BadInputError(f"unknown method {method!r} (choose one of {', '.join(names(METHODS))})")
    return method


def names(choices: tuple[Choice, ...]) -> list[str]:
    """The values of ``choices``, e.g. for argparse's ``choices=``."""
    return [choice.name for choice in choices]


def enum_items(choices: tuple[Choice, ...]) -> list[tuple[str, str, str]]:
    """``choices`` as Blender EnumProperty items (identifier, name, description)."""
    return [(choice.name, choice.label, choice.description) for choice in choices]
