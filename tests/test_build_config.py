"""`passkit build` config: the TOML schema, its errors, the printed example."""

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from passkit.cli import app
from passkit.config import (
    SCHEMA,
    BuildConfig,
    ConfigError,
    config_hash,
    from_dict,
    load_config,
    render,
    unexposed_fields,
    with_overrides,
)
from passkit.stages.humans import HumansConfig


def test_printed_default_config_loads_back_to_the_defaults():
    text = CliRunner().invoke(app, ["build", "--print-default-config"]).output
    assert text == render()
    assert from_dict(tomllib.loads(text)) == BuildConfig()
    for section in SCHEMA:  # every key documented, every section present
        if section.name:
            assert f"[{section.name}]" in text
        for key in section.keys:
            assert key.doc and (f"\n{key.name} = " in text or f"\n# {key.name} = " in text), key.name


def test_every_stage_setting_is_reachable_from_toml():
    assert unexposed_fields() == set()


def test_a_full_config_maps_onto_the_stage_dataclasses(tmp_path: Path):
    config = tmp_path / "sub" / "build.toml"
    config.parent.mkdir()
    config.write_text(
        """out = "../runs/a"
[sources]
paths = ["pool.parquet", "yfcc:/data/yfcc100m_dataset.bz2"]
columns = { url = "image_url" }
[policy]
license = "CC-BY-4.0,CC-BY-SA-*"
[cap]
max_per_creator = 0
[download]
shard_size = 500
max_bytes = "2MB"
opt_out = []
[filter]
batch_size = 8
[filter.humans]
preset = "fast"
threshold = 0.25
models = "models"
[privacy]
resize_max_side = 500
[dedup]
near_threshold = 6
eval_threshold = 4
exclude_near = ["eval"]
[runner]
kind = "ray"
gpus_per_actor = 0.5
"""
    )
    cfg = load_config(config)
    assert cfg.out == (tmp_path / "runs" / "a").resolve()
    assert cfg.sources.paths == (str(config.parent / "pool.parquet"), "yfcc:/data/yfcc100m_dataset.bz2")
    assert cfg.sources.columns == {"url": "image_url"}
    assert cfg.select.policy == "CC-BY-4.0,CC-BY-SA-*" and cfg.select.max_per_creator == 0
    assert cfg.filter.cap.max_per_creator is None  # 0 = no cap, in both places
    assert cfg.sharding.shard_size == 500 and cfg.download.max_bytes == 2_000_000 and cfg.download.opt_out == ()
    assert cfg.filter.humans == HumansConfig(preset="fast", threshold=0.25)
    assert cfg.humans_options.models == str(config.parent / "models")
    assert cfg.filter.batch_size == 8 and cfg.filter.privacy.resize_max_side == 500
    assert (cfg.filter.dedup.near_threshold, cfg.filter.dedup.eval_threshold) == (6, 4)
    assert cfg.dedup_options.exclude_near == (str(config.parent / "eval"),)
    assert cfg.runner.kind == "ray" and cfg.runner.gpus_per_actor == 0.5
    # the resolved config written into RUN loads back to the same settings
    assert from_dict(tomllib.loads(render(cfg))) == cfg


def test_humans_off_drops_the_stage_but_keeps_its_settings():
    cfg = from_dict({"filter": {"humans": {"enabled": False, "preset": "fast"}}})
    assert cfg.filter_config.humans is None and cfg.filter.humans.preset == "fast"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"filter": {"humans": {"threshold": "high"}}},
            'filter.humans.threshold: expected a number in [0, 1], got "high"',
        ),
        ({"filter": {"humans": {"threshold": 1.5}}}, "filter.humans.threshold: expected a number in [0, 1], got 1.5"),
        (
            {"filter": {"humans": {"preset": "huge"}}},
            'filter.humans.preset: expected one of fast, default, strong, got "huge"',
        ),
        ({"filter": {"humans": {"tresholds": 0.5}}}, "filter.humans.tresholds: unknown key"),
        ({"downlaod": {}}, "downlaod: unknown key"),
        ({"download": {"timeout": True}}, "download.timeout: expected a number, got true"),
        ({"download": {"retries": 1.5}}, "download.retries: expected an integer, got 1.5"),
        ({"download": {"max_bytes": "lots"}}, "download.max_bytes: cannot read size 'lots'"),
        ({"download": {"concurrency": 0}}, "[download]: download config: concurrency must be > 0, got 0"),
        ({"download": {"shard_size": 0}}, "download.shard_size: expected an integer >= 1, got 0"),
        ({"download": 3}, "download: expected a table [download], got 3"),
        ({"sources": {"paths": "pool.csv"}}, 'sources.paths: expected a list of strings, got "pool.csv"'),
        ({"policy": {"license": "CC-BY-9.9"}}, "[policy]:"),
        ({"runner": {"kind": "slurm"}}, 'runner.kind: expected local or ray, got "slurm"'),
        ({"privacy": {"resize_max_side": 8}}, "privacy.resize_max_side: expected 0 or an integer >= 16, got 8"),
        ({"release": {"include_gps": True}}, "release.include_gps: needs privacy.keep_geo = true"),
    ],
)
def test_bad_values_name_the_key_path(data, message):
    with pytest.raises(ConfigError) as error:
        from_dict(data)
    assert message in str(error.value)


def test_unreadable_or_invalid_toml_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_text("[download\nshard_size = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_hash_covers_the_data_settings_not_the_runner_or_release():
    base = BuildConfig()
    assert config_hash(base) == config_hash(from_dict({"runner": {"kind": "ray", "workers": 7}}))
    assert config_hash(base) == config_hash(from_dict({"release": {"name": "other"}, "out": "elsewhere"}))
    assert config_hash(base) != config_hash(from_dict({"dedup": {"near_threshold": 7}}))
    assert config_hash(base) != config_hash(from_dict({"filter": {"humans": {"enabled": False}}}))


def test_command_line_overrides():
    cfg = with_overrides(BuildConfig(), ray_address="auto", workers=3)
    assert (cfg.runner.kind, cfg.runner.ray_address, cfg.runner.workers) == ("ray", "auto", 3)
    with pytest.raises(ConfigError, match=r"runner\.workers"):
        with_overrides(BuildConfig(), workers=0)
    with pytest.raises(ConfigError, match=r"runner\.kind"):
        with_overrides(BuildConfig(), runner="slurm")


def test_cli_build_reports_config_errors_with_exit_2(tmp_path: Path):
    (tmp_path / "c.toml").write_text('[filter.humans]\nthreshold = "high"\n')
    result = CliRunner().invoke(app, ["build", str(tmp_path / "c.toml")])
    assert result.exit_code == 2
    assert "filter.humans.threshold" in result.output
    assert CliRunner().invoke(app, ["build"]).exit_code == 2


def test_build_config_fields_are_all_rendered():
    names = {f.name for f in fields(BuildConfig)}
    assert names == {"output", "sources", "select", "download", "sharding", "filter", "humans_options",
                     "pii_options", "nsfw_options", "dedup_options", "release", "runner"}  # fmt: skip


def test_pii_and_nsfw_sections_reach_the_filter_config(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text(
        "[filter.pii]\ntext = true\nplate_threshold = 0.7\n[filter.nsfw]\nenabled = true\nthreshold = 0.9\n"
    )
    cfg = load_config(path).filter_config
    assert cfg.pii is not None and cfg.pii.text and cfg.pii.plate and cfg.pii.plate_threshold == 0.7
    assert cfg.nsfw is not None and cfg.nsfw.threshold == 0.9
    default = BuildConfig().filter_config
    assert default.pii is not None and not default.pii.text and default.nsfw is None
    path.write_text("[filter.pii]\nenabled = false\n")
    assert load_config(path).filter_config.pii is None
    path.write_text("[filter.nsfw]\nthreshold = 2\n")
    with pytest.raises(ConfigError, match=r"filter\.nsfw\.threshold"):
        load_config(path)


def test_ray_address_without_a_cluster_is_a_clear_error(monkeypatch):
    ray = pytest.importorskip("ray", reason="the Ray runner needs the `ray` extra")
    if ray.is_initialized():
        pytest.skip("a Ray session of another test is active in this process")
    from passkit.run.ray_runner import RayUnavailableError, connect

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RayUnavailableError, match="ray start --head"):
        connect("auto", "")
    assert not ray.is_initialized()
