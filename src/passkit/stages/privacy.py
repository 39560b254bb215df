"""privacy: stored images carry no EXIF, XMP, IPTC, ICC, comments or trailing data; attribution json loses geo.

Re-encode policy (deterministic: same input bytes and config give the same output bytes):

* **lossless strip** when the pixels need no change — a baseline/progressive RGB or greyscale JPEG, or an 8-bit
  RGB/grey PNG without transparency, with orientation 1, no colour profile other than sRGB, and no resize asked:
  the file is rewritten segment by segment (JPEG: SOI, DQT, DHT, DRI, SOF, SOS and entropy-coded data, a canonical
  JFIF APP0 and the Adobe APP14 colour-transform flag; PNG: IHDR, IDAT, IEND and the colour chunks gAMA/cHRM/sRGB/
  sBIT). Every APPn payload (EXIF with GPS and camera serials, XMP, IPTC/Photoshop, ICC, MPF), COM, PNG text/eXIf/
  tIME/iCCP chunks and any data after the end marker are dropped. The decoded pixels are unchanged.
* otherwise a **re-encode** of the validated RGB pixels (EXIF orientation applied, alpha on white, CMYK/16-bit/
  palette converted, non-sRGB profiles converted to sRGB, first frame of animations), optionally resized to
  ``resize_max_side`` (Lanczos): PNG when the source was lossless (PNG, GIF, BMP, TIFF...), else JPEG at
  ``jpeg_quality`` (95) with 4:2:0 chroma subsampling. Pillow writes no metadata unless asked, and we never ask.

The json part loses ``latitude``/``longitude`` (and accuracy) unless ``keep_geo``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zlib
from dataclasses import dataclass

from PIL import Image

from passkit.core.manifest import ManifestBuilder
from passkit.core.sample import Sample
from passkit.core.stage import StageResult
from passkit.stages.image import (
    ANALYSIS_SIDE,
    EXIF_ERRORS,
    JPEG_FORMATS,
    DecodedImage,
    DecodeError,
    DecodeLimits,
    decode,
    decoded,
    image_part,
    with_image,
)

GPS_IFD, EXIF_IFD = 0x8825, 0x8769
SERIAL_TAGS = (0xA431, 0xC62F)  # BodySerialNumber, CameraSerialNumber (DNG)
GEO_FIELDS = ("latitude", "longitude", "lat", "lon", "lng", "accuracy", "geo_accuracy", "geo")
LOSSY_SOURCES = ("JPEG", "MPO", "WEBP", "AVIF", "HEIF", "JPEG2000")
_JFIF = b"JFIF\x00"
_ADOBE = b"Adobe"
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = frozenset({b"IHDR", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"sBIT"})


@dataclass(frozen=True)
class PrivacyConfig:
    resize_max_side: int | None = None  # e.g. 500 like YFCC's mirror; None keeps the original size
    jpeg_quality: int = 95
    png_compress_level: int = 6
    keep_geo: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")
        if self.resize_max_side is not None and self.resize_max_side < 16:
            raise ValueError("resize_max_side must be >= 16 (or None to keep the size)")


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def strip_jpeg(data: bytes) -> bytes | None:
    """The JPEG without metadata segments and trailing data, entropy-coded data untouched; None if unparseable."""
    if not data.startswith(b"\xff\xd8"):
        return None
    out = [b"\xff\xd8"]
    position, size = 2, len(data)
    while position < size:
        if data[position] != 0xFF:
            return None
        while position < size and data[position] == 0xFF:
            position += 1
        if position >= size:
            return None
        marker = data[position]
        position += 1
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            return b"".join(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append(bytes((0xFF, marker)))
            continue
        if position + 2 > size:
            return None
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2 or position + length > size:
            return None
        payload = data[position + 2 : position + length]
        position += length
        if marker == 0xE0 and payload.startswith(_JFIF) and len(payload) >= 14:
            out.append(_segment(marker, payload[:12] + b"\x00\x00"))  # JFIF without its thumbnail
        elif marker == 0xEE and payload.startswith(_ADOBE) and len(payload) >= 12:
            out.append(_segment(marker, payload[:12]))  # colour-transform flag: needed to read the pixels
        elif 0xE0 <= marker <= 0xEF or marker == 0xFE:
            continue  # APPn (EXIF, XMP, ICC, IPTC, MPF...) and comments
        else:
            out.append(_segment(marker, payload))
        if marker == 0xDA:
            found = _NEXT_MARKER.search(data, position)
            if found is None:
                return None
            out.append(data[position : found.start()])
            position = found.start()
    return None


def strip_png(data: bytes) -> bytes | None:
    """The PNG with only the chunks that define its pixels; None if unparseable."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    out = [_PNG_SIGNATURE]
    position, size = len(_PNG_SIGNATURE), len(data)
    while position + 12 <= size:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > size:
            return None
        chunk = data[position:end]
        if zlib.crc32(chunk[4:-4]) != int.from_bytes(chunk[-4:], "big"):
            return None
        if kind in _PNG_KEEP:
            out.append(chunk)
        position = end
        if kind == b"IEND":
            return b"".join(out)
    return None


def _metadata_found(image: DecodedImage) -> list[str]:
    info = image.info
    found = []
    exif = info.get("exif")
    if isinstance(exif, bytes) and exif:
        found.append("exif")
        parsed = Image.Exif()
        try:
            parsed.load(exif)
            if parsed.get_ifd(GPS_IFD):
                found.append("gps")
            if any(tag in parsed.get_ifd(EXIF_IFD) for tag in SERIAL_TAGS):
                found.append("serial")
        except EXIF_ERRORS:
            found.append("exif-unreadable")
    for name, label in (("xmp", "xmp"), ("XML:com.adobe.xmp", "xmp"), ("photoshop", "iptc"), ("icc_profile", "icc")):
        if info.get(name) and label not in found:
            found.append(label)
    if info.get("comment"):
        found.append("comment")
    if info.get("mp") or info.get("mpoffset"):
        found.append("mpf")
    text_keys = [key for key in info if isinstance(info[key], str) and key not in ("compression",)]
    if image.source_format == "PNG" and text_keys:
        found.append("text")
    return found


def _lossless(image: DecodedImage, data: bytes, needs_resize: bool) -> bytes | None:
    if image.source_format in JPEG_FORMATS:
        return strip_jpeg(data) if image.lossless_jpeg and not needs_resize else None
    if needs_resize or image.orientation != 1 or image.frames > 1 or not image.full_resolution or image.notes:
        return None
    if image.source_format == "PNG" and image.source_mode in ("RGB", "L") and "transparency" not in image.info:
        return strip_png(data)
    return None


def _reencode(image: DecodedImage, cfg: PrivacyConfig) -> tuple[str, bytes, tuple[int, int]]:
    rgb = image.rgb
    if cfg.resize_max_side is not None and max(rgb.size) > cfg.resize_max_side:
        ratio = cfg.resize_max_side / max(rgb.size)
        size = (max(1, round(rgb.width * ratio)), max(1, round(rgb.height * ratio)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    if image.source_format in LOSSY_SOURCES:
        rgb.save(buffer, format="JPEG", quality=cfg.jpeg_quality, subsampling="4:2:0", optimize=False)
        return "jpg", buffer.getvalue(), rgb.size
    rgb.save(buffer, format="PNG", compress_level=cfg.png_compress_level, optimize=False)
    return "png", buffer.getvalue(), rgb.size


def scrub_json(data: bytes, keep_geo: bool) -> tuple[bytes, list[str]]:
    """Drop geo fields from an attribution json part (canonical JSON out); returns the new bytes and what went."""
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return data, []
    if keep_geo or not isinstance(record, dict):
        return data, []
    removed = [name for name in GEO_FIELDS if name in record]
    if not removed:
        return data, []
    for name in removed:
        del record[name]
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), removed


def privacy_stage(batch: list[Sample], cfg: PrivacyConfig) -> StageResult[list[Sample]]:
    rows = ManifestBuilder()
    kept: list[Sample] = []
    limits = DecodeLimits(decode_max_side=cfg.resize_max_side, analysis_side=ANALYSIS_SIDE)
    for sample in batch:
        try:
            ext, data = image_part(sample)
            image = decoded(sample, limits)
        except DecodeError as error:
            rows.rejected(sample.key, error.reason)
            continue
        source_side = max(image.source_width, image.source_height)
        needs_resize = cfg.resize_max_side is not None and source_side > cfg.resize_max_side
        stripped = _lossless(image, data, needs_resize)
        if stripped is not None:
            action, out_ext, stored = "stripped", "jpg" if image.source_format in JPEG_FORMATS else "png", stripped
            size = (image.source_width, image.source_height)
        else:
            target = min(source_side, cfg.resize_max_side or source_side)
            if not image.full_resolution and max(image.rgb.size) < target:  # decoded small for analysis only
                try:
                    pixels = decode(data, DecodeLimits(max_pixels=image.source_width * image.source_height,
                                                       decode_max_side=cfg.resize_max_side))  # fmt: skip
                except DecodeError as error:
                    rows.rejected(sample.key, error.reason)
                    continue
            else:
                pixels = image
            out_ext, stored, size = _reencode(pixels, cfg)
            action = "reencoded"
        parts = {name: value for name, value in sample.parts.items() if name != ext}
        parts[out_ext] = stored
        geo_removed: list[str] = []
        if "json" in parts:
            parts["json"], geo_removed = scrub_json(parts["json"], cfg.keep_geo)
        rows.kept(
            sample.key,
            privacy=action,
            metadata_removed=",".join(_metadata_found(image) + [f"json:{name}" for name in geo_removed]),
            format=out_ext,
            width=size[0],
            height=size[1],
            bytes=len(stored),
            sha256=hashlib.sha256(stored).hexdigest(),
        )
        kept.append(with_image(sample, image, parts))
    return StageResult(kept, rows.to_table())
