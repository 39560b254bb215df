"""Pretraining step time of passkit vs lightly (MoCo-v2, SwAV, DINO), and the shard data path vs the step.

Same network on both sides: passkit's ``resnet_tiny`` (torchvision ResNet-18 cut after stage 3, 2.8 M parameters,
256-d), 64 px global crops (32 px local crops: 2+6 for SwAV, 2+8 for DINO), batch 32, one CPU thread, the same
head sizes, queue (4,096, as lightly's MoCo example) and optimiser type per method. passkit's side is its trainer's
step: the trainer's memory format (NHWC for ResNets; the input is converted inside the timed step, as the trainer
does) and ``build_optimizer``. lightly's side is assembled as its examples do (its heads, losses and momentum
helpers; SwAV and DINO forward crop by crop as in those examples). A step is forward + backward + optimiser step +
momentum update on fixed tensors, so data loading is not in it.

Two modes, each ``--repeats`` times (even by default, so each order comes first equally often):
- per process: each side in its own interpreter (lightly in its own venv under /tmp, created here with plain pip)
  as a step server; the two servers step in turn, one step each, order flipped every round, both pinned to the
  same core; each repeat starts fresh servers in alternating order (the first-started process measured 6-13 %
  slower whichever code it ran);
- same process: lightly's interpreter with passkit from src, the two steps alternating; each repeat is a fresh
  process, the two models built in alternating order.
Each round's two steps ran back to back under the same load, so the verdict is the median of the per-round
passkit/lightly ratios; the table adds the per-side median s/step, the IQR and min-max of those ratios and each
repeat's median ratio, and the load average is printed before and after.

The data path: passkit's shard stream (read, decode with draft mode, the recipe's augmentation, collate) with
one DataLoader worker, in images/s, against the images/s one training process consumes (batch / step time).

    python benchmarks/ssl_step_vs_lightly.py [--steps 8] [--repeats 4] [--methods ...] [--skip-lightly]
Targets: passkit step time <= 1.0x lightly's for each method; data path >= 1.5x the step's consumption.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIGHTLY_VENV = Path(os.environ.get("PASSKIT_LIGHTLY_VENV", "/tmp/passkit-lightly-venv"))
METHODS = ("mocov2", "swav", "dino")
BATCH, GLOBAL, LOCAL = 32, 64, 32
N_LOCAL = {"mocov2": 0, "swav": 6, "dino": 8}
QUEUE, PROTOTYPES, DINO_OUT = 4096, 3000, 4096


def _views(method: str, seed: int = 0) -> list:
    import torch

    generator = torch.Generator().manual_seed(seed)
    sizes = [GLOBAL, GLOBAL] + [LOCAL] * N_LOCAL[method]
    return [torch.randn(BATCH, 3, s, s, generator=generator) for s in sizes]


def passkit_step(method: str):
    """passkit's step as its trainer runs it: the trainer's memory format (its input converted every step, as the
    trainer's ``.to(device, memory_format=...)`` does) and optimiser."""
    import torch

    from passkit.ssl.backbones import build_backbone, memory_format_for
    from passkit.ssl.methods import DINO, MoCoV2, SwAV
    from passkit.ssl.optim import build_optimizer, clip_per_parameter

    def backbone():
        return build_backbone("resnet_tiny", GLOBAL)

    torch.manual_seed(0)
    if method == "mocov2":
        model = MoCoV2(backbone, dim=128, queue_size=QUEUE, momentum=0.999, temperature=0.2)
        optimizer = build_optimizer("sgd", model.param_groups(1e-4), lr=0.03, momentum=0.9)
    elif method == "swav":
        model = SwAV(backbone, n_prototypes=PROTOTYPES, freeze_prototypes_iters=0)
        optimizer = build_optimizer("lars", model.param_groups(1e-6), lr=0.6)
    else:
        model = DINO(backbone, out_dim=DINO_OUT, freeze_last_layer_epochs=0)
        optimizer = build_optimizer("adamw", model.param_groups(0.04), lr=5e-4)
    memory_format = memory_format_for("resnet_tiny")
    model = model.to(memory_format=memory_format)
    model.schedules = model.method_schedules(1, 1000)
    model.iters_per_epoch = 1000
    batch = _views(method)

    def step(i: int) -> None:
        views = [v.to(memory_format=memory_format) for v in batch]
        loss, _ = model(views, i)
        loss.backward()
        if method == "dino":
            clip_per_parameter(model.parameters(), 3.0)
        model.cancel_gradients(i)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.after_step(i)

    return step


def lightly_step(method: str):
    import copy

    import torch
    from lightly.loss import DINOLoss, NTXentLoss, SwaVLoss
    from lightly.models.modules import (
        DINOProjectionHead,
        MoCoProjectionHead,
        SwaVProjectionHead,
        SwaVPrototypes,
    )
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.utils.lars import LARS
    from torch import nn

    from passkit.ssl.backbones import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone("resnet_tiny", GLOBAL)
    dim = backbone.dim
    views = _views(method)

    if method == "mocov2":

        class MoCo(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone
                self.projection_head = MoCoProjectionHead(dim, dim, 128)
                self.backbone_momentum = copy.deepcopy(self.backbone)
                self.projection_head_momentum = copy.deepcopy(self.projection_head)
                deactivate_requires_grad(self.backbone_momentum)
                deactivate_requires_grad(self.projection_head_momentum)

            def forward(self, x):
                return self.projection_head(self.backbone(x))

            def forward_momentum(self, x):
                return self.projection_head_momentum(self.backbone_momentum(x)).detach()

        model = MoCo()
        criterion = NTXentLoss(temperature=0.2, memory_bank_size=(QUEUE, 128))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)

        def step(i: int) -> None:
            update_momentum(model.backbone, model.backbone_momentum, m=0.999)
            update_momentum(model.projection_head, model.projection_head_momentum, m=0.999)
            loss = criterion(model(views[0]), model.forward_momentum(views[1]))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        return step

    if method == "swav":

        class SwaV(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.backbone = backbone
                self.projection_head = SwaVProjectionHead(dim, 2048, 128)
                self.prototypes = SwaVPrototypes(128, n_prototypes=PROTOTYPES)

            def forward(self, x):
                x = self.projection_head(self.backbone(x))
                x = nn.functional.normalize(x, dim=1, p=2)
                return self.prototypes(x)

        model = SwaV()
        criterion = SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05)
        optimizer = LARS(model.parameters(), lr=0.6, weight_decay=1e-6)

        def step(i: int) -> None:
            model.prototypes.normalize()
            features = [model(view) for view in views]
            loss = criterion(features[:2], features[2:])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        return step

    class Dino(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student_backbone = backbone
            self.student_head = DINOProjectionHead(dim, 2048, 256, DINO_OUT, freeze_last_layer=0)
            self.teacher_backbone = copy.deepcopy(backbone)
            self.teacher_head = DINOProjectionHead(dim, 2048, 256, DINO_OUT)
            deactivate_requires_grad(self.teacher_backbone)
            deactivate_requires_grad(self.teacher_head)

        def forward(self, x):
            return self.student_head(self.student_backbone(x))

        def forward_teacher(self, x):
            return self.teacher_head(self.teacher_backbone(x))

    model = Dino()
    criterion = DINOLoss(output_dim=DINO_OUT, warmup_teacher_temp_epochs=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.04)

    def step(i: int) -> None:
        update_momentum(model.student_backbone, model.teacher_backbone, m=0.996)
        update_momentum(model.student_head, model.teacher_head, m=0.996)
        teacher_out = [model.forward_teacher(view) for view in views[:2]]
        student_out = [model.forward(view) for view in views]
        loss = criterion(teacher_out, student_out, epoch=0)
        loss.backward()
        model.student_head.cancel_last_layer_gradients(current_epoch=0)
        optimizer.step()
        optimizer.zero_grad()

    return step


def serve(side: str, method: str) -> None:
    """A step server: builds one side's model, then times one step per ``step`` line read from stdin."""
    import torch

    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity") and os.environ.get("PASSKIT_BENCH_CPU"):
        os.sched_setaffinity(0, {int(os.environ["PASSKIT_BENCH_CPU"])})
    step = passkit_step(method) if side == "passkit" else lightly_step(method)
    print("ready", flush=True)
    for i, _line in enumerate(sys.stdin):
        start = time.perf_counter()
        step(i)
        print(time.perf_counter() - start, flush=True)


def serve_both(method: str, steps: int, lightly_first: bool) -> None:
    """Both sides' models in this one process (lightly's venv, passkit from src), stepping in turn; prints JSON."""
    import torch

    torch.set_num_threads(1)
    sides = ("lightly", "passkit") if lightly_first else ("passkit", "lightly")
    steps_of = {side: passkit_step(method) if side == "passkit" else lightly_step(method) for side in sides}
    times: dict[str, list[float]] = {"passkit": [], "lightly": []}
    for i in range(2 + steps):
        for side in sides if i % 2 == 0 else reversed(sides):
            start = time.perf_counter()
            steps_of[side](i)
            if i >= 2:
                times[side].append(time.perf_counter() - start)
    print(json.dumps(times))


def same_process_times(python: str, method: str, steps: int, lightly_first: bool) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = [python, __file__, "--serve", "both", "--method", method, "--steps", str(steps)]
    if lightly_first:
        args.append("--lightly-first")
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"same-process {method} run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_lightly() -> tuple[Path | None, str]:
    python = LIGHTLY_VENV / "bin" / "python"
    check = [str(python), "-c", "import lightly, torch; print(lightly.__version__, torch.__version__)"]
    if python.exists():
        done = subprocess.run(check, capture_output=True, text=True)
        if done.returncode == 0:
            return python, done.stdout.strip()
    print(f"installing lightly into {LIGHTLY_VENV} (plain pip) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LIGHTLY_VENV)], check=True)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "lightly"], capture_output=True, text=True)
    if install.returncode != 0:
        return None, "pip install lightly failed: " + (install.stderr or install.stdout).strip()[-600:]
    done = subprocess.run(check, capture_output=True, text=True)
    if done.returncode != 0:
        return None, "lightly installed but does not import: " + done.stderr.strip()[-600:]
    return python, done.stdout.strip()


class StepServer:
    """One side's model in its own process (its own venv), stepping on demand so both sides interleave."""

    def __init__(self, python: str, side: str, method: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if hasattr(os, "sched_getaffinity"):  # both sides on the same core: they step in turn, never at once
            env["PASSKIT_BENCH_CPU"] = str(max(os.sched_getaffinity(0)))
        args = [python, __file__, "--serve", side, "--method", method]
        self.name = f"{side} {method}"
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        if self._read() != "ready":
            raise RuntimeError(f"{self.name} server did not start")

    def _read(self) -> str:
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{self.name} server failed:\n{self.proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        return line

    def step(self) -> float:
        self.proc.stdin.write("step\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return float(self._read())

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=60)


def interleaved_step_times(servers: list[StepServer], steps: int, warmup: int = 2) -> list[list[float]]:
    """Per-step seconds of each server, stepping them in turn (order flipped every round) under the same load."""
    for _ in range(warmup):
        for server in servers:
            server.step()
    times: list[list[float]] = [[] for _ in servers]
    for round_ in range(steps):
        order = range(len(servers)) if round_ % 2 == 0 else reversed(range(len(servers)))
        for index in order:
            times[index].append(servers[index].step())
    return times


@dataclass
class Comparison:
    """passkit vs lightly step times of one method, kept per repeat and paired round by round."""

    ours: list[list[float]] = field(default_factory=list)
    theirs: list[list[float]] = field(default_factory=list)

    def add(self, ours: list[float], theirs: list[float]) -> None:
        self.ours.append(ours)
        self.theirs.append(theirs)

    def paired_ratios(self) -> list[float]:
        """passkit / lightly of each round: the two steps ran back to back, so they saw the same load."""
        return [
            a / b
            for ours, theirs in zip(self.ours, self.theirs, strict=True)
            for a, b in zip(ours, theirs, strict=True)
        ]

    def row(self, method: str) -> str:
        ours = statistics.median(t for repeat in self.ours for t in repeat)
        theirs = statistics.median(t for repeat in self.theirs for t in repeat)
        ratios = self.paired_ratios()
        ratio = statistics.median(ratios)
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        per_repeat = " ".join(
            f"{statistics.median(a / b for a, b in zip(o, t, strict=True)):.2f}"
            for o, t in zip(self.ours, self.theirs, strict=True)
        )
        verdict = "ok" if ratio <= 1.0 else "MISSED"
        return (
            f"{method:8} {ours:10.3f} {theirs:10.3f} {ratio:6.2f}x {q1:5.2f}-{q3:4.2f}  "
            f"{min(ratios):4.2f}-{max(ratios):4.2f}  {per_repeat:24} {verdict}"
        )


TABLE_HEAD = (
    f"{'method':8} {'passkit':>10} {'lightly':>10} {'ratio':>7} {'IQR':>10}  {'min-max':>9}  "
    f"{'per-repeat ratios':24} target <= 1.0x"
)


def data_path_rounds(method: str, shard_dir: Path, rounds: int, batches: int) -> list[tuple[float, float]]:
    """(loader images/s, step images/s) per round, the two measured one after the other under the same load.

    Each round starts a fresh 1-worker loader, takes its first batch untimed (worker start-up), times the next
    ``batches`` batches, shuts the worker down, then times ``batches`` of passkit's steps: neither competes with
    the other, and load shifts between rounds move both sides of each ratio alike.
    """
    import torch

    from passkit.ssl.augment import build_augment
    from passkit.ssl.data import ViewStream, discover_units, make_loader

    torch.set_num_threads(1)
    augment = build_augment(method, GLOBAL, LOCAL, n_local=N_LOCAL[method])
    stream = ViewStream(
        discover_units(shard_dir), augment, BATCH, workers=1, decode_min_side=augment.cfg.decode_min_side()
    )
    if stream.batches_per_epoch < batches + 1:
        raise ValueError(f"{stream.batches_per_epoch} batches per epoch, need {batches + 1}")
    step = passkit_step(method)
    for i in range(2):  # warm-up
        step(i)
    measured = []
    for round_ in range(rounds):
        stream.set_position(round_)
        iterator = iter(make_loader(stream, workers=1))
        next(iterator)
        start = time.perf_counter()
        count = sum(len(next(iterator)[0]) for _ in range(batches))
        produced = count / (time.perf_counter() - start)
        del iterator  # the worker exits before the steps are timed
        start = time.perf_counter()
        for i in range(batches):
            step(2 + round_ * batches + i)
        consumed = BATCH * batches / (time.perf_counter() - start)
        measured.append((produced, consumed))
    return measured


def make_shards(root: Path, count: int) -> str:
    """Shards of real photos (../shared/data/people-dev when present) or synthetic 640x480 JPEGs."""
    import io

    import numpy as np
    from PIL import Image

    from passkit.core.sample import Sample
    from passkit.core.tar import write_shard

    photos = sorted((REPO.parent / "shared" / "data" / "people-dev" / "images").rglob("*.jpg"))[:count]
    blobs = [p.read_bytes() for p in photos]
    source = f"{len(blobs)} people-dev photos"
    rng = np.random.default_rng(0)
    while len(blobs) < count:
        base = np.linspace(0, 255, 640 * 480 * 3).reshape(480, 640, 3)
        noise = rng.integers(0, 60, (480, 640, 3))
        buffer = io.BytesIO()
        Image.fromarray(((base + noise) % 256).astype("uint8")).save(buffer, format="JPEG", quality=90)
        blobs.append(buffer.getvalue())
        source = f"{len(photos)} photos + synthetic 640x480 JPEGs"
    for shard in range(0, count, 64):
        samples = [Sample.build(f"img-{i:05d}", jpg=blobs[i]) for i in range(shard, min(count, shard + 64))]
        write_shard(root / f"{shard // 64:05d}.tar", samples)
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side and repeat")
    parser.add_argument("--repeats", type=int, default=4, help="fresh processes per mode; even: each order as often")
    parser.add_argument("--skip-lightly", action="store_true")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--serve", choices=["passkit", "lightly", "both"])
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--lightly-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "both":
        serve_both(args.method, args.steps, args.lightly_first)
        return
    if args.serve:
        serve(args.serve, args.method)
        return

    lightly_python, note = (None, "skipped (--skip-lightly)") if args.skip_lightly else ensure_lightly()
    print(f"lightly: {note}")
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(
        f"network: resnet_tiny (2.8 M params), {GLOBAL} px, batch {BATCH}, 1 thread; {args.repeats} repeats x "
        f"{args.steps} steps per side, the two sides stepping in turn (order flipped every round and repeat)"
    )
    print(
        "columns: median s/step of each side; ratio = median of the per-round passkit/lightly ratios (the verdict);"
        " IQR and min-max of those ratios; each repeat's median ratio"
    )
    step_time: dict[str, float] = {}
    print("\nper process (each side its own interpreter and venv, fresh servers per repeat, start order alternating)")
    print(TABLE_HEAD if lightly_python is not None else f"{'method':8} {'passkit':>10}")
    for method in args.methods:
        comparison = Comparison()
        ours_only: list[float] = []
        for repeat in range(args.repeats):
            # Fresh servers per repeat, started in alternating order: the first-started process measured 6-13 %
            # slower than the second on this machine whichever code it ran, so the order must not favour one side.
            sides = [("passkit", sys.executable)]
            if lightly_python is not None:
                sides.append(("lightly", str(lightly_python)))
            order = list(range(len(sides))) if repeat % 2 == 0 else list(reversed(range(len(sides))))
            servers = {index: StepServer(sides[index][1], sides[index][0], method) for index in order}
            try:
                measured = interleaved_step_times([servers[index] for index in order], args.steps)
            finally:
                for server in servers.values():
                    server.close()
            by_side = {index: measured[position] for position, index in enumerate(order)}
            ours_only.extend(by_side[0])
            if lightly_python is not None:
                comparison.add(by_side[0], by_side[1])
        step_time[method] = statistics.median(ours_only)
        if lightly_python is not None:
            print(comparison.row(method))
        else:
            print(f"{method:8} {step_time[method]:10.3f}")

    if lightly_python is not None:
        # The same comparison inside one process (lightly's interpreter, passkit from src): no per-process effects.
        print(
            "\nsame process (lightly's interpreter, passkit from src; one process per repeat, build order alternating)"
        )
        print(TABLE_HEAD)
        for method in args.methods:
            comparison = Comparison()
            for repeat in range(args.repeats):
                both = same_process_times(str(lightly_python), method, args.steps, lightly_first=repeat % 2 == 1)
                comparison.add(both["passkit"], both["lightly"])
            print(comparison.row(method))
    print("load average after the steps: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    with tempfile.TemporaryDirectory() as tmp:
        source = make_shards(Path(tmp), 384)
        print(
            f"\ndata path: passkit shards ({source}), 1 DataLoader worker, {GLOBAL}/{LOCAL} px crops, vs the images/s"
        )
        print(
            f"passkit's step consumes; {args.repeats} rounds, each timing 6 loader batches then 6 steps; ratio = median"
            " of the per-round ratios"
        )
        print(f"{'method':8} {'loader img/s':>13} {'step img/s':>11} {'ratio':>7} {'min-max':>10}  target >= 1.5x")
        for method in args.methods:
            rounds = data_path_rounds(method, Path(tmp), args.repeats, batches=6)
            ratios = [produced / consumed for produced, consumed in rounds]
            ratio = statistics.median(ratios)
            verdict = "ok" if ratio >= 1.5 else "MISSED"
            print(
                f"{method:8} {statistics.median(r[0] for r in rounds):13.1f} "
                f"{statistics.median(r[1] for r in rounds):11.1f} {ratio:6.2f}x {min(ratios):4.2f}-{max(ratios):4.2f}"
                f"  {verdict}"
            )
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
