"""passkit download against a real, misbehaving HTTP server on 127.0.0.1 (no mocks of the client)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from download_helpers import image_bytes, serving, write_candidates
from passkit.core.manifest import read_manifest
from passkit.core.shards import list_shards, verify_shard
from passkit.core.tar import read_shard
from passkit.download import DownloadConfig, DownloadError, download, final_rows, first_pass_complete

FAST = DownloadConfig(
    concurrency=8,
    per_host=8,
    timeout=2.0,
    connect_timeout=1.0,
    retries=2,
    backoff=0.01,
    max_backoff=0.05,
    max_retry_after=5.0,
    max_redirects=3,
    max_bytes=200_000,
)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def all_manifest_rows(out: Path) -> pa.Table:
    return pa.concat_tables([read_manifest(shard.manifest) for shard in list_shards(out)])


def stored_samples(out: Path) -> dict[str, dict[str, bytes]]:
    samples = {}
    for shard in list_shards(out):
        for sample in read_shard(shard.tar):
            assert sample.key not in samples, f"{sample.key} stored twice"
            samples[sample.key] = sample.parts
    return samples


def test_failure_matrix_every_candidate_one_row_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(image_bytes(11, "PNG"))
    (tmp_path / "images" / "b.jpg").write_bytes(image_bytes(12))
    (tmp_path / "notes.jpg").write_text("just text")
    with serving() as server:
        b = server.base
        expected = {  # key: (url, reason, attempts)
            "ok-0": (f"{b}/img/0.jpg", "", 1),
            "png-1": (f"{b}/png/1.jpg", "", 1),
            "redirect-7": (f"{b}/redirect/7.jpg", "", 1),
            "missing": (f"{b}/status/404.jpg", "download:http-404", 1),
            "forbidden": (f"{b}/status/403.jpg", "download:http-403", 1),
            "gone": (f"{b}/status/410.jpg", "download:http-410", 1),
            "flaky": (f"{b}/flaky/8.jpg", "", 2),
            "busy": (f"{b}/busy/9.jpg", "", 2),
            "busy-long": (f"{b}/busy-long.jpg", "download:http-429", 1),
            "down": (f"{b}/status/503.jpg", "download:http-503", 3),
            "slow": (f"{b}/slow.jpg", "download:timeout", 3),
            "big": (f"{b}/big.jpg", "download:too-large", 1),
            "big-chunked": (f"{b}/big-chunked.jpg", "download:too-large", 1),
            "html": (f"{b}/html.jpg", "download:not-image", 1),
            "html-as-jpeg": (f"{b}/html-as-jpeg.jpg", "download:not-image", 1),
            "loop": (f"{b}/loop/0", "download:too-many-redirects", 1),
            "reset": (f"{b}/reset.jpg", "download:connection", 3),
            "refused": (f"http://127.0.0.1:{_closed_port()}/x.jpg", "download:connection", 3),
            "noai": (f"{b}/noai.jpg", "download:opt-out", 1),
            "noimageai": (f"{b}/noimageai.jpg", "download:opt-out", 1),
            "ours-noai": (f"{b}/ours-noai.jpg", "download:opt-out", 1),
            "otherbot-noai": (f"{b}/otherbot-noai.jpg", "", 1),
            "ftp": ("ftp://127.0.0.1/x.jpg", "download:bad-url", 1),
            "empty-url": ("", "download:bad-url", 1),
            "local-file-url": ((tmp_path / "images" / "b.jpg").as_uri(), "", 1),
            "local-relative": ("images/a.png", "", 1),
            "local-absolute": (str(tmp_path / "images" / "b.jpg"), "", 1),
            "local-missing": ("images/nope.jpg", "download:file-missing", 1),
            "local-text": ("notes.jpg", "download:not-image", 1),
            "local-folder": ("images", "download:file-unreadable", 1),
        }
        candidates = write_candidates(tmp_path / "candidates.parquet", {k: v[0] for k, v in expected.items()})
        report = download(candidates, tmp_path / "out", FAST, shard_size=7)
        hits, times, agents = dict(server.hits), dict(server.times), set(server.agents)

    out = tmp_path / "out"
    assert report.complete and report.shards_run == 5
    rows = all_manifest_rows(out)
    assert Counter(rows["key"].to_pylist()) == Counter(list(expected)), "every candidate exactly one row"
    by_key = {row["key"]: row for row in rows.to_pylist()}
    for key, (_url, reason, attempts) in expected.items():
        row = by_key[key]
        assert (row["reason"], row["attempts"]) == (reason, attempts), key
        assert row["status"] == ("kept" if not reason else "failed"), key
    assert by_key["missing"]["http_status"] == 404 and by_key["ok-0"]["http_status"] == 200
    assert by_key["big"]["bytes"] > FAST.max_bytes and by_key["html"]["content_type"].startswith("text/html")
    assert report.counts == dict(Counter(r or "kept" for _u, r, _a in expected.values()))
    assert sum(report.counts.values()) == len(expected)

    # Politeness: 4xx is not retried, Retry-After is waited for, redirects are limited, our User-Agent is sent.
    assert hits["/status/404.jpg"] == 1 and hits["/status/503.jpg"] == 3
    busy = times["/busy/9.jpg"]
    assert busy[1] - busy[0] >= 0.95
    assert sum(n for path, n in hits.items() if path.startswith("/loop/")) == FAST.max_redirects + 1
    assert hits["/html.jpg"] == 1 and hits["/big.jpg"] == 1
    assert agents == {FAST.user_agent} and FAST.user_agent.startswith("passkit/")

    # Kept samples: bytes verbatim, extension from magic bytes, attribution + source fields in the json.
    samples = stored_samples(out)
    kept = {key for key, (_u, reason, _a) in expected.items() if not reason}
    assert set(samples) == kept
    assert samples["ok-0"]["jpg"] == image_bytes(0)
    assert samples["png-1"]["png"] == image_bytes(1, "PNG") and "jpg" not in samples["png-1"]
    assert samples["local-relative"]["png"] == (tmp_path / "images" / "a.png").read_bytes()
    assert samples["redirect-7"]["jpg"] == image_bytes(7)
    for key in kept:
        (ext,) = set(samples[key]) - {"json"}
        assert by_key[key]["sha256"] == hashlib.sha256(samples[key][ext]).hexdigest()
        assert by_key[key]["ext"] == ext
        meta = json.loads(samples[key]["json"])
        assert meta["key"] == key and meta["url"] == expected[key][0]
        for field in ("creator", "title", "page_url", "license", "license_url", "source", "photo_id", "date_taken"):
            assert field in meta, field
    assert all(verify_shard(shard).ok for shard in list_shards(out))


def test_retry_after_pauses_the_whole_host(tmp_path: Path) -> None:
    with serving() as server:
        urls = {"a-busy": f"{server.base}/busy/1.jpg", **{f"b-{i}": f"{server.base}/img/{i}.jpg" for i in range(6)}}
        candidates = write_candidates(tmp_path / "c.parquet", urls)
        config = DownloadConfig(concurrency=2, per_host=2, timeout=5, backoff=0.01)
        report = download(candidates, tmp_path / "out", config)
        first_429 = server.times["/busy/1.jpg"][0]
        later = sorted(t for path, times in server.times.items() if path.startswith("/img/") for t in times)
    assert report.counts == {"kept": 7}
    # One request may have been in flight when the 429 came; the rest waited for Retry-After: 1.
    assert later[-1] - first_429 >= 0.95 and sum(t - first_429 < 0.5 for t in later) <= 2


def test_opt_out_can_be_switched_off(tmp_path: Path) -> None:
    with serving() as server:
        candidates = write_candidates(tmp_path / "c.parquet", {"noai": f"{server.base}/noai.jpg"})
        report = download(candidates, tmp_path / "out", DownloadConfig(opt_out=(), timeout=5))
    assert report.counts == {"kept": 1}


def test_resume_skips_finished_shards_and_refuses_another_plan(tmp_path: Path) -> None:
    with serving() as server:
        urls = {f"img-{i}": f"{server.base}/img/{i}.jpg" for i in range(9)}
        candidates = write_candidates(tmp_path / "c.parquet", urls)
        assert not first_pass_complete(tmp_path / "out")
        first = download(candidates, tmp_path / "out", FAST, shard_size=4)
        assert first_pass_complete(tmp_path / "out")
        before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()}
        hits = sum(server.hits.values())
        second = download(candidates, tmp_path / "out", FAST)  # shard size comes from the folder's plan
        assert sum(server.hits.values()) == hits, "a finished shard is not fetched again"
        with pytest.raises(DownloadError, match="shard-size 4"):
            download(candidates, tmp_path / "out", FAST, shard_size=5)
        other = write_candidates(tmp_path / "other.parquet", {**urls, "img-9": f"{server.base}/img/9.jpg"})
        with pytest.raises(DownloadError, match="other candidates"):
            download(other, tmp_path / "out", FAST)
    assert (first.shards_run, first.shards_skipped) == (3, 0)
    assert (second.shards_run, second.shards_skipped) == (0, 3)
    assert first.counts == second.counts == {"kept": 9}
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()} == before


def test_retry_failed_refetches_only_retryable_rows_into_new_shards(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with serving() as server:
        b = server.base
        urls = {
            **{f"img-{i}": f"{b}/img/{i}.jpg" for i in range(5)},
            **{f"outage-{i}": f"{b}/outage/{i}.jpg" for i in range(3)},
            "missing": f"{b}/status/404.jpg",
            "html": f"{b}/html.jpg",
        }
        candidates = write_candidates(tmp_path / "c.parquet", urls)
        server.outage = True
        first = download(candidates, out, FAST, shard_size=2)  # shards 00000-00004
        assert first.counts == {"kept": 5, "download:http-503": 3, "download:http-404": 1, "download:not-image": 1}
        finished = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        still_down = download(candidates, out, FAST, retry_failed=True)  # round 2: shards 00005-00006
        finished.update({p.name: p.read_bytes() for p in out.iterdir() if p.is_file()})
        server.outage = False
        hits_404 = server.hits["/status/404.jpg"]
        retried = download(candidates, out, FAST, retry_failed=True)  # round 3: shards 00007-00008
        assert server.hits["/status/404.jpg"] == hits_404, "a non-retryable failure is not fetched again"
        again = download(candidates, out, FAST, retry_failed=True)

    assert still_down.retried == 3 and still_down.counts == first.counts
    assert retried.retried == 3 and retried.shards_run == 2 and retried.shards_skipped == 7
    assert retried.counts == {"kept": 8, "download:http-404": 1, "download:not-image": 1}
    assert again.retried == 0 and again.shards_run == 0 and again.counts == retried.counts
    for name, data in finished.items():
        assert (out / name).read_bytes() == data, f"{name} was rewritten"
    round_3 = pa.concat_tables([read_manifest(out / f"0000{i}.parquet") for i in (7, 8)])
    assert sorted(round_3["key"].to_pylist()) == ["outage-0", "outage-1", "outage-2"]
    assert set(round_3["round"].to_pylist()) == {3} and set(round_3["status"].to_pylist()) == {"kept"}
    final = final_rows(out)
    assert final["key"].to_pylist() == sorted(urls), "one final row per candidate"
    assert {r["key"]: r["shard"] for r in final.to_pylist()}["missing"] < 5
    assert set(stored_samples(out)) == {k for k in urls if k.startswith(("img", "outage"))}


def test_bad_candidates_are_a_clear_error_before_any_download(tmp_path: Path) -> None:
    table = pq.read_table(write_candidates(tmp_path / "c.parquet", {"a": "x.jpg", "b": "y.jpg"}))
    pq.write_table(table.drop_columns(["license_url"]), tmp_path / "no-column.parquet")
    pq.write_table(table.set_column(0, "key", pa.array(["a", "a"])), tmp_path / "dup.parquet")
    pq.write_table(table.set_column(0, "key", pa.array(["a", "B.jpg"])), tmp_path / "bad-key.parquet")
    for name, message in [("no-column", "license_url"), ("dup", "more than once"), ("bad-key", "invalid keys")]:
        with pytest.raises(DownloadError, match=message):
            download(tmp_path / f"{name}.parquet", tmp_path / name, FAST)
        assert not list_shards(tmp_path / name, done_only=False)
    with pytest.raises(DownloadError, match="cannot read"):
        download(tmp_path / "absent.parquet", tmp_path / "absent", FAST)


def _kept(out: Path) -> dict[str, str]:
    final = final_rows(out)
    kept = {r["key"]: r["sha256"] for r in final.to_pylist() if r["status"] == "kept"}
    stored = {
        key: hashlib.sha256(parts[next(e for e in parts if e != "json")]).hexdigest()
        for key, parts in stored_samples(out).items()
    }
    assert stored == kept
    return kept


def test_sigkill_mid_download_then_restart_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    with serving(latency=0.08) as server:
        urls = {f"img-{i:03d}": f"{server.base}/img/{i}.jpg" for i in range(96)}
        urls.update({f"gone-{i}": f"{server.base}/status/404.jpg" for i in range(4)})
        urls.update({f"html-{i}": f"{server.base}/html.jpg" for i in range(4)})
        candidates = write_candidates(tmp_path / "c.parquet", urls)
        reference = tmp_path / "reference"
        download(candidates, reference, DownloadConfig(concurrency=32, per_host=32, timeout=10), shard_size=8)

        out = tmp_path / "killed"
        command = [
            sys.executable,
            "-m",
            "passkit.cli",
            "download",
            str(candidates),
            "--out",
            str(out),
            "--workers",
            "2",
            "--shard-size",
            "8",
            "--concurrency",
            "2",
            "--timeout",
            "10",
        ]
        process = subprocess.Popen(
            command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while not list_shards(out) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        time.sleep(0.15)  # the other worker is now in the middle of a shard
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        done_at_kill = len(list_shards(out))
        assert 1 <= done_at_kill < 13, "the kill must land mid-download"
        restarted = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert f"{done_at_kill} already done" in restarted.stdout
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
    assert _kept(out) == _kept(reference) and len(_kept(out)) == 96
    assert Counter(all_manifest_rows(out)["key"].to_pylist()) == Counter(list(urls))
    assert all(verify_shard(shard).ok for shard in list_shards(out))


def test_cli_download_prints_a_summary_that_adds_up(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from passkit.cli import app

    (tmp_path / "a.jpg").write_bytes(image_bytes(1))
    (tmp_path / "b.png").write_bytes(image_bytes(2, "PNG"))
    candidates = write_candidates(tmp_path / "c.parquet", {"a": "a.jpg", "b": "b.png", "c": "missing.jpg"})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["download", str(candidates), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "download:file-missing" in result.output
    assert "2 images stored" in result.output and "1 downloaded, 0 already done" in result.output
    rerun = CliRunner().invoke(app, ["download", str(candidates), "--out", str(out), "--shard-size", "2"])
    assert rerun.exit_code == 2 and "shard-size 10000" in rerun.output
    bad = CliRunner().invoke(app, ["download", str(candidates), "--out", str(out), "--max-bytes", "lots"])
    assert bad.exit_code == 2 and "cannot read size" in bad.output


def test_shard_tasks_carry_only_their_own_rows(tmp_path: Path) -> None:
    import pickle

    from passkit.download.runner import load_plan, plan_tasks, scan

    urls = {f"img-{i:05d}": f"http://127.0.0.1:9/img/{i}.jpg" for i in range(20_000)}
    path = write_candidates(tmp_path / "c.parquet", urls)
    candidates = scan(path)
    (tmp_path / "out").mkdir()
    tasks = plan_tasks(tmp_path / "out", candidates, load_plan(tmp_path / "out", candidates, 100), FAST, tmp_path)
    assert len(tasks) == 200 and tasks[-1].candidate_rows()["key"].to_pylist()[-1] == "img-19999"
    assert tasks[7].candidate_rows()["key"].to_pylist() == [f"img-{i:05d}" for i in range(700, 800)]
    assert len(pickle.dumps(tasks[0])) * 50 < len(pickle.dumps(pq.read_table(path))), "a task pickles its rows only"
