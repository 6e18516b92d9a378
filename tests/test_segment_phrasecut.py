"""eval-phrasecut on a synthetic dataset in PhraseCut's published layout, with known right answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.segment.phrasecut import polygons_to_mask, read_dataset, score_prediction_folder


def _square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@pytest.fixture
def dataset(tmp_path):
    """Two images, four tasks; see test_scores_a_prediction_folder for the IoU of each."""
    root = tmp_path / "VGPhraseCut_v0"
    (root / "images").mkdir(parents=True)
    sizes = {1: (40, 30), 2: (32, 32)}
    for image_id, (w, h) in sizes.items():
        Image.fromarray(np.full((h, w, 3), 90 * image_id, np.uint8)).save(root / "images" / f"{image_id}.jpg")
    tasks = [
        {"task_id": "1__a", "image_id": 1, "phrase": "white square", "Polygons": [[_square(5, 5, 14, 14)]]},
        {"task_id": "1__b", "image_id": 1, "phrase": "two boxes", "Polygons": [
            [_square(20, 0, 29, 9)],
            [_square(0.9, 20.7, 9.9, 29.2), [[3, 3]]],  # fractional points are truncated; 1 point is skipped
        ]},
        {"task_id": "2__a", "image_id": 2, "phrase": "big square", "Polygons": [[_square(0, 0, 15, 15)]]},
        {"task_id": "2__b", "image_id": 2, "phrase": "small square", "Polygons": [[_square(10, 10, 19, 19)]]},
    ]
    (root / "refer_miniv.json").write_text(json.dumps(tasks))
    (root / "image_data_split.json").write_text(json.dumps(
        [{"image_id": i, "width": w, "height": h, "split": "miniv"} for i, (w, h) in sizes.items()]
    ))
    return root


def _box_mask(w, h, x0, y0, x1, y1):
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1 + 1, x0:x1 + 1] = True
    return mask


def test_rasterises_like_phrasecuts_evaluator():
    # ImageDraw.polygon with its outline: both end rows/columns are inside → a 10x10 block for 5..14
    np.testing.assert_array_equal(polygons_to_mask([_square(5, 5, 14, 14)], 40, 30), _box_mask(40, 30, 5, 5, 14, 14))
    # int() truncation, not rounding: 0.9 → 0, 9.9 → 9; a 1-point polygon adds nothing
    np.testing.assert_array_equal(polygons_to_mask([_square(0.9, 20.7, 9.9, 29.2), [[3, 3]]], 40, 30),
                                  _box_mask(40, 30, 0, 20, 9, 29))
    # union over polygons (and instances)
    both = polygons_to_mask([_square(0, 0, 3, 3), _square(2, 2, 5, 5)], 8, 8)
    assert both.sum() == 16 + 16 - 4


def _write(mask, path):
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def _predictions(tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    _write(_box_mask(40, 30, 5, 5, 14, 14), pred / "1__a.png")  # exact: IoU 1
    _write(_box_mask(40, 30, 20, 0, 29, 9), pred / "1__b.png")  # one of two boxes: 100 / 200 = 0.5
    # 2__a missing: IoU 0
    _write(_box_mask(32, 32, 10, 10, 19, 17), pred / "2__b.png")  # 80 of 100: IoU 0.8
    return pred


def test_scores_a_prediction_folder(dataset, tmp_path):
    tasks, sizes = read_dataset(dataset, "miniv")
    metrics = score_prediction_folder(tasks, sizes, _predictions(tmp_path))
    assert metrics.count == 4 and metrics.missing == 1
    assert {k: v["iou"] for k, v in metrics.per_task.items()} == pytest.approx(
        {"1__a": 1.0, "1__b": 0.5, "2__a": 0.0, "2__b": 0.8})
    assert metrics.mean_iou == pytest.approx((1 + 0.5 + 0 + 0.8) / 4)
    assert metrics.cumulative_iou == pytest.approx((100 + 100 + 0 + 80) / (100 + 200 + 256 + 100))
    # strictly greater: IoU 0.5 does not count for Pr@0.5, 0.8 not for Pr@0.8
    assert metrics.precision == pytest.approx({0.5: 0.5, 0.6: 0.5, 0.7: 0.5, 0.8: 0.25, 0.9: 0.25})


def test_cli_scores_predictions_and_writes_json(dataset, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(["eval-phrasecut", "--data", str(dataset), "--split", "miniv", "--predictions",
                 str(_predictions(tmp_path)), "--out", str(out)])
    assert code == 0
    assert "mean IoU=0.5750" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["count"] == 4 and report["precision"]["0.5"] == 0.5


def test_cli_runs_our_segmentation_on_the_dataset(dataset, tmp_path):
    out = tmp_path / "report.json"
    code = main(["eval-phrasecut", "--data", str(dataset), "--split", "miniv", "--models", "tiny", "--device", "cpu",
                 "--mode", "fast", "--threshold", "0.0", "--out", str(out), "-q"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["count"] == 4 and set(report["per_task"]) == {"1__a", "1__b", "2__a", "2__b"}
    assert report["models"] == "tiny" and "meaningless" in report["note"]
    assert 0.0 <= report["mean_iou"] <= 1.0


def test_missing_split_file_is_bad_input(tmp_path, capsys):
    assert main(["eval-phrasecut", "--data", str(tmp_path), "--split", "miniv", "--predictions", str(tmp_path)]) == 2
    assert "refer_miniv.json" in capsys.readouterr().err
