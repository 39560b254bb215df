"""End to end on real images: scikit-learn's handwritten digits as an image folder, a short run of the real trainer
(tiny DINO preset, one epoch = 44 steps on 1,438 training digits), then `passkit eval` against random init.

Chance is 10 %. The briefly trained checkpoint must be far above it (> 30 % top-1 with 20-NN) and above the
untrained backbone of the same architecture and seed.
"""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from rich.console import Console  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from passkit import cli  # noqa: E402
from passkit.evaluate import FeatureOptions, knn_eval, write_digits_imagefolder  # noqa: E402
from passkit.ssl.config import TrainConfig  # noqa: E402
from passkit.ssl.presets import preset_settings  # noqa: E402
from passkit.ssl.train import train  # noqa: E402

torch.set_num_threads(1)
METHOD = "dino"


def test_digits_imagefolder_split(tmp_path):
    train_dir, val_dir = write_digits_imagefolder(tmp_path / "digits", size=24)
    train_files = sorted(p.relative_to(train_dir) for p in train_dir.rglob("*.png"))
    val_files = sorted(p.relative_to(val_dir) for p in val_dir.rglob("*.png"))
    assert len(train_files) + len(val_files) == 1797
    assert 355 <= len(val_files) <= 362  # 20 % of each class
    assert {p.parts[0] for p in train_files} == {str(d) for d in range(10)}
    assert not {p.name for p in train_files} & {p.name for p in val_files}
    again = write_digits_imagefolder(tmp_path / "digits", size=24)  # complete folders are reused
    assert again == (train_dir, val_dir)
    assert [p.name for p in tmp_path.iterdir()] == ["digits"]  # no temporary folder left behind


@pytest.mark.slow
def test_trained_tiny_checkpoint_beats_chance_and_random_init(tmp_path, monkeypatch):
    train_dir, val_dir = write_digits_imagefolder(tmp_path / "digits", size=32)
    settings = {
        **preset_settings(f"tiny-{METHOD}"),
        "epochs": 1,
        "workers": 0,
        "progress": False,
        "data": str(train_dir),
        "out": str(tmp_path / "run"),
    }
    result = train(TrainConfig.from_dict(settings))
    assert (tmp_path / "run" / "backbone.pt").exists() and result.steps == 1438 // 32

    options = FeatureOptions(cache_dir=tmp_path / "cache")
    out = tmp_path / "results"
    trained = knn_eval(tmp_path / "run", train_dir, val_dir, k=20, options=options, out=out)
    untrained = knn_eval(tmp_path / "run", train_dir, val_dir, k=20, random_init=True, options=options, out=out)
    print(f"digits 20-NN top-1: trained {trained['value']:.3f}, random init {untrained['value']:.3f}, chance 0.100")
    assert trained["checkpoint"]["method"] == METHOD and trained["checkpoint"]["image_size"] == 16
    assert untrained["checkpoint"]["random_init"] and untrained["checkpoint"]["arch"] == "vit_micro"
    assert trained["dataset"]["val"]["name"] == "digits" and trained["dataset"]["val"]["classes"] == 10
    assert trained["value"] > 0.3, trained["value"]
    assert trained["value"] > untrained["value"], (trained["value"], untrained["value"])

    # The CLI reads the same cached features and writes the same result file again.
    monkeypatch.setattr(cli, "console", Console(width=200))
    args = ["eval", "knn", "--checkpoint", str(tmp_path / "run"), "--train", str(train_dir), "--val", str(val_dir)]
    args += ["--k", "20", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    shown = CliRunner().invoke(cli.app, args)
    assert shown.exit_code == 0, shown.output
    assert f"{100 * trained['value']:.2f}" in shown.output and "features from cache" in shown.output
    files = sorted(out.glob("*.json"))
    assert len(files) == 2
    assert {json.loads(f.read_text())["value"] for f in files} == {trained["value"], untrained["value"]}
