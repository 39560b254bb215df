"""Figures about a release's images (shared by datasheet, card, Croissant; computed by ``release.summary``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from passkit.core.licenses import license_name


@dataclass(frozen=True)
class ReleaseStats:
    images: int
    bytes: int
    creators: int
    licenses: list[tuple[str, int]]  # (license id, images), most first
    sources: list[tuple[str, int]]
    top_creators: list[tuple[str, int]]
    per_creator: np.ndarray  # images per creator, ascending
    short_sides: np.ndarray  # per image
    sizes: np.ndarray  # stored bytes per image

    def license_names(self) -> list[tuple[str, str, int]]:
        return [(license_id, license_name(license_id), count) for license_id, count in self.licenses]


def ranked(counter: Counter[str]) -> list[tuple[str, int]]:
    """``(value, count)``, most first, ties by value."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
