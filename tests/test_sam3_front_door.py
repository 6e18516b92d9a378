"""SAM 3 through the front door (backend.api): the request fields, segment.json's record and instance files,
choosing another instance from those files without the model, job.json's record, and the token kept out of
reprs, cache keys and files. Tiny models on the CPU."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from backend import api
from backend.errors import BadInputError
from backend.job_cache import job_key
from backend.segment.outputs import read_mask_png

TOKEN = "hf_secret_token_do_not_write"


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    rgb = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    rgb[10:30, 20:44] = (230, 25, 25)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


def _segment(photo, tmp_path, **fields):
    request = api.SegmentRequest(image_path=str(photo), prompts=("red block",), out_dir=str(tmp_path / "seg"),
                                 models="tiny", device="cpu", segmenter="sam3", **fields)
    return api.segment(request)


def test_declared_choices_name_both_segmenters_with_the_default():
    declared = api.declared_choices()
    assert [c.name for c in declared.segmenters] == ["clipseg-sam", "sam3"]
    assert declared.default_segmenter == "clipseg-sam"
    assert api.SegmentRequest("p.png", ("cup",), "o").segmenter == declared.default_segmenter
    assert api.GenerateRequest("p.png", "cup", "o").segmenter == declared.default_segmenter


def test_sam3_segment_saves_every_instance_and_lists_them(photo, tmp_path):
    outputs = _segment(photo, tmp_path, sam3=api.Sam3Options(instance="2", accept_license=True, hf_token=TOKEN))
    files, result = outputs.files[0], outputs.results[0]
    assert [i.rank for i in files.instances] == list(range(1, len(result.kept_scores) + 1))
    assert len(files.instances) == 8  # tiny SAM 3: 8 queries, thresholds 0 with random weights
    assert [i.score for i in files.instances] == sorted((i.score for i in files.instances), reverse=True)
    for instance, kept in zip(files.instances, result.kept_masks, strict=True):
        assert instance.mask.parent == outputs.out_dir and instance.mask.name == f"red-block.instance-{instance.rank}.mask.png"
        np.testing.assert_array_equal(read_mask_png(instance.mask), kept)  # working size = photo size here
    np.testing.assert_array_equal(read_mask_png(files.mask), read_mask_png(files.instances[1].mask))  # "2"

    record = json.loads(outputs.metadata_path.read_text(encoding="utf-8"))
    assert (record["segmenter"], record["instance"], record["mode"]) == ("sam3", "2", "sam3")
    listed = record["prompts"][0]["instances"]
    assert [(e["rank"], e["mask"]) for e in listed] == [(i.rank, i.mask.name) for i in files.instances]
    assert [e["score"] for e in listed] == [i.score for i in files.instances]
    written = " ".join(p.read_text(encoding="utf-8", errors="ignore") for p in outputs.out_dir.glob("*.json"))
    assert TOKEN not in written


def test_choosing_an_instance_recuts_the_mask_from_the_saved_files(photo, tmp_path, monkeypatch):
    outputs = _segment(photo, tmp_path)
    saved = tuple(str(i.mask) for i in outputs.files[0].instances)
    import backend.models.sam3

    monkeypatch.setattr(backend.models.sam3, "load_sam3", lambda *a, **k: pytest.fail("the model ran again"))
    second = api.choose_instance(api.ChooseInstanceRequest(str(photo), saved, "2", str(tmp_path / "two"),
                                                           prompt="red block"))
    assert second.files.mask.name == "red-block.mask.png" and second.files.cutout.is_file()
    np.testing.assert_array_equal(read_mask_png(second.files.mask), read_mask_png(saved[1]))
    union = api.choose_instance(api.ChooseInstanceRequest(str(photo), saved, "union", str(tmp_path / "all")))
    np.testing.assert_array_equal(read_mask_png(union.files.mask),
                                  np.logical_or.reduce([read_mask_png(p) for p in saved]))
    with pytest.raises(BadInputError, match="instance 9 asked for, but only 8 were saved"):
        api.choose_instance(api.ChooseInstanceRequest(str(photo), saved, "9", str(tmp_path / "nine")))


@pytest.mark.parametrize("fields, message", [
    ({"sam3": api.Sam3Options(instance="2")}, "--instance 2 needs --segmenter sam3"),
    ({"sam3": api.Sam3Options(boxes=((1, 2, 3, 4),))}, "--box / --exclude-box need --segmenter sam3"),
    ({"segmenter": "grounded-sam"}, "unknown segmenter 'grounded-sam'"),
    ({"segmenter": "sam3", "sam3": api.Sam3Options(instance="first")}, "unknown instance choice 'first'"),
    ({"segmenter": "sam3", "sam3": api.Sam3Options(exclude_boxes=((5, 5, 1, 9),))}, "bad box"),
])
def test_bad_segmenter_fields_are_bad_input_when_the_request_is_made(fields, message):
    for make in (lambda: api.SegmentRequest("p.png", ("cup",), "o", **fields),
                 lambda: api.GenerateRequest("p.png", "cup", "o", **fields)):
        with pytest.raises(BadInputError, match=message):
            make()


def test_the_token_stays_out_of_reprs_and_cache_keys():
    plain = api.GenerateRequest("p.png", "cup", "o", segmenter="sam3", sam3=api.Sam3Options(accept_license=True))
    with_token = dataclasses.replace(plain, sam3=dataclasses.replace(plain.sam3, hf_token=TOKEN))
    assert with_token == plain  # the token is not part of what the request asks
    assert TOKEN not in repr(with_token) and TOKEN not in repr(with_token.segment_config())
    assert with_token.segment_config().sam3.hf_token == TOKEN  # it does reach the loader
    assert job_key("mask", with_token.segment_config()) == job_key("mask", plain.segment_config())
    other = dataclasses.replace(plain, sam3=dataclasses.replace(plain.sam3, instance="union"))
    assert job_key("mask", other.segment_config()) != job_key("mask", plain.segment_config())


def test_generate_with_sam3_records_the_segmenter_in_job_json(photo, tmp_path):
    request = api.GenerateRequest(str(photo), "red block", str(tmp_path / "gen"), preset="smoke", steps=2,
                                  models="tiny", device="cpu", segmenter="sam3",
                                  sam3=api.Sam3Options(instance="union", hf_token=TOKEN))
    result = api.generate(request)
    record = json.loads(result.job_json_path.read_text(encoding="utf-8"))
    assert (record["segmenter"], record["sam3_instance"]) == ("sam3", "union")
    assert not any(TOKEN in p.read_text(encoding="utf-8", errors="ignore")
                   for p in result.out_dir.iterdir() if p.suffix in (".json", ".obj", ".mtl"))


def test_all_of_them_from_the_saved_files_equals_instance_union_on_a_downscaled_photo(photo, tmp_path):
    """Regression: the union was taken at SAM 3's working size, the saved instances at the photo's."""
    from backend.models.mode import ModelMode
    from backend.segment.config import SegmentConfig
    from backend.segment.outputs import segment_to_folder
    from backend.segment.sam3_config import Sam3SegmentConfig

    with Image.open(photo) as small:
        small.resize((150, 112), Image.Resampling.BICUBIC).save(photo)  # an odd scale, so edges differ
    config = SegmentConfig(segmenter="sam3", models=ModelMode.TINY, device="cpu", max_side=64,
                           sam3=Sam3SegmentConfig(instance="union"))
    outputs = segment_to_folder(photo, ["red block"], config, tmp_path / "seg")
    assert outputs.results[0].working_size == (48, 64)  # SAM 3 saw a smaller picture
    saved = tuple(str(i.mask) for i in outputs.files[0].instances)
    union = api.choose_instance(api.ChooseInstanceRequest(str(photo), saved, "union", str(tmp_path / "all")))
    np.testing.assert_array_equal(read_mask_png(union.files.mask), read_mask_png(outputs.files[0].mask))
