"""The humans stage: one row per input, real detections, odd images handled, thresholds re-applied from rows."""

import json

import pytest
from PIL import Image

from human_filter_helpers import PERSON_PHOTO, encode, negative_photos, noise_image
from passkit.core.reasons import is_valid_reason
from passkit.core.sample import Sample
from passkit.detect.presets import PRESETS, get_preset
from passkit.stages.humans import SCORE_PREFIX, HumansConfig, humans_stage, rethreshold


@pytest.fixture(scope="module")
def fast_result():
    from conftest import PEOPLE_DEV, SHARED_MODELS

    if not (PEOPLE_DEV / "labels.csv").is_file() or not SHARED_MODELS.is_dir():
        pytest.skip("../shared not found")
    images = PEOPLE_DEV / "images"
    person = (images / PERSON_PHOTO).read_bytes()
    empty = [(images / f).read_bytes() for f in negative_photos(PEOPLE_DEV, 2)]
    rgba = Image.open(images / PERSON_PHOTO).convert("RGBA")
    rgba.putalpha(200)
    batch = [
        Sample.build("a-person", jpg=person, json={"title": "x"}),
        Sample.build("b-empty", jpg=empty[0]),
        Sample.build("c-empty", jpg=empty[1]),
        Sample.build("d-corrupt", jpg=person[: len(person) // 3] + b"\x00garbage"),
        Sample.build("e-not-an-image", jpg=b"<html>not found</html>"),
        Sample.build("f-grey", png=encode(Image.open(images / PERSON_PHOTO).convert("L"), "PNG")),
        Sample.build("g-alpha", png=encode(rgba, "PNG")),
        Sample.build("h-tiny", jpg=encode(noise_image("RGB", (3, 2)), "JPEG")),
        Sample.build("i-huge", jpg=encode(noise_image("RGB", (6000, 4000)).resize((6000, 4000)), "JPEG", quality=50)),
        Sample.build("j-cmyk", jpg=encode(Image.open(images / PERSON_PHOTO).convert("CMYK"), "JPEG")),
        Sample.build("k-16bit", png=encode(noise_image("L", (64, 48)).convert("I;16"), "PNG")),
        Sample("l-no-image", {"json": b"{}"}),
    ]
    return batch, humans_stage(batch, HumansConfig(preset="fast"))


def rows_by_key(result):
    return {row["key"]: row for row in result.rows.to_pylist()}


def test_one_row_per_input_and_kept_are_the_passing(fast_result):
    batch, result = fast_result
    result.check([s.key for s in batch], stage="humans")
    rows = rows_by_key(result)
    kept_keys = [s.key for s in result.kept]
    assert kept_keys == [k for k, r in rows.items() if r["status"] == "kept"]
    assert all(is_valid_reason(r["reason"]) for r in rows.values() if r["status"] != "kept")
    assert sum(result.counts().values()) == len(batch)
    assert result.counts()["image:corrupt"] == 3


def test_person_photo_rejected_with_detector_named(fast_result):
    rows = rows_by_key(fast_result[1])
    for key in ("a-person", "f-grey", "g-alpha", "j-cmyk"):
        assert rows[key]["status"] == "rejected", key
        assert rows[key]["reason"].startswith(("humans:person:", "humans:face:")), rows[key]["reason"]
        assert rows[key]["humans_by"].replace("@", ".") in rows[key]["reason"]
    boxes = json.loads(rows["a-person"]["humans_boxes"])
    assert boxes and {"by", "task", "score", "box"} <= set(boxes[0])


def test_people_free_photos_kept_with_scores_measured(fast_result):
    rows = rows_by_key(fast_result[1])
    features = [p.feature for p in get_preset("fast").passes]
    for key in ("b-empty", "c-empty"):
        assert rows[key]["status"] == "kept", rows[key]
        assert rows[key]["humans_score"] < rows[key]["humans_threshold"]
        assert all(rows[key][SCORE_PREFIX + f] is not None for f in features)


def test_bad_images_get_a_reason_not_a_crash(fast_result):
    rows = rows_by_key(fast_result[1])
    for key in ("d-corrupt", "e-not-an-image", "l-no-image"):
        assert (rows[key]["status"], rows[key]["reason"]) == ("rejected", "image:corrupt"), rows[key]
        assert rows[key]["humans_error"]
    for key in ("h-tiny", "i-huge", "k-16bit"):
        assert rows[key]["humans_score"] is not None, rows[key]
    assert (rows["i-huge"]["width"], rows["i-huge"]["height"]) == (6000, 4000)


def test_rethreshold_reapplies_without_models(fast_result):
    rows = fast_result[1].rows
    same = rethreshold(rows, "fast")
    assert same.column("status").to_pylist() == rows.column("status").to_pylist()
    everything = rethreshold(rows, "fast", threshold=0.0)
    statuses = dict(zip(everything.column("key").to_pylist(), everything.column("status").to_pylist(), strict=True))
    assert all(s == "rejected" for s in statuses.values())
    nothing = rethreshold(rows, "fast", threshold=1.0)
    reasons = dict(zip(nothing.column("key").to_pylist(), nothing.column("reason").to_pylist(), strict=True))
    assert reasons["d-corrupt"] == "image:corrupt"  # other stages' reasons are left alone
    assert reasons["b-empty"] == ""


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown preset"):
        HumansConfig(preset="turbo")
    with pytest.raises(ValueError, match="threshold"):
        HumansConfig(threshold=1.5)


def test_presets_have_fitted_combiners():
    for name, preset in PRESETS.items():
        combiner = preset.combiner()
        assert 0.0 < combiner.threshold < 1.0, name
        assert set(combiner.passes) <= {p.feature for p in preset.passes}
    assert get_preset("default").combiner().cv["recall"] >= 0.99


def test_fast_preset_catches_every_clearly_visible_person(people_dev, shared_models):
    """A small real subset (the full dev-set sweep lives in benchmarks/human_filter_dev.py)."""
    import csv

    with (people_dev / "labels.csv").open() as handle:
        visible = [
            r["file"]
            for r in csv.DictReader(handle)
            if r["min_person_box_frac"] and float(r["min_person_box_frac"]) > 0.02
        ]
    batch = [
        Sample.build(f"p-{i:02d}", jpg=(people_dev / "images" / name).read_bytes())
        for i, name in enumerate(visible[:10])
    ]
    result = humans_stage(batch, HumansConfig(preset="fast"))
    assert result.kept == [], [row["humans_score"] for row in result.rows.to_pylist()]
