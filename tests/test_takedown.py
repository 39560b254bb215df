"""`passkit takedown`: version N+1 without the given keys; documents regenerated, other images untouched."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from passkit.cli import app
from passkit.core.tar import read_shard
from passkit.release import ReleaseConfig, ReleaseError, build_release, takedown
from passkit.release.checksums import verify_checksums
from passkit.release.record import ReleaseRecord
from passkit.release.thumbnails import grid_keys
from release_helpers import make_filtered_dir, write_audit

runner = CliRunner()


@pytest.fixture(scope="module")
def v1(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("takedown")
    filtered = make_filtered_dir(root, count=30, shards=2)
    write_audit(filtered)
    out = root / "v1"
    build_release(filtered, out, ReleaseConfig(shard_size=8, layout_folder=True), candidates_rejects=None)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _members(tar: Path) -> dict[str, dict[str, bytes]]:
    return {sample.key: sample.parts for sample in read_shard(tar)}


def _keys(release: Path) -> list[str]:
    return pq.read_table(release / "metadata.parquet").column("key").to_pylist()


def test_takedown_removes_keys_reports_unknown_and_keeps_other_bytes(v1, tmp_path):
    before = _keys(v1)
    shard0 = sorted(_members(v1 / "shards" / "pass-00000.tar"))
    gone = [shard0[1], shard0[4]]
    report = takedown(v1, [*gone, "yfcc-4242", "Not A Key", gone[0]], tmp_path / "v2", reason="takedown:creator")
    v2 = tmp_path / "v2"
    assert report.removed == sorted(gone) and report.unknown == ["Not A Key", "yfcc-4242"]
    assert (report.previous_version, report.version, report.images_before, report.images) == (1, 2, 29, 27)
    assert (v2 / "VERSION").read_text() == "2\n"
    assert _keys(v2) == [key for key in before if key not in gone]
    assert report.shards_rewritten == ["shards/pass-00000.tar"]
    # Every other shard is byte-identical; the re-packed one holds the same member bytes minus the removed keys.
    for tar in sorted((v1 / "shards").glob("*.tar"))[1:]:
        assert (v2 / "shards" / tar.name).read_bytes() == tar.read_bytes()
    old, new = _members(v1 / "shards" / "pass-00000.tar"), _members(v2 / "shards" / "pass-00000.tar")
    assert new == {key: parts for key, parts in old.items() if key not in gone}
    assert not any(f"/{key}.jpg" in name for key in gone for name in _files(v2))
    assert verify_checksums(v2) == []
    record = ReleaseRecord.read(v2)
    assert record.reasons["takedown:creator"] == 2 and record.released == 27
    assert record.audit is not None and record.audit["sample_size"] == 30  # carried over
    changelog = (v2 / "CHANGELOG.md").read_text()
    assert changelog.index("## v2 — takedown") < changelog.index("## v1 — release")
    assert "- Removed 2 images, reason `takedown:creator`." in changelog
    assert "- Images: 29 -> 27." in changelog
    assert "- 2 requested keys were not in the previous version" in changelog
    assert all(f"`{key}`" in changelog for key in gone)
    datasheet = (v2 / "datasheet.html").read_text()

    assert "release <b>pass v2</b>" in datasheet and "<code>takedown:creator</code>" in datasheet
    assert '"version": "2.0.0"' in (v2 / "croissant.json").read_text()
    assert "this is version 2" in (v2 / "README.md").read_text()


def test_sample_grid_thumbnails_same_from_memory_and_from_shards(v1, tmp_path):
    keys = _keys(v1)
    outside = next(key for key in keys if key not in grid_keys(keys, 24))  # v2 shows the same 24 images
    takedown(v1, [outside], tmp_path / "v2")
    grid = re.compile(r'<div class="grid">.*</div>', re.DOTALL)
    # v1's thumbnails come from the bytes held while packing, v2's are read back from its shards
    first, second = (grid.search((r / "datasheet.html").read_text()).group(0) for r in (v1, tmp_path / "v2"))
    assert first == second and first.count("<img ") == 24


def test_takedown_is_deterministic_and_chains(v1, tmp_path):
    keys = _keys(v1)[10:12]
    takedown(v1, keys, tmp_path / "a")
    takedown(v1, keys, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    third = takedown(tmp_path / "a", [_keys(v1)[20]], tmp_path / "v3", reason="review:human")
    assert third.version == 3 and (tmp_path / "v3" / "VERSION").read_text() == "3\n"
    headings = re.findall(r"^## (v\d) — (\w+)$", (tmp_path / "v3" / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings == [("v3", "takedown"), ("v2", "takedown"), ("v1", "release")]
    record = ReleaseRecord.read(tmp_path / "v3")
    assert record.reasons["takedown"] == 2 and record.released == 26
    mlc = pytest.importorskip("mlcroissant")
    dataset = mlc.Dataset(jsonld=str(tmp_path / "v3" / "croissant.json"))
    assert not dataset.metadata.issues.errors


@pytest.mark.parametrize("position", [-1, 1])
def test_emptied_shard_is_dropped(v1, tmp_path, position):
    emptied = sorted((v1 / "shards").glob("*.tar"))[position]
    report = takedown(v1, list(_members(emptied)), tmp_path / "v2")
    assert report.shards_dropped == [f"shards/{emptied.name}"]
    assert not (tmp_path / "v2" / "shards" / emptied.name).exists()
    assert not (tmp_path / "v2" / "shards" / emptied.name.replace(".tar", ".parquet")).exists()
    assert verify_checksums(tmp_path / "v2") == []
    card = (tmp_path / "v2" / "README.md").read_text()
    if position == -1:  # the remaining shards are still numbered 0..n-2: a brace range works
        assert '"shards/pass-{00000..00002}.tar"' in card
    else:  # a gap: the card loads the shards by glob
        assert 'sorted(glob.glob("shards/*.tar"))' in card


def test_takedown_refuses_bad_requests_and_tampered_releases(v1, tmp_path):
    with pytest.raises(ReleaseError, match="none of the 2 requested keys"):
        takedown(v1, ["yfcc-4242", "yfcc-4243"], tmp_path / "v2")
    assert not (tmp_path / "v2").exists()
    with pytest.raises(ReleaseError, match="not a reason code"):
        takedown(v1, _keys(v1)[:1], tmp_path / "v2", reason="Because!")
    with pytest.raises(ReleaseError, match="already exists"):
        takedown(v1, _keys(v1)[:1], v1)
    with pytest.raises(ReleaseError, match="not a passkit release"):
        takedown(tmp_path, _keys(v1)[:1], tmp_path / "v2")
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name, data in _files(v1).items():
        (tampered / name).parent.mkdir(parents=True, exist_ok=True)
        (tampered / name).write_bytes(data)
    with (tampered / "metadata.csv").open("a") as handle:
        handle.write("extra,row\n")
    with pytest.raises(ReleaseError, match=r"metadata\.csv: sha256 differs"):
        takedown(tampered, _keys(v1)[:1], tmp_path / "v2")


def _flat(output: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", output).split())


def test_cli_release_and_takedown(tmp_path):
    filtered = make_filtered_dir(tmp_path / "run", count=12, shards=1)
    release = tmp_path / "run" / "release" / "v1"
    result = runner.invoke(app, ["release", str(filtered), "--out", str(release), "--shard-size", "5",
                                 "--layout", "folder", "--contact", "takedown@example.org"])  # fmt: skip
    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "pass v1: 11 images in 3 shards" in output and "19 candidates considered" in output
    assert "license - 3 license:not-allowed 3" in output  # 2 from select (rejects found beside DIR) + 1 at release
    assert "audit: not audited" in output
    assert (release / "images").is_dir() and "takedown@example.org" in (release / "README.md").read_text()
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# requests of 2026-11\n{_keys(release)[0]}\n\nyfcc-4242  # not ours\n")
    result = runner.invoke(app, ["takedown", str(release), "--keys", str(keys_file), "--out", str(tmp_path / "v2")])
    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "v1 -> v2: removed 1 images" in output and "1 requested keys are not in v1: yfcc-4242" in output
    result = runner.invoke(app, ["release", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no such folder" in _flat(result.output)
    result = runner.invoke(app, ["takedown", str(release), "--keys", str(tmp_path / "none.txt"), "--out", "x"])
    assert result.exit_code == 2 and "cannot read the keys file" in _flat(result.output)
