"""Several objects from one photo: one segmentation pass for every prompt, then one generate job per prompt.

Segmentation runs once (one CLIPSeg forward, one SAM image embedding for all prompts, see
``backend.segment.api``); each object then goes through the rest of :func:`~backend.generate.generate` with
its mask given, in prompt order, as a queue. ``on_object_done`` hears of each finished object at once, so a
caller (the Blender add-on) can import it while the next one is built. Cancel stops the queue: objects
already finished stay finished (their folders are complete), the one in progress leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..images import load_image
from ..job_control import JobControl, Progress, ensure_control
from .pipeline import generate
from .request import GenerateRequest, GenerationResult
from .stage_costs import object_prefix, segmentation_prefix


@dataclass(frozen=True)
class ObjectDone:
    """One finished object of a :func:`generate_many` queue."""

    index: int  # 0-based position in the prompt list
    count: int  # number of prompts
    prompt: str
    result: GenerationResult


@dataclass(frozen=True)
class ManyGenerationResult:
    out_root: Path
    objects: tuple[ObjectDone, ...]  # in prompt order
    segment_seconds: float  # the one shared segmentation pass


def generate_many(image_path: str | os.PathLike, prompts: Sequence[str], out_root: str | os.PathLike,
                  template: GenerateRequest | None = None, control: JobControl | None = None,
                  on_object_done: Callable[[ObjectDone], None] | None = None) -> ManyGenerationResult:
    """Segment ``image_path`` once for all ``prompts``, then generate one object per prompt.

    Object i is written to ``out_root/<i+1>-<slug>/`` (model.glb, job.json, … as :func:`generate` writes).
    ``template`` carries the other settings (preset, seed, mode, models, device…); its image, prompt, mask
    and out_dir are replaced. ``on_object_done`` runs in the calling thread after each object.
    Raises what segmentation or generate raise (CancelledError on cancel, after the finished objects were
    reported).
    """
    import time

    from ..segment import segment_image
    from ..segment.config import check_prompts

    # 1. Check inputs; one image load for the whole queue.
    control = ensure_control(control)
    prompts = check_prompts(prompts)
    template = template or GenerateRequest(image_path=str(image_path), prompt=None, out_dir=str(out_root))
    image = load_image(image_path)
    count = len(prompts)

    # 2. One segmentation pass: every prompt's mask from one SAM embedding.
    started = time.perf_counter()
    config = template.segment_config()
    masks = segment_image(image, prompts, config, _prefixed(control, segmentation_prefix(count)))
    segment_seconds = time.perf_counter() - started

    # 3. The queue: the rest of the pipeline per object, each with its own mask.
    done: list[ObjectDone] = []
    for index, (prompt, segmentation) in enumerate(zip(prompts, masks, strict=True)):
        request = dataclasses.replace(template, image_path=str(image_path), prompt=prompt, mask=segmentation.mask,
                                      out_dir=str(Path(out_root) / f"{index + 1}-{segmentation.slug}"))
        object_control = _prefixed(control, object_prefix(index, count))
        result = generate(request, object_control)
        item = ObjectDone(index=index, count=count, prompt=prompt, result=result)
        done.append(item)
        if on_object_done is not None:
            on_object_done(item)
    return ManyGenerationResult(out_root=Path(out_root), objects=tuple(done), segment_seconds=segment_seconds)


def _prefixed(control: JobControl, prefix: str) -> JobControl:
    """A control sharing ``control``'s cancel event whose progress stages read "<prefix>: <stage>"."""
    def forward(event: Progress) -> None:
        if control.on_progress is not None:
            control.on_progress(Progress(f"{prefix}: {event.stage}", event.fraction, event.message))

    return JobControl(cancel_event=control.cancel_event, on_progress=forward)
