"""select's two whole-pool choices, exact duplicate keys and the per-creator cap, in memory that does not grow with
the pool (beyond 2 bits per admitted record).

Per admitted record (numbered in the order select spills them) select hands over four 64-bit hashes: the key's
rank (:func:`passkit.stages.select.key_rank`, seeded), a second hash of the key, and two hashes of the creator. They
go to a file on disk through a fixed-size buffer, in 256 partitions by rank. Then, one partition at a time:

1. duplicates: records with the same rank and second key hash have the same key (two different keys agree on both
   64-bit hashes with probability ~2^-128 per pair); the first record of each key stays, later ones are duplicates.
   The records that stay go on, partitioned by creator hash;
2. the cap: per creator, the ``max_per_creator`` records with the smallest rank (ties: the earlier record) stay, as
   :func:`passkit.stages.select.cap_per_creator` decides on the whole pool.

What stays in memory: one bit per admitted record for each of the two outcomes, the number of candidates of each
creator above the cap (for the reject detail), and where each partition starts in each buffer written. Partitions are
sorted a few at a time, together up to 128Ki records (~13 MB while sorted), so the working set does not grow with the
pool either until one partition holds more than that (a pool of ~33M admitted records, or a creator with >128Ki).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passkit.stages.select import key_rank

PARTITIONS = 256
BUFFER_RECORDS = 1 << 16
GROUP_RECORDS = 1 << 17  # partitions are sorted together while they hold at most this many records
# Fixed seeds of the hashes that are not the rank: the key's second hash is seeded from the rank's seed so that the
# two differ for every seed; the creator hashes do not depend on the seed.
_CHECK_SEED = 0x9E3779B97F4A7C15
_CREATOR_SEEDS = (0x243F6A8885A308D3, 0x13198A2E03707344)
_MASK64 = (1 << 64) - 1
_SPREAD = np.uint64(0x9E3779B97F4A7C15)

# Records are rows of uint64 columns: for duplicates (partitioned by rank) ...
RANK, CHECK, CREATOR, CREATOR2, ROW = range(5)
# ... and for the cap (partitioned by creator).
CAP_COLUMNS = (CREATOR, CREATOR2, RANK, ROW)
C_CREATOR, C_CREATOR2, C_RANK, C_ROW = range(4)


def creator_identity(batch: pa.Table) -> pa.Array:
    """Who a record's creator is: the creator id, else ``name:`` + the creator's name (``name:`` when neither)."""
    creator_id = pc.fill_null(batch.column("creator_id").combine_chunks(), "")
    creator = pc.fill_null(batch.column("creator").combine_chunks(), "")
    return pc.if_else(pc.equal(creator_id, ""), pc.binary_join_element_wise("name:", creator, ""), creator_id)


def creator_hashes(batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of :func:`creator_identity` per record."""
    who = creator_identity(batch)
    return key_rank(who, _CREATOR_SEEDS[0]), key_rank(who, _CREATOR_SEEDS[1])


def key_check(keys: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """The key's second 64-bit hash (differs from ``key_rank(keys, seed)`` for every seed)."""
    return key_rank(keys, (seed ^ _CHECK_SEED) & _MASK64)


class Partitions:
    """Records (rows of ``width`` uint64 values) split into ``count`` partitions by their value in ``column`` (the
    top bits of its Fibonacci hash), through a buffer of ``buffer_records``: each full buffer is written to one
    file, ordered by partition, and only where each partition starts in each write stays in memory (8 bytes per
    partition and write: 2 KiB per 64Ki records).
    Within a partition, records keep the order in which they were added."""

    def __init__(self, folder: Path, name: str, width: int, column: int, count: int, buffer_records: int) -> None:
        if count < 1 or count & (count - 1) or count > 1 << 16:
            raise ValueError(f"partition count must be a power of two <= 65536, got {count}")
        self._path = folder / f"{name}.bin"
        self._file: BinaryIO | None = None
        self._column = column
        self._shift = np.uint64(64 - (count.bit_length() - 1))
        self._buffer = np.empty((max(1, buffer_records), width), np.uint64)
        self._used = 0
        self._writes: list[tuple[int, np.ndarray]] = []  # (file offset, where each partition starts) of each write
        self.width = width
        self.count = count

    def add(self, records: np.ndarray) -> None:
        if len(records) and not len(self._buffer):
            raise RuntimeError("add after the last flush")
        start = 0
        while start < len(records):
            take = min(len(records) - start, len(self._buffer) - self._used)
            self._buffer[self._used : self._used + take] = records[start : start + take]
            self._used += take
            start += take
            if self._used == len(self._buffer):
                self.flush()

    def flush(self, last: bool = False) -> None:
        """Write what the buffer holds; ``last``: nothing more will be added (the buffer is released)."""
        if self._used:
            records = self._buffer[: self._used]
            if self.count == 1:
                which = np.zeros(len(records), np.intp)
            else:
                # Fibonacci hashing of the field: even partitions whether or not the field's values are spread.
                with np.errstate(over="ignore"):
                    which = ((records[:, self._column] * _SPREAD) >> self._shift).astype(np.intp)
            if self._file is None:
                self._file = self._path.open("w+b")
            self._file.seek(0, os.SEEK_END)
            starts = np.zeros(self.count + 1, np.int64)
            np.cumsum(np.bincount(which, minlength=self.count), out=starts[1:])
            self._writes.append((self._file.tell(), starts))
            self._file.write(records[np.argsort(which, kind="stable")].tobytes())
            self._used = 0
        if last:
            self._buffer = np.empty((0, self.width), np.uint64)

    def take(self, index: int) -> np.ndarray:
        """The records of one partition, in the order added (after :meth:`flush`)."""
        sizes = [int(starts[index + 1] - starts[index]) for _, starts in self._writes]
        records = np.empty((sum(sizes), self.width), np.uint64)
        target = memoryview(records.reshape(-1).view(np.uint8))
        itemsize = 8 * self.width
        position = 0
        for (offset, starts), size in zip(self._writes, sizes, strict=True):
            if size:
                assert self._file is not None
                self._file.seek(offset + int(starts[index]) * itemsize)
                length = size * itemsize
                if self._file.readinto(target[position : position + length]) != length:
                    raise OSError(f"{self._path}: partition file is shorter than written")
                position += length
        return records

    def groups(self, most: int) -> Iterator[np.ndarray]:
        """The records of consecutive partitions, together while they hold at most ``most`` records (a larger
        partition comes alone)."""
        sizes = sum((np.diff(starts) for _, starts in self._writes), np.zeros(self.count, np.int64))
        group: list[int] = []
        for index in range(self.count):
            if group and sizes[group].sum() + sizes[index] > most:
                yield np.concatenate([self.take(member) for member in group])
                group = []
            group.append(index)
        yield np.concatenate([self.take(member) for member in group])

    def close(self) -> None:
        """Remove the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)
        self._writes = []


class Bits:
    """One bit per record, packed."""

    def __init__(self, count: int) -> None:
        self._bits = np.zeros((count + 7) // 8, np.uint8)
        self.count = count

    def set(self, rows: np.ndarray) -> None:
        rows = rows.astype(np.int64, copy=False)
        np.bitwise_or.at(self._bits, rows >> 3, (np.uint8(1) << (rows & 7).astype(np.uint8)))

    def get(self, start: int, stop: int) -> np.ndarray:
        """Bool array of rows ``start:stop``."""
        unpacked = np.unpackbits(self._bits[start >> 3 : (stop + 7) >> 3], bitorder="little")
        return unpacked[start & 7 : (start & 7) + stop - start].astype(bool)

    def total(self) -> int:
        return int(np.unpackbits(self._bits).sum())


class PoolChoices:
    """Duplicates and the cap over every record :meth:`add`-ed, in order; :meth:`finish`, then read the outcome
    by row range with :meth:`duplicate` and :meth:`capped`, and the creator counts with :meth:`creator_counts`."""

    def __init__(
        self,
        folder: str | Path,
        max_per_creator: int,
        partitions: int = PARTITIONS,
        buffer_records: int = BUFFER_RECORDS,
        group_records: int = GROUP_RECORDS,
    ) -> None:
        folder = Path(folder)
        self._group_records = group_records
        self.max_per_creator = max_per_creator
        self._dedup = Partitions(folder, "dedup", 5, RANK, partitions, buffer_records)
        self._cap = Partitions(folder, "cap", len(CAP_COLUMNS), C_CREATOR, partitions, buffer_records)
        self.rows = 0
        self._duplicate = self._capped = Bits(0)
        # Creators above the cap: (hash, hash2) sorted, and their number of candidates before the cap.
        self._over = np.zeros((0, 2), np.uint64)
        self._over_counts = np.zeros(0, np.int64)
        self._finished = False

    def add(self, rank: np.ndarray, check: np.ndarray, creator: np.ndarray, creator2: np.ndarray) -> None:
        """The hashes of the next ``len(rank)`` admitted records."""
        if self._finished:
            raise RuntimeError("add after finish")
        rows = np.arange(self.rows, self.rows + len(rank), dtype=np.uint64)
        self.rows += len(rank)
        records = np.stack([rank, check, creator, creator2, rows], axis=1).astype(np.uint64, copy=False)
        self._dedup.add(records)

    def finish(self) -> None:
        self._finished = True
        self._dedup.flush(last=True)
        self._duplicate, self._capped = Bits(self.rows), Bits(self.rows)
        for records in self._dedup.groups(self._group_records):
            ordered = records[np.lexsort((records[:, ROW], records[:, CHECK], records[:, RANK]))]
            repeated = np.zeros(len(ordered), dtype=bool)
            same = ordered[1:, RANK] == ordered[:-1, RANK]
            repeated[1:] = same & (ordered[1:, CHECK] == ordered[:-1, CHECK])
            self._duplicate.set(ordered[repeated, ROW])
            if self.max_per_creator > 0:
                self._cap.add(ordered[np.flatnonzero(~repeated)[:, None], CAP_COLUMNS])
        self._dedup.close()
        if self.max_per_creator <= 0:
            return
        self._cap.flush(last=True)
        over, counts = [], []
        for records in self._cap.groups(self._group_records):
            order = np.lexsort((records[:, C_ROW], records[:, C_RANK], records[:, C_CREATOR2], records[:, C_CREATOR]))
            ordered = records[order]
            starts = np.ones(len(ordered), dtype=bool)
            starts[1:] = (ordered[1:, C_CREATOR] != ordered[:-1, C_CREATOR]) | (
                ordered[1:, C_CREATOR2] != ordered[:-1, C_CREATOR2]
            )
            start_positions = np.flatnonzero(starts)
            sizes = np.diff(np.append(start_positions, len(ordered)))
            position = np.arange(len(ordered)) - np.repeat(start_positions, sizes)
            self._capped.set(ordered[position >= self.max_per_creator, C_ROW])
            heavy = sizes > self.max_per_creator
            over.append(ordered[start_positions[heavy]][:, [C_CREATOR, C_CREATOR2]])
            counts.append(sizes[heavy])
        self._cap.close()
        over_all = np.concatenate(over)
        order = np.lexsort((over_all[:, 1], over_all[:, 0]))
        self._over, self._over_counts = np.ascontiguousarray(over_all[order]), np.concatenate(counts)[order]

    def duplicate(self, start: int, stop: int) -> np.ndarray:
        """Whether rows ``start:stop`` repeat the key of an earlier row."""
        return self._duplicate.get(start, stop)

    def capped(self, start: int, stop: int) -> np.ndarray:
        """Whether rows ``start:stop`` are first of their key but over their creator's cap."""
        return self._capped.get(start, stop)

    def creator_counts(self, creator: np.ndarray, creator2: np.ndarray) -> np.ndarray:
        """Candidates before the cap of each given creator (by its two hashes), for creators over the cap."""
        first, second = self._over[:, 0], self._over[:, 1]
        found = np.minimum(np.searchsorted(first, creator), max(len(first) - 1, 0))
        if len(first):
            # Creators over the cap whose first hashes collide (rare) sit next to each other: step to the one.
            for row in np.flatnonzero(second[found] != creator2).tolist():
                while found[row] + 1 < len(first) and first[found[row] + 1] == creator[row]:
                    found[row] += 1
                    if second[found[row]] == creator2[row]:
                        break
        if len(creator) and (
            not len(first) or not np.array_equal(first[found], creator) or not np.array_equal(second[found], creator2)
        ):
            raise KeyError("creator_counts: a creator that is not over the cap")
        return self._over_counts[found]

    @property
    def duplicates(self) -> int:
        return self._duplicate.total()

    @property
    def capped_count(self) -> int:
        return self._capped.total()
