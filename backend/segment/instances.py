"""Choosing another of SAM 3's instances after the fact, from the instance masks a segment saved.

SAM 3 returns every instance of the phrase; ``segment`` keeps the best (or ``--instance``'s choice) as the mask
and saves each instance as ``<slug>.instance-<N>.mask.png`` (backend.segment.outputs.write_instance_masks).
Picking another one, or the union, is then a file operation: no model runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic_output import AtomicOutputDir
from ..errors import BadInputError
from ..images import load_image
from ..job_control import JobControl, ensure_control
from .outputs import PromptFiles, read_mask_png, write_mask_images
from .sam3_config import InstanceChoice
from .slug import slugify

if TYPE_CHECKING:
    from ..api import ChooseInstanceRequest, CorrectedMask


def chosen_instance_mask(instance_masks: tuple[str, ...], choice: InstanceChoice) -> np.ndarray:
    """[H, W] bool: the mask of rank N, or the union of all (``best`` is rank 1)."""
    if not instance_masks:
        raise BadInputError("no saved SAM 3 instances to choose from (segment with the SAM 3 segmenter first)")
    if choice.kind == "union":
        return np.logical_or.reduce([read_mask_png(path) for path in instance_masks])
    rank = 1 if choice.kind == "best" else choice.rank
    if rank > len(instance_masks):
        raise BadInputError(f"instance {rank} asked for, but only {len(instance_masks)} were saved")
    return read_mask_png(instance_masks[rank - 1])


def choose_saved_instance(request: ChooseInstanceRequest, control: JobControl | None = None) -> CorrectedMask:
    from ..api import CorrectedMask

    control = ensure_control(control)
    choice = InstanceChoice.parse(request.instance)
    control.report("choose instance", 0.0, str(choice))
    image = load_image(request.image_path)
    mask = chosen_instance_mask(tuple(request.instance_masks), choice)
    if mask.shape != image.size:
        raise BadInputError(f"the instance masks are {mask.shape[1]}x{mask.shape[0]} px, the photo "
                            f"{image.size[1]}x{image.size[0]}")
    slug = slugify(request.prompt)
    out_dir = Path(request.out_dir)
    with AtomicOutputDir(out_dir) as staging:
        staged = write_mask_images(staging, image, request.prompt, slug, mask)
    control.report("choose instance", 1.0)
    return CorrectedMask(out_dir, request.prompt, slug,
                         PromptFiles(*(out_dir / path.name for path in (staged.mask, staged.cutout, staged.overlay))))
