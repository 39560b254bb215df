"""dedup: exact duplicates (sha256 of the canonical stored bytes or of the decoded pixels), near duplicates (64-bit
DCT perceptual hash within a Hamming radius) and evaluation-set contamination.

Dedup must see every shard of a run, so it has two passes that stay pure:

1. :func:`dedup_measure_stage`, per shard: records ``exact_sha256`` (see ``DedupConfig.exact_key``), ``phash``
   (16 hex digits), ``pixels`` and ``creator`` in the manifest; it rejects nothing.
2. :func:`dedup_decisions`, once per run, over the collected columns of all kept rows: ``dedup:eval-set`` for rows
   within ``eval_threshold`` of an evaluation-set hash, then ``dedup:exact`` for all but one row per pixel hash,
   then ``dedup:near`` greedily: rows in priority order (more pixels first, then key) are kept unless an already
   kept row lies within ``near_threshold``.

Near pairs come from :class:`HammingIndex`, a multi-index hash in numpy: the 64 bits are split into ``m`` chunks,
and two hashes within radius ``t`` agree to within ``t // m`` bits on at least one chunk (pigeonhole). Each chunk
is a counting-sort table; queries probe it with every flip mask of weight <= ``t // m`` and the candidates are
checked with a vectorised popcount. ``m`` is chosen from the sizes to minimise probes plus candidates. No Python
loop runs over pairs of images; the only Python loop runs over images that have a near neighbour.

:func:`dedup_stage` runs both passes on one batch (the same decisions, when a batch is the whole dataset).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from passkit.core.manifest import KEPT, ManifestBuilder
from passkit.core.reasons import DEDUP_EVAL_SET, DEDUP_EXACT, DEDUP_NEAR
from passkit.core.sample import Sample
from passkit.core.stage import StageResult
from passkit.stages.image import DecodedImage, DecodeError, DecodeLimits, decode, decoded, image_part

PHASH_SIZE = 32
PHASH_BITS = 8  # the top-left 8x8 DCT coefficients -> 64 bits
_MAX_CHUNK_BITS = 22  # counting tables of at most 2**22 entries (32 MiB)
_TABLE_ENTRIES_PER_ROW = 8  # ... and of at most 8 entries per indexed hash (from 2**16): memory follows the rows
_PAIR_BLOCK = 1 << 16  # candidate pairs checked per numpy block (~50 bytes each in temporaries: ~3 MiB)
_OFFSET_BLOCK = 1 << 18  # bucket offsets computed per block


@dataclass(frozen=True)
class DedupConfig:
    exact: bool = True
    # What "exact duplicate" compares: "stored" = sha256 of the stored image bytes (canonical after privacy: a
    # metadata-free copy of the coded JPEG data, or a deterministic encoding of the decoded pixels); "pixels" =
    # sha256 of the full-resolution decoded pixels (also matches byte-different codings of the same pixels, at the
    # cost of a full decode and a hash of every pixel).
    exact_key: str = "stored"
    near: bool = True
    near_threshold: int = 8  # Hamming distance between 64-bit pHashes (different photos: >= 12 on people-dev)
    eval_threshold: int | None = None  # default: near_threshold

    def __post_init__(self) -> None:
        if self.exact_key not in ("stored", "pixels"):
            raise ValueError(f"exact_key must be 'stored' or 'pixels', got {self.exact_key!r}")
        if not 0 <= self.near_threshold <= 32:
            raise ValueError("near_threshold must be in 0..32 bits")
        if self.eval_threshold is not None and not 0 <= self.eval_threshold <= 32:
            raise ValueError("eval_threshold must be in 0..32 bits")

    @property
    def eval_radius(self) -> int:
        return self.near_threshold if self.eval_threshold is None else self.eval_threshold


def _dct_matrix(size: int) -> np.ndarray:
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix


_DCT = _dct_matrix(PHASH_SIZE)


def phash_of(grey: Image.Image) -> int:
    """64-bit pHash: 32x32 grey (Lanczos), 2-D DCT-II, top-left 8x8 against its median (DC excluded from it)."""
    small = np.asarray(grey.convert("L").resize((PHASH_SIZE, PHASH_SIZE), Image.Resampling.LANCZOS), np.float64)
    low = (_DCT @ small @ _DCT.T)[:PHASH_BITS, :PHASH_BITS].ravel()
    bits = low > np.median(low[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash_hex(image: DecodedImage) -> str:
    return f"{phash_of(image.grey):016x}"


def hashes_from_hex(values: Sequence[str]) -> np.ndarray:
    """16-hex-digit strings -> uint64 array."""
    if not values:
        return np.zeros(0, np.uint64)
    return np.frombuffer(bytes.fromhex("".join(values)), dtype=">u8").astype(np.uint64)


def creator_of(sample: Sample) -> str:
    """The photographer the cap counts: a creator id where the json has one, else the creator name (casefolded)."""
    if "json" not in sample.parts:
        return ""
    try:
        record = sample.json()
    except ValueError:
        return ""
    if not isinstance(record, dict):
        return ""
    for name in ("creator_id", "owner", "user_id", "creator"):
        value = record.get(name)
        if value not in (None, ""):
            return " ".join(str(value).split()).casefold()
    return ""


def _pixels(image: DecodedImage) -> int:
    return image.source_width * image.source_height


def dedup_measure_stage(batch: list[Sample], cfg: DedupConfig) -> StageResult[list[Sample]]:
    """Per-shard pass: measure what the global decision needs; rejects only what cannot be decoded."""
    rows = ManifestBuilder()
    kept: list[Sample] = []
    for sample in batch:
        try:
            _, data = image_part(sample)
            image = decoded(sample)
            if cfg.exact_key == "pixels":
                full = image if image.full_resolution else decode(data, DecodeLimits(max_pixels=_pixels(image)))
                exact = full.pixel_sha256
            else:
                exact = hashlib.sha256(data).hexdigest()
        except DecodeError as error:
            rows.rejected(sample.key, error.reason)
            continue
        rows.kept(
            sample.key,
            exact_sha256=exact,
            phash=phash_hex(image),
            creator=creator_of(sample),
            pixels=_pixels(image),
        )
        kept.append(sample)
    return StageResult(kept, rows.to_table())


def _popcount(values: np.ndarray) -> np.ndarray:
    return np.bitwise_count(values)


def _masks(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for weight in range(1, radius + 1):
        for bits in combinations(range(width), weight):
            masks.append(sum(1 << bit for bit in bits))
    return np.array(masks, dtype=np.uint64)


def _layout(radius: int, n_index: int, n_query: int) -> list[int]:
    """Chunk widths (summing to 64) that minimise probes + expected candidates for this radius and size, with bucket
    tables of at most ``_TABLE_ENTRIES_PER_ROW`` entries per indexed hash (no 2**22-entry table for 100k rows)."""
    best: tuple[float, list[int]] | None = None
    max_bits = min(_MAX_CHUNK_BITS, max(16, int(math.log2(max(n_index, 1) * _TABLE_ENTRIES_PER_ROW))))
    for chunks in range(math.ceil(64 / max_bits), 65):
        widths = [64 // chunks + (1 if i < 64 % chunks else 0) for i in range(chunks)]
        sub_radius = radius // chunks
        cost = 0.0
        for width in widths:
            variants = sum(math.comb(width, i) for i in range(min(sub_radius, width) + 1))
            cost += variants * n_query * (1.0 + n_index / 2.0**width) + 2.0**width
        if best is None or cost < best[0]:
            best = (cost, widths)
    assert best is not None
    return best[1]


def _bucket_offsets(ordered: np.ndarray, width: int, dtype: type) -> np.ndarray:
    """Start of every bucket value ``0..2**width`` in the sorted chunk values, found in blocks so that the table is
    the only allocation of its size (a bincount + cumsum would hold three int64 copies: ~80 MiB at 22 bits)."""
    offsets = np.empty((1 << width) + 1, dtype=dtype)
    for start in range(0, len(offsets), _OFFSET_BLOCK):
        values = np.arange(start, min(start + _OFFSET_BLOCK, len(offsets)), dtype=np.int64)
        offsets[start : start + len(values)] = np.searchsorted(ordered, values, side="left")
    return offsets


class HammingIndex:
    """Multi-index hashing over uint64 hashes: all (query, item) pairs within a Hamming radius, vectorised."""

    def __init__(self, hashes: np.ndarray, radius: int, expected_queries: int | None = None) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.radius = radius
        queries = len(self.hashes) if expected_queries is None else expected_queries
        self.widths = _layout(radius, len(self.hashes), max(queries, 1))
        self.shifts = np.cumsum([0, *self.widths[:-1]]).tolist()

    def _chunk(self, values: np.ndarray, index: int) -> np.ndarray:
        width = self.widths[index]
        return ((values >> np.uint64(self.shifts[index])) & np.uint64((1 << width) - 1)).astype(np.int32)

    def _candidates(self, queries: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        sub_radius = self.radius // len(self.widths)
        index_type = np.int32 if len(self.hashes) < 2**31 - 1 else np.int64
        for index, width in enumerate(self.widths):
            chunk = self._chunk(self.hashes, index)
            order = np.argsort(chunk, kind="stable").astype(index_type)
            offsets = _bucket_offsets(chunk[order], width, index_type)
            query_chunk = self._chunk(queries, index)
            for mask in _masks(width, min(sub_radius, width)).astype(np.int32):
                probe = query_chunk ^ mask
                starts = offsets[probe]
                counts = offsets[probe + 1] - starts
                yield from self._expand(starts, counts, order)

    @staticmethod
    def _expand(starts: np.ndarray, counts: np.ndarray, order: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(query index, item index) for every item in every probed bucket, in blocks of bounded size."""
        nonzero = np.flatnonzero(counts)
        if nonzero.size == 0:
            return
        cumulative = np.cumsum(counts[nonzero])
        begin = 0
        while begin < nonzero.size:
            base = cumulative[begin - 1] if begin else 0
            end = int(np.searchsorted(cumulative, base + _PAIR_BLOCK, side="right"))
            end = max(end, begin + 1)
            rows = nonzero[begin:end]
            sizes = counts[rows]
            query_index = np.repeat(rows.astype(order.dtype), sizes)
            within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            yield query_index, order[np.repeat(starts[rows], sizes) + within]
            begin = end

    def search(self, queries: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unique pairs (query i, item j, distance) with distance <= radius; with ``exclude_self`` (queries are the
        indexed hashes) only pairs i < j."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        found_q, found_i, found_d = [], [], []
        for query_index, item_index in self._candidates(queries):
            if exclude_self:
                keep = query_index < item_index
                query_index, item_index = query_index[keep], item_index[keep]
            distance = _popcount(queries[query_index] ^ self.hashes[item_index])
            close = distance <= self.radius
            found_q.append(query_index[close])
            found_i.append(item_index[close])
            found_d.append(distance[close])
        if not found_q:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty.astype(np.uint8)
        q, i, d = (np.concatenate(found).astype(np.int64) for found in (found_q, found_i, found_d))
        pair = q.astype(np.int64) * max(len(self.hashes), 1) + i
        _, first = np.unique(pair, return_index=True)
        return q[first], i[first], d[first].astype(np.uint8)


@dataclass(frozen=True)
class Decision:
    reason: str
    dup_of: str  # the kept key (or the evaluation item) it duplicates
    distance: int


KEPT_CODE, EVAL_CODE, EXACT_CODE, NEAR_CODE = 0, 1, 2, 3
REASON_OF_CODE = {EVAL_CODE: DEDUP_EVAL_SET, EXACT_CODE: DEDUP_EXACT, NEAR_CODE: DEDUP_NEAR}


@dataclass
class DedupArrays:
    """Decisions for rows ``0..n-1`` in fixed-width arrays (the global pass holds these, not Python objects)."""

    reason: np.ndarray  # int8: KEPT_CODE or the code of the dedup reason
    dup_of: np.ndarray  # int64: the kept row it duplicates (exact, near), the evaluation item (eval-set), or -1
    distance: np.ndarray  # int16: Hamming distance (0 for exact)

    @classmethod
    def empty(cls, rows: int) -> DedupArrays:
        return cls(np.zeros(rows, np.int8), np.full(rows, -1, np.int64), np.zeros(rows, np.int16))


def exact_digests(values: Sequence[str | None]) -> np.ndarray:
    """``exact_sha256`` strings -> (n, 4) uint64: the digest of 64-hex values, else a sha256 of the text (so equal
    strings compare equal); all zeros for a missing value, which is never an exact duplicate."""
    out = np.zeros((len(values), 32), np.uint8)
    for row, value in enumerate(values):
        if not value:
            continue
        try:
            digest = bytes.fromhex(value) if len(value) == 64 else b""
        except ValueError:
            digest = b""
        out[row] = np.frombuffer(digest or hashlib.sha256(f"exact:{value}".encode()).digest(), np.uint8)
    return out.view(">u8").astype(np.uint64).reshape(len(values), 4)


def key_ranks(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each key's position in key order (UTF-8 byte order = code point order)."""
    order = pc.sort_indices(keys).to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _priority_order(key_rank: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Indices in keep-first order: more pixels first, then key."""
    return np.lexsort((key_rank, -pixels.astype(np.int64)))


def dedup_arrays(
    key_rank: np.ndarray,
    digests: np.ndarray | None,
    hashes: np.ndarray,
    pixels: np.ndarray,
    cfg: DedupConfig,
    eval_hashes: np.ndarray | None = None,
) -> DedupArrays:
    """The global dedup pass over fixed-width columns of ``n`` rows: key order rank, exact digests ((n, 4) uint64,
    or None when exact dedup is off), 64-bit pHashes and pixel counts. Same decisions as :func:`dedup_decisions`."""
    rows = len(hashes)
    result = DedupArrays.empty(rows)
    if rows == 0:
        return result
    alive = np.ones(rows, dtype=bool)
    if eval_hashes is not None and len(eval_hashes):
        index = HammingIndex(eval_hashes, cfg.eval_radius, expected_queries=rows)
        query, item, distance = index.search(hashes)
        if len(query):
            best = np.lexsort((item, distance, query))  # per query: nearest, then lowest item
            query, item, distance = query[best], item[best], distance[best]
            first = np.concatenate(([True], query[1:] != query[:-1]))
            hit = query[first]
            result.reason[hit], result.dup_of[hit], result.distance[hit] = EVAL_CODE, item[first], distance[first]
            alive[hit] = False

    order = _priority_order(key_rank, pixels)
    if cfg.exact and digests is not None:
        measured = digests.any(axis=1)
        candidates = order[alive[order] & measured[order]]  # keep-first order
        if len(candidates) > 1:
            duplicate, first = _exact_duplicates(digests, candidates)
            result.reason[duplicate] = EXACT_CODE
            result.dup_of[duplicate] = first
            result.distance[duplicate] = 0
            alive[duplicate] = False

    if cfg.near:
        _near_arrays(hashes, np.flatnonzero(alive), order, cfg.near_threshold, result)
    return result


def _exact_duplicates(digests: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, the first row of their digest) among ``candidates`` (in keep-first order). Sorted by the digest's
    first 64 bits only (8 bytes a row, not 32); should two different digests share them, the full sort decides."""
    prefix = digests[candidates, 0]
    by_digest = np.lexsort((np.arange(len(candidates)), prefix))  # digest prefix, then priority
    same = prefix[by_digest[1:]] == prefix[by_digest[:-1]]
    pairs = np.flatnonzero(same)
    left, right = candidates[by_digest[pairs]], candidates[by_digest[pairs + 1]]
    if (digests[left] != digests[right]).any():  # a 64-bit prefix collision (~1e-5 at 17M rows): full sort
        by_digest = np.lexsort((np.arange(len(candidates)), *digests[candidates].T[::-1]))
        ordered = digests[candidates[by_digest]]
        same = (ordered[1:] == ordered[:-1]).all(axis=1)
    new = np.concatenate(([True], ~same))
    first_of = np.maximum.accumulate(np.where(new, np.arange(len(candidates)), 0))
    return candidates[by_digest[~new]], candidates[by_digest[first_of[~new]]]


def dedup_decisions(
    table: pa.Table,
    cfg: DedupConfig,
    eval_hashes: np.ndarray | None = None,
    eval_ids: Sequence[str] = (),
) -> dict[str, Decision]:
    """Global pass over rows with ``key, exact_sha256, phash`` (+ optional ``pixels``): key -> rejection."""
    if table.num_rows == 0:
        return {}
    keys = table.column("key")
    pixels = (
        np.array(table.column("pixels").fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        if "pixels" in table.column_names
        else np.zeros(table.num_rows, np.int64)
    )
    digests = exact_digests(table.column("exact_sha256").to_pylist()) if cfg.exact else None
    hashes = hashes_from_hex(table.column("phash").to_pylist())
    result = dedup_arrays(key_ranks(keys), digests, hashes, pixels, cfg, eval_hashes)
    return decisions_of(result, np.flatnonzero(result.reason), keys, eval_ids)


def decisions_of(
    result: DedupArrays, rows: np.ndarray, keys: pa.Array | pa.ChunkedArray, eval_ids: Sequence[str] = ()
) -> dict[str, Decision]:
    """``{key: Decision}`` for those of the given rows that dedup rejects (e.g. the rows of one shard)."""
    rows = rows[result.reason[rows] != KEPT_CODE]
    if len(rows) == 0:
        return {}
    names = keys.take(pa.array(rows, pa.int64())).to_pylist()
    inside = result.reason[rows] != EVAL_CODE
    dup_rows = result.dup_of[rows]
    dup_names = iter(keys.take(pa.array(dup_rows[inside], pa.int64())).to_pylist())
    decisions: dict[str, Decision] = {}
    for name, code, dup, distance, is_inside in zip(
        names, result.reason[rows].tolist(), dup_rows.tolist(), result.distance[rows].tolist(), inside.tolist(),
        strict=True,
    ):  # fmt: skip
        if is_inside:
            decisions[name] = Decision(REASON_OF_CODE[code], next(dup_names), distance)
            continue
        decisions[name] = Decision(REASON_OF_CODE[code], str(eval_ids[dup]) if eval_ids else f"eval-{dup}", distance)
    return decisions


def _near_arrays(hashes: np.ndarray, survivors: np.ndarray, order: np.ndarray, radius: int, out: DedupArrays) -> None:
    """Greedy in priority order: a row is dropped iff a row kept before it lies within ``radius``. Python runs only
    over the rows that have a near neighbour or share their pHash."""
    if survivors.size < 2:
        return
    unique, group = np.unique(hashes[survivors], return_inverse=True)
    index = HammingIndex(unique, radius)
    left, right, distance = index.search(unique, exclude_self=True)
    group_size = np.bincount(group, minlength=len(unique))
    involved_groups = np.zeros(len(unique), dtype=bool)
    involved_groups[left] = involved_groups[right] = True
    involved_groups |= group_size > 1
    if not involved_groups.any():
        return
    neighbours: dict[int, list[tuple[int, int]]] = {}
    for a, b, d in zip(left.tolist(), right.tolist(), distance.tolist(), strict=True):
        neighbours.setdefault(a, []).append((d, b))
        neighbours.setdefault(b, []).append((d, a))
    rank = np.empty(len(hashes), dtype=np.int64)
    rank[order] = np.arange(len(hashes))
    involved = survivors[involved_groups[group]]
    group_of = dict(zip(involved.tolist(), group[involved_groups[group]].tolist(), strict=True))
    kept_in_group: dict[int, int] = {}
    for position in involved[np.argsort(rank[involved], kind="stable")].tolist():
        g = group_of[position]
        if g in kept_in_group:
            out.reason[position], out.dup_of[position], out.distance[position] = NEAR_CODE, kept_in_group[g], 0
            continue
        kept_neighbours = [(d, kept_in_group[other]) for d, other in neighbours.get(g, ()) if other in kept_in_group]
        nearest = min(((d, rank[p], p) for d, p in kept_neighbours), default=None)
        if nearest is None:
            kept_in_group[g] = position
        else:
            out.reason[position], out.dup_of[position], out.distance[position] = NEAR_CODE, nearest[2], nearest[0]


def confirm_pixel_exact(
    decisions: dict[str, Decision],
    measured: pa.Table,
    images: Callable[[set[str]], Iterable[tuple[str, bytes]]],
    limits: DecodeLimits,
) -> dict[str, Decision]:
    """Near duplicates whose full decode is pixel-identical to an earlier copy become exact duplicates.

    The default exact key hashes the stored bytes, so no image is decoded in full just for dedup; the same pixels
    coded differently (another PNG compression level, baseline vs progressive JPEG, PNG vs BMP) reach the near pass
    with identical pHashes. Only the members of such pHash groups are decoded here, in full, to compare pixels;
    ``images(keys)`` yields their stored bytes.
    """
    near = {key for key, decision in decisions.items() if decision.reason == DEDUP_NEAR}
    if not near:
        return decisions
    groups: dict[str, list[str]] = {}
    for key, phash in zip(measured["key"].to_pylist(), measured["phash"].to_pylist(), strict=True):
        groups.setdefault(phash, []).append(key)
    group_of = {key: phash for phash, members in groups.items() if len(members) > 1 for key in members}
    needed = {key for phash in {group_of[k] for k in near if k in group_of} for key in groups[phash]}
    if not needed:
        return decisions
    full = replace(limits, decode_max_side=None, analysis_side=None)
    pixel_sha: dict[str, str] = {}
    rank: dict[str, tuple[int, str]] = {}  # dedup's keep-first order: more pixels first, then key
    for key, data in images(needed):
        with contextlib.suppress(DecodeError):
            image = decode(data, full)
            pixel_sha[key] = image.pixel_sha256
            rank[key] = (-image.source_width * image.source_height, key)
    confirmed = dict(decisions)
    for key in sorted(near & set(pixel_sha)):
        same = [
            other
            for other in groups[group_of[key]]
            if other != key and pixel_sha.get(other) == pixel_sha[key] and rank[other] < rank[key]
        ]
        if same:
            dup_of = decisions[key].dup_of if decisions[key].dup_of in same else min(same, key=rank.__getitem__)
            confirmed[key] = Decision(DEDUP_EXACT, dup_of, 0)
    return confirmed


def dedup_stage(
    batch: list[Sample], cfg: DedupConfig, eval_hashes: np.ndarray | None = None, eval_ids: Sequence[str] = ()
) -> StageResult[list[Sample]]:
    """Measure and decide within one batch (the global pass when the batch is the whole dataset)."""
    measured = dedup_measure_stage(batch, cfg)
    rows = measured.rows
    kept_rows = rows.filter(pc.equal(rows.column("status"), KEPT))
    decisions = dedup_decisions(kept_rows, cfg, eval_hashes, eval_ids)
    builder = ManifestBuilder()
    for row in rows.to_pylist():
        key, status, reason = row.pop("key"), row.pop("status"), row.pop("reason")
        decision = decisions.get(key)
        if status != KEPT:
            builder.add(key, status, reason, **row)
        elif decision is not None:
            builder.rejected(key, decision.reason, dup_of=decision.dup_of, dup_distance=decision.distance, **row)
        else:
            builder.kept(key, dup_of="", dup_distance=None, **row)
    kept = [sample for sample in measured.kept if sample.key not in decisions]
    return StageResult(kept, builder.to_table())


def eval_phashes(images: Sequence[DecodedImage]) -> np.ndarray:
    return hashes_from_hex([phash_hex(image) for image in images])
