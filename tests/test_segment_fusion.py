"""Fusion rule (paper mode), candidate choice (fast mode), heatmap → SAM prompts, slugs. No models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.segment.fast_prompts import derive_prompts
from backend.segment.fusion import containment_scores, fuse_paper, mask_iou, pick_best_candidate
from backend.segment.slug import slugify, unique_slugs


def _rows(start: int, stop: int, shape=(10, 10)) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[start:stop] = True
    return mask


def test_region_covering_two_of_three_sam_masks_yields_exactly_their_union():
    sam = torch.stack([_rows(0, 3), _rows(3, 6), _rows(6, 10)])
    clip_region = _rows(0, 6)
    fusion = fuse_paper(sam, clip_region, keep=0.5)
    assert fusion.kept.tolist() == [0, 1]
    assert torch.equal(fusion.mask, _rows(0, 6))
    assert fusion.scores.tolist() == [1.0, 1.0, 0.0]
    assert fusion.union_score == 1.0


@pytest.mark.parametrize(("inside", "kept"), [(49, False), (50, False), (51, True)])
def test_half_inside_mask_flips_at_the_keep_threshold(inside, kept):
    sam = torch.zeros(1, 10, 10, dtype=torch.bool)
    sam[0] = True  # 100 px
    clip_region = torch.zeros(10, 10, dtype=torch.bool)
    clip_region.view(-1)[:inside] = True
    fusion = fuse_paper(sam, clip_region, keep=0.5)
    assert float(fusion.scores[0]) == pytest.approx(inside / 100)
    assert (fusion.kept.numel() == 1) is kept
    assert bool(fusion.mask.any()) is kept


def test_score_ignores_clip_region_outside_the_sam_mask():
    # |S ∩ C| / |S|: C spilling far outside S does not lower S's score (the paper's restricted union)
    sam = _rows(0, 2)[None]
    assert containment_scores(sam, torch.ones(10, 10, dtype=torch.bool)).tolist() == [1.0]
    assert containment_scores(torch.zeros(1, 10, 10, dtype=torch.bool), _rows(0, 5)).tolist() == [0.0]


def test_fast_mode_picks_the_candidate_with_best_iou():
    clip_region = _rows(2, 6)
    candidates = torch.stack([_rows(0, 10), _rows(2, 5), _rows(7, 9)])
    best, iou = pick_best_candidate(candidates, clip_region)
    assert best == 1 and iou == pytest.approx(3 / 4)
    assert mask_iou(candidates, clip_region)[2] == 0.0


def test_fusion_rejects_non_bool_masks():
    with pytest.raises(ValueError, match="bool"):
        fuse_paper(torch.ones(1, 4, 4), torch.ones(4, 4, dtype=torch.bool))


def _blob(shape, cx, cy, sigma, peak):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return peak * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))


def test_prompts_from_synthetic_heatmap_land_where_they_should():
    shape = (64, 96)
    heatmap = 0.05 + _blob(shape, 60, 20, 6, 0.9) + _blob(shape, 15, 50, 1.5, 0.6)
    heatmap = heatmap.astype(np.float32)
    prompts = derive_prompts(heatmap, threshold=0.4, positive_points=3, negative_points=2)
    x0, y0, x1, y1 = prompts.box
    # the box holds the big blob's high-score region and not the small distractor
    assert x0 <= 60 <= x1 and y0 <= 20 <= y1
    assert not (x0 <= 15 <= x1 and y0 <= 50 <= y1)
    assert (x1 - x0) < 30 and (y1 - y0) < 30
    region = heatmap > 0.4
    rows, cols = np.nonzero(region & (np.abs(np.mgrid[0:64, 0:96][1] - 60) < 20))
    assert x0 == cols.min() and x1 == cols.max() + 1 and y0 == rows.min() and y1 == rows.max() + 1
    # first positive point on the peak; all positives inside the box and above the threshold
    assert np.allclose(prompts.positive[0], [60.5, 20.5])
    for x, y in prompts.positive:
        assert x0 <= x <= x1 and y0 <= y <= y1
        assert heatmap[int(y), int(x)] > 0.4
    # negatives: outside the box, in low-score areas
    assert len(prompts.negative) == 2
    for x, y in prompts.negative:
        assert not (x0 <= x <= x1 and y0 <= y <= y1)
        assert heatmap[int(y), int(x)] < 0.2


def test_no_prompts_when_nothing_is_above_threshold():
    assert derive_prompts(np.full((8, 8), 0.3, dtype=np.float32), threshold=0.4) is None


def test_prompts_scale_to_another_resolution():
    heatmap = np.zeros((10, 20), dtype=np.float32)
    heatmap[2:4, 5:9] = 0.9
    prompts = derive_prompts(heatmap, threshold=0.5, negative_points=0)
    assert prompts.box == (5.0, 2.0, 9.0, 4.0)
    assert prompts.scaled(2.0, 3.0).box == (10.0, 6.0, 18.0, 12.0)


def test_slugify():
    assert slugify("A Red Cup!") == "a-red-cup"
    assert slugify("  mug / handle  ") == "mug-handle"
    assert slugify("猫") == "prompt"
    assert unique_slugs(["cup", "Cup", "猫", "犬"]) == ["cup", "cup-2", "prompt", "prompt-2"]


@pytest.mark.parametrize("prompts", [["cup", "cup", "cup-2"], ["!!!", "???", "prompt-2"], ["a-2", "a", "a"],
                                     ["a cup", "A Cup!"]])
def test_unique_slugs_never_collide(prompts):
    """Regression: a prompt whose slug looked like a de-duplicated one shared a file with it."""
    slugs = unique_slugs(prompts)
    assert len(set(slugs)) == len(prompts)
    assert slugs[0] == slugify(prompts[0])
