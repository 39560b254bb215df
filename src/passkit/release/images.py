"""What an image must pass to enter a release, and the bytes it is stored with.

The filter's privacy stage already stores metadata-free images (a lossless JPEG/PNG strip or a deterministic
re-encode) and records it in the manifest (``privacy``, with the sha256 of the stored bytes), so the release
neither re-encodes nor re-strips those: it checks their sha256 and stores them as they are. Any other image (input
from an older filter, or shards assembled by hand) goes through the same lossless strip, which removes EXIF/GPS,
XMP, ICC, comments and trailing data without touching the coded pixels.

One exception, on by default (``ReleaseConfig.image_format = "jpg"``): the few images the filter stored as PNG (from
lossless sources: PNG, GIF, BMP, TIFF) are encoded as JPEG (quality 95, 4:2:0, deterministic), because readers that
infer a schema from the first samples (Hugging Face ``datasets``' webdataset loader) need one image extension across
the release. ``image_format = "keep"`` stores them as they are.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from passkit.core.reasons import IMAGE_CORRUPT
from passkit.stages.image import IMAGE_UNSUPPORTED
from passkit.stages.privacy import strip_jpeg, strip_png

JPEG_QUALITY = 95
IMAGE_FORMATS = ("jpg", "keep")
STRIPPERS = {"jpg": strip_jpeg, "jpeg": strip_jpeg, "png": strip_png}


@dataclass(frozen=True)
class StoredImage:
    ext: str
    data: bytes
    sha256: str
    width: int
    height: int
    stripped: bool  # metadata was found and removed here
    converted: bool  # PNG encoded as JPEG for a uniform release format


class ImageRejectedError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def header_size(ext: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) from the JPEG frame header or the PNG IHDR chunk, without Pillow; None if not found."""
    if ext == "png":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return None
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in SOF_MARKERS and position + 9 <= len(data):
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            return (width, height) if width and height else None
        if marker == 0xDA or length < 2:
            return None
        position += 2 + length
    return None


def to_jpeg(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        pixels = image.convert("L" if image.mode in ("L", "1", "I;16", "I") else "RGB")
    buffer = io.BytesIO()
    pixels.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=2)
    return buffer.getvalue()


def release_image(
    ext: str, data: bytes, image_format: str = "jpg", sha256: str = "", scrubbed: bool = False
) -> StoredImage:
    """Strip metadata losslessly unless ``scrubbed`` (the filter did), PNG -> JPEG with ``image_format="jpg"``, and
    read the size from the header; ``ImageRejectedError`` for anything else. ``sha256``: of ``data``, if known."""
    strip = STRIPPERS.get(ext)
    if strip is None:
        raise ImageRejectedError(IMAGE_UNSUPPORTED, f"format {ext!r} cannot be scrubbed losslessly (jpg, png only)")
    stored = data if scrubbed else strip(data)
    if stored is None:
        raise ImageRejectedError(IMAGE_CORRUPT, f"{ext} structure cannot be parsed")
    size = header_size(ext, stored)
    try:
        if size is not None:
            width, height = size
        else:
            width, height = _pillow_size(stored)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as error:
        raise ImageRejectedError(IMAGE_CORRUPT, f"header unreadable ({error})") from error
    out_ext = "jpg" if ext == "jpeg" else ext
    converted = False
    if out_ext == "png" and image_format == "jpg":
        stored, out_ext, converted = to_jpeg(stored), "jpg", True
    unchanged = stored is data or stored == data
    digest = sha256 if unchanged and sha256 else hashlib.sha256(stored).hexdigest()
    return StoredImage(out_ext, stored, digest, width, height, not unchanged and not converted, converted)


def _pillow_size(data: bytes) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            return image.size
