"""Politeness rules: opt-out headers, Retry-After, exponential backoff with jitter, what is worth retrying."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from passkit.core import reasons

DOWNLOAD_CONNECTION = "download:connection"
"""Connection refused, reset or closed before the whole body arrived (retryable)."""
DOWNLOAD_TLS = "download:tls"
"""The TLS handshake failed (certificate, protocol): not retried."""
DOWNLOAD_REDIRECTS = "download:too-many-redirects"
DOWNLOAD_BAD_URL = "download:bad-url"
DOWNLOAD_BAD_RESPONSE = "download:bad-response"
"""A response that is not valid HTTP."""
DOWNLOAD_FILE_MISSING = "download:file-missing"
DOWNLOAD_FILE_UNREADABLE = "download:file-unreadable"


def is_retryable(reason: str) -> bool:
    """Timeouts, connection errors, 429 and 5xx are worth another try; other 4xx and content problems are not."""
    if reason in (reasons.DOWNLOAD_TIMEOUT, DOWNLOAD_CONNECTION, reasons.download_http(429)):
        return True
    prefix = reasons.download_http(0)[:-1]  # "download:http-"
    if reason.startswith(prefix):
        code = reason[len(prefix) :]
        return code.isdigit() and 500 <= int(code) <= 599
    return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); ``None`` if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number ``retry`` (1, 2, ...): ``base * 2**(retry-1)`` capped, with equal jitter
    (half fixed, half random) so that many clients that failed together do not come back together."""
    delay = min(cap, base * 2 ** (retry - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


def opts_out(header_values: Iterable[str], directives: Iterable[str], agent_token: str) -> bool:
    """True if an ``X-Robots-Tag`` value carries one of ``directives`` for every robot or for ``agent_token``.

    ``noai, noimageai`` applies to everyone; ``otherbot: noai`` only to ``otherbot``; ``passkit: noai`` to us.
    """
    wanted = {directive.lower() for directive in directives}
    if not wanted:
        return False
    agent = agent_token.lower()
    for value in header_values:
        target = None
        for part in value.split(","):
            token = part.strip().lower()
            name, colon, rest = token.partition(":")
            if colon and name.strip() not in wanted and " " not in name.strip():
                # "robot: directive" starts a robot-specific group (until the next "robot:" prefix).
                target, token = name.strip(), rest.strip()
            if token in wanted and target in (None, agent, "*"):
                return True
    return False
