"""`passkit filter` runs the human filter by default: real photos with people never reach the output shards."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_samples
from passkit.cli import app
from passkit.core.manifest import KEPT, read_manifest, write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import read_shard, write_shard
from passkit.run.filter import FilterConfig, run_filter, shard_stages

WITH_PEOPLE = ["coco-train2017-000000000036.jpg", "coco-train2017-000000000165.jpg"]
WITHOUT_PEOPLE = ["coco-train2017-000000000025.jpg", "coco-train2017-000000000034.jpg"]


def _download_dir(root: Path, images: Path) -> Path:
    samples = []
    for name in WITH_PEOPLE + WITHOUT_PEOPLE:
        key = name.removesuffix(".jpg")
        attribution = {"creator": "c", "title": "t", "license": "CC-BY-2.0", "page_url": "https://x.org/p"}
        samples.append(Sample.build(key, jpg=(images / name).read_bytes(), json=attribution))
    shard = ShardPaths(root, 0)
    write_shard(shard.tar, samples)
    write_manifest(shard.manifest, [{"key": s.key, "status": KEPT, "reason": ""} for s in samples])
    return root


def test_humans_run_by_default_between_validate_and_privacy():
    assert [name for name, _, _ in shard_stages(FilterConfig())] == ["validate", "humans", "pii", "privacy", "dedup"]
    assert "humans" not in [name for name, _, _ in shard_stages(FilterConfig(humans=None))]


def test_filter_removes_real_photos_with_people(people_dev: Path, shared_models: Path, tmp_path: Path):
    source = _download_dir(tmp_path / "raw", people_dev / "images")
    out = tmp_path / "kept"
    summary = run_filter(source, out, FilterConfig())
    assert summary.ok
    rows = {row["key"]: row for row in read_manifest(ShardPaths(out, 0).manifest).to_pylist()}
    for name in WITH_PEOPLE:
        assert rows[name.removesuffix(".jpg")]["reason"].startswith("humans:"), rows[name.removesuffix(".jpg")]
    for name in WITHOUT_PEOPLE:
        assert rows[name.removesuffix(".jpg")]["status"] == KEPT
    assert all(0 <= row["humans_score"] <= 1 for row in rows.values())
    stored = {sample.key for sample in read_shard(ShardPaths(out, 0).tar)}
    assert stored == {name.removesuffix(".jpg") for name in WITHOUT_PEOPLE}


def test_missing_models_stop_the_filter_before_any_work(tmp_path: Path, monkeypatch):
    source = tmp_path / "raw"
    samples = make_samples(3)
    write_shard(ShardPaths(source, 0).tar, samples)
    write_manifest(ShardPaths(source, 0).manifest, [{"key": s.key, "status": KEPT, "reason": ""} for s in samples])
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "no-models"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PASSKIT_OFFLINE", "1")
    result = CliRunner().invoke(app, ["filter", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "PASSKIT_MODELS" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


@pytest.mark.parametrize("preset", ["nonsense"])
def test_unknown_humans_preset_is_a_clear_error(tmp_path: Path, preset: str):
    result = CliRunner().invoke(app, ["filter", str(tmp_path), "--out", str(tmp_path / "o"), "--humans", preset])
    assert result.exit_code == 2
