"""A small filtered folder for the release tests, made by the real `passkit filter` (human filter off: the
detectors are tested elsewhere), plus review decisions and an audit result in the contract formats of issue 8."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from filter_helpers import encode, exif_bytes, photo
from passkit.core.manifest import KEPT, write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import write_shard
from passkit.review.store import UNDO, DecisionStore
from passkit.run.filter import FilterConfig, run_filter
from passkit.stages.cap import CapConfig

LICENSES = ("CC-BY-2.0", "CC-BY-2.0", "CC-BY-4.0")
SHARE_ALIKE_INDEX = 6  # this one photo is CC-BY-SA: the release's cc-by policy leaves it out
CREATORS = ("Ann Lee", "Bo Chen", "Cara Diaz", "Dev Patel", "Eli Moss")


def attribution(index: int, **overrides) -> dict:
    record = {
        "key": f"yfcc-{1000 + index}",
        "source": "yfcc",
        "photo_id": str(1000 + index),
        "url": f"https://farm.example.org/{1000 + index}.jpg",
        "page_url": f"https://www.flickr.com/photos/user{index % 5}/{1000 + index}/",
        "license": "CC-BY-SA-2.0" if index == SHARE_ALIKE_INDEX else LICENSES[index % len(LICENSES)],
        "license_url": "",
        "creator": CREATORS[index % len(CREATORS)],
        "title": f"Lake view nº {index}" if index % 3 else "",
        "date_taken": "2012-07-14 10:00:00",
        "latitude": 48.85 + index / 100,
        "longitude": 2.35,
    }
    record.update(overrides)
    record["license_url"] = record["license_url"] or {
        "CC-BY-2.0": "https://creativecommons.org/licenses/by/2.0/",
        "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
        "CC-BY-SA-2.0": "https://creativecommons.org/licenses/by-sa/2.0/",
    }.get(record["license"], "")
    return record


def image_bytes(index: int) -> tuple[str, bytes]:
    size = (96 + 8 * (index % 7), 80 + 4 * (index % 5))
    if index % 9 == 4:
        return "png", encode(photo(index, size), "PNG")
    if index % 4 == 1:  # GPS and a camera serial in EXIF: the filter strips them
        return "jpg", encode(photo(index, size), "JPEG", quality=88, exif=exif_bytes())
    return "jpg", encode(photo(index, size), "JPEG", quality=88)


def make_download_dir(root: Path, count: int = 40, shards: int = 2) -> Path:
    """``count`` photos over ``shards`` download shards, plus a corrupt file, an exact duplicate and two rows the
    download rejected."""
    per_shard = -(-count // shards)
    for shard_index in range(shards):
        samples, rows = [], []
        for index in range(shard_index * per_shard, min(count, (shard_index + 1) * per_shard)):
            ext, data = image_bytes(index)
            meta = attribution(index)
            samples.append(Sample.build(meta["key"], **{ext: data}, json=meta))
            rows.append({"key": meta["key"], "status": KEPT, "reason": "", "http_status": 200})
        if shard_index == 0:
            samples.append(Sample.build("yfcc-9001", jpg=b"\xff\xd8\xff\xe0 broken", json=attribution(9001)))
            rows.append({"key": "yfcc-9001", "status": KEPT, "reason": "", "http_status": 200})
            rows.append({"key": "yfcc-9002", "status": "rejected", "reason": "download:http-404", "http_status": 404})
            rows.append({"key": "yfcc-9003", "status": "failed", "reason": "download:timeout", "http_status": 0})
        if shard_index == shards - 1:
            ext, data = image_bytes(0)
            samples.append(Sample.build("yfcc-9004", **{ext: data}, json=attribution(9004)))
            rows.append({"key": "yfcc-9004", "status": KEPT, "reason": "", "http_status": 200})
        shard = ShardPaths(root, shard_index)
        write_shard(shard.tar, samples)
        write_manifest(shard.manifest, rows)
    return root


def make_filtered_dir(root: Path, count: int = 40, shards: int = 2) -> Path:
    """`passkit filter` output (``root/filtered``) with ``root/candidates.rejects.parquet`` beside it."""
    download = make_download_dir(root / "download", count, shards)
    out = root / "filtered"
    summary = run_filter(download, out, FilterConfig(humans=None, cap=CapConfig(max_per_creator=None)))
    assert summary.ok, summary.problems
    reasons = ["license:not-allowed", "license:not-allowed", "attribution:incomplete:creator"]
    rejects = pa.table({"key": ["yfcc-8001", "yfcc-8002", "yfcc-8003"], "reason": reasons})
    pq.write_table(rejects, root / "candidates.rejects.parquet")
    return out


def write_decisions(directory: Path, rows: list[tuple[str, str, str]]) -> Path:
    """Review decisions written by the review app's store; ``rows`` = (key, label, reason) in the order made."""
    with DecisionStore.for_dataset(directory) as store:
        for key, label, reason in rows:
            if label == UNDO:
                store.undo(key, reviewer="ann", queue="borderline")
            else:
                store.record(key, label, reason, reviewer="ann", queue="borderline")
        return store.path


def write_audit(directory: Path) -> Path:
    path = directory / "review" / "audit.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    audit = {
        "method": "clopper-pearson",
        "confidence": 0.95,
        "seed": 0,
        "kept_total": 40,
        "sample_size": 30,
        "reviewed": 30,
        "with_people": 0,
        "rate": 0.0,
        "upper": 0.0950,
        "per_reason": {},
        "statement": "0 of 30 reviewed -> humans <= 9.50% at 95% confidence",
    }
    path.write_text(json.dumps(audit), encoding="utf-8")
    return path
