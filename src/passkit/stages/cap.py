"""cap: at most ``max_per_creator`` images per photographer, applied after every other filter.

The select-time cap is an upper bound on what enters the pipeline; this final cap keeps the release balanced once
validation, humans, dedup... have removed their share. Which images a creator keeps is deterministic and does not
depend on key naming or shard layout: rows are ranked by ``sha256(seed + key)``, and the first ``max_per_creator``
of each creator stay. Rows without a creator are not capped (they cannot be attributed and never reach here
through select).

Like dedup it is a global decision (:func:`cap_decisions`) over the ``creator`` column that the dedup measure stage
records per shard; :func:`cap_stage` applies the same rule to one batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

from passkit.core.manifest import ManifestBuilder
from passkit.core.reasons import CAP_CREATOR
from passkit.core.sample import Sample
from passkit.core.stage import StageResult
from passkit.stages.dedup import creator_of


@dataclass(frozen=True)
class CapConfig:
    max_per_creator: int | None = 80  # PASS: 80; None disables the cap
    seed: str = "passkit-cap"

    def __post_init__(self) -> None:
        if self.max_per_creator is not None and self.max_per_creator < 1:
            raise ValueError("max_per_creator must be >= 1 (or None for no cap)")


def cap_rank(seed: str, key: str) -> bytes:
    """The order in which a creator's images stay: sha256 of the seed and the key."""
    return hashlib.sha256(f"{seed}\x00{key}".encode()).digest()


def cap_decisions(keys: list[str], creators: list[str | None], cfg: CapConfig) -> dict[str, str]:
    """The rows over the cap: ``{key: creator}``."""
    if cfg.max_per_creator is None:
        return {}
    by_creator: dict[str, list[str]] = {}
    for key, creator in zip(keys, creators, strict=True):
        if creator:
            by_creator.setdefault(creator, []).append(key)
    rejected: dict[str, str] = {}
    for creator, members in by_creator.items():
        if len(members) > cfg.max_per_creator:
            members.sort(key=lambda key: cap_rank(cfg.seed, key))
            rejected.update(dict.fromkeys(members[cfg.max_per_creator :], creator))
    return rejected


def cap_stage(batch: list[Sample], cfg: CapConfig) -> StageResult[list[Sample]]:
    creators = [creator_of(sample) for sample in batch]
    rejected = cap_decisions([sample.key for sample in batch], creators, cfg)
    rows = ManifestBuilder()
    for sample, creator in zip(batch, creators, strict=True):
        if sample.key in rejected:
            rows.rejected(sample.key, CAP_CREATOR, creator=creator)
        else:
            rows.kept(sample.key, creator=creator)
    return StageResult([sample for sample in batch if sample.key not in rejected], rows.to_table())


def cap_table(table: pa.Table, cfg: CapConfig) -> dict[str, str]:
    """Global pass over rows with ``key, creator``."""
    return cap_decisions(table.column("key").to_pylist(), table.column("creator").to_pylist(), cfg)
