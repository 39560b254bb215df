"""The stage contract: a pure function ``stage(batch, cfg) -> StageResult``.

Stages know nothing of parallelism, retries, resume or progress: runners own those. A stage returns the items
that pass (same batch type as its input) and exactly one manifest row per input item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pyarrow as pa

from passkit.core.manifest import status_counts, validate_manifest

BatchT = TypeVar("BatchT")
ConfigT = TypeVar("ConfigT")


@dataclass
class StageResult(Generic[BatchT]):
    kept: BatchT
    rows: pa.Table  # key, status, reason + measured columns; one row per input item

    def check(self, input_keys: Iterable[str], stage: str = "stage") -> None:
        """Raise unless every input key has exactly one row (the accounting invariant)."""
        validate_manifest(self.rows, input_keys, where=stage)

    def counts(self) -> dict[str, int]:
        return status_counts(self.rows)


Stage = Callable[[BatchT, Any], StageResult[BatchT]]
