import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_samples
from passkit.core import manifest as manifest_module
from passkit.core.manifest import (
    ManifestBuilder,
    ManifestError,
    read_manifest,
    status_counts,
    validate_manifest,
    write_manifest,
)
from passkit.core.shards import ShardPaths, list_shards, shard_name, verify_shard
from passkit.core.stage import StageResult
from passkit.core.tar import write_shard


def builder_with_three():
    rows = ManifestBuilder()
    rows.kept("pool-c", width=640, height=480)
    rows.rejected("pool-a", "license:not-allowed")
    rows.failed("pool-b", "download:http-404", http_status=404)
    return rows


def test_written_sorted_and_read_back(tmp_path):
    path = write_manifest(
        tmp_path / "00000.parquet", builder_with_three(), expected_keys=["pool-a", "pool-b", "pool-c"]
    )
    table = read_manifest(path)
    assert table.column("key").to_pylist() == ["pool-a", "pool-b", "pool-c"]
    assert table.column("status").to_pylist() == ["rejected", "failed", "kept"]
    assert table.column("reason").to_pylist() == ["license:not-allowed", "download:http-404", ""]
    assert table.column("width").to_pylist() == [None, None, 640]
    assert status_counts(table) == {"license:not-allowed": 1, "download:http-404": 1, "kept": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["00000.parquet"], "no temporary file left"


def test_identical_inputs_give_identical_files(tmp_path):
    a = write_manifest(tmp_path / "a.parquet", builder_with_three())
    b = write_manifest(tmp_path / "b.parquet", builder_with_three())
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_every_candidate_exactly_once(tmp_path):
    rows = builder_with_three()
    with pytest.raises(ManifestError, match="already has a row"):
        rows.kept("pool-a")
    with pytest.raises(ManifestError, match="without a row: pool-d"):
        write_manifest(tmp_path / "m.parquet", rows, expected_keys=["pool-a", "pool-b", "pool-c", "pool-d"])
    with pytest.raises(ManifestError, match="not candidates: pool-c"):
        write_manifest(tmp_path / "m.parquet", rows, expected_keys=["pool-a", "pool-b"])
    duplicated = pa.table({"key": ["k", "k"], "status": ["kept", "kept"], "reason": ["", ""]})
    with pytest.raises(ManifestError, match="more than one row: k"):
        write_manifest(tmp_path / "m.parquet", duplicated)
    assert not (tmp_path / "m.parquet").exists()


@pytest.mark.parametrize(
    "key,status,reason,message",
    [
        ("k", "kept", "nsfw", "kept with a reason"),
        ("k", "rejected", "", "needs a reason code"),
        ("k", "failed", "Broken Thing", "needs a reason code"),
        ("k", "maybe", "", "status 'maybe'"),
        ("K.jpg", "kept", "", "invalid keys"),
    ],
)
def test_row_rules(key, status, reason, message):
    with pytest.raises(ManifestError, match=message):
        validate_manifest(pa.table({"key": [key], "status": [status], "reason": [reason]}))


def test_missing_columns():
    with pytest.raises(ManifestError, match="missing columns"):
        validate_manifest(pa.table({"key": ["k"], "status": ["kept"]}))


def test_empty_manifest_is_valid(tmp_path):
    path = write_manifest(tmp_path / "00000.parquet", ManifestBuilder(), expected_keys=[])
    assert read_manifest(path).num_rows == 0


def test_crash_during_write_leaves_no_manifest(tmp_path, monkeypatch):
    real_write = pq.write_table

    def exploding_write(table, where, **kwargs):
        real_write(table, where, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(manifest_module.pq, "write_table", exploding_write)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(tmp_path / "00000.parquet", builder_with_three())
    assert list(tmp_path.iterdir()) == [], "neither the manifest nor a temporary file exists"


def _finished_shard(tmp_path, count=5):
    samples = make_samples(count)
    shard = ShardPaths(tmp_path, 3)
    write_shard(shard.tar, samples[1:])
    rows = ManifestBuilder()
    rows.rejected(samples[0].key, "image:too-small")
    for sample in samples[1:]:
        rows.kept(sample.key, sha256=hashlib.sha256(sample.parts["jpg"]).hexdigest())
    write_manifest(shard.manifest, rows, expected_keys=[s.key for s in samples])
    return shard, samples


def test_shard_paths_and_listing(tmp_path):
    assert shard_name(42) == "00042" and shard_name(7, "pass-") == "pass-00007"
    with pytest.raises(ValueError):
        shard_name(-1)
    shard, _ = _finished_shard(tmp_path)
    (tmp_path / "00009.tar").write_bytes(b"")  # unfinished: no manifest
    assert shard.tar.name == "00003.tar" and shard.manifest.name == "00003.parquet"
    assert [s.index for s in list_shards(tmp_path)] == [3]
    assert [s.index for s in list_shards(tmp_path, done_only=False)] == [3, 9]


def test_verify_agreement(tmp_path):
    shard, _ = _finished_shard(tmp_path)
    report = verify_shard(shard)
    assert report.ok, report.problems
    assert (report.rows, report.samples) == (5, 4)
    assert report.counts == {"image:too-small": 1, "kept": 4}


def test_verify_detects_disagreement(tmp_path):
    shard, samples = _finished_shard(tmp_path)
    tampered = [s for s in samples[1:]]
    tampered[0].parts["jpg"] = b"other bytes"
    write_shard(shard.tar, [samples[0], *tampered[:-1]])
    problems = " | ".join(verify_shard(shard).problems)
    assert "sha256 of jpg differs" in problems
    assert "absent from tar" in problems and samples[-1].key in problems
    assert "not kept in manifest" in problems and samples[0].key in problems


def test_verify_reports_a_truncated_tar(tmp_path):
    shard, _ = _finished_shard(tmp_path)
    shard.tar.write_bytes(shard.tar.read_bytes()[:1500])
    problems = verify_shard(shard).problems
    assert any(p.startswith("tar: ") and "00003.tar" in p for p in problems)


def test_stage_result_accounting():
    rows = builder_with_three().to_table()
    result = StageResult(kept=["pool-c"], rows=rows)
    result.check(["pool-a", "pool-b", "pool-c"])
    assert result.counts()["kept"] == 1
    with pytest.raises(ManifestError, match="without a row"):
        result.check(["pool-a", "pool-b", "pool-c", "pool-z"], stage="select")


def test_superseded_keys_of_retry_rounds(tmp_path):
    from passkit.core.shards import superseded_keys

    for index, keys in ((0, ["a", "b", "c"]), (1, ["d"]), (2, ["b", "d"]), (3, ["b"])):
        write_manifest(ShardPaths(tmp_path, index).manifest, [{"key": k, "status": "kept", "reason": ""} for k in keys])
    shards = list_shards(tmp_path)
    assert superseded_keys(shards) == {0: frozenset({"b"}), 1: frozenset({"d"}), 2: frozenset({"b"})}
    assert superseded_keys(shards[:2]) == {}
    assert superseded_keys([]) == {}
