"""Scene text on onnxruntime: a DBNet-style detector (text-probability map -> rotated line boxes) and a CTC line
recognizer, both PP-OCR exports (see the registry).

Detection: the image is resized so that its long side is at most ``max_side`` and both sides are multiples of 32,
normalised to [-1, 1] (BGR, as the network was trained), and the network returns a per-pixel text probability. The
post-processing is DB's: binarise at ``thresh``, dilate once, take the outer contours, fit a minimum-area rectangle,
score it by the mean probability inside it (dropped below ``box_thresh``), and grow ("unclip") it by
``area * unclip_ratio / perimeter`` on every side, since the network is trained to predict a shrunk text kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from passkit.detect.base import make_session
from passkit.detect.registry import ModelEntry, get_entry, model_path

STRIDE = 32


@dataclass
class TextRegion:
    """One detected text line: a rotated rectangle in original image pixels."""

    quad: np.ndarray  # (4, 2) float32 corners, clockwise from the top-left one
    score: float  # mean text probability inside the (shrunk) kernel box
    fill: float  # fraction of the kernel box above the binarisation threshold
    long: float  # length of the long side, pixels
    short: float  # length of the short side (the text height of a horizontal line), pixels
    angle: float  # direction of the long side, degrees in (-90, 90]; 0 = horizontal

    @property
    def aspect(self) -> float:
        return self.long / max(self.short, 1e-6)

    @property
    def center(self) -> tuple[float, float]:
        x, y = self.quad.mean(axis=0)
        return float(x), float(y)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        x1, y1 = self.quad.min(axis=0)
        x2, y2 = self.quad.max(axis=0)
        return float(x1), float(y1), float(x2), float(y2)


def order_quad(points: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left (image coordinates, y down)."""
    points = np.asarray(points, np.float32).reshape(4, 2)
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.stack([top_left, top_right, bottom_right, bottom_left]).astype(np.float32)


def region_from_quad(quad: np.ndarray, score: float, fill: float) -> TextRegion:
    quad = order_quad(quad)
    top = float(np.linalg.norm(quad[1] - quad[0]))
    side = float(np.linalg.norm(quad[3] - quad[0]))
    if top >= side:
        dx, dy = quad[1] - quad[0]
        long, short = top, side
    else:
        dx, dy = quad[3] - quad[0]
        long, short = side, top
    angle = float(np.degrees(np.arctan2(dy, dx)))
    if angle > 90:
        angle -= 180
    elif angle <= -90:
        angle += 180
    return TextRegion(quad, float(score), float(fill), long, short, angle)


class TextDetector:
    """The DB text detector: ``detect(bgr) -> list[TextRegion]`` in the pixels of the given image."""

    family = "dbnet"

    def __init__(
        self,
        entry: ModelEntry,
        session: ort.InferenceSession,
        max_side: int = 640,
        thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        min_size: float = 3.0,
        max_candidates: int = 300,
    ):
        self.entry = entry
        self.session = session
        self.max_side = max_side
        self.thresh = thresh
        self.box_thresh = box_thresh
        self.unclip_ratio = unclip_ratio
        self.min_size = min_size
        self.max_candidates = max_candidates
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(
        cls, name: str = "ppocr_det_v6_small", threads: int = 1, device: str = "auto", **kwargs: Any
    ) -> TextDetector:
        entry = get_entry(name)
        if entry.family != cls.family:
            raise ValueError(f"model {name} is a {entry.family} model, not {cls.family}")
        return cls(entry, make_session(model_path(name), threads=threads, device=device), **kwargs)

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """Network input (width, height): long side <= max_side, both multiples of 32 (at least 32)."""
        ratio = min(1.0, self.max_side / max(width, height))
        return (
            max(STRIDE, round(width * ratio / STRIDE) * STRIDE),
            max(STRIDE, round(height * ratio / STRIDE) * STRIDE),
        )

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        height, width = image.shape[:2]
        in_w, in_h = self.input_size(width, height)
        shrink = in_w * in_h < width * height
        resized = cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        tensor = cv2.dnn.blobFromImage(resized, 1.0 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=False)
        return tensor, (width / in_w, height / in_h)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: tensor})[0][0, 0]

    def decode(self, prob: np.ndarray, scale: tuple[float, float]) -> list[TextRegion]:
        bitmap = (prob > self.thresh).astype(np.uint8)
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(bitmap, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if len(contours) > self.max_candidates:  # keep the largest blobs of a cluttered map
            contours = sorted(contours, key=cv2.contourArea, reverse=True)[: self.max_candidates]
        scale_xy = np.array(scale, np.float32)
        regions = []
        for contour in contours:
            (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
            if min(w, h) < self.min_size:
                continue
            kernel = cv2.boxPoints(((cx, cy), (w, h), angle))
            score, fill = self._box_stats(prob, bitmap, kernel)
            if score < self.box_thresh:
                continue
            grow = w * h * self.unclip_ratio / (2.0 * (w + h))
            if min(w, h) + 2 * grow < self.min_size + 2:
                continue
            quad = cv2.boxPoints(((cx, cy), (w + 2 * grow, h + 2 * grow), angle)) * scale_xy
            regions.append(region_from_quad(quad, score, fill))
        regions.sort(key=lambda region: -region.score)
        return regions

    @staticmethod
    def _box_stats(prob: np.ndarray, bitmap: np.ndarray, box: np.ndarray) -> tuple[float, float]:
        """Mean probability and fraction of binarised pixels inside a rotated box."""
        height, width = prob.shape
        x1, y1 = np.clip(np.floor(box.min(axis=0)).astype(int), 0, [width - 1, height - 1])
        x2, y2 = np.clip(np.ceil(box.max(axis=0)).astype(int), 0, [width - 1, height - 1])
        mask = np.zeros((y2 - y1 + 1, x2 - x1 + 1), np.uint8)
        cv2.fillPoly(mask, [np.round(box - [x1, y1]).astype(np.int32)], 1)
        score = cv2.mean(prob[y1 : y2 + 1, x1 : x2 + 1], mask)[0]
        fill = cv2.mean(bitmap[y1 : y2 + 1, x1 : x2 + 1].astype(np.float32), mask)[0]
        return float(score), float(fill)

    def detect(self, image: np.ndarray) -> list[TextRegion]:
        tensor, scale = self.prepare(image)
        return self.decode(self.infer(tensor), scale)

    __call__ = detect


class TextRecognizer:
    """CTC line recognizer: ``read(bgr, quad) -> (text, confidence)`` for one text line."""

    family = "ctc"
    height = 48

    def __init__(self, entry: ModelEntry, session: ort.InferenceSession, min_width: int = 320, max_width: int = 640):
        self.entry = entry
        self.session = session
        self.min_width = min_width
        self.max_width = max_width
        self.input_name = session.get_inputs()[0].name
        characters = session.get_modelmeta().custom_metadata_map.get("character")
        if not characters:
            raise ValueError(f"model {entry.name} carries no 'character' dictionary in its metadata")
        # class 0 is the CTC blank, then the dictionary, then a space
        self.alphabet = ["", *characters.splitlines(), " "]

    @classmethod
    def load(cls, name: str = "ppocr_rec_v6_small", threads: int = 1, device: str = "auto") -> TextRecognizer:
        entry = get_entry(name)
        if entry.family != cls.family:
            raise ValueError(f"model {name} is a {entry.family} model, not {cls.family}")
        return cls(entry, make_session(model_path(name), threads=threads, device=device))

    def prepare(self, image: np.ndarray, quad: np.ndarray) -> np.ndarray:
        """Rectify the quad to a horizontal strip 48 px high, normalise to [-1, 1], pad right to min_width."""
        quad = order_quad(quad)
        width = max(1, round(max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))))
        height = max(1, round(max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))))
        target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        strip = cv2.warpPerspective(
            image,
            cv2.getPerspectiveTransform(quad, target),
            (width, height),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if height > 1.5 * width:  # a vertical line: read it top to bottom
            strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
            width, height = height, width
        out_w = int(min(self.max_width, max(1, np.ceil(self.height * width / height))))
        strip = cv2.resize(strip, (out_w, self.height), interpolation=cv2.INTER_LINEAR)
        tensor = np.zeros((1, 3, self.height, max(out_w, self.min_width)), np.float32)
        tensor[0, :, :, :out_w] = strip.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
        return tensor

    def decode(self, probs: np.ndarray) -> tuple[str, float]:
        """Greedy CTC: best class per step, repeats merged, blanks dropped; confidence = mean kept probability."""
        best = probs.argmax(axis=1)
        best_p = probs[np.arange(len(best)), best]
        keep = best != 0
        keep[1:] &= best[1:] != best[:-1]
        chars = [self.alphabet[i] if i < len(self.alphabet) else "" for i in best[keep]]
        confidence = float(best_p[keep].mean()) if keep.any() else 0.0
        return "".join(chars), confidence

    def read(self, image: np.ndarray, quad: np.ndarray) -> tuple[str, float]:
        tensor = self.prepare(image, quad)
        return self.decode(self.session.run(None, {self.input_name: tensor})[0][0])
