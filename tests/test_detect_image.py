import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from human_filter_helpers import encode, noise_image
from passkit.detect.image import ImageBombError, ImageDecodeError, decode_for_detection


def test_jpeg_is_decoded_reduced_with_original_size_kept():
    data = encode(noise_image("RGB", (4000, 3000)), "JPEG", quality=60)
    decoded = decode_for_detection(data, 640)
    assert max(decoded.pixels.shape[:2]) == 640
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert decoded.scale == pytest.approx(4000 / 640)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape[2] == 3


@pytest.mark.parametrize("size", [(2048, 1400), (1400, 2048), (2048, 2048), (2048, 1433)])
def test_a_landscape_or_portrait_jpeg_is_reduced_by_the_decoder_itself(size, monkeypatch):
    # Each size is exactly twice the target, so a 1/2-scale draft decode needs no resize afterwards.
    data = encode(noise_image("RGB", size), "JPEG", quality=60)

    def no_resize(*args, **kwargs):
        raise AssertionError("resized after decoding: the JPEG draft did not reduce")

    monkeypatch.setattr(Image.Image, "resize", no_resize)
    decoded = decode_for_detection(data, 1024)
    assert decoded.pixels.shape[:2] == (-(-size[1] // 2), size[0] // 2)
    assert (decoded.width, decoded.height) == size


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    decoded = decode_for_detection(encode(image, "JPEG", exif=exif), 640)
    assert decoded.pixels.shape[:2] == (200, 100)
    assert (decoded.width, decoded.height) == (100, 200)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1"])
def test_any_mode_becomes_bgr(mode):
    image = noise_image("RGB", (50, 40)).convert(mode)
    decoded = decode_for_detection(encode(image, "PNG" if mode not in ("CMYK",) else "JPEG"), 640)
    assert decoded.pixels.shape == (40, 50, 3)


def test_alpha_is_composited_on_grey():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    decoded = decode_for_detection(encode(image, "PNG"), 640)
    assert tuple(decoded.pixels[0, 0]) == (114, 114, 114)


def test_corrupt_and_empty_bytes():
    with pytest.raises(ImageDecodeError):
        decode_for_detection(b"", 640)
    with pytest.raises(ImageDecodeError):
        decode_for_detection(encode(noise_image("RGB", (64, 64)), "JPEG")[:200], 640)


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_its_own_error():
    with pytest.raises(ImageBombError):
        decode_for_detection(png_claiming(30000, 30000), 640)


def smooth_photo(size: tuple[int, int]) -> Image.Image:
    """A photo-like image: gradients and soft blobs (noise would make any two reductions disagree)."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float64)
    red = 127 + 100 * np.sin(x / 37.0) * np.cos(y / 53.0)
    green = 255 * x / size[0]
    blue = 127 + 120 * np.exp(-(((x - size[0] / 3) / 90) ** 2 + ((y - size[1] / 2) / 60) ** 2))
    return Image.fromarray(np.dstack([red, green, blue]).clip(0, 255).astype(np.uint8), "RGB")


def pillow_reference(data: bytes, max_side: int) -> np.ndarray:
    """Full-size Pillow decode, upright, then an antialiased resize: what the scaled decode must agree with."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    ratio = max_side / max(image.size)
    image = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.Resampling.BILINEAR)
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def test_a_1024_px_jpeg_is_decoded_at_5_8_scale_without_a_resize(monkeypatch):
    data = encode(smooth_photo((1024, 683)), "JPEG", quality=90)
    reference = pillow_reference(data, 640)

    def no_resize(*args, **kwargs):
        raise AssertionError("resized after decoding: the scaled IDCT did not reach the target")

    monkeypatch.setattr(Image.Image, "resize", no_resize)
    decoded = decode_for_detection(data, 640)
    assert decoded.pixels.shape == (427, 640, 3)
    assert (decoded.width, decoded.height) == (1024, 683)
    difference = np.abs(decoded.pixels.astype(np.int16) - reference.astype(np.int16))
    assert difference.mean() < 1.5 and np.percentile(difference, 99) < 8


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_a_reduced_decode_is_turned_upright_like_pillow(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(smooth_photo((1600, 900)), "JPEG", quality=90, exif=exif)
    reference = pillow_reference(data, 640)
    decoded = decode_for_detection(data, 640)
    assert decoded.pixels.shape == reference.shape
    assert (decoded.width, decoded.height) == (reference.shape[1] * 1600 // 640, reference.shape[0] * 1600 // 640)
    assert np.abs(decoded.pixels.astype(np.int16) - reference.astype(np.int16)).mean() < 2.0


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_greyscale_and_cmyk_jpegs_are_reduced_too(mode):
    data = encode(smooth_photo((2000, 1200)).convert(mode), "JPEG", quality=90)
    decoded = decode_for_detection(data, 640)
    assert decoded.pixels.shape == (384, 640, 3)
    assert np.abs(decoded.pixels.astype(np.int16) - pillow_reference(data, 640).astype(np.int16)).mean() < 2.0


def test_a_truncated_large_jpeg_is_corrupt_as_before():
    data = encode(noise_image("RGB", (2000, 1500)), "JPEG", quality=80)
    with pytest.raises(ImageDecodeError):
        decode_for_detection(data[: len(data) // 2], 640)
