"""Each job's stages in the order they report, and each one's expected share of the job's time.

The worker weighs a job's progress by these shares and measures the job's own pace on the weighted work
(backend/worker/time_left.py); the absolute numbers only set the shares, so a CPU that is 100 times slower
in every stage gets the same fractions. Torch-free: the worker builds a job's plan before any model loads.

Where the numbers come from: ``REFERENCE`` below is the standard preset's stages on one NVIDIA H200
(docs/performance.md, "After DreamGaussian's recipe": stage 1 8.22 s for 500 steps, mesh 1.06 s on a 128³
grid, UV unwrap 0.44 s, bake 0.12 s of 512² views, stage 2 2.92 s for 50 steps, export 0.72 s; fast-mode
segmentation 0.059 s, paper mode 0.107 s, split as the H100 profile splits it). Other presets scale each
stage by the work it is asked to do: the step count for stage 1 and stage 2 (per step the same cost, which
is what a Zero123 call per step makes true on any device), the grid's cells for the mesh, the faces for UV
unwrap and export, the view pixels for the bake. The quick method's stages are its own standard preset on one
H200 (docs/quick-method.md, "On the H200", second run: full-random TripoSR, warm; 1.39 s in all), scaled the same
way (the grid's cells for TripoSR's mesh step, the texels for its bake). Loading a model is not
weighed (``timed=False``): it takes seconds or nothing depending on what is already loaded and on the disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import QUICK, QUICK_REFINE, check_method
from .presets import PipelineConfig, pipeline_config


@dataclass(frozen=True)
class StageCost:
    """One stage a job is expected to report: its name as reported, its expected work (seconds on the
    reference GPU, see the module docstring), its own step count (0: not counted in steps), and whether its
    time says anything about the job's pace (``timed``; False for model loading)."""

    name: str
    work: float
    steps: int = 0
    timed: bool = True


@dataclass(frozen=True)
class ReferenceSeconds:
    """The standard preset's stage times on one H200 (docs/performance.md; the quick method's docs/quick-method.md)
    and the sizes they were measured at."""

    stage1_per_step: float = 8.22 / 500
    stage2_per_step: float = 2.92 / 50
    mesh_at_grid: float = 1.06
    grid: int = 128
    uv_unwrap: float = 0.44
    export: float = 0.72
    faces: int = 50_000
    bake: float = 0.12
    bake_size: int = 512
    preprocess: float = 0.01  # a crop and a resize: not measured, small everywhere
    clipseg: float = 0.004
    sam_embedding: float = 0.035
    sam_fast_masks: float = 0.02  # fast mode's prompted decoder runs, reported under "sam embedding"
    sam_paper_masks: float = 0.068  # paper mode's automatic masks and fusion
    sam3: float = 0.05
    write_masks: float = 0.01
    # The quick method, measured (docs/quick-method.md, "On the H200", the second run; raw numbers in
    # docs/time-quick-h200.json): its UVs and export are timed apart from DreamGaussian's above because that run
    # measured them on another host, and a job's shares should come from one run.
    triposr: float = 0.086  # one ViT-B/16 and transformer pass at 512 px (fp32)
    triposr_mesh_at_256: float = 0.51  # the whole mesh step: the 256³ density grid (0.134 s), marching cubes,
    # clean-up, smoothing, decimation to 50k faces
    triposr_uv_unwrap: float = 0.35  # xatlas, 50k faces
    triposr_bake_at_1024: float = 0.018  # the colour field at every texel of a 1024² texture
    triposr_export: float = 0.15  # GLB + OBJ, 50k faces


REFERENCE = ReferenceSeconds()


def segment_costs(segmenter: str, mode: str) -> tuple[StageCost, ...]:
    """Segmentation's stages up to the masks (``segment`` arrives complete at the end); no ``write``."""
    loading = StageCost("load models", 0.0, timed=False)
    if segmenter == "sam3":
        return loading, StageCost("sam3", REFERENCE.sam3), StageCost("segment", 0.0)
    if mode == "paper":
        return (loading, StageCost("clipseg", REFERENCE.clipseg), StageCost("sam embedding", REFERENCE.sam_embedding),
                StageCost("sam masks", REFERENCE.sam_paper_masks), StageCost("segment", 0.0))
    return (loading, StageCost("clipseg", REFERENCE.clipseg),
            StageCost("sam embedding", REFERENCE.sam_embedding + REFERENCE.sam_fast_masks), StageCost("segment", 0.0))


def write_masks_cost() -> StageCost:
    """A Segment job's last stage: the mask, cut-out and overlay files."""
    return StageCost("write", REFERENCE.write_masks)


def _mesh_to_export(config: PipelineConfig) -> tuple[StageCost, ...]:
    """DreamGaussian's stages after stage 1."""
    faces = config.mesh.target_faces or REFERENCE.faces
    return (StageCost("mesh", REFERENCE.mesh_at_grid * (config.mesh.resolution / REFERENCE.grid) ** 3),
            StageCost("uv_unwrap", REFERENCE.uv_unwrap * faces / REFERENCE.faces),
            StageCost("bake", REFERENCE.bake * (config.bake_size / REFERENCE.bake_size) ** 2),
            StageCost("texture", REFERENCE.stage2_per_step * config.texture.steps, steps=config.texture.steps),
            StageCost("export", REFERENCE.export * faces / REFERENCE.faces))


def _quick_stages(preset: str, mesh_stage: str) -> tuple[StageCost, ...]:
    """TripoSR's stages: load, framing, forward pass, mesh from its density."""
    from ..quick.config import quick_config

    config = quick_config(preset)
    return (StageCost("load_triposr", 0.0, timed=False), StageCost("preprocess", REFERENCE.preprocess),
            StageCost("triposr", REFERENCE.triposr),
            StageCost(mesh_stage, REFERENCE.triposr_mesh_at_256 * (config.mesh.resolution / 256) ** 3))


def generate_costs(method: str, preset: str, steps: int | None) -> tuple[StageCost, ...]:
    """One object's stages after its mask, in the order the method reports them (BadInputError for an unknown
    preset or method, as the job itself would raise)."""
    method = check_method(method)
    if method == QUICK:
        from ..quick.config import quick_config

        config = quick_config(preset)
        faces = config.mesh.target_faces or REFERENCE.faces
        return (*_quick_stages(preset, "mesh"),
                StageCost("uv_unwrap", REFERENCE.triposr_uv_unwrap * faces / REFERENCE.faces),
                StageCost("bake", REFERENCE.triposr_bake_at_1024 * (config.texture_size / 1024) ** 2),
                StageCost("export", REFERENCE.triposr_export * faces / REFERENCE.faces))
    config = pipeline_config(preset, steps)
    start: tuple[StageCost, ...] = ()
    if method == QUICK_REFINE:  # TripoSR's start comes after the guidance is loaded (backend/generate/pipeline.py)
        from ..quick.refine_config import quick_refine_config

        config = quick_refine_config(config, steps_given=steps is not None)
        start = _quick_stages(preset, "triposr_mesh")
    stage1_steps = config.stage1.steps
    return (StageCost("preprocess", REFERENCE.preprocess), StageCost("load_guidance", 0.0, timed=False), *start,
            StageCost("stage1", REFERENCE.stage1_per_step * stage1_steps, steps=stage1_steps),
            *_mesh_to_export(config))


def segmentation_prefix(count: int) -> str:
    """What a several-object job's one segmentation pass reports under: "3 objects"."""
    return f"{count} objects"


def object_prefix(index: int, count: int) -> str:
    """What a queued object's stages report under: "object 2 of 3" (its stage1: "object 2 of 3: stage1")."""
    return f"object {index + 1} of {count}"


def prefixed(costs: tuple[StageCost, ...], prefix: str) -> tuple[StageCost, ...]:
    """The same stages as reported under a prefix (backend/generate/multi.py), e.g. "object 2 of 3: stage1"."""
    return tuple(StageCost(f"{prefix}: {cost.name}", cost.work, cost.steps, cost.timed) for cost in costs)
