"""``passkit build`` configuration: one TOML file -> frozen dataclasses, checked before any work starts.

The TOML tables map onto the stages' own config dataclasses (``SelectConfig``, ``DownloadConfig``,
``ValidateConfig``, ``HumansConfig``, ``PrivacyConfig``, ``DedupConfig``, ``CapConfig``, ``FilterConfig``): names,
types and defaults come from those classes; this module adds only what the build itself needs (sources, shard
size, runner, release options) and one line of documentation per key. Unknown keys and bad values are a
:class:`ConfigError` naming the key path, e.g. ``filter.humans.threshold: expected a number in [0, 1], got "high"``.

:func:`render` writes a config back as commented TOML: with the defaults it is the example that
``passkit build --print-default-config`` prints (and that loads back to the defaults); with a loaded config it is
the resolved ``RUN/config.toml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from passkit.detect.presets import PRESETS
from passkit.download.config import DownloadConfig, parse_size
from passkit.download.runner import DEFAULT_SHARD_SIZE
from passkit.run.filter import FilterConfig
from passkit.stages.cap import CapConfig
from passkit.stages.dedup import DedupConfig
from passkit.stages.humans import HumansConfig
from passkit.stages.nsfw import NsfwConfig
from passkit.stages.pii import PiiConfig
from passkit.stages.privacy import PrivacyConfig
from passkit.stages.select import SelectConfig
from passkit.stages.validate import ValidateConfig

RUNNERS = ("local", "ray")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key path."""


# ---- the build's own settings (everything else belongs to a stage's dataclass) -----------------------------------


@dataclass(frozen=True)
class OutputConfig:
    out: str = "passkit-run"


@dataclass(frozen=True)
class SourcesConfig:
    paths: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    source_name: str = ""


@dataclass(frozen=True)
class ShardingConfig:
    shard_size: int = DEFAULT_SHARD_SIZE


@dataclass(frozen=True)
class HumansOptions:
    enabled: bool = True
    models: str = ""


@dataclass(frozen=True)
class PiiOptions:
    enabled: bool = True


@dataclass(frozen=True)
class NsfwOptions:
    enabled: bool = False


@dataclass(frozen=True)
class DedupOptions:
    exclude_near: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReleaseOptions:
    """What the build hands to the release step (``passkit.release.ReleaseConfig``)."""

    enabled: bool = True
    name: str = "pass"
    shard_size: int = 5000
    layout_folder: bool = False
    include_gps: bool = False
    title: str = "PASS-style people-free image dataset"
    description: str = ""
    url: str = ""
    contact: str = ""
    date_published: str = ""


@dataclass(frozen=True)
class RunnerConfig:
    kind: str = "local"
    workers: int = 2
    ray_address: str = ""
    filter_actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0


@dataclass(frozen=True)
class BuildConfig:
    output: OutputConfig = field(default_factory=OutputConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    sharding: ShardingConfig = field(default_factory=ShardingConfig)
    filter: FilterConfig = field(default_factory=lambda: FilterConfig(nsfw=NsfwConfig()))
    """With ``humans``, ``pii`` and ``nsfw`` always set; :attr:`filter_config` drops the ones switched off."""
    humans_options: HumansOptions = field(default_factory=HumansOptions)
    pii_options: PiiOptions = field(default_factory=PiiOptions)
    nsfw_options: NsfwOptions = field(default_factory=NsfwOptions)
    dedup_options: DedupOptions = field(default_factory=DedupOptions)
    release: ReleaseOptions = field(default_factory=ReleaseOptions)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    @property
    def out(self) -> Path:
        return Path(self.output.out)

    @property
    def filter_config(self) -> FilterConfig:
        return replace(
            self.filter,
            humans=self.filter.humans if self.humans_options.enabled else None,
            pii=self.filter.pii if self.pii_options.enabled else None,
            nsfw=self.filter.nsfw if self.nsfw_options.enabled else None,
        )

    def parts(self) -> dict[type, Any]:
        """Each config dataclass instance of this build, by class (what the schema reads and writes)."""
        return {
            OutputConfig: self.output,
            SourcesConfig: self.sources,
            SelectConfig: self.select,
            DownloadConfig: self.download,
            ShardingConfig: self.sharding,
            FilterConfig: self.filter,
            ValidateConfig: self.filter.validate,
            HumansConfig: self.filter.humans,
            HumansOptions: self.humans_options,
            PiiConfig: self.filter.pii,
            PiiOptions: self.pii_options,
            NsfwConfig: self.filter.nsfw,
            NsfwOptions: self.nsfw_options,
            PrivacyConfig: self.filter.privacy,
            DedupConfig: self.filter.dedup,
            DedupOptions: self.dedup_options,
            CapConfig: self.filter.cap,
            ReleaseOptions: self.release,
            RunnerConfig: self.runner,
        }


# ---- the schema: TOML key -> (dataclass, attribute), with its documentation and checks -------------------------


@dataclass(frozen=True)
class Key:
    name: str
    targets: tuple[tuple[type, str], ...]
    doc: str
    expect: str = ""  # what a valid value is, when more than its type ("a number in [0, 1]")
    check: Callable[[Any], bool] | None = None
    zero_is_none: bool = False  # 0 in TOML means None in the dataclass ("no cap", "keep the size")
    path_like: bool = False  # resolved against the config file's folder
    example: Any = None  # shown (commented out) for a setting whose default is "unset"


@dataclass(frozen=True)
class Section:
    name: str  # "" for the top level, "filter.humans" for a sub-table
    doc: str
    keys: tuple[Key, ...]


def _key(name: str, cls: type, doc: str, attr: str | None = None, **options: Any) -> Key:
    return Key(name, ((cls, attr or name),), doc, **options)


def _between(low: float, high: float) -> Callable[[Any], bool]:
    return lambda value: low <= value <= high


def _at_least(low: float) -> Callable[[Any], bool]:
    return lambda value: value >= low


def _onnx_runtime_keys(cls: type) -> tuple[Key, Key]:
    """``threads`` and ``device`` of a detector stage's config (humans, pii, nsfw)."""
    return (
        _key("threads", cls, "onnxruntime threads per worker", expect="an integer >= 1", check=_at_least(1)),
        _key(
            "device",
            cls,
            "auto | cpu | cuda",
            expect="one of auto, cpu, cuda",
            check=lambda value: value in ("auto", "cpu", "cuda"),
        ),
    )


SCHEMA: tuple[Section, ...] = (
    Section(
        "",
        "passkit build configuration. Relative paths are relative to this file's folder.",
        (
            _key(
                "out",
                OutputConfig,
                "run folder (RUN): candidates, download/, filtered/, release/, run.json",
                path_like=True,
            ),
        ),
    ),
    Section(
        "sources",
        "The pool: YFCC100M metadata (plain/.bz2/.gz), url tables (.csv/.tsv/.parquet/.jsonl) or image folders.",
        (
            _key(
                "paths", SourcesConfig, "source specs; prefix yfcc:, table: or folder: to force a kind", path_like=True
            ),
            _key("columns", SourcesConfig, 'table column mapping, e.g. { url = "image_url", creator = "owner" }'),
            _key(
                "source_name", SourcesConfig, "key prefix of tables (default 'url') and folders (default: folder name)"
            ),
        ),
    ),
    Section(
        "policy",
        "License policy and attribution (select).",
        (
            _key("license", SelectConfig, "cc-by (PASS) | permissive | a list like 'CC-BY-4.0,CC-BY-SA-*'", "policy"),
            _key("require_title", SelectConfig, "reject records without a title"),
        ),
    ),
    Section(
        "cap",
        "Per-photographer cap: applied in select (before download) and again after dedup (final).",
        (
            Key(
                "max_per_creator",
                ((SelectConfig, "max_per_creator"), (CapConfig, "max_per_creator")),
                "images per creator (PASS: 80; 0 = no cap)",
                "an integer >= 0",
                _at_least(0),
                zero_is_none=True,
            ),
            _key("seed", SelectConfig, "seed of the hash that picks which records a capped creator keeps in select"),
            _key("final_seed", CapConfig, "seed string of the final cap's ranking", "seed"),
        ),
    ),
    Section(
        "download",
        "Fetching (passkit download): politeness, limits, shard size.",
        (
            _key(
                "shard_size",
                ShardingConfig,
                "candidates per shard (fixed for a run once started)",
                expect="an integer >= 1",
                check=_at_least(1),
            ),
            _key("concurrency", DownloadConfig, "requests in flight per worker process"),
            _key("per_host", DownloadConfig, "connections to one host at a time, per worker process"),
            _key("timeout", DownloadConfig, "seconds one attempt may take, body included"),
            _key("connect_timeout", DownloadConfig, "seconds to open a connection"),
            _key("retries", DownloadConfig, "further attempts after a timeout, connection error, 429 or 5xx"),
            _key("backoff", DownloadConfig, "base of the exponential backoff, seconds"),
            _key("max_backoff", DownloadConfig, "longest backoff, seconds"),
            _key("max_retry_after", DownloadConfig, "a longer Retry-After is not waited for (the row fails)"),
            _key("max_redirects", DownloadConfig, "redirects followed per request"),
            _key("max_bytes", DownloadConfig, 'largest body accepted: bytes or a size like "32MB", "500KiB"'),
            _key("user_agent", DownloadConfig, "User-Agent header"),
            _key("opt_out", DownloadConfig, "X-Robots-Tag directives that exclude an image ([] ignores the header)"),
            _key("trust_env", DownloadConfig, "honour HTTP(S)_PROXY / NO_PROXY and ~/.netrc"),
        ),
    ),
    Section(
        "filter",
        "The per-shard filter chain: validate -> humans -> privacy -> dedup measurement.",
        (
            _key(
                "batch_size",
                FilterConfig,
                "images decoded at once per worker",
                expect="an integer >= 1",
                check=_at_least(1),
            ),
        ),
    ),
    Section(
        "filter.validate",
        "Image validation.",
        (
            _key("max_pixels", ValidateConfig, "decompression-bomb limit (pixels)"),
            _key("min_side", ValidateConfig, "reject images whose short side is smaller (pixels)"),
            _key("max_aspect", ValidateConfig, "reject images with a larger aspect ratio"),
            _key("min_std", ValidateConfig, "reject near-single-colour images (grey-level std)"),
            _key("min_entropy", ValidateConfig, "reject near-empty images (histogram entropy, bits)"),
        ),
    ),
    Section(
        "filter.humans",
        "The human filter (detector ensemble). Never turn it off for a release.",
        (
            _key("enabled", HumansOptions, "run the human filter"),
            _key(
                "preset",
                HumansConfig,
                f"detector preset: {' | '.join(PRESETS)}",
                expect=f"one of {', '.join(PRESETS)}",
                check=lambda value: value in PRESETS,
            ),
            _key(
                "threshold",
                HumansConfig,
                "fused-score threshold (omit: the preset's calibrated one)",
                expect="a number in [0, 1]",
                check=_between(0.0, 1.0),
                example=0.5,
            ),
            *_onnx_runtime_keys(HumansConfig),
            _key("boxes_per_pass", HumansConfig, "boxes kept in the manifest per model and view"),
            _key(
                "models",
                HumansOptions,
                "folder of pre-downloaded models (sets PASSKIT_MODELS; '' = cache/download)",
                path_like=True,
            ),
        ),
    ),
    Section(
        "filter.pii",
        "Personal information: licence plates (on) and document-like or handwritten text (off; PASS kept signs).",
        (
            _key("enabled", PiiOptions, "run the PII stage (scene-text detector + plate reader)"),
            _key("plate", PiiConfig, "reject licence-plate-like text (pii:plate)"),
            _key("text", PiiConfig, "reject document-like or handwritten text blocks (pii:text)"),
            _key(
                "max_side",
                PiiConfig,
                "long side of the text detector's input",
                expect="an integer >= 32",
                check=_at_least(32),
            ),
            _key(
                "det_thresh",
                PiiConfig,
                "binarisation threshold of the text-probability map",
                expect="a number in [0, 1]",
                check=_between(0.0, 1.0),
            ),
            _key(
                "box_thresh",
                PiiConfig,
                "minimum mean text probability of a line",
                expect="a number in [0, 1]",
                check=_between(0.0, 1.0),
            ),
            _key(
                "plate_threshold",
                PiiConfig,
                "plate score threshold (detector score x recognition confidence)",
                expect="a number in [0, 1]",
                check=_between(0.0, 1.0),
            ),
            _key("plate_needs_letter", PiiConfig, "digits-only strings (house or fleet numbers) are not plates"),
            _key(
                "text_min_lines",
                PiiConfig,
                "pii:text: small text lines needed",
                expect="an integer >= 1",
                check=_at_least(1),
            ),
            _key(
                "text_min_area",
                PiiConfig,
                "pii:text: image fraction those lines cover",
                expect="a number in [0, 1]",
                check=_between(0.0, 1.0),
            ),
            *_onnx_runtime_keys(PiiConfig),
        ),
    ),
    Section(
        "filter.nsfw",
        "Explicit content (open_nsfw classifier; pip install passkit[nsfw]). Off by default.",
        (
            _key("enabled", NsfwOptions, "run the NSFW stage"),
            _key(
                "threshold",
                NsfwConfig,
                "reject at P(nsfw) >= threshold",
                expect="a number in [0, 1]",
                check=_between(0.0, 1.0),
            ),
            *_onnx_runtime_keys(NsfwConfig),
        ),
    ),
    Section(
        "privacy",
        "What is stored: metadata-free images, geo dropped from the attribution json.",
        (
            _key(
                "resize_max_side",
                PrivacyConfig,
                "store images at this longer side (0 = original size)",
                expect="0 or an integer >= 16",
                check=lambda value: value == 0 or value >= 16,
                zero_is_none=True,
            ),
            _key(
                "jpeg_quality",
                PrivacyConfig,
                "JPEG quality of re-encoded images",
                expect="an integer in [1, 100]",
                check=_between(1, 100),
            ),
            _key(
                "png_compress_level",
                PrivacyConfig,
                "PNG compression level of re-encoded images",
                expect="an integer in [0, 9]",
                check=_between(0, 9),
            ),
            _key("keep_geo", PrivacyConfig, "keep latitude/longitude in the attribution json"),
        ),
    ),
    Section(
        "dedup",
        "Duplicates: exact, near (pHash) and against evaluation sets.",
        (
            _key("exact", DedupConfig, "drop exact duplicates"),
            _key(
                "exact_key",
                DedupConfig,
                "stored (sha256 of the stored bytes) | pixels (of the decoded pixels)",
                expect="stored or pixels",
                check=lambda value: value in ("stored", "pixels"),
            ),
            _key("near", DedupConfig, "drop near duplicates"),
            _key(
                "near_threshold",
                DedupConfig,
                "pHash Hamming radius of near duplicates (bits)",
                expect="an integer in [0, 32]",
                check=_between(0, 32),
            ),
            _key(
                "eval_threshold",
                DedupConfig,
                "radius for the evaluation sets (omit: near_threshold)",
                expect="an integer in [0, 32]",
                check=_between(0, 32),
                example=8,
            ),
            _key(
                "exclude_near",
                DedupOptions,
                "evaluation sets to remove near-copies of (image folders, shards, or a parquet with phash)",
                path_like=True,
            ),
        ),
    ),
    Section(
        "release",
        "The versioned release written from filtered/ (passkit.release).",
        (
            _key("enabled", ReleaseOptions, "write RUN/release/vN after the filter"),
            _key("name", ReleaseOptions, "dataset name (card, Croissant)"),
            _key(
                "shard_size", ReleaseOptions, "images per release shard", expect="an integer >= 1", check=_at_least(1)
            ),
            _key("layout_folder", ReleaseOptions, "also write an images/ folder layout"),
            _key("include_gps", ReleaseOptions, "publish coordinates (needs privacy.keep_geo)"),
            _key("title", ReleaseOptions, "dataset title (card, datasheet, Croissant)"),
            _key("description", ReleaseOptions, "one-paragraph description (card, Croissant)"),
            _key("url", ReleaseOptions, "where the release is published"),
            _key("contact", ReleaseOptions, "who handles takedown requests"),
            _key("date_published", ReleaseOptions, "ISO date for the card and Croissant ('' = none: reproducible)"),
        ),
    ),
    Section(
        "runner",
        "Where the shard work runs. Switching runners on a started run is allowed (same shard layout).",
        (
            _key(
                "kind",
                RunnerConfig,
                "local (process pool) | ray (Ray Data)",
                expect="local or ray",
                check=lambda value: value in RUNNERS,
            ),
            _key(
                "workers",
                RunnerConfig,
                "local: shard worker processes; ray: download tasks at once",
                expect="an integer >= 1",
                check=_at_least(1),
            ),
            _key("ray_address", RunnerConfig, "ray: cluster address ('' = $RAY_ADDRESS, else a local Ray instance)"),
            _key(
                "filter_actors",
                RunnerConfig,
                "ray: filter actors (each loads the detector models once)",
                expect="an integer >= 1",
                check=_at_least(1),
            ),
            _key(
                "cpus_per_actor",
                RunnerConfig,
                "ray: CPUs reserved per filter actor",
                expect="a number > 0",
                check=lambda value: value > 0,
            ),
            _key(
                "gpus_per_actor",
                RunnerConfig,
                "ray: GPUs per filter actor (0 = CPU only)",
                expect="a number >= 0",
                check=_at_least(0),
            ),
        ),
    ),
)

# Stage fields the build does not expose (set by the filter itself, or internal tuning).
NOT_EXPOSED = {
    (ValidateConfig, "decode_max_side"),
    (ValidateConfig, "analysis_side"),
    (DownloadConfig, "chunk_size"),
    (FilterConfig, "validate"),
    (FilterConfig, "humans"),
    (FilterConfig, "privacy"),
    (FilterConfig, "dedup"),
    (FilterConfig, "cap"),
    (FilterConfig, "pii"),
    (FilterConfig, "nsfw"),
    (PiiConfig, "detector"),
    (PiiConfig, "recognizer"),
    (PiiConfig, "decode_max_side"),
    (PiiConfig, "unclip_ratio"),
    (PiiConfig, "blob_height"),
    (PiiConfig, "plate_aspect"),
    (PiiConfig, "plate_max_tilt"),
    (PiiConfig, "plate_height"),
    (PiiConfig, "plate_min_fill"),
    (PiiConfig, "plate_read"),
    (PiiConfig, "plate_max_reads"),
    (PiiConfig, "text_line_max_height"),
    (PiiConfig, "text_max_area"),
    (PiiConfig, "boxes"),
    (NsfwConfig, "model"),
    (NsfwConfig, "jpeg_roundtrip"),
}
# Keys whose default in the example differs from the dataclass default (the build's own choices).
SECTION_NAMES = {section.name for section in SCHEMA}


# ---- loading ----------------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    return json.dumps(value, default=str)


def _type_name(hint: Any) -> str:
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if typing.get_origin(hint) is tuple:
        return "a list of strings"
    if typing.get_origin(hint) in (Mapping, dict):
        return "a table of strings"
    return str(hint)


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return hint


def _coerce(value: Any, hint: Any, where: str, key: Key) -> Any:
    hint = _strip_optional(hint)
    expect = key.expect or _type_name(hint)
    problem = ConfigError(f"{where}: expected {expect}, got {_show(value)}")
    if key.name == "max_bytes" and isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from error
    if hint is bool:
        if not isinstance(value, bool):
            raise problem
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise problem
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise problem
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise problem
    elif typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise problem
        value = tuple(value)
    elif typing.get_origin(hint) in (Mapping, dict):
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise problem
        value = dict(value)
    if key.check is not None and not key.check(value):
        raise problem
    return value


def _resolve(value: Any, base: Path) -> Any:
    """Relative paths (and the path part of ``yfcc:PATH``-style specs) against ``base``; '' stays ''."""
    if isinstance(value, tuple):
        return tuple(_resolve(item, base) for item in value)
    if not value:
        return value
    prefix, sep, rest = value.partition(":")
    if sep and prefix in ("yfcc", "table", "folder") and rest:
        return f"{prefix}:{_resolve(rest, base)}"
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _table_at(data: dict[str, Any], name: str) -> dict[str, Any]:
    table: Any = data
    for part in name.split(".") if name else ():
        table = table.get(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: expected a table, got {_show(table)}")
    return table


def _check_unknown(data: dict[str, Any]) -> None:
    known = {section.name: {key.name for key in section.keys} for section in SCHEMA}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for name, value in table.items():
            path = f"{prefix}.{name}" if prefix else name
            if path in known:
                if not isinstance(value, dict):
                    raise ConfigError(f"{path}: expected a table [{path}], got {_show(value)}")
                walk(value, path)
            elif name not in known.get(prefix, set()):
                choices = sorted(
                    known.get(prefix, set()) | {s.rpartition(".")[2] for s in known if _parent(s) == prefix}
                )
                raise ConfigError(f"{path}: unknown key (known here: {', '.join(c for c in choices if c)})")

    walk(data, "")


def _parent(section: str) -> str:
    return section.rpartition(".")[0]


def from_dict(data: dict[str, Any], base_dir: Path | None = None) -> BuildConfig:
    """A checked config from parsed TOML; relative paths are resolved against ``base_dir`` when given."""
    _check_unknown(data)
    kwargs: dict[type, dict[str, Any]] = {}
    for section in SCHEMA:
        table = _table_at(data, section.name)
        for key in section.keys:
            if key.name not in table:
                continue
            where = f"{section.name}.{key.name}" if section.name else key.name
            for cls, attr in key.targets:
                hint = typing.get_type_hints(cls)[attr]
                value = _coerce(table[key.name], hint, where, key)
                if key.path_like and base_dir is not None:
                    value = _resolve(value, base_dir)
                if key.zero_is_none and value == 0 and _strip_optional(hint) is not hint:
                    value = None
                kwargs.setdefault(cls, {})[attr] = value
    built: dict[type, Any] = {}
    for section in SCHEMA:
        for key in section.keys:
            for cls, _ in key.targets:
                if cls in built:
                    continue
                try:
                    built[cls] = cls(**kwargs.get(cls, {}))
                except (ValueError, TypeError) as error:
                    raise ConfigError(f"[{section.name}]: {error}") from error
    filter_cfg = replace(
        built[FilterConfig],
        validate=built[ValidateConfig],
        humans=built[HumansConfig],
        privacy=built[PrivacyConfig],
        dedup=built[DedupConfig],
        cap=built[CapConfig],
        pii=built[PiiConfig],
        nsfw=built[NsfwConfig],
    )
    cfg = BuildConfig(
        output=built[OutputConfig],
        sources=built[SourcesConfig],
        select=built[SelectConfig],
        download=built[DownloadConfig],
        sharding=built[ShardingConfig],
        filter=filter_cfg,
        humans_options=built[HumansOptions],
        pii_options=built[PiiOptions],
        nsfw_options=built[NsfwOptions],
        dedup_options=built[DedupOptions],
        release=built[ReleaseOptions],
        runner=built[RunnerConfig],
    )
    if cfg.release.include_gps and not cfg.filter.privacy.keep_geo:
        raise ConfigError("release.include_gps: needs privacy.keep_geo = true (the filter drops coordinates otherwise)")
    return cfg


def load_config(path: str | Path) -> BuildConfig:
    """Read and check a TOML config; relative paths are resolved against the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    return from_dict(data, path.resolve().parent)


def with_overrides(cfg: BuildConfig, **changes: Any) -> BuildConfig:
    """Command-line overrides (out, runner kind, ray address, workers), checked like config values."""
    runner = cfg.runner
    if changes.get("runner") is not None:
        runner = replace(runner, kind=changes["runner"])
    if changes.get("ray_address") is not None:
        runner = replace(runner, ray_address=changes["ray_address"], kind="ray")
    if changes.get("workers") is not None:
        runner = replace(runner, workers=changes["workers"])
    if runner.kind not in RUNNERS:
        raise ConfigError(f"runner.kind: expected local or ray, got {_show(runner.kind)}")
    if runner.workers < 1:
        raise ConfigError(f"runner.workers: expected an integer >= 1, got {runner.workers}")
    output = cfg.output
    if changes.get("out") is not None:
        output = OutputConfig(str(Path(changes["out"]).resolve()))
    return replace(cfg, runner=runner, output=output)


# ---- writing ----------------------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _value_of(cfg: BuildConfig, key: Key) -> Any:
    cls, attr = key.targets[-1]
    value = getattr(cfg.parts()[cls], attr)
    if value is None and key.zero_is_none:
        return 0
    return value


def render(cfg: BuildConfig | None = None, *, comments: bool = True, sections: tuple[str, ...] | None = None) -> str:
    """The config as TOML (by default the documented defaults); ``sections`` limits it to those tables."""
    cfg = cfg or BuildConfig()
    lines: list[str] = []
    for section in SCHEMA:
        if sections is not None and section.name not in sections:
            continue
        if lines:
            lines.append("")
        if comments:
            lines.append(f"# {section.doc}")
        if section.name:
            lines.append(f"[{section.name}]")
        for key in section.keys:
            value = _value_of(cfg, key)
            if comments:
                lines.append(f"# {key.doc}")
            if value is None:
                if comments:
                    lines.append(f"# {key.name} = {_toml_value(key.example)}")
                continue
            lines.append(f"{key.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


# Sections that decide what the run produces; the runner and the release options may change on a started run.
DATA_SECTIONS = tuple(section.name for section in SCHEMA if section.name.split(".")[0] not in ("", "runner", "release"))


def config_hash(cfg: BuildConfig) -> str:
    """sha256 of the sections that decide the data (not the run folder, runner or release options)."""
    return hashlib.sha256(render(cfg, comments=False, sections=DATA_SECTIONS).encode()).hexdigest()


def exposed_fields() -> set[tuple[type, str]]:
    return {target for section in SCHEMA for key in section.keys for target in key.targets}


def unexposed_fields() -> set[tuple[type, str]]:
    """Fields of the mapped dataclasses that no TOML key sets and that are not deliberately hidden."""
    classes = {cls for cls, _ in exposed_fields()}
    every = {(cls, item.name) for cls in classes for item in dataclasses.fields(cls)}
    return every - exposed_fields() - NOT_EXPOSED
