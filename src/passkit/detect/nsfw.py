"""Yahoo's open_nsfw classifier (ResNet-50, BSD-2-Clause weights) on onnxruntime.

Pre-processing as the reference classifier: the whole image stretched to 256x256 (bilinear), the central 224x224
crop, optionally a JPEG round trip (the reference re-encodes the resized image, so scores match it only with it),
BGR order, the training mean (104, 117, 123) subtracted, NHWC float32. The output's second column is P(nsfw).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from passkit.detect.base import make_session
from passkit.detect.registry import ModelEntry, get_entry, model_path

MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
RESIZE = 256
CROP = 224


class NsfwClassifier:
    family = "open_nsfw"

    def __init__(self, entry: ModelEntry, session: ort.InferenceSession, jpeg_roundtrip: bool = True):
        self.entry = entry
        self.session = session
        self.jpeg_roundtrip = jpeg_roundtrip
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load(cls, name: str = "open_nsfw", threads: int = 1, device: str = "auto", **kwargs: Any) -> NsfwClassifier:
        entry = get_entry(name)
        if entry.family != cls.family:
            raise ValueError(f"model {name} is a {entry.family} model, not {cls.family}")
        return cls(entry, make_session(model_path(name), threads=threads, device=device), **kwargs)

    def prepare(self, image_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) BGR uint8 -> (1, 224, 224, 3) float32 network input."""
        rgb = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
        rgb = rgb.resize((RESIZE, RESIZE), Image.Resampling.BILINEAR)
        offset = (RESIZE - CROP) // 2
        rgb = rgb.crop((offset, offset, offset + CROP, offset + CROP))
        if self.jpeg_roundtrip:
            buffer = io.BytesIO()
            rgb.save(buffer, format="JPEG")
            rgb = Image.open(io.BytesIO(buffer.getvalue()))
        pixels = np.asarray(rgb.convert("RGB"), np.float32)[:, :, ::-1] - MEAN_BGR
        return np.ascontiguousarray(pixels[None])

    def infer(self, tensor: np.ndarray) -> float:
        return float(self.session.run(None, {self.input_name: tensor})[0][0, 1])

    def __call__(self, image_bgr: np.ndarray) -> float:
        """P(nsfw) of one image."""
        return self.infer(self.prepare(image_bgr))
