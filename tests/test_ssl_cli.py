"""`passkit pretrain` from the command line: a tiny preset trains, resumes, and bad input is a clear error."""

import json
import re

import pytest

pytest.importorskip("torch")

from tests.ssl_helpers import digits, write_image_folder
from typer.testing import CliRunner

from passkit.cli import app

runner = CliRunner()


def plain(text):
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def test_tiny_preset_trains_and_resumes_from_the_command_line(tmp_path):
    images, _ = digits(16)
    data = write_image_folder(tmp_path / "images", images[:64])
    run = tmp_path / "run"
    common = ["--threads", "1", "--workers", "0", "--batch-size", "16", "--epochs", "2"]
    sets = ["--set", "global_size=16", "--set", "progress=false", "--set", "log_every=1"]
    args = ["pretrain", "--preset", "tiny-mocov2", "--data", str(data), "--out", str(run), *common, *sets]
    result = runner.invoke(app, [*args, "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert "not finished" in plain(result.output)
    assert json.loads((run / "config.json").read_text())["arch"] == "vit_micro"

    result = runner.invoke(app, ["pretrain", "--out", str(run), "--resume", "--set", "progress=false"])
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # 64 images / 16 = 4 steps per epoch, 2 epochs
    assert (run / "backbone.pt").exists()


def test_clear_errors(tmp_path):
    result = runner.invoke(app, ["pretrain", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "missing --method" in plain(result.output)
    result = runner.invoke(app, ["pretrain", "--preset", "nope", "--data", "x", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "unknown preset" in plain(result.output)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app, ["pretrain", "--preset", "tiny-dino", "--data", str(empty), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1 and "no images found" in plain(result.output)
