"""`passkit eval` on a GPU agrees with the CPU: same kNN numbers, same probe accuracy; feature throughput ratio.

Scikit-learn's digits as an image folder (32 px), a randomly initialised backbone (seed 0) of each architecture
given; per device: features (images/s), DINO kNN for k in {10, 20}, the L-BFGS probe (scikit-learn on CPU, torch on
the GPU) with a short C sweep. Prints the CPU and GPU figures of the same run side by side.

    python benchmarks/eval_gpu_agreement.py [--archs vit_micro,resnet_tiny] [--devices cpu,cuda]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="vit_micro,resnet_tiny")
    parser.add_argument("--devices", default="cpu,cuda", help="the reference device first (cpu,cpu checks the script)")
    args = parser.parse_args()
    from passkit.evaluate import FeatureOptions, LbfgsProbeConfig, knn_sweep, linear_eval, write_digits_imagefolder

    reference, other = args.devices.split(",")
    if "cuda" in (reference, other) and not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    with tempfile.TemporaryDirectory() as tmp:
        train, val = write_digits_imagefolder(f"{tmp}/digits", size=32)
        for arch in args.archs.split(","):
            size = 16 if arch == "vit_micro" else 32
            rows = {}
            for device in (reference, other):
                options = FeatureOptions(image_size=size, device=device, cache=False, batch_size=256)
                start = time.perf_counter()
                knn = knn_sweep(None, train, val, ks=(10, 20), random_init=True, arch=arch, options=options)
                seconds = time.perf_counter() - start
                probe = linear_eval(
                    None, train, val, random_init=True, arch=arch, options=options,
                    lbfgs=LbfgsProbeConfig(coarse_steps=7, refine_steps=2),
                )  # fmt: skip
                rows.setdefault(device, (knn, probe, seconds))
                print(
                    f"{arch} {device}: kNN k=10 {knn[0]['value']:.4f} k=20 {knn[1]['value']:.4f} "
                    f"({1797 / seconds:.0f} images/s incl. kNN); L-BFGS {probe['protocol']['backend']} "
                    f"top-1 {probe['value']:.4f} C={probe['protocol']['selected_C']:.3g}"
                )
            cpu, gpu = rows[reference], rows[other]
            knn_diff = [round(b["value"] - a["value"], 4) for a, b in zip(cpu[0], gpu[0], strict=True)]
            print(
                f"{arch}: kNN top-1 gpu - cpu {knn_diff}"
                f", probe top-1 gpu - cpu {gpu[1]['value'] - cpu[1]['value']:+.4f}, "
                f"features+kNN time gpu / cpu {gpu[2] / cpu[2]:.3f}x"
            )


if __name__ == "__main__":
    main()
