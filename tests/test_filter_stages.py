"""validate + privacy over a generated corpus of bad and awkward files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from filter_helpers import (
    assert_no_private_metadata,
    bad_corpus,
    encode,
    exif_bytes,
    exif_tags,
    orientation_marker,
    photo,
    png_with_declared_size,
)
from passkit.core.manifest import KEPT
from passkit.core.reasons import IMAGE_BOMB, IMAGE_CORRUPT, IMAGE_SINGLE_COLOUR
from passkit.core.sample import Sample
from passkit.stages.image import ImageSample, decode
from passkit.stages.privacy import PrivacyConfig, privacy_stage, strip_jpeg, strip_png
from passkit.stages.validate import ValidateConfig, validate_stage

CORPUS = bad_corpus()


def _samples(files=CORPUS) -> list[Sample]:
    return [
        Sample.build(f"bad-{f.name}", **{f.ext: f.data}, json={"creator": "a", "latitude": 52.1, "longitude": 4.9})
        for f in files
    ]


def _rows(result) -> dict[str, dict]:
    return {row["key"]: row for row in result.rows.to_pylist()}


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20
    assert len({f.name for f in CORPUS}) == len(CORPUS)


def test_every_bad_file_gets_its_reason_and_the_batch_goes_on():
    batch = _samples()
    result = validate_stage(batch, ValidateConfig())
    result.check([s.key for s in batch])
    rows = _rows(result)
    got = {f.name: rows[f"bad-{f.name}"]["reason"] for f in CORPUS}
    assert got == {f.name: f.reason for f in CORPUS}
    assert {s.key for s in result.kept} == {f"bad-{f.name}" for f in CORPUS if not f.reason}
    for sample in result.kept:
        assert isinstance(sample, ImageSample) and sample.image.rgb.mode == "RGB"


def test_pillow_bomb_warning_is_never_success():
    # The explicit limit allows it, but Pillow's DecompressionBombWarning fires: still image:bomb.
    data = png_with_declared_size(10_000, 10_000)
    cfg = ValidateConfig(max_pixels=10**9)
    rows = _rows(validate_stage([Sample.build("bomb", png=data)], cfg))
    assert rows["bomb"]["reason"] == IMAGE_BOMB
    assert "DecompressionBomb" in rows["bomb"]["detail"] or "decompression" in rows["bomb"]["detail"].lower()


def test_explicit_pixel_limit():
    data = encode(photo(1, (300, 200)), "PNG")
    assert _rows(validate_stage([Sample.build("a", png=data)], ValidateConfig(max_pixels=50_000)))["a"]["reason"] == (
        IMAGE_BOMB
    )
    assert _rows(validate_stage([Sample.build("a", png=data)], ValidateConfig(max_pixels=60_000)))["a"]["status"] == (
        KEPT
    )


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left"), (3, "bottom-right")])
def test_exif_orientation_is_applied(orientation, corner):
    data = encode(orientation_marker((120, 80)), "JPEG", quality=95, exif=exif_bytes(orientation))
    image = decode(data, ValidateConfig().limits)
    rgb = np.asarray(image.rgb).astype(int)
    assert image.rgb.size == ((80, 120) if orientation in (6, 8) else (120, 80))
    h, w = rgb.shape[:2]
    corners = {"top-left": rgb[2, 2], "top-right": rgb[2, w - 3], "bottom-left": rgb[h - 3, 2],
               "bottom-right": rgb[h - 3, w - 3]}  # fmt: skip
    red = [name for name, (r, g, b) in corners.items() if r > 200 and g < 60 and b < 60]
    assert red == [corner]


def test_mode_normalisation():
    by_name = {f.name: f for f in CORPUS}
    grey16 = decode(by_name["png-16-bit"].data, ValidateConfig().limits)
    values = np.asarray(grey16.rgb)[:, :, 0]
    assert grey16.source_mode.startswith("I") and values.min() <= 1 and values.max() >= 254  # scaled, not clipped
    gif = decode(by_name["gif-palette-transparency"].data, ValidateConfig().limits)
    assert gif.rgb.mode == "RGB" and "alpha" in gif.notes
    animated = decode(by_name["gif-animated"].data, ValidateConfig().limits)
    assert animated.frames == 3 and np.asarray(animated.rgb)[10, 10].tolist() == [200, 30, 30]  # first frame
    webp = decode(by_name["webp-animated"].data, ValidateConfig().limits)
    assert webp.frames == 3 and abs(int(np.asarray(webp.rgb)[10, 10][0]) - 200) < 12
    cmyk = decode(by_name["cmyk-jpeg"].data, ValidateConfig().limits)
    reference = np.asarray(photo(10).convert("CMYK").convert("RGB")).astype(int)
    assert cmyk.source_mode == "CMYK" and np.abs(np.asarray(cmyk.rgb).astype(int) - reference).mean() < 8
    rgba = decode(by_name["png-rgba"].data, ValidateConfig().limits)
    assert min(np.asarray(rgba.rgb)[0, 0].tolist()) >= 250  # (nearly) transparent composited on white


def test_single_colour_thresholds_are_measured():
    flat = Image.new("RGB", (100, 100), (10, 200, 30))
    rows = _rows(validate_stage([Sample.build("flat", png=encode(flat, "PNG"))], ValidateConfig()))
    assert rows["flat"]["reason"] == IMAGE_SINGLE_COLOUR and rows["flat"]["std"] == 0.0
    ok = _rows(validate_stage([Sample.build("ok", png=encode(photo(3), "PNG"))], ValidateConfig()))["ok"]
    assert ok["status"] == KEPT and ok["std"] > 20 and ok["entropy"] > 5


def test_real_photos_pass_validation(people_dev):
    files = sorted((people_dev / "images").glob("*.jpg"))[:40]
    batch = [Sample.build(f"p-{i}", jpg=f.read_bytes()) for i, f in enumerate(files)]
    assert validate_stage(batch, ValidateConfig()).counts() == {"kept": len(files)}


def test_privacy_leaves_no_metadata_in_any_stored_image():
    batch = _samples()
    validated = validate_stage(batch, ValidateConfig())
    result = privacy_stage(validated.kept, PrivacyConfig())
    result.check([s.key for s in validated.kept])
    rows = _rows(result)
    assert len(result.kept) == len(validated.kept)
    for sample in result.kept:
        ext = sample.image_ext()
        assert ext in ("jpg", "png") and sum(e in sample.parts for e in ("jpg", "png", "gif", "webp", "tif")) == 1
        assert_no_private_metadata(sample.parts[ext])
        assert "latitude" not in sample.json() and "longitude" not in sample.json() and sample.json()["creator"] == "a"
        row = rows[sample.key]
        assert (row["width"], row["height"]) == Image.open(io.BytesIO(sample.parts[ext])).size
    assert "gps" in rows["bad-jpeg-gps"]["metadata_removed"] and "serial" in rows["bad-jpeg-gps"]["metadata_removed"]
    assert rows["bad-jpeg-gps"]["privacy"] == "stripped"
    assert rows["bad-exif-rotation-6"]["privacy"] == "reencoded"
    assert (rows["bad-exif-rotation-6"]["width"], rows["bad-exif-rotation-6"]["height"]) == (80, 120)
    assert rows["bad-cmyk-jpeg"]["privacy"] == "reencoded" and rows["bad-cmyk-jpeg"]["format"] == "jpg"
    assert rows["bad-gif-animated"]["format"] == "png" and rows["bad-tiff-exif-gps"]["format"] == "png"
    assert rows["bad-png-exif-gps"]["privacy"] == "stripped"
    mpo = rows["bad-mpo-two-pictures-gps"]
    assert mpo["privacy"] == "stripped" and "gps" in mpo["metadata_removed"] and mpo["format"] == "jpg"


def test_input_really_had_gps_so_the_privacy_test_can_fail():
    for name in ("jpeg-gps", "tiff-exif-gps", "exif-rotation-6"):
        data = next(f.data for f in CORPUS if f.name == name)
        assert any(tag.startswith("GPS") for tag in exif_tags(data)), name
    for name in ("webp-exif-gps", "png-exif-gps"):  # exifread does not read these containers; Pillow does
        data = next(f.data for f in CORPUS if f.name == name)
        assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), name


def test_lossless_strip_keeps_pixels_and_drops_trailing_data():
    data = encode(photo(1, (200, 150)), "JPEG", quality=85, exif=exif_bytes(), progressive=True)
    data += encode(photo(2), "JPEG", exif=exif_bytes())  # an MPF-like second image after EOI
    stripped = strip_jpeg(data)
    assert stripped is not None and len(stripped) < len(data)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stripped))), np.asarray(Image.open(io.BytesIO(data))))
    assert stripped.endswith(b"\xff\xd9") and stripped.count(b"\xff\xd8") == 1
    assert_no_private_metadata(stripped)
    png = encode(photo(3), "PNG", exif=exif_bytes(), pnginfo=None)
    clean = strip_png(png)
    assert clean is not None and b"eXIf" in png and b"eXIf" not in clean
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(clean))), np.asarray(Image.open(io.BytesIO(png))))
    assert strip_jpeg(data[:300]) is None and strip_png(png[:100]) is None


def test_privacy_is_deterministic_and_resizes():
    batch = _samples()
    first = privacy_stage(validate_stage(batch, ValidateConfig()).kept, PrivacyConfig(resize_max_side=64))
    second = privacy_stage(validate_stage(_samples(), ValidateConfig()).kept, PrivacyConfig(resize_max_side=64))
    assert [s.parts for s in first.kept] == [s.parts for s in second.kept]
    for sample in first.kept:
        assert max(Image.open(io.BytesIO(sample.parts[sample.image_ext()])).size) <= 64


def test_keep_geo_keeps_coordinates():
    validated = validate_stage(_samples([f for f in CORPUS if f.name == "jpeg-gps"]), ValidateConfig())
    kept = privacy_stage(validated.kept, PrivacyConfig(keep_geo=True)).kept
    assert kept[0].json()["latitude"] == 52.1
    assert_no_private_metadata(kept[0].parts["jpg"])  # the image itself never keeps EXIF GPS


def test_resize_uses_reduced_jpeg_decode():
    data = encode(photo(5, (2000, 1500)), "JPEG", quality=90)
    cfg = ValidateConfig(decode_max_side=500)
    result = validate_stage([Sample.build("big", jpg=data)], cfg)
    row = _rows(result)["big"]
    assert (row["source_width"], row["decoded_width"]) == (2000, 500)  # DCT-scaled 1/4 at decode, still >= 500
    stored = privacy_stage(result.kept, PrivacyConfig(resize_max_side=500)).kept[0].parts["jpg"]
    assert Image.open(io.BytesIO(stored)).size == (500, 375)


def test_privacy_alone_decodes_plain_samples():
    data = encode(photo(1), "JPEG", exif=exif_bytes())
    result = privacy_stage([Sample.build("a", jpg=data), Sample.build("b", jpg=b"junk")], PrivacyConfig())
    assert _rows(result)["b"]["reason"] == IMAGE_CORRUPT
    assert_no_private_metadata(result.kept[0].parts["jpg"])
