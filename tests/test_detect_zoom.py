"""The zoom view: windows cut from a sharper decode than the detection one, boxes mapped back to original pixels,
and a small real person confirmed in place."""

import io

import numpy as np
import pytest
from PIL import Image

from human_filter_helpers import PERSON_BOX, PERSON_PHOTO, iou, negative_photos
from passkit.detect.ensemble import Ensemble, Pass, merge_zoom, seed_of, zoom_looks
from passkit.detect.image import DecodedImage, decode_for_detection
from passkit.detect.views import ZOOM_DECODE_MAX_SIDE, ZOOM_MIN_SIDE


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def dark_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(pixels.max(axis=2) < 60)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def test_zoom_window_comes_from_a_sharper_decode_and_maps_back():
    # A 20 x 30 px dark mark in a 3000 x 2000 photo; detection sees it at 512 px (under 4 x 6 decoded pixels).
    canvas = Image.new("RGB", (3000, 2000), (200, 200, 200))
    canvas.paste((0, 0, 0), (2000, 1200, 2020, 1230))
    image = decode_for_detection(jpeg(canvas), 512)
    assert image.scale > 5
    (look,) = zoom_looks(image, [[(0.3, (2000.0, 1200.0, 2020.0, 1230.0))]], 1, input_side=416)
    x, y, w, h = look.window
    assert (w, h) == (ZOOM_MIN_SIDE, ZOOM_MIN_SIDE) and x <= 2000 and x + w >= 2020 and y <= 1200 and y + h >= 1230
    assert look.scale == pytest.approx(3000 / ZOOM_DECODE_MAX_SIDE)  # the re-decode, capped
    x1, y1, x2, y2 = dark_box(look.pixels)
    left, top = look.offset
    mapped = [(v + shift) * look.scale for v, shift in zip((x1, y1, x2, y2), (left, top, left, top), strict=True)]
    assert mapped == pytest.approx([2000, 1200, 2020, 1230], abs=2 * look.scale)
    assert (x2 - x1) * look.scale == pytest.approx(20, abs=3)  # real pixels: the mark is ~14 px wide, not 4
    # Without the stored bytes the window is cut from the detection decode (same place, fewer pixels).
    (coarse,) = zoom_looks(
        DecodedImage(image.pixels, image.width, image.height), [[(0.3, (2000, 1200, 2020, 1230))]], 1, 416
    )
    assert coarse.scale == pytest.approx(image.scale) and coarse.window == look.window


@pytest.fixture
def small_person(people_dev, shared_models):
    """The umbrella woman of PERSON_PHOTO shrunk to 360 px tall inside a 2400 x 1800 people-free photo."""
    background = Image.open(people_dev / "images" / negative_photos(people_dev, 1)[0]).convert("RGB")
    canvas = background.resize((2400, 1800), Image.Resampling.BICUBIC)
    person = (
        Image.open(people_dev / "images" / PERSON_PHOTO).convert("RGB").resize((270, 360), Image.Resampling.LANCZOS)
    )
    canvas.paste(person, (1500, 900))
    factor = 360 / 640
    expected = tuple(v * factor + shift for v, shift in zip(PERSON_BOX, (1500, 900, 1500, 900), strict=True))
    return jpeg(canvas), expected


def test_zoom_confirms_a_small_real_person_in_original_pixels(small_person):
    data, expected = small_person
    image = decode_for_detection(data, 640)  # the person is 96 px tall here, ~60 px in a 2x2 tile's network input
    ensemble = Ensemble([Pass("yolox_nano", "tiles2"), Pass("yolox_nano", "zoom2")], device="cpu")
    output = ensemble(image)
    assert output.scores["yolox_nano@tiles2"] < 0.4  # unsure at detection size (0.25 when measured) ...
    seeds = [[seed_of(box.to_dict()) for box in output.boxes if box.feature == "yolox_nano@tiles2"]]
    looks = zoom_looks(image, seeds, 2, ensemble.zoom_input_side)
    assert looks and all(look.scale < image.scale for look in looks)  # sharper than the detection decode
    zoomed = [box for box in output.boxes if box.feature == "yolox_nano@zoom2"]
    assert zoomed and zoomed[0].score >= 0.6, [b.to_dict() for b in output.boxes]  # ... sure zoomed in (0.80)
    assert iou(zoomed[0].box, expected) > 0.6, (zoomed[0].box, expected)
    assert output.scores["yolox_nano@zoom2"] == pytest.approx(zoomed[0].score)
    again = merge_zoom(ensemble.zoom_matches(Pass("yolox_nano", "zoom2"), looks))
    assert again.boxes[0] == pytest.approx(np.array(zoomed[0].box), abs=0.05)  # the pass is its candidates' looks


def test_zoom_pass_is_person_only_and_runs_after_fixed_views(shared_models):
    with pytest.raises(ValueError, match="person"):
        Pass("yunet", "zoom2")
    ensemble = Ensemble([Pass("yolox_nano", "zoom3"), Pass("fastestdet", "full")], device="cpu")
    assert ensemble.features == ["fastestdet@full", "yolox_nano@zoom3"]
    assert ensemble.is_seed("fastestdet@full") and not ensemble.is_seed("yolox_nano@zoom3")


def test_zoom_preset_keeps_its_boxes_and_rethresholds_identically(people_dev, shared_models):
    import json

    from passkit.core.sample import Sample
    from passkit.detect.presets import get_preset
    from passkit.stages.humans import SCORE_PREFIX, HumansConfig, humans_stage, rethreshold

    names = [PERSON_PHOTO, "coco-train2017-000000125870.jpg", *negative_photos(people_dev, 2)]
    batch = [Sample.build(f"s-{i}", jpg=(people_dev / "images" / n).read_bytes()) for i, n in enumerate(names)]
    rows = humans_stage(batch, HumansConfig(preset="default")).rows
    zoom_passes = [p.feature for p in get_preset("default").passes if p.zoom]
    assert zoom_passes and all(SCORE_PREFIX + f in rows.column_names for f in zoom_passes)
    first = rows.to_pylist()[0]
    zoomed = [b for b in json.loads(first["humans_boxes"]) if b["by"] in zoom_passes]
    assert zoomed and max(iou(b["box"], PERSON_BOX) for b in zoomed) > 0.6  # kept in original pixels, on her
    again = rethreshold(rows, "default")
    for column in ("status", "reason", "humans_score", "humans_by"):
        assert again.column(column).to_pylist() == rows.column(column).to_pylist(), column
    flipped = rethreshold(rows, "default", threshold=0.0)
    assert set(flipped.column("status").to_pylist()) == {"rejected"}
