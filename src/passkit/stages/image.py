"""Decoding an image sample once: safe open, bomb guard, full decode, RGB normalisation, EXIF orientation.

Stages of one filter chain share the decoded pixels through :class:`ImageSample` (a :class:`Sample` that carries a
:class:`DecodedImage`): validate decodes, privacy re-encodes from the same pixels, dedup hashes them. A stage that
receives a plain :class:`Sample` decodes it itself with :func:`decoded`, so every stage still works alone.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from passkit.core.reasons import IMAGE_BOMB, IMAGE_CORRUPT
from passkit.core.sample import Sample

IMAGE_UNSUPPORTED = "image:unsupported"  # a real format this build cannot decode (SVG, HEIC, PDF...)

# What Pillow raises on damaged data, besides its own UnidentifiedImageError.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError, TypeError)
EXIF_ERRORS = (OSError, SyntaxError, ValueError, struct.error, KeyError, TypeError, IndexError, UnicodeDecodeError)

ORIENTATION_TAG = 0x0112
ORIENTATION_TRANSPOSE = {  # EXIF orientation -> the transpose that shows the photo upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a JPEG followed by more pictures (stereo, previews); the first is the photo
ANALYSIS_SIDE = 128  # long side of the grey thumbnail used for statistics and perceptual hashing
_SVG = re.compile(rb"<svg[\s>]|<!doctype svg", re.IGNORECASE)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


class DecodeError(Exception):
    """An image that cannot be used; ``reason`` is the manifest reason code, ``detail`` a short explanation."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeLimits:
    max_pixels: int = 64_000_000
    # JPEGs are DCT-scaled at decode time to no less than this long side (None: full resolution): the size the
    # stored image will have (privacy's resize).
    decode_max_side: int | None = None
    # JPEGs that will be stored by a lossless strip need pixels only for analysis: DCT-scaled to no less than this
    # long side (None: full resolution). The entropy-coded data is still decoded in full, so damage is still found.
    analysis_side: int | None = None


def sniff_unsupported(data: bytes) -> str | None:
    """Name formats Pillow cannot open but that are real images (so they get image:unsupported, not corrupt)."""
    head = data[:1024]
    if _SVG.search(head) or (head.lstrip().startswith(b"<?xml") and b"svg" in head.lower()):
        return "svg"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return head[8:12].decode("ascii")
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return None  # TIFF: Pillow opens it
    return None


def _scale_to_uint8(array: np.ndarray, full_scale: float) -> Image.Image:
    scaled = np.clip(np.rint(array.astype(np.float64) * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def _is_srgb(icc: bytes) -> bool | None:
    """True for an sRGB profile, False for another valid one, None for one littlecms cannot read."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    return "srgb" in description.lower().replace(" ", "")


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    target = ImageCms.createProfile("sRGB")
    mode = image.mode if image.mode in ("RGB", "CMYK", "L") else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    converted = ImageCms.profileToProfile(image, source, target, outputMode="RGB")
    assert converted is not None  # inPlace=False always returns the image
    return converted


def _normalise(image: Image.Image, icc: bytes | None, srgb: bool | None) -> tuple[Image.Image, str]:
    """Any mode -> 8-bit RGB (alpha composited on white, 16-bit scaled, palettes expanded, colour-managed)."""
    mode = image.mode
    notes = []
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        image = _scale_to_uint8(np.asarray(image), 65535.0)
    elif mode == "F":
        array = np.asarray(image)
        image = _scale_to_uint8(array, 1.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 255.0)
    elif (mode == "P" and "transparency" in image.info) or mode in ("PA", "LA", "La", "RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
        notes.append("alpha")
    if icc is not None and image.mode in ("RGB", "CMYK"):
        if srgb is False:
            try:
                image = _to_srgb(image, icc)
                notes.append("icc-converted")
            except ImageCms.PyCMSError:
                notes.append("icc-unusable")
        elif srgb is None:
            notes.append("icc-unusable")
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError as error:
            raise DecodeError(IMAGE_UNSUPPORTED, f"mode {mode} cannot be converted to RGB") from error
    return image, ",".join(notes)


def read_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except EXIF_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


@dataclass(eq=False)
class DecodedImage:
    """The normalised pixels of one image plus what was learnt while decoding it."""

    rgb: Image.Image  # 8-bit RGB, orientation applied (DCT-scaled when the limits asked for it)
    source_format: str
    source_mode: str
    source_width: int
    source_height: int
    orientation: int
    frames: int
    icc: bytes | None
    notes: str  # alpha, icc-converted, icc-unusable...
    lossless_jpeg: bool  # a JPEG whose pixels need no change: privacy can strip it without re-encoding
    info: dict[str, object] = field(repr=False)  # Pillow's info of the source (exif, xmp, icc_profile...)

    @property
    def full_resolution(self) -> bool:
        return self.rgb.size in ((self.source_width, self.source_height), (self.source_height, self.source_width))

    @cached_property
    def grey(self) -> Image.Image:
        """A small greyscale box-filtered thumbnail (long side <= 2 * ANALYSIS_SIDE, at least halved so dithered
        1-bit pictures become grey levels): statistics and perceptual hashes."""
        width, height = self.rgb.size
        factor = max(2 if min(width, height) >= 32 else 1, max(width, height) // ANALYSIS_SIDE)
        return (self.rgb.reduce(factor) if factor > 1 else self.rgb).convert("L")

    @cached_property
    def pixel_sha256(self) -> str:
        """sha256 of the decoded RGB pixels (with their size): re-encodes that keep the pixels collide."""
        width, height = self.rgb.size
        digest = hashlib.sha256(f"{width}x{height}:RGB:".encode())
        digest.update(self.rgb.tobytes())
        return digest.hexdigest()


@dataclass
class ImageSample(Sample):
    """A sample that carries its decoded image between the stages of one chain (never written to a shard)."""

    image: DecodedImage | None = field(default=None, repr=False, compare=False)

    def plain(self) -> Sample:
        return Sample(self.key, dict(self.parts))


def open_image(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Open (header only) with the bomb guard: an explicit pixel limit, and Pillow's warning made an error."""
    if not data:
        raise DecodeError(IMAGE_CORRUPT, "empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise DecodeError(IMAGE_BOMB, str(error)) from error
        except UnidentifiedImageError as error:
            kind = sniff_unsupported(data)
            if kind is not None:
                raise DecodeError(IMAGE_UNSUPPORTED, kind) from error
            raise DecodeError(IMAGE_CORRUPT, "not a recognised image") from error
        except DECODE_ERRORS as error:
            raise DecodeError(IMAGE_CORRUPT, f"header: {error}") from error
    width, height = image.size
    if width * height > limits.max_pixels:
        raise DecodeError(IMAGE_BOMB, f"{width}x{height} = {width * height} pixels > limit {limits.max_pixels}")
    if width <= 0 or height <= 0:
        raise DecodeError(IMAGE_CORRUPT, f"declared size {width}x{height}")
    return image


def _draft(image: Image.Image, long_side: int | None) -> None:
    width, height = image.size
    if long_side and max(width, height) >= 2 * long_side:
        ratio = long_side / max(width, height)
        image.draft(image.mode, (max(1, math.ceil(width * ratio)), max(1, math.ceil(height * ratio))))


def decode(data: bytes, limits: DecodeLimits, opened: Image.Image | None = None) -> DecodedImage:
    """Decode the first frame (all of its data), normalise it to RGB and apply the EXIF orientation. ``opened``:
    the result of :func:`open_image` on the same data, when the caller already has it."""
    image = opened if opened is not None else open_image(data, limits)
    source_format = image.format or ""
    source_mode = image.mode
    width, height = image.size
    raw_icc = image.info.get("icc_profile") or None
    icc = raw_icc if isinstance(raw_icc, bytes) else None
    srgb = _is_srgb(icc) if icc is not None else None
    lossless_jpeg = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            frames = int(getattr(image, "n_frames", 1))
            if frames > 1 and source_format != "MPO":
                image.seek(0)
            if source_format in JPEG_FORMATS:
                orientation = read_orientation(image)  # the EXIF segment is read with the header
                fits = limits.decode_max_side is None or max(width, height) <= limits.decode_max_side
                plain = source_mode in ("RGB", "L") and orientation == 1 and (icc is None or srgb is True)
                lossless_jpeg = plain and fits
                _draft(image, limits.analysis_side if lossless_jpeg else limits.decode_max_side)
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise DecodeError(IMAGE_BOMB, str(error)) from error
        except DECODE_ERRORS as error:
            raise DecodeError(IMAGE_CORRUPT, f"decode: {error}") from error
    if source_format not in JPEG_FORMATS:
        orientation = read_orientation(image)  # PNG may hold its eXIf chunk after the pixels
    info = dict(image.info)
    rgb, notes = _normalise(image, icc, srgb)
    if orientation in ORIENTATION_TRANSPOSE:
        rgb = rgb.transpose(ORIENTATION_TRANSPOSE[orientation])
    return DecodedImage(
        rgb=rgb,
        source_format=source_format,
        source_mode=source_mode,
        source_width=width,
        source_height=height,
        orientation=orientation,
        frames=frames,
        icc=icc,
        notes=notes,
        lossless_jpeg=lossless_jpeg,
        info=info,
    )


def image_part(sample: Sample) -> tuple[str, bytes]:
    ext = sample.image_ext()
    if ext is None:
        raise DecodeError(IMAGE_CORRUPT, "sample has no image part")
    return ext, sample.parts[ext]


def decoded(sample: Sample, limits: DecodeLimits | None = None, min_side: int | None = None) -> DecodedImage:
    """The sample's decoded image: the one a previous stage attached, else a fresh decode. ``min_side``: a stage
    that needs more pixels than the attached (DCT-scaled) image has gets a decode with at least this long side."""
    if isinstance(sample, ImageSample) and sample.image is not None:
        image = sample.image
        if min_side is None or image.full_resolution or max(image.rgb.size) >= min_side:
            return image
    limits = limits or DecodeLimits()
    if min_side is not None:
        limits = DecodeLimits(limits.max_pixels, None, min_side)
    return decode(image_part(sample)[1], limits)


def with_image(sample: Sample, image: DecodedImage, parts: dict[str, bytes] | None = None) -> ImageSample:
    return ImageSample(sample.key, dict(parts if parts is not None else sample.parts), image)
