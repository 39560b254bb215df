import json

import pytest

from passkit.core.manifest import write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import write_shard
from passkit.review.dataset import ReviewDataset
from passkit.review.queues import build_queue, max_scores
from review_helpers import picture


@pytest.fixture
def dataset(tmp_path):
    rows = [
        {"key": "a", "humans_score": 0.001, "nsfw_score": None},
        {"key": "b", "humans_score": None, "nsfw_score": None},  # not scored: last
        {"key": "c", "humans_score": 0.002, "nsfw_score": 0.5},  # nsfw is the highest score
        {"key": "d", "humans_score": 0.003, "nsfw_score": 0.0},
        {"key": "e", "humans_score": 0.003, "nsfw_score": 0.0},  # tie with d: by key
    ]
    write_shard(ShardPaths(tmp_path, 0).tar, [Sample.build(r["key"], jpg=picture(i)) for i, r in enumerate(rows)])
    manifest = [{**r, "status": "kept", "reason": "", "humans_boxes": json.dumps([])} for r in rows]
    manifest.append({"key": "z", "status": "rejected", "reason": "nsfw", "humans_score": 0.9, "nsfw_score": 0.99})
    write_manifest(ShardPaths(tmp_path, 0).manifest, manifest)
    return ReviewDataset.open(tmp_path)


def test_borderline_puts_the_highest_score_of_any_detector_first(dataset):
    assert build_queue("borderline", dataset) == ["c", "d", "e", "a", "b"]
    assert max_scores(dataset)[dataset.keys.index("c")] == 0.5


def test_all_and_audit_queues(dataset):
    assert build_queue("all", dataset) == ["a", "b", "c", "d", "e"]
    assert build_queue("audit", dataset, ["e", "zz", "a"]) == ["e", "a"]  # keys no longer kept are left out
    with pytest.raises(ValueError, match="audit sample"):
        build_queue("audit", dataset)
    with pytest.raises(ValueError, match="unknown queue"):
        build_queue("random", dataset)
