"""Paths inside a release folder (contract: DESIGN.md, "Release")."""

from __future__ import annotations

from passkit.core.shards import shard_name

SHARDS_DIR = "shards"
SHARD_PREFIX = "pass-"
IMAGES_DIR = "images"
VERSION_FILE = "VERSION"
DATASHEET_FILE = "datasheet.html"
CROISSANT_FILE = "croissant.json"
CARD_FILE = "README.md"
CHANGELOG_FILE = "CHANGELOG.md"


def shard_tar(index: int) -> str:
    return f"{SHARDS_DIR}/{shard_name(index, SHARD_PREFIX)}.tar"


def shard_manifest(index: int) -> str:
    return f"{SHARDS_DIR}/{shard_name(index, SHARD_PREFIX)}.parquet"


def folder_image(key: str, sha256: str, ext: str) -> str:
    """``images/<first two hex digits of the image's sha256>/<key>.<ext>``: 256 folders of even size."""
    return f"{IMAGES_DIR}/{sha256[:2]}/{key}.{ext}"
