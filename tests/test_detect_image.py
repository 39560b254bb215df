import struct
import zlib

import numpy as np
import pytest
from PIL import Image

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
