import pytest

from passkit.core.manifest import read_manifest
from passkit.core.tar import read_shard
from passkit.demo import DEMO_POOL, run_demo

pytest.importorskip("sklearn", reason="the demo pool ships with scikit-learn (passkit[demo])")


def test_demo_accounts_for_every_pool_row(tmp_path):
    result = run_demo(tmp_path)
    assert result.report.ok, result.report.problems
    assert sum(result.counts.values()) == len(DEMO_POOL)
    assert result.counts == {"kept": 2, "license:not-allowed": 3, "attribution:incomplete:creator": 1}
    manifest = read_manifest(tmp_path / "shards" / "00000.parquet")
    by_key = dict(zip(manifest.column("key").to_pylist(), manifest.column("reason").to_pylist(), strict=True))
    assert by_key["demo-nc-example"] == "license:not-allowed"
    samples = list(read_shard(tmp_path / "shards" / "00000.tar"))
    assert [s.key for s in samples] == ["demo-6056698931", "demo-6061409035"]
    for sample in samples:
        assert sample.parts["jpg"][:3] == b"\xff\xd8\xff"
        attribution = sample.json()
        assert attribution["license"] == "CC-BY-2.0"
        assert attribution["license_url"] == "https://creativecommons.org/licenses/by/2.0/"
        assert attribution["page_url"].startswith("https://www.flickr.com/photos/")


def test_demo_is_byte_identical_across_runs(tmp_path):
    run_demo(tmp_path / "a")
    run_demo(tmp_path / "b")
    for name in ("00000.tar", "00000.parquet"):
        assert (tmp_path / "a" / "shards" / name).read_bytes() == (tmp_path / "b" / "shards" / name).read_bytes()
