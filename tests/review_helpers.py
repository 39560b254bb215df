"""A filtered folder for the review tests: shards of kept images with detector columns, plus rejected rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from passkit.core.manifest import write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import ShardWriter


def picture(seed: int, size: tuple[int, int] = (120, 90)) -> bytes:
    """A distinct textured JPEG per seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [
        127 + 100 * np.sin(rng.uniform(0.02, 0.12) * x + rng.uniform(0.02, 0.12) * y + rng.uniform(0, 6.28))
        for _ in range(3)
    ]
    array = np.clip(np.stack(channels, axis=-1) + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def score_of(i: int) -> float:
    return round(((i * 7919) % 1000) / 1000 * 0.004, 5)


def make_review_dir(
    root: Path,
    kept: int = 30,
    rejected: int = 5,
    shards: int = 2,
    size: tuple[int, int] = (120, 90),
    pii: bool = False,
) -> dict[str, float]:
    """Write ``shards`` filtered shards under ``root``; returns {kept key: humans_score}."""
    root.mkdir(parents=True, exist_ok=True)
    scores: dict[str, float] = {}
    width, height = size
    for shard in range(shards):
        paths = ShardPaths(root, shard)
        rows = []
        with ShardWriter(paths.tar) as writer:
            for i in range(shard, kept, shards):
                key = f"img-{i:05d}"
                writer.write(Sample.build(key, jpg=picture(i, size), json={"creator": f"c{i % 7}", "title": key}))
                boxes = []
                if i % 3 == 0:  # a person box in the left half, as the human filter records it
                    boxes.append(
                        {"by": "yolox_nano@full", "task": "person", "score": 0.04, "box": [2.0, 5.0, width / 2, 60.0]}
                    )
                row = {
                    "key": key,
                    "status": "kept",
                    "reason": "",
                    "width": width,
                    "height": height,
                    "source_width": width,
                    "source_height": height,
                    "orientation": 1,
                    "humans_score": score_of(i),
                    "humans_boxes": json.dumps(boxes),
                }
                if pii:
                    row["pii_score"] = 0.9 if i == 1 else 0.0
                    row["pii_boxes"] = json.dumps(
                        [{"task": "text", "score": 0.9, "box": [10, 10, 50, 30]}] if i == 1 else []
                    )
                rows.append(row)
                scores[key] = row["humans_score"]
        for j in range(shard, rejected, shards):
            rows.append({"key": f"rej-{j:05d}", "status": "rejected", "reason": "humans:person", "humans_score": 0.9})
        write_manifest(paths.manifest, rows)
    return scores
