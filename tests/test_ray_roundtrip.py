"""Our shards read back by Ray Data's webdataset reader (the `ray` extra)."""

import pytest

from conftest import make_samples
from passkit.core.tar import write_shard

ray = pytest.importorskip("ray", reason="Ray round trip needs the `ray` extra: pip install 'passkit[ray]'")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.ray
def test_ray_read_webdataset_round_trip(tmp_path, ray_local):
    samples = make_samples(9)
    write_shard(tmp_path / "00000.tar", samples[:5])
    write_shard(tmp_path / "00001.tar", samples[5:])
    rows = ray.data.read_webdataset(str(tmp_path), decoder=None).take_all()
    got = {row["__key__"]: row for row in rows}
    assert sorted(got) == [s.key for s in samples]
    for sample in samples:
        assert got[sample.key]["jpg"] == sample.parts["jpg"]
        assert got[sample.key]["json"] == sample.parts["json"]
