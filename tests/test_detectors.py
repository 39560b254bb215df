"""Each detector on a real photo: boxes decoded to the right place (drawn and checked), none on people-free photos."""

import cv2
import numpy as np
import pytest

from human_filter_helpers import FACE_BOX, PERSON_BOX, PERSON_PHOTO, iou, negative_photos
from passkit.detect.ensemble import Ensemble, Pass, load_detector
from passkit.detect.image import decode_for_detection

PERSON_MODELS = ["yolox_nano", "nanodet_m", "fastestdet"]
FACE_MODELS = ["yunet", "yunet_640", "ultraface_rfb320", "ultraface_rfb640"]


@pytest.fixture(scope="module")
def photo(request):
    from conftest import PEOPLE_DEV

    if not (PEOPLE_DEV / "images" / PERSON_PHOTO).is_file():
        pytest.skip("people-dev photos not found")
    return decode_for_detection((PEOPLE_DEV / "images" / PERSON_PHOTO).read_bytes(), 1024)


def draw(image: np.ndarray, boxes: np.ndarray, path) -> np.ndarray:
    canvas = image.copy()
    for x1, y1, x2, y2 in boxes.round().astype(int):
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 0, 255), 2)
    assert cv2.imwrite(str(path), canvas)
    return canvas


@pytest.mark.parametrize("name", PERSON_MODELS + FACE_MODELS)
def test_detector_finds_the_person_or_face(name, photo, shared_models, tmp_path):
    detector = load_detector(name, min_score=0.3)
    detections = detector(photo.pixels)
    assert len(detections) >= 1
    expected = PERSON_BOX if detector.task == "person" else FACE_BOX
    best = detections.boxes[0]
    assert detections.scores[0] > 0.5, (name, detections.scores[:3])
    assert iou(best, expected) > 0.6, (name, best.round(), expected)
    assert np.all(np.diff(detections.scores) <= 0)  # best first
    canvas = draw(photo.pixels, detections.boxes[:1], tmp_path / f"{name}.png")
    x1, y1 = int(best[0]), int(best[1])
    assert tuple(canvas[max(y1, 0) + 1, max(x1, 0) + 5]) == (0, 0, 255)  # the box edge lies where decoded


@pytest.mark.parametrize("name", PERSON_MODELS)
def test_person_detectors_quiet_on_people_free_photos(name, people_dev, shared_models):
    detector = load_detector(name)
    scores = []
    for file in negative_photos(people_dev, 6):
        image = decode_for_detection((people_dev / "images" / file).read_bytes(), 640)
        scores.append(detector(image.pixels).max_score)
    assert np.median(scores) < 0.3, scores


def test_boxes_map_back_to_original_pixels_from_reduced_decoding(photo, people_dev, shared_models):
    small = decode_for_detection((people_dev / "images" / PERSON_PHOTO).read_bytes(), 240)
    assert max(small.pixels.shape[:2]) <= 240 and (small.width, small.height) == (481, 640)
    ensemble = Ensemble([Pass("yolox_nano", "full")])
    best = ensemble.detect_views(small, Pass("yolox_nano", "full")).boxes[0]
    assert iou(best, PERSON_BOX) > 0.6, best


def test_tiles_find_the_person_in_original_coordinates(photo, shared_models):
    item = Pass("yolox_nano", "tiles2")
    detections = Ensemble([item]).detect_views(photo, item)
    assert detections.max_score > 0.5
    assert max(iou(box, PERSON_BOX) for box in detections.boxes[:5]) > 0.5
