"""The datasheet's sample grid: a deterministic choice of released images, as small embedded JPEG thumbnails."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from passkit.core.tar import read_shard

THUMB_SIDE = 160
THUMB_QUALITY = 75


def grid_keys(keys: Iterable[str], count: int) -> list[str]:
    """``count`` keys ranked by sha256 of the key: the same release always shows the same images."""
    return sorted(keys, key=lambda key: hashlib.sha256(f"passkit-sample-grid:{key}".encode()).digest())[:count]


def thumbnail(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
        small = image.convert("RGB")
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMB_QUALITY)
    return buffer.getvalue()


def thumbnails(folder: Path, shard_of: dict[str, str]) -> dict[str, str]:
    """``key -> data: URI`` for the given keys, read from the release shards (``shard_of``: key -> shard path)."""
    wanted: dict[str, set[str]] = {}
    for key, shard in shard_of.items():
        wanted.setdefault(shard, set()).add(key)
    uris: dict[str, str] = {}
    for shard, keys in sorted(wanted.items()):
        for sample in read_shard(folder / shard):
            if sample.key in keys:
                ext = sample.image_ext()
                if ext is not None:
                    encoded = base64.b64encode(thumbnail(sample.parts[ext])).decode("ascii")
                    uris[sample.key] = f"data:image/jpeg;base64,{encoded}"
    return uris
