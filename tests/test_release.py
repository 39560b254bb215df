"""`passkit release`: layout, counts, privacy, reproducibility, readability without passkit, documents, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from filter_helpers import assert_no_private_metadata, encode, exif_bytes, photo
from passkit.core.attribution import Attribution
from passkit.core.manifest import KEPT, write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths, list_shards, verify_shard
from passkit.core.tar import read_shard, write_shard
from passkit.release import ReleaseConfig, ReleaseError, build_release
from passkit.release.checksums import verify_checksums
from passkit.release.images import ImageRejectedError, header_size, release_image
from passkit.release.metadata import sample_json
from passkit.release.record import ReleaseRecord
from release_helpers import attribution, make_filtered_dir, write_audit, write_decisions

RELEASED = 37  # 40 photos - review:human - review:other - one CC-BY-SA photo (corrupt and duplicate gone in filter)
TOP_LEVEL = {"CHANGELOG.md", "README.md", "SHA256SUMS", "VERSION", "croissant.json", "datasheet.html", "images",
             "metadata.csv", "metadata.parquet", "release.json", "shards"}  # fmt: skip
METADATA_COLUMNS = ["key", "shard", "source", "photo_id", "creator", "title", "page_url", "license", "license_url",
                    "tasl", "url", "date_taken", "format", "sha256", "size", "width", "height"]  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    filtered = make_filtered_dir(root)
    write_decisions(
        filtered,
        [
            ("yfcc-1003", "problem", "review:human"),
            ("yfcc-1005", "problem", "review:human"),
            ("yfcc-1005", "undo", ""),  # undone: stays in
            ("yfcc-1007", "problem", "review:other"),
            ("yfcc-1007", "clean", ""),  # latest decision wins: stays in
            ("yfcc-1009", "problem", "review:other"),
            ("yfcc-7777", "problem", "review:human"),  # not in the kept set: ignored
        ],
    )
    write_audit(filtered)
    return root


@pytest.fixture(scope="module")
def release_v1(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "v1"
    cfg = ReleaseConfig(shard_size=8, layout_folder=True)
    report = build_release(source / "filtered", out, cfg, candidates_rejects=source / "candidates.rejects.parquet")
    return out, report


def _all_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _shard_samples(release: Path) -> dict[str, Sample]:
    return {s.key: s for tar in sorted((release / "shards").glob("*.tar")) for s in read_shard(tar)}


def test_layout_counts_and_review_decisions(release_v1):
    out, report = release_v1
    assert {path.name for path in out.iterdir()} == TOP_LEVEL
    assert (out / "VERSION").read_text() == "1\n"
    assert report.images == RELEASED and report.version == 1
    assert [p.name for p in sorted((out / "shards").glob("*.tar"))] == [f"pass-{i:05d}.tar" for i in range(5)]
    table = pq.read_table(out / "metadata.parquet")
    assert table.column_names == METADATA_COLUMNS  # no latitude/longitude by default
    keys = set(table.column("key").to_pylist())
    assert len(keys) == RELEASED
    assert {"yfcc-1005", "yfcc-1007"} <= keys
    assert not {"yfcc-1003", "yfcc-1009", "yfcc-1006", "yfcc-9001", "yfcc-9004"} & keys
    record = ReleaseRecord.read(out)
    assert record.candidates == 47  # 3 select rejects + 44 manifest rows
    assert record.released == RELEASED == record.candidates - sum(removed for _, removed, _ in record.funnel())
    assert record.reasons["review:human"] == 1 and record.reasons["review:other"] == 1
    assert record.reasons["license:not-allowed"] == 3  # 2 at select + the CC-BY-SA photo at release
    assert record.reasons["image:corrupt"] == 1 and record.reasons["dedup:exact"] == 1
    assert report.left_out == {"review:human": 1, "review:other": 1, "license:not-allowed": 1}
    assert [stage for stage, _, _ in report.funnel] == [
        "license", "attribution", "download", "image", "dedup", "review"
    ]  # fmt: skip


def test_shards_hold_scrubbed_images_matching_metadata(release_v1):
    out, _ = release_v1
    rows = {row["key"]: row for row in pq.read_table(out / "metadata.parquet").to_pylist()}
    samples = _shard_samples(out)
    assert set(samples) == set(rows)
    for key, sample in samples.items():
        row = rows[key]
        assert set(sample.parts) == {"jpg", "json"}  # one image format across the release
        data = sample.parts["jpg"]
        assert_no_private_metadata(data)  # a quarter of the inputs had GPS + camera serial EXIF
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["size"]
        assert Image.open(io.BytesIO(data)).size == (row["width"], row["height"])
        assert sample.json() == sample_json(row)
        assert "latitude" not in sample.json()
        expected = Attribution.from_fields(**{f: attribution(int(key[5:]) - 1000)[f] for f in
                                               ("creator", "title", "page_url", "license", "license_url")})  # fmt: skip
        assert row["tasl"] == expected.tasl() and row["shard"].endswith(".tar")
    for shard in list_shards(out / "shards", prefix="pass-"):
        assert verify_shard(shard).ok, verify_shard(shard).problems


def test_filter_stored_bytes_are_not_reencoded(release_v1, source):
    out, _ = release_v1
    filtered = {s.key: s for tar in sorted((source / "filtered").glob("*.tar")) for s in read_shard(tar)}
    released = _shard_samples(out)
    for key, sample in released.items():
        if "jpg" in filtered[key].parts:
            assert sample.parts["jpg"] == filtered[key].parts["jpg"], key
    assert sum("png" in filtered[key].parts for key in released) >= 2  # those became JPEGs (image_format="jpg")


def test_checksums_cover_every_file(release_v1):
    out, _ = release_v1
    assert verify_checksums(out) == []
    listed = {line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()}
    assert listed == set(_all_files(out)) - {"SHA256SUMS"}
    if shutil.which("sha256sum"):
        result = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_folder_layout(release_v1):
    out, _ = release_v1
    for row in pq.read_table(out / "metadata.parquet").to_pylist():
        path = out / "images" / row["sha256"][:2] / f"{row['key']}.jpg"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
    assert sum(1 for _ in (out / "images").rglob("*.jpg")) == RELEASED
    torchvision = pytest.importorskip("torchvision")
    assert len(torchvision.datasets.ImageFolder(str(out / "images"))) == RELEASED


def test_byte_identical_rebuild(release_v1, source, tmp_path):
    out, _ = release_v1
    copy = tmp_path / "elsewhere" / "filtered"  # another path to the same input: no path leaks into the release
    shutil.copytree(source / "filtered", copy)
    cfg = ReleaseConfig(shard_size=8, layout_folder=True)
    build_release(copy, tmp_path / "again", cfg, candidates_rejects=source / "candidates.rejects.parquet")
    first, second = _all_files(out), _all_files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []


def test_readable_with_webdataset(release_v1):
    wds = pytest.importorskip("webdataset")
    out, _ = release_v1
    tars = [str(path) for path in sorted((out / "shards").glob("*.tar"))]
    pipeline = wds.WebDataset(tars, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "json")
    rows = {row["key"]: row for row in pq.read_table(out / "metadata.parquet").to_pylist()}
    seen = 0
    for key, image, meta in pipeline:
        assert image.size == (rows[key]["width"], rows[key]["height"]) and meta["tasl"] == rows[key]["tasl"]
        seen += 1
    assert seen == RELEASED


def test_readable_with_hugging_face_datasets_offline(release_v1, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    out, _ = release_v1
    tars = [str(path) for path in sorted((out / "shards").glob("*.tar"))]
    dataset = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train", cache_dir=str(tmp_path))
    table = pq.read_table(out / "metadata.parquet")
    assert dataset.num_rows == RELEASED
    assert dataset["__key__"] == table.column("key").to_pylist()
    first = dataset[0]
    assert first["jpg"].size == (table.column("width")[0].as_py(), table.column("height")[0].as_py())
    assert first["json"]["tasl"] == table.column("tasl")[0].as_py()


def test_metadata_queryable_with_duckdb(release_v1):
    duckdb = pytest.importorskip("duckdb")
    out, _ = release_v1
    connection = duckdb.connect()
    parquet, csv = str(out / "metadata.parquet"), str(out / "metadata.csv")
    licenses = dict(connection.execute(f"SELECT license, count(*) FROM '{parquet}' GROUP BY license").fetchall())
    expected = Counter(attribution(int(key[5:]) - 1000)["license"] for key in _shard_samples(out))
    assert licenses == dict(expected) and set(licenses) == {"CC-BY-2.0", "CC-BY-4.0"}
    total = connection.execute(f"SELECT sum(size) FROM '{parquet}'").fetchone()[0]
    assert total == sum(len(s.parts["jpg"]) for s in _shard_samples(out).values())
    from_csv = connection.execute(f"SELECT key, tasl FROM read_csv('{csv}', header=true) ORDER BY key").fetchall()
    assert from_csv == connection.execute(f"SELECT key, tasl FROM '{parquet}' ORDER BY key").fetchall()


CROISSANT_RECORDS = """
import json, sys
import mlcroissant as mlc
dataset = mlc.Dataset(jsonld=sys.argv[1])
metadata = sorted(record["metadata/key"].decode() for record in dataset.records("metadata"))
images = {record["images/key"].decode(): record["images/image"].size for record in dataset.records("images")}
print(json.dumps({"metadata": metadata, "images": sorted(images), "sizes_ok": all(s[0] > 0 for s in images.values()),
                  "image_records": len(images)}))
"""


def test_croissant_is_valid_and_loads(release_v1, tmp_path):
    mlc = pytest.importorskip("mlcroissant")
    out, _ = release_v1
    dataset = mlc.Dataset(jsonld=str(out / "croissant.json"))
    assert not dataset.metadata.issues.errors, dataset.metadata.issues.report()
    assert dataset.metadata.version == "1.0.0"
    # Loading the records extracts the tars into mlcroissant's cache (keyed by URL, read once at import): a fresh
    # process with its own cache, so no earlier extraction can answer for this one.
    env = {**os.environ, "CROISSANT_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", CROISSANT_RECORDS, str(out / "croissant.json")], env=env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    keys = pq.read_table(out / "metadata.parquet").column("key").to_pylist()
    assert loaded["metadata"] == keys and loaded["images"] == keys and loaded["sizes_ok"]


def test_datasheet_is_self_contained_with_sections_charts_grid_and_audit(release_v1):
    out, _ = release_v1
    html = (out / "datasheet.html").read_text()
    for section in ("Motivation", "Composition", "Collection", "Preprocessing", "Uses", "Distribution", "Maintenance"):
        assert f"<h2>{section}</h2>" in html
    assert "0 of 30 reviewed -&gt; humans &lt;= 9.50% at 95% confidence" in html
    assert "Funnel: candidates left after each stage" in html and "<code>review:human</code>" in html
    for chart in ("Licenses", "Creators by images per creator", "Images by shorter side", "Images by file size"):
        assert f'aria-label="{chart}"' in html
    assert html.count('<img src="data:image/jpeg;base64,') == 24
    assert "<script" not in html and 'src="http' not in html and "<link" not in html
    assert "47 candidates = 10 removed + 37 released" in html


def test_card_and_changelog(release_v1):
    out, _ = release_v1
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n") and "    path: shards/*.tar" in card
    assert "0 of 30 reviewed" in card and "pass-{00000..00004}.tar" in card and "| **released** | **37** |" in card
    assert (out / "CHANGELOG.md").read_text().startswith("# Changelog — pass\n\n## v1 — release\n")


def test_not_audited_and_no_review(tmp_path):
    filtered = make_filtered_dir(tmp_path, count=10, shards=1)
    report = build_release(filtered, tmp_path / "rel", ReleaseConfig(sample_grid=0))
    assert report.audit == "not audited"
    assert "<b>Not audited.</b>" in (tmp_path / "rel" / "datasheet.html").read_text()
    assert "not audited" in (tmp_path / "rel" / "README.md").read_text()
    assert report.images == 9 and report.shards == 1  # ten photos, one CC-BY-SA; no review decisions


def _handmade_dir(root: Path) -> Path:
    """Shards assembled without `passkit filter`: EXIF with GPS in the JPEGs, coordinates in the json."""
    samples = [
        Sample.build(f"hand-{i}", jpg=encode(photo(i), "JPEG", exif=exif_bytes()), json=attribution(i, key=f"hand-{i}"))
        for i in range(3)
    ]
    shard = ShardPaths(root, 0)
    write_shard(shard.tar, samples)
    write_manifest(shard.manifest, [{"key": s.key, "status": KEPT, "reason": ""} for s in samples])
    return root


def test_metadata_stripped_when_input_was_not_filtered_and_gps_only_on_request(tmp_path):
    source = _handmade_dir(tmp_path / "hand")
    report = build_release(source, tmp_path / "plain", ReleaseConfig())
    assert report.stripped == 3
    for sample in _shard_samples(tmp_path / "plain").values():
        assert_no_private_metadata(sample.parts["jpg"])
        assert "latitude" not in sample.json()
    build_release(source, tmp_path / "gps", ReleaseConfig(include_gps=True))
    table = pq.read_table(tmp_path / "gps" / "metadata.parquet")
    assert table.column("latitude").to_pylist() == [attribution(i)["latitude"] for i in range(3)]
    assert _shard_samples(tmp_path / "gps")["hand-1"].json()["latitude"] == attribution(1)["latitude"]


def test_bad_inputs_give_clear_errors(source, release_v1, tmp_path):
    with pytest.raises(ReleaseError, match="no such folder"):
        build_release(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError, match="no finished shards"):
        build_release(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ReleaseError, match="already exists"):
        build_release(source / "filtered", release_v1[0])
    unfinished = tmp_path / "unfinished"
    shutil.copytree(source / "filtered", unfinished)
    (unfinished / "00000.parquet").unlink()
    with pytest.raises(ReleaseError, match="unfinished shards"):
        build_release(unfinished, tmp_path / "out")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(source / "filtered", corrupt)
    tar = corrupt / "00001.tar"
    tar.write_bytes(tar.read_bytes()[:5000])
    with pytest.raises(ReleaseError, match=r"corrupt shard.*00001\.tar"):
        build_release(corrupt, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left behind
    with pytest.raises(ValueError, match="release name"):
        ReleaseConfig(name="My Release")


def test_tampered_image_and_broken_decisions_are_refused(source, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(source / "filtered", tampered)
    samples = list(read_shard(tampered / "00000.tar"))
    samples[0].parts["jpg"] = encode(photo(999), "JPEG")
    write_shard(tampered / "00000.tar", samples)
    with pytest.raises(ReleaseError, match="differ from the manifest"):
        build_release(tampered, tmp_path / "out")
    broken = tmp_path / "broken"
    shutil.copytree(source / "filtered", broken)
    (broken / "review" / "decisions.sqlite").write_bytes(b"not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        (broken / "review" / f"decisions.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(ReleaseError, match="cannot read review decisions"):
        build_release(broken, tmp_path / "out")
    (broken / "review" / "decisions.sqlite").unlink()
    (broken / "review" / "audit.json").write_text(json.dumps({"method": "clopper-pearson"}))
    with pytest.raises(ReleaseError, match="audit result lacks"):
        build_release(broken, tmp_path / "out")


@pytest.mark.parametrize(
    ("ext", "options", "mode"),
    [("jpg", {"quality": 90}, "RGB"), ("jpg", {"progressive": True}, "RGB"), ("jpg", {"quality": 80}, "L"),
     ("jpg", {"exif": exif_bytes()}, "RGB"), ("png", {}, "RGB"), ("png", {}, "L")],
)  # fmt: skip
def test_header_size_agrees_with_pillow(ext, options, mode):
    data = encode(photo(3, (173, 91), mode=mode), "JPEG" if ext == "jpg" else "PNG", **options)
    assert header_size(ext, data) == Image.open(io.BytesIO(data)).size == (173, 91)
    stored = release_image(ext, data, "keep")
    assert (stored.width, stored.height) == (173, 91) and stored.sha256 == hashlib.sha256(stored.data).hexdigest()
    assert header_size("jpg", data[:40]) is None or ext == "png"


def test_release_image_rejects_what_it_cannot_scrub():
    with pytest.raises(ImageRejectedError) as rejected:
        release_image("webp", encode(photo(1), "WEBP"))
    assert rejected.value.reason == "image:unsupported"
    with pytest.raises(ImageRejectedError) as rejected:
        release_image("jpg", b"\xff\xd8\xff\xe0\x00\x10garbage")
    assert rejected.value.reason == "image:corrupt"


def test_many_shards_written_in_passes_give_the_same_release(release_v1, source, tmp_path, monkeypatch):
    from passkit.release import builder

    monkeypatch.setattr(builder, "MAX_OPEN_WRITERS", 2)  # 5 release shards: three passes over the input
    cfg = ReleaseConfig(shard_size=8, layout_folder=True)
    rejects = source / "candidates.rejects.parquet"
    build_release(source / "filtered", tmp_path / "passes", cfg, candidates_rejects=rejects)
    assert _all_files(tmp_path / "passes") == _all_files(release_v1[0])


def test_release_uses_the_review_apps_audit_and_decisions(tmp_path):
    """The review side (store + audit) and the release side meet only through DIR/review: check them together."""
    from passkit.review.audit import audit_report, load_or_draw, write_report
    from passkit.review.dataset import ReviewDataset
    from passkit.review.store import DecisionStore

    filtered = make_filtered_dir(tmp_path, count=10, shards=1)
    dataset = ReviewDataset.open(filtered)
    plan, drawn = load_or_draw(filtered, dataset, sample_size=4, seed=7)
    assert drawn and len(plan.keys) == 4
    with DecisionStore.for_dataset(filtered) as store:
        store.record_many(plan.keys, "clean", reviewer="ann", queue="audit")
        flagged = sorted(set(dataset.keys) - set(plan.keys))[0]
        store.record(flagged, "problem", "review:human", reviewer="ann", queue="borderline")
        write_report(filtered, audit_report(plan, store, dataset))
    report = build_release(filtered, tmp_path / "rel", ReleaseConfig(sample_grid=0))
    assert report.audit.startswith("0 of 4 reviewed")
    assert report.left_out.get("review:human") == 1
    released = set(pq.read_table(tmp_path / "rel" / "metadata.parquet").column("key").to_pylist())
    assert flagged not in released and set(plan.keys) <= released
    assert "0 of 4 reviewed" in (tmp_path / "rel" / "datasheet.html").read_text()
