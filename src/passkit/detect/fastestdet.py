"""FastestDet (dog-qiuqiu, BSD-3-Clause) COCO detector; person = class 0.

Input BGR / 255, resized to 352x352 without keeping the aspect ratio. One stride-16 grid: objectness, tanh cell
offsets, sigmoid box size relative to the image, softmax class probabilities. The score is the person probability.
"""

from __future__ import annotations

import numpy as np

from passkit.detect.base import Detections, Detector, candidates, nms, paste_planes, resize

SCALE = np.full(3, 1.0 / 255.0, np.float32)


class FastestDet(Detector):
    family = "fastestdet"
    nms_iou = 0.45

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        width, height = self.entry.input_size
        tensor = np.empty((1, 3, height, width), np.float32)
        paste_planes(tensor[0], resize(image, width, height), scale=SCALE)
        return tensor, (image.shape[1], image.shape[0])

    def decode(self, outputs: list[np.ndarray], size: tuple[int, int]) -> Detections:
        grid = outputs[0][0]  # (85, rows, cols)
        rows, cols = grid.shape[1:]
        scores = (np.clip(grid[0], 0, 1) ** 0.6 * np.clip(grid[5], 0, 1) ** 0.4).ravel()
        keep = candidates(scores, self.min_score)
        if not len(keep):
            return Detections.empty()
        ys, xs = np.divmod(keep, cols)
        flat = grid.reshape(85, -1)[1:5, keep]  # the box channels of the candidates only
        cx = (xs + np.tanh(flat[0])) / cols
        cy = (ys + np.tanh(flat[1])) / rows
        w = 1.0 / (1.0 + np.exp(-flat[2]))
        h = 1.0 / (1.0 + np.exp(-flat[3]))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        boxes *= np.array([size[0], size[1], size[0], size[1]], np.float32)
        return nms(boxes, scores[keep], self.nms_iou, self.min_score, self.top_k)
