"""Ultra-Light-Fast-Generic-Face-Detector-1MB (Linzaer, MIT), trained on WIDER FACE.

Input RGB, (x - 127) / 128, resized to the network size without keeping the aspect ratio. Priors and box decoding
live inside the graph: outputs are softmax scores (background, face) and boxes normalised to 0-1.
"""

from __future__ import annotations

import numpy as np

from passkit.detect.base import Detections, Detector, candidates, nms, paste_planes, resize

MEAN = np.full(3, 127.0, np.float32)
SCALE = np.full(3, 1.0 / 128.0, np.float32)


class UltraFace(Detector):
    family = "ultraface"
    nms_iou = 0.3

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        width, height = self.entry.input_size
        tensor = np.empty((1, 3, height, width), np.float32)
        # BGR planes written in reverse order: the network reads RGB.
        paste_planes(tensor[0, ::-1], resize(image, width, height), offset=MEAN, scale=SCALE)
        return tensor, (image.shape[1], image.shape[0])

    def decode(self, outputs: list[np.ndarray], size: tuple[int, int]) -> Detections:
        scores = outputs[self.output_names.index("scores")][0][:, 1]
        keep = candidates(scores, self.min_score)
        boxes = outputs[self.output_names.index("boxes")][0][keep] * np.array([size[0], size[1], size[0], size[1]])
        return nms(boxes, scores[keep], self.nms_iou, self.min_score, self.top_k)
