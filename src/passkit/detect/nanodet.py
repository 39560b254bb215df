"""NanoDet-m (RangiLyu, Apache-2.0) COCO detector with a GFL head; person = class 0.

Input BGR, (x - mean) / std per channel, letterboxed centred on zeros. Outputs per stride 8/16/32: sigmoid class
scores and 4 x 8-bin distance distributions (softmax, expectation, times stride) around cell centres.
"""

from __future__ import annotations

import numpy as np

from passkit.detect.base import Detections, Detector, candidates, nms, paste_planes, resize

STRIDES = (8, 16, 32)
REG_BINS = 8
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
SCALE = np.array([1.0 / std for std in STD], np.float32)  # 1 / std, evaluated in float32


class NanoDet(Detector):
    family = "nanodet"
    nms_iou = 0.6

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        width, height = self.entry.input_size
        # Outputs come as 3 class tensors then 3 distance tensors; pair them by number of cells per stride.
        shapes = {output.name: output.shape for output in self.session.get_outputs()}
        self._levels = []
        for stride in STRIDES:
            cells = (height // stride) * (width // stride)
            cls_name = next(n for n, s in shapes.items() if s[1] == cells and s[2] == 80)
            reg_name = next(n for n, s in shapes.items() if s[1] == cells and s[2] == 4 * REG_BINS)
            ys, xs = np.mgrid[0 : height // stride, 0 : width // stride]
            centres = (np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32) + 0.5) * stride
            self._levels.append((self.output_names.index(cls_name), self.output_names.index(reg_name), stride, centres))
        self._bins = np.arange(REG_BINS, dtype=np.float32)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, int, int]]:
        width, height = self.entry.input_size
        ratio = min(width / image.shape[1], height / image.shape[0])
        new_w, new_h = max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio))
        left, top = (width - new_w) // 2, (height - new_h) // 2
        canvas = np.zeros((1, 3, height, width), np.float32)
        paste_planes(canvas[0, :, top : top + new_h, left : left + new_w], resize(image, new_w, new_h), MEAN, SCALE)
        return canvas, (ratio, left, top)

    def decode(self, outputs: list[np.ndarray], transform: tuple[float, int, int]) -> Detections:
        ratio, left, top = transform
        all_boxes, all_scores = [], []
        for cls_index, reg_index, stride, centres in self._levels:
            scores = outputs[cls_index][0][:, 0]
            keep = candidates(scores, self.min_score)
            if not len(keep):
                continue
            logits = outputs[reg_index][0][keep].reshape(-1, 4, REG_BINS)
            logits = np.exp(logits - logits.max(axis=2, keepdims=True))
            distances = (logits / logits.sum(axis=2, keepdims=True)) @ self._bins * stride
            centre = centres[keep]
            boxes = np.concatenate([centre - distances[:, :2], centre + distances[:, 2:]], axis=1)
            all_boxes.append(boxes)
            all_scores.append(scores[keep])
        if not all_boxes:
            return Detections.empty()
        boxes = (np.concatenate(all_boxes) - np.array([left, top, left, top], np.float32)) / ratio
        return nms(boxes, np.concatenate(all_scores), self.nms_iou, self.min_score, self.top_k)
