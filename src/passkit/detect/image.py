"""Decoding images for detection: reduced-size JPEG decoding (draft mode), any mode to BGR uint8.

The stored image is never touched; detection sees a copy whose long side is at most ``max_side`` pixels. A JPEG is
decoded by libjpeg-turbo (simplejpeg) straight to BGR, a large one reduced by its scaled IDCT at the smallest of the
M/8 scales that covers the target (1024 -> 640 px is 5/8, no resize afterwards): the same pixels Pillow's decoder
gives, without its RGBX buffer, the array copy and the colour swap. Pillow (with draft mode: 1/2, 1/4, 1/8 only) is
the fallback for what simplejpeg does not take (CMYK, recoverable stream errors), so corrupt files get Pillow's
verdict.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from passkit.stages.image import ORIENTATION_TAG, ORIENTATION_TRANSPOSE

BACKGROUND = (114, 114, 114)  # grey behind transparent pixels: neither a white nor a black cue


class ImageDecodeError(ValueError):
    """Bytes that are not a decodable image (``image:corrupt``)."""


class ImageBombError(ValueError):
    """An image whose pixel count is beyond Pillow's decompression-bomb limit (``image:bomb``)."""


@dataclass
class DecodedImage:
    pixels: np.ndarray  # BGR uint8 (H, W, 3), long side <= max_side
    width: int  # original size, after EXIF orientation
    height: int
    source: bytes | None = field(default=None, repr=False)  # the encoded bytes, for a sharper decode of a region

    @property
    def scale(self) -> float:
        """Factor from decoded pixels to original pixels."""
        return self.width / self.pixels.shape[1]


def decode_for_detection(data: bytes, max_side: int) -> DecodedImage:
    """Decode ``data`` to BGR with the long side at most ``max_side`` (reduced JPEG decoding where possible)."""
    try:
        with warnings.catch_warnings():
            # Large photos (> 89 MP) only warn; beyond Pillow's hard limit (2x that) it is a bomb.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            swapped = orientation in (5, 6, 7, 8)
            width, height = (image.height, image.width) if swapped else image.size
            pixels = None
            if image.format == "JPEG":
                # Both decoders keep both sides >= the requested box: ask for the aspect-true box of the target size,
                # rounded down so an odd side still halves (a square box would stop a landscape photo's reduction).
                ratio = min(1.0, max_side / max(image.size))
                box = (max(1, math.floor(image.width * ratio)), max(1, math.floor(image.height * ratio)))
                pixels = _turbo_jpeg(data, image.mode, box)
                if pixels is None and ratio < 1.0:
                    image.draft("RGB" if image.mode != "L" else "L", box)
            if pixels is None:
                image.load()
    except Image.DecompressionBombError as error:
        raise ImageBombError(str(error)) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDecodeError(f"cannot decode image: {error}") from error
    if pixels is not None:
        pixels = _orient_and_fit(pixels, orientation, max_side)
    else:
        pixels = _pillow_pixels(image, orientation, max_side)
    return DecodedImage(pixels, width, height, data)


def _turbo_jpeg(data: bytes, mode: str, box: tuple[int, int]) -> np.ndarray | None:
    """BGR pixels of a YCbCr or greyscale JPEG at the smallest libjpeg-turbo scale whose size covers ``box`` (the full
    size when ``box`` is the image's own).

    None when simplejpeg cannot take the file (CMYK, a recoverable stream error in strict mode): Pillow then decodes
    it, so a damaged file gets the same verdict as before.
    """
    if mode not in ("RGB", "L"):
        return None
    try:
        return simplejpeg.decode_jpeg(data, "BGR", min_width=box[0], min_height=box[1], strict=True)
    except ValueError:
        return None


def _orient_and_fit(pixels: np.ndarray, orientation: int, max_side: int) -> np.ndarray:
    """EXIF orientation, then Pillow's bilinear reduction to ``max_side`` where the decoder's scale was not exact.
    Both act on each channel alike, so BGR pixels go through Pillow's RGB mode unchanged in channel order."""
    if orientation not in ORIENTATION_TRANSPOSE and max(pixels.shape[:2]) <= max_side:
        return pixels
    image = Image.fromarray(pixels)
    if orientation in ORIENTATION_TRANSPOSE:
        image = image.transpose(ORIENTATION_TRANSPOSE[orientation])
    if max(image.size) > max_side:
        image = image.resize(_fitted(image.size, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(image, dtype=np.uint8)  # writable, like every other decode


def _pillow_pixels(image: Image.Image, orientation: int, max_side: int) -> np.ndarray:
    if image.width < 1 or image.height < 1:
        raise ImageDecodeError("image has no pixels")
    if orientation in ORIENTATION_TRANSPOSE:
        image = image.transpose(ORIENTATION_TRANSPOSE[orientation])
    image = _to_rgb(image)
    if max(image.size) > max_side:
        image = image.resize(_fitted(image.size, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR)


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    ratio = max_side / max(size)
    return max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) or 1.0
        return Image.fromarray((array * (255.0 / top)).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")
