"""select: which pool records become download candidates. Columnar; a pure function of the batch and config.

Per record, the first failing check gives the reject reason:

1. ``metadata:malformed`` — the source could not read the record (bad line, bad field, bad UTF-8...), or its
   source-given photo hash (YFCC's MD5 of the download URL) does not match the URL;
2. ``metadata:video`` — YFCC marker 1;
3. ``license:not-allowed`` — the normalised license is not admitted by the policy (``unknown`` never is);
4. ``attribution:incomplete:<fields>`` — creator, page URL, license URL (and title if required) missing or unusable,
   exactly as :meth:`passkit.core.attribution.Attribution.check` decides.

The photo hash is verified only on records that pass 1-4 (MD5 per row is the one per-row step; it runs on the few
that would be downloaded). Two choices need the whole pool and are applied afterwards by the select runner with the
pure functions below: exact duplicate keys (the first occurrence stays, later ones get ``dedup:exact``) and the
per-creator cap (``cap:creator``): for each creator at most ``max_per_creator`` candidates stay, those with the
smallest :func:`key_rank` — a seeded 64-bit hash of the key, so the choice is deterministic, independent of input
order, and a different ``seed`` draws a different subset.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passkit.core import reasons
from passkit.core.licenses import ALL_IDS, LicensePolicy
from passkit.core.manifest import KEPT, REJECTED
from passkit.core.stage import StageResult
from passkit.sources.columns import binary_parts, web_url_mask
from passkit.sources.compiled import load_scanner

PASS_MAX_PER_CREATOR = 80
_ATTRIBUTION_FIELDS = ("creator", "title", "page_url", "license", "license_url")
_HEX_BYTE = [f"{value:x}" for value in range(256)]
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class SelectConfig:
    """``policy``: ``cc-by`` (PASS), ``permissive`` or an allow-list (see LicensePolicy.parse);
    ``max_per_creator``: cap per creator (0 = no cap); ``seed``: which capped subset is drawn;
    ``require_title``: reject records without a title."""

    policy: str = "cc-by"
    max_per_creator: int = PASS_MAX_PER_CREATOR
    seed: int = 0
    require_title: bool = False

    def __post_init__(self) -> None:
        LicensePolicy.parse(self.policy)  # raises ValueError naming the bad item
        if self.max_per_creator < 0:
            raise ValueError(f"max_per_creator must be >= 0 (0 = no cap), got {self.max_per_creator}")
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {self.seed}")

    @property
    def license_policy(self) -> LicensePolicy:
        return LicensePolicy.parse(self.policy)


def photo_hash_of(url: str) -> str:
    """YFCC100M's photo hash: MD5 of the download URL, each byte printed with ``%x`` (no zero padding)."""
    return "".join(map(_HEX_BYTE.__getitem__, hashlib.md5(url.encode("utf-8")).digest()))


def photo_hashes_of(urls: pa.Array) -> pa.Array:
    """:func:`photo_hash_of` of every URL of a string array (null -> the hash of ""): in one call of the compiled
    YFCC scanner module when it is built, else one MD5 call per URL with the hex printing vectorised."""
    values_array = pc.fill_null(urls.cast(pa.binary()), b"")
    scanner = load_scanner()
    if scanner is not None and len(values_array):
        offsets, data = binary_parts(values_array)
        hex_offsets, hex_data = scanner.photo_hashes(offsets, np.ascontiguousarray(data))
        return pa.Array.from_buffers(
            pa.string(), len(values_array), [None, pa.py_buffer(hex_offsets), pa.py_buffer(hex_data)]
        )
    md5 = hashlib.md5
    values = values_array.to_pylist()
    digests = np.frombuffer(b"".join([md5(value).digest() for value in values]), dtype=np.uint8)
    digests = digests.reshape(len(values), 16)
    high, low = digests >> 4, digests & 15
    chars = np.stack([_HEX_DIGITS[high], _HEX_DIGITS[low]], axis=2).reshape(len(values), 32)
    printed = np.ones((len(values), 32), dtype=bool)
    printed[:, 0::2] = high != 0  # %x prints no leading zero
    offsets = np.concatenate(([0], np.cumsum(printed.sum(axis=1)))).astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(chars[printed].tobytes())]
    )


def _bool(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _string(table: pa.Table, name: str) -> pa.Array:
    return pc.fill_null(table.column(name).combine_chunks().cast(pa.string()), "")


@dataclass(frozen=True)
class Decisions:
    """select's verdict on each record of a batch: ``code`` 0 = admitted, else the index of its reason in
    ``reasons``; ``detail`` says what is malformed (null unless code is 1)."""

    code: np.ndarray
    reasons: list[str]
    detail: pa.Array


@functools.lru_cache(maxsize=16)
def _allowed_ids(policy: str) -> pa.Array:
    """The license ids a policy admits (parsed once per policy, not once per batch)."""
    parsed = LicensePolicy.parse(policy)
    return pa.array([i for i in ALL_IDS if parsed.allows(i)], pa.string())


def decide(batch: pa.Table, cfg: SelectConfig) -> Decisions:
    """The checks of :func:`select_batch` as codes (the select runner uses them without building a status and a
    reason string per record)."""
    count = batch.num_rows
    allowed_ids = _allowed_ids(cfg.policy)
    license_ids = _string(batch, "license")
    malformed = batch.column("malformed").combine_chunks()
    is_malformed = _bool(pc.is_valid(malformed))
    is_video = _bool(batch.column("is_video"))
    not_allowed = ~_bool(pc.is_in(license_ids, allowed_ids))
    code = np.where(not_allowed, 3, 0)
    code = np.where(is_video, 2, code)
    code = np.where(is_malformed, 1, code)
    # Attribution is checked on the records still in (few: most of a pool fails the license policy).
    # One reason per combination of missing fields: bit i = _ATTRIBUTION_FIELDS[i].
    open_rows = pa.array(np.flatnonzero(code == 0))
    rest = batch.select(["creator", "title", "page_url", "license_url"]).take(open_rows)
    missing = {
        "creator": _bool(pc.equal(_string(rest, "creator"), "")),
        "title": _bool(pc.equal(_string(rest, "title"), "")) if cfg.require_title else None,
        "page_url": ~web_url_mask(rest.column("page_url").combine_chunks()),
        "license": _bool(pc.equal(license_ids.take(open_rows), "unknown")),
        "license_url": ~web_url_mask(rest.column("license_url").combine_chunks()),
    }
    bits = np.zeros(len(open_rows), dtype=np.int64)
    for bit, name in enumerate(_ATTRIBUTION_FIELDS):
        if missing[name] is not None:
            bits |= missing[name].astype(np.int64) << bit
    combos = [
        reasons.attribution_incomplete([f for b, f in enumerate(_ATTRIBUTION_FIELDS) if code >> b & 1])
        for code in range(1, 2 ** len(_ATTRIBUTION_FIELDS))
    ]
    names = ["", reasons.METADATA_MALFORMED, reasons.METADATA_VIDEO, reasons.LICENSE_NOT_ALLOWED, *combos]
    code[open_rows.to_numpy()] = np.where(bits > 0, bits + 3, 0)
    detail = malformed

    hashes = batch.column("photo_hash").combine_chunks()
    to_verify = np.flatnonzero((code == 0) & _bool(pc.is_valid(hashes)))
    if len(to_verify):
        rows = pa.array(to_verify)
        matches = pc.equal(photo_hashes_of(batch.column("url").combine_chunks().take(rows)), hashes.take(rows))
        wrong = to_verify[~matches.to_numpy(zero_copy_only=False)]
        if len(wrong):
            code[wrong] = 1
            mismatch = np.zeros(count, dtype=bool)
            mismatch[wrong] = True
            detail = pc.if_else(
                pa.array(mismatch), pa.scalar("photo hash does not match the MD5 of the download URL"), detail
            )

    return Decisions(code, names, pc.if_else(pa.array(code == 1), detail, pa.scalar(None, pa.string())))


def select_batch(batch: pa.Table, cfg: SelectConfig) -> StageResult[pa.Table]:
    """Check every record of a POOL_SCHEMA batch; ``kept`` holds the admitted records, ``rows`` one row per
    record: key, status, reason, detail."""
    decided = decide(batch, cfg)
    kept_mask = decided.code == 0
    reason = pc.take(pa.array(decided.reasons, pa.string()), pa.array(decided.code))
    status = pc.if_else(pa.array(kept_mask), pa.scalar(KEPT), pa.scalar(REJECTED))
    rows = pa.table(
        {"key": batch.column("key").combine_chunks(), "status": status, "reason": reason, "detail": decided.detail}
    )
    return StageResult(kept=batch.filter(pa.array(kept_mask)), rows=rows)


_MASK64 = (1 << 64) - 1
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _mix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 / murmur3 finaliser: spreads every input bit over the output (uint64, wrapping)."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def key_rank(keys: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """Seeded 64-bit hash of each key (FNV-1a over its UTF-8 bytes, seed mixed into the start, then the
    splitmix64 finaliser); null hashes as "". Same value on every platform and run: in one call of the compiled
    YFCC scanner module when it is built, else vectorised over byte positions with numpy."""
    array = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    scanner = load_scanner()
    if scanner is not None and hasattr(scanner, "key_ranks") and len(array):
        offsets, data = binary_parts(pc.fill_null(array.cast(pa.binary()), b""))
        return np.frombuffer(scanner.key_ranks(offsets, np.ascontiguousarray(data), seed & _MASK64), np.uint64)
    return _key_rank_numpy(array, seed)


def _key_rank_numpy(array: pa.Array, seed: int) -> np.ndarray:
    """:func:`key_rank` with numpy (the reference of the compiled path)."""
    array = pc.fill_null(array.cast(pa.large_binary()), b"")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    start = _mix64(np.full(len(array), seed & _MASK64, dtype=np.uint64))
    state = np.full(len(array), _FNV_OFFSET, dtype=np.uint64) ^ start
    with np.errstate(over="ignore"):
        for position in range(int(lengths.max()) if len(lengths) else 0):
            rows = np.flatnonzero(lengths > position)
            byte = data[offsets[rows] + position].astype(np.uint64)
            state[rows] = (state[rows] ^ byte) * _FNV_PRIME
        return _mix64(state ^ lengths.astype(np.uint64))


def first_occurrences(
    key_hashes: np.ndarray, keys_of: Callable[[np.ndarray], Sequence[str]] | None = None
) -> np.ndarray:
    """Mask of rows that are the first of their key, given a 64-bit hash per key in input order.

    Rows whose hash repeats are duplicates. ``keys_of(rows)`` (when given) returns the keys of those rows, so
    that rows whose hashes collide but whose keys differ are both kept.
    """
    count = len(key_hashes)
    first = np.ones(count, dtype=bool)
    if count < 2:
        return first
    order = np.argsort(key_hashes, kind="stable")  # stable: input order within a hash
    ordered = key_hashes[order]
    repeated = np.concatenate(([False], ordered[1:] == ordered[:-1]))
    if not repeated.any():
        return first
    if keys_of is None:
        first[order[repeated]] = False
        return first
    in_group = repeated | np.concatenate((repeated[1:], [False]))
    positions = np.flatnonzero(in_group)
    rows = np.sort(order[positions])
    keys = dict(zip(rows.tolist(), keys_of(rows), strict=True))
    seen: set[str] = set()
    for position in positions.tolist():
        if not repeated[position]:
            seen = set()
        row = int(order[position])
        if keys[row] in seen:
            first[row] = False
        seen.add(keys[row])
    return first


def cap_per_creator(creators: np.ndarray, ranks: np.ndarray, max_per_creator: int) -> np.ndarray:
    """Mask of rows kept by the cap: per creator code, the ``max_per_creator`` rows with the smallest rank
    (ties by position). ``max_per_creator`` 0 keeps everything."""
    count = len(creators)
    if max_per_creator <= 0 or count == 0:
        return np.ones(count, dtype=bool)
    order = np.lexsort((np.arange(count), ranks, creators))
    sorted_creators = creators[order]
    group_start = np.concatenate(([True], sorted_creators[1:] != sorted_creators[:-1]))
    start_positions = np.flatnonzero(group_start)
    group_of = np.cumsum(group_start) - 1
    position_in_group = np.arange(count) - start_positions[group_of]
    keep = np.empty(count, dtype=bool)
    keep[order] = position_in_group < max_per_creator
    return keep
