"""quick+refine's settings: a DreamGaussian preset adjusted for a stage 1 that starts from TripoSR's surface
(no torch here: the config is built without loading the pipeline).

Why these settings (to be checked against real weights before quick+refine can become the default):

- **Steps: 40 % of the preset's** (standard 500 → 200). In DreamGaussian's run the SDS timestep is annealed
  from high noise (t = 980) to low (t = 20); the high-noise first part is where the shape is found, the rest
  sharpens it. TripoSR hands over a shape, so what is left to do is the second part. An explicit ``--steps``
  is taken as given.
- **SDS timesteps capped at t_max = 0.5** (default 0.98). At high noise Zero123's score rewrites the global
  shape from one view's evidence; that is where the Janus problem (a second face on the back) comes from,
  and the back is exactly what TripoSR, trained on whole 3D objects, gets right. Capping the noise keeps SDS
  to detail and texture and leaves the silhouette from other views to TripoSR.
- **Position learning rate 3e-4 → 2e-5** (DreamGaussian 1e-3 → 2e-5): the Gaussians already sit on the
  surface; the ball start's large first steps would scatter them before the losses agree on anything.
- **Reference losses ramped over the first 10 % of the run** (DreamGaussian: all of it). The ramp protects
  a random ball from being flattened into a billboard by the reference view; a start that already matches
  the reference view needs that view's pull from the beginning, or early SDS steps drift away from it.
- Densification, Gaussian count (5000 at the start), mesh, stage 2 and export: unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..generate.presets import PipelineConfig

STEP_FRACTION = 0.4
SDS_T_MAX = 0.5
MEANS_LR = 3e-4
MASK_WARMUP = 0.1


def quick_refine_config(config: PipelineConfig, steps_given: bool) -> PipelineConfig:
    """``config`` (a DreamGaussian preset) adjusted as the module docstring argues."""
    stage1 = config.stage1
    steps = stage1.steps if steps_given else max(1, round(stage1.steps * STEP_FRACTION))
    stage1 = dataclasses.replace(stage1, steps=steps, lrs=dataclasses.replace(stage1.lrs, means=MEANS_LR),
                                 mask_warmup=MASK_WARMUP)
    guidance = dataclasses.replace(config.guidance, t_max=max(config.guidance.t_min, SDS_T_MAX))
    return dataclasses.replace(config, stage1=stage1, guidance=guidance)
