"""Images for the filter tests, generated here: a photo-like picture, EXIF with GPS, and a corpus of bad files."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import exifread
import numpy as np
from PIL import Image

from passkit.core.reasons import IMAGE_BOMB, IMAGE_CORRUPT, IMAGE_SINGLE_COLOUR, IMAGE_TOO_SMALL
from passkit.stages.image import IMAGE_UNSUPPORTED

SERIAL = "SN-PRIVATE-1234567"
MAKE = "PrivacyCam"


def photo(seed: int = 0, size: tuple[int, int] = (160, 120), mode: str = "RGB") -> Image.Image:
    """A textured picture (smooth gradients + noise) that passes the single-colour check; different per seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        fx, fy, phase = [*rng.uniform(0.01, 0.08, 2).tolist(), rng.uniform(0, 6.28)]
        channels.append(127 + 90 * np.sin(fx * x + fy * y + phase) + rng.normal(0, 12, (height, width)))
    array = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    return Image.fromarray(array, "RGB").convert(mode)


def exif_bytes(orientation: int | None = None, gps: bool = True) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = MAKE
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 0.0)})
    exif.get_ifd(0x8769).update({0xA431: SERIAL})
    return exif.tobytes()


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_declared_size(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (the data is tiny): the decompression-bomb shape."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def animated(fmt: str, seed: int = 0) -> bytes:
    frames = [Image.new("RGB", (96, 96), colour) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    for index, frame in enumerate(frames):  # texture so the first frame is not single-colour
        frame.paste(photo(seed + index, (96, 48)), (0, 48))
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def orientation_marker(size: tuple[int, int] = (120, 80)) -> Image.Image:
    """Textured image with a saturated red block in the top-left corner (to check EXIF rotation)."""
    image = photo(7, size)
    image.paste((255, 0, 0), (0, 0, size[0] // 4, size[1] // 4))
    return image


@dataclass(frozen=True)
class BadFile:
    name: str
    ext: str
    data: bytes
    reason: str  # expected reason; "" means kept


def bad_corpus() -> list[BadFile]:
    good_jpeg = encode(photo(1), "JPEG", quality=90)
    rgba = photo(2).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    palette = photo(3).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    grey16 = Image.fromarray(np.linspace(0, 65535, 160 * 120).reshape(120, 160).astype(np.uint16))
    dot = Image.new("RGB", (200, 200), (255, 255, 255))
    dot.paste((0, 0, 0), (100, 100, 102, 102))
    mpo_like = encode(photo(4), "JPEG", quality=90) + encode(photo(5), "JPEG", exif=exif_bytes())
    bad_crc = bytearray(encode(photo(6), "PNG"))
    bad_crc[40] ^= 0xFF
    mpo = io.BytesIO()
    photo(20).save(mpo, "MPO", save_all=True, append_images=[photo(21)], exif=exif_bytes())
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    tiff_gps = encode(photo(8), "TIFF", exif=exif_bytes())
    return [
        BadFile("truncated-jpeg", "jpg", good_jpeg[: len(good_jpeg) // 2], IMAGE_CORRUPT),
        BadFile("zero-bytes", "jpg", b"", IMAGE_CORRUPT),
        BadFile("random-bytes", "jpg", np.random.default_rng(0).bytes(5000), IMAGE_CORRUPT),
        BadFile("jpeg-header-only", "jpg", good_jpeg[:200], IMAGE_CORRUPT),
        BadFile("png-bad-crc", "png", bytes(bad_crc), IMAGE_CORRUPT),
        BadFile("gif-truncated", "gif", animated("GIF")[:300], IMAGE_CORRUPT),
        BadFile("png-huge-declared", "png", png_with_declared_size(100_000, 100_000), IMAGE_BOMB),
        BadFile("png-over-limit", "png", png_with_declared_size(9_000, 9_000), IMAGE_BOMB),
        BadFile("svg", "jpg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', IMAGE_UNSUPPORTED),
        BadFile("heic", "jpg", heic, IMAGE_UNSUPPORTED),
        BadFile("one-pixel", "png", encode(Image.new("RGB", (1, 1), "red"), "PNG"), IMAGE_TOO_SMALL),
        BadFile("sliver-30000x10", "png", encode(photo(9, (30000, 10)), "PNG"), IMAGE_TOO_SMALL),
        BadFile(
            "single-colour", "jpg", encode(Image.new("RGB", (200, 150), (90, 120, 200)), "JPEG"), IMAGE_SINGLE_COLOUR
        ),
        BadFile("near-empty", "png", encode(dot, "PNG"), IMAGE_SINGLE_COLOUR),
        BadFile("cmyk-jpeg", "jpg", encode(photo(10, mode="CMYK"), "JPEG", quality=90), ""),
        BadFile("png-16-bit", "png", encode(grey16, "PNG"), ""),
        BadFile("gif-palette-transparency", "gif", encode(palette, "GIF", transparency=0), ""),
        BadFile("gif-animated", "gif", animated("GIF"), ""),
        BadFile("webp-animated", "webp", animated("WEBP", seed=50), ""),
        BadFile("png-rgba", "png", encode(rgba, "PNG"), ""),
        BadFile("exif-rotation-6", "jpg", encode(orientation_marker(), "JPEG", exif=exif_bytes(6)), ""),
        BadFile("exif-rotation-8", "jpg", encode(orientation_marker(), "JPEG", exif=exif_bytes(8)), ""),
        BadFile("jpeg-gps", "jpg", encode(photo(11), "JPEG", quality=90, exif=exif_bytes()), ""),
        BadFile("png-exif-gps", "png", encode(photo(12), "PNG", exif=exif_bytes()), ""),
        BadFile("webp-exif-gps", "webp", encode(photo(13), "WEBP", exif=exif_bytes()), ""),
        BadFile("tiff-exif-gps", "tif", tiff_gps, ""),
        BadFile("jpeg-trailing-mpo", "jpg", mpo_like, ""),
        BadFile("mpo-two-pictures-gps", "jpg", mpo.getvalue(), ""),
        BadFile("avif", "jpg", encode(photo(14), "AVIF"), ""),
        BadFile("bmp-1-bit", "bmp", encode(photo(15).convert("1"), "BMP"), ""),
    ]


def exif_tags(data: bytes) -> dict[str, object]:
    """EXIF tags as an independent parser (exifread) reads them from stored bytes."""
    return dict(exifread.process_file(io.BytesIO(data), details=False))


def assert_no_private_metadata(data: bytes) -> None:
    tags = exif_tags(data)
    assert not [tag for tag in tags if tag.startswith("GPS") or "Serial" in tag or "Make" in tag], tags
    assert SERIAL.encode() not in data and MAKE.encode() not in data
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    assert not exif.get_ifd(0x8825) and len(exif) == 0
    assert "exif" not in image.info and "icc_profile" not in image.info and "xmp" not in image.info
