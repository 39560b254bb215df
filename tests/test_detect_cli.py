"""``passkit detect`` and ``passkit detect-eval`` on a few real labeled photos."""

import csv
import json
import shutil

from typer.testing import CliRunner

from human_filter_helpers import PERSON_PHOTO, negative_photos
from passkit.cli import app


def test_detect_then_eval_on_a_labeled_folder(people_dev, shared_models, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    names = [PERSON_PHOTO, *negative_photos(people_dev, 2)]
    for name in names:
        shutil.copy(people_dev / "images" / name, folder / "sub" / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (folder / "notes.txt").write_text("not an image")
    runner = CliRunner()
    out = tmp_path / "decisions.csv"
    result = runner.invoke(app, ["detect", str(folder), "--out", str(out), "--preset", "fast"])
    assert result.exit_code == 0, result.output
    assert "4 images: 1 with people, 2 without, 1 unreadable" in result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["file", "has_person", "score", "reason"]
    by_name = {row["file"].rsplit("/", 1)[-1]: row for row in rows}
    assert set(by_name) == {*names, "broken.jpg"}
    assert by_name[PERSON_PHOTO]["has_person"] == "1"
    assert by_name[PERSON_PHOTO]["reason"].startswith("humans:")
    assert by_name["broken.jpg"]["reason"] == "image:corrupt"

    labels = tmp_path / "labels.csv"
    labels.write_text("file,has_person\n" + "".join(f"{n},{int(n == PERSON_PHOTO)}\n" for n in names))
    report = tmp_path / "report.json"
    result = runner.invoke(
        app,
        ["detect-eval", "--labels", str(labels), "--decisions", str(out), "--preset", "fast", "--json", str(report)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert (data["recall"], data["retention"], data["positives"], data["negatives"]) == (1.0, 1.0, 1, 2)
    assert data["misses"] == [] and data["sweep"]
    lowest = min(data["sweep"], key=lambda p: p["threshold"])
    assert lowest["recall"] == 1.0
    assert "recall 1.0000" in result.output


def test_detect_eval_needs_one_source(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,has_person\na.jpg,1\n")
    result = CliRunner().invoke(app, ["detect-eval", "--labels", str(labels)])
    assert result.exit_code != 0


def test_detect_missing_path_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["detect", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "d.csv")])
    assert result.exit_code == 2
    assert "no such image or folder" in result.output


def test_detect_unknown_preset(tmp_path):
    result = CliRunner().invoke(app, ["detect", str(tmp_path), "--preset", "turbo"])
    assert result.exit_code == 2
    assert "unknown preset" in result.output
