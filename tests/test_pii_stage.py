"""The PII stage: licence plates rejected by default, documents / handwriting only when asked, other photos kept."""

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from filter_helpers import photo
from passkit.core.manifest import KEPT, REJECTED
from passkit.core.reasons import IMAGE_CORRUPT, PII_PLATE, PII_TEXT
from passkit.core.sample import Sample
from passkit.detect import registry
from passkit.detect.registry import ModelMissingError
from passkit.detect.textdet import TextDetector, order_quad, region_from_quad
from passkit.stages import pii
from passkit.stages.pii import PiiConfig, pii_stage, reads_like_plate, rethreshold
from pii_helpers import (
    REAL_NO_TEXT,
    REAL_PLATES,
    REAL_SCOREBOARD,
    REAL_SIGN,
    document_scene,
    handwriting_scene,
    jpeg,
    plate_scene,
    sign_scene,
)

TEXT_ON = PiiConfig(text=True)


def _sample(key: str, data: bytes) -> Sample:
    return Sample.build(key, jpg=data, json={"creator": "c"})


def _rows(result) -> dict[str, dict]:
    return {row["key"]: row for row in result.rows.to_pylist()}


@pytest.fixture(scope="module")
def synthetic() -> list[Sample]:
    return [
        _sample("plate", jpeg(plate_scene("NB52 KXT"))),
        _sample("plate-eu", jpeg(plate_scene("KL 4729", seed=5))),
        _sample("document", jpeg(document_scene())),
        _sample("handwriting", jpeg(handwriting_scene())),
        _sample("sign", jpeg(sign_scene())),
        _sample("house-number", jpeg(plate_scene("4729", seed=6))),
        _sample("texture", jpeg(photo(7, (800, 600)))),
    ]


def test_default_rejects_plates_and_keeps_documents_signs_and_textures(synthetic):
    result = pii_stage(synthetic, PiiConfig())
    result.check([s.key for s in synthetic])
    rows = _rows(result)
    assert rows["plate"]["reason"] == PII_PLATE and rows["plate"]["status"] == REJECTED
    assert rows["plate-eu"]["reason"] == PII_PLATE
    for key in ("document", "handwriting", "sign", "house-number", "texture"):
        assert rows[key]["status"] == KEPT, rows[key]
    assert [s.key for s in result.kept] == ["document", "handwriting", "sign", "house-number", "texture"]
    assert rows["plate"]["pii_plate_score"] >= PiiConfig().plate_threshold
    assert rows["texture"]["pii_regions"] == 0 and rows["texture"]["pii_score"] == 0.0


def test_text_rule_rejects_documents_and_handwriting_but_not_a_shop_sign(synthetic):
    rows = _rows(pii_stage(synthetic, TEXT_ON))
    assert rows["document"]["reason"] == PII_TEXT
    assert rows["handwriting"]["reason"] == PII_TEXT
    assert rows["document"]["pii_text_lines"] >= TEXT_ON.text_min_lines
    assert rows["document"]["pii_text_area"] > 0.2
    assert rows["plate"]["reason"] == PII_PLATE  # the plate rule still comes first
    assert rows["sign"]["status"] == KEPT and 0 < rows["sign"]["pii_text_area"] < TEXT_ON.text_max_area
    assert rows["texture"]["status"] == KEPT


def test_boxes_locate_the_plate_in_original_pixels(synthetic):
    rows = _rows(pii_stage(synthetic[:1], PiiConfig()))
    boxes = json.loads(rows["plate"]["pii_boxes"])
    plate = [box for box in boxes if box["kind"] == "plate"]
    assert len(plate) == 1
    x1, y1, x2, y2 = plate[0]["box"]
    # plate_scene draws the plate at x 280-520, y 380-440 of an 800x600 image
    assert 270 <= x1 < x2 <= 530 and 370 <= y1 < y2 <= 450
    assert len(plate[0]["quad"]) == 4
    assert "NB52" not in rows["plate"]["pii_boxes"]  # the registration itself is never stored


def test_recognition_off_falls_back_to_shape_only(synthetic):
    rows = _rows(pii_stage(synthetic, PiiConfig(plate_read=False)))
    assert rows["plate"]["reason"] == PII_PLATE
    assert rows["house-number"]["reason"] == PII_PLATE  # without reading, a plate-shaped number is a plate
    assert rows["texture"]["status"] == KEPT


def test_real_photos_with_plates_are_rejected(people_dev: Path):
    images = people_dev / "images"
    batch = [_sample(name.removesuffix(".jpg"), (images / name).read_bytes()) for name in REAL_PLATES]
    rows = _rows(pii_stage(batch, PiiConfig()))
    for key, row in rows.items():
        assert row["reason"] == PII_PLATE, (key, row)


def test_real_sign_scoreboard_and_plain_photos_are_kept_by_default(people_dev: Path):
    images = people_dev / "images"
    names = [REAL_SIGN, REAL_SCOREBOARD, *REAL_NO_TEXT]
    batch = [_sample(name.removesuffix(".jpg"), (images / name).read_bytes()) for name in names]
    rows = _rows(pii_stage(batch, PiiConfig()))
    assert all(row["status"] == KEPT for row in rows.values()), rows
    assert rows[REAL_SIGN.removesuffix(".jpg")]["pii_regions"] >= 2  # the sign's text was seen, and kept
    for name in REAL_NO_TEXT:
        assert rows[name.removesuffix(".jpg")]["pii_regions"] == 0
    # the scoreboard is dozens of small lines: the (opt-in) text rule would take it
    scoreboard = _rows(pii_stage(batch[1:2], TEXT_ON))[REAL_SCOREBOARD.removesuffix(".jpg")]
    assert scoreboard["reason"] == PII_TEXT


def test_undecodable_images_get_a_reason_not_a_crash():
    batch = [_sample("bad", b"not an image"), Sample("none", {"json": b"{}"})]
    rows = _rows(pii_stage(batch, PiiConfig()))
    assert rows["bad"]["reason"] == IMAGE_CORRUPT and rows["bad"]["pii_error"]
    assert rows["none"]["reason"] == IMAGE_CORRUPT


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("NB52 KXT", True),
        ("KL-4729", True),
        ("B MW 1234", True),
        ("CT 69SEX", True),
        ("ab12 cde", False),  # lower case: words, not a registration
        ("4729", False),  # digits only: house or fleet number
        ("1969-2009", False),
        ("BAKERY", False),
        ("OPEN 24 HOURS", False),
        ("AB1", False),
        ("ABCDEFGH12345", False),
    ],
)
def test_reads_like_plate(text: str, plate: bool):
    assert reads_like_plate(text) is plate


def test_digits_only_plates_when_letters_are_not_required():
    assert reads_like_plate("4729", needs_letter=False)
    assert not reads_like_plate("47", needs_letter=False)


def test_db_postprocessing_finds_a_synthetic_line_and_unclips_it():
    detector = TextDetector.load()
    prob = np.zeros((64, 128), np.float32)
    prob[28:36, 20:100] = 0.9  # a shrunk text kernel, 80 x 8
    regions = detector.decode(prob, (2.0, 2.0))
    assert len(regions) == 1
    region = regions[0]
    # the kernel box of the (dilated) blob also covers its zero-probability rim pixels
    assert 0.7 < region.score <= 0.9 and region.angle == pytest.approx(0, abs=1)
    # unclip grows each side by area * 1.6 / perimeter = 80*8*1.6/176 ~ 5.8 px (kernel pixels), then x2
    assert region.short == pytest.approx(2 * (8 + 2 * 5.8), abs=3)
    assert region.long == pytest.approx(2 * (80 + 2 * 5.8), abs=3)
    prob[:] = 0.2  # below the binarisation threshold: nothing
    assert detector.decode(prob, (1.0, 1.0)) == []


def test_quad_order_and_angle():
    quad = np.array([[10, 40], [110, 40], [110, 0], [10, 0]], np.float32)
    ordered = order_quad(quad)
    assert ordered.tolist() == [[10, 0], [110, 0], [110, 40], [10, 40]]
    region = region_from_quad(quad, 0.8, 1.0)
    assert (region.long, region.short, region.angle) == (100, 40, 0)
    rotated = cv2.boxPoints(((50, 50), (100, 20), 20))
    assert abs(region_from_quad(rotated, 0.8, 1.0).angle) == pytest.approx(20, abs=0.5)


def test_config_is_validated():
    with pytest.raises(ValueError, match="neither"):
        PiiConfig(plate=False, text=False)
    with pytest.raises(ValueError, match="plate_aspect"):
        PiiConfig(plate_aspect=(5.0, 2.0))
    with pytest.raises(ValueError, match="plate_threshold"):
        PiiConfig(plate_threshold=1.5)


def test_missing_text_model_is_a_clear_error(monkeypatch, tmp_path):
    entry = registry.MODELS["ppocr_det_v6_small"]
    monkeypatch.setitem(
        registry.MODELS, entry.name, dataclasses.replace(entry, package_files=("passkit_no_such_package/x.onnx",))
    )
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PASSKIT_OFFLINE", "1")
    pii._detector.cache_clear()
    try:
        with pytest.raises(ModelMissingError) as caught:
            pii_stage([_sample("a", jpeg(photo(1)))], PiiConfig())
    finally:
        pii._detector.cache_clear()
    message = str(caught.value)
    assert "PP-OCRv6_det_small.onnx" in message and entry.url in message and "PASSKIT_MODELS" in message
    assert "pip install passkit-no-such-package" in message


def test_rethreshold_reapplies_the_rules_from_stored_rows(synthetic):
    stored = pii_stage(synthetic, PiiConfig()).rows
    again = {row["key"]: row for row in rethreshold(stored, TEXT_ON).to_pylist()}
    assert again["document"]["reason"] == PII_TEXT and again["handwriting"]["reason"] == PII_TEXT
    assert again["plate"]["reason"] == PII_PLATE and again["texture"]["status"] == KEPT
    assert again["sign"]["status"] == KEPT
    loose = {row["key"]: row for row in rethreshold(stored, PiiConfig(plate_threshold=0.99)).to_pylist()}
    assert all(row["status"] == KEPT for row in loose.values())
