"""The detector ensemble: each model runs on its views of an image; the per-model, per-view maximum scores are
the features of the fused decision, and every box is kept for the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from passkit.detect.base import Detections, Detector
from passkit.detect.fastestdet import FastestDet
from passkit.detect.image import DecodedImage
from passkit.detect.nanodet import NanoDet
from passkit.detect.registry import get_entry
from passkit.detect.ultraface import UltraFace
from passkit.detect.views import crops, parse_view
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
        get_entry(self.model)
        parse_view(self.view)

    @property
    def feature(self) -> str:
        return feature_name(self.model, self.view)


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

    def detect_views(self, image: DecodedImage, item: Pass) -> Detections:
        """All detections of one pass over its crops, in original pixels, best first."""
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
        for item in self.passes:
            detections = self.detect_views(image, item)
            output.scores[item.feature] = detections.max_score
            task = self.detectors[item.model].task
            for box, score in zip(detections.boxes[: self.boxes_per_pass], detections.scores, strict=False):
                output.boxes.append(Box(item.feature, task, float(score), tuple(float(v) for v in box)))
        return output
