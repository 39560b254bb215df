"""The detector ensemble: each model runs on its views of an image; the per-model, per-view maximum scores are
the features of the fused decision, and every box is kept for the manifest.

Fixed views (``full``, ``tilesN``) run first; zoom passes (``model@zoomK``) then re-examine the K best person
candidates of the fixed person passes, each in a context window cut from a decode sharp enough for it (see
:mod:`passkit.detect.views`). Candidates are taken from the boxes exactly as the manifest stores them (rounded), so
the zoom pass of an image is a function of its stored rows and its pixels only."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from passkit.detect.base import Detections, Detector, nms
from passkit.detect.fastestdet import FastestDet
from passkit.detect.image import DecodedImage, ImageBombError, ImageDecodeError, decode_for_detection
from passkit.detect.nanodet import NanoDet
from passkit.detect.registry import get_entry
from passkit.detect.ultraface import UltraFace
from passkit.detect.views import (
    ZOOM_CONTEXT,
    ZOOM_DECODE_MAX_SIDE,
    ZOOM_MERGE_IOU,
    ZOOM_MIN_SIDE,
    check_view,
    crops,
    is_zoom,
    on_candidate,
    zoom_candidates,
    zoom_count,
    zoom_window,
)
from passkit.detect.yolox import YoloX
from passkit.detect.yunet import YuNet

FAMILIES: dict[str, type[Detector]] = {cls.family: cls for cls in (YoloX, NanoDet, FastestDet, YuNet, UltraFace)}


def load_detector(
    name: str, threads: int = 1, device: str = "auto", min_score: float = 0.01, top_k: int = 50
) -> Detector:
    """The detector for registry model ``name`` (file located, fetched and verified by the registry)."""
    entry = get_entry(name)
    return FAMILIES[entry.family].load(name, threads=threads, device=device, min_score=min_score, top_k=top_k)


def feature_name(model: str, view: str) -> str:
    return f"{model}@{view}"


@dataclass(frozen=True)
class Pass:
    """One model run on one kind of view."""

    model: str
    view: str = "full"

    def __post_init__(self) -> None:
        entry = get_entry(self.model)
        check_view(self.view)
        if self.zoom and entry.task != "person":
            raise ValueError(f"pass {self.feature}: zoom views re-examine person candidates with a person detector")

    @property
    def feature(self) -> str:
        return feature_name(self.model, self.view)

    @property
    def zoom(self) -> bool:
        return is_zoom(self.view)


Seed = tuple[float, tuple[float, float, float, float]]  # (score, box in original pixels) of a person candidate


@dataclass
class ZoomLook:
    """One candidate re-examined: its window's pixels and how to map boxes found in them to original pixels."""

    candidate: Seed
    window: tuple[int, int, int, int]  # x, y, w, h in original pixels
    pixels: np.ndarray  # BGR crop of the window from the zoom decode
    offset: tuple[int, int]  # the crop's top-left corner in zoom-decode pixels
    scale: float  # zoom-decode pixels -> original pixels


def seed_of(record: dict) -> Seed:
    """A stored box record as a candidate, rounded exactly as the manifest stores it."""
    x1, y1, x2, y2 = (round(float(v), 1) for v in record["box"])
    return round(float(record["score"]), 4), (x1, y1, x2, y2)


def zoom_looks(
    image: DecodedImage,
    seeds: Iterable[list[Seed]],
    count: int,
    input_side: int,
    context: float = ZOOM_CONTEXT,
    min_side: int = ZOOM_MIN_SIDE,
) -> list[ZoomLook]:
    """The windows of the ``count`` candidates among ``seeds`` (one list per person pass, best first), cut from a
    decode in which each window is at least ``input_side`` pixels long where the photo has that many (the detection
    decode when it already is, else a sharper decode of the stored bytes, long side <= ``ZOOM_DECODE_MAX_SIDE``)."""
    candidates = zoom_candidates(seeds, count)
    windows = [zoom_window(box, image.width, image.height, context, min_side) for _, box in candidates]
    if not windows:
        return []
    source = _zoom_source(image, windows, input_side)
    scale = source.scale
    height, width = source.pixels.shape[:2]
    looks = []
    for candidate, window in zip(candidates, windows, strict=True):
        x, y, w, h = window
        left, top = min(int(x / scale), width - 1), min(int(y / scale), height - 1)
        right, bottom = (
            max(left + 1, min(width, math.ceil((x + w) / scale))),
            max(top + 1, min(height, math.ceil((y + h) / scale))),
        )
        pixels = source.pixels[top:bottom, left:right]
        looks.append(ZoomLook(candidate, window, pixels, (left, top), scale))
    return looks


def merge_zoom(matches: Iterable[Seed | None], iou: float = ZOOM_MERGE_IOU) -> Detections:
    """The boxes of a zoom pass from its per-candidate confirmations: one box per place (two candidates confirmed
    by the same zoomed box count once), best first."""
    found = [match for match in matches if match is not None]
    if not found:
        return Detections.empty()
    boxes = np.array([box for _, box in found], np.float32)
    scores = np.array([score for score, _ in found], np.float32)
    return nms(boxes, scores, iou, 0.0, len(found))


def _zoom_source(image: DecodedImage, windows: list[tuple[int, int, int, int]], input_side: int) -> DecodedImage:
    # Original pixels per decoded pixel that the smallest window needs to fill input_side (1 = full resolution).
    wanted = min(max(w, h) / min(max(w, h), input_side) for _, _, w, h in windows)
    long_side = max(image.width, image.height)
    side = min(ZOOM_DECODE_MAX_SIDE, long_side, math.ceil(long_side / wanted))
    if image.source is None or side <= max(image.pixels.shape[:2]):
        return image
    try:
        return decode_for_detection(image.source, side)
    except (ImageDecodeError, ImageBombError):
        return image  # the bytes decoded once already; a failing sharper decode leaves the zoom at detection size


@dataclass
class Box:
    feature: str
    task: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original image pixels

    def to_dict(self) -> dict:
        return {
            "by": self.feature,
            "task": self.task,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
        }


@dataclass
class EnsembleOutput:
    scores: dict[str, float]  # feature -> max score over the crops of that view (0 when nothing found)
    boxes: list[Box] = field(default_factory=list)


class Ensemble:
    """Runs ``passes`` on decoded images; models are loaded once and shared between passes."""

    def __init__(self, passes: list[Pass], threads: int = 1, device: str = "auto", boxes_per_pass: int = 5):
        self.passes = list(passes)
        # Pre-processing (resize, layout) gets the same number of threads as inference: OpenCV's own pool would
        # compete with the other worker processes (one per core) and with onnxruntime.
        cv2.setNumThreads(max(1, threads))
        self.boxes_per_pass = boxes_per_pass
        self.passes.sort(key=lambda item: item.zoom)  # zoom passes need the boxes of the fixed ones
        self.detectors: dict[str, Detector] = {}
        for item in self.passes:
            if item.model not in self.detectors:
                # Only the best boxes per crop are kept, so NMS stops there.
                self.detectors[item.model] = load_detector(
                    item.model, threads=threads, device=device, top_k=max(1, boxes_per_pass)
                )

    @property
    def features(self) -> list[str]:
        return [item.feature for item in self.passes]

    @property
    def zoom_input_side(self) -> int:
        return max((max(self.detectors[p.model].entry.input_size) for p in self.passes if p.zoom), default=0)

    def is_seed(self, feature: str) -> bool:
        """Whether the boxes of pass ``feature`` are zoom candidates (a fixed-view person pass of this ensemble)."""
        return any(
            p.feature == feature and not p.zoom and self.detectors[p.model].task == "person" for p in self.passes
        )

    def zoom_plan(self, image: DecodedImage, boxes: list[Box], count: int) -> list[ZoomLook]:
        """The windows a zoom pass with ``count`` candidates looks at, given the fixed passes' ``boxes``."""
        seeds: dict[str, list[Seed]] = {}
        for box in boxes:
            if self.is_seed(box.feature):
                seeds.setdefault(box.feature, []).append(seed_of(box.to_dict()))
        return zoom_looks(image, seeds.values(), count, self.zoom_input_side)

    def zoom_matches(self, item: Pass, looks: list[ZoomLook]) -> list[Seed | None]:
        """Per candidate, the best box of ``item``'s model found in its window that sits on the candidate (score and
        box in original pixels), or None. Only the window's top ``boxes_per_pass`` boxes are looked at (NMS stops
        there), so in a crowded window a candidate can go unconfirmed although a person is there; the fixed views
        still score it."""
        detector = self.detectors[item.model]
        matches: list[Seed | None] = []
        for look in looks:
            found = detector(look.pixels).shifted(*look.offset, look.scale)
            match = None
            for box, score in zip(found.boxes, found.scores, strict=True):
                box = tuple(float(v) for v in box)
                if on_candidate(box, look.candidate[1]):
                    match = (float(score), box)
                    break
            matches.append(match)
        return matches

    def detect_zoom(self, item: Pass, looks: list[ZoomLook]) -> Detections:
        """A zoom pass: the confirmations of its candidates (:func:`merge_zoom`), in original pixels, best first."""
        return merge_zoom(self.zoom_matches(item, looks))

    def detect_views(self, image: DecodedImage, item: Pass) -> Detections:
        """All detections of one fixed-view pass over its crops, in original pixels, best first."""
        detector = self.detectors[item.model]
        height, width = image.pixels.shape[:2]
        found = []
        for x, y, w, h in crops(width, height, item.view):
            found.append(detector(image.pixels[y : y + h, x : x + w]).shifted(x, y, image.scale))
        boxes = np.concatenate([d.boxes for d in found])
        scores = np.concatenate([d.scores for d in found])
        order = np.argsort(-scores, kind="stable")
        return Detections(boxes[order], scores[order])

    def __call__(self, image: DecodedImage) -> EnsembleOutput:
        output = EnsembleOutput(scores={})
        looks: dict[int, list[ZoomLook]] = {}  # per candidate count, shared by the zoom passes
        for item in self.passes:
            if item.zoom:
                count = zoom_count(item.view)
                if count not in looks:
                    looks[count] = self.zoom_plan(image, output.boxes, count)
                detections = self.detect_zoom(item, looks[count])
            else:
                detections = self.detect_views(image, item)
            output.scores[item.feature] = detections.max_score
            task = self.detectors[item.model].task
            for box, score in zip(detections.boxes[: self.boxes_per_pass], detections.scores, strict=False):
                output.boxes.append(Box(item.feature, task, float(score), tuple(float(v) for v in box)))
        return output
