"""dedup (exact, near, evaluation set) and the per-creator cap."""

from __future__ import annotations

import io
from itertools import combinations

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from filter_helpers import encode, exif_bytes, photo
from passkit.core.reasons import CAP_CREATOR, DEDUP_EVAL_SET, DEDUP_EXACT, DEDUP_NEAR
from passkit.core.sample import Sample
from passkit.stages.cap import CapConfig, cap_decisions, cap_stage
from passkit.stages.dedup import (
    DedupConfig,
    HammingIndex,
    dedup_decisions,
    dedup_stage,
    hashes_from_hex,
    phash_of,
)
from passkit.stages.image import decode
from passkit.stages.privacy import PrivacyConfig, privacy_stage
from passkit.stages.validate import ValidateConfig, validate_stage

THRESHOLD = DedupConfig().near_threshold


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    return encode(image, "JPEG", quality=quality)


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    reencoded = Image.open(io.BytesIO(_jpeg(image, 40))).convert("RGB")
    return {
        "resize-half": image.resize((w // 2, h // 2), Image.Resampling.BILINEAR),
        "resize-up": image.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.BICUBIC),
        "jpeg-q40": reencoded,
        "crop-2pc": image.crop((w * 2 // 100, h * 2 // 100, w - w * 2 // 100, h - h * 2 // 100)),
        # pHash tolerates crops of a few percent (measured on people-dev: up to 2 % a side centred, 1 % off one
        # corner; 3 % reaches 12 bits); heavier crops need an embedding-based near-dup detector.
        "crop-corner": image.crop((0, 0, w - w // 100, h - h // 100)),
    }


def _distance(a: Image.Image, b: Image.Image) -> int:
    return (phash_of(a) ^ phash_of(b)).bit_count()


def test_near_duplicates_of_real_photos_collide_and_different_photos_do_not(people_dev):
    files = sorted((people_dev / "images").glob("*.jpg"))[:24]
    images = [decode(f.read_bytes(), ValidateConfig().limits).rgb for f in files]
    for image in images:
        for name, variant in _variants(image).items():
            assert _distance(image, variant) <= THRESHOLD, name
    different = [_distance(a, b) for a, b in combinations(images, 2)]
    assert min(different) > THRESHOLD


def test_dedup_stage_on_real_photos(people_dev):
    files = sorted((people_dev / "images").glob("*.jpg"))[:12]
    batch = []
    for i, f in enumerate(files):
        batch.append(Sample.build(f"orig-{i:02d}", jpg=f.read_bytes()))
        image = Image.open(f).convert("RGB")
        w, h = image.size
        batch.append(Sample.build(f"crop-{i:02d}", jpg=_jpeg(image.crop((w // 50, h // 50, w - w // 50, h - h // 50)))))
        batch.append(Sample.build(f"small-{i:02d}", jpg=_jpeg(image.resize((w // 2, h // 2)), 60)))
    # The filter's path: validate (DCT-scaled decode of losslessly stored JPEGs) -> privacy -> dedup.
    validated = validate_stage(batch, ValidateConfig())
    assert len(validated.kept) == len(batch)
    stored = privacy_stage(validated.kept, PrivacyConfig()).kept
    result = dedup_stage(stored, DedupConfig())
    result.check([s.key for s in batch])
    rows = {r["key"]: r for r in result.rows.to_pylist()}
    assert sorted(s.key for s in result.kept) == [f"orig-{i:02d}" for i in range(len(files))]  # most pixels kept
    for i in range(len(files)):
        for prefix in ("crop", "small"):
            row = rows[f"{prefix}-{i:02d}"]
            assert (row["reason"], row["dup_of"]) == (DEDUP_NEAR, f"orig-{i:02d}")


def test_exact_duplicates_by_decoded_pixels():
    image = photo(1, (120, 90))
    batch = [
        Sample.build("a-png", png=encode(image, "PNG")),
        Sample.build("b-png-other-encoding", png=encode(image, "PNG", exif=Image.Exif().tobytes(), compress_level=1)),
        Sample.build("c-bmp", bmp=encode(image, "BMP")),
        Sample.build("d-jpeg", jpg=_jpeg(image, 90)),
        Sample.build("e-other", png=encode(photo(2, (120, 90)), "PNG")),
    ]
    rows = {r["key"]: r for r in dedup_stage(batch, DedupConfig(exact_key="pixels")).rows.to_pylist()}
    assert rows["a-png"]["status"] == "kept"
    assert rows["b-png-other-encoding"]["reason"] == DEDUP_EXACT and rows["c-bmp"]["reason"] == DEDUP_EXACT
    assert rows["d-jpeg"]["reason"] == DEDUP_NEAR  # lossy: not the same pixels, but the same picture
    assert rows["e-other"]["status"] == "kept"
    assert rows["a-png"]["exact_sha256"] == rows["c-bmp"]["exact_sha256"] != rows["d-jpeg"]["exact_sha256"]


def test_exact_duplicates_by_canonical_stored_bytes():
    image = photo(1, (120, 90))
    jpeg = encode(image, "JPEG", quality=90)
    batch = [
        Sample.build("a-jpeg", jpg=jpeg),
        Sample.build("b-jpeg-with-exif", jpg=encode(image, "JPEG", quality=90, exif=exif_bytes())),
        Sample.build("c-jpeg-trailing-data", jpg=jpeg + b"\x00" * 100 + jpeg),
        Sample.build("d-bmp", bmp=encode(image, "BMP")),
        Sample.build("e-tiff", tif=encode(image, "TIFF", exif=exif_bytes())),
        Sample.build("f-png", png=encode(image, "PNG", compress_level=9)),
        Sample.build("g-png-with-exif", png=encode(image, "PNG", compress_level=9, exif=exif_bytes())),
    ]
    stored = privacy_stage(validate_stage(batch, ValidateConfig()).kept, PrivacyConfig()).kept
    rows = {r["key"]: r for r in dedup_stage(stored, DedupConfig(exact_key="stored")).rows.to_pylist()}
    assert [rows[k]["reason"] for k in ("b-jpeg-with-exif", "c-jpeg-trailing-data")] == [DEDUP_EXACT] * 2
    assert (rows["e-tiff"]["reason"], rows["e-tiff"]["dup_of"]) == (DEDUP_EXACT, "d-bmp")  # same pixels re-encoded
    assert (rows["g-png-with-exif"]["reason"], rows["g-png-with-exif"]["dup_of"]) == (DEDUP_EXACT, "f-png")
    # Same pixels through different paths (stripped PNG vs re-encoded BMP): near duplicates at distance 0.
    assert (rows["f-png"]["reason"], rows["f-png"]["dup_distance"]) == (DEDUP_NEAR, 0)


def test_eval_set_contamination_wins_over_other_reasons():
    eval_image = photo(5, (128, 96))
    eval_hashes = hashes_from_hex([f"{phash_of(eval_image):016x}"])
    batch = [
        Sample.build("a", jpg=_jpeg(eval_image.resize((256, 192)))),
        Sample.build("b", jpg=_jpeg(photo(6, (128, 96)))),
    ]
    result = dedup_stage(batch, DedupConfig(), eval_hashes=eval_hashes, eval_ids=["test/0001.png"])
    rows = {r["key"]: r for r in result.rows.to_pylist()}
    assert (rows["a"]["reason"], rows["a"]["dup_of"]) == (DEDUP_EVAL_SET, "test/0001.png")
    assert rows["b"]["status"] == "kept" and [s.key for s in result.kept] == ["b"]


def _brute_pairs(a: np.ndarray, radius: int) -> set[tuple[int, int]]:
    distance = np.bitwise_count(a[:, None] ^ a[None, :])
    i, j = np.nonzero(np.triu(distance <= radius, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("radius", [0, 3, 6, 10, 16])
def test_hamming_index_finds_exactly_the_brute_force_pairs(radius):
    rng = np.random.default_rng(radius)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 300, dtype=np.uint64)
    # Plant near neighbours at every distance up to radius + 2.
    flips = [np.uint64(int(sum(1 << int(b) for b in rng.choice(64, d, replace=False)))) for d in range(radius + 3)]
    near = np.array([base[k] ^ flips[k % len(flips)] for k in range(200)], dtype=np.uint64)
    hashes = np.concatenate([base, near, base[:20]])  # with exact repeats
    left, right, distance = HammingIndex(hashes, radius).search(hashes, exclude_self=True)
    assert set(zip(left.tolist(), right.tolist(), strict=True)) == _brute_pairs(hashes, radius)
    assert np.array_equal(distance, np.bitwise_count(hashes[left] ^ hashes[right]))


def test_hamming_index_scales_without_all_pairs():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 200_000, dtype=np.uint64)
    index = HammingIndex(hashes, 10)
    assert len(index.widths) >= 3  # chunked: candidates are a tiny fraction of all pairs
    left, right, distance = index.search(hashes[:2000])
    assert set(zip(left.tolist(), right.tolist(), strict=True)) >= {(i, i) for i in range(2000)}
    assert distance.max() <= 10 and len(left) < 2000 + 100  # random 64-bit hashes are rarely within 10 bits


def test_greedy_near_decisions_do_not_chain():
    # a ~ b (distance 6) and b ~ c (distance 6) but a !~ c (distance 12): with a kept, b goes and c stays.
    a = 0
    b = (1 << 6) - 1
    c = b ^ (((1 << 6) - 1) << 6)
    table = pa.table(
        {
            "key": ["a", "b", "c"],
            "exact_sha256": ["1", "2", "3"],
            "phash": [f"{v:016x}" for v in (a, b, c)],
            "pixels": [300, 200, 100],
        }
    )
    decisions = dedup_decisions(table, DedupConfig(near_threshold=8))
    assert set(decisions) == {"b"} and decisions["b"].dup_of == "a" and decisions["b"].distance == 6


def test_cap_is_deterministic_and_independent_of_order():
    keys = [f"k-{i:03d}" for i in range(50)]
    creators = ["alice"] * 30 + ["bob"] * 5 + [""] * 15
    first = cap_decisions(keys, creators, CapConfig(max_per_creator=10))
    second = cap_decisions(keys[::-1], creators[::-1], CapConfig(max_per_creator=10))
    assert first == second and len(first) == 20 and set(first.values()) == {"alice"}
    assert cap_decisions(keys, creators, CapConfig(max_per_creator=None)) == {}
    other_seed = cap_decisions(keys, creators, CapConfig(max_per_creator=10, seed="x"))
    assert set(other_seed) != set(first)


def test_cap_stage_rows():
    batch = [Sample.build(f"s-{i}", jpg=b"", json={"creator": "Ann  Lee" if i % 2 else "ann lee"}) for i in range(6)]
    result = cap_stage(batch, CapConfig(max_per_creator=4))
    result.check([s.key for s in batch])
    assert result.counts() == {"kept": 4, CAP_CREATOR: 2}  # names compare casefolded, whitespace-normalised
