"""Exported backbones load strictly into torchvision / timm models and give identical features; torch.hub works."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

from typer.testing import CliRunner  # noqa: E402

from passkit.cli import app  # noqa: E402
from passkit.evaluate.export import ExportError, export_backbone  # noqa: E402
from passkit.ssl.backbones import build_backbone  # noqa: E402

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def write_backbone(path, arch, image_size=224, seed=0):
    """A checkpoint in the format `passkit pretrain` writes at the end of a run (backbone.pt)."""
    torch.manual_seed(seed)
    backbone = build_backbone(arch, image_size)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that they must travel too
        for module in backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    torch.save({"arch": arch, "dim": backbone.dim, "state_dict": backbone.state_dict()}, path)
    return backbone.eval()


def images(size=224, n=2):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_torchvision_export_loads_strictly_with_identical_features(tmp_path, arch):
    backbone = write_backbone(tmp_path / "backbone.pt", arch)
    report = export_backbone(tmp_path / "backbone.pt", "torchvision", tmp_path / f"{arch}.pth")
    assert report.target == arch and report.num_classes == 1000
    model = getattr(torchvision.models, arch)()
    model.load_state_dict(torch.load(tmp_path / f"{arch}.pth", weights_only=True), strict=True)
    assert float(model.fc.weight.detach().abs().sum()) == 0.0  # no classifier was trained: a zero head, documented
    model.fc = torch.nn.Identity()
    model.eval()
    if arch == "resnet18":  # one forward pass is enough to show the mapping; resnet50 shares the code path
        with torch.no_grad():
            torch.testing.assert_close(model(images()), backbone(images()), rtol=0, atol=0)


def test_torchvision_export_without_head(tmp_path):
    backbone = write_backbone(tmp_path / "backbone.pt", "resnet18", seed=1)
    export_backbone(tmp_path / "backbone.pt", "torchvision", tmp_path / "r18.pth", num_classes=0)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load(tmp_path / "r18.pth", weights_only=True), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images(64)), backbone(images(64)), rtol=0, atol=0)


def test_timm_export_loads_strictly_with_identical_features(tmp_path):
    backbone = write_backbone(tmp_path / "backbone.pt", "vit_small")
    export_backbone(tmp_path / "backbone.pt", "timm", tmp_path / "vits.pth")
    model = timm.create_model("vit_small_patch16_224", pretrained=False)
    model.load_state_dict(torch.load(tmp_path / "vits.pth", weights_only=True), strict=True)
    model.eval()
    with torch.no_grad():
        features = model.forward_head(model.forward_features(images(n=1)), pre_logits=True)
        torch.testing.assert_close(features, backbone(images(n=1)), rtol=0, atol=0)
        assert float(model(images(n=1)).abs().max()) == 0.0  # zero head


def test_timm_export_resamples_position_embeddings_like_timm(tmp_path):
    """A ViT-S trained at 96 px: exported at 224 with the grid timm itself would interpolate at run time."""
    backbone = write_backbone(tmp_path / "backbone.pt", "vit_small", image_size=96)
    export_backbone(tmp_path / "backbone.pt", "timm", tmp_path / "vits.pth", num_classes=0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    model.load_state_dict(torch.load(tmp_path / "vits.pth", weights_only=True), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images(n=1)), backbone(images(n=1)), rtol=1e-5, atol=1e-5)


def test_export_from_a_training_checkpoint_picks_the_encoder(tmp_path):
    from passkit.ssl.config import TrainConfig
    from passkit.ssl.train import build_method

    cfg = TrainConfig(method="mocov2", arch="resnet18", data="-", out=str(tmp_path), global_size=32)
    method = build_method(cfg.resolved())
    with torch.no_grad():
        method.key_backbone.body.conv1.weight.add_(1.0)  # the key encoder differs from the query encoder
    torch.save({"config": cfg.to_json(), "model": method.state_dict()}, tmp_path / "checkpoint.pt")
    export_backbone(tmp_path, "torchvision", tmp_path / "query.pth", encoder="backbone")
    export_backbone(tmp_path, "torchvision", tmp_path / "key.pth", encoder="key")
    query = torch.load(tmp_path / "query.pth", weights_only=True)
    key = torch.load(tmp_path / "key.pth", weights_only=True)
    torch.testing.assert_close(query["conv1.weight"], method.backbone.body.conv1.weight)
    torch.testing.assert_close(key["conv1.weight"], method.key_backbone.body.conv1.weight)
    with pytest.raises(ExportError, match="teacher"):
        export_backbone(tmp_path, "torchvision", tmp_path / "t.pth", encoder="teacher")


def test_unsupported_pairs_are_clear_errors(tmp_path):
    write_backbone(tmp_path / "backbone.pt", "vit_micro", image_size=16)
    with pytest.raises(ExportError, match="vit_micro backbone cannot be exported as torchvision"):
        export_backbone(tmp_path / "backbone.pt", "torchvision", tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()
    with pytest.raises(ExportError, match="no such checkpoint"):
        export_backbone(tmp_path / "missing.pt", "timm", tmp_path / "x.pth")


def test_cli_export_and_torch_hub_local(tmp_path):
    backbone = write_backbone(tmp_path / "backbone.pt", "resnet18", seed=2)
    out = tmp_path / "r18.pth"
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "backbone.pt"), "--format", "torchvision", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "r18.pth.json").exists()
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "backbone.pt"), "--format", "timm", "--out", str(out)])
    assert bad.exit_code == 2 and "cannot be exported as timm" in " ".join(bad.output.split())
    for weights in (out, tmp_path / "backbone.pt"):  # an export, or the run's backbone.pt itself
        model = torch.hub.load(str(REPO), "resnet18", source="local", weights=str(weights), trust_repo=True)
        with torch.no_grad():
            torch.testing.assert_close(model(images(64)), backbone(images(64)), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="sha256"):
        torch.hub.load(str(REPO), "resnet18", source="local", weights=str(out), sha256="00" * 32, trust_repo=True)
    vit = torch.hub.load(str(REPO), "vit_small", source="local", trust_repo=True)  # random init, feature output
    with torch.no_grad():
        assert vit(images(n=1)).shape == (1, 384)
