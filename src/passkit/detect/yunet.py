"""YuNet face detector (Shiqi Yu, libfacedetection; = cv2.FaceDetectorYN), trained on WIDER FACE.

Input BGR 0-255 without normalisation. Never upscales (YuNet is trained for faces of ~10-300 px): the image is
shrunk to fit ``max_side`` and zero-padded at the bottom/right (to a multiple of 32 for the dynamic-shape export,
to 640x640 for the fixed one). Outputs per stride 8/16/32: cls, obj (sigmoid), bbox (cx, cy, log w, log h in
strides) and 5 landmarks. score = sqrt(cls * obj).
"""

from __future__ import annotations

import numpy as np

from passkit.detect.base import Detections, Detector, candidates, letterbox_chw, nms, resize

STRIDES = (8, 16, 32)


class YuNet(Detector):
    family = "yunet"
    nms_iou = 0.3

    def __init__(self, *args, max_side: int = 640, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        fixed = self.entry.input_size
        self.fixed = fixed if fixed[0] > 0 else None
        self.max_side = min(max_side, *fixed) if self.fixed else max_side
        names = self.output_names
        self._index = {s: (names.index(f"cls_{s}"), names.index(f"obj_{s}"), names.index(f"bbox_{s}")) for s in STRIDES}

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, int]]:
        ratio = min(1.0, self.max_side / max(image.shape[:2]))
        new_w, new_h = max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio))
        if self.fixed:
            width, height = self.fixed
        else:
            width, height = -(-new_w // 32) * 32, -(-new_h // 32) * 32
        return letterbox_chw(resize(image, new_w, new_h), width, height, 0.0), (ratio, width)

    def decode(self, outputs: list[np.ndarray], transform: tuple[float, int]) -> Detections:
        ratio, width = transform
        all_boxes, all_scores = [], []
        for stride, (cls_i, obj_i, box_i) in self._index.items():
            cls = np.clip(outputs[cls_i][0][:, 0], 0, 1)
            obj = np.clip(outputs[obj_i][0][:, 0], 0, 1)
            scores = np.sqrt(cls * obj)
            keep = candidates(scores, self.min_score)
            if not len(keep):
                continue
            rows, cols = np.divmod(keep, width // stride)
            raw = outputs[box_i][0][keep]
            cx, cy = (cols + raw[:, 0]) * stride, (rows + raw[:, 1]) * stride
            w = np.exp(np.minimum(raw[:, 2], 10.0)) * stride
            h = np.exp(np.minimum(raw[:, 3], 10.0)) * stride
            all_boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
            all_scores.append(scores[keep])
        if not all_boxes:
            return Detections.empty()
        boxes = np.concatenate(all_boxes) / ratio
        return nms(boxes, np.concatenate(all_scores), self.nms_iou, self.min_score, self.top_k)
