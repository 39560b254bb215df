"""The build driver's state does not grow with the candidates: streamed download planning, compact global pass."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from download_helpers import candidates_table
from passkit.core.manifest import KEPT
from passkit.core.reasons import CAP_CREATOR
from passkit.core.shards import ShardPaths
from passkit.download import DownloadConfig
from passkit.download.candidates import CandidateRange, fingerprint, read_range, scan_candidates
from passkit.download.runner import DownloadError, load_plan, plan_tasks, scan
from passkit.run.filter import FilterConfig, global_decisions
from passkit.run.memory import POOL_ENV
from passkit.stages.cap import CapConfig, cap_decisions
from passkit.stages.dedup import DedupConfig, dedup_decisions


def reference_fingerprint(keys: list[str], urls: list[str | None]) -> str:
    """What the plan file of every earlier download holds: sha256 over ``f"{key}\\t{url}\\n"``."""
    digest = hashlib.sha256()
    for key, url in zip(keys, urls, strict=True):
        digest.update(f"{key}\t{url}\n".encode())
    return digest.hexdigest()


def write_pool(path: Path, rows: int, row_group_size: int = 1000) -> Path:
    table = candidates_table({f"img-{i:07d}": f"http://127.0.0.1:9/photos/é/{i}.jpg" for i in range(rows)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_streamed_fingerprint_keeps_the_plan_file_semantics(tmp_path: Path) -> None:
    path = write_pool(tmp_path / "c.parquet", 40_000, row_group_size=7_001)  # batches straddle row groups
    table = pq.read_table(path)
    expected = reference_fingerprint(table["key"].to_pylist(), table["url"].to_pylist())
    result = scan_candidates(path)
    assert result.rows == 40_000 and result.fingerprint == expected == fingerprint(table)
    changed = table.set_column(3, "url", pa.array(["http://other/0.jpg", *table["url"].to_pylist()[1:]]))
    assert fingerprint(changed) != expected
    with_null = pa.table({"key": ["a", "b"], "url": ["u", None]})
    assert fingerprint(with_null) == reference_fingerprint(["a", "b"], ["u", None])
    assert fingerprint(table.slice(0, 0)) == hashlib.sha256().hexdigest()


def test_scan_finds_repeated_and_invalid_keys_far_apart(tmp_path: Path) -> None:
    table = candidates_table({f"img-{i:06d}": f"http://h/{i}.jpg" for i in range(30_000)})
    keys = table["key"].to_pylist()
    keys[29_999] = keys[3]  # the repeat sits in another row group and another scan batch
    pq.write_table(table.set_column(0, "key", pa.array(keys)), tmp_path / "dup.parquet", row_group_size=4096)
    with pytest.raises(DownloadError, match=r"1 keys appear more than once, e.g. \['img-000003'\]"):
        scan(tmp_path / "dup.parquet")
    keys[29_999] = "../escape"
    pq.write_table(table.set_column(0, "key", pa.array(keys)), tmp_path / "bad.parquet", row_group_size=4096)
    with pytest.raises(DownloadError, match="1 invalid keys"):
        scan(tmp_path / "bad.parquet")
    pq.write_table(table.drop_columns(["creator"]), tmp_path / "cols.parquet")
    with pytest.raises(DownloadError, match="missing candidate columns"):
        scan(tmp_path / "cols.parquet")


def test_row_ranges_read_exactly_their_rows_across_row_groups(tmp_path: Path) -> None:
    path = write_pool(tmp_path / "c.parquet", 5_000, row_group_size=37)
    table = pq.read_table(path)
    for start, count in [(0, 1), (0, 100), (36, 2), (1_000, 999), (4_990, 10), (0, 5_000)]:
        assert read_range(path, start, count).equals(table.slice(start, count).combine_chunks())
    candidates = scan(path)
    (tmp_path / "out").mkdir()
    plan = load_plan(tmp_path / "out", candidates, 300)
    tasks = plan_tasks(tmp_path / "out", candidates, plan, DownloadConfig(), tmp_path)
    assert all(isinstance(task.rows, CandidateRange) for task in tasks)
    rows = pa.concat_tables(task.candidate_rows() for task in tasks)
    assert rows.equals(table) and len(tasks) == 17 and tasks[-1].rows.count == 200


MEASURE = """
import json, sys, tracemalloc
import pyarrow as pa
from passkit.download.candidates import scan_candidates
tracemalloc.start()
scan = scan_candidates(sys.argv[1])
held = tracemalloc.get_traced_memory()[1] + pa.default_memory_pool().max_memory()
print(json.dumps({"rows": scan.rows, "peak": held}))
"""


def test_scan_memory_does_not_follow_the_file(tmp_path: Path) -> None:
    """Peak of Python/numpy (tracemalloc) plus Arrow's pool while scanning: the old planner held every key and url
    as Python strings (>150 bytes a row); the scan holds one 64-bit hash a row (+ its sort) and bounded batches."""
    peak = {}
    for rows in (20_000, 320_000):
        path = write_pool(tmp_path / f"c{rows}.parquet", rows, row_group_size=50_000)
        output = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True
        ).stdout
        measured = json.loads(output)
        assert measured["rows"] == rows
        peak[rows] = measured["peak"]
    assert peak[320_000] - peak[20_000] < 300_000 * 48, peak


def _staged(root: Path, shards: list[pa.Table]) -> list[ShardPaths]:
    root.mkdir()
    paths = []
    for index, table in enumerate(shards):
        pq.write_table(table, root / f"{index:05d}.parquet")
        paths.append(ShardPaths(root, index))
    return paths


def test_global_pass_over_arrays_decides_like_the_in_memory_functions(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = 3_000
    base = rng.integers(0, 2**63, rows // 4, dtype=np.int64).astype(np.uint64)
    flips = (np.uint64(1) << rng.integers(0, 64, rows).astype(np.uint64)) * (rng.random(rows) < 0.5)
    hashes = base[rng.integers(0, len(base), rows)] ^ flips
    keys = [f"k-{rng.integers(0, 10**6):06d}-{i}" for i in range(rows)]
    table = pa.table(
        {
            "key": keys,
            "status": [KEPT if i % 17 else "rejected" for i in range(rows)],
            "reason": ["" if i % 17 else "image:corrupt" for i in range(rows)],
            "exact_sha256": [f"{v:064x}" for v in rng.integers(1, rows, rows)],
            "phash": [f"{int(v):016x}" if i % 29 else None for i, v in enumerate(hashes)],
            "creator": [f"c{i % 40}" if i % 13 else "" for i in range(rows)],
            "pixels": rng.integers(1, 5, rows),
        }
    )
    shards = [table.slice(start, 500) for start in range(0, rows, 500)]
    cfg = FilterConfig(humans=None, dedup=DedupConfig(exact_key="pixels"), cap=CapConfig(max_per_creator=10))
    decisions = global_decisions(_staged(tmp_path / "staged", shards), cfg, None)
    found = {}
    for position in range(len(shards)):
        found |= decisions.for_shard(position)

    kept = table.filter(pa.compute.equal(table["status"], KEPT))
    measured = kept.filter(pa.compute.is_valid(kept["phash"]))
    expected = {key: ("dedup", d.reason, d.dup_of) for key, d in dedup_decisions(measured, cfg.dedup).items()}
    survivors = [row for row in kept.to_pylist() if row["key"] not in expected]
    capped = cap_decisions([row["key"] for row in survivors], [row["creator"] for row in survivors], cfg.cap)
    expected |= {key: ("cap", CAP_CREATOR, "") for key in capped}
    assert {"dedup:exact", "dedup:near", CAP_CREATOR} <= {reason for _, reason, _ in expected.values()}
    assert {key: (d.stage, d.reason, d.dup_of) for key, d in found.items()} == expected
    assert len(decisions) == len(expected)


@pytest.mark.parametrize("prefix_collision", [False, True])
def test_exact_dedup_sorts_by_prefix_and_splits_prefix_collisions(prefix_collision: bool) -> None:
    lead = "0" * 16 if prefix_collision else ""
    shas = [
        lead + f"{i % 3:x}".rjust(64 - len(lead), "a")
        if prefix_collision
        else hashlib.sha256(b"%d" % (i % 3)).hexdigest()
        for i in range(9)
    ]
    table = pa.table(
        {"key": [f"k{i}" for i in range(9)], "exact_sha256": shas, "phash": [f"{i:016x}" for i in range(9)]}
    )
    decisions = dedup_decisions(table, DedupConfig(near=False))
    assert {key: d.dup_of for key, d in decisions.items()} == {
        "k3": "k0", "k6": "k0", "k4": "k1", "k7": "k1", "k5": "k2", "k8": "k2",
    }  # fmt: skip


POOL = """
from passkit.run.memory import use_returning_memory_pool
asked = use_returning_memory_pool()
import pyarrow as pa
print(asked, pa.default_memory_pool().backend_name)
"""


def test_build_driver_uses_a_returning_arrow_pool() -> None:
    env = {key: value for key, value in os.environ.items() if key != POOL_ENV}
    asked, used = subprocess.run(
        [sys.executable, "-c", POOL], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert used == asked and used in ("jemalloc", "system")
    mine = subprocess.run(
        [sys.executable, "-c", POOL], capture_output=True, text=True, check=True, env={**env, POOL_ENV: "system"}
    ).stdout.split()
    assert mine == ["system", "system"], "a user's ARROW_DEFAULT_MEMORY_POOL wins"


def test_superseded_keys_agree_with_the_latest_row_rule(tmp_path: Path) -> None:
    from passkit.core.manifest import write_manifest
    from passkit.core.shards import list_shards, superseded_keys

    rng = np.random.default_rng(7)
    latest: dict[str, int] = {}
    placed: list[tuple[str, int]] = []
    for index in range(12):  # retry rounds: later shards repeat some earlier keys
        fresh = [f"k{index:02d}-{i:04d}" for i in range(300)]
        again = [key for key, _ in placed if rng.random() < 0.02] if placed else []
        keys = sorted(set(fresh + again))
        write_manifest(ShardPaths(tmp_path, index).manifest, [{"key": k, "status": KEPT, "reason": ""} for k in keys])
        placed += [(key, index) for key in keys]
        latest.update({key: index for key in keys})
    expected: dict[int, set[str]] = {}
    for key, index in placed:
        if latest[key] != index:
            expected.setdefault(index, set()).add(key)
    shards = list_shards(tmp_path)
    assert expected and superseded_keys(shards) == {index: frozenset(keys) for index, keys in expected.items()}
    first_round = [shard for shard in shards if shard.index == 0]
    assert superseded_keys(first_round) == {}


def test_near_index_memory_follows_the_rows() -> None:
    """Bucket tables of at most 8 entries per indexed hash (the 2**22-entry table came at ~100k rows), and
    candidate pairs checked in bounded blocks however full the buckets are."""
    from passkit.stages import dedup

    for rows in (1_000, 10_000, 100_000, 1_000_000, 17_000_000):
        widths = dedup._layout(8, rows, rows)
        assert sum(widths) == 64 and 2 ** max(widths) <= max(2**16, 8 * rows), (rows, widths)
    counts = np.full(50, 10_000, np.int64)  # 50 probes of a 10,000-item bucket: 500,000 pairs
    starts = np.zeros(50, np.int64)
    blocks = list(dedup.HammingIndex._expand(starts, counts, np.arange(10_000, dtype=np.int32)))
    assert sum(len(query) for query, _ in blocks) == 500_000
    assert max(len(query) for query, _ in blocks) <= dedup._PAIR_BLOCK
