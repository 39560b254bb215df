"""The evaluation entry points: a checkpoint (or a backbone module) and two datasets in, result dicts out.

``knn_eval`` / ``knn_sweep`` (DINO's weighted kNN) and ``linear_eval`` (MoCo or L-BFGS probe) share one path:
load the backbone, extract (or read cached) features of both sets under the evaluation transform, score, stamp the
result with its full protocol and write it to ``out`` when given.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from passkit.evaluate.checkpoint import DEFAULT_IMAGE_SIZE, CheckpointInfo, load_backbone, vit_image_size
from passkit.evaluate.datasets import LabeledDataset, open_dataset
from passkit.evaluate.features import EvalTransform, Features, cached_features, default_cache_dir, resolve_device
from passkit.evaluate.knn import knn_scores
from passkit.evaluate.linear import LbfgsProbeConfig, MocoProbeConfig, lbfgs_probe, moco_probe
from passkit.evaluate.results import make_result, write_result

Model = str | Path | nn.Module
DataSpec = str | Path | LabeledDataset
# progress(description, total) -> advance(n)
ProgressFactory = Callable[[str, int], Callable[[int], None]]
DEFAULT_KS = (10, 20, 100, 200)


@dataclass(frozen=True)
class FeatureOptions:
    image_size: int | None = None  # None: the checkpoint's own (ViT position grid, run config) or 224
    crop_ratio: float = 0.875
    batch_size: int = 256
    device: str | None = None  # None / "auto": cuda when available
    workers: int = 0
    cache: bool = True
    cache_dir: str | Path | None = None  # None: default_cache_dir()


def module_info(backbone: nn.Module, image_size: int | None) -> CheckpointInfo:
    """Identity of an in-memory backbone: the sha256 of its state dict's tensors. Image size: as given, else the
    ViT's position grid, else 224."""
    digest = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    arch = str(getattr(backbone, "name", type(backbone).__name__))
    size = image_size or vit_image_size(backbone.state_dict()) or DEFAULT_IMAGE_SIZE
    return CheckpointInfo(arch, size, digest.hexdigest(), None)


def prepare_backbone(
    model: Model | None,
    *,
    random_init: bool = False,
    seed: int = 0,
    image_size: int | None = None,
    encoder: str = "backbone",
    arch: str | None = None,
) -> tuple[nn.Module, CheckpointInfo]:
    if isinstance(model, nn.Module):
        if random_init:
            raise ValueError("random_init needs a checkpoint or an architecture, not a module")
        return model, module_info(model, image_size)
    return load_backbone(model, arch=arch, random_init=random_init, seed=seed, image_size=image_size, encoder=encoder)


def _dataset(spec: DataSpec, split: str) -> LabeledDataset:
    return spec if isinstance(spec, LabeledDataset) else open_dataset(spec, split)


def extract_pair(
    backbone: nn.Module,
    info: CheckpointInfo,
    train: DataSpec,
    val: DataSpec,
    options: FeatureOptions,
    progress: ProgressFactory | None = None,
) -> tuple[LabeledDataset, LabeledDataset, Features, Features, EvalTransform]:
    train_set = _dataset(train, "train")
    val_set = _dataset(val, "val").with_classes(train_set.classes)
    transform = EvalTransform(image_size=info.image_size, crop_ratio=options.crop_ratio)
    cache_dir = (options.cache_dir or default_cache_dir()) if options.cache else None
    out = []
    for data in (train_set, val_set):
        advance = progress(f"features {data.name}/{data.split}", len(data)) if progress else None
        out.append(
            cached_features(
                backbone,
                info,
                data,
                transform,
                cache_dir,
                batch_size=options.batch_size,
                device=options.device,
                workers=options.workers,
                progress=advance,
            )
        )
    return train_set, val_set, out[0], out[1], transform


def _dataset_record(train: LabeledDataset, val: LabeledDataset, ftrain: Features, fval: Features) -> dict[str, Any]:
    return {
        "train": {**train.describe(), "skipped": len(ftrain.skipped), "n_used": len(ftrain.labels)},
        "val": {**val.describe(), "skipped": len(fval.skipped), "n_used": len(fval.labels)},
    }


def knn_sweep(
    model: Model | None,
    train: DataSpec,
    val: DataSpec,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    temperature: float = 0.07,
    random_init: bool = False,
    seed: int = 0,
    encoder: str = "backbone",
    arch: str | None = None,
    options: FeatureOptions | None = None,
    out: str | Path | None = None,
    progress: ProgressFactory | None = None,
) -> list[dict[str, Any]]:
    """Weighted kNN (DINO) for each k: one result dict per k (written to ``out`` when given)."""
    options = options or FeatureOptions()
    started = time.perf_counter()
    backbone, info = prepare_backbone(
        model, random_init=random_init, seed=seed, image_size=options.image_size, encoder=encoder, arch=arch
    )
    train_set, val_set, ftrain, fval, transform = extract_pair(backbone, info, train, val, options, progress)
    device = resolve_device(options.device)
    scores = knn_scores(
        torch.tensor(np.asarray(ftrain.features), dtype=torch.float32, device=device),
        torch.from_numpy(ftrain.labels).to(device),
        torch.tensor(np.asarray(fval.features), dtype=torch.float32, device=device),
        torch.from_numpy(fval.labels),
        ks=list(ks),
        temperature=temperature,
        n_classes=len(train_set.classes),
    )
    seconds = time.perf_counter() - started
    results = []
    for k in ks:
        protocol = {
            "name": "knn",
            "k": k,
            "temperature": temperature,
            "similarity": "cosine (L2-normalised features)",
            "weighting": "exp(similarity / T), summed per class",
            "seed": seed,
            "features": transform.to_dict(),
        }
        result = make_result(
            "knn_top1",
            scores[k],
            protocol,
            _dataset_record(train_set, val_set, ftrain, fval),
            info.to_dict(),
            device=str(device),
            seconds=round(seconds, 3),
            features_cached=ftrain.cached and fval.cached,
        )
        if out is not None:
            result["path"] = str(write_result(result, out))
        results.append(result)
    return results


def knn_eval(model: Model | None, train: DataSpec, val: DataSpec, *, k: int = 20, **kwargs: Any) -> dict[str, Any]:
    """Weighted kNN top-1/top-5 of ``model`` (checkpoint path, run folder or backbone module) on ``val``.

    Keyword arguments as :func:`knn_sweep` (``temperature``, ``random_init``, ``seed``, ``options``, ``out``...).
    """
    return knn_sweep(model, train, val, ks=[k], **kwargs)[0]


def linear_eval(
    model: Model | None,
    train: DataSpec,
    val: DataSpec,
    *,
    protocol: str = "lbfgs",
    moco: MocoProbeConfig | None = None,
    lbfgs: LbfgsProbeConfig | None = None,
    random_init: bool = False,
    seed: int = 0,
    encoder: str = "backbone",
    arch: str | None = None,
    options: FeatureOptions | None = None,
    out: str | Path | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """A linear probe on frozen features: ``protocol`` "moco" (SGD, lr sweep) or "lbfgs" (CLIP, C sweep)."""
    if protocol not in ("moco", "lbfgs"):
        raise ValueError(f"unknown linear protocol {protocol!r} (moco | lbfgs)")
    options = options or FeatureOptions()
    started = time.perf_counter()
    backbone, info = prepare_backbone(
        model, random_init=random_init, seed=seed, image_size=options.image_size, encoder=encoder, arch=arch
    )
    train_set, val_set, ftrain, fval, transform = extract_pair(backbone, info, train, val, options, progress)
    device = resolve_device(options.device)
    tensors = (
        torch.tensor(np.asarray(ftrain.features), dtype=torch.float32, device=device),
        torch.from_numpy(ftrain.labels).to(device),
        torch.tensor(np.asarray(fval.features), dtype=torch.float32, device=device),
        torch.from_numpy(fval.labels).to(device),
    )
    n_classes = len(train_set.classes)
    if protocol == "moco":
        moco_cfg = moco or MocoProbeConfig(seed=seed)
        probe = moco_probe(*tensors, n_classes, moco_cfg)
        record = {**moco_cfg.protocol(), "selected_lr": probe.selected["lr"]}
    else:
        lbfgs_cfg = lbfgs or LbfgsProbeConfig(seed=seed)
        probe = lbfgs_probe(*tensors, n_classes, lbfgs_cfg)
        record = {**lbfgs_cfg.protocol(), "selected_C": probe.selected["C"], **probe.details}
    record["features"] = transform.to_dict()
    result = make_result(
        "linear_top1",
        {"top1": probe.top1, "top5": probe.top5},
        record,
        _dataset_record(train_set, val_set, ftrain, fval),
        info.to_dict(),
        sweep=probe.sweep,
        device=str(device),
        seconds=round(time.perf_counter() - started, 3),
        features_cached=ftrain.cached and fval.cached,
    )
    if out is not None:
        result["path"] = str(write_result(result, out))
    return result
