"""The optional NSFW stage: open_nsfw scores, the reason, re-thresholding, the missing-model error."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from filter_helpers import photo
from passkit.core.manifest import KEPT, REJECTED
from passkit.core.reasons import IMAGE_CORRUPT, NSFW
from passkit.core.sample import Sample
from passkit.detect import registry
from passkit.detect.nsfw import CROP, NsfwClassifier
from passkit.detect.registry import ModelMissingError
from passkit.stages import nsfw
from passkit.stages.nsfw import NsfwConfig, nsfw_stage, rethreshold
from pii_helpers import jpeg

# people-dev photos: bananas on a desk (no person) and a painted belly (a person) score high; a street does not.
BANANAS = "coco-val2017-000000003661.jpg"
BELLY = "coco-val2017-000000435205.jpg"
STREET = "coco-train2017-000000000094.jpg"


def _has_model() -> bool:
    try:
        registry.model_path("open_nsfw", download=False)
    except registry.ModelError:
        return False
    return True


needs_model = pytest.mark.skipif(not _has_model(), reason="open_nsfw not installed (pip install passkit[nsfw])")


def _sample(key: str, data: bytes) -> Sample:
    return Sample.build(key, jpg=data, json={"creator": "c"})


@needs_model
def test_scores_and_reason_on_real_photos(people_dev: Path):
    images = people_dev / "images"
    batch = [_sample(name.removesuffix(".jpg"), (images / name).read_bytes()) for name in (BANANAS, BELLY, STREET)]
    result = nsfw_stage(batch, NsfwConfig())
    result.check([s.key for s in batch])
    rows = {row["key"]: row for row in result.rows.to_pylist()}
    bananas = rows[BANANAS.removesuffix(".jpg")]
    assert bananas["reason"] == NSFW and bananas["nsfw_score"] > 0.9
    assert rows[BELLY.removesuffix(".jpg")]["reason"] == NSFW
    street = rows[STREET.removesuffix(".jpg")]
    assert street["status"] == KEPT and street["nsfw_score"] < 0.2
    assert [s.key for s in result.kept] == [STREET.removesuffix(".jpg")]
    loose = rethreshold(result.rows, 0.99)
    assert all(row["status"] == KEPT for row in loose.to_pylist())
    strict = rethreshold(result.rows, 0.0)
    assert all(row["status"] == REJECTED for row in strict.to_pylist())


@needs_model
def test_preprocessing_matches_the_reference_layout():
    classifier = NsfwClassifier.load()
    image = np.asarray(photo(3, (300, 200)))[:, :, ::-1]
    tensor = classifier.prepare(np.ascontiguousarray(image))
    assert tensor.shape == (1, CROP, CROP, 3) and tensor.dtype == np.float32
    # BGR minus the mean (104, 117, 123): a mid-grey image comes out near (24, 11, 5)
    grey = classifier.prepare(np.full((100, 100, 3), 128, np.uint8))
    assert np.allclose(grey[0].mean(axis=(0, 1)), [24, 11, 5], atol=1.5)
    assert 0.0 <= classifier(np.ascontiguousarray(image)) <= 1.0


@needs_model
def test_undecodable_image_is_recorded():
    rows = nsfw_stage([_sample("bad", b"garbage"), _sample("ok", jpeg(photo(1)))], NsfwConfig()).rows.to_pylist()
    assert rows[0]["reason"] == IMAGE_CORRUPT and rows[0]["nsfw_score"] is None
    assert rows[1]["nsfw_score"] is not None


def test_missing_model_is_a_clear_error(monkeypatch, tmp_path):
    entry = registry.MODELS["open_nsfw"]
    monkeypatch.setitem(registry.MODELS, entry.name, dataclasses.replace(entry, package_files=("no_such_pkg/x.onnx",)))
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "none"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PASSKIT_OFFLINE", "1")
    nsfw._classifier.cache_clear()
    try:
        with pytest.raises(ModelMissingError) as caught:
            nsfw_stage([_sample("a", jpeg(photo(1)))], NsfwConfig())
    finally:
        nsfw._classifier.cache_clear()
    message = str(caught.value)
    assert "open-nsfw.onnx" in message and entry.url in message and "PASSKIT_MODELS" in message


def test_threshold_is_validated():
    with pytest.raises(ValueError, match="threshold"):
        NsfwConfig(threshold=2.0)
