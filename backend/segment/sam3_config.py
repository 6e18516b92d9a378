"""Settings of the SAM 3 segmenter (documented defaults; checked on construction). No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..choices import (
    DEFAULT_SAM3_INSTANCE,
    DEFAULT_SAM3_INSTANCE_THRESHOLD,
    DEFAULT_SAM3_PRESENCE_THRESHOLD,
    DEFAULT_SEGMENTER,
    SAM3_HALF_DTYPES,
    SEGMENTERS,
)
from ..errors import BadInputError

SEGMENTER_NAMES = tuple(choice.name for choice in SEGMENTERS)
# the defaults and the presence/instance thresholds are declared in backend.choices
DEFAULT_PRESENCE_THRESHOLD = DEFAULT_SAM3_PRESENCE_THRESHOLD
DEFAULT_INSTANCE_THRESHOLD = DEFAULT_SAM3_INSTANCE_THRESHOLD
HALF_DTYPES = SAM3_HALF_DTYPES
# torch.compile of the static path's text encoder and decoding (backend.segment.sam3_compile): off, or one of
# inductor's modes without its own CUDA graphs (ours capture the compiled call)
COMPILE_OFF = "off"
COMPILE_MODES = (COMPILE_OFF, "default", "max-autotune-no-cudagraphs")
# Off by default: on an H200 (bf16, full-random, nothing beside it) compiling saved 1.9 ms a further prompt (9.6 →
# 7.7 ms) and cost 52 s at the first prompt of every process (docs/performance.md): a user waits on it, and a
# process would need ~27 000 prompts to win it back. For a long-lived server, opt in.
DEFAULT_COMPILE_MODE = COMPILE_OFF
INDUCTOR_MODE = "default"  # the mode the timing scripts compile in when asked to (--compile on)


@dataclass(frozen=True)
class InstanceChoice:
    """Which of the instances SAM 3 found becomes the object mask."""

    kind: str  # "best" | "union" | "rank"
    rank: int = 1  # kind "rank": 1 = the best-scoring instance, 2 = the next, …

    @classmethod
    def parse(cls, text: str) -> InstanceChoice:
        """``best``, ``union`` or a rank ``N`` ≥ 1 (1 = best) — the CLI's ``--instance``."""
        text = str(text).strip().lower()
        if text in ("best", "union"):
            return cls(text)
        if text.isdigit() and int(text) >= 1:
            return cls("rank", int(text))
        raise BadInputError(f"unknown instance choice {text!r} (choose best, union, or a rank 1, 2, …)")

    def __str__(self) -> str:
        return str(self.rank) if self.kind == "rank" else self.kind


@dataclass(frozen=True)
class BoxPrompt:
    """An exemplar box for SAM 3 (mask correction, or --box / --exclude-box), in photo pixels (x right, y down)."""

    box: tuple[float, float, float, float]  # XYXY
    positive: bool = True  # True: "objects like this one"; False: "not like this one"

    @classmethod
    def parse(cls, text: str, positive: bool = True) -> BoxPrompt:
        """``x0,y0,x1,y1`` in photo pixels (the CLI's --box / --exclude-box)."""
        try:
            values = tuple(float(v) for v in str(text).split(","))
        except ValueError:
            values = ()
        if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]):
            raise BadInputError(f"bad box {text!r}: expected x0,y0,x1,y1 in photo pixels with x0 < x1 and y0 < y1")
        return cls(values, positive)


@dataclass(frozen=True)
class Sam3SegmentConfig:
    instance: InstanceChoice = InstanceChoice(DEFAULT_SAM3_INSTANCE)
    presence_threshold: float | None = None  # None → DEFAULT_PRESENCE_THRESHOLD (real), 0 (random weights)
    instance_threshold: float | None = None  # None → DEFAULT_INSTANCE_THRESHOLD (real), 0 (random weights)
    max_instances: int = 20  # keep at most this many instances per phrase (highest scores)
    mask_threshold: float = 0.5  # an instance's mask: sigmoid(mask logit) > this
    prompts_per_batch: int = 8  # phrases decoded together against the one vision pass (bounds memory)
    # exemplar boxes that refine every phrase of the photo (they are part of the question, so of the cache key)
    boxes: tuple[BoxPrompt, ...] = ()
    half_dtype: str = "bfloat16"  # on CUDA with SegmentConfig.half: "bfloat16" (as SAM 3 ships) or "float16"
    # How it runs, not what it answers (the same numbers; left out of comparisons, so of job cache keys): the
    # static decoder (backend.segment.sam3_static: no host syncs inside the model, text features cached per
    # phrase, CUDA graphs where SegmentConfig.cuda_graphs allows) instead of Sam3Model.forward
    static_decoding: bool = field(default=True, compare=False)
    # ... and with it, on CUDA where Triton imports, its text encoder and decoding compiled by torch.compile in
    # this inductor mode (COMPILE_MODES; "off", the default: never). The first prompt of a process pays the
    # compile; any failure falls back to the uncompiled calls with one warning (backend.segment.sam3_compile)
    compile_mode: str = field(default=DEFAULT_COMPILE_MODE, compare=False)
    # Access, not part of the question: left out of comparisons, so of job cache keys (a token is never hashed
    # into a key, written to a file or shown in a repr).
    accept_license: bool = field(default=False, compare=False)  # the user accepted the SAM License: may download
    hf_token: str | None = field(default=None, repr=False, compare=False)  # None → the stored login / $HF_TOKEN

    def __post_init__(self) -> None:
        if isinstance(self.instance, str):  # accept "best" / "union" / "2" from callers that hold text
            object.__setattr__(self, "instance", InstanceChoice.parse(self.instance))
        for name in ("presence_threshold", "instance_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise BadInputError(f"SAM 3 {name.replace('_', ' ')} must be in [0, 1], got {value}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise BadInputError(f"SAM 3 mask threshold must be in (0, 1), got {self.mask_threshold}")
        if self.max_instances < 1 or self.prompts_per_batch < 1:
            raise BadInputError(f"max_instances and prompts_per_batch must be ≥ 1, got "
                                f"{self.max_instances}/{self.prompts_per_batch}")
        if self.compile_mode not in COMPILE_MODES:
            raise BadInputError(f"unknown compile mode {self.compile_mode!r} (choose {', '.join(COMPILE_MODES)})")
        if self.half_dtype not in HALF_DTYPES:
            raise BadInputError(f"unknown half dtype {self.half_dtype!r} (choose {' or '.join(HALF_DTYPES)})")

    def thresholds(self, random_weights: bool) -> tuple[float, float]:
        """(presence, instance) thresholds in effect; random weights score ~0.5 at best, so theirs default to 0."""
        presence = self.presence_threshold
        instance = self.instance_threshold
        if presence is None:
            presence = 0.0 if random_weights else DEFAULT_PRESENCE_THRESHOLD
        if instance is None:
            instance = 0.0 if random_weights else DEFAULT_INSTANCE_THRESHOLD
        return presence, instance


def check_segmenter(name: str) -> str:
    if name not in SEGMENTER_NAMES:
        raise BadInputError(f"unknown segmenter {name!r} (choose {' or '.join(SEGMENTER_NAMES)})")
    return name


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in photo pixels


@dataclass(frozen=True)
class Sam3Options:
    """SAM 3's options as a request carries them, declared once: backend.api.SegmentRequest and GenerateRequest
    (field ``sam3``), the CLI's flags, the add-on and the worker's job messages all hold this. Plain values;
    :meth:`settings` checks them against the chosen segmenter and makes the segmenter's config."""

    instance: str = DEFAULT_SAM3_INSTANCE  # best | union | a rank N (1 = best)
    boxes: tuple[Box, ...] = ()  # examples of the object, x0, y0, x1, y1 in photo pixels
    exclude_boxes: tuple[Box, ...] = ()  # examples of what is not the object
    presence_threshold: float | None = None  # None → backend.choices.DEFAULT_SAM3_PRESENCE_THRESHOLD
    accept_license: bool = False  # the user accepted the SAM License once: the weights may be downloaded
    hf_token: str | None = field(default=None, repr=False, compare=False)  # None → `hf auth login` / $HF_TOKEN

    def settings(self, segmenter: str = DEFAULT_SEGMENTER) -> Sam3SegmentConfig:
        """The Sam3SegmentConfig of these options; options that only SAM 3 understands are bad input (exit 2)
        with the other segmenter."""
        check_segmenter(segmenter)
        choice = InstanceChoice.parse(self.instance)
        if segmenter != "sam3" and choice.kind != "best":
            raise BadInputError(f"--instance {choice} needs --segmenter sam3 (the CLIPSeg + SAM segmenter returns "
                                "one mask per prompt)")
        prompts = tuple([BoxPrompt.parse(",".join(map(str, box))) for box in self.boxes]
                        + [BoxPrompt.parse(",".join(map(str, box)), positive=False) for box in self.exclude_boxes])
        if segmenter != "sam3" and prompts:
            raise BadInputError("--box / --exclude-box need --segmenter sam3")
        return Sam3SegmentConfig(instance=choice, presence_threshold=self.presence_threshold, boxes=prompts,
                                 accept_license=bool(self.accept_license), hf_token=self.hf_token or None)
