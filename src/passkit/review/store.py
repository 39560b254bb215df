"""Review decisions (contract): an append-only SQLite table at ``DIR/review/decisions.sqlite``.

Every action is a new row ``(seq, key, label, reason, reviewer, time, queue)``; the latest row per key (highest
``seq``) is the current decision and ``undo`` means "no decision". The database runs in WAL mode with
``synchronous=FULL``: a decision is on disk (WAL fsynced) before the call that records it returns, so a crash or a
restart of the app loses nothing. Several processes may write at once (SQLite serialises them).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from passkit.core.keys import is_valid_key
from passkit.core.reasons import REVIEW_HUMAN, REVIEW_OTHER

PROBLEM, CLEAN, UNDO = "problem", "clean", "undo"
LABELS = (PROBLEM, CLEAN, UNDO)
PROBLEM_REASONS = (REVIEW_HUMAN, REVIEW_OTHER)
REVIEW_FOLDER = "review"
DECISIONS_FILE = "decisions.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('problem','clean','undo')),
    reason TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL,
    time TEXT NOT NULL,
    queue TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_key ON decisions (key, seq);
"""


def decisions_path(directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / REVIEW_FOLDER / DECISIONS_FILE


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Decision:
    seq: int
    key: str
    label: str
    reason: str
    reviewer: str
    time: str
    queue: str

    def to_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "key": self.key,
            "label": self.label,
            "reason": self.reason,
            "reviewer": self.reviewer,
            "time": self.time,
            "queue": self.queue,
        }


def check_decision(label: str, reason: str) -> None:
    """Raise ``ValueError`` unless ``label``/``reason`` form a valid decision."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    if label == PROBLEM and reason not in PROBLEM_REASONS:
        raise ValueError(f"a problem needs reason {' or '.join(PROBLEM_REASONS)}, got {reason!r}")
    if label != PROBLEM and reason:
        raise ValueError(f"a {label} decision has no reason, got {reason!r}")


class DecisionStore:
    """Append-only decisions; thread-safe (one connection behind a lock), usable as a context manager."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no review decisions at {self.path}")
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OSError(f"{self.path}: SQLite could not switch to WAL mode (got {mode!r})")
            self._db.executescript(SCHEMA)
        self._db.execute("PRAGMA synchronous=FULL")
        self._lock = threading.Lock()

    @classmethod
    def for_dataset(cls, directory: str | os.PathLike[str], *, readonly: bool = False) -> DecisionStore:
        return cls(decisions_path(directory), readonly=readonly)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_many(
        self, keys: Iterable[str], label: str, reason: str = "", *, reviewer: str, queue: str
    ) -> list[Decision]:
        """Append one row per key in one durable transaction; returns the rows written."""
        check_decision(label, reason)
        if not reviewer.strip():
            raise ValueError("reviewer must not be empty")
        keys = list(keys)
        bad = [key for key in keys if not is_valid_key(key)]
        if bad:
            raise ValueError(f"invalid keys: {bad[:5]}")
        now = utc_now()
        written = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key in keys:
                    cursor = self._db.execute(
                        "INSERT INTO decisions (key, label, reason, reviewer, time, queue) VALUES (?, ?, ?, ?, ?, ?)",
                        (key, label, reason, reviewer, now, queue),
                    )
                    written.append(Decision(int(cursor.lastrowid or 0), key, label, reason, reviewer, now, queue))
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        return written

    def record(self, key: str, label: str, reason: str = "", *, reviewer: str, queue: str) -> Decision:
        return self.record_many([key], label, reason, reviewer=reviewer, queue=queue)[0]

    def undo(self, key: str, *, reviewer: str, queue: str) -> Decision:
        """Withdraw the current decision of ``key`` (appends an ``undo`` row; history is kept)."""
        return self.record(key, UNDO, reviewer=reviewer, queue=queue)

    def undo_many(self, keys: Iterable[str], *, reviewer: str, queue: str) -> list[Decision]:
        return self.record_many(keys, UNDO, reviewer=reviewer, queue=queue)

    def current(self) -> dict[str, Decision]:
        """The current decision per key (latest row), without keys whose latest row is ``undo``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT d.seq, d.key, d.label, d.reason, d.reviewer, d.time, d.queue FROM decisions d "
                "JOIN (SELECT key, MAX(seq) AS seq FROM decisions GROUP BY key) latest ON d.seq = latest.seq"
            ).fetchall()
        return {row[1]: Decision(*row) for row in rows if row[2] != UNDO}

    def history(self, key: str) -> list[Decision]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, key, label, reason, reviewer, time, queue FROM decisions WHERE key = ? ORDER BY seq",
                (key,),
            ).fetchall()
        return [Decision(*row) for row in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
