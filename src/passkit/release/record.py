"""The release record (``release.json``): what a release is made of, from which every document is rendered.

It holds the funnel (every candidate's fate, grouped by stage and reason), the review and audit results and the
version history. A takedown reads it from the previous version, so the next version's datasheet, card and changelog
are regenerated without the filtered folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from passkit.core.reasons import reason_stage

RECORD_FILE = "release.json"
FORMAT = 1
# Pipeline order of the reason prefixes; a prefix not listed follows, alphabetically.
STAGE_ORDER = (
    "license",
    "attribution",
    "metadata",
    "download",
    "image",
    "humans",
    "pii",
    "nsfw",
    "dedup",
    "cap",
    "review",
    "takedown",
)


def stage_rank(stage: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(stage), "") if stage in STAGE_ORDER else (len(STAGE_ORDER), stage)


@dataclass
class HistoryEntry:
    version: int
    kind: str  # release | takedown
    images: int  # images in this version
    removed: dict[str, int] = field(default_factory=dict)  # reason -> images removed by this version
    keys: list[str] = field(default_factory=list)  # keys taken down
    unknown: int = 0  # requested keys that were not in the previous version
    shards_rewritten: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class ReleaseRecord:
    name: str
    title: str
    version: int
    description: str
    url: str
    contact: str
    shard_size: int
    layout_folder: bool
    include_gps: bool
    image_format: str
    license_policy: str
    sample_grid: int
    date_published: str
    candidates: int  # every candidate the pipeline saw (select rejects + manifest rows)
    reasons: dict[str, int]  # reason -> rows removed, across all stages (select ... takedown)
    review: dict[str, int]  # decisions: problem, clean, on_kept (decisions about images of the kept set)
    audit: dict[str, Any] | None
    history: list[HistoryEntry]
    format: int = FORMAT

    @property
    def released(self) -> int:
        return self.candidates - sum(self.reasons.values())

    def funnel(self) -> list[tuple[str, int, dict[str, int]]]:
        """``(stage, removed, {reason: n})`` in pipeline order, only stages that removed something."""
        stages: dict[str, dict[str, int]] = {}
        for reason, count in self.reasons.items():
            stages.setdefault(reason_stage(reason), {})[reason] = count
        return [
            (stage, sum(stages[stage].values()), dict(sorted(stages[stage].items(), key=lambda kv: (-kv[1], kv[0]))))
            for stage in sorted(stages, key=stage_rank)
        ]

    def to_json(self) -> str:
        data = asdict(self)
        data["reasons"] = dict(sorted(self.reasons.items()))
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, folder: Path) -> Path:
        path = folder / RECORD_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: str | Path) -> ReleaseRecord:
        path = Path(folder) / RECORD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{path}: not a passkit release (no {RECORD_FILE})") from error
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: unreadable release record ({error})") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: release record format {data.get('format')!r} is not {FORMAT}")
        try:
            history = [HistoryEntry(**entry) for entry in data.pop("history")]
            return cls(**data, history=history)
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path}: malformed release record ({error})") from error
