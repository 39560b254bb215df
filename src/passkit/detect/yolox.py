"""YOLOX (Megvii, Apache-2.0) COCO detector; person = class 0.

Input BGR 0-255 without normalisation, resized bilinearly and letterboxed at the top-left of a canvas filled with
114. Output rows (tx, ty, tw, th, obj, 80 class probabilities) over the grids of strides 8/16/32, row-major.
"""

from __future__ import annotations

import cv2
import numpy as np

from passkit.detect.base import Detections, Detector, candidates, letterbox_chw, nms, resize

STRIDES = (8, 16, 32)


class YoloX(Detector):
    family = "yolox"
    nms_iou = 0.45

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        width, height = self.entry.input_size
        cells, strides = [], []
        for stride in STRIDES:
            ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
            cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full(xs.size, stride))
        self._grid = np.concatenate(cells).astype(np.float32)
        self._strides = np.concatenate(strides).astype(np.float32)[:, None]

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        width, height = self.entry.input_size
        ratio = min(width / image.shape[1], height / image.shape[0])
        new_w, new_h = max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio))
        # Bilinear both ways, as upstream YOLOX's preproc (and ~5x cheaper than area averaging).
        return letterbox_chw(resize(image, new_w, new_h, shrink=cv2.INTER_LINEAR), width, height, 114.0), ratio

    def decode(self, outputs: list[np.ndarray], ratio: float) -> Detections:
        rows = outputs[0][0]
        scores = rows[:, 4] * rows[:, 5]
        keep = candidates(scores, self.min_score)
        raw, scores = rows[keep, :4], scores[keep]  # only the box columns of the candidates are copied
        grid, strides = self._grid[keep], self._strides[keep]
        centres = (raw[:, :2] + grid) * strides
        sizes = np.exp(np.minimum(raw[:, 2:4], 10.0)) * strides
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / ratio
        return nms(boxes, scores, self.nms_iou, self.min_score, self.top_k)
