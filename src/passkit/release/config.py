"""Release configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import re
from dataclasses import dataclass

from passkit.core.licenses import LicensePolicy

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ReleaseConfig:
    name: str = "pass"
    version: int | None = None  # None: version 1 (a takedown makes N+1 from the release it reads)
    shard_size: int = 10_000  # images per release shard
    layout_folder: bool = False  # also write images/<sha256 prefix>/<key>.<ext> (torchvision ImageFolder)
    image_format: str = "jpg"  # jpg: every image a JPEG (PNGs encoded at quality 95); keep: as the filter stored them
    include_gps: bool = False  # keep latitude/longitude in metadata and json (PASS published them; we do not)
    license_policy: str = "cc-by"  # checked again at release time: an image outside it is left out, with a reason
    title: str = "PASS-style people-free image dataset"
    description: str = ""
    url: str = ""  # where the release is published (Croissant url, card)
    contact: str = ""  # who handles takedown requests (card, datasheet)
    sample_grid: int = 24  # thumbnails in the datasheet's sample grid
    date_published: str = ""  # ISO date for Croissant/card; empty: none (the build stays free of clock readings)

    def __post_init__(self) -> None:
        if NAME_PATTERN.match(self.name) is None:
            raise ValueError(f"release name {self.name!r} must match {NAME_PATTERN.pattern}")
        if self.version is not None and self.version < 1:
            raise ValueError(f"release version must be >= 1, got {self.version}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if not 0 <= self.sample_grid <= 200:
            raise ValueError(f"sample_grid must be in 0..200, got {self.sample_grid}")
        if self.image_format not in ("jpg", "keep"):
            raise ValueError(f"image_format must be 'jpg' or 'keep', got {self.image_format!r}")
        if self.date_published and DATE_PATTERN.match(self.date_published) is None:
            raise ValueError(f"date_published {self.date_published!r} must be an ISO date (YYYY-MM-DD)")
        LicensePolicy.parse(self.license_policy)  # raises ValueError for a bad policy

    @property
    def resolved_version(self) -> int:
        return self.version or 1
