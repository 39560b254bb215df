"""Streaming data: discovery, equal-length epochs across ranks and workers, exact resume positions."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.ssl_helpers import digits, png_bytes, write_image_folder, write_image_shards  # noqa: E402

from passkit.core.manifest import ManifestBuilder, write_manifest  # noqa: E402
from passkit.core.sample import Sample  # noqa: E402
from passkit.core.shards import ShardPaths  # noqa: E402
from passkit.core.tar import write_shard  # noqa: E402
from passkit.ssl.augment import build_augment  # noqa: E402
from passkit.ssl.data import (  # noqa: E402
    DataError,
    Unit,
    ViewStream,
    collate_views,
    discover_units,
    epoch_plan,
    make_loader,
)

torch.set_num_threads(1)


def test_epoch_plan_gives_every_slot_the_same_number_of_distinct_samples():
    units = [Unit(f"u{i}", "tar", count) for i, count in enumerate([7, 3, 11, 5, 9])]  # 35 samples
    for epoch in range(3):
        plan = epoch_plan(units, epoch, seed=1, slots=4, per_slot=8)
        seen = set()
        for ranges in plan:
            assert sum(end - first for _, first, end in ranges) == 8
            for unit, first, end in ranges:
                for i in range(first, end):
                    assert (unit, i) not in seen
                    seen.add((unit, i))
        assert len(seen) == 32
    assert epoch_plan(units, 0, 1, 4, 8) != epoch_plan(units, 1, 1, 4, 8)  # reshuffled every epoch


class _KeyOnly:
    """A transform that returns a tensor identifying the image, to follow samples through the loader."""

    def __call__(self, image):
        return [torch.tensor([int(image.getpixel((0, 0))[0]), int(image.getpixel((1, 0))[0])])]


def _id_images(n):
    from PIL import Image

    images = []
    for i in range(n):
        image = Image.new("RGB", (4, 4))
        image.putpixel((0, 0), (i % 256, 0, 0))
        image.putpixel((1, 0), (i // 256, 0, 0))
        images.append(image)
    return images


def _ids(batch):
    return [int(a) + 256 * int(b) for a, b in batch[0].tolist()]


def test_ranks_and_workers_get_equal_batches_without_overlap(tmp_path):
    write_image_shards(tmp_path / "shards", _id_images(70), per_shard=9)  # 8 shards, uneven last one
    units = discover_units(tmp_path / "shards")
    assert sum(u.count for u in units) == 70
    per_rank = []
    for rank in range(2):
        stream = ViewStream(units, _KeyOnly(), batch_size=4, seed=3, rank=rank, world_size=2, workers=2)
        stream.set_position(epoch=0)
        batches = list(make_loader(stream, workers=2))
        assert len(batches) == stream.batches_per_epoch == 8 and all(len(b[0]) == 4 for b in batches)
        per_rank.append([i for b in batches for i in _ids(b)])
    everything = per_rank[0] + per_rank[1]
    assert len(everything) == len(set(everything)) == 64  # 70 - 6 left out: floor(70 / (2*2*4)) * 16


def test_resume_position_skips_exactly_the_consumed_batches(tmp_path):
    write_image_shards(tmp_path, _id_images(40), per_shard=10)
    stream = ViewStream(discover_units(tmp_path), _KeyOnly(), batch_size=4, seed=0, workers=2, shuffle_buffer=8)
    stream.set_position(epoch=1)
    full = [_ids(b) for b in make_loader(stream, workers=2)]
    stream.set_position(epoch=1, batches_done=3)
    rest = [_ids(b) for b in make_loader(stream, workers=2)]
    assert rest == full[3:]


def test_augmentations_reproduce_per_sample(tmp_path):
    images, _ = digits(32)
    write_image_shards(tmp_path, images[:16], per_shard=8)
    augment = build_augment("dino", 16, 8, n_local=2)
    stream = ViewStream(discover_units(tmp_path), augment, batch_size=4, seed=0)
    first = collate_views(list(stream))
    second = collate_views(list(stream))
    assert len(first) == 4 and first[0].shape == (16, 3, 16, 16) and first[2].shape == (16, 3, 8, 8)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.equal(first[0], first[1])  # two different global views


def test_discovery_of_folders_releases_and_unfinished_shards(tmp_path):
    images, labels = digits(16)
    write_image_folder(tmp_path / "folder", images[:10], labels[:10])
    assert [u.kind for u in discover_units(tmp_path / "folder")] == ["file"] * 10

    shards = tmp_path / "download"
    samples = [Sample.build(f"k-{i}", png=png_bytes(images[i]), json={"creator": "x"}) for i in range(5)]
    write_shard(ShardPaths(shards, 0).tar, samples[:4])
    builder = ManifestBuilder()
    for sample in samples[:4]:
        builder.kept(sample.key)
    builder.rejected("k-9", "humans:face")
    write_manifest(ShardPaths(shards, 0).manifest, builder.to_table())
    write_shard(ShardPaths(shards, 1).tar, samples[4:])  # no manifest: unfinished, left out
    units = discover_units(shards)
    assert [(Path(u.path).name, u.count) for u in units] == [("00000.tar", 4)]

    release = tmp_path / "release" / "shards"
    write_shard(release / "pass-00000.tar", samples)
    assert [u.count for u in discover_units(tmp_path / "release")] == [5]

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        discover_units(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file"):
        discover_units(tmp_path / "missing")


def test_too_small_dataset_is_a_clear_error(tmp_path):
    write_image_shards(tmp_path, _id_images(6), per_shard=6)
    with pytest.raises(DataError, match="cannot fill one batch"):
        ViewStream(discover_units(tmp_path), _KeyOnly(), batch_size=4, world_size=2)


def test_unreadable_image_is_replaced_not_fatal(tmp_path, caplog):
    good = [Sample.build(f"k-{i}", png=png_bytes(img)) for i, img in enumerate(_id_images(7))]
    bad = Sample.build("k-bad", jpg=b"not a jpeg at all")
    write_shard(tmp_path / "00000.tar", [*good, bad])
    stream = ViewStream(discover_units(tmp_path), _KeyOnly(), batch_size=4, shuffle_buffer=1)
    batches = [_ids(b) for b in make_loader(stream, workers=0)]
    assert sum(len(b) for b in batches) == 8
    assert "unreadable image" in caplog.text
