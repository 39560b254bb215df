"""GPU check of `passkit pretrain`: speed, memory, learning, exact resume and a DDP smoke run, in a few minutes.

    PYTHONPATH=src python benchmarks/ssl_gpu_check.py            # on a CUDA machine, bf16, 224 px (<= ~4 min)
    PYTHONPATH=src python benchmarks/ssl_gpu_check.py --smoke    # the same checks at tiny sizes on CPU

1. speed: per method at the paper's sizes (MoCo-v2 R50 2x224, SwAV R50 2x224+6x96, DINO ViT-S/16 2x224+8x96),
   batch 64, AMP bf16: images/s of the training step alone (forward + backward + optimiser + momentum update on
   fixed GPU tensors) and of the full trainer (generated JPEG shards -> DataLoader workers -> augment -> step),
   peak GPU memory; the trainer's losses must be finite and fall (mean of the last 5 steps below the first 5,
   counted once the MoCo / SwAV queues hold real embeddings).
2. resume: per method (small models at 64 px) a run interrupted at step 6 and resumed must equal an
   uninterrupted 12-step run (losses and final weights). Deterministic cuDNN/cuBLAS settings are on, and DINO
   runs its two global crops only on GPU (the local crops' position-embedding interpolation has no deterministic
   CUDA backward); where a kernel is still non-deterministic the uninterrupted run is repeated and the resumed
   run must stay within 10x that run-to-run difference.
3. ddp: `torchrun --nproc-per-node 2` on one device (nccl if it accepts two ranks on one GPU, else gloo; gloo on
   CPU) trains each method for a few steps; both ranks must log the same finite losses, end with identical
   weights and write their checkpoints.

Prints one markdown table per section and a verdict line; exits 1 if any check failed (after running them all).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts: deterministic cuBLAS for resume

import numpy as np
import torch

from passkit.ssl.backbones import memory_format_for
from passkit.ssl.config import TrainConfig
from passkit.ssl.train import DIST_BACKEND_ENV, build_method, train

METHODS = ("mocov2", "swav", "dino")
# (optimiser, lr, per batch): the recipes' (SwAV: its batch-256 setting).
RECIPE_LR = {"mocov2": ("sgd", 0.03, 256), "swav": ("lars", 0.6, 256), "dino": ("adamw", 5e-4, 256)}


@dataclass(frozen=True)
class Sizes:
    arch: dict[str, str]
    global_size: int
    local_size: int
    n_local: dict[str, int]
    batch: int
    steps: int
    image_side: int
    workers: int
    method_args: dict[str, dict[str, Any]]
    resume_arch: dict[str, str]
    resume_size: int
    resume_local: int
    lr: dict[str, tuple[str, float, int]] = field(default_factory=lambda: dict(RECIPE_LR))


FULL = Sizes(
    arch={"mocov2": "resnet50", "swav": "resnet50", "dino": "vit_small"},
    global_size=224,
    local_size=96,
    n_local={"mocov2": 0, "swav": 6, "dino": 8},
    batch=64,
    steps=40,
    image_side=256,
    workers=max(1, min(12, (os.cpu_count() or 2) - 2)),
    method_args={
        # Recipe settings; the queues are shortened so that they hold real embeddings within the run.
        "mocov2": {"queue_size": 1024},
        "swav": {"queue_length": 1024, "queue_start_epoch": 0, "freeze_prototypes_iters": 10},
        "dino": {"out_dim": 65536, "norm_last_layer": False, "freeze_last_layer_epochs": 0},
    },
    resume_arch={"mocov2": "resnet18", "swav": "resnet18", "dino": "vit_small"},
    resume_size=64,
    resume_local=32,
)
SMOKE = Sizes(
    arch={"mocov2": "resnet_tiny", "swav": "resnet_tiny", "dino": "vit_micro"},
    global_size=32,
    local_size=16,
    n_local={"mocov2": 0, "swav": 2, "dino": 2},
    batch=16,
    steps=24,
    image_side=48,
    workers=1,
    method_args={
        "mocov2": {"queue_size": 128},
        "swav": {"queue_length": 128, "queue_start_epoch": 0, "freeze_prototypes_iters": 4, "n_prototypes": 100},
        "dino": {
            "out_dim": 1024,
            "hidden_dim": 256,
            "bottleneck_dim": 64,
            "momentum_teacher": 0.95,
            "freeze_last_layer_epochs": 0,
        },
    },
    resume_arch={"mocov2": "resnet_tiny", "swav": "resnet_tiny", "dino": "vit_micro"},
    resume_size=16,
    resume_local=8,
    lr={**RECIPE_LR, "dino": ("adamw", 5e-3, 256)},  # as the tiny-dino preset: 24 steps must show learning
)


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> str:
        if not ok:
            self.failures.append(what)
        return "ok" if ok else "FAIL"


# ---------------------------------------------------------------- data
def generated_shards(root: Path, n_images: int, side: int, seed: int = 0) -> Path:
    """JPEG images of random coloured shapes on textured backgrounds, as passkit shards with manifests."""
    from PIL import Image, ImageDraw

    from passkit.core.manifest import ManifestBuilder, write_manifest
    from passkit.core.sample import Sample
    from passkit.core.shards import ShardPaths
    from passkit.core.tar import write_shard

    rng = np.random.default_rng(seed)
    per_shard = 256
    for index, start in enumerate(range(0, n_images, per_shard)):
        samples = []
        for i in range(start, min(start + per_shard, n_images)):
            base = rng.integers(0, 256, 3)
            noise = rng.integers(-40, 40, (side // 8, side // 8, 3))
            background = np.clip(base + noise, 0, 255).astype(np.uint8)
            image = Image.fromarray(background).resize((side, side), Image.BILINEAR)
            draw = ImageDraw.Draw(image)
            for _ in range(int(rng.integers(1, 5))):
                x0, y0 = rng.integers(0, side * 3 // 4, 2)
                w, h = rng.integers(side // 8, side // 2, 2)
                colour = tuple(int(c) for c in rng.integers(0, 256, 3))
                box = (int(x0), int(y0), int(x0 + w), int(y0 + h))
                (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            samples.append(Sample.build(f"gen-{i:06d}", jpg=buffer.getvalue()))
        shard = ShardPaths(root, index)
        write_shard(shard.tar, samples)
        builder = ManifestBuilder()
        for sample in samples:
            builder.kept(sample.key)
        write_manifest(shard.manifest, builder.to_table(), expected_keys=[s.key for s in samples])
    return root


# ---------------------------------------------------------------- configs
def config(
    method: str, sizes: Sizes, data: Path, out: Path, *, resume_check: bool = False, **changes: Any
) -> TrainConfig:
    optimizer, base_lr, ref = sizes.lr[method]
    settings: dict[str, Any] = {
        "method": method,
        "arch": sizes.resume_arch[method] if resume_check else sizes.arch[method],
        "data": str(data),
        "out": str(out),
        "epochs": 4,
        "batch_size": sizes.batch,
        "workers": sizes.workers,
        "global_size": sizes.resume_size if resume_check else sizes.global_size,
        "local_size": sizes.resume_local if resume_check else sizes.local_size,
        "n_local": sizes.n_local[method],
        "optimizer": optimizer,
        "base_lr": base_lr,
        "lr_ref_batch": ref,
        "warmup_epochs": 0.1,
        "precision": "bf16" if torch.cuda.is_available() else "fp32",
        "log_every": 1,
        "progress": False,
        "method_args": dict(sizes.method_args[method]),
    }
    if method == "dino":
        settings["drop_path_rate"] = 0.1
    settings.update(changes)
    return TrainConfig.from_dict(settings)


def settle_steps(method: str, sizes: Sizes) -> int:
    args = sizes.method_args[method]
    queue = args.get("queue_size", 0) if method == "mocov2" else args.get("queue_length", 0)
    return math.ceil(queue / sizes.batch) if method != "dino" else 0


def read_metrics(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip() and "loss" in json.loads(line)]


def steady_images_per_s(records: list[dict[str, Any]], batch: int, skip: int) -> float:
    """Trainer throughput between step ``skip`` and the last step (cumulative figures give elapsed times)."""
    times = {r["step"]: r["step"] * batch / r["images_per_s"] for r in records}
    first, last = max(skip, min(times)), max(times)
    return (last - first) * batch / max(times[last] - times[first], 1e-9)


# ---------------------------------------------------------------- 1. speed and learning
def step_images_per_s(cfg: TrainConfig, device: torch.device, steps: int) -> float:
    """The training step alone on fixed tensors already on the device (no data loading)."""
    from passkit.ssl.optim import build_optimizer, clip_per_parameter
    from passkit.ssl.train import make_schedules

    cfg = cfg.resolved()
    torch.manual_seed(0)
    method = build_method(cfg).to(device)
    memory_format = memory_format_for(cfg.arch)  # as the trainer does
    method = method.to(memory_format=memory_format)
    method.iters_per_epoch = 1000
    method.schedules = make_schedules(cfg, method, 1000, cfg.batch_size)
    optimizer = build_optimizer(cfg.optimizer, method.param_groups(cfg.weight_decay), 1e-4)  # type: ignore[arg-type]
    sizes = [cfg.global_size] * 2 + [cfg.local_size] * (cfg.n_local or 0)
    views = [torch.randn(cfg.batch_size, 3, s, s, device=device).to(memory_format=memory_format) for s in sizes]
    amp = device.type == "cuda"

    def step(i: int) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = method(views, i)
        loss.backward()
        if cfg.clip_grad:
            clip_per_parameter(method.parameters(), cfg.clip_grad)
        method.cancel_gradients(i)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.after_step(i)

    for i in range(3):
        step(i)
    synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        step(3 + i)
    synchronize(device)
    return steps * cfg.batch_size / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def speed_section(
    sizes: Sizes, data: Path, work: Path, device: torch.device, report: Report, methods: tuple[str, ...] = METHODS
) -> list[str]:
    rows = [
        "| method | arch | views | batch | step img/s | trainer img/s | peak GiB | loss first5 -> last5 "
        "| finite | falls |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        views = f"2x{sizes.global_size}" + (
            f"+{sizes.n_local[method]}x{sizes.local_size}" if sizes.n_local[method] else ""
        )
        try:
            cfg = config(method, sizes, data, work / f"speed-{method}", max_steps=sizes.steps)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            step_rate = step_images_per_s(cfg, device, max(5, sizes.steps // 4))
            result = train(cfg)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            records = read_metrics(cfg_out(cfg))
            trainer_rate = steady_images_per_s(records, sizes.batch, skip=5)
            losses = result.losses
            settled = losses[settle_steps(method, sizes) :]
            first, last = statistics.mean(settled[:5]), statistics.mean(settled[-5:])
            finite = report.check(all(math.isfinite(x) for x in losses), f"speed/{method}: non-finite loss")
            falls = report.check(last < first, f"speed/{method}: loss did not fall ({first:.4f} -> {last:.4f})")
            steps_ok = report.check(result.steps == sizes.steps, f"speed/{method}: {result.steps} steps")
            rows.append(
                f"| {method} | {cfg.arch} | {views} | {sizes.batch} | {step_rate:.1f} | {trainer_rate:.1f} | "
                f"{peak:.2f} | {first:.4f} -> {last:.4f} | {finite} | {falls}{'' if steps_ok == 'ok' else ' (steps)'} |"
            )
        except Exception as error:  # noqa: BLE001 - recorded as a failed check, the other checks still run
            report.failures.append(f"speed/{method}: {type(error).__name__}: {error}")
            traceback.print_exc()
            rows.append(f"| {method} | {sizes.arch[method]} | {views} | {sizes.batch} | ERROR {type(error).__name__} |")
    return rows


def cfg_out(cfg: TrainConfig) -> Path:
    return Path(cfg.out)


# ---------------------------------------------------------------- 2. resume
def final_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def state_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    if a.keys() != b.keys():
        return float("inf")
    return max(
        (float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0)
        for k in a
        if a[k].is_floating_point()
    )


def resume_section(sizes: Sizes, data: Path, work: Path, device: torch.device, report: Report) -> list[str]:
    rows = [
        "| method | arch | steps | loss diff resumed vs full | weight diff | repeat-run weight diff | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    common = {"epochs": 2, "batch_size": 16, "save_every": 3, "workers": min(2, sizes.workers)}
    try:
        for method in METHODS:
            try:
                base = work / f"resume-{method}"

                # DINO without local crops: their position-embedding interpolation has no deterministic CUDA
                # backward (bicubic upsampling), whose run-to-run noise bf16 can amplify past any fixed bound.
                own = {"n_local": 0} if method == "dino" and device.type == "cuda" else {}

                def cfg(name: str, **changes: Any) -> TrainConfig:
                    settings = {**common, **own, **changes}  # noqa: B023
                    return config(method, sizes, data, base / name, resume_check=True, **settings)  # noqa: B023

                # 2 epochs of a 96-image subset: 12 steps of 16.
                full = train(cfg("full"))
                train(cfg("interrupted", max_steps=6))
                resumed = train(cfg("interrupted"), resume=True)
                loss_diff = max(abs(a - b) for a, b in zip(full.losses, read_losses(base / "interrupted"), strict=True))
                weight_diff = state_difference(final_state(base / "full"), final_state(base / "interrupted"))
                repeat_diff = 0.0
                if loss_diff or weight_diff:
                    train(cfg("repeat"))
                    repeat_diff = state_difference(final_state(base / "full"), final_state(base / "repeat"))
                exact = loss_diff == 0 and weight_diff == 0
                within = not exact and repeat_diff > 0 and weight_diff <= 10 * repeat_diff
                verdict = "bit-exact" if exact else ("within run-to-run noise" if within else "DIFFERS")
                report.check(
                    (exact or within) and resumed.steps == 12,
                    f"resume/{method}: {verdict}, loss diff {loss_diff:.3g}, weights {weight_diff:.3g}",
                )
                rows.append(
                    f"| {method} | {sizes.resume_arch[method]} | 6 + 6 | {loss_diff:.3g} | {weight_diff:.3g} | "
                    f"{repeat_diff:.3g} | {verdict} |"
                )
            except Exception as error:  # noqa: BLE001 - recorded as a failed check, the other checks still run
                report.failures.append(f"resume/{method}: {type(error).__name__}: {error}")
                traceback.print_exc()
                rows.append(f"| {method} | {sizes.resume_arch[method]} | ERROR {type(error).__name__} |")
    finally:
        if device.type == "cuda":
            torch.backends.cudnn.deterministic = False
            torch.use_deterministic_algorithms(False)
    return rows


def read_losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run)]


# ---------------------------------------------------------------- 3. DDP
# SwAV last: under gloo on a GPU its SyncBatchNorm is the likeliest to be refused, and a rank that raises ends the job.
DDP_ORDER = ("mocov2", "dino", "swav")


def ddp_worker(sizes_name: str, data: str, out: str) -> None:
    """One torchrun rank: a few steps of each method; writes its losses and a weight checksum after each method."""
    sizes = SMOKE if sizes_name == "smoke" else FULL
    rank = int(os.environ.get("RANK", "0"))
    results = {}
    for method in DDP_ORDER:
        run = Path(out) / method
        cfg = config(method, sizes, Path(data), run, resume_check=True, epochs=1, batch_size=8, max_steps=4, workers=1)
        result = train(cfg)
        weights = final_state(run)
        checksum = float(sum(v.double().sum() for v in weights.values() if v.is_floating_point()))
        results[method] = {"losses": result.losses, "steps": result.steps, "checksum": checksum}
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(results))


def ddp_section(sizes: Sizes, smoke: bool, data: Path, work: Path, device: torch.device, report: Report) -> list[str]:
    rows = [
        "| backend | method | ranks | steps | losses (rank 0) | ranks agree | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    backends = ["nccl", "gloo"] if device.type == "cuda" else ["gloo"]
    notes = []
    for backend in backends:
        out = work / f"ddp-{backend}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        env = {**os.environ, DIST_BACKEND_ENV: backend, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        command += [__file__, "--ddp-worker", "smoke" if smoke else "full", str(data), str(out)]
        started = time.perf_counter()
        try:
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
            code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as expired:
            code, output = "timeout", str(expired.stdout or "") + str(expired.stderr or "")
        elapsed = time.perf_counter() - started
        ranks = [json.loads(p.read_text()) if p.exists() else {} for p in (out / "rank0.json", out / "rank1.json")]
        done = [m for m in DDP_ORDER if m in ranks[0] and m in ranks[1]]
        reason = ""
        if code != 0:
            lines = output.strip().splitlines()
            # The workers' exception lines (e.g. NCCL's "Duplicate GPU detected"), not torchrun's summary.
            pattern = r"\w(Error|Exception): |NCCL|Duplicate GPU|invalid usage"
            errors = [line.strip() for line in lines if re.search(pattern, line)]
            worker_errors = [line for line in errors if line.startswith("[rank")]  # the cause, before torchrun's
            reason = (worker_errors or errors or lines[-1:] or [""])[-1][:300]
            print(f"--- ddp {backend}: exception lines ---\n" + "\n".join(dict.fromkeys(errors[-6:])), file=sys.stderr)
        notes.append(f"{backend}: exit {code} after {elapsed:.0f} s" + (f": {reason}" if reason else ""))
        if not done and backend != backends[-1]:
            continue  # e.g. nccl refusing two ranks on one GPU: try the next backend
        for method in DDP_ORDER:
            if method not in done:
                report.failures.append(f"ddp/{backend}/{method}: did not finish ({reason})")
                rows.append(f"| {backend} | {method} | 2 | - | - | - | FAIL |")
                continue
            a, b = ranks[0][method], ranks[1][method]
            agree = a["losses"] == b["losses"] and a["checksum"] == b["checksum"] and a["steps"] == b["steps"]
            finite = all(math.isfinite(x) for x in a["losses"])
            saved = (out / method / "rank-1.pt").exists() and (out / method / "checkpoint.pt").exists()
            verdict = report.check(
                agree and finite and saved and a["steps"] == 4,
                f"ddp/{backend}/{method}: agree={agree} finite={finite} saved={saved}",
            )
            losses = ", ".join(f"{x:.4f}" for x in a["losses"])
            rows.append(f"| {backend} | {method} | 2 | {a['steps']} | {losses} | {agree} | {verdict} |")
        break
    return rows + [""] + [f"- {note}" for note in notes]


# ---------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (a rehearsal of the GPU run)")
    parser.add_argument("--sections", default="speed,resume,ddp", help="comma-separated subset to run")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of the speed section")
    parser.add_argument("--steps", type=int, help="trainer steps per method in the speed section (default 40)")
    parser.add_argument("--ddp-worker", nargs=3, metavar=("SIZES", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(*args.ddp_worker)
        return 0

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("no CUDA device: run with --smoke for the CPU rehearsal", file=sys.stderr)
        return 2
    sizes = SMOKE if args.smoke else FULL
    if args.steps:
        sizes = dataclasses.replace(sizes, steps=args.steps)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not set(methods) <= set(METHODS):
        parser.error(f"--methods: choose from {', '.join(METHODS)}")
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if not cuda:
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu"
    started = time.perf_counter()
    print(
        f"# passkit ssl GPU check ({'smoke' if args.smoke else 'full'}): torch {torch.__version__}, "
        f"{'CUDA ' + str(torch.version.cuda) if cuda else 'CPU'}, {name}, "
        f"precision {'bf16' if cuda else 'fp32'}, {sizes.workers} loader workers, {os.cpu_count()} CPUs",
        flush=True,
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="passkit-gpu-check-"))
    report = Report()
    sections = {s.strip() for s in args.sections.split(",")}
    try:
        # Whole epochs for every loader worker (the stream cuts epochs in equal slices): no epoch restart mid-run.
        n_images = sizes.batch * sizes.workers * math.ceil((sizes.steps + 1) / sizes.workers)
        data = generated_shards(work / "data", n_images, sizes.image_side)
        small = generated_shards(work / "data-small", 96, sizes.image_side, seed=1)
        print(f"generated {n_images} + 96 JPEGs of {sizes.image_side} px in {time.perf_counter() - started:.0f} s")
        for section in ("speed", "resume", "ddp"):
            if section not in sections:
                continue
            t0 = time.perf_counter()
            if section == "speed":
                rows = speed_section(sizes, data, work, device, report, methods)
            elif section == "resume":
                rows = resume_section(sizes, small, work, device, report)
            else:
                rows = ddp_section(sizes, args.smoke, small, work, device, report)
            print(f"\n## {section} ({time.perf_counter() - t0:.0f} s)\n" + "\n".join(rows), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started
    if report.failures:
        print(f"\nFAILED ({len(report.failures)}) after {total:.0f} s:")
        for failure in report.failures:
            print(f"- {failure}")
        return 1
    print(f"\nALL CHECKS PASSED in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
