"""The reference rasterizer's median depth (where the accumulated alpha reaches 0.5) and the ray-peak depth of the
Gaussian there, on stacks of Gaussians whose answer is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from backend.gaussians.gaussians import Gaussians, covariances
from backend.gaussians.reference_rasterizer import rasterize, ray_peak_depths
from tests.mesh_fixtures import one_torch_thread

SIZE = 8
# OpenCV camera at the origin looking down +z; a 90° field of view
VIEWMAT = torch.eye(4)
K = torch.tensor([[SIZE / 2, 0.0, SIZE / 2], [0.0, SIZE / 2, SIZE / 2], [0.0, 0.0, 1.0]])


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def facing_stack(depths: list[float], opacities: list[float], quats: list[tuple] | None = None) -> Gaussians:
    """Wide flat Gaussians on the optical axis at ``depths``: each covers the whole image with alpha within 0.2 % of
    its opacity (10 units across at depth ≤ 5, where the image spans ≤ 10)."""
    n = len(depths)
    return Gaussians(means=torch.tensor([[0.0, 0.0, d] for d in depths]),
                     scales=torch.tensor([[200.0, 200.0, 0.01]]).expand(n, 3).contiguous(),
                     quats=torch.tensor(quats or [(1.0, 0.0, 0.0, 0.0)] * n),
                     opacities=torch.tensor(opacities), colors=torch.full((n, 3), 0.5))


def render(gaussians: Gaussians, **kwargs):
    return rasterize(gaussians.means, covariances(gaussians), gaussians.opacities, gaussians.colors, VIEWMAT, K, SIZE,
                     SIZE, median_depth=True, **kwargs)


@pytest.mark.parametrize(("opacities", "median"), [
    ((0.3, 0.6, 0.9), 3.0),  # 0.3, then 1 - 0.7 · 0.4 = 0.72: the second
    ((0.8, 0.6, 0.9), 2.0),  # the first alone is past 0.5
    ((0.3, 0.3, 0.9), 3.0),  # 1 - 0.7 · 0.7 = 0.51: the second
    ((0.2, 0.2, 0.3), 4.0),  # 0.2, 0.36, then 1 - 0.64 · 0.7 = 0.552: the third
])
def test_median_depth_is_the_gaussian_that_takes_the_alpha_past_one_half(opacities, median):
    # listed back to front, so the answer cannot come from the input order
    out = render(facing_stack([4.0, 3.0, 2.0], list(reversed(opacities))))
    assert torch.equal(out.median_depths, torch.full((SIZE, SIZE, 1), median))
    assert torch.equal(out.median_gaussian_ids, torch.full((SIZE, SIZE), 3 - int(median) + 1))
    assert out.median_depths.requires_grad is False


def test_pixels_that_never_reach_one_half_have_no_median_depth():
    out = render(facing_stack([2.0, 3.0], [0.25, 0.25]))  # 1 - 0.75² = 0.4375
    assert float(out.alphas.max()) < 0.5
    assert torch.equal(out.median_depths, torch.zeros(SIZE, SIZE, 1))
    assert torch.equal(out.median_gaussian_ids, torch.full((SIZE, SIZE), -1))


def test_median_depth_is_the_same_over_memory_bounded_runs_and_off_unless_asked():
    """Runs of whole pixels start mid-row: the median's pixel geometry must not depend on where a run starts."""
    g = torch.Generator().manual_seed(0)
    n = 60
    gaussians = Gaussians(means=torch.cat([torch.rand(n, 2, generator=g) * 2 - 1, 2 + torch.rand(n, 1, generator=g)], 1),
                          scales=0.1 + 0.3 * torch.rand(n, 3, generator=g),
                          quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
                          opacities=0.2 + 0.6 * torch.rand(n, generator=g), colors=torch.rand(n, 3, generator=g))
    whole, runs = render(gaussians), render(gaussians, max_pairs=37)
    assert torch.equal(whole.median_gaussian_ids, runs.median_gaussian_ids)
    assert torch.equal(whole.median_depths, runs.median_depths)
    covered = whole.alphas[..., 0] > 0.5
    assert 5 < int(covered.sum()) < SIZE * SIZE  # some pixels with a median, some without
    assert bool((whole.median_gaussian_ids >= 0)[covered].all())
    plain = rasterize(gaussians.means, covariances(gaussians), gaussians.opacities, gaussians.colors, VIEWMAT, K, SIZE,
                      SIZE)
    assert plain.median_depths is None and plain.median_gaussian_ids is None
    assert torch.equal(plain.alphas, whole.alphas)


def test_ray_peak_depth_is_where_the_ray_crosses_a_tilted_flat_gaussian():
    """A flat Gaussian turned 45° about the y axis, centred at depth 3: its plane is x + z = 3, so the ray through
    pixel column u (x = u z) crosses it at z = 3 / (1 + u), while its centre's depth is 3 everywhere."""
    turn = math.pi / 8  # half of 45°
    gaussians = facing_stack([3.0], [0.9], quats=[(math.cos(turn), 0.0, math.sin(turn), 0.0)])
    out = render(gaussians)
    assert torch.equal(out.median_depths, torch.full((SIZE, SIZE, 1), 3.0))
    ray = ray_peak_depths(gaussians.means, covariances(gaussians), VIEWMAT, K, out.median_gaussian_ids)[..., 0]
    u = (torch.arange(SIZE) + 0.5 - SIZE / 2) / (SIZE / 2)  # x / z of each pixel column's centre
    assert torch.allclose(ray, (3.0 / (1.0 + u)).expand(SIZE, SIZE), rtol=1e-4)
    missing = ray_peak_depths(gaussians.means, covariances(gaussians), VIEWMAT, K, torch.full((2, 3), -1))
    assert torch.equal(missing, torch.zeros(2, 3, 1))
