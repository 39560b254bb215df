"""Fetch one URL politely: a small retry loop around one attempt, over HTTP(S) or from local files.

An attempt ends in an :class:`Outcome`: the image bytes (reason ``""``) or a reason code. HTTP attempts check,
in order: status, ``X-Robots-Tag`` opt-out, declared Content-Type, declared Content-Length, then stream the body
with a byte limit and check its magic bytes. Headers alone settle most refusals, so their bodies are not read.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import aiohttp

from passkit.core import reasons
from passkit.download import policy
from passkit.download.config import AGENT_TOKEN, DownloadConfig
from passkit.download.sniff import image_extension, may_be_image


@dataclass(frozen=True)
class Outcome:
    reason: str = ""
    """Empty when the image was fetched."""
    data: bytes = b""
    ext: str = ""
    http_status: int | None = None
    content_type: str = ""
    size: int = 0
    """Bytes received (for ``download:too-large``: the declared or received size that broke the limit)."""
    retry_after: float | None = None
    detail: str = ""
    attempts: int = 1
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.reason


def _image_outcome(data: bytes, **fields: object) -> Outcome:
    ext = image_extension(data)
    if ext is None:
        return Outcome(reasons.DOWNLOAD_NOT_IMAGE, size=len(data), detail="body is not a known image format", **fields)
    return Outcome(data=data, ext=ext, size=len(data), **fields)


def local_path(url: str, base_dir: Path) -> Path | None:
    """The file a ``file://`` URL or a plain path names (relative paths from ``base_dir``); ``None`` for a URL
    of another scheme."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        return Path(url2pathname(unquote(parts.path)))
    if parts.scheme and len(parts.scheme) > 1:  # "c:" is a Windows drive, not a scheme
        return None
    path = Path(url).expanduser()
    return path if path.is_absolute() else base_dir / path


def read_local(path: Path, max_bytes: int) -> Outcome:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        return Outcome(policy.DOWNLOAD_FILE_MISSING, detail=str(path))
    except OSError as error:  # a folder, no permission, an I/O error
        return Outcome(policy.DOWNLOAD_FILE_UNREADABLE, detail=f"{path}: {error.strerror or error}")
    if len(data) > max_bytes:
        return Outcome(reasons.DOWNLOAD_TOO_LARGE, size=len(data), detail=f"more than {max_bytes} bytes")
    return _image_outcome(data)


def open_session(config: DownloadConfig) -> aiohttp.ClientSession:
    """One session per shard process: pooled keep-alive connections, a global and a per-host limit."""
    connector = aiohttp.TCPConnector(limit=config.concurrency, limit_per_host=config.per_host, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.connect_timeout)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": config.user_agent},
        raise_for_status=False,
        trust_env=config.trust_env,  # proxy + .netrc lookups cost two thread hops per request: opt-in
    )


class Fetcher:
    """Fetches URLs with one shared session; usable from many coroutines at once."""

    def __init__(self, session: aiohttp.ClientSession, config: DownloadConfig, base_dir: Path, seed: int = 0):
        self.session = session
        self.config = config
        self.base_dir = base_dir
        self.rng = random.Random(seed)
        self.host_resumes: dict[str, float] = {}
        """Host -> monotonic time before which no request goes to it (its last Retry-After)."""

    async def fetch(self, url: str) -> Outcome:
        """Try ``url`` up to ``1 + retries`` times; the outcome records the attempts and the total time."""
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            outcome = await self.attempt(url)
            delay = self._retry_delay(outcome, attempt)
            if delay is None:
                return replace(outcome, attempts=attempt, elapsed=time.monotonic() - start)
            await asyncio.sleep(delay)

    def _retry_delay(self, outcome: Outcome, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to stop here."""
        if outcome.ok or attempt > self.config.retries or not policy.is_retryable(outcome.reason):
            return None
        if outcome.retry_after is not None:
            return outcome.retry_after if outcome.retry_after <= self.config.max_retry_after else None
        return policy.backoff_delay(attempt, self.config.backoff, self.config.max_backoff, self.rng)

    async def attempt(self, url: str) -> Outcome:
        if not isinstance(url, str) or not url.strip():
            return Outcome(policy.DOWNLOAD_BAD_URL, detail="empty URL")
        url = url.strip()
        if urlsplit(url).scheme.lower() in ("http", "https"):
            return await self.attempt_http(url)
        path = local_path(url, self.base_dir)
        if path is None:
            return Outcome(policy.DOWNLOAD_BAD_URL, detail=f"unsupported URL scheme: {url[:80]}")
        return await asyncio.to_thread(read_local, path, self.config.max_bytes)

    async def attempt_http(self, url: str) -> Outcome:
        """One request; a host that answered Retry-After gets nothing from this process until that time."""
        host = urlsplit(url).hostname or ""
        pause = self.host_resumes.get(host, 0.0) - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        outcome = await self._request(url)
        if outcome.retry_after is not None and outcome.retry_after <= self.config.max_retry_after:
            resume = time.monotonic() + outcome.retry_after
            self.host_resumes[host] = max(resume, self.host_resumes.get(host, 0.0))
        return outcome

    async def _request(self, url: str) -> Outcome:
        try:
            # aiohttp counts redirect responses, the last one included: +1 follows exactly max_redirects.
            follow = self.config.max_redirects > 0
            async with self.session.get(
                url, allow_redirects=follow, max_redirects=self.config.max_redirects + 1
            ) as response:
                return await self._read_response(response)
        except TimeoutError:
            return Outcome(reasons.DOWNLOAD_TIMEOUT, detail=f"no complete response within {self.config.timeout} s")
        except aiohttp.TooManyRedirects as error:
            return Outcome(policy.DOWNLOAD_REDIRECTS, http_status=error.status, detail=f"> {self.config.max_redirects}")
        except (aiohttp.InvalidURL, ValueError) as error:
            return Outcome(policy.DOWNLOAD_BAD_URL, detail=str(error)[:200])
        except aiohttp.ClientSSLError as error:  # a certificate problem does not heal by retrying
            return Outcome(policy.DOWNLOAD_TLS, detail=f"{type(error).__name__}: {error}"[:200])
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
            return Outcome(policy.DOWNLOAD_CONNECTION, detail=f"{type(error).__name__}: {error}"[:200])
        except aiohttp.ClientResponseError as error:
            return Outcome(policy.DOWNLOAD_BAD_RESPONSE, http_status=error.status or None, detail=str(error)[:200])

    async def _read_response(self, response: aiohttp.ClientResponse) -> Outcome:
        status = response.status
        content_type = response.headers.get("Content-Type", "")
        seen = {"http_status": status, "content_type": content_type}
        if not 200 <= status < 300:
            come_back = status == 429 or status >= 500  # where Retry-After means "not now"
            retry_after = policy.parse_retry_after(response.headers.get("Retry-After")) if come_back else None
            return Outcome(reasons.download_http(status), retry_after=retry_after, **seen)
        if policy.opts_out(response.headers.getall("X-Robots-Tag", []), self.config.opt_out, AGENT_TOKEN):
            return Outcome(reasons.DOWNLOAD_OPT_OUT, detail="X-Robots-Tag", **seen)
        if not may_be_image(content_type):
            return Outcome(reasons.DOWNLOAD_NOT_IMAGE, detail="declared Content-Type is not an image", **seen)
        limit = self.config.max_bytes
        if response.content_length is not None and response.content_length > limit:
            return Outcome(reasons.DOWNLOAD_TOO_LARGE, size=response.content_length, detail="Content-Length", **seen)
        body = bytearray()
        async for chunk in response.content.iter_chunked(self.config.chunk_size):
            body += chunk
            if len(body) > limit:
                return Outcome(reasons.DOWNLOAD_TOO_LARGE, size=len(body), detail=f"more than {limit} bytes", **seen)
        return _image_outcome(bytes(body), **seen)
