"""Reading the review step's outputs in a filtered folder: decisions (SQLite) and the audit result (json).

Contract (written by ``passkit review`` / ``passkit audit``): ``DIR/review/decisions.sqlite`` holds a table
``decisions(seq, key, label, reason, reviewer, time, queue)``; the row with the highest ``seq`` per key is the current
decision, ``undo`` meaning none. ``problem`` rows carry ``review:human`` or ``review:other``.
``DIR/review/audit.json`` holds the residual-human bound.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passkit.core.reasons import REVIEW_OTHER, is_valid_reason
from passkit.review.audit import REPORT_FILE
from passkit.review.store import REVIEW_FOLDER, DecisionStore, decisions_path

AUDIT_FIELDS = ("method", "confidence", "sample_size", "reviewed", "with_people", "upper", "statement")


class ReviewDataError(ValueError):
    """A decisions database or audit file that exists but cannot be used."""


@dataclass(frozen=True)
class Decision:
    key: str
    label: str  # problem | clean
    reason: str  # review:human | review:other for problems, "" for clean
    reviewer: str


def read_decisions(directory: str | Path) -> dict[str, Decision]:
    """Current decision per key (latest row; ``undo`` removes it). Empty when no review was done."""
    path = decisions_path(directory)
    if not path.exists():
        return {}
    try:
        with DecisionStore(path, readonly=True) as store:
            rows = store.current()
    except sqlite3.Error as error:
        raise ReviewDataError(f"{path}: cannot read review decisions ({error})") from error
    current: dict[str, Decision] = {}
    for key, row in rows.items():
        if row.label == "problem":
            reason = row.reason if is_valid_reason(row.reason) and row.reason.startswith("review:") else REVIEW_OTHER
        elif row.label == "clean":
            reason = ""
        else:
            raise ReviewDataError(f"{path}: key {key!r} has unknown label {row.label!r}")
        current[key] = Decision(key, row.label, reason, row.reviewer)
    return current


def read_audit(directory: str | Path) -> dict[str, Any] | None:
    """The audit result, or None when the folder was not audited."""
    path = Path(directory) / REVIEW_FOLDER / REPORT_FILE
    if not path.exists():
        return None
    try:
        audit = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReviewDataError(f"{path}: unreadable audit result ({error})") from error
    if not isinstance(audit, dict):
        raise ReviewDataError(f"{path}: the audit result must be a JSON object")
    missing = [name for name in AUDIT_FIELDS if name not in audit]
    if missing:
        raise ReviewDataError(f"{path}: audit result lacks {missing}")
    return audit
