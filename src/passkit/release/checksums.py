"""SHA256SUMS: one ``<sha256>  <path>`` line per file of the release (``sha256sum -c SHA256SUMS`` checks it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

SUMS_FILE = "SHA256SUMS"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def release_files(folder: Path) -> list[str]:
    """Every regular file under ``folder`` but SHA256SUMS, as sorted POSIX paths."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).as_posix() != SUMS_FILE
    )


def write_checksums(folder: Path, known: dict[str, str] | None = None) -> Path:
    """Write SHA256SUMS; ``known`` maps paths whose digest was computed while writing them."""
    known = known or {}
    lines = [f"{known.get(name) or file_sha256(folder / name)}  {name}\n" for name in release_files(folder)]
    path = folder / SUMS_FILE
    path.write_text("".join(lines), encoding="utf-8", newline="")
    return path


def read_checksums(folder: str | Path) -> dict[str, str]:
    """``path -> sha256`` as listed in SHA256SUMS (empty when absent or malformed)."""
    sums = Path(folder) / SUMS_FILE
    listed: dict[str, str] = {}
    if sums.exists():
        for line in sums.read_text(encoding="utf-8").splitlines():
            digest, sep, name = line.partition("  ")
            if not sep or len(digest) != 64:
                return {}
            listed[name] = digest
    return listed


def verify_checksums(folder: str | Path) -> list[str]:
    """Problems found (empty list: every file matches and no file is unlisted)."""
    root = Path(folder)
    sums = root / SUMS_FILE
    if not sums.exists():
        return [f"{sums} is missing"]
    listed: dict[str, str] = {}
    for number, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            return [f"{sums}:{number}: malformed line"]
        listed[name] = digest
    problems = []
    for name in release_files(root):
        if name not in listed:
            problems.append(f"{name}: not listed in {SUMS_FILE}")
        elif file_sha256(root / name) != listed[name]:
            problems.append(f"{name}: sha256 differs")
    problems += [f"{name}: listed but missing" for name in sorted(set(listed) - set(release_files(root)))]
    return problems
