"""The Gaussian renderer: our PyTorch reference rasterizer on the CPU, and gsplat against it on CUDA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.camera import Camera, reference_camera
from backend.gaussians.densify import ScreenGradientStats
from backend.gaussians.gaussians import Gaussians, covariances
from backend.gaussians.reference_rasterizer import project_gaussians
from backend.gaussians.render import (
    camera_matrices,
    render_gaussians,
    render_views,
    render_views_together,
    stack_gaussians,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
FIELDS = ("means", "scales", "quats", "opacities", "colors")


def random_gaussians(n: int, seed: int = 0, dtype=torch.float32, device="cpu", scale=0.06, radius=0.5) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, 3, generator=g, dtype=torch.float64)
    direction /= direction.norm(dim=-1, keepdim=True)
    means = direction * radius * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / 3)
    scales = scale * torch.exp(0.5 * torch.randn(n, 3, generator=g, dtype=torch.float64))
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    quats /= quats.norm(dim=-1, keepdim=True)
    opacities = 0.1 + 0.8 * torch.rand(n, generator=g, dtype=torch.float64)
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return Gaussians(*(t.to(dtype=dtype, device=device) for t in (means, scales, quats, opacities, colors)))


def brute_force_render(gaussians: Gaussians, camera: Camera, background) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel against every Gaussian, one at a time, in float64: the rules written out plainly."""
    g = Gaussians(*(t.detach().double() for t in (gaussians.means, gaussians.scales, gaussians.quats,
                                                   gaussians.opacities, gaussians.colors)))
    viewmat, K = camera_matrices(camera, "cpu", torch.float64)
    proj = project_gaussians(g.means, covariances(g), g.opacities, viewmat, K, camera.width, camera.height)
    order = torch.argsort(proj.depths).tolist()
    rgb = np.zeros((camera.height, camera.width, 3))
    alpha_out = np.zeros((camera.height, camera.width))
    for y in range(camera.height):
        for x in range(camera.width):
            transmittance, colour = 1.0, np.zeros(3)
            for i in order:
                if proj.depths[i] < 0.01:
                    continue
                dx, dy = x + 0.5 - float(proj.means2d[i, 0]), y + 0.5 - float(proj.means2d[i, 1])
                a, b, c = proj.conics[i].tolist()
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = min(0.999, float(g.opacities[i]) * math.exp(-sigma))
                if sigma < 0 or alpha < 1 / 255:
                    continue
                if transmittance * (1 - alpha) <= 1e-4:
                    break
                colour += transmittance * alpha * g.colors[i].numpy()
                transmittance *= 1 - alpha
            rgb[y, x] = colour + transmittance * np.asarray(background)
            alpha_out[y, x] = 1 - transmittance
    return rgb, alpha_out


def test_reference_rasterizer_matches_brute_force():
    gaussians = random_gaussians(40, seed=1, scale=0.08)
    camera = Camera.orbit(15.0, 30.0, 16)
    background = (0.2, 0.4, 0.9)
    out = render_gaussians(gaussians, camera, torch.tensor(background), backend="torch")
    rgb, alpha = brute_force_render(gaussians, camera, background)
    assert alpha.max() > 0.9  # the scene really covers pixels
    np.testing.assert_allclose(out.alpha[..., 0].numpy(), alpha, atol=2e-5)
    np.testing.assert_allclose(out.rgb.numpy(), rgb, atol=2e-5)


def test_single_gaussian_lands_on_its_projected_pixel_with_the_expected_footprint():
    size, sigma_world = 64, 0.05
    camera = reference_camera(size)  # at (0, 0, 2) looking down -Z
    point = torch.tensor([[0.25, -0.1, 0.0]])  # right of and below the centre
    gaussians = Gaussians(point, torch.full((1, 3), sigma_world), torch.tensor([[1.0, 0, 0, 0]]),
                          torch.tensor([0.8]), torch.tensor([[1.0, 0.5, 0.0]]))
    out = render_gaussians(gaussians, camera, torch.zeros(3))
    alpha = out.alpha[..., 0]

    f, depth = camera.focal, 2.0
    u = size / 2 + f * 0.25 / depth  # OpenCV: x right
    v = size / 2 + f * 0.1 / depth  # y down: a point below the centre has a larger row
    row, col = divmod(int(torch.argmax(alpha)), size)
    assert (col, row) == (math.floor(u), math.floor(v))

    # Along the row through the peak, alpha follows the EWA footprint: cov2d = J (s² I) Jᵀ + 0.3 I, with J the
    # Jacobian of the perspective projection at the camera-space centre (0.25, 0.1, 2) (OpenCV axes).
    x_c, y_c = 0.25, 0.1
    jac = np.array([[f / depth, 0, -f * x_c / depth**2], [0, f / depth, -f * y_c / depth**2]])
    cov2d = sigma_world**2 * jac @ jac.T + 0.3 * np.eye(2)
    conic = np.linalg.inv(cov2d)
    dx, dy = np.arange(size) + 0.5 - u, row + 0.5 - v
    sigma = 0.5 * (conic[0, 0] * dx**2 + conic[1, 1] * dy**2) + conic[0, 1] * dx * dy
    expected = 0.8 * np.exp(-sigma)
    expected = np.where(expected >= 1 / 255, expected, 0.0)
    np.testing.assert_allclose(alpha[row].numpy(), expected, atol=2e-6)
    assert (alpha[row] > 0).sum() >= 7  # a footprint several pixels wide, as 3.6 px std dev implies
    assert abs(float(out.depth[row, col, 0]) - depth) < 1e-4
    torch.testing.assert_close(out.rgb[row, col], torch.tensor([1.0, 0.5, 0.0]) * alpha[row, col])


def test_background_shows_where_nothing_is_drawn_and_gaussians_behind_the_camera_are_culled():
    behind = Gaussians(torch.tensor([[0.0, 0.0, 3.0]]), torch.full((1, 3), 0.3), torch.tensor([[1.0, 0, 0, 0]]),
                       torch.tensor([0.9]), torch.tensor([[1.0, 0.0, 0.0]]))
    out = render_gaussians(behind, reference_camera(16), torch.tensor([0.1, 0.2, 0.3]))
    assert float(out.alpha.abs().max()) == 0.0
    torch.testing.assert_close(out.rgb, torch.tensor([0.1, 0.2, 0.3]).expand(16, 16, 3))


@pytest.mark.parametrize("param", ["means", "scales", "colors", "opacities", "quats"])
def test_reference_rasterizer_gradients_match_finite_differences(param):
    base = random_gaussians(4, seed=3, dtype=torch.float64, scale=0.15, radius=0.3)
    camera = Camera.orbit(10.0, 20.0, 8)
    background = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    leaf = getattr(base, param).clone().requires_grad_(True)

    def render(value):
        fields = {name: getattr(base, name) for name in ("means", "scales", "quats", "opacities", "colors")}
        fields[param] = value
        out = render_gaussians(Gaussians(**fields), camera, background, backend="torch")
        return torch.cat([out.rgb.reshape(-1), out.alpha.reshape(-1), out.depth.reshape(-1) * out.alpha.reshape(-1)])

    assert torch.autograd.gradcheck(render, (leaf,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_views_render_in_one_call_and_memory_bounded_runs_give_the_same_image():
    from backend.gaussians import reference_rasterizer

    gaussians = random_gaussians(300, seed=4)
    cams = [Camera.orbit(0.0, 0.0, 32), Camera.orbit(20.0, 90.0, 32)]
    mats = [camera_matrices(c, "cpu") for c in cams]
    batch = render_views(gaussians, torch.stack([m[0] for m in mats]), torch.stack([m[1] for m in mats]), 32, 32,
                         torch.ones(2, 3), backend="torch")
    assert batch.rgb.shape == (2, 32, 32, 3) and batch.radii.shape == (2, 300)
    single = render_gaussians(gaussians, cams[1], torch.ones(3), backend="torch")
    torch.testing.assert_close(batch.rgb[1], single.rgb)

    covars = covariances(gaussians)
    whole = reference_rasterizer.rasterize(gaussians.means, covars, gaussians.opacities, gaussians.colors, *mats[1],
                                           32, 32, torch.ones(3))
    split = reference_rasterizer.rasterize(gaussians.means, covars, gaussians.opacities, gaussians.colors, *mats[1],
                                           32, 32, torch.ones(3), max_pairs=500)
    torch.testing.assert_close(split.colors, whole.colors)
    torch.testing.assert_close(split.alphas, whole.alphas)


def test_screen_space_gradients_are_available_for_densification():
    gaussians = random_gaussians(50, seed=5)
    means = gaussians.means.clone().requires_grad_(True)
    g = Gaussians(means, gaussians.scales, gaussians.quats, gaussians.opacities, gaussians.colors)
    viewmat, K = camera_matrices(reference_camera(24), "cpu")
    batch = render_views(g, viewmat[None], K[None], 24, 24, torch.ones(1, 3))
    batch.retain_screen_grads()
    batch.rgb.mean().backward()
    grads = batch.screen_grads()
    assert grads.shape == (1, 50, 2)
    drawn = batch.radii[0] > 0
    assert grads[0][drawn].abs().sum() > 0 and grads[0][~drawn].abs().sum() == 0


# ---------------------------------------------------------------- several objects in one call


def _objects_and_views(counts, size, device="cpu", scale=0.06):
    """Objects of the given Gaussian counts as leaves that take gradients, and two views of each (its own
    cameras and backgrounds): viewmats [K, 2, 4, 4], Ks [K, 2, 3, 3], backgrounds [K, 2, 3]."""
    objects = [{name: getattr(random_gaussians(n, seed=10 + k, device=device, scale=scale), name).clone()
                .requires_grad_(True) for name in FIELDS} for k, n in enumerate(counts)]
    cameras = [[Camera.orbit(10.0 * k, 40.0 * k + 90.0 * v, size) for v in range(2)] for k in range(len(counts))]
    mats = [[camera_matrices(c, device) for c in views] for views in cameras]
    viewmats = torch.stack([torch.stack([m[0] for m in views]) for views in mats])
    Ks = torch.stack([torch.stack([m[1] for m in views]) for views in mats])
    backgrounds = torch.rand(len(counts), 2, 3, generator=torch.Generator().manual_seed(7)).to(device)
    return objects, viewmats, Ks, backgrounds


def _image_loss(batch, size):
    """A loss that reaches every output and every pixel differently."""
    weight = torch.linspace(0.0, 1.0, size * size * 3, device=batch.rgb.device).reshape(size, size, 3)
    return (batch.rgb * weight).sum() + batch.alpha.sum() + (batch.depth * batch.alpha).sum()


def _render_and_backward(objects, viewmats, Ks, backgrounds, size, backend, together: bool):
    """(each object's RenderBatch, each object's parameter gradients, each object's screen gradients)."""
    for leaves in objects:
        for leaf in leaves.values():
            leaf.grad = None
    gaussians = [Gaussians(**leaves) for leaves in objects]
    if together:
        batches = render_views_together(gaussians, viewmats, Ks, size, size, backgrounds, backend)
    else:
        batches = [render_views(g, viewmats[k], Ks[k], size, size, backgrounds[k], backend)
                   for k, g in enumerate(gaussians)]
    for batch in batches:
        batch.retain_screen_grads()
    sum(_image_loss(batch, size) for batch in batches).backward()
    grads = [{name: leaf.grad.clone() for name, leaf in leaves.items()} for leaves in objects]
    return batches, grads, [batch.screen_grads() for batch in batches]


def test_padding_adds_inert_gaussians_after_each_objects_own():
    objects = [random_gaussians(n, seed=n) for n in (5, 3, 7)]
    stacked = stack_gaussians(objects)
    assert stacked.counts == (5, 3, 7) and stacked.means.shape == (3, 7, 3) and stacked.colors.shape == (3, 7, 3)
    for k, g in enumerate(objects):
        padded = stacked.object(k)
        for name in FIELDS:
            assert torch.equal(getattr(padded, name)[:len(g)], getattr(g, name)), name
        assert bool((padded.opacities[len(g):] == 0).all())  # below 1/255: every renderer culls them
        assert bool((padded.scales[len(g):] < 1e-5).all())


def _render_alone_and_together(counts, size, backend, image_atol, **view_options):
    """The objects rendered (and back-propagated) one call each and all in one call. Checks what both backends
    must give alike: each object covers pixels, its images within ``image_atol``, its radii equal, its screen
    gradients its own. Returns (together, grads, screen), (alone, alone_grads, alone_screen)."""
    objects, viewmats, Ks, backgrounds = _objects_and_views(counts, size, **view_options)
    alone = _render_and_backward(objects, viewmats, Ks, backgrounds, size, backend, together=False)
    together = _render_and_backward(objects, viewmats, Ks, backgrounds, size, backend, together=True)
    (images, _, screen), alone_images = together, alone[0]
    for k, n in enumerate(counts):
        mine, theirs = images[k], alone_images[k]
        assert float(theirs.alpha.detach().max()) > 0.5  # each object really covers pixels
        for name in ("rgb", "alpha", "depth"):
            torch.testing.assert_close(getattr(mine, name), getattr(theirs, name), atol=image_atol, rtol=1e-5)
        assert mine.radii.shape == (2, n) and torch.equal(mine.radii, theirs.radii)
        assert screen[k].shape == (2, n, 2)  # its own Gaussians only: the padding sliced off
    return together, alone


def test_objects_of_different_counts_render_together_as_each_alone():
    size, counts = 32, (60, 25, 90)
    (together, grads, screen), (alone, alone_grads, alone_screen) = _render_alone_and_together(
        counts, size, "torch", image_atol=1e-6)
    for k, n in enumerate(counts):
        mine, theirs = together[k], alone[k]
        torch.testing.assert_close(screen[k], alone_screen[k], atol=1e-6, rtol=1e-5)
        for name in FIELDS:
            assert float(grads[k][name].abs().max()) > 0, name
            torch.testing.assert_close(grads[k][name], alone_grads[k][name], atol=1e-6, rtol=1e-4,
                                       msg=lambda m, k=k, name=name: f"object {k} {name}: {m}")
        # and densification reads them per object as it reads a lone render
        stats = ScreenGradientStats.zeros(n, "cpu").accumulate(screen[k], mine.radii, size, size)
        expected = ScreenGradientStats.zeros(n, "cpu").accumulate(alone_screen[k], theirs.radii, size, size)
        torch.testing.assert_close(stats.grad_norm_sum, expected.grad_norm_sum, atol=1e-6, rtol=1e-5)
        assert torch.equal(stats.view_count, expected.view_count)


def test_one_object_together_takes_the_plain_path():
    objects, viewmats, Ks, backgrounds = _objects_and_views((40,), 16)
    (batch,) = render_views_together([Gaussians(**objects[0])], viewmats, Ks, 16, 16, backgrounds, "torch")
    plain = render_views(Gaussians(**objects[0]), viewmats[0], Ks[0], 16, 16, backgrounds[0], "torch")
    assert batch.screen_index == () and batch.radii.shape == (2, 40)
    assert torch.equal(batch.rgb, plain.rgb) and torch.equal(batch.radii, plain.radii)


def test_views_together_check_their_shapes():
    objects, viewmats, Ks, backgrounds = _objects_and_views((10, 12), 16)
    gaussians = [Gaussians(**leaves) for leaves in objects]
    with pytest.raises(ValueError, match="viewmats must be"):
        render_views_together(gaussians, viewmats[0], Ks, 16, 16, backgrounds)
    with pytest.raises(ValueError, match="backgrounds"):
        render_views_together(gaussians, viewmats, Ks, 16, 16, backgrounds[:, :1])
    with pytest.raises(ValueError, match="at least one object"):
        render_views_together([], viewmats[:0], Ks[:0], 16, 16, backgrounds[:0])


# ---------------------------------------------------------------- gsplat on CUDA against the reference


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("num_gaussians", [200, 2000])
@pytest.mark.parametrize("elevation,azimuth", [(0.0, 0.0), (25.0, 135.0)])
def test_gsplat_matches_reference_rasterizer(num_gaussians, elevation, azimuth):
    device = torch.device("cuda")
    gaussians = random_gaussians(num_gaussians, seed=num_gaussians, device=device, scale=0.03)
    camera = Camera.orbit(elevation, azimuth, 128)
    background = torch.tensor([0.2, 0.5, 0.8], device=device)

    leaves = {name: getattr(gaussians, name).clone().requires_grad_(True)
              for name in ("means", "scales", "quats", "opacities", "colors")}
    outputs = {}
    grads = {}
    for backend in ("gsplat", "torch"):
        for leaf in leaves.values():
            leaf.grad = None
        out = render_gaussians(Gaussians(**leaves), camera, background, backend=backend)
        outputs[backend] = out
        weight = torch.linspace(0.0, 1.0, 128 * 128 * 3, device=device).reshape(128, 128, 3)
        ((out.rgb * weight).sum() + out.alpha.sum()).backward()
        grads[backend] = {name: leaf.grad.clone() for name, leaf in leaves.items()}

    ours, theirs = outputs["torch"], outputs["gsplat"]
    assert float(theirs.alpha.max()) > 0.5
    assert (ours.rgb - theirs.rgb).abs().mean() <= 1e-3
    assert (ours.alpha - theirs.alpha).abs().mean() <= 1e-3
    torch.testing.assert_close(ours.rgb, theirs.rgb, atol=2e-2, rtol=0)
    torch.testing.assert_close(ours.alpha, theirs.alpha, atol=2e-2, rtol=0)
    mask = theirs.alpha[..., 0] > 0.5
    torch.testing.assert_close(ours.depth[mask], theirs.depth[mask], atol=1e-2, rtol=1e-2)
    for name in leaves:  # loosely: same direction and size overall
        a, b = grads["torch"][name].flatten(), grads["gsplat"][name].flatten()
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=0)
        assert cosine > 0.98, (name, float(cosine))
        assert 0.9 < float(a.norm() / b.norm()) < 1.1, (name, float(a.norm() / b.norm()))


@pytest.mark.gpu
@cuda
def test_gsplat_renders_objects_together_as_each_alone():
    """One gsplat call for three objects of different counts against one call per object: the forward pass is
    the same computation per image; the backward pass sums with atomics, so its order (and last bits) may differ."""
    size, counts = 128, (2000, 3500, 800)
    (_, grads, screen), (_, alone_grads, alone_screen) = _render_alone_and_together(
        counts, size, "gsplat", image_atol=1e-5, device="cuda", scale=0.03)
    for k in range(len(counts)):
        scale = float(alone_screen[k].abs().max())
        torch.testing.assert_close(screen[k], alone_screen[k], atol=1e-4 * scale, rtol=1e-3)
        for name in FIELDS:
            scale = float(alone_grads[k][name].abs().max())
            assert scale > 0, name
            torch.testing.assert_close(grads[k][name], alone_grads[k][name], atol=1e-4 * scale, rtol=1e-3,
                                       msg=lambda m, k=k, name=name: f"object {k} {name}: {m}")
