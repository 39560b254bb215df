"""The datasheet's sample grid: a deterministic choice of released images, as small embedded JPEG thumbnails."""

from __future__ import annotations

import base64
import hashlib
import heapq
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from PIL import Image

from passkit.core.tar import read_shard

THUMB_SIDE = 160
THUMB_QUALITY = 75


def grid_keys(keys: Iterable[str], count: int) -> list[str]:
    """``count`` keys ranked by sha256 of the key: the same release always shows the same images. Streams ``keys``
    (memory for ``count`` keys only); the same list as ``sorted(keys, key=rank)[:count]``."""
    return heapq.nsmallest(count, keys, key=lambda key: hashlib.sha256(f"passkit-sample-grid:{key}".encode()).digest())


def thumbnail(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
        small = image.convert("RGB")
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMB_QUALITY)
    return buffer.getvalue()


def _data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(thumbnail(data)).decode("ascii")


def thumbnails(folder: Path, shard_of: dict[str, str], known: Mapping[str, bytes] | None = None) -> dict[str, str]:
    """``key -> data: URI`` for the given keys (``shard_of``: key -> shard path): from ``known`` image bytes where
    given, else read from the release shards."""
    known = known or {}
    uris = {key: _data_uri(known[key]) for key in shard_of if key in known}
    wanted: dict[str, set[str]] = {}
    for key, shard in shard_of.items():
        if key not in uris:
            wanted.setdefault(shard, set()).add(key)
    for shard, keys in sorted(wanted.items()):
        for sample in read_shard(folder / shard):
            ext = sample.image_ext()
            if sample.key in keys and ext is not None:
                uris[sample.key] = _data_uri(sample.parts[ext])
    return uris
