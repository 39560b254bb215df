"""The demo run: the whole PASS system on real photos, offline, in a few minutes on a laptop CPU.

pool -> YFCC100M metadata -> select (policy ``permissive``) -> download from a loopback HTTP server -> filter
(validate, humans, privacy, dedup, cap) -> release v1 -> takedown of one key -> v2 -> pretrain tiny DINO and
MoCo-v2 -> kNN on scikit-learn's digits against the random-init backbone. Each step is one call into the real
component, in the run-folder layout of ``passkit build``:

    OUT/pool/yfcc100m_dataset  (+ pool.json: the port its URLs name, the pool's fingerprint)
    OUT/candidates.parquet, OUT/candidates.rejects.parquet
    OUT/download/  OUT/filtered/  OUT/release/v1/  OUT/release/v2/  OUT/pretrain/<preset>/  OUT/knn.json

Resume: every step skips what is already done (select's output exists, shards with a manifest, releases with a
VERSION file, runs with a backbone, knn.json), so a second run only reads its outputs back.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.console import Console

from passkit.core.manifest import KEPT
from passkit.core.shards import list_shards
from passkit.core.tar import read_shard
from passkit.demo.pool import PoolPhoto, default_pool, folder_pool
from passkit.demo.server import PoolServer, PortInUseError
from passkit.demo.yfcc_tsv import ServedPhoto, write_yfcc_tsv

POLICY = "permissive"
POLICY_WHY = (
    "policy 'permissive' (CC BY + CC0, Public Domain Mark, US Government Work, no known restrictions): most "
    "photos shipped in scikit-image and matplotlib are public domain; a PASS release uses 'cc-by'"
)
PRESETS = ("tiny-dino", "tiny-mocov2")
TSV_NAME = "yfcc100m_dataset"


class DemoError(RuntimeError):
    """The demo cannot start or continue (missing models or packages, an output folder of another pool)."""


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    pool_dir: Path | None = None  # None: the photos shipped inside scikit-image, scikit-learn and matplotlib
    humans_preset: str = "default"
    presets: tuple[str, ...] = PRESETS
    pretrain_steps: int = 200  # optimiser steps per model
    threads: int = 2
    shard_size: int = 8  # candidates per download shard (several shards, so the shard machinery shows)
    takedown: bool = True
    seed: int = 0


@dataclass
class Step:
    name: str
    seconds: float
    resumed: bool
    note: str = ""


@dataclass
class PhotoOutcome:
    photo: PoolPhoto
    key: str
    stage: str  # select | download | filter | release | takedown | kept
    reason: str  # "" when kept
    attribution: dict[str, str] | None = None  # the json stored with a kept image


@dataclass
class DemoResult:
    out: Path
    pool: list[PoolPhoto]
    funnel: list[tuple[str, int | None]]
    outcomes: list[PhotoOutcome]
    steps: list[Step] = field(default_factory=list)
    releases: dict[str, Path] = field(default_factory=dict)
    release_note: str = ""
    sums_ok: dict[str, bool] = field(default_factory=dict)
    taken_down: list[str] = field(default_factory=list)
    knn: list[dict[str, Any]] = field(default_factory=list)
    build_timings: list[tuple[str, float, bool]] = field(default_factory=list)  # passkit build's own stages
    pretrain_data: Path | None = None
    policy_why: str = POLICY_WHY

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def people_left(self) -> list[PhotoOutcome]:
        """Photos labelled as showing people that were not removed (must be empty)."""
        return [o for o in self.outcomes if o.photo.has_people and o.stage == "kept"]


def key_of(photo: PoolPhoto) -> str:
    return f"yfcc-{photo.photo_id}"


# ---------------------------------------------------------------------------------------------- models (before work)


def check_models(preset: str) -> None:
    """Every detector file of the humans preset is present (or fetchable); otherwise one error naming all of them."""
    from passkit.detect.presets import get_preset
    from passkit.detect.registry import MODELS_ENV, OFFLINE_ENV, ModelChecksumError, ModelError, get_entry, model_path

    try:
        passes = get_preset(preset).passes
    except ValueError as error:
        raise DemoError(str(error)) from error
    missing: list[tuple[Any, ModelError]] = []
    for name in sorted({p.model for p in passes}):
        try:
            model_path(name)
        except ModelError as error:
            missing.append((get_entry(name), error))
    if not missing:
        return
    lines = "\n".join(
        f"  - {entry.relpath}  <- {entry.url}"
        + ("  (present, but its sha256 differs)" if isinstance(e, ModelChecksumError) else "")
        for entry, e in missing
    )
    causes = {str(e.__cause__) for _, e in missing if e.__cause__ is not None}
    cause = f" (fetching failed: {sorted(causes)[0]})" if causes else ""
    raise DemoError(
        f"the human filter ({preset} preset) needs {len(missing)} detector file(s) that are not available{cause}:\n"
        f"{lines}\n"
        f"Provide them in one of two ways: run once with network access (they are fetched into "
        f"~/.cache/passkit/models and verified by sha256; unset {OFFLINE_ENV}), or download them by hand into "
        f"a folder DIR with that layout and set {MODELS_ENV}=DIR."
    )


def check_pretrain(presets: tuple[str, ...]) -> None:
    """The pretraining presets exist and the train extra is installed."""
    if not presets:
        return
    try:
        from passkit.ssl.presets import preset_settings
    except ImportError as error:
        raise DemoError(f"pretraining needs the train extra: pip install 'passkit[demo]' ({error})") from error
    for preset in presets:
        try:
            settings = preset_settings(preset)
        except ValueError as error:
            raise DemoError(str(error)) from error
        if settings.get("arch") not in ("vit_micro", "resnet_tiny"):
            raise DemoError(f"{preset}: the demo pretrains the tiny CPU presets only (tiny-dino, tiny-mocov2, ...)")


# ------------------------------------------------------------------------------------------------- pool + metadata


def _fingerprint(pool: list[PoolPhoto]) -> str:
    digest = hashlib.sha256()
    for photo in pool:
        digest.update(f"{photo.photo_id}\t{photo.name}\t{photo.license}\t{photo.creator}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class Metadata:
    tsv: Path
    served: list[ServedPhoto]
    port: int


def _download_complete(out: Path) -> bool:
    from passkit.download import first_pass_complete

    return (out / "candidates.parquet").is_file() and first_pass_complete(out / "download")


def _reset_downstream(out: Path) -> None:
    """The metadata changed (new port => new URLs): everything computed from it is stale."""
    for name in ("candidates.parquet", "candidates.rejects.parquet"):
        (out / name).unlink(missing_ok=True)
    for name in ("download", "filtered", "release", "pretrain"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "knn.json").unlink(missing_ok=True)


def prepare_metadata(pool: list[PoolPhoto], out: Path, server: PoolServer) -> Metadata:
    """Write the pool as YFCC100M metadata whose URLs point at ``server`` (started here unless all downloads are
    done); a resumed run keeps its metadata and port."""
    pool_dir = out / "pool"
    pool_dir.mkdir(parents=True, exist_ok=True)
    state_path = pool_dir / "pool.json"
    tsv = pool_dir / TSV_NAME
    fingerprint = _fingerprint(pool)
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if state is not None and state["fingerprint"] != fingerprint:
        raise DemoError(f"{out} holds a demo run of another pool; use another --out or delete it")
    if state is not None and tsv.is_file():
        if _download_complete(out):
            return Metadata(tsv, [], state["port"])  # nothing left to fetch: no server needed
        server.port = state["port"]
        try:
            server.start()
            served = write_yfcc_tsv(pool, tsv, server.base_url)  # same port, same bytes: same file
            server.serve(served)
            return Metadata(tsv, served, server.port)
        except PortInUseError:
            server.port = 0
            _reset_downstream(out)
    server.start()
    served = write_yfcc_tsv(pool, tsv, server.base_url)
    server.serve(served)
    state_path.write_text(json.dumps({"fingerprint": fingerprint, "port": server.port, "photos": len(pool)}) + "\n")
    return Metadata(tsv, served, server.port)


# ---------------------------------------------------------------------------------------------- pipeline steps


DEMO_TITLE = "passkit demo: people-free photos shipped in scikit-image, scikit-learn and matplotlib"


def build_config(out: Path, tsv: Path, cfg: DemoConfig) -> Any:
    """The demo's ``passkit build`` config (what ``passkit build --print-default-config`` documents)."""
    from passkit.config import from_dict

    return from_dict(
        {
            "out": str(out),
            "sources": {"paths": [f"yfcc:{tsv}"]},
            "policy": {"license": POLICY},
            "cap": {"seed": cfg.seed},
            "download": {
                "shard_size": cfg.shard_size,
                "concurrency": 8,
                "per_host": 8,
                "timeout": 20.0,
                "retries": 1,
                "backoff": 0.2,
            },
            "filter": {"humans": {"preset": cfg.humans_preset}},
            "release": {"name": "passkit-demo", "shard_size": cfg.shard_size, "title": DEMO_TITLE},
            "runner": {"workers": max(1, min(2, cfg.threads))},
        }
    )


def run_build_step(out: Path, tsv: Path, cfg: DemoConfig, console: Any) -> tuple[Any, bool]:
    """``passkit build`` (select -> download -> filter -> release v1) into OUT; returns (report, resumed)."""
    from passkit.build import BuildError, build
    from passkit.config import config_hash

    build_cfg = build_config(out, tsv, cfg)
    settings = out / "demo-build.json"
    wanted = json.dumps({"config_hash": config_hash(build_cfg)})
    if settings.is_file() and settings.read_text() != wanted:  # another preset or pool: start over from here
        _reset_downstream(out)
        (out / "config.toml").unlink(missing_ok=True)
        (out / "run.json").unlink(missing_ok=True)
    settings.write_text(wanted)
    console = console if console is not None else Console(quiet=True)
    try:
        report = build(build_cfg, console=console)
    except BuildError as error:
        raise DemoError(f"passkit build: {error}") from error
    if not report.finished or not report.balanced:
        raise DemoError(f"passkit build did not finish cleanly: {report.failed_shards[:3] or report.problems[:3]}")
    return report, all(timing.resumed for timing in report.timings)


def takedown_v2(out: Path, v1: Path) -> tuple[Path | None, list[str], bool]:
    """``passkit.release.takedown`` of one released key (the first in key order) -> OUT/release/v2."""
    from passkit.release import takedown

    target = out / "release" / "v2"
    keys_file = out / "release" / "takedown-keys.txt"
    if (target / "VERSION").is_file() and keys_file.is_file():
        return target, keys_file.read_text().split(), True
    released = released_keys(v1)
    if not released:
        return None, [], False
    keys = released[:1]
    keys_file.write_text("".join(f"{key}\n" for key in keys))
    takedown(v1, keys, target, reason="takedown")
    return target, keys, False


def verify_sha256sums(release: Path) -> bool:
    """Every file listed in SHA256SUMS has that hash, and every file of the release is listed."""
    sums = release / "SHA256SUMS"
    if not sums.is_file():
        return False
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name.lstrip("*")] = digest
    files = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    if set(listed) != files:
        return False
    return all(hashlib.sha256((release / name).read_bytes()).hexdigest() == digest for name, digest in listed.items())


def released_keys(release: Path) -> list[str]:
    return sorted(pq.read_table(release / "metadata.parquet", columns=["key"]).column("key").to_pylist())


# ---------------------------------------------------------------------------------------------- pretrain + kNN


def kept_count(data: Path) -> int:
    if (data / "metadata.parquet").is_file():
        return pq.read_metadata(data / "metadata.parquet").num_rows
    return sum(
        pq.read_table(shard.manifest, columns=["status"]).column("status").to_pylist().count(KEPT)
        for shard in list_shards(data)
    )


def pretrain_one(preset: str, data: Path, run: Path, images: int, steps: int, threads: int, seed: int) -> bool:
    """``tiny-*`` preset on ``data`` for about ``steps`` optimiser steps; returns whether it was already done."""
    from passkit.ssl.config import TrainConfig
    from passkit.ssl.presets import preset_settings
    from passkit.ssl.train import train

    if (run / "backbone.pt").is_file():
        return True
    settings = preset_settings(preset)
    batch = min(settings["batch_size"], 2 ** int(math.log2(images)))
    settings.update(
        data=str(data),
        out=str(run),
        batch_size=batch,
        epochs=max(1, math.ceil(steps / (images // batch))),
        workers=0,
        threads=threads,
        seed=seed,
        save_every=10**9,  # one checkpoint at the end: the run is a minute long
        log_every=10**9,
        progress=False,
    )
    if preset.endswith("mocov2"):
        # The queue must be a multiple of the batch and hold negatives from earlier steps of a tiny pool.
        settings["method_args"] = {**settings["method_args"], "queue_size": batch * 8}
    resume = (run / "checkpoint.pt").is_file()
    train(TrainConfig.from_dict(settings), resume=resume)
    return False


def knn_step(out: Path, runs: dict[str, Path], seed: int) -> tuple[list[dict[str, Any]], bool]:
    from passkit.demo.digits import knn_scores

    path = out / "knn.json"
    stamp = {name: (run / "backbone.pt").stat().st_mtime_ns for name, run in runs.items()}
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("stamp") == stamp:
            return saved["scores"], True
    scores = [score.__dict__ for score in knn_scores(runs, seed=seed)]
    path.write_text(json.dumps({"stamp": stamp, "scores": scores}, indent=1) + "\n")
    return scores, False


# ---------------------------------------------------------------------------------------------- outcomes + funnel


def _rows(paths: list[Path], columns: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        table = pq.read_table(path)
        rows += table.select([c for c in columns if c in table.column_names]).to_pylist()
    return rows


def collect_outcomes(
    out: Path, pool: list[PoolPhoto], release: Path | None, taken_down: list[str]
) -> list[PhotoOutcome]:
    """Where each pool photo left the pipeline, and why."""
    from passkit.download import final_rows

    by_key: dict[str, tuple[str, str]] = {}
    for row in _rows([out / "candidates.rejects.parquet"], ["key", "reason"]):
        by_key[row["key"]] = ("select", row["reason"])
    for row in final_rows(out / "download").select(["key", "status", "reason"]).to_pylist():
        if row["status"] != KEPT:
            by_key[row["key"]] = ("download", row["reason"])
    for row in _rows([s.manifest for s in list_shards(out / "filtered")], ["key", "status", "reason"]):
        if row["status"] != KEPT:
            by_key.setdefault(row["key"], ("filter", row["reason"]))
    released = set(released_keys(release)) if release is not None else None
    stored = {}
    for shard in list_shards(out / "filtered"):
        for sample in read_shard(shard.tar):
            stored[sample.key] = sample.json()
    outcomes = []
    for photo in pool:
        key = key_of(photo)
        stage, reason = by_key.get(key, ("kept", ""))
        if stage == "kept" and key in taken_down:
            stage, reason = "takedown", "takedown"
        elif stage == "kept" and released is not None and key not in released:
            stage, reason = "release", "not released"
        outcomes.append(PhotoOutcome(photo, key, stage, reason, stored.get(key)))
    return outcomes


def funnel(outcomes: list[PhotoOutcome], released: int | None) -> list[tuple[str, int | None]]:
    """Counts after each gate: pool -> license/attribution -> downloaded -> valid -> no humans -> kept -> released."""
    stage_reasons = Counter((o.stage, o.reason.split(":", 1)[0]) for o in outcomes)
    total = len(outcomes)
    after_select = total - sum(n for (stage, _), n in stage_reasons.items() if stage == "select")
    downloaded = after_select - sum(n for (stage, _), n in stage_reasons.items() if stage == "download")
    filter_removed = {prefix: n for (stage, prefix), n in stage_reasons.items() if stage == "filter"}
    valid = downloaded - filter_removed.get("image", 0) - filter_removed.get("download", 0)
    no_humans = valid - filter_removed.get("humans", 0)
    kept = downloaded - sum(filter_removed.values())
    return [
        ("pool", total),
        ("license + attribution (select)", after_select),
        ("downloaded", downloaded),
        ("valid images", valid),
        ("no humans", no_humans),
        ("kept (privacy, dedup, cap)", kept),
        ("released (v1)", released),
    ]


# ---------------------------------------------------------------------------------------------- the run


def run_demo(cfg: DemoConfig, console: Any = None, on_step: Callable[[Step], None] | None = None) -> DemoResult:
    """Run (or resume) the demo in ``cfg.out``; raises :class:`DemoError` before any work when models are missing."""
    out = cfg.out
    steps: list[Step] = []

    def timed(name: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = work()
        resumed = value[-1] if isinstance(value, tuple) else value
        step = Step(name, time.perf_counter() - started, bool(resumed))
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return value

    check_models(cfg.humans_preset)
    check_pretrain(cfg.presets)
    try:
        pool = folder_pool(cfg.pool_dir) if cfg.pool_dir is not None else default_pool()
    except (OSError, RuntimeError) as error:
        raise DemoError(str(error)) from error
    out.mkdir(parents=True, exist_ok=True)
    server = PoolServer()
    try:
        metadata, _ = timed("pool -> YFCC100M metadata", lambda: _metadata_step(pool, out, server))
        report, _ = timed(
            f"passkit build (select, download, filter with humans: {cfg.humans_preset}, release v1)",
            lambda: run_build_step(out, metadata.tsv, cfg, console),
        )
    finally:
        server.stop()

    result = DemoResult(out, pool, [], [], steps)
    result.build_timings = [(t.stage, t.seconds, t.resumed) for t in report.timings]
    if cfg.pool_dir is not None:
        result.policy_why = f"policy '{POLICY}' (CC BY + CC0, Public Domain Mark, US Government Work, no known "
        result.policy_why += "restrictions), as for the package photos; a PASS release uses 'cc-by'"
    v1 = out / "release" / "v1"
    v1 = v1 if (v1 / "VERSION").is_file() else None
    result.release_note = "" if v1 is not None else report.release
    if v1 is not None:
        result.releases["v1"] = v1
        result.sums_ok["v1"] = verify_sha256sums(v1)
        if cfg.takedown:
            v2, result.taken_down, _ = timed("takedown -> v2", lambda: takedown_v2(out, v1))
            if v2 is not None:
                result.releases["v2"] = v2
                result.sums_ok["v2"] = verify_sha256sums(v2)
    data = result.releases.get("v2") or result.releases.get("v1") or out / "filtered"
    result.pretrain_data = data
    images = kept_count(data)
    runs: dict[str, Path] = {}
    if images >= 2:
        for preset in cfg.presets:
            run = out / "pretrain" / preset
            timed(
                f"pretrain {preset}",
                lambda preset=preset, run=run: pretrain_one(
                    preset, data, run, images, cfg.pretrain_steps, cfg.threads, cfg.seed
                ),
            )
            runs[preset] = run
        if runs:
            result.knn, _ = timed("kNN on digits", lambda: knn_step(out, runs, cfg.seed))
    released = len(released_keys(v1)) if v1 is not None else None
    result.outcomes = collect_outcomes(out, pool, result.releases.get("v1"), result.taken_down)
    result.funnel = funnel(result.outcomes, released)
    if "v2" in result.releases:
        result.funnel.append((f"v2 (takedown of {len(result.taken_down)})", len(released_keys(result.releases["v2"]))))
    return result


def _metadata_step(pool: list[PoolPhoto], out: Path, server: PoolServer) -> tuple[Metadata, bool]:
    already = (out / "pool" / "pool.json").is_file() and _download_complete(out)
    return prepare_metadata(pool, out, server), already
