"""The fast pre/post-processing paths give exactly what the plain implementations give: the same decoded pixels, the
same network input tensors bit for bit, the same boxes after NMS. Any difference would shift every score the
combiners were calibrated on, so these compare against straightforward reference code on real photos."""

import io
import math

import cv2
import numpy as np
import pytest
import simplejpeg
from PIL import Image

from human_filter_helpers import encode, noise_image
from passkit.detect.base import candidates, nms, resize
from passkit.detect.ensemble import load_detector
from passkit.detect.image import decode_for_detection
from passkit.detect.views import crops
from passkit.stages.image import ORIENTATION_TAG, ORIENTATION_TRANSPOSE

MODELS = ["yolox_nano", "nanodet_m", "fastestdet", "yunet", "yunet_640", "ultraface_rfb320"]
NANODET_MEAN = np.array([103.53, 116.28, 123.675], np.float32)
NANODET_STD = np.array([57.375, 57.12, 58.395], np.float32)


def reference_decode(data: bytes, max_side: int) -> np.ndarray:
    """Pillow decoding (reduced by libjpeg-turbo's scaled IDCT where large), RGB, resized, then swapped to BGR."""
    image = Image.open(io.BytesIO(data))
    orientation = image.getexif().get(ORIENTATION_TAG, 1)
    if image.format == "JPEG" and max(image.size) > max_side:
        ratio = max_side / max(image.size)
        box = (max(1, math.floor(image.width * ratio)), max(1, math.floor(image.height * ratio)))
        image = Image.fromarray(simplejpeg.decode_jpeg(data, "RGB", min_width=box[0], min_height=box[1]))
    image.load()
    if orientation in ORIENTATION_TRANSPOSE:
        image = image.transpose(ORIENTATION_TRANSPOSE[orientation])
    image = image.convert("RGB")
    if max(image.size) > max_side:
        ratio = max_side / max(image.size)
        size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def variants(image: Image.Image) -> list[bytes]:
    """The JPEGs a crawl meets: baseline and progressive, Flickr sizes, rotated by EXIF, greyscale."""
    image = image.convert("RGB")
    out = []
    for side, quality in ((1024, 90), (2048, 88), (1500, 80)):
        ratio = side / max(image.size)
        sized = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.Resampling.LANCZOS)
        out.append(encode(sized, "JPEG", quality=quality))
    out.append(encode(image, "JPEG", quality=75, progressive=True))
    out.append(encode(image.convert("L"), "JPEG", quality=85))
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = orientation
        out.append(encode(image, "JPEG", quality=85, exif=exif))
    return out


@pytest.fixture(scope="module")
def real_jpegs():
    from conftest import PEOPLE_DEV

    files = sorted((PEOPLE_DEV / "images").glob("*.jpg"))[::97][:5]
    if not files:
        pytest.skip(f"people-dev photos not found at {PEOPLE_DEV}")
    photos = []
    for path in files:
        photos.append(path.read_bytes())
        with Image.open(path) as image:
            photos.extend(variants(image))
    return photos


@pytest.mark.parametrize("max_side", [640, 1024, 2048])
def test_decoding_gives_the_pixels_of_the_reference_decoder(max_side, real_jpegs):
    for data in real_jpegs:
        expected = reference_decode(data, max_side)
        decoded = decode_for_detection(data, max_side)
        assert decoded.pixels.shape == expected.shape
        assert np.array_equal(decoded.pixels, expected)
        assert decoded.pixels.flags.c_contiguous and decoded.pixels.flags.writeable


def test_decoding_synthetic_jpegs_matches_the_reference_decoder():
    for size in ((4000, 3000), (999, 1333), (640, 480), (17, 9)):
        data = encode(noise_image("RGB", size, seed=size[0]), "JPEG", quality=70)
        for max_side in (640, 1024):
            assert np.array_equal(decode_for_detection(data, max_side).pixels, reference_decode(data, max_side))


def reference_prepare(family: str, image: np.ndarray, detector) -> np.ndarray:
    """Each family's network input written the plain way: float32 conversion of the whole HWC image, then layout."""
    width, height = detector.entry.input_size
    if family in ("yolox", "nanodet"):
        ratio = min(width / image.shape[1], height / image.shape[0])
        new_w, new_h = max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio))
        if family == "yolox":
            region = resize(image, new_w, new_h, shrink=cv2.INTER_LINEAR).astype(np.float32)
            tensor = np.full((1, 3, height, width), 114.0, np.float32)
            tensor[0, :, :new_h, :new_w] = region.transpose(2, 0, 1)
            return tensor
        region = resize(image, new_w, new_h).astype(np.float32)
        left, top = (width - new_w) // 2, (height - new_h) // 2
        tensor = np.zeros((1, 3, height, width), np.float32)
        for channel in range(3):
            normalised = (region[:, :, channel] - NANODET_MEAN[channel]) * (1.0 / NANODET_STD[channel])
            tensor[0, channel, top : top + new_h, left : left + new_w] = normalised
        return tensor
    if family == "fastestdet":
        tensor = resize(image, width, height).astype(np.float32).transpose(2, 0, 1)[None].copy()
        tensor *= np.float32(1.0 / 255.0)
        return tensor
    if family == "ultraface":
        tensor = resize(image, width, height)[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None].copy()
        tensor -= np.float32(127.0)
        tensor *= np.float32(1.0 / 128.0)
        return tensor
    assert family == "yunet"
    ratio = min(1.0, detector.max_side / max(image.shape[:2]))
    new_w, new_h = max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio))
    if detector.fixed:
        width, height = detector.fixed
    else:
        width, height = -(-new_w // 32) * 32, -(-new_h // 32) * 32
    tensor = np.zeros((1, 3, height, width), np.float32)
    tensor[0, :, :new_h, :new_w] = resize(image, new_w, new_h).astype(np.float32).transpose(2, 0, 1)
    return tensor


def views_of(pixels: np.ndarray) -> list[np.ndarray]:
    """The whole image, its 2x2 and 3x3 tiles (strided views, as the ensemble passes them) and small windows."""
    height, width = pixels.shape[:2]
    out = [pixels]
    for view in ("tiles2", "tiles3"):
        out += [pixels[y : y + h, x : x + w] for x, y, w, h in crops(width, height, view)]
    out += [pixels[10:202, 30:222], pixels[: min(height, 97), : min(width, 301)]]
    return out


@pytest.mark.parametrize("name", MODELS)
def test_network_inputs_are_bit_identical_to_the_reference_layout(name, real_jpegs, shared_models):
    detector = load_detector(name)
    for data in real_jpegs[:: len(real_jpegs) // 8]:
        for view in views_of(decode_for_detection(data, 1024).pixels):
            tensor, _ = detector.prepare(view)
            expected = reference_prepare(detector.entry.family, view, detector)
            assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
            assert tensor.shape == expected.shape
            assert np.array_equal(tensor, expected), (name, view.shape)


def reference_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, min_score: float, top_k: int):
    """Textbook greedy NMS: best first, drop every box overlapping a kept one by more than ``iou``."""
    mask = scores >= min_score
    boxes, scores = boxes[mask].astype(np.float32), scores[mask].astype(np.float32)
    order = list(np.argsort(-scores, kind="stable"))
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order and len(keep) < top_k:
        best = order.pop(0)
        keep.append(best)
        survivors = []
        for other in order:
            w = np.clip(min(boxes[best, 2], boxes[other, 2]) - max(boxes[best, 0], boxes[other, 0]), 0, None)
            h = np.clip(min(boxes[best, 3], boxes[other, 3]) - max(boxes[best, 1], boxes[other, 1]), 0, None)
            inter = np.float32(w * h)
            if inter / max(area[best] + area[other] - inter, np.float32(1e-9)) <= iou:
                survivors.append(other)
        order = survivors
    return boxes[keep], scores[keep]


def test_nms_keeps_what_textbook_greedy_nms_keeps():
    rng = np.random.default_rng(7)
    for trial in range(150):
        count = int(rng.integers(0, 120))
        corner = rng.uniform(0, 300, (count, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(-5, 90, (count, 2))], axis=1)
        if trial % 3 == 0:
            boxes = np.round(boxes / 16) * 16  # duplicates and exact score/overlap ties
        scores = rng.uniform(0, 1, count).astype(np.float32)
        if trial % 4 == 0:
            scores = np.round(scores, 1)
        iou, min_score, top_k = (0.3, 0.45, 0.6)[trial % 3], (0.0, 0.01, 0.5)[trial % 3], int(rng.integers(1, 40))
        found = nms(boxes, scores, iou, min_score, top_k)
        expected_boxes, expected_scores = reference_nms(boxes, scores, iou, min_score, top_k)
        assert np.array_equal(found.boxes, expected_boxes), trial
        assert np.array_equal(found.scores, expected_scores), trial


def reference_box_decode(detector, outputs: list[np.ndarray], transform) -> tuple[np.ndarray, np.ndarray]:
    """YOLOX's and FastestDet's box decoding written the plain way (every column of every candidate copied), then
    textbook NMS."""
    if detector.entry.family == "yolox":
        rows = outputs[0][0]
        scores = rows[:, 4] * rows[:, 5]
        keep = candidates(scores, detector.min_score)
        rows, scores = rows[keep], scores[keep]
        grid, strides = detector._grid[keep], detector._strides[keep]
        centres = (rows[:, :2] + grid) * strides
        sizes = np.exp(np.minimum(rows[:, 2:4], 10.0)) * strides
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / transform
        return reference_nms(boxes, scores, detector.nms_iou, detector.min_score, detector.top_k)
    assert detector.entry.family == "fastestdet"
    grid = outputs[0][0]
    rows, cols = grid.shape[1:]
    scores = (np.clip(grid[0], 0, 1) ** 0.6 * np.clip(grid[5], 0, 1) ** 0.4).ravel()
    keep = candidates(scores, detector.min_score)
    ys, xs = np.divmod(keep, cols)
    flat = grid.reshape(85, -1)[:, keep]
    cx, cy = (xs + np.tanh(flat[1])) / cols, (ys + np.tanh(flat[2])) / rows
    w, h = 1.0 / (1.0 + np.exp(-flat[3])), 1.0 / (1.0 + np.exp(-flat[4]))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes *= np.array([transform[0], transform[1], transform[0], transform[1]], np.float32)
    return reference_nms(boxes, scores[keep], detector.nms_iou, detector.min_score, detector.top_k)


@pytest.mark.parametrize("name", ["yolox_nano", "fastestdet"])
def test_box_decoding_matches_the_plain_decoding(name, real_jpegs, shared_models):
    """On real photos (whole image and tiles), the decoder's boxes and scores equal the plain decoding's bit for bit;
    top_k 5 (as the ensemble runs) and 40 (several NMS blocks)."""
    compared = 0
    for top_k in (5, 40):
        detector = load_detector(name, top_k=top_k)
        for data in real_jpegs[:: len(real_jpegs) // 6]:
            for view in views_of(decode_for_detection(data, 1024).pixels)[:5]:
                tensor, transform = detector.prepare(view)
                outputs = detector.infer(tensor)
                found = detector.decode(outputs, transform)
                expected_boxes, expected_scores = reference_box_decode(detector, outputs, transform)
                assert np.array_equal(found.boxes, expected_boxes), (name, top_k, view.shape)
                assert np.array_equal(found.scores, expected_scores), (name, top_k, view.shape)
                compared += len(found)
    assert compared > 50  # real photos give boxes to compare
