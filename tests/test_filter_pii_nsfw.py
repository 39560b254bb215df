"""`passkit filter` runs the PII stage (plates) by default after humans, the NSFW stage on request."""

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from filter_helpers import photo
from passkit.cli import app
from passkit.core.manifest import KEPT, read_manifest, write_manifest
from passkit.core.reasons import PII_PLATE, PII_TEXT
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import read_shard, write_shard
from passkit.detect import registry
from passkit.run.filter import FilterConfig, run_filter, shard_stages
from passkit.stages.nsfw import NsfwConfig
from passkit.stages.pii import PiiConfig
from pii_helpers import document_scene, jpeg, plate_scene
from test_nsfw_stage import needs_model

ATTRIBUTION = {"creator": "c", "title": "t", "license": "CC-BY-2.0", "page_url": "https://x.org/p"}


@pytest.fixture(scope="module")
def download_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    samples = [
        Sample.build("car", jpg=jpeg(plate_scene()), json=ATTRIBUTION),
        Sample.build("letter", jpg=jpeg(document_scene()), json=ATTRIBUTION),
        Sample.build("texture", jpg=jpeg(photo(11, (640, 480))), json=ATTRIBUTION),
    ]
    shard = ShardPaths(root, 0)
    write_shard(shard.tar, samples)
    write_manifest(shard.manifest, [{"key": s.key, "status": KEPT, "reason": ""} for s in samples])
    return root


def _rows(out: Path) -> dict[str, dict]:
    return {row["key"]: row for row in read_manifest(ShardPaths(out, 0).manifest).to_pylist()}


def test_chain_order():
    assert [name for name, _, _ in shard_stages(FilterConfig(nsfw=NsfwConfig()))] == [
        "validate",
        "humans",
        "pii",
        "nsfw",
        "privacy",
        "dedup",
    ]
    assert "pii" not in [name for name, _, _ in shard_stages(FilterConfig(pii=None))]
    assert FilterConfig().pii == PiiConfig() and not FilterConfig().pii.text and FilterConfig().nsfw is None


def test_plates_are_filtered_by_default_with_scores_in_the_manifest(download_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    summary = run_filter(download_dir, out, FilterConfig(humans=None))
    assert summary.ok
    rows = _rows(out)
    assert rows["car"]["reason"] == PII_PLATE and rows["car"]["filter_stage"] == "pii"
    assert rows["letter"]["status"] == KEPT and rows["texture"]["status"] == KEPT
    for row in rows.values():
        assert {"pii_score", "pii_boxes", "pii_text_area"} <= set(row)
    assert rows["car"]["pii_score"] >= 0.5 and rows["texture"]["pii_score"] == 0.0
    assert rows["letter"]["pii_text_area"] > 0.2  # measured even though the text rule is off
    assert {s.key for s in read_shard(ShardPaths(out, 0).tar)} == {"letter", "texture"}
    assert summary.counts[("pii", PII_PLATE)] == 1


@needs_model
def test_text_rule_and_nsfw_through_the_filter(download_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    cfg = FilterConfig(humans=None, pii=PiiConfig(text=True), nsfw=NsfwConfig())
    assert run_filter(download_dir, out, cfg).ok
    rows = _rows(out)
    assert rows["letter"]["reason"] == PII_TEXT
    assert rows["texture"]["status"] == KEPT and 0 <= rows["texture"]["nsfw_score"] < 0.5
    assert rows["car"]["nsfw_score"] is None  # rejected by pii before nsfw saw it


def test_cli_flags(download_dir: Path, tmp_path: Path):
    runner = CliRunner()
    base = ["filter", str(download_dir), "--humans", "off"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "text"), "--pii-text"])
    assert result.exit_code == 0, result.output
    assert _rows(tmp_path / "text")["letter"]["reason"] == PII_TEXT
    assert "pii" in result.output
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "off"), "--pii", "off"])
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "off")
    assert all(row["status"] == KEPT for row in rows.values()) and "pii_score" not in rows["car"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "x"), "--nsfw", "maybe"])
    assert result.exit_code == 2


def test_missing_nsfw_model_stops_the_filter_before_any_work(download_dir: Path, tmp_path: Path, monkeypatch):
    entry = registry.MODELS["open_nsfw"]
    monkeypatch.setitem(registry.MODELS, entry.name, dataclasses.replace(entry, package_files=("no_such_pkg/x.onnx",)))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PASSKIT_OFFLINE", "1")
    out = tmp_path / "out"
    args = ["filter", str(download_dir), "--out", str(out), "--humans", "off", "--nsfw", "on"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "open-nsfw.onnx" in result.output and "PASSKIT_MODELS" in result.output
    assert not out.exists() or not any(out.rglob("*.parquet"))
