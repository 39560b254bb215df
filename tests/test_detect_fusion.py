"""Combiner features computed from stored boxes, the fused decision, and the cross-validated fit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from passkit.detect.calibrate import cross_validate, fit_combiner, threshold_for_recall
from passkit.detect.features import NO_BOX_AREA, PassBoxes, check_feature, feature_matrix, feature_value, logit
from passkit.detect.fusion import Combiner, shipped_combiners

PERSON = "yolox_nano@full"
TILES = "yolox_nano@tiles2"
FACE = "yunet@full"


def image() -> PassBoxes:
    return PassBoxes.from_records(
        [
            {"by": PERSON, "score": 0.2, "box": [0, 0, 10, 10]},
            {"by": PERSON, "score": 0.7, "box": [100, 100, 150, 200]},
            {"by": PERSON, "score": 0.05, "box": [300, 300, 310, 320]},
            {"by": TILES, "score": 0.4, "box": [102, 98, 152, 205]},
            {"by": TILES, "score": 0.9, "box": [500, 0, 520, 30]},
            {"by": FACE, "score": 0.6, "box": [115, 105, 135, 125]},
        ],
        width=640,
        height=480,
    )


def test_feature_values_from_boxes():
    img = image()
    assert img.of(PERSON)[0][0] == 0.7  # records are sorted best first per pass
    assert feature_value(f"max:{PERSON}", img) == pytest.approx(logit(0.7))
    assert feature_value(f"rank2:{PERSON}", img) == pytest.approx(logit(0.2))
    assert feature_value(f"count:{PERSON}:0.1", img) == 2
    assert feature_value(f"count:{PERSON}:0.01", img) == 3
    assert feature_value(f"area:{PERSON}", img) == pytest.approx(math.log10(50 * 100 / (640 * 480)))
    # The 0.9 tile box is elsewhere; the 0.4 one overlaps the 0.7 full-image box: agreement is min(0.7, 0.4).
    assert feature_value(f"agree:{PERSON}+{TILES}", img) == pytest.approx(logit(0.4))
    assert feature_value(f"inside:{FACE}+{PERSON}", img) == pytest.approx(logit(0.6))
    assert feature_value(f"inside:{FACE}+{TILES}", img) == pytest.approx(logit(0.4))


def test_features_of_an_empty_image_and_missing_passes():
    empty = PassBoxes({}, 640, 480)
    assert feature_value(f"max:{PERSON}", empty) == pytest.approx(logit(0.0))
    assert feature_value(f"count:{PERSON}:0.1", empty) == 0
    assert feature_value(f"area:{PERSON}", empty) == NO_BOX_AREA
    assert feature_value(f"agree:{PERSON}+{TILES}", empty) == pytest.approx(logit(0.0))
    matrix = feature_matrix([f"max:{PERSON}", f"area:{FACE}"], [empty, image()])
    assert matrix.shape == (2, 2)


def test_only_the_top_five_boxes_of_a_pass_count():
    records = [{"by": PERSON, "score": 0.9 - i / 100, "box": [0, 0, 5, 5]} for i in range(8)]
    assert feature_value(f"count:{PERSON}:0.1", PassBoxes.from_records(records, 10, 10)) == 5


@pytest.mark.parametrize("name", ["median:a@full", "max:nopass", "agree:a@full", "count:a@full:x", "agree:a@b+c"])
def test_malformed_feature_names_are_refused(name):
    with pytest.raises(ValueError):
        check_feature(name)


def combiner(rules: dict[str, float] | None = None) -> Combiner:
    return Combiner(
        (PERSON, f"count:{TILES}:0.3", f"inside:{FACE}+{PERSON}"),
        (1.0, 0.5, 0.8),
        2.0,
        0.3,
        rules or {},
        {PERSON: "person", TILES: "person", FACE: "face"},
    )


def test_combiner_reads_first_format_names_and_round_trips():
    fused = combiner({FACE: 0.9})
    assert fused.features[0] == f"max:{PERSON}"
    assert fused.passes == (PERSON, TILES, FACE)
    again = Combiner.from_dict(fused.to_dict())
    assert again.features == fused.features
    assert again.probability(image()) == pytest.approx(fused.probability(image()), abs=1e-5)
    with pytest.raises(ValueError, match="weights"):
        Combiner.from_dict({**fused.to_dict(), "weights": [1.0]})


def test_decide_names_the_pass_that_fired():
    fused = combiner()
    img = image()
    z = 2.0 + logit(0.7) + 0.5 * 2 + 0.8 * logit(0.6)
    flagged, probability, fired = fused.decide(img)
    assert probability == pytest.approx(1 / (1 + math.exp(-z)))
    assert flagged and fired == PERSON
    assert fused.decide(PassBoxes({}, 640, 480)) == (False, pytest.approx(fused.probability(PassBoxes({}, 1, 1))), "")
    # A sure detector is never outvoted, whatever the fused threshold.
    ruled = combiner({TILES: 0.85})
    assert ruled.decide(img, threshold=1.0)[0::2] == (True, TILES)


def test_scores_alone_serve_combiners_of_best_scores():
    fused = Combiner((PERSON, FACE), (1.0, 0.5), 0.0, 0.5)
    img = image()
    assert fused.decide({PERSON: 0.7, FACE: 0.6}) == fused.decide(img)


def test_shipped_combiners_state_their_cross_validated_figures():
    for name, fused in shipped_combiners().items():
        assert {"recall", "retention", "folds", "repeats"} <= set(fused.cv), name
        assert 0.0 < fused.threshold < 1.0


def synthetic(n: int = 240, seed: int = 0) -> tuple[list[PassBoxes], np.ndarray]:
    """Positives score higher on one pass and have a second box more often; a few hard positives score low."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    images = []
    for label in labels:
        top = float(np.clip(rng.normal(0.55 if label else 0.2, 0.18), 0.001, 0.999))
        second = float(np.clip(top * rng.uniform(0.2, 0.9 if label else 0.4), 0.001, 0.999))
        images.append(PassBoxes({PERSON: [(top, (0, 0, 20, 40)), (second, (50, 50, 60, 70))]}, 640, 480))
    return images, labels


def test_threshold_for_recall_leaves_at_most_the_allowed_misses():
    probabilities = np.array([0.1, 0.2, 0.3, 0.9, 0.05, 0.6])
    labels = np.array([1, 1, 1, 1, 0, 0], bool)
    assert threshold_for_recall(probabilities, labels, 1.0) == 0.1
    assert threshold_for_recall(probabilities, labels, 0.75) == 0.2
    assert threshold_for_recall(probabilities, labels, 1.0, already=np.array([1, 0, 0, 0, 0, 0], bool)) == 0.2


def test_fit_reaches_its_target_out_of_fold_and_cross_validation_reports_spread():
    images, labels = synthetic()
    features = [f"max:{PERSON}", f"rank2:{PERSON}"]
    fitted = fit_combiner(images, labels, features, 0.98, regularisation=1.0)
    assert fitted.weights[0] > 0  # a higher best score means a person
    flagged = fitted.probabilities(feature_matrix(features, images)) >= fitted.threshold
    assert flagged[labels].mean() >= 0.95  # out-of-fold threshold: near the target in-sample too
    assert (~flagged[~labels]).mean() > 0.3  # and it does not flag everything
    cv = cross_validate(images, labels, features, 0.98, regularisation=1.0, repeats=2)
    assert cv["repeats"] == 2 and 0.9 <= cv["recall"] <= 1.0
    assert cv["retention_min"] <= cv["retention"] and cv["retention_sd"] >= 0
    assert cv["missed_fraction"].shape == (len(labels),)
    # A random feature carries nothing: the fitted recall-first threshold then keeps few people-free images.
    noise = [PassBoxes({TILES: [(float(s), (0, 0, 1, 1))]}, 1, 1) for s in np.random.default_rng(1).random(len(labels))]
    blind = cross_validate(noise, labels, [f"max:{TILES}"], 0.98, regularisation=1.0, repeats=1)
    assert blind["retention"] < cv["retention"]
