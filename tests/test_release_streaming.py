"""The release is written shard by shard: its metadata equals one eager write of the whole table, whatever the
order of the input shards, the number of writer passes or the row-group size."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from passkit.core.manifest import read_manifest, write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import read_shard, write_shard
from passkit.release import ReleaseConfig, ReleaseError, build_release, summary
from passkit.release.metadata import schema
from passkit.release.thumbnails import grid_keys


def _jpeg(index: int) -> bytes:
    pixels = np.random.default_rng(index).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((40 + index % 5, 30 + index % 3)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def make_interleaved(root: Path, count: int = 300, shards: int = 3) -> Path:
    """Input shards whose keys interleave (shard ``s`` holds every ``shards``-th key): every release shard takes
    images from every input shard, so release shards complete out of order."""
    for shard_index in range(shards):
        samples, rows = [], []
        for index in range(shard_index, count, shards):
            key = f"yfcc-{(index * 7919) % 100_003:06d}"
            data = _jpeg(index)
            meta = {"key": key, "source": "yfcc" if index % 5 else "", "photo_id": key[5:],
                    "creator": f"creator {index % 23}", "title": f"photo {index}" if index % 4 else "",
                    "license": "CC-BY-2.0" if index % 3 else "CC-BY-4.0", "url": f"https://x.example/{key}.jpg",
                    "license_url": "https://creativecommons.org/licenses/by/2.0/" if index % 3
                    else "https://creativecommons.org/licenses/by/4.0/",
                    "page_url": f"https://www.flickr.com/photos/u/{key[5:]}/",
                    "latitude": index / 7, "longitude": 2.0}  # fmt: skip
            if index % 29 == 3:
                rows.append({"key": key, "status": "rejected", "reason": "dedup:exact", "sha256": "", "privacy": ""})
                continue
            samples.append(Sample.build(key, jpg=data, json=meta))
            sha256 = hashlib.sha256(data).hexdigest()
            rows.append({"key": key, "status": "kept", "reason": "", "sha256": sha256, "privacy": "stripped"})
        shard = ShardPaths(root, shard_index)
        write_shard(shard.tar, samples)
        write_manifest(shard.manifest, rows)
    return root


@pytest.fixture(scope="module")
def interleaved(tmp_path_factory) -> Path:
    return make_interleaved(tmp_path_factory.mktemp("interleaved"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _eager_csv(table: pa.Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(["" if value is None else value for value in row.values()])
    return buffer.getvalue()


def _eager_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue().to_pybytes()


def test_metadata_equals_one_eager_write_of_the_sorted_table(interleaved, tmp_path):
    cfg = ReleaseConfig(shard_size=37, include_gps=True, sample_grid=9)
    build_release(interleaved, tmp_path / "v1", cfg)
    release = tmp_path / "v1"
    # the reference: every released sample's json, sorted by key, facts from the shard bytes
    rows = []
    for tar in sorted((release / "shards").glob("*.tar")):
        for sample in read_shard(tar):
            data = sample.parts["jpg"]
            width, height = Image.open(io.BytesIO(data)).size
            rows.append({**sample.json(), "shard": f"shards/{tar.name}", "format": "jpg", "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest(), "width": width, "height": height})  # fmt: skip
    expected = pa.Table.from_pylist(sorted(rows, key=lambda row: row["key"]), schema=schema(True))
    assert expected.num_rows == 300 - len(range(3, 300, 29))  # the dedup rejects are not released
    assert (release / "metadata.parquet").read_bytes() == _eager_parquet(expected)
    assert (release / "metadata.csv").read_text(encoding="utf-8") == _eager_csv(expected)
    for shard in sorted(set(expected.column("shard").to_pylist())):
        manifest = read_manifest(release / shard.replace(".tar", ".parquet"))
        mine = expected.filter(pc.equal(expected.column("shard"), shard))
        assert manifest.column("key").to_pylist() == mine.column("key").to_pylist()
        assert manifest.column("sha256").to_pylist() == mine.column("sha256").to_pylist()
    datasheet = (release / "datasheet.html").read_text(encoding="utf-8")
    assert all(f'alt="{key}"' in datasheet for key in grid_keys(expected.column("key").to_pylist(), 9))


def test_same_release_whatever_the_passes_and_row_groups(interleaved, tmp_path, monkeypatch):
    from passkit.release import builder

    cfg = ReleaseConfig(shard_size=23, layout_folder=True)
    build_release(interleaved, tmp_path / "one-pass", cfg)
    monkeypatch.setattr(builder, "MAX_OPEN_WRITERS", 3)
    build_release(interleaved, tmp_path / "passes", cfg)
    assert _files(tmp_path / "passes") == _files(tmp_path / "one-pass")
    monkeypatch.setattr(summary, "ROW_GROUP", 10)
    build_release(interleaved, tmp_path / "groups", cfg)
    small, big = _files(tmp_path / "groups"), _files(tmp_path / "one-pass")
    changed = {name for name in big if small[name] != big[name]}
    assert changed == {"metadata.parquet", "croissant.json", "SHA256SUMS"}  # the last two hold its sha256
    grouped = pq.ParquetFile(tmp_path / "groups" / "metadata.parquet")
    sizes = [grouped.metadata.row_group(i).num_rows for i in range(grouped.num_row_groups)]
    assert set(sizes[:-1]) == {10} and 0 < sizes[-1] <= 10
    assert grouped.read().equals(pq.read_table(tmp_path / "one-pass" / "metadata.parquet"))


def test_a_key_kept_twice_is_refused_but_a_retried_reject_is_fine(tmp_path):
    root = make_interleaved(tmp_path / "in", count=30)
    rows = read_manifest(ShardPaths(root, 1).manifest).to_pylist()
    kept = next(row for row in read_manifest(ShardPaths(root, 0).manifest).to_pylist() if row["status"] == "kept")
    write_manifest(ShardPaths(root, 1).manifest, [*rows, {**kept, "status": "rejected", "reason": "humans:person"}])
    with pytest.raises(ReleaseError, match=rf"key '{kept['key']}' is kept in two shards \(00000, 00001\)"):
        build_release(root, tmp_path / "out")
    rejected = next(row for row in read_manifest(ShardPaths(root, 0).manifest).to_pylist() if row["status"] != "kept")
    write_manifest(ShardPaths(root, 1).manifest, [*rows, {**rejected, "status": "rejected", "reason": "cap:creator"}])
    report = build_release(root, tmp_path / "out")
    assert report.candidates == 31 and report.images == 30 - len(range(3, 30, 29))
