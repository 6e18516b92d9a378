"""Stand-ins for the backend's segment and generate jobs, writing the same files the real ones write.

The add-on calls the backend only through ``operators.backend_jobs.build_segment_work`` and
``build_generate_work``; the ``job_backend`` fixture replaces those two with the fakes below unless
``USE_REAL_BACKEND`` is True (then the tests run the real tiny-model backend, IMAGE_TO_3D_MODELS=tiny).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

USE_REAL_BACKEND = False  # True runs these UI tests on the real backend (standard preset: slow on a CPU)


def _check_photo(path: str):
    from image_to_3d.backend.errors import BadInputError
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read image {path}: {type(exc).__name__}") from None


def write_textured_box_glb(path: Path, size: int = 16) -> Path:
    """A 1 m box, each face mapped to the whole of a ``size``-pixel PNG baseColor texture (a red/blue checker of
    8 x 8 squares), exported as .glb."""
    import trimesh
    from PIL import Image

    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    corners = box.vertices[box.faces].reshape(-1, 3)  # [36, 3]: no shared vertices, so each face has its own UVs
    normal_axis = np.repeat(np.abs(box.face_normals).argmax(axis=1), 3)  # [36]
    in_plane = np.array([[1, 2], [0, 2], [0, 1]])[normal_axis]  # the two axes along the face
    uv = np.take_along_axis(corners, in_plane, axis=1) + 0.5  # [36, 2] in [0, 1]
    squares = (np.indices((8, 8)).sum(axis=0) % 2).astype(bool)
    pixels = np.where(squares[..., None], [220, 40, 40], [40, 40, 220]).astype(np.uint8)
    texture = Image.fromarray(pixels).resize((size, size), Image.NEAREST)
    mesh = trimesh.Trimesh(vertices=corners, faces=np.arange(36).reshape(12, 3), process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=trimesh.visual.material.PBRMaterial(
        baseColorTexture=texture))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mesh.export(file_type="glb"))
    return path


@dataclass(frozen=True)
class FakeGenerationResult:
    out_dir: Path
    glb_path: Path


class GatedWork:
    """Runs like a real job (progress every few ms) until released or cancelled: for UI-path and cancel tests."""

    def __init__(self, inner):
        self.inner = inner
        self.release = threading.Event()
        self.reported = threading.Event()

    def __call__(self, control):
        while not self.release.is_set():
            control.report("stage 1", 0.25, "optimising Gaussians")
            self.reported.set()
            time.sleep(0.005)
        return self.inner(control)


def fake_segment_work(config, out_dir: Path):
    def work(control):
        from image_to_3d.backend.segment.slug import unique_slugs
        from image_to_3d.backend.worker.messages import SegmentedFiles, SegmentOutcome
        from PIL import Image

        rgb = _check_photo(config.image_path)
        control.report("segment", 0.5, "CLIPSeg heatmap")
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - h / 2) / (h / 3)) ** 2 + ((xx - w / 2) / (w / 3)) ** 2 < 1
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for prompt, slug in zip(config.prompts, unique_slugs(list(config.prompts)), strict=True):
            paths = {kind: out_dir / f"{slug}.{kind}.png" for kind in ("mask", "cutout", "overlay")}
            Image.fromarray((mask * 255).astype(np.uint8)).save(paths["mask"])
            Image.fromarray(np.dstack([rgb, mask * 255]).astype(np.uint8), "RGBA").save(paths["cutout"])
            overlay = np.where(mask[..., None], rgb // 2 + np.array([0, 127, 0], np.uint8), rgb)
            Image.fromarray(overlay.astype(np.uint8)).save(paths["overlay"])
            # SAM 3 also saves every instance it found
            instances = write_fake_instances(out_dir, slug, mask) if config.request.segmenter == "sam3" else ()
            written.append(SegmentedFiles(prompt, slug, str(paths["mask"]), str(paths["cutout"]),
                                          str(paths["overlay"]), instances))
        control.report("segment", 1.0, "masks written")
        return SegmentOutcome(str(out_dir), tuple(written))  # what the real work returns

    return work


def write_fake_instances(out_dir: Path, slug: str, first: np.ndarray) -> tuple:
    """Two instances as SAM 3 segment saves them: the ellipse (best, also the mask) and a corner block."""
    from image_to_3d.backend.worker.messages import SegmentedInstance
    from PIL import Image

    second = np.zeros_like(first)
    second[: first.shape[0] // 4, : first.shape[1] // 4] = True
    instances = []
    for rank, (mask, score) in enumerate(((first, 0.91), (second, 0.47)), start=1):
        path = out_dir / f"{slug}.instance-{rank}.mask.png"
        Image.fromarray((mask * 255).astype(np.uint8)).save(path)
        instances.append(SegmentedInstance(rank, score, str(path)))
    return tuple(instances)


def fake_generate_work(config, out_dir: Path):
    def work(control):
        _check_photo(config.image_path)
        for fraction in (0.0, 0.5, 1.0):
            control.report("stage 1", fraction, "optimising Gaussians")
        glb = write_textured_box_glb(Path(out_dir) / "model.glb")
        return FakeGenerationResult(out_dir=Path(out_dir), glb_path=glb)

    return work


def install_fakes(backend_jobs) -> None:
    """Replace the add-on's two backend entry points with the fakes (for subprocess scripts)."""
    backend_jobs.build_segment_work = fake_segment_work
    backend_jobs.build_generate_work = fake_generate_work
