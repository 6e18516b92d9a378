"""Several meshes' stage-2 texture refinements advancing together (backend.mesh.refine_texture.
refine_textures_together) on tiny Zero123 models: each mesh's texture is its texture alone, one batched refine
call per step for all of them, and each mesh failing and cancelling alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from backend.camera import reference_camera
from backend.errors import CancelledError
from backend.guidance import GuidanceConfig, Zero123Guidance
from backend.guidance.zero123_guidance import refine_together
from backend.job_control import JobControl
from backend.mesh.bake import mesh_tensors
from backend.mesh.refine_texture import TextureJob, refine_texture, refine_textures_together
from backend.mesh.texture_config import TextureConfig
from backend.mesh.texture_sampling import render_textured
from backend.models.mode import ModelMode
from backend.models.zero123 import load_zero123
from tests.mesh_fixtures import View, one_torch_thread, smooth_texture, uv_sphere_mesh

# Fresh random views each step (DreamGaussian's way): one refine call per step, strength rising per step.
CONFIG = TextureConfig(steps=4, lr=0.1, render_size=32, refine_steps=10, seed=3)
RING = dataclasses.replace(CONFIG, target_views=4, batch_size=2)  # ring targets made up front, two per call


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def models():
    return load_zero123(ModelMode.TINY, "cpu")


@pytest.fixture
def decoded_batches(models):
    """The batch size of every VAE decoding (one per refine call) while the test runs."""
    sizes: list[int] = []
    handle = models.vae.decoder.register_forward_pre_hook(lambda module, args: sizes.append(int(args[0].shape[0])))
    yield sizes
    handle.remove()


def _job(models, shade: int, seed: int, config: TextureConfig = CONFIG, control: JobControl | None = None
         ) -> TextureJob:
    """A mesh whose photo is a smooth texture rolled by ``shade``, starting grey, with its own guidance (as
    generate makes one per row, its noise generator seeded from ``seed``)."""
    mesh = uv_sphere_mesh(subdivisions=1 + shade % 2, texture_resolution=32)
    vertices, faces, uvs = mesh_tensors(mesh, "cpu")
    camera = reference_camera(32)
    photo = torch.as_tensor(np.roll(smooth_texture(32), shade, axis=-1).copy())
    rgb, alpha = render_textured(vertices, faces, uvs, photo, camera)
    guidance = Zero123Guidance(models, GuidanceConfig(seed=seed))
    on_white = rgb * alpha[..., None] + 1 - alpha[..., None]
    guidance.set_reference(on_white.permute(2, 0, 1)[None])
    start = mesh.with_texture(np.full((32, 32, 3), 0.5, np.float32))
    return TextureJob(start, View(camera, rgb, alpha), guidance, dataclasses.replace(config, seed=seed), control)


def _assert_same_texture(together: np.ndarray, alone: np.ndarray) -> None:
    """Equal up to the float rounding of a larger batch through the VAE and UNet: Adam divides each gradient by its
    own running size, so a texel whose gradient is near zero may move a little differently."""
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-3)
    assert np.abs(together - alone).mean() < 1e-5


def _alone(models, shade: int, seed: int, config: TextureConfig = CONFIG) -> np.ndarray:
    job = _job(models, shade, seed, config)
    return refine_texture(job.mesh, job.reference, job.guidance, job.config).texture


def test_a_group_of_one_is_exactly_the_single_refine(models, decoded_batches):
    alone = _alone(models, 0, seed=5)
    (together,) = refine_textures_together([_job(models, 0, seed=5)])
    assert np.array_equal(together.texture, alone)
    assert not np.allclose(alone, 0.5)  # it did refine
    assert decoded_batches == [1] * (2 * CONFIG.steps)  # one view per step, one refine call per step per run


def test_refine_together_gives_each_object_its_own_refine(models):
    jobs = [_job(models, 0, seed=1), _job(models, 1, seed=2)]
    images = [torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
              torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))]  # sizes may differ
    angles = [(torch.tensor([10.0, -5.0]), torch.tensor([30.0, 90.0]), torch.zeros(2)),
              (torch.tensor([0.0]), torch.tensor([-120.0]), torch.zeros(1))]
    alone = [job.guidance.refine(image, *angle, strength=0.6, steps=10)
             for job, image, angle in zip(jobs, images, angles, strict=True)]
    fresh = [_job(models, 0, seed=1).guidance, _job(models, 1, seed=2).guidance]  # generators from the start
    together = refine_together(fresh, images, *zip(*angles, strict=True), strength=0.6, steps=10)
    for mine, theirs in zip(together, alone, strict=True):
        assert mine.shape == theirs.shape
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[0][0], together[1][0, :, :32, :32], atol=1e-2)


@pytest.mark.parametrize("config", [CONFIG, RING], ids=["fresh views", "ring targets"])
def test_three_meshes_together_match_their_refines_alone_in_one_refine_call_per_step(models, decoded_batches,
                                                                                      config):
    alone = [_alone(models, shade, seed, config) for shade, seed in ((0, 1), (1, 2), (2, 3))]
    decoded_batches.clear()
    together = refine_textures_together([_job(models, shade, seed, config) for shade, seed in ((0, 1), (1, 2),
                                                                                               (2, 3))])
    # all three meshes' views in each call: per step (fresh views), or per ring round of two views each
    assert decoded_batches == ([3] * config.steps if config.target_views == 0 else [6, 6])
    for mine, theirs in zip(together, alone, strict=True):
        _assert_same_texture(mine.texture, theirs)
    assert not np.allclose(together[0].texture, together[1].texture, atol=1e-2)


def test_a_failing_mesh_drops_out_alone_and_the_others_finish(models, decoded_batches):
    def fail_at_step_three(progress):
        if progress.fraction >= 2 / CONFIG.steps:
            raise RuntimeError("row 1 broke")

    good = _job(models, 1, seed=2)
    bad_reference = View(reference_camera(32), torch.zeros(8, 8, 3), torch.zeros(8, 8))
    outcomes = refine_textures_together([_job(models, 0, 1, control=JobControl(on_progress=fail_at_step_three)),
                                         dataclasses.replace(good, reference=bad_reference), good])
    assert isinstance(outcomes[0], RuntimeError) and "row 1 broke" in str(outcomes[0])
    assert isinstance(outcomes[1], ValueError) and "reference rgb" in str(outcomes[1])  # found before any step
    _assert_same_texture(outcomes[2].texture, _alone(models, 1, seed=2))
    # two meshes per call until the first failed at the start of its third step, then one
    assert decoded_batches[:CONFIG.steps] == [2, 2, 1, 1]


def test_a_cancelled_mesh_stops_alone(models, decoded_batches):
    control = JobControl()

    def cancel_during_step_two(progress):
        if progress.fraction >= 1 / CONFIG.steps:
            control.cancel()

    control.on_progress = cancel_during_step_two
    outcomes = refine_textures_together([_job(models, 0, seed=1), _job(models, 1, 2, control=control)])
    assert isinstance(outcomes[1], CancelledError)
    assert outcomes[0].texture.shape == (32, 32, 3)
    assert decoded_batches == [2, 2, 1, 1]  # noticed at the report that starts step three


def test_a_shared_refine_call_that_fails_fails_every_mesh_that_shared_it(models, monkeypatch):
    from backend.guidance import zero123_guidance

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("no room for the batch")

    monkeypatch.setattr(zero123_guidance, "refine_together", out_of_memory)
    unguided = dataclasses.replace(_job(models, 2, seed=3), guidance=None)
    outcomes = refine_textures_together([_job(models, 0, seed=1), _job(models, 1, seed=2), unguided])
    assert all(isinstance(o, torch.cuda.OutOfMemoryError) for o in outcomes[:2])
    assert outcomes[2].texture.shape == (32, 32, 3)  # no guidance, no shared call: it finishes


def test_meshes_with_different_step_counts_each_run_their_own(models, decoded_batches):
    short = dataclasses.replace(CONFIG, steps=2)
    outcomes = refine_textures_together([_job(models, 0, seed=1), _job(models, 1, seed=2, config=short)])
    assert all(o.texture.shape == (32, 32, 3) for o in outcomes)
    # the short one asks for stronger refines sooner (its strength rises over 2 steps): its own call then
    assert decoded_batches == [1] * (CONFIG.steps + 2)
