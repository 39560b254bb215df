"""Download settings: one frozen dataclass, checked before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

from passkit import __version__

AGENT_TOKEN = "passkit"
DEFAULT_USER_AGENT = f"{AGENT_TOKEN}/{__version__} (dataset builder; honours X-Robots-Tag noai/noimageai)"
DEFAULT_OPT_OUT = ("noai", "noimageai")


@dataclass(frozen=True)
class DownloadConfig:
    concurrency: int = 64
    """Requests in flight per shard process."""
    per_host: int = 16
    """Connections open to one host at a time, per shard process."""
    timeout: float = 30.0
    """Seconds one attempt may take, body included."""
    connect_timeout: float = 10.0
    retries: int = 3
    """Further attempts after a retryable failure (timeout, connection error, 429, 5xx)."""
    backoff: float = 1.0
    """Base of the exponential backoff, seconds."""
    max_backoff: float = 60.0
    max_retry_after: float = 120.0
    """A Retry-After longer than this is not waited for: the row fails with its HTTP status."""
    max_redirects: int = 5
    max_bytes: int = 32 * 2**20
    user_agent: str = DEFAULT_USER_AGENT
    opt_out: tuple[str, ...] = DEFAULT_OPT_OUT
    """X-Robots-Tag directives that exclude an image (empty: ignore the header)."""
    chunk_size: int = 1 << 16
    trust_env: bool = False
    """Honour HTTP(S)_PROXY / NO_PROXY and ~/.netrc."""

    def __post_init__(self) -> None:
        positive = ("concurrency", "per_host", "timeout", "connect_timeout", "max_bytes", "chunk_size")
        non_negative = ("retries", "backoff", "max_backoff", "max_retry_after", "max_redirects")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"download config: {name} must be > 0, got {getattr(self, name)}")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"download config: {name} must be >= 0, got {getattr(self, name)}")
        if not self.user_agent.strip():
            raise ValueError("download config: user_agent must not be empty")
        object.__setattr__(self, "opt_out", tuple(d.strip().lower() for d in self.opt_out if d.strip()))


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """``"32MB"`` -> 32000000, ``"500KiB"`` -> 512000, ``"1048576"`` -> 1048576."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgib")
    unit = value[len(number) :]
    if unit not in _SIZE_UNITS or not number:
        raise ValueError(f"cannot read size {text!r} (examples: 32MB, 500KiB, 1048576)")
    try:
        return int(float(number) * _SIZE_UNITS[unit])
    except ValueError as error:
        raise ValueError(f"cannot read size {text!r} (examples: 32MB, 500KiB, 1048576)") from error
