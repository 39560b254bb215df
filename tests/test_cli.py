import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from passkit import cli
from passkit.cli import app

runner = CliRunner()
DESIGN_VERBS = [
    "select",
    "download",
    "filter",
    "detect",
    "build",
    "review",
    "audit",
    "release",
    "takedown",
    "pretrain",
    "eval",
    "demo",
]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(cli, "console", Console(width=220))


def plain(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_help_lists_every_design_verb():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for verb in DESIGN_VERBS:
        assert re.search(rf"\b{verb}\b", plain(result.output)), verb


@pytest.mark.parametrize(
    "verb", [*DESIGN_VERBS, "verify", "license", "eval knn", "eval linear", "eval report", "export"]
)
def test_every_verb_has_help(verb):
    result = runner.invoke(app, [*verb.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in plain(result.output)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "passkit 0." in result.output


def test_license_command():
    result = runner.invoke(app, ["license", "Attribution License", "2", "--policy", "cc-by"])
    out = plain(result.output)
    assert result.exit_code == 0
    assert "CC-BY-2.0" in out and "admitted" in out
    assert "CC-BY-NC-2.0" in out and "license:not-allowed" in out
    bad = runner.invoke(app, ["license", "x", "--policy", "unknown"])
    assert bad.exit_code == 2 and "can never be allowed" in plain(bad.output)


def test_verify_fails_on_empty_and_broken_folders(tmp_path):
    assert runner.invoke(app, ["verify", str(tmp_path)]).exit_code == 1
    (tmp_path / "00000.parquet").write_bytes(b"not parquet")
    result = runner.invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 1 and "manifest" in plain(result.output)
