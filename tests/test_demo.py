import json
import urllib.error
import urllib.request
from urllib.parse import quote_plus

import pytest
from typer.testing import CliRunner

from passkit.cli import app
from passkit.core.attribution import Attribution
from passkit.core.licenses import ALL_IDS, UNKNOWN, reconcile_licenses
from passkit.demo import DEFAULT_POOL, DemoConfig, DemoError, run_demo
from passkit.demo.flow import key_of, released_keys
from passkit.demo.pool import default_pool, folder_pool
from passkit.demo.server import PoolServer, PortInUseError
from passkit.demo.yfcc_tsv import photo_hash, write_yfcc_tsv, yfcc_license_fields
from passkit.selection import open_source, run_select
from passkit.sources.yfcc import YfccReader
from passkit.stages.select import SelectConfig

for package in ("skimage", "sklearn", "matplotlib"):
    pytest.importorskip(package, reason="the demo pool ships with scikit-image, scikit-learn, matplotlib")

PEOPLE = {"astronaut", "camera", "grace_hopper"}
NO_LICENSE = {"motorcycle", "moon"}


def plain(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("license_id", ALL_IDS)
def test_yfcc_license_fields_read_back_as_the_same_license(license_id):
    name, url = yfcc_license_fields(license_id)
    assert reconcile_licenses([quote_plus(name), url]) == license_id


def test_default_pool_is_installed_labelled_and_attributed():
    pool = default_pool()
    assert len({photo.photo_id for photo in pool}) == len(pool)
    assert {photo.name for photo in pool if photo.has_people} == PEOPLE
    for photo in pool:
        assert photo.path().stat().st_size > 10_000, photo.name
        attribution = Attribution.from_fields(
            creator=photo.creator, title=photo.title, page_url=photo.page_url, license=photo.license
        )
        if photo.name in NO_LICENSE:
            assert photo.license == UNKNOWN
        else:
            assert attribution.check() == "", photo.name
            assert attribution.license_url.startswith("https://"), photo.name


def test_pool_metadata_is_yfcc100m_the_real_reader_and_select_accept(tmp_path):
    pool = default_pool()
    tsv = tmp_path / "yfcc100m_dataset"
    served = write_yfcc_tsv(pool, tsv, "http://127.0.0.1:8123")
    lines = tsv.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(pool) and all(len(line.split("\t")) == 25 for line in lines)
    fields = lines[0].split("\t")
    assert fields[2] == photo_hash(fields[16]) and fields[16] == "http://127.0.0.1:8123" + served[0].url_path
    reader = YfccReader(tsv)
    rows = {row["key"]: row for table in reader for row in table.to_pylist()}
    assert reader.layout is not None and reader.layout.name == "single-file"
    for photo in pool:
        row = rows[key_of(photo)]
        assert row["malformed"] is None, (photo.name, row["malformed"])
        assert (row["creator"] or "", row["title"], row["license"]) == (photo.creator, photo.title, photo.license)
        assert row["page_url"] == photo.page_url
    summary = run_select([open_source(f"yfcc:{tsv}")], tmp_path / "permissive.parquet", SelectConfig("permissive"))
    assert summary.candidates == len(pool) - len(NO_LICENSE)
    assert dict(summary.by_reason) == {"license:not-allowed": len(NO_LICENSE)}
    cc_by = run_select([open_source(f"yfcc:{tsv}")], tmp_path / "cc-by.parquet", SelectConfig("cc-by"))
    assert cc_by.candidates == 2  # scikit-learn's two CC BY 2.0 Flickr photos


def test_select_rejects_a_photo_hash_that_does_not_match_the_url(tmp_path):
    pool = default_pool()[:2]
    tsv = tmp_path / "yfcc100m_dataset"
    write_yfcc_tsv(pool, tsv, "http://127.0.0.1:8123")
    lines = tsv.read_text().splitlines()
    fields = lines[1].split("\t")
    fields[2] = photo_hash("http://127.0.0.1:8123/other.png")
    tsv.write_text("\n".join([lines[0], "\t".join(fields)]) + "\n")
    summary = run_select([open_source(f"yfcc:{tsv}")], tmp_path / "c.parquet", SelectConfig("permissive"))
    assert summary.candidates == 1 and dict(summary.by_reason) == {"metadata:malformed": 1}


def test_pool_server_serves_the_files_and_nothing_else(tmp_path):
    pool = default_pool()[:2]
    served = write_yfcc_tsv(pool, tmp_path / "meta", "http://x")
    with PoolServer(served) as server:
        with urllib.request.urlopen(server.base_url + served[0].url_path, timeout=10) as response:
            assert response.read() == pool[0].read_bytes()
            assert response.headers["Content-Type"] == "image/png"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.base_url + "/demo/nope.png", timeout=10)
        assert missing.value.code == 404
        with pytest.raises(PortInUseError):
            PoolServer(served, port=server.port).start()
        assert server.requests == 1


def test_folder_pool_reads_sidecars_and_people_labels(tmp_path):
    source = DEFAULT_POOL[2].path()  # coffee.png
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.png").write_bytes(source.read_bytes())
    sidecar = {"creator": "Ann", "title": "Cup", "page_url": "https://example.org/a", "license": "CC BY 4.0"}
    (tmp_path / "a.json").write_text(json.dumps(sidecar))
    (tmp_path / "labels.csv").write_text("file,has_person\na.png,1\nb.png,0\n")
    photos = {photo.name: photo for photo in folder_pool(tmp_path)}
    assert set(photos) == {"a.png", "b.png", "c.png"}
    assert (photos["a.png"].creator, photos["a.png"].license, photos["a.png"].has_people) == ("Ann", "CC-BY-4.0", True)
    assert (photos["b.png"].license, photos["b.png"].has_people) == (UNKNOWN, False)
    assert photos["c.png"].has_people is None
    with pytest.raises(RuntimeError, match="not a folder"):
        folder_pool(tmp_path / "missing")


def test_missing_models_fail_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "no-models"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PASSKIT_OFFLINE", "1")
    out = tmp_path / "demo"
    with pytest.raises(DemoError) as error:
        run_demo(DemoConfig(out=out))
    message = str(error.value)
    for relpath in ("yolox_nano", "yunet_2023mar/yunet_s_dynamic.onnx", "ultraface/version-RFB-320.onnx"):
        assert relpath in message
    assert "PASSKIT_MODELS=DIR" in message and "https://" in message
    assert not out.exists()
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 1 and "detector file(s)" in plain(result.output)


@pytest.mark.slow
def test_demo_end_to_end_removes_people_and_resumes(tmp_path, shared_models):
    pytest.importorskip("torch", reason="the demo pretrains with torch")
    out = tmp_path / "demo"
    result = run_demo(DemoConfig(out=out, presets=("tiny-dino",), pretrain_steps=2))
    outcomes = {o.photo.name: o for o in result.outcomes}
    assert len(outcomes) == len(DEFAULT_POOL)
    for name in PEOPLE:
        assert outcomes[name].stage == "filter" and outcomes[name].reason.startswith("humans:"), outcomes[name]
    assert not result.people_left()
    for name in NO_LICENSE:
        assert (outcomes[name].stage, outcomes[name].reason) == ("select", "license:not-allowed")
    kept = [o for o in result.outcomes if o.stage in ("kept", "takedown")]
    assert len(kept) >= 5  # the human filter's false alarms cost some, never most, of the people-free photos
    for outcome in kept:
        stored = outcome.attribution
        assert stored is not None, outcome.photo.name
        attribution = Attribution.from_fields(**{k: stored[k] for k in ("creator", "title", "page_url", "license")})
        assert attribution.check() == "", outcome.photo.name
        assert (stored["creator"], stored["license"]) == (outcome.photo.creator, outcome.photo.license)
    counts = dict(result.funnel)
    assert counts["pool"] == 17 and counts["license + attribution (select)"] == 15 and counts["downloaded"] == 15
    assert counts["kept (privacy, dedup, cap)"] == len(kept)
    assert [score["name"] for score in result.knn] == ["tiny-dino", "tiny-dino (random init)"]
    assert all(0.0 < score["top1"] <= 1.0 and score["val"] > 500 for score in result.knn)
    assert result.sums_ok == {"v1": True, "v2": True}
    assert len(result.taken_down) == 1 and result.taken_down[0] in released_keys(out / "release" / "v1")
    assert released_keys(out / "release" / "v2") == sorted(
        set(released_keys(out / "release" / "v1")) - set(result.taken_down)
    )
    assert json.loads((out / "run.json").read_text())["balanced"]  # the pipeline ran as `passkit build`

    again = CliRunner().invoke(app, ["demo", "--out", str(out), "--pretrain", "tiny-dino", "--steps", "2"])
    text = plain(again.output)
    assert again.exit_code == 0, text
    assert "all 3 photos labelled 'people' removed" in text and "tiny-dino (random init)" in text
    # every step (metadata, build, takedown, pretrain, kNN) was reused
    assert text.count("(already done)") == text.count("✓ ") == 5, text


def test_resumed_metadata_keeps_its_port_or_moves_when_it_is_taken(tmp_path):
    from passkit.demo.flow import prepare_metadata

    pool = default_pool()[:3]
    first = PoolServer()
    try:
        meta = prepare_metadata(pool, tmp_path, first)
        text = meta.tsv.read_text()
        assert f"http://127.0.0.1:{first.port}/demo/" in text
        (tmp_path / "candidates.parquet").write_bytes(b"stale")
        second = PoolServer()
        try:
            moved = prepare_metadata(pool, tmp_path, second)  # the first server still holds the port
        finally:
            second.stop()
        assert moved.port != first.port and f"127.0.0.1:{moved.port}/demo/" in moved.tsv.read_text()
        assert not (tmp_path / "candidates.parquet").exists()
    finally:
        first.stop()
    third = PoolServer()
    try:
        again = prepare_metadata(pool, tmp_path, third)  # port free again: same port, same file
        assert again.port == moved.port and again.tsv.read_text() == moved.tsv.read_text()
    finally:
        third.stop()
    with pytest.raises(DemoError, match="another pool"):
        prepare_metadata(default_pool()[:2], tmp_path, PoolServer())


def test_bad_options_fail_before_any_work(tmp_path):
    out = tmp_path / "demo"
    for args in (["--humans", "bogus"], ["--pretrain", "pass-dino-vits16-300ep"], ["--pretrain", "nope"]):
        result = CliRunner().invoke(app, ["demo", "--out", str(out), *args])
        assert result.exit_code == 1 and "passkit demo:" in plain(result.output), args
    assert not out.exists()
