"""What every detector shares: onnxruntime sessions, detections, NMS, resizing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from passkit.detect.registry import ModelEntry, get_entry, model_path

DEVICES = ("auto", "cpu", "cuda")


def providers_for(device: str = "auto") -> list[str]:
    """onnxruntime providers: CUDA first when available (``auto``) or required (``cuda``), CPU otherwise."""
    if device not in DEVICES:
        raise ValueError(f"device {device!r} not in {DEVICES}")
    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(f"device=cuda but onnxruntime offers only {available} (install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: Path, threads: int = 1, device: str = "auto") -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # the upstream exports carry harmless "initializer in graph inputs" warnings
    return ort.InferenceSession(os.fspath(path), sess_options=options, providers=providers_for(device))


@dataclass
class Detections:
    """Boxes (N, 4) as x1, y1, x2, y2 in pixels of the image given to the detector, scores (N,), best first."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @property
    def max_score(self) -> float:
        return float(self.scores[0]) if len(self.scores) else 0.0

    def __len__(self) -> int:
        return len(self.scores)

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Detections:
        """Map boxes of a crop at (dx, dy) back to the full image, then scale (decoded -> original pixels)."""
        offset = np.array([dx, dy, dx, dy], np.float32)
        return Detections(((self.boxes + offset) * scale).astype(np.float32), self.scores)


NMS_BLOCK = 32  # boxes compared at once in NMS: with top_k ~5 the first block usually decides


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, min_score: float, top_k: int) -> Detections:
    """Greedy non-maximum suppression; keeps at most ``top_k`` boxes with score >= ``min_score``.

    Boxes are visited best first in blocks of :data:`NMS_BLOCK`: a block's overlaps with the boxes kept so far and
    with each other are computed at once (the same float32 arithmetic as one pair at a time), then the block is
    walked greedily. Usually the first block already holds ``top_k`` survivors, so the rest is never compared."""
    boxes, scores = boxes.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)
    keep_mask = scores >= min_score
    if not keep_mask.all():
        boxes, scores = boxes[keep_mask], scores[keep_mask]
    if not len(scores) or top_k < 1:
        return Detections.empty()
    order = np.argsort(-scores, kind="stable")
    # Coordinates in score order, one contiguous array each.
    x1, y1, x2, y2 = np.ascontiguousarray(boxes[order].T)
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep: list[int] = []
    for start in range(0, len(order), NMS_BLOCK):
        block = slice(start, start + NMS_BLOCK)
        alive = np.ones(len(areas[block]), bool)
        if keep:
            alive &= (_overlaps(x1, y1, x2, y2, areas, keep, block) <= iou).all(axis=0)
        if not alive.any():
            continue
        within = _overlaps(x1, y1, x2, y2, areas, block, block) <= iou
        for index in range(len(alive)):
            if alive[index]:
                keep.append(start + index)
                if len(keep) == top_k:
                    break
                alive &= within[index]
        if len(keep) == top_k:
            break
    chosen = order[keep]
    return Detections(boxes[chosen], scores[chosen])


def _overlaps(x1, y1, x2, y2, areas, rows: list[int] | slice, cols: slice) -> np.ndarray:
    """IoU of boxes ``rows`` (axis 0) with boxes ``cols`` (axis 1), in float32."""
    width = np.maximum(np.minimum(x2[rows, None], x2[cols]) - np.maximum(x1[rows, None], x1[cols]), 0)
    height = np.maximum(np.minimum(y2[rows, None], y2[cols]) - np.maximum(y1[rows, None], y1[cols]), 0)
    inter = width * height
    return inter / np.maximum(areas[rows, None] + areas[cols] - inter, 1e-9)


def candidates(scores: np.ndarray, min_score: float, limit: int = 300) -> np.ndarray:
    """Indices of the at most ``limit`` best scores >= ``min_score`` (pre-NMS top-k: box decoding and NMS then
    cost the same however cluttered the image)."""
    index = np.flatnonzero(scores >= min_score)
    if len(index) > limit:
        index = index[np.argpartition(-scores[index], limit)[:limit]]
    return index


def resize(image: np.ndarray, width: int, height: int, shrink: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize with ``shrink`` interpolation (area averaging unless a model's upstream says otherwise) when shrinking
    and bilinear when enlarging."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=shrink if shrinking else cv2.INTER_LINEAR)


def letterbox_chw(image: np.ndarray, width: int, height: int, fill: float, left: int = 0, top: int = 0) -> np.ndarray:
    """A new float32 (1, 3, height, width) filled with ``fill``, ``image`` (H, W, 3) pasted at (left, top)."""
    tensor = np.empty((1, 3, height, width), np.float32)
    h, w = image.shape[:2]
    # Only the border around the pasted image is filled (the whole canvas when the image does not reach it).
    tensor[0, :, :top] = fill
    tensor[0, :, top + h :] = fill
    tensor[0, :, top : top + h, :left] = fill
    tensor[0, :, top : top + h, left + w :] = fill
    paste_planes(tensor[0, :, top : top + h, left : left + w], image)
    return tensor


def paste_planes(
    out: np.ndarray, image: np.ndarray, offset: np.ndarray | None = None, scale: np.ndarray | None = None
) -> None:
    """Write ``image`` (H, W, 3) uint8 channel by channel into ``out`` (3, H, W) float32 as ``(x - offset) * scale``
    per channel (plain conversion where they are None), evaluated in float32 as ``(x.astype(float32) - offset) *
    scale`` would be. Splitting into contiguous planes first is ~2x cheaper than a strided HWC -> CHW copy."""
    for channel, plane in enumerate(cv2.split(image)):
        target = out[channel]
        if offset is None:
            np.copyto(target, plane, casting="unsafe")
        else:
            np.subtract(plane, offset[channel], out=target, dtype=np.float32)
        if scale is not None:
            np.multiply(target, scale[channel], out=target)


class Detector:
    """One ONNX model with its exact pre/post-processing. Images are BGR uint8 (H, W, 3).

    ``prepare`` turns an image into the network input and the transform needed to map boxes back; ``decode`` turns
    the raw outputs of one image into :class:`Detections` in image pixels. ``infer`` runs the network on a prepared
    tensor, so throughput on pre-resized tensors can be measured apart from decoding.
    """

    family = ""
    nms_iou = 0.45

    def __init__(self, entry: ModelEntry, session: ort.InferenceSession, min_score: float = 0.01, top_k: int = 50):
        self.entry = entry
        self.session = session
        self.min_score = min_score
        self.top_k = top_k
        self.input_name = session.get_inputs()[0].name
        self.output_names = [output.name for output in session.get_outputs()]

    @classmethod
    def load(cls, name: str, threads: int = 1, device: str = "auto", **kwargs: Any) -> Detector:
        entry = get_entry(name)
        if entry.family != cls.family:
            raise ValueError(f"model {name} is a {entry.family} model, not {cls.family}")
        return cls(entry, make_session(model_path(name), threads=threads, device=device), **kwargs)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def task(self) -> str:
        return self.entry.task

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def decode(self, outputs: list[np.ndarray], transform: Any) -> Detections:
        raise NotImplementedError

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: tensor})

    def __call__(self, image: np.ndarray) -> Detections:
        tensor, transform = self.prepare(image)
        return self.decode(self.infer(tensor), transform)
