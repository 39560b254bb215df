"""Publishing a release folder atomically: everything is written into a temporary sibling, renamed at the end."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from passkit.core.atomic import fsync_dir
from passkit.release.source import ReleaseError


def check_output(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise ReleaseError(f"{out}: already exists; a release is never overwritten (choose a new --out)")
    if not out.name:
        raise ReleaseError(f"{out}: not a usable output folder name")


@contextlib.contextmanager
def staging_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``out``; on success it becomes ``out`` in one rename."""
    target = Path(out).absolute()
    check_output(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        yield staging
        for path in sorted(staging.rglob("*"), reverse=True):  # files before their folders
            if path.is_file():
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
            fsync_dir(path if path.is_dir() else path.parent)
        check_output(target)
        staging.rename(target)
        fsync_dir(target.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
