"""``passkit filter SHARDS --out DIR``: the per-shard stage chain, then the global dedup and cap pass.

Pass 1 (per shard, parallel, resumable): every input shard ``NNNNN.tar`` + ``NNNNN.parquet`` from the download step
goes through :func:`shard_stages` in batches; kept samples go to ``DIR/per-shard/NNNNN.tar`` and every candidate gets
one row in ``DIR/per-shard/NNNNN.parquet``: input rows that were not kept are carried over unchanged, the others
get the status/reason of the first stage that rejected them plus the measured columns of every stage that saw
them. A shard is done iff that manifest exists.

Pass 2 (global, always recomputed from the pass-1 manifests, so thresholds can change without decoding again):
evaluation-set contamination, exact and near duplicates across all shards, then the per-creator cap. The final
shards ``DIR/NNNNN.tar`` + ``DIR/NNNNN.parquet`` are the pass-1 shards with those decisions applied (a tar without
removals is hard-linked, not copied).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import track

from passkit.core.atomic import publish, temp_path_for
from passkit.core.manifest import FAILED, KEPT, REJECTED, read_manifest, write_manifest
from passkit.core.reasons import CAP_CREATOR, DEDUP_EXACT, reason_stage
from passkit.core.sample import IMAGE_EXTENSIONS, Sample
from passkit.core.shards import ShardPaths, list_shards, superseded_keys
from passkit.core.stage import StageResult
from passkit.core.tar import ShardError, ShardWriter, read_shard
from passkit.run.local import run_shards
from passkit.stages.cap import CapConfig, cap_rank
from passkit.stages.dedup import (
    EXACT_CODE,
    KEPT_CODE,
    NEAR_CODE,
    DedupArrays,
    DedupConfig,
    confirm_pixel_exact,
    decisions_of,
    dedup_arrays,
    dedup_measure_stage,
    exact_digests,
    hashes_from_hex,
    key_ranks,
    phash_hex,
)
from passkit.stages.humans import HumansConfig, humans_stage
from passkit.stages.image import DecodeError, DecodeLimits, ImageSample, decode
from passkit.stages.nsfw import NsfwConfig, nsfw_stage
from passkit.stages.pii import PiiConfig, pii_stage
from passkit.stages.privacy import PrivacyConfig, privacy_stage
from passkit.stages.validate import ValidateConfig, validate_stage

StageFunction = Callable[[list[Sample], Any], StageResult[list[Sample]]]
StageSpec = tuple[str, StageFunction, Any]

PER_SHARD_DIR = "per-shard"
IMAGE_MISSING = "image:missing"  # the input manifest says kept, but the tar holds no such sample
INPUT_STAGE = "input"
GLOBAL_COLUMNS = ("key", "status", "exact_sha256", "phash", "creator", "pixels")


@dataclass(frozen=True)
class FilterConfig:
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    humans: HumansConfig | None = field(default_factory=HumansConfig)  # None: no human filter (never for a release)
    pii: PiiConfig | None = field(default_factory=PiiConfig)  # licence plates by default; None: no PII stage
    nsfw: NsfwConfig | None = None  # optional NSFW classifier (pip install passkit[nsfw])
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    cap: CapConfig = field(default_factory=CapConfig)
    batch_size: int = 32  # samples decoded at once (memory: batch_size decoded images per worker)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


def shard_stages(cfg: FilterConfig) -> list[StageSpec]:
    """The per-shard chain, in order: (name, pure stage function, frozen config). A new stage plugs in with one
    line (e.g. PII or NSFW after humans); dedup's measurement stays last. The human filter runs on validated
    images before privacy re-encodes them, so rejected images cost no re-encoding."""
    validate_cfg = cfg.validate
    if validate_cfg.decode_max_side is None and cfg.privacy.resize_max_side is not None:
        validate_cfg = replace(validate_cfg, decode_max_side=cfg.privacy.resize_max_side)
    if cfg.dedup.exact_key == "pixels":  # the exact hash needs every pixel: decode once, in full
        validate_cfg = replace(validate_cfg, analysis_side=None)
    humans = [("humans", humans_stage, cfg.humans)] if cfg.humans is not None else []
    pii = [("pii", pii_stage, cfg.pii)] if cfg.pii is not None else []
    nsfw = [("nsfw", nsfw_stage, cfg.nsfw)] if cfg.nsfw is not None else []
    return [
        ("validate", validate_stage, validate_cfg),
        *humans,
        *pii,
        *nsfw,
        ("privacy", privacy_stage, cfg.privacy),
        ("dedup", dedup_measure_stage, cfg.dedup),
    ]


def require_models(cfg: FilterConfig) -> None:
    """Fail before any work when a model of an enabled stage (humans, PII, NSFW) is missing or corrupt."""
    from passkit.detect.presets import get_preset
    from passkit.detect.registry import model_path

    models: set[str] = set()
    if cfg.humans is not None:
        models |= {p.model for p in get_preset(cfg.humans.preset).passes}
    if cfg.pii is not None:
        models |= set(cfg.pii.models)
    if cfg.nsfw is not None:
        models.add(cfg.nsfw.model)
    for model in sorted(models):
        model_path(model)


@dataclass(frozen=True)
class ShardTask:
    source: ShardPaths
    staged: ShardPaths
    stages: tuple[StageSpec, ...]
    batch_size: int
    superseded: frozenset[str] = frozenset()  # keys whose current row is in a later input shard (retry rounds)


@dataclass
class ShardOutcome:
    shard: str
    rows: int
    kept: int
    problems: list[str] = field(default_factory=list)


def _batches(samples: Iterator[Sample], size: int, problems: list[str]) -> Iterator[list[Sample]]:
    batch: list[Sample] = []
    try:
        for sample in samples:
            batch.append(sample)
            if len(batch) >= size:
                yield batch
                batch = []
    except ShardError as error:
        problems.append(str(error))
    if batch:
        yield batch


def _run_chain(batch: list[Sample], stages: Sequence[StageSpec], rows: dict[str, dict[str, Any]]) -> list[Sample]:
    current = batch
    for name, stage, cfg in stages:
        if not current:
            break
        result = stage(current, cfg)
        result.check([sample.key for sample in current], stage=name)
        for row in result.rows.to_pylist():
            merged = rows[row["key"]]
            status, reason = row.pop("status"), row.pop("reason")
            row.pop("key")
            merged.update(row)
            if status != KEPT:
                merged.update(status=status, reason=reason, filter_stage=name)
        current = result.kept
    return current


def _table(rows: list[dict[str, Any]], like: pa.Schema | None) -> pa.Table:
    columns: dict[str, None] = dict.fromkeys(("key", "status", "reason"))
    for row in rows:
        columns.update(dict.fromkeys(row))
    table = pa.Table.from_pylist([{name: row.get(name) for name in columns} for row in rows])
    if like is None:
        return table
    for input_field in like:  # keep the input's column types where the values allow
        if input_field.name in table.column_names and table.schema.field(input_field.name).type != input_field.type:
            index = table.column_names.index(input_field.name)
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                table = table.set_column(index, input_field, table.column(index).cast(input_field.type))
    return table


def filter_shard(task: ShardTask) -> ShardOutcome:
    """Pass 1 for one shard: run the stage chain, write kept samples and one row per candidate."""
    source = read_manifest(task.source.manifest)
    input_rows = {row["key"]: row for row in source.to_pylist() if row["key"] not in task.superseded}
    rows: dict[str, dict[str, Any]] = {key: dict(row) for key, row in input_rows.items() if row["status"] == KEPT}
    problems: list[str] = []
    seen: set[str] = set()
    kept = 0

    def candidates() -> Iterator[Sample]:
        if not task.source.tar.exists():
            if rows:
                problems.append(f"{task.source.tar} missing")
            return
        for sample in read_shard(task.source.tar):
            row = input_rows.get(sample.key)
            if sample.key in task.superseded or (row is not None and row["status"] != KEPT):
                continue  # rejected upstream: its row is carried over as it is
            if row is None:
                rows[sample.key] = {"key": sample.key, "status": KEPT, "reason": ""}
            seen.add(sample.key)
            yield ImageSample(sample.key, sample.parts)

    with ShardWriter(task.staged.tar) as writer:
        for batch in _batches(candidates(), task.batch_size, problems):
            for sample in _run_chain(batch, task.stages, rows):
                writer.write(Sample(sample.key, dict(sample.parts)))
                kept += 1
    for key, row in rows.items():
        if key not in seen:
            row.update(status=FAILED, reason=IMAGE_MISSING, filter_stage=INPUT_STAGE)
    carried = [row for key, row in input_rows.items() if key not in rows]
    table = _table(carried + list(rows.values()), source.schema)
    write_manifest(task.staged.manifest, table, expected_keys=set(input_rows) | set(rows))
    return ShardOutcome(task.source.name, table.num_rows, kept, problems)


# ---- evaluation set -------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = {f".{ext}" for ext in IMAGE_EXTENSIONS} | {".avif", ".heic"}


@dataclass
class EvalSet:
    ids: list[str] = field(default_factory=list)
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    unreadable: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def _eval_items(path: Path) -> Iterator[tuple[str, bytes | str]]:
    """(id, image bytes) or (id, phash hex) for everything an evaluation-set path holds."""
    if path.is_file() and path.suffix == ".parquet":
        table = pq.read_table(path)
        ids = table.column("key" if "key" in table.column_names else "id").to_pylist()
        yield from zip((f"{path.name}:{i}" for i in ids), table.column("phash").to_pylist(), strict=True)
    elif path.is_file() and path.suffix == ".tar":
        for sample in read_shard(path, strict_keys=False):
            ext = sample.image_ext()
            if ext is not None:
                yield f"{path.name}:{sample.key}", sample.parts[ext]
    elif path.is_file():
        yield str(path), path.read_bytes()
    elif path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.suffix == ".tar" or child.suffix.lower() in IMAGE_SUFFIXES:
                yield from _eval_items(child)
    else:
        raise FileNotFoundError(f"evaluation set {path} does not exist")


def load_eval_set(paths: Iterable[str | os.PathLike[str]], limits: DecodeLimits | None = None) -> EvalSet:
    """pHashes of a user's evaluation set: image folders, shard tars, or a parquet with ``phash`` (+ key/id)."""
    result = EvalSet()
    hex_hashes: list[str] = []
    for path in paths:
        for item_id, payload in _eval_items(Path(path)):
            if isinstance(payload, str):
                hex_hashes.append(payload)
                result.ids.append(item_id)
                continue
            try:
                hex_hashes.append(phash_hex(decode(payload, limits or DecodeLimits())))
            except DecodeError as error:
                result.unreadable.append(f"{item_id}: {error}")
                continue
            result.ids.append(item_id)
    result.hashes = hashes_from_hex(hex_hashes)
    return result


# ---- global pass ------------------------------------------------------------------------------------------------


def _global_columns(manifest: Path) -> pa.Table:
    names = pq.read_schema(manifest).names
    table = pq.read_table(manifest, columns=[name for name in GLOBAL_COLUMNS if name in names])
    for name in GLOBAL_COLUMNS:
        if name not in table.column_names:
            kind = pa.int64() if name == "pixels" else pa.string()
            table = table.append_column(name, pa.nulls(table.num_rows, kind))
    return table.filter(pc.equal(table.column("status"), KEPT)).select(list(GLOBAL_COLUMNS))


def stored_images(staged: Sequence[ShardPaths], keys: set[str]) -> Iterator[tuple[str, bytes]]:
    """(key, image bytes) of the given keys from pass-1 shards, reading only the shards that hold them."""
    for shard in staged:
        wanted = set(pq.read_table(shard.manifest, columns=["key"]).column("key").to_pylist()) & keys
        if not wanted:
            continue
        for sample in read_shard(shard.tar):
            ext = sample.image_ext()
            if sample.key in wanted and ext is not None:
                yield sample.key, sample.parts[ext]


@dataclass(frozen=True)
class GlobalDecision:
    stage: str
    reason: str
    dup_of: str = ""
    distance: int | None = None


NO_CREATOR = -1


@dataclass
class KeptColumns:
    """What the global pass needs of every kept pass-1 row, shard after shard, in fixed-width arrays: the only
    state that grows with the dataset (about 90 bytes a row: the key as Arrow text, 32-byte exact digest, pHash,
    pixels, creator code; the creator names once each)."""

    keys: list[pa.Array] = field(default_factory=list)
    offsets: list[int] = field(default_factory=lambda: [0])
    hashes: list[np.ndarray] = field(default_factory=list)
    has_phash: list[np.ndarray] = field(default_factory=list)
    digests: list[np.ndarray] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)
    creators: list[np.ndarray] = field(default_factory=list)
    creator_codes: dict[str, int] = field(default_factory=dict)

    def add(self, manifest: Path, exact: bool) -> None:
        table = _global_columns(manifest)
        rows = table.num_rows
        self.keys.append(table.column("key").combine_chunks().cast(pa.string()))
        self.offsets.append(self.offsets[-1] + rows)
        phash = table.column("phash")
        present = pc.is_valid(phash).to_numpy(zero_copy_only=False)
        hashes = np.zeros(rows, np.uint64)
        hashes[present] = hashes_from_hex(phash.drop_null().to_pylist())
        self.hashes.append(hashes)
        self.has_phash.append(present)
        if exact:
            self.digests.append(exact_digests(table.column("exact_sha256").to_pylist()))
        pixels = table.column("pixels").fill_null(0).to_numpy(zero_copy_only=False)
        self.pixels.append(np.asarray(pixels, np.int64))
        codes = np.full(rows, NO_CREATOR, np.int32)
        for row, creator in enumerate(table.column("creator").to_pylist()):
            if creator:
                codes[row] = self.creator_codes.setdefault(creator, len(self.creator_codes))
        self.creators.append(codes)


class GlobalDecisions:
    """Dedup and cap decisions over every kept pass-1 row, as arrays; :meth:`for_shard` names one shard's."""

    def __init__(self, keys: pa.ChunkedArray, offsets: np.ndarray, dedup: DedupArrays, capped: np.ndarray,
                 eval_ids: Sequence[str]) -> None:  # fmt: skip
        self.keys, self.offsets, self.dedup, self.capped, self.eval_ids = keys, offsets, dedup, capped, eval_ids

    def __len__(self) -> int:
        return int(np.count_nonzero(self.dedup.reason) + np.count_nonzero(self.capped))

    def for_shard(self, position: int) -> dict[str, GlobalDecision]:
        """``{key: decision}`` for the rejected rows of the ``position``-th shard given to :func:`global_decisions`."""
        if len(self.offsets) < 2:
            return {}
        rows = np.arange(self.offsets[position], self.offsets[position + 1])
        decisions = {
            key: GlobalDecision("dedup", decision.reason, decision.dup_of, decision.distance)
            for key, decision in decisions_of(self.dedup, rows, self.keys, self.eval_ids).items()
        }
        capped = rows[self.capped[rows]]
        for key in self.keys.take(pa.array(capped, pa.int64())).to_pylist():
            decisions[key] = GlobalDecision("cap", CAP_CREATOR)
        return decisions


def global_decisions(staged: Sequence[ShardPaths], cfg: FilterConfig, eval_set: EvalSet | None) -> GlobalDecisions:
    """Dedup (eval-set, exact, near) and then cap over the kept rows of every pass-1 shard."""
    columns = KeptColumns()
    for shard in staged:
        columns.add(shard.manifest, cfg.dedup.exact)
    keys = pa.chunked_array(columns.keys, pa.string())
    offsets = np.array(columns.offsets, np.int64)
    rows = int(offsets[-1])

    def joined(parts: list[np.ndarray], dtype: Any, shape: tuple[int, ...] = ()) -> np.ndarray:
        """One array of the per-shard parts, which are let go at once (never two copies of every column)."""
        whole = np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)
        parts.clear()
        return whole

    hashes, has_phash = joined(columns.hashes, np.uint64), joined(columns.has_phash, bool)
    creators = joined(columns.creators, np.int32)
    measured = np.flatnonzero(has_phash)
    digests = joined(columns.digests, np.uint64, (4,))[measured] if cfg.dedup.exact else None
    pixels = joined(columns.pixels, np.int64)[measured]
    del columns
    ranks = key_ranks(keys)[measured] if rows else np.zeros(0, np.int64)
    found = dedup_arrays(ranks, digests, hashes[measured], pixels, cfg.dedup, eval_set.hashes if eval_set else None)
    dedup = DedupArrays.empty(rows)
    dedup.reason[measured], dedup.distance[measured] = found.reason, found.distance
    inside = (found.reason == EXACT_CODE) | (found.reason == NEAR_CODE)
    dup_of = found.dup_of.copy()
    dup_of[inside] = measured[found.dup_of[inside]]
    dedup.dup_of[measured] = dup_of
    eval_ids = eval_set.ids if eval_set is not None else ()
    if cfg.dedup.exact and cfg.dedup.exact_key == "stored":
        _confirm_pixel_exact(dedup, keys, hashes, has_phash, staged, cfg.validate.limits)
    capped = np.zeros(rows, dtype=bool)
    if cfg.cap.max_per_creator is not None:
        survivors = (dedup.reason == KEPT_CODE) & (creators != NO_CREATOR)
        counts = np.bincount(creators[survivors], minlength=1)
        over = np.flatnonzero(counts > cfg.cap.max_per_creator)
        if len(over):
            members = np.flatnonzero(survivors & np.isin(creators, over))
            names = keys.take(pa.array(members, pa.int64())).to_pylist()
            ranked = sorted(
                zip(creators[members].tolist(), (cap_rank(cfg.cap.seed, key) for key in names), members.tolist(),
                    strict=True)
            )  # fmt: skip
            seen: dict[int, int] = {}
            for creator, _, row in ranked:
                seen[creator] = seen.get(creator, 0) + 1
                if seen[creator] > cfg.cap.max_per_creator:
                    capped[row] = True
    return GlobalDecisions(keys, offsets, dedup, capped, eval_ids)


def _confirm_pixel_exact(
    dedup: DedupArrays,
    keys: pa.ChunkedArray,
    hashes: np.ndarray,
    has_phash: np.ndarray,
    staged: Sequence[ShardPaths],
    limits: DecodeLimits,
) -> None:
    """Near duplicates pixel-identical to an earlier copy become exact ones (see ``confirm_pixel_exact``); only the
    rows of pHash groups that hold a near duplicate are looked at."""
    near = np.flatnonzero(dedup.reason == NEAR_CODE)
    if len(near) == 0:
        return
    members = np.flatnonzero(has_phash & np.isin(hashes, hashes[near]))
    member_keys = keys.take(pa.array(members, pa.int64())).to_pylist()
    row_of = dict(zip(member_keys, members.tolist(), strict=True))
    near_decisions = decisions_of(dedup, near, keys)
    measured = pa.table({"key": member_keys, "phash": pa.array(hashes[members], pa.uint64())})
    confirmed = confirm_pixel_exact(near_decisions, measured, lambda wanted: stored_images(staged, wanted), limits)
    for key, decision in confirmed.items():
        if decision.reason == DEDUP_EXACT and near_decisions[key].reason != DEDUP_EXACT:
            row = row_of[key]
            dedup.reason[row], dedup.dup_of[row], dedup.distance[row] = EXACT_CODE, row_of[decision.dup_of], 0


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists() and target.samefile(source):
        return  # already linked by an earlier (interrupted) global pass; renaming a link onto itself is a no-op
    temp = temp_path_for(target)
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    publish(temp, target)


def apply_decisions(staged: ShardPaths, final: ShardPaths, decisions: dict[str, GlobalDecision]) -> None:
    table = read_manifest(staged.manifest)
    keys = table.column("key").to_pylist()
    removed = {key for key in keys if key in decisions}
    rows = table.to_pylist()
    for row in rows:
        row.setdefault("dup_of", None)
        row.setdefault("dup_distance", None)
        decision = decisions.get(row["key"])
        if decision is not None and row["status"] == KEPT:
            row.update(
                status=REJECTED,
                reason=decision.reason,
                filter_stage=decision.stage,
                dup_of=decision.dup_of,
                dup_distance=decision.distance,
            )
    if removed:
        with ShardWriter(final.tar) as writer:
            for sample in read_shard(staged.tar):
                if sample.key not in removed:
                    writer.write(sample)
    else:
        _link_or_copy(staged.tar, final.tar)
    write_manifest(final.manifest, _table(rows, table.schema), expected_keys=keys)


# ---- the whole run ----------------------------------------------------------------------------------------------


@dataclass
class FilterSummary:
    input_shards: int = 0
    unfinished_inputs: list[str] = field(default_factory=list)
    processed: int = 0
    resumed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (stage, status/reason) -> rows
    input_rows: int = 0  # rows of the input manifests
    unlisted_samples: int = 0  # samples found in input tars without an input manifest row (they get a row too)
    eval_images: int = 0
    eval_unreadable: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def kept(self) -> int:
        return sum(count for (_, label), count in self.counts.items() if label == KEPT)

    @property
    def ok(self) -> bool:
        return not self.failed and self.rows == self.input_rows + self.unlisted_samples


def _count(summary: FilterSummary, manifest: Path) -> None:
    table = pq.read_table(manifest)
    stages = (
        table.column("filter_stage").to_pylist() if "filter_stage" in table.column_names else [None] * table.num_rows
    )
    for status, reason, stage in zip(
        table.column("status").to_pylist(), table.column("reason").to_pylist(), stages, strict=True
    ):
        label = KEPT if status == KEPT else reason
        where = "kept" if status == KEPT else (stage or f"{INPUT_STAGE} ({reason_stage(reason)})")
        summary.counts[(where, label)] = summary.counts.get((where, label), 0) + 1


def run_filter(
    shards_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: FilterConfig | None = None,
    *,
    workers: int = 1,
    exclude_near: Sequence[str | os.PathLike[str]] = (),
    stages: Sequence[StageSpec] | None = None,
    console: Any = None,
) -> FilterSummary:
    cfg = cfg or FilterConfig()
    chain = tuple(stages if stages is not None else shard_stages(cfg))
    out = Path(out_dir)
    staged_root = out / PER_SHARD_DIR
    summary = FilterSummary()
    inputs = list_shards(shards_dir, done_only=False)
    if not inputs:
        raise FileNotFoundError(f"no shards (NNNNN.tar + NNNNN.parquet) in {shards_dir}")
    if stages is None:
        require_models(cfg)
    summary.input_shards = len(inputs)
    summary.unfinished_inputs = [shard.name for shard in inputs if not shard.done]
    finished = [shard for shard in inputs if shard.done]
    stale = superseded_keys(finished)
    tasks = [
        ShardTask(
            shard, ShardPaths(staged_root, shard.index), chain, cfg.batch_size, stale.get(shard.index, frozenset())
        )
        for shard in finished
    ]
    eval_set = load_eval_set(exclude_near, cfg.validate.limits) if exclude_near else None
    if eval_set is not None:
        summary.eval_images = len(eval_set)
        summary.eval_unreadable = eval_set.unreadable
    report = run_shards(
        tasks,
        filter_shard,
        workers=workers,
        description="filter shards",
        is_done=lambda task: task.staged.done,
        console=console,
    )
    summary.processed = len(report.results)
    summary.resumed = len(report.skipped)
    summary.failed = [(task.source.name, error) for task, error in report.failed]
    for task, outcome in report.results:
        summary.problems += [f"{task.source.name}: {problem}" for problem in outcome.problems]
    done = [task for task in tasks if task.staged.done]
    decisions = global_decisions([task.staged for task in done], cfg, eval_set)
    for position, task in enumerate(track(done, description="dedup + cap", console=console or Console(stderr=True))):
        final = ShardPaths(out, task.source.index)
        apply_decisions(task.staged, final, decisions.for_shard(position))
        input_keys = set(pq.read_table(task.source.manifest, columns=["key"]).column("key").to_pylist())
        input_keys -= task.superseded
        final_keys = set(pq.read_table(final.manifest, columns=["key"]).column("key").to_pylist())
        summary.input_rows += len(input_keys)
        summary.unlisted_samples += len(final_keys - input_keys)
        _count(summary, final.manifest)
    return summary


def print_summary(summary: FilterSummary, shards_dir: Path, out_dir: Path, console: Any) -> None:
    """One screen: rows per stage and reason (they add up to the candidates), shards, problems."""
    from rich.table import Table

    table = Table(title=f"passkit filter {shards_dir} -> {out_dir}")
    for column, justify in (("stage", "left"), ("status / reason", "left"), ("rows", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    order = {"input": 0, "validate": 1, "humans": 2, "pii": 3, "nsfw": 4, "privacy": 5, "dedup": 8, "cap": 9}
    order["kept"] = 10
    for (stage, label), count in sorted(
        summary.counts.items(), key=lambda item: (order.get(item[0][0].split(" ")[0], 5), item[0][0], -item[1])
    ):
        table.add_row(stage, label, f"{count:,}")
    table.add_row("[bold]total[/]", "", f"[bold]{summary.rows:,}[/]")
    console.print(table)
    added = f" + {summary.unlisted_samples:,} samples without an input row" if summary.unlisted_samples else ""
    verdict = "[green]add up[/]" if summary.rows == summary.input_rows + summary.unlisted_samples else "[red]DIFFER[/]"
    console.print(f"candidates: {summary.input_rows:,} input manifest rows{added}; output rows {verdict}")
    console.print(
        f"shards: {summary.input_shards} input, {summary.processed} filtered, {summary.resumed} resumed, "
        f"{len(summary.failed)} failed, {len(summary.unfinished_inputs)} unfinished inputs skipped"
    )
    if summary.eval_images or summary.eval_unreadable:
        unreadable = len(summary.eval_unreadable)
        console.print(f"evaluation set: {summary.eval_images:,} images hashed, {unreadable} unreadable")
    for name, error in summary.failed[:10]:
        console.print(f"[red]shard {name} failed (rerun to retry): {error}[/]")
    for problem in summary.problems[:10]:
        console.print(f"[yellow]{problem}[/]")
    console.print(f"kept: [bold]{summary.kept:,}[/] images in {out_dir}; check with `passkit verify {out_dir}`")
