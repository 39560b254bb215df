"""A sample: one key and its parts (``jpg`` bytes, ``json`` attribution...), as stored in a shard."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from passkit.core.keys import validate_key

EXTENSION_PATTERN = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")


def encode_part(value: bytes | str | dict[str, Any] | list[Any]) -> bytes:
    """bytes verbatim; str as UTF-8; dict/list as canonical JSON (sorted keys, compact, UTF-8)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raise TypeError(f"cannot store a part of type {type(value).__name__}")


@dataclass
class Sample:
    key: str
    parts: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def build(cls, key: str, **parts: bytes | str | dict[str, Any] | list[Any]) -> Sample:
        """``Sample.build("yfcc-1", jpg=data, json={...})`` with key and extensions validated."""
        validate_key(key)
        encoded = {}
        for ext, value in parts.items():
            if EXTENSION_PATTERN.match(ext) is None:
                raise ValueError(f"sample {key}: extension {ext!r} must match {EXTENSION_PATTERN.pattern}")
            encoded[ext] = encode_part(value)
        return cls(key, encoded)

    def json(self, ext: str = "json") -> Any:
        return json.loads(self.parts[ext].decode("utf-8"))

    def image_ext(self) -> str | None:
        """The extension of the image part, if any."""
        return next((ext for ext in IMAGE_EXTENSIONS if ext in self.parts), None)
