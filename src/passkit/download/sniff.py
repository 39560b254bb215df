"""Image type from magic bytes, and whether a declared Content-Type may hold an image.

Servers lie: an HTML error page is often served as ``photo.jpg`` and sometimes even as ``image/jpeg``. The
stored extension therefore comes from the first bytes of the body, never from the URL or the header.
"""

from __future__ import annotations

_BMP_DIB_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
_GENERIC_BINARY = {"application/octet-stream", "binary/octet-stream", "application/binary", "application/unknown"}


def image_extension(data: bytes) -> str | None:
    """``jpg``, ``png``, ``gif``, ``webp``, ``bmp`` or ``tif`` from the leading bytes; ``None`` if not an image."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tif"
    if len(data) >= 18 and data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_DIB_HEADER_SIZES:
        return "bmp"
    return None


def media_type(content_type: str | None) -> str:
    """``"Image/JPEG; charset=x"`` -> ``"image/jpeg"``; missing -> ``""``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def may_be_image(content_type: str | None) -> bool:
    """False when the server declares a type that cannot be an image (``text/html``, ``application/json``...);
    ``image/*``, generic binary types and a missing header are left to the magic-byte check."""
    declared = media_type(content_type)
    return not declared or declared.startswith("image/") or declared in _GENERIC_BINARY
