"""Pure parts of the downloader: magic bytes, opt-out headers, Retry-After, backoff, sizes, config checks."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from download_helpers import image_bytes
from passkit.core.reasons import is_valid_reason
from passkit.core.sample import Sample
from passkit.download import policy
from passkit.download.config import DownloadConfig, parse_size
from passkit.download.fetch import local_path
from passkit.download.shard import KeyOrderedSink
from passkit.download.sniff import image_extension, may_be_image


@pytest.mark.parametrize(
    ("data", "ext"),
    [
        (image_bytes(1, "JPEG"), "jpg"),
        (image_bytes(1, "PNG"), "png"),
        (image_bytes(1, "GIF"), "gif"),
        (image_bytes(1, "WEBP"), "webp"),
        (image_bytes(1, "TIFF"), "tif"),
        (image_bytes(1, "BMP"), "bmp"),
        (b"<!doctype html><html></html>", None),
        (b"BM but not a bitmap at all", None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"", None),
    ],
)
def test_image_extension_from_magic_bytes(data: bytes, ext: str | None) -> None:
    assert image_extension(data) == ext


def test_declared_content_types() -> None:
    assert may_be_image("image/jpeg") and may_be_image("Image/PNG; q=1") and may_be_image(None)
    assert may_be_image("application/octet-stream") and may_be_image("")
    assert not may_be_image("text/html; charset=utf-8") and not may_be_image("application/json")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["noai"], True),
        (["noindex, NoImageAI"], True),
        (["noindex", "noai"], True),
        (["noindex, nofollow"], False),
        (["otherbot: noai"], False),
        (["otherbot: noindex, passkit: noai"], True),
        (["passkit: noindex, otherbot: noai"], False),
        (["*: noimageai"], True),
        ([], False),
    ],
)
def test_x_robots_tag_opt_out(headers: list[str], expected: bool) -> None:
    assert policy.opts_out(headers, ("noai", "noimageai"), "passkit") is expected


def test_opt_out_directives_are_configurable() -> None:
    assert not policy.opts_out(["noai"], (), "passkit")
    assert policy.opts_out(["noml"], ("noml",), "passkit")


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert policy.parse_retry_after("7") == 7.0
    assert policy.parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert policy.parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert policy.parse_retry_after("soon") is None and policy.parse_retry_after(None) is None
    assert policy.parse_retry_after("-3") is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(0)
    for retry in range(1, 8):
        delays = [policy.backoff_delay(retry, 0.5, 4.0, rng) for _ in range(200)]
        full = min(4.0, 0.5 * 2 ** (retry - 1))
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 100, "jittered"


@pytest.mark.parametrize(
    ("reason", "retryable"),
    [
        ("download:timeout", True),
        ("download:connection", True),
        ("download:http-429", True),
        ("download:http-500", True),
        ("download:http-503", True),
        ("download:http-404", False),
        ("download:http-403", False),
        ("download:too-large", False),
        ("download:not-image", False),
        ("download:opt-out", False),
        ("download:too-many-redirects", False),
    ],
)
def test_what_is_retried(reason: str, retryable: bool) -> None:
    assert is_valid_reason(reason)
    assert policy.is_retryable(reason) is retryable


def test_new_reason_codes_follow_the_contract() -> None:
    codes = [value for name, value in vars(policy).items() if name.startswith("DOWNLOAD_")]
    assert codes and all(is_valid_reason(code) and code.startswith("download:") for code in codes)


def test_parse_size() -> None:
    assert parse_size("32MB") == 32_000_000
    assert parse_size("500 KiB") == 512_000
    assert parse_size("1048576") == 1_048_576
    assert parse_size("1.5gb") == 1_500_000_000
    for bad in ("", "MB", "12 parsecs", "1e"):
        with pytest.raises(ValueError, match="cannot read size"):
            parse_size(bad)


def test_config_is_checked() -> None:
    assert DownloadConfig(opt_out=(" NoAI ", "")).opt_out == ("noai",)
    for bad in ({"concurrency": 0}, {"timeout": 0}, {"retries": -1}, {"max_bytes": 0}, {"user_agent": " "}):
        with pytest.raises(ValueError, match="download config"):
            DownloadConfig(**bad)


def test_local_paths(tmp_path: Path) -> None:
    assert local_path("file:///data/a%20b.jpg", tmp_path) == Path("/data/a b.jpg")
    assert local_path("file://localhost/data/a.jpg", tmp_path) == Path("/data/a.jpg")
    assert local_path("images/a.jpg", tmp_path) == tmp_path / "images" / "a.jpg"
    assert local_path("/abs/a.jpg", tmp_path) == Path("/abs/a.jpg")
    assert local_path("file://otherhost/a.jpg", tmp_path) is None
    assert local_path("s3://bucket/a.jpg", tmp_path) is None


class _Collect:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def write(self, sample: Sample) -> None:
        self.keys.append(sample.key)


def _sample(key: str, size: int = 10) -> Sample:
    return Sample.build(key, jpg=b"\xff\xd8\xff" + b"x" * size)


def test_sink_writes_in_key_order_when_completions_arrive_shuffled() -> None:
    keys = [f"k-{i:02d}" for i in range(20)]
    arrival = keys[5:] + keys[:5][::-1]
    writer = _Collect()
    sink = KeyOrderedSink(writer, keys)  # type: ignore[arg-type]
    for key in arrival:
        sink.put(key, None if key == "k-07" else _sample(key))
    assert writer.keys == [key for key in keys if key != "k-07"]


def test_sink_stops_waiting_for_a_straggler_past_its_memory_limit() -> None:
    keys = [f"k-{i:02d}" for i in range(10)]
    writer = _Collect()
    sink = KeyOrderedSink(writer, keys, limit=250)  # type: ignore[arg-type]
    for key in keys[1:]:
        sink.put(key, _sample(key, 100))
    sink.put("k-00", _sample("k-00", 100))
    assert sorted(writer.keys) == keys and writer.keys[-1] == "k-00", "nothing lost, straggler written last"
    assert writer.keys[:3] == ["k-01", "k-02", "k-03"]
