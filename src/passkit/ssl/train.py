"""The training loop shared by the three methods: one process or torchrun/DDP, AMP, accumulation, exact resume.

Run folder: ``config.json``, ``metrics.jsonl`` (one line per logged step), ``checkpoint.pt`` (the latest: models,
optimiser, grad scaler, queue/centre buffers, schedules, data position, RNG states), ``rank-N.pt`` beside it for
state that differs per rank under DDP (RNG, SwAV queue), and ``backbone.pt`` at the end (the representation).
On CPU a resumed run reproduces the uninterrupted run bit for bit (same thread count).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from passkit.core.atomic import atomic_path
from passkit.ssl import distributed as ddp
from passkit.ssl.augment import build_augment
from passkit.ssl.backbones import build_backbone, memory_format_for
from passkit.ssl.config import TrainConfig
from passkit.ssl.data import ViewStream, discover_units, make_loader
from passkit.ssl.knn import knn_monitor, load_labeled_folder
from passkit.ssl.methods import METHODS, SSLMethod
from passkit.ssl.optim import build_optimizer, clip_per_parameter
from passkit.ssl.schedules import cosine_schedule

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
DIST_BACKEND_ENV = "PASSKIT_DIST_BACKEND"  # overrides the process-group backend (default: nccl on GPU, gloo on CPU)


class ResumeError(RuntimeError):
    """A run folder that cannot be resumed as asked (no checkpoint, different world size...)."""


@dataclass
class TrainResult:
    steps: int
    epochs_done: int
    losses: list[float]
    run: Path
    images_per_second: float


def build_method(cfg: TrainConfig) -> SSLMethod:
    def make_backbone() -> nn.Module:
        return build_backbone(cfg.arch, cfg.global_size, cfg.drop_path_rate)

    return METHODS[cfg.method](make_backbone, **cfg.method_args)


def build_stream(cfg: TrainConfig, rank: int, world: int) -> ViewStream:
    overrides: dict[str, Any] = {}
    for name in ("n_local", "global_scale", "local_scale"):
        if getattr(cfg, name) is not None:
            overrides[name] = getattr(cfg, name)
    augment = build_augment(cfg.method, cfg.global_size, cfg.local_size, **overrides)
    return ViewStream(
        discover_units(cfg.data),
        augment,
        cfg.batch_size,
        seed=cfg.seed,
        rank=rank,
        world_size=world,
        workers=cfg.workers,
        shuffle_buffer=cfg.shuffle_buffer,
        decode_min_side=augment.cfg.decode_min_side(),
    )


def make_schedules(
    cfg: TrainConfig, method: SSLMethod, iters_per_epoch: int, global_batch: int
) -> dict[str, np.ndarray]:
    scale = global_batch / cfg.lr_ref_batch  # type: ignore[operator]
    schedules = {
        "lr": cosine_schedule(
            cfg.base_lr * scale,  # type: ignore[operator]
            cfg.final_lr * scale,  # type: ignore[operator]
            cfg.epochs,
            iters_per_epoch,
            cfg.warmup_epochs or 0,
            (cfg.warmup_start_lr or 0) * scale,
        ),
        "wd": cosine_schedule(cfg.weight_decay, cfg.weight_decay_end, cfg.epochs, iters_per_epoch),  # type: ignore[arg-type]
    }
    schedules.update(method.method_schedules(cfg.epochs, iters_per_epoch))
    return schedules


def _setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    # More ranks than GPUs (a smoke test on one GPU) share the GPUs round-robin; nccl refuses that, gloo does not.
    device = torch.device("cuda", local_rank % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not ddp.is_distributed():
        backend = os.environ.get(DIST_BACKEND_ENV) or ("nccl" if cuda else "gloo")
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return ddp.rank(), ddp.world_size(), device


def _amp(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    precision = cfg.precision
    if precision == "auto":
        if device.type != "cuda":
            return None, False
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        return torch.bfloat16, False
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("fp16 autocast needs a GPU; use --precision bf16 or fp32 on CPU")
        return torch.float16, True
    raise ValueError(f"unknown precision {cfg.precision!r} (auto | fp32 | bf16 | fp16)")


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as temp:
        torch.save(payload, temp)


def _rank_state_path(run: Path, rank: int) -> Path:
    return run / f"rank-{rank}.pt"


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines logged after the checkpoint a run resumes from (they will be logged again)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("step", 0) <= last_step]
    with atomic_path(path) as temp:
        temp.write_text("".join(line + "\n" for line in kept))


def _progress(enabled: bool, total: int, done: int) -> Iterator[Callable[[int, str], None]]:
    if not enabled:
        yield lambda _advance, _text: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("pretrain"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[text]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("steps", total=total, completed=done, text="")
        yield lambda advance, text: bar.update(task, advance=advance, text=text)


def _rank_owned_buffers(method: SSLMethod) -> dict[str, torch.Tensor]:
    """Buffers that differ per rank (the SwAV queue holds that rank's own embeddings)."""
    owned = getattr(method, "rank_owned_buffers", ())
    return {name: buf for name, buf in method.named_buffers() if name in owned}


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Pretrain as configured; with ``resume`` continue from ``cfg.out/checkpoint.pt`` exactly where it stopped."""
    cfg = cfg.resolved()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = _setup_distributed()
    run = Path(cfg.out)
    checkpoint_path = run / CHECKPOINT
    checkpoint: dict[str, Any] | None = None
    if resume:
        if not checkpoint_path.exists():
            raise ResumeError(f"{checkpoint_path}: nothing to resume (start without --resume)")
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if checkpoint["world_size"] != world:
            raise ResumeError(f"checkpoint was written by {checkpoint['world_size']} rank(s), this run has {world}")
    elif checkpoint_path.exists():
        raise ResumeError(f"{checkpoint_path} exists: pass --resume to continue it, or choose another --out")

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    method = build_method(cfg).to(device)
    memory_format = memory_format_for(cfg.arch)  # NHWC for ResNets: faster on GPUs and CPUs alike
    method = method.to(memory_format=memory_format)
    stream = build_stream(cfg, rank, world)
    loader = make_loader(stream, cfg.workers, pin_memory=device.type == "cuda")
    iters_per_epoch = stream.batches_per_epoch // cfg.accum_steps
    if iters_per_epoch == 0:
        raise ValueError(
            f"{stream.batches_per_epoch} batches per epoch cannot fill {cfg.accum_steps} accumulation steps"
        )
    method.iters_per_epoch = iters_per_epoch
    global_batch = cfg.batch_size * world * cfg.accum_steps
    method.schedules = make_schedules(cfg, method, iters_per_epoch, global_batch)
    total_steps = cfg.epochs * iters_per_epoch

    model: nn.Module = method
    if world > 1:
        if device.type == "cuda" and cfg.method != "mocov2":
            nn.SyncBatchNorm.convert_sync_batchnorm(method)  # converts the children in place
        model = DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    optimizer = build_optimizer(
        cfg.optimizer, method.param_groups(cfg.weight_decay), method.schedules["lr"][0], cfg.sgd_momentum
    )  # type: ignore[arg-type]
    autocast_dtype, use_scaler = _amp(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    amp_on = autocast_dtype is not None

    step = 0
    if checkpoint is not None:
        method.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        step = checkpoint["step"]
        rank_state = torch.load(_rank_state_path(run, rank), map_location="cpu", weights_only=False)
        for name, value in rank_state["buffers"].items():
            method.get_buffer(name).copy_(value)
        _set_rng_state(rank_state["rng"])
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(cfg.to_json() + "\n")
        _truncate_metrics(run / METRICS, step)

    knn_sets = None
    if cfg.knn_train and cfg.knn_val and rank == 0:
        knn_sets = (
            load_labeled_folder(cfg.knn_train, cfg.global_size)[:2],
            load_labeled_folder(cfg.knn_val, cfg.global_size)[:2],
        )

    def save_checkpoint() -> None:
        epoch, in_epoch = divmod(step, iters_per_epoch)
        rank_payload = {
            "rng": _rng_state(),
            "buffers": {k: v.cpu() for k, v in _rank_owned_buffers(method).items()},
        }
        if rank == 0:
            run.mkdir(parents=True, exist_ok=True)
        if ddp.is_distributed():
            dist.barrier()
        _save(_rank_state_path(run, rank), rank_payload)
        if rank == 0:
            payload = {
                "config": cfg.to_json(),
                "step": step,
                "epoch": epoch,
                "batches_done_in_epoch": in_epoch * cfg.accum_steps,
                "world_size": world,
                "model": method.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "schedules": method.schedules,
            }
            _save(checkpoint_path, payload)
        if ddp.is_distributed():
            dist.barrier()

    metrics = (run / METRICS).open("a") if rank == 0 else None
    losses: list[float] = []
    stop_at = min(total_steps, cfg.max_steps) if cfg.max_steps is not None else total_steps
    images_seen, started = 0, time.perf_counter()
    model.train()
    try:
        with contextlib.contextmanager(_progress)(cfg.progress and rank == 0, total_steps, step) as advance:
            while step < stop_at:
                epoch, in_epoch = divmod(step, iters_per_epoch)
                stream.set_position(epoch, in_epoch * cfg.accum_steps)
                batches = iter(loader)
                while step < stop_at and step // iters_per_epoch == epoch:
                    loss_sum = torch.zeros((), device=device)
                    extra: dict[str, float] = {}
                    for micro in range(cfg.accum_steps):
                        views = [v.to(device, non_blocking=True, memory_format=memory_format) for v in next(batches)]
                        images_seen += len(views[0])
                        sync = micro == cfg.accum_steps - 1 or world == 1
                        # Under DDP, gradients are all-reduced only on the last micro-batch of a step.
                        with contextlib.nullcontext() if sync else model.no_sync():  # type: ignore[operator]
                            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=amp_on):
                                loss, extra = model(views, step)
                            scaler.scale(loss / cfg.accum_steps).backward()
                        loss_sum += loss.detach().float()
                    lr, wd = float(method.schedules["lr"][step]), float(method.schedules["wd"][step])
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                        if group.get("apply_wd", True):
                            group["weight_decay"] = wd
                    if cfg.clip_grad:
                        scaler.unscale_(optimizer)
                        clip_per_parameter(method.parameters(), cfg.clip_grad)
                    method.cancel_gradients(step)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    method.after_step(step)
                    mean_loss = float(ddp.all_reduce_sum(loss_sum / cfg.accum_steps) / world)
                    if not np.isfinite(mean_loss):
                        raise FloatingPointError(f"loss is {mean_loss} at step {step}; lower the learning rate")
                    step += 1
                    losses.append(mean_loss)
                    if metrics is not None and (step % cfg.log_every == 0 or step == stop_at or step == 1):
                        elapsed = time.perf_counter() - started
                        record = {"step": step, "epoch": epoch, "loss": mean_loss, "lr": lr, "wd": wd}
                        record.update({k: float(v) for k, v in extra.items()})
                        record["images_per_s"] = images_seen * world / max(elapsed, 1e-9)
                        metrics.write(json.dumps(record) + "\n")
                        metrics.flush()
                    advance(1, f"epoch {epoch} loss {mean_loss:.4f}")
                    end_of_epoch = step % iters_per_epoch == 0
                    if (cfg.save_every and step % cfg.save_every == 0) or (end_of_epoch and not cfg.save_every):
                        save_checkpoint()
                    if end_of_epoch and knn_sets is not None and (step // iters_per_epoch) % cfg.knn_every == 0:
                        accuracy = knn_monitor(method.backbone, knn_sets[0], knn_sets[1], device)
                        if metrics is not None:
                            metrics.write(json.dumps({"step": step, "epoch": epoch, "knn_top1": accuracy}) + "\n")
                            metrics.flush()
                del batches
        save_checkpoint()
        if rank == 0 and step >= total_steps:
            _save(
                run / "backbone.pt",
                {"arch": cfg.arch, "dim": method.backbone.dim, "state_dict": method.backbone.state_dict()},
            )
    finally:
        if metrics is not None:
            metrics.close()
    elapsed = time.perf_counter() - started
    return TrainResult(step, step // iters_per_epoch, losses, run, images_seen * world / max(elapsed, 1e-9))
