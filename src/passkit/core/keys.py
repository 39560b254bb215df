"""Sample keys: validation, derivation from (source, id), collision checks.

A key names one sample everywhere: tar members (`<key>.<ext>`), manifests, releases. The contract is
``^[a-z0-9][a-z0-9_-]*$`` — no dots (webdataset splits a member name at the first dot of its basename),
no slashes, ASCII only. Keys are derived deterministically from the source name and the source's own id,
so the same input gives the same key on every run and every machine.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
SOURCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MAX_KEY_LENGTH = 128
_SAFE_ID = re.compile(r"^[a-z0-9_-]+$")
_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")
_DIGEST_CHARS = 12


class InvalidKeyError(ValueError):
    """A key or an id that cannot be turned into a key."""


def is_valid_key(key: object) -> bool:
    return isinstance(key, str) and len(key) <= MAX_KEY_LENGTH and KEY_PATTERN.match(key) is not None


def validate_key(key: object) -> str:
    """Return ``key`` unchanged if it satisfies the key contract, else raise :class:`InvalidKeyError`."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"key must be a string, got {type(key).__name__}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"key {key[:40]!r}... is {len(key)} characters long (max {MAX_KEY_LENGTH})")
    if KEY_PATTERN.match(key) is None:
        raise InvalidKeyError(f"key {key!r} does not match {KEY_PATTERN.pattern} (no dots, slashes or uppercase)")
    return key


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return _UNSAFE_RUN.sub("-", ascii_text).strip("-")


def make_key(source: str, item_id: str | int) -> str:
    """Derive the key of item ``item_id`` of ``source``.

    Ids made only of ``[a-z0-9_-]`` are kept verbatim (``yfcc`` + ``343224206`` -> ``yfcc-343224206``).
    Any other id (dots, uppercase, spaces, non-ASCII, overlong) becomes a readable slug plus a short BLAKE2b
    digest of the exact original id, so distinct ids never share a key in practice and the mapping is
    deterministic. An empty id, or a source name outside ``[a-z0-9-]``, raises :class:`InvalidKeyError`.
    """
    if not isinstance(source, str) or SOURCE_PATTERN.match(source) is None:
        raise InvalidKeyError(f"source name {source!r} must match {SOURCE_PATTERN.pattern}")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        raise InvalidKeyError(f"id must be a string or an integer, got {type(item_id).__name__}")
    raw = str(item_id)
    if raw == "" or raw.strip() == "":
        raise InvalidKeyError(f"empty id in source {source!r}")
    prefix = f"{source}-"
    if _SAFE_ID.match(raw) and len(prefix) + len(raw) <= MAX_KEY_LENGTH:
        return prefix + raw
    digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()[:_DIGEST_CHARS]
    room = MAX_KEY_LENGTH - len(prefix) - len(digest) - 1
    if room < 0:
        raise InvalidKeyError(f"source name {source!r} is too long to form keys")
    slug = _slug(raw)[:room].strip("-")
    return f"{prefix}{slug}-{digest}" if slug else f"{prefix}{digest}"


class DuplicateKeyError(ValueError):
    """Two different items were given the same key."""


class KeyRegistry:
    """Remembers which origin produced each key and refuses a second origin for the same key."""

    def __init__(self) -> None:
        self._origin: dict[str, str] = {}

    def add(self, key: str, origin: str) -> None:
        """Register ``key`` as produced by ``origin`` (e.g. ``"yfcc:343224206"``).

        Adding the same (key, origin) twice is allowed (re-reading a row); a different origin raises
        :class:`DuplicateKeyError` naming both.
        """
        validate_key(key)
        seen = self._origin.setdefault(key, origin)
        if seen != origin:
            raise DuplicateKeyError(f"key {key!r} derived from both {seen!r} and {origin!r}")

    def __contains__(self, key: object) -> bool:
        return key in self._origin

    def __len__(self) -> int:
        return len(self._origin)
