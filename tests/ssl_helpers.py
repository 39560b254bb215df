"""Helpers for the pretraining tests: small real-image sets written as passkit shards or folders."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from passkit.core.manifest import ManifestBuilder, write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths
from passkit.core.tar import write_shard


def digits(size: int = 32) -> tuple[list[Image.Image], np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real scans), upscaled to ``size`` RGB images."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = [
        Image.fromarray((image / 16 * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR).convert("RGB")
        for image in data.images
    ]
    return images, data.target


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_image_shards(root: Path, images: list[Image.Image], per_shard: int) -> list[Path]:
    """passkit shards NNNNN.tar + NNNNN.parquet manifests (all kept) holding the images as PNG."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, start in enumerate(range(0, len(images), per_shard)):
        shard = ShardPaths(root, index)
        chunk = images[start : start + per_shard]
        samples = [Sample.build(f"img-{start + i:05d}", png=png_bytes(img)) for i, img in enumerate(chunk)]
        write_shard(shard.tar, samples)
        builder = ManifestBuilder()
        for sample in samples:
            builder.kept(sample.key)
        write_manifest(shard.manifest, builder.to_table(), expected_keys=[s.key for s in samples])
        paths.append(shard.tar)
    return paths


def write_image_folder(root: Path, images: list[Image.Image], labels: np.ndarray | None = None) -> Path:
    for i, image in enumerate(images):
        folder = root / (str(int(labels[i])) if labels is not None else "all")
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:05d}.png")
    return root


def tiny_dino(make_backbone):
    from passkit.ssl.methods import DINO

    return DINO(make_backbone, out_dim=32, hidden_dim=16, bottleneck_dim=8, freeze_last_layer_epochs=0)


def global_batch(seed: int = 1, n: int = 8) -> list:
    import torch

    generator = torch.Generator().manual_seed(seed)
    sizes = [16, 16, 8, 8]
    return [torch.randn(n, 3, s, s, generator=generator) for s in sizes]


def ddp_worker(rank: int, world: int, init_file: str, out_dir: str, data_dir: str) -> None:
    """One rank of the 2-process gloo test: DINO gradients, SwAV Sinkhorn, MoCo queue and a short train()."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from passkit.ssl.backbones import build_backbone
    from passkit.ssl.config import TrainConfig
    from passkit.ssl.losses import sinkhorn
    from passkit.ssl.methods import MoCoV2
    from passkit.ssl.train import train

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out = Path(out_dir)
        torch.manual_seed(0)
        method = tiny_dino(lambda: build_backbone("vit_micro", image_size=16))
        method.schedules = method.method_schedules(1, 10)
        model = DistributedDataParallel(method, broadcast_buffers=False)
        half = len(global_batch()[0]) // world
        views = [v[rank * half : (rank + 1) * half] for v in global_batch()]
        loss, _ = model(views, 0)
        loss.backward()
        grads = {name: p.grad.clone() for name, p in method.named_parameters() if p.grad is not None}
        scores = torch.nn.functional.normalize(torch.randn(8, 5, generator=torch.Generator().manual_seed(2)), dim=1)
        codes = sinkhorn(scores[rank * 4 : (rank + 1) * 4])
        torch.manual_seed(0)
        moco = MoCoV2(lambda: build_backbone("vit_micro", image_size=16), dim=4, queue_size=6)
        keys = torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(3)), dim=1)
        moco.enqueue(keys[rank * 4 : (rank + 1) * 4])
        torch.save(
            {"grads": grads, "center": method.loss.center.clone(), "codes": codes, "queue": moco.queue.clone()},
            out / f"rank{rank}.pt",
        )
        cfg = TrainConfig(
            method="dino",
            arch="vit_micro",
            data=data_dir,
            out=str(out / "run"),
            epochs=1,
            batch_size=4,
            workers=0,
            global_size=16,
            local_size=8,
            n_local=2,
            progress=False,
            log_every=1,
            method_args={"out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8},
        )
        result = train(cfg)
        torch.save({"losses": result.losses, "steps": result.steps}, out / f"train{rank}.pt")
    finally:
        dist.destroy_process_group()
