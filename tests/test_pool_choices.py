"""Duplicates and the per-creator cap in bounded memory (passkit.pool_choices) against the whole-pool functions."""

import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.yfcc_helpers import yfcc_line

from passkit.pool_choices import BUFFER_RECORDS, GROUP_RECORDS, PARTITIONS, Bits, Partitions, PoolChoices
from passkit.selection import rejects_path_for, run_select
from passkit.stages.select import SelectConfig, cap_per_creator, first_occurrences, key_rank


def whole_pool(keys: list[str], creators: np.ndarray, seed: int, max_per_creator: int):
    """The choices on the whole pool at once, with exact key comparison (what select did before)."""
    rank = key_rank(pa.array(keys), seed)
    first = first_occurrences(rank, lambda rows: [keys[row] for row in rows])
    capped = np.zeros(len(keys), dtype=bool)
    capped[first] = ~cap_per_creator(creators[first], rank[first], max_per_creator)
    return ~first, capped, np.bincount(creators[first], minlength=creators.max() + 1)


def creator_hash_pair(creators: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    names = pa.array([f"{code}@N00" for code in creators.tolist()])
    return key_rank(names, 11), key_rank(names, 12)


@pytest.mark.parametrize(("partitions", "buffer_records", "batch"), [(1, 1 << 20, 500), (4, 97, 300), (256, 1000, 77)])
@pytest.mark.parametrize("max_per_creator", [0, 1, 5])
def test_bounded_choices_equal_the_whole_pool_computation(tmp_path, partitions, buffer_records, batch, max_per_creator):
    rng = np.random.default_rng(partitions + max_per_creator)
    count = 6000
    keys = [f"yfcc-{value}" for value in rng.integers(0, 3000, count).tolist()]  # many duplicates
    creators = (rng.random(count) ** 3 * 400).astype(np.int64)  # heavy-tailed: many over a small cap
    seed = 7
    duplicate, capped, per_creator = whole_pool(keys, creators, seed, max_per_creator)
    assert duplicate.sum() > 1000 and (max_per_creator == 0 or capped.sum() > 100)

    choices = PoolChoices(tmp_path, max_per_creator, partitions=partitions, buffer_records=buffer_records)
    creator, creator2 = creator_hash_pair(creators)
    for start in range(0, count, batch):
        rows = slice(start, start + batch)
        part = pa.array(keys[rows])
        choices.add(key_rank(part, seed), key_rank(part, seed ^ 0x55), creator[rows], creator2[rows])
    choices.finish()
    assert not list(tmp_path.iterdir())  # partition files are removed once read
    got_duplicate = np.concatenate([choices.duplicate(s, min(s + 999, count)) for s in range(0, count, 999)])
    got_capped = np.concatenate([choices.capped(s, min(s + 613, count)) for s in range(0, count, 613)])
    assert got_duplicate.tolist() == duplicate.tolist()
    assert got_capped.tolist() == capped.tolist()
    assert choices.duplicates == duplicate.sum() and choices.capped_count == capped.sum()
    if capped.any():
        rows = np.flatnonzero(capped)
        assert choices.creator_counts(creator[rows], creator2[rows]).tolist() == per_creator[creators[rows]].tolist()


def test_same_rank_with_another_key_hash_is_not_a_duplicate(tmp_path):
    # Rows 0 and 2: same rank, same second hash (one key); row 1: same rank, another second hash (a rank collision).
    choices = PoolChoices(tmp_path, 0)
    rank = np.array([5, 5, 5, 9], np.uint64)
    check = np.array([1, 2, 1, 1], np.uint64)
    choices.add(rank, check, np.zeros(4, np.uint64), np.zeros(4, np.uint64))
    choices.finish()
    assert choices.duplicate(0, 4).tolist() == [False, False, True, False]


def test_creator_counts_tell_apart_creators_whose_first_hash_collides(tmp_path):
    choices = PoolChoices(tmp_path, 1)
    creator = np.array([3, 3, 3, 3, 3], np.uint64)  # one first hash, two creators (second hash 1 and 2)
    creator2 = np.array([1, 2, 1, 2, 2], np.uint64)
    choices.add(np.arange(10, 15, dtype=np.uint64), np.zeros(5, np.uint64), creator, creator2)
    choices.finish()
    assert choices.capped(0, 5).tolist() == [False, False, True, True, True]
    assert choices.creator_counts(creator[2:], creator2[2:]).tolist() == [2, 3, 3]
    with pytest.raises(KeyError):
        choices.creator_counts(np.array([4], np.uint64), np.array([1], np.uint64))


def test_partitions_keep_order_and_bits_round_trip(tmp_path):
    parts = Partitions(tmp_path, "p", 2, 0, 8, 5)
    rng = np.random.default_rng(1)
    records = np.stack([rng.integers(0, 5000, 1000, dtype=np.uint64), np.arange(1000, dtype=np.uint64)], axis=1)
    for start in range(0, 1000, 33):  # values not spread over the 64 bits: partitioned by their hash
        parts.add(records[start : start + 33])
    parts.flush()
    got = [parts.take(index) for index in range(8)]
    assert sum(len(part) for part in got) == 1000
    for index, part in enumerate(got):
        assert (part[:, 0] * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(61) == index).all()
        assert (np.diff(part[:, 1].astype(np.int64)) > 0).all() and 60 < len(part) < 190
    groups = list(parts.groups(300))
    assert 3 <= len(groups) <= 5 and all(len(group) <= 300 for group in groups)
    assert sorted(np.concatenate(groups)[:, 1].tolist()) == list(range(1000))
    bits = Bits(1000)
    chosen = rng.choice(1000, 300, replace=False)
    bits.set(chosen)
    expected = np.zeros(1000, bool)
    expected[chosen] = True
    assert all(bits.get(s, e).tolist() == expected[s:e].tolist() for s, e in [(0, 1000), (3, 17), (8, 16), (999, 1000)])
    assert bits.total() == 300


def traced_peak(tmp_path, count: int) -> int:
    """Peak of memory allocated (numpy arrays included) while the choices run over ``count`` records."""
    rng = np.random.default_rng(count)
    choices = PoolChoices(tmp_path / str(count), 80)
    (tmp_path / str(count)).mkdir()
    tracemalloc.start()
    try:
        for _ in range(0, count, 20_000):
            rank = rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64)
            creator = (rng.random(20_000) ** 2 * count / 100).astype(np.uint64)
            choices.add(rank, rank ^ np.uint64(3), creator, creator)
        choices.finish()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_per_admitted_record_stays_within_the_bound(tmp_path):
    # What grows with the pool is 2 bits of outcome per record (and 8 bytes per partition per 64Ki records); the
    # working set (the buffer, a group of partitions being sorted) is the same at both sizes: the growth stays under
    # 1 byte per record, where keeping the hashes of the whole pool cost 16 bytes per record (and ~60 while sorted).
    small, large = 300_000, 1_200_000
    assert PARTITIONS == 256 and BUFFER_RECORDS == 1 << 16 and GROUP_RECORDS == 1 << 17
    small_peak = traced_peak(tmp_path, small)
    growth = traced_peak(tmp_path, large) - small_peak
    assert growth < 1.0 * (large - small), growth
    assert small_peak < 32 * 2**20, small_peak  # the working set: two buffers, then one group being sorted


def test_select_output_is_that_of_the_whole_pool_choices_with_many_duplicates(tmp_path):
    photos = np.random.default_rng(3).integers(0, 400, 1500).tolist()  # ~1100 duplicates of 400 photos
    lines = [
        yfcc_line("single-file", line, photo_id=10_000 + photo, nsid=f"{photo % 12}@N00")  # 12 creators
        for line, photo in enumerate(photos, 1)
    ]
    source = tmp_path / "yfcc100m_dataset"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out" / "candidates.parquet"
    summary = run_select([source], out, SelectConfig(max_per_creator=20, seed=5))
    rejects = pq.read_table(rejects_path_for(out)).to_pylist()
    keys = [f"yfcc-{10_000 + photo}" for photo in photos]
    creators = np.array([photo % 12 for photo in photos])
    duplicate, capped, per_creator = whole_pool(keys, creators, 5, 20)
    assert summary.by_reason["dedup:exact"] == duplicate.sum() > 1000
    assert summary.by_reason["cap:creator"] == capped.sum() > 0
    assert (
        sorted(row["line"] for row in rejects if row["reason"] == "dedup:exact")
        == (np.flatnonzero(duplicate) + 1).tolist()
    )
    capped_rows = {row["line"]: row["detail"] for row in rejects if row["reason"] == "cap:creator"}
    assert sorted(capped_rows) == (np.flatnonzero(capped) + 1).tolist()
    for row in np.flatnonzero(capped).tolist():
        count = per_creator[creators[row]]
        assert capped_rows[row + 1] == f"creator has {count} candidates; the cap keeps 20 (seed 5)"
    kept = pq.read_table(out).column("line").to_pylist()
    assert kept == (np.flatnonzero(~duplicate & ~capped) + 1).tolist()


def test_outputs_are_written_in_row_groups_of_many_batches(tmp_path, monkeypatch):
    from passkit import selection

    lines = [
        yfcc_line(
            "single-file", line, photo_id=20_000 + line, nsid=f"{line % 7}@N00", license=("by", "by-nc")[line % 2]
        )
        for line in range(1, 2001)
    ]
    source = tmp_path / "yfcc100m_dataset"
    source.write_text("\n".join(lines) + "\n")
    reader = selection.open_source(source)
    reader.chunk_bytes = 16 << 10  # many small batches
    run_select([reader], tmp_path / "one" / "candidates.parquet", SelectConfig(max_per_creator=100))
    monkeypatch.setattr(selection, "CANDIDATE_ROW_GROUP", 300)
    monkeypatch.setattr(selection, "REJECT_ROW_GROUP", 400)
    reader = selection.open_source(source)
    reader.chunk_bytes = 16 << 10
    run_select([reader], tmp_path / "two" / "candidates.parquet", SelectConfig(max_per_creator=100))
    for name in ("candidates.parquet", "candidates.rejects.parquet"):
        one, two = pq.ParquetFile(tmp_path / "one" / name), pq.ParquetFile(tmp_path / "two" / name)
        assert one.read().equals(two.read())
        assert one.metadata.num_row_groups == 1  # all batches in one row group
        sizes = [two.metadata.row_group(index).num_rows for index in range(two.metadata.num_row_groups)]
        assert len(sizes) > 2 and all(size >= (300 if name == "candidates.parquet" else 400) for size in sizes[:-1])
        assert max(sizes) < 1000  # row groups of a few batches, not one per batch
