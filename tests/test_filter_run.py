"""``passkit filter``: per-shard chain + global dedup/cap over shards from the download step."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image
from typer.testing import CliRunner

from filter_helpers import assert_no_private_metadata, bad_corpus, encode, exif_bytes, photo
from passkit.cli import app
from passkit.core.manifest import KEPT, read_manifest, write_manifest
from passkit.core.reasons import CAP_CREATOR, DEDUP_EVAL_SET, DEDUP_EXACT, DEDUP_NEAR
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths, list_shards, verify_shard
from passkit.core.tar import read_shard, write_shard
from passkit.run.filter import IMAGE_MISSING, FilterConfig, run_filter, shard_stages
from passkit.stages.cap import CapConfig
from passkit.stages.dedup import DedupConfig

CORPUS = bad_corpus()


def _attribution(creator: str) -> dict:
    return {"creator": creator, "title": "t", "license": "CC-BY-2.0", "latitude": 48.85, "longitude": 2.35}


def _download_row(key: str, status: str = KEPT, reason: str = "", **extra) -> dict:
    return {"key": key, "status": status, "reason": reason, "url": f"https://example.org/{key}.jpg",
            "http_status": 200 if status == KEPT else 404, **extra}  # fmt: skip


def _write_input(root: Path, index: int, samples: list[Sample], extra_rows: list[dict], unlisted: list[Sample] = ()):
    shard = ShardPaths(root, index)
    write_shard(shard.tar, [*samples, *unlisted])
    rows = [_download_row(s.key, sha256="0" * 64) for s in samples] + extra_rows
    write_manifest(shard.manifest, rows)
    return shard


def make_download_dir(root: Path) -> Path:
    """Two finished download shards (every corpus file, duplicates across shards, a prolific creator, rows the
    download rejected, a row without its sample, a sample without its row) and one unfinished shard."""
    bad = [Sample.build(f"bad-{f.name}", **{f.ext: f.data}, json=_attribution(f.name)) for f in CORPUS]
    base = photo(100, (240, 180))
    shard0 = [
        *bad[:15],
        Sample.build("dup-a-original", png=encode(base, "PNG"), json=_attribution("x")),
        *[
            Sample.build(f"prolific-{i}", jpg=encode(photo(200 + i), "JPEG"), json=_attribution("Pro"))
            for i in range(3)
        ],
    ]
    rejected = [
        _download_row("gone-404", "rejected", "download:http-404", latitude=1.5),
        _download_row("gone-timeout", "failed", "download:timeout"),
    ]
    _write_input(root, 0, shard0, [*rejected, _download_row("lost-sample", sha256="0" * 64)])
    shard1 = [
        *bad[15:],
        Sample.build("dup-b-exact", bmp=encode(base, "BMP"), json=_attribution("y")),
        Sample.build("dup-c-near", jpg=encode(base.resize((200, 150)), "JPEG", quality=70), json=_attribution("z")),
        Sample.build("gps-photo", jpg=encode(photo(300), "JPEG", exif=exif_bytes()), json=_attribution("w")),
        *[Sample.build(f"prolific-{i}", jpg=encode(photo(200 + i), "JPEG"), json=_attribution("pro ")) for i in (3, 4)],
    ]
    unlisted = [Sample.build("unlisted", jpg=encode(photo(400), "JPEG"), json=_attribution("u"))]
    _write_input(root, 1, shard1, [_download_row("gone-403", "rejected", "download:http-403")], unlisted)
    write_shard(ShardPaths(root, 2).tar, [Sample.build("unfinished", jpg=encode(photo(5), "JPEG"))])  # no manifest
    return root


@pytest.fixture
def download_dir(tmp_path: Path) -> Path:
    return make_download_dir(tmp_path / "download")


def _rows(out: Path) -> dict[str, dict]:
    rows = {}
    for shard in list_shards(out):
        for row in read_manifest(shard.manifest).to_pylist():
            assert row["key"] not in rows
            rows[row["key"]] = row
    return rows


def test_filter_end_to_end(download_dir: Path, tmp_path: Path):
    out = tmp_path / "filtered"
    cfg = FilterConfig(humans=None, cap=CapConfig(max_per_creator=3))
    summary = run_filter(download_dir, out, cfg)
    assert summary.ok and summary.processed == 2 and summary.unfinished_inputs == ["00002"]
    rows = _rows(out)
    input_rows = {}
    for index in (0, 1):
        input_rows.update({r["key"]: r for r in read_manifest(ShardPaths(download_dir, index).manifest).to_pylist()})
    assert set(rows) == set(input_rows) | {"unlisted"}
    assert summary.rows == len(rows) == summary.input_rows + 1
    # Rows the download step did not keep are carried over unchanged.
    for key in ("gone-404", "gone-timeout", "gone-403"):
        assert {name: rows[key][name] for name in input_rows[key]} == input_rows[key]
    for bad in CORPUS:
        assert rows[f"bad-{bad.name}"]["reason"] == bad.reason, bad.name
    assert (rows["lost-sample"]["status"], rows["lost-sample"]["reason"]) == ("failed", IMAGE_MISSING)
    assert rows["unlisted"]["status"] == KEPT
    # Cross-shard dedup: the PNG original (most pixels, first key) stays.
    assert rows["dup-a-original"]["status"] == KEPT
    assert (rows["dup-b-exact"]["reason"], rows["dup-b-exact"]["dup_of"]) == (DEDUP_EXACT, "dup-a-original")
    assert (rows["dup-c-near"]["reason"], rows["dup-c-near"]["dup_of"]) == (DEDUP_NEAR, "dup-a-original")
    # Cap across shards ("Pro" and "pro " are one creator): 3 of 5 kept.
    prolific = [rows[f"prolific-{i}"] for i in range(5)]
    assert sorted(r["reason"] for r in prolific) == ["", "", "", CAP_CREATOR, CAP_CREATOR]
    # Stored bytes: verified shards, no private metadata, no geo in the json.
    stored = 0
    for shard in list_shards(out):
        report = verify_shard(shard)
        assert report.ok, report.problems
        for sample in read_shard(shard.tar):
            assert rows[sample.key]["status"] == KEPT
            assert_no_private_metadata(sample.parts[sample.image_ext()])
            assert "latitude" not in sample.json() and "longitude" not in sample.json()
            stored += 1
    assert stored == summary.kept == sum(1 for r in rows.values() if r["status"] == KEPT)
    assert rows["gps-photo"]["status"] == KEPT and "gps" in rows["gps-photo"]["metadata_removed"]


def test_resume_and_rethreshold(download_dir: Path, tmp_path: Path):
    out = tmp_path / "filtered"
    first = run_filter(download_dir, out, FilterConfig(humans=None))
    tars = {p.name: p.read_bytes() for p in out.glob("*.tar")}
    manifests = {p.name: read_manifest(p) for p in out.glob("*.parquet")}
    again = run_filter(download_dir, out, FilterConfig(humans=None))
    assert (again.processed, again.resumed) == (0, 2) and again.counts == first.counts
    assert {p.name: p.read_bytes() for p in out.glob("*.tar")} == tars
    assert all(read_manifest(out / name).equals(table) for name, table in manifests.items())
    # Only the global pass reruns with new thresholds: no near-dedup now.
    loose = run_filter(download_dir, out, FilterConfig(humans=None, dedup=DedupConfig(near=False)))
    assert loose.processed == 0 and _rows(out)["dup-c-near"]["status"] == KEPT


def test_deterministic_output_and_two_workers(download_dir: Path, tmp_path: Path):
    run_filter(download_dir, tmp_path / "a", FilterConfig(humans=None))
    run_filter(download_dir, tmp_path / "b", FilterConfig(humans=None), workers=2)
    for name in ("00000.tar", "00001.tar"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_exclude_near_eval_set(download_dir: Path, tmp_path: Path):
    eval_dir = tmp_path / "eval" / "test"
    eval_dir.mkdir(parents=True)
    (eval_dir / "0001.jpg").write_bytes(encode(photo(300).resize((320, 240)), "JPEG", quality=80))
    (eval_dir / "broken.jpg").write_bytes(b"nope")
    summary = run_filter(download_dir, tmp_path / "out", FilterConfig(humans=None), exclude_near=[tmp_path / "eval"])
    row = _rows(tmp_path / "out")["gps-photo"]
    assert row["reason"] == DEDUP_EVAL_SET and row["dup_of"].endswith("0001.jpg")
    assert summary.eval_images == 1 and len(summary.eval_unreadable) == 1


def _exploding_stage(batch: list[Sample], cfg: object) -> object:
    if any(sample.key.startswith("dup-b-exact") for sample in batch):
        raise RuntimeError("stage bug")
    from passkit.core.stage import StageResult

    rows = pa.table({"key": [s.key for s in batch], "status": [KEPT] * len(batch), "reason": [""] * len(batch)})
    return StageResult(batch, rows)


def test_a_failing_shard_does_not_stop_the_run(download_dir: Path, tmp_path: Path):
    stages = [*shard_stages(FilterConfig(humans=None)), ("explode", _exploding_stage, None)]
    summary = run_filter(download_dir, tmp_path / "out", FilterConfig(humans=None), stages=stages)
    assert [name for name, _ in summary.failed] == ["00001"] and not summary.ok
    assert [s.name for s in list_shards(tmp_path / "out")] == ["00000"]
    assert not ShardPaths(tmp_path / "out" / "per-shard", 1).done  # retried by the next run


def test_cli_filter_prints_a_summary_that_adds_up(download_dir: Path, tmp_path: Path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["filter", str(download_dir), "--out", str(out), "--resize", "100", "--humans", "off"]
    )
    assert result.exit_code == 0, result.output
    assert "add up" in result.output and "image:corrupt" in result.output and "dedup:exact" in result.output
    for shard in list_shards(out):
        for sample in read_shard(shard.tar):
            assert max(Image.open(io.BytesIO(sample.parts[sample.image_ext()])).size) <= 100
    bad = CliRunner().invoke(
        app, ["filter", str(download_dir), "--out", str(out), "--humans", "off", "--exclude-near", "/nonexistent"]
    )
    assert bad.exit_code == 2 and "does not exist" in bad.output
    empty = CliRunner().invoke(app, ["filter", str(tmp_path / "nothing"), "--out", str(out)])
    assert empty.exit_code == 2 and "no shards" in empty.output


def test_truncated_input_tar_is_recorded_not_fatal(tmp_path: Path):
    root = tmp_path / "download"
    samples = [Sample.build(f"s-{i:02d}", jpg=encode(photo(i), "JPEG"), json=_attribution(f"c{i}")) for i in range(6)]
    shard = _write_input(root, 0, samples, [])
    data = shard.tar.read_bytes()
    shard.tar.write_bytes(data[: len(data) // 2])
    summary = run_filter(root, tmp_path / "out", FilterConfig(humans=None))
    rows = _rows(tmp_path / "out")
    assert summary.rows == 6 and summary.problems and not summary.failed
    missing = [key for key, row in rows.items() if row["reason"] == IMAGE_MISSING]
    assert 0 < len(missing) < 6 and all(rows[key]["status"] == "failed" for key in missing)
    assert verify_shard(ShardPaths(tmp_path / "out", 0)).ok


def test_exact_key_pixels_through_the_filter(tmp_path: Path):
    root = tmp_path / "download"
    image = photo(1, (160, 120))
    samples = [
        Sample.build("a-png", png=encode(image, "PNG", compress_level=9), json=_attribution("a")),
        Sample.build("b-bmp", bmp=encode(image, "BMP"), json=_attribution("b")),
    ]
    _write_input(root, 0, samples, [])
    cfg = FilterConfig(humans=None, dedup=DedupConfig(exact_key="pixels"))
    run_filter(root, tmp_path / "out", cfg)
    rows = _rows(tmp_path / "out")
    assert (rows["b-bmp"]["reason"], rows["b-bmp"]["dup_of"]) == (DEDUP_EXACT, "a-png")


def test_retry_rounds_of_the_download_count_once(download_dir: Path, tmp_path: Path):
    # A later download round (--retry-failed) fetched "gone-timeout" into a new shard: its row there is current.
    retried = Sample.build("gone-timeout", jpg=encode(photo(600), "JPEG"), json=_attribution("r"))
    _write_input(download_dir, 3, [retried], [])
    out = tmp_path / "filtered"
    summary = run_filter(download_dir, out, FilterConfig(humans=None))
    rows = _rows(out)  # asserts one row per key across all output manifests
    assert rows["gone-timeout"]["status"] == KEPT
    assert summary.rows == len(rows) == summary.input_rows + 1  # + the unlisted sample
    assert "gone-timeout" in {s.key for s in read_shard(ShardPaths(out, 3).tar)}


def test_same_pixels_coded_differently_are_exact_by_default(tmp_path: Path):
    root = tmp_path / "download"
    image = photo(1, (160, 120))
    baseline = encode(image, "JPEG", quality=90)
    progressive = encode(image, "JPEG", quality=90, progressive=True)
    assert baseline != progressive
    samples = [
        Sample.build("a-png", png=encode(image, "PNG", compress_level=9), json=_attribution("a")),
        Sample.build("b-png-fast", png=encode(image, "PNG", compress_level=1), json=_attribution("b")),
        Sample.build("c-jpeg", jpg=baseline, json=_attribution("c")),
        Sample.build("d-jpeg-progressive", jpg=progressive, json=_attribution("d")),
        Sample.build("e-jpeg-recompressed", jpg=encode(image, "JPEG", quality=60), json=_attribution("e")),
    ]
    _write_input(root, 0, samples, [])
    run_filter(root, tmp_path / "out", FilterConfig(humans=None))
    rows = _rows(tmp_path / "out")
    assert rows["a-png"]["status"] == KEPT
    assert (rows["b-png-fast"]["reason"], rows["b-png-fast"]["dup_of"]) == (DEDUP_EXACT, "a-png")
    jpegs = {rows[k]["reason"] for k in ("c-jpeg", "d-jpeg-progressive")}
    assert DEDUP_EXACT in jpegs, "one of two codings of the same JPEG coefficients is an exact duplicate"
    assert rows["e-jpeg-recompressed"]["reason"] == DEDUP_NEAR  # other pixels, same picture
