"""Training loop: 2-process DDP (gloo) equals one process on the global batch; resume reproduces exactly."""

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from tests.ssl_helpers import ddp_worker, digits, global_batch, tiny_dino, write_image_shards  # noqa: E402

from passkit.ssl.backbones import build_backbone  # noqa: E402
from passkit.ssl.config import TrainConfig  # noqa: E402
from passkit.ssl.losses import sinkhorn  # noqa: E402
from passkit.ssl.methods import MoCoV2  # noqa: E402
from passkit.ssl.train import ResumeError, train  # noqa: E402

torch.set_num_threads(1)

TINY_ARGS = {
    "mocov2": {"dim": 16, "queue_size": 32, "momentum": 0.99},
    "swav": {
        "dim": 16,
        "hidden_dim": 32,
        "n_prototypes": 10,
        "queue_length": 16,
        "queue_start_epoch": 1,
        "freeze_prototypes_iters": 3,
    },
    "dino": {"out_dim": 32, "hidden_dim": 32, "bottleneck_dim": 8, "freeze_last_layer_epochs": 1},
}


@pytest.fixture(scope="module")
def digit_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("digit-shards")
    images, _ = digits(16)
    write_image_shards(root, images[:48], per_shard=8)
    return root


def _config(method, data, out, **changes):
    settings = {
        "method": method,
        "arch": "vit_micro",
        "data": str(data),
        "out": str(out),
        "epochs": 2,
        "batch_size": 8,
        "workers": 0,
        "global_size": 16,
        "local_size": 8,
        "n_local": 2 if method != "mocov2" else 0,
        "save_every": 4,
        "log_every": 1,
        "progress": False,
        "optimizer": "adamw" if method != "dino" else None,
        "base_lr": 1e-3,
        "lr_ref_batch": 8,
        "warmup_epochs": 0.5,
        "method_args": TINY_ARGS[method],
    }
    settings.update(changes)
    return TrainConfig.from_dict(settings)


def _losses(run):
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in lines if "loss" in r]


@pytest.mark.parametrize("method,workers", [("mocov2", 0), ("swav", 0), ("dino", 2)])
def test_resume_after_interruption_reproduces_the_run_exactly(method, workers, digit_shards, tmp_path):
    full = train(_config(method, digit_shards, tmp_path / "full", workers=workers))
    assert full.steps == 12  # 48 images / batch 8 = 6 steps per epoch, 2 epochs

    run = tmp_path / "interrupted"
    train(_config(method, digit_shards, run, workers=workers, max_steps=4))
    saved = tmp_path / "saved-at-4"
    shutil.copytree(run, saved)
    train(_config(method, digit_shards, run, workers=workers, max_steps=7), resume=True)
    # A crash after step 7 loses everything since the checkpoint of step 4; metrics hold steps 5-7 already.
    for name in ("checkpoint.pt", "rank-0.pt"):
        shutil.copy(saved / name, run / name)
    resumed = train(_config(method, digit_shards, run, workers=workers), resume=True)
    assert resumed.steps == 12

    assert _losses(run) == _losses(tmp_path / "full")  # bit-exact, steps 1..12, no duplicates
    assert [loss for _, loss in _losses(run)] == full.losses
    final_a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["model"]
    final_b = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert (run / "backbone.pt").exists()


def test_resume_refusals(digit_shards, tmp_path):
    with pytest.raises(ResumeError, match="nothing to resume"):
        train(_config("mocov2", digit_shards, tmp_path / "new"), resume=True)
    train(_config("mocov2", digit_shards, tmp_path / "done", max_steps=1))
    with pytest.raises(ResumeError, match="pass --resume"):
        train(_config("mocov2", digit_shards, tmp_path / "done"))


def test_two_process_ddp_gradients_equal_one_process_on_the_global_batch(digit_shards, tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    mp.spawn(ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), str(digit_shards)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    torch.manual_seed(0)
    single = tiny_dino(lambda: build_backbone("vit_micro", image_size=16))
    single.schedules = single.method_schedules(1, 10)
    loss, _ = single(global_batch(), 0)
    loss.backward()
    expected = {name: p.grad for name, p in single.named_parameters() if p.grad is not None}
    for state in ranks:
        assert state["grads"].keys() == expected.keys()
        for name, grad in expected.items():
            torch.testing.assert_close(state["grads"][name], grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(state["center"], single.loss.center)

    scores = torch.nn.functional.normalize(torch.randn(8, 5, generator=torch.Generator().manual_seed(2)), dim=1)
    torch.testing.assert_close(torch.cat([ranks[0]["codes"], ranks[1]["codes"]]), sinkhorn(scores))

    torch.manual_seed(0)
    moco = MoCoV2(lambda: build_backbone("vit_micro", image_size=16), dim=4, queue_size=6)
    moco.enqueue(torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(3)), dim=1))
    for state in ranks:
        torch.testing.assert_close(state["queue"], moco.queue)

    runs = [torch.load(tmp_path / f"train{r}.pt", weights_only=False) for r in range(2)]
    assert runs[0]["steps"] == runs[1]["steps"] == 6  # 48 images / (2 ranks x 4)
    assert runs[0]["losses"] == runs[1]["losses"]  # the logged loss is the mean over ranks
    assert (tmp_path / "run" / "rank-1.pt").exists() and (tmp_path / "run" / "backbone.pt").exists()
