"""Evaluation datasets (folders, shards with cls), the feature cache, result files and `passkit eval report`."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from tests.ssl_helpers import png_bytes  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from passkit.cli import app  # noqa: E402
from passkit.core.sample import Sample  # noqa: E402
from passkit.core.tar import write_shard  # noqa: E402
from passkit.evaluate import FeatureOptions, knn_eval, linear_eval, open_dataset  # noqa: E402
from passkit.evaluate.datasets import DatasetError, open_pair  # noqa: E402
from passkit.evaluate.linear import LbfgsProbeConfig  # noqa: E402
from passkit.evaluate.results import SCHEMA, read_results  # noqa: E402

torch.set_num_threads(1)


def shape_image(label, seed, size=24):
    """Class 0: a bright square, class 1: a bright horizontal bar, class 2: dark; with noise."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    if label == 0:
        pixels[6:18, 6:18] = 230
    elif label == 1:
        pixels[10:14, :] = 230
    return Image.fromarray(pixels)


def write_folder(root, per_class=8, classes=3, seed=0):
    for label in range(classes):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape_image(label, seed * 1000 + label * 100 + i).save(root / f"c{label}" / f"{i:03d}.png")
    return root


@pytest.fixture
def folders(tmp_path):
    return write_folder(tmp_path / "shapes" / "train", 8), write_folder(tmp_path / "shapes" / "val", 4, seed=1)


def test_image_folder_labels_and_file_list_hash(folders):
    train, _ = folders
    data = open_dataset(train, "train")
    assert data.name == "shapes" and data.split == "train" and len(data) == 24
    assert data.classes == ["c0", "c1", "c2"] and data.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert data.load(0).mode == "RGB"
    same = open_dataset(train, "train").list_sha256
    assert same == data.list_sha256
    shape_image(0, 77).save(train / "c0" / "extra.png")
    assert open_dataset(train, "train").list_sha256 != same


def test_val_classes_align_by_name(tmp_path):
    train = write_folder(tmp_path / "train", 2, classes=3)
    val = tmp_path / "val"
    (val / "c2").mkdir(parents=True)
    shape_image(2, 5).save(val / "c2" / "a.png")
    _, val_set = open_pair(train, val)
    assert val_set.labels.tolist() == [2]  # c2 is class 2 of the training set, not class 0 of val's own list
    (val / "zz").mkdir()
    shape_image(2, 6).save(val / "zz" / "b.png")
    with pytest.raises(DatasetError, match="zz"):
        open_pair(train, val)


def test_webdataset_shards_with_cls(tmp_path):
    # Sample(...) directly: Sample.build's own first parameter is named cls.
    samples = [
        Sample(f"s-{i:03d}", {"png": png_bytes(shape_image(i % 3, i)), "cls": str(i % 3).encode()}) for i in range(9)
    ]
    samples.append(Sample.build("no-label", png=png_bytes(shape_image(0, 50))))
    write_shard(tmp_path / "shards" / "00000.tar", samples[:5])
    write_shard(tmp_path / "shards" / "00001.tar", samples[5:])
    data = open_dataset(tmp_path / "shards", "train")
    assert len(data) == 9 and data.classes == ["0", "1", "2"]
    assert data.labels.tolist() == [i % 3 for i in range(9)]
    np.testing.assert_array_equal(np.asarray(data.load(4)), np.asarray(shape_image(1, 4).convert("RGB")))
    with pytest.raises(DatasetError, match=r"no \.tar"):
        (tmp_path / "empty").mkdir()
        open_dataset(f"wds:{tmp_path / 'empty'}", "train")


def test_named_datasets_are_never_downloaded(tmp_path):
    with pytest.raises(DatasetError, match="never downloads"):
        open_dataset(f"cifar10:{tmp_path}", "train")
    with pytest.raises(DatasetError, match="trainvalsplit_places205"):
        open_dataset(f"places205:{tmp_path}", "val")


def test_places205_layout(tmp_path):
    split = tmp_path / "trainvalsplit_places205"
    split.mkdir()
    for name, label in (("a/abbey", 0), ("b/beach", 1)):
        (tmp_path / "images256" / name).mkdir(parents=True)
        shape_image(label, label).save(tmp_path / "images256" / name / "x.jpg")
    (split / "val_places205.csv").write_text("a/abbey/x.jpg 0\nb/beach/x.jpg 1\n")
    data = open_dataset(f"places205:{tmp_path}", "val")
    assert data.classes == ["abbey", "beach"] and data.labels.tolist() == [0, 1] and data.load(1).size == (24, 24)


def test_results_carry_protocol_and_the_cache_is_reused(folders, tmp_path, monkeypatch):
    from rich.console import Console

    from passkit import cli

    monkeypatch.setattr(cli, "console", Console(width=240))
    train, val = folders
    options = FeatureOptions(cache_dir=tmp_path / "cache", batch_size=8)
    out = tmp_path / "results"
    first = knn_eval(None, train, val, k=5, random_init=True, arch="resnet_tiny", options=options, out=out)
    assert first["features_cached"] is False
    assert first["schema"] == SCHEMA and first["metric"] == "knn_top1"
    assert first["protocol"] == {
        "name": "knn",
        "k": 5,
        "temperature": 0.07,
        "similarity": "cosine (L2-normalised features)",
        "weighting": "exp(similarity / T), summed per class",
        "seed": 0,
        "features": first["protocol"]["features"],
    }
    assert first["protocol"]["features"]["resize"] == 256 and first["protocol"]["features"]["crop"] == 224
    assert first["dataset"]["train"]["n"] == 24 and first["dataset"]["val"]["n"] == 12
    assert len(first["dataset"]["val"]["file_list_sha256"]) == 64
    assert first["checkpoint"]["random_init"] is True and first["checkpoint"]["arch"] == "resnet_tiny"
    assert first["passkit_version"]
    assert first["value"] > 0.5  # the shapes differ in brightness: even random conv features separate them
    second = knn_eval(None, train, val, k=5, random_init=True, arch="resnet_tiny", options=options, out=out)
    assert second["features_cached"] is True and second["value"] == first["value"]
    other_seed = knn_eval(None, train, val, k=5, random_init=True, arch="resnet_tiny", seed=1, options=options)
    assert other_seed["features_cached"] is False  # another backbone: another cache entry
    probe = linear_eval(
        None, train, val, random_init=True, arch="resnet_tiny", options=options, out=out,
        lbfgs=LbfgsProbeConfig(coarse_steps=5, refine_steps=1),
    )  # fmt: skip
    assert probe["features_cached"] is True
    assert probe["protocol"]["name"] == "linear-lbfgs" and probe["protocol"]["selected_C"] > 0
    assert probe["protocol"]["coarse_steps"] == 5 and probe["protocol"]["seed"] == 0
    assert probe["protocol"]["backend"] == "torch"  # the solver is part of the recorded protocol
    assert 5 < len(probe["sweep"]) <= 5 + 2
    files = sorted(out.glob("*.json"))
    assert len(files) == 2  # the repeated kNN run replaced its own file
    assert json.loads(files[0].read_text())["schema"] == SCHEMA
    assert len(read_results(out)) == 2

    (out / "notes.json").write_text('{"not": "a result"}')
    report = CliRunner().invoke(app, ["eval", "report", str(out)])
    assert report.exit_code == 0, report.output
    assert "kNN k=5 T=0.07" in report.output and "linear L-BFGS" in report.output
    assert "not comparable" in report.output
    assert CliRunner().invoke(app, ["eval", "report", str(tmp_path / "cache")]).exit_code == 1


def test_unreadable_images_are_left_out_and_counted(folders, tmp_path):
    train, val = folders
    (train / "c1" / "broken.png").write_bytes(b"not a png")
    result = knn_eval(None, train, val, k=3, random_init=True, arch="resnet_tiny", options=FeatureOptions(cache=False))
    assert result["dataset"]["train"]["n"] == 25
    assert result["dataset"]["train"]["skipped"] == 1 and result["dataset"]["train"]["n_used"] == 24


def flat(result):
    return " ".join(result.output.split())


def test_cli_errors_are_clear(folders, tmp_path):
    train, val = folders
    runner = CliRunner()
    missing = runner.invoke(app, ["eval", "knn", "--checkpoint", str(tmp_path / "nope"), "--train", str(train),
                                  "--val", str(val)])  # fmt: skip
    assert missing.exit_code == 2 and "no such checkpoint" in flat(missing)
    no_model = runner.invoke(app, ["eval", "knn", "--train", str(train), "--val", str(val)])
    assert no_model.exit_code == 2 and "--random-init" in flat(no_model)
    bad_k = runner.invoke(app, ["eval", "knn", "--random-init", "--arch", "resnet_tiny", "--train", str(train),
                                "--val", str(val), "--k", "ten"])  # fmt: skip
    assert bad_k.exit_code == 2


def test_checkpoints_load_at_their_trained_grid_and_mismatches_are_clear(tmp_path):
    from passkit.evaluate import CheckpointError, load_backbone
    from passkit.ssl.backbones import build_backbone

    vit = build_backbone("vit_micro", 16)
    torch.save({"arch": "vit_micro", "dim": vit.dim, "state_dict": vit.state_dict()}, tmp_path / "vit.pt")
    _, info = load_backbone(tmp_path / "vit.pt")
    assert info.image_size == 16 and not info.random_init and len(info.sha256) == 64
    larger, info = load_backbone(tmp_path / "vit.pt", image_size=24)  # position embeddings interpolated
    assert info.image_size == 24
    with torch.no_grad():
        assert larger(torch.zeros(1, 3, 24, 24)).shape == (1, 128)
    resnet = build_backbone("resnet18")
    torch.save({"arch": "resnet50", "dim": 512, "state_dict": resnet.state_dict()}, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="do not fit resnet50"):
        load_backbone(tmp_path / "wrong.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_backbone(tmp_path / "junk.pt")
