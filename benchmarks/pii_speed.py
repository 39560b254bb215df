"""Speed of the PII (and NSFW) stage next to the human filter's, on the same photos, interleaved in one run.

Over N real JPEGs (people-dev cycled), chunk by chunk so that every stage sees the same background load:
  humans  humans_stage (the filter's preset, default `default`) on every image;
  pii     pii_stage with the default PiiConfig (plate rule, recognition of plate-shaped lines) on every image,
          timed per image, so its cost on the images the human filter keeps (the only ones it sees in the filter
          chain) is known too;
  nsfw    nsfw_stage on every image, when its model is installed (pip install passkit[nsfw]).
Prints images/s of each stage and the filter's throughput with PII added against humans alone:
  worst case   PII on every image:              ratio = t_humans / (t_humans + t_pii(all))
  filter chain PII on the humans-kept images:   ratio = t_humans / (t_humans + t_pii(kept))
Target: ratio >= 0.5 (the PII stage must not halve the filter's throughput with default settings).

    python benchmarks/pii_speed.py [--images 300] [--preset default] [--chunk 25] [--no-nsfw]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from passkit.core.sample import Sample
from passkit.detect.registry import ModelError, model_path
from passkit.stages.humans import HumansConfig, humans_stage
from passkit.stages.nsfw import NsfwConfig, nsfw_stage
from passkit.stages.pii import PiiConfig, pii_stage

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("PASSKIT_SHARED", REPO.parent / "shared")) / "data" / "people-dev"
os.environ.setdefault("PASSKIT_MODELS", str(DEV.parents[1] / "models"))


def per_image(stage, cfg, samples: list[Sample]) -> list[float]:
    times = []
    for sample in samples:
        began = time.perf_counter()
        stage([sample], cfg)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--preset", default="default", help="humans preset")
    parser.add_argument("--chunk", type=int, default=25, help="images per alternation")
    parser.add_argument("--no-nsfw", action="store_true")
    args = parser.parse_args()
    if not (DEV / "images").is_dir():
        sys.exit(f"people-dev not found at {DEV} (set PASSKIT_SHARED)")
    files = sorted((DEV / "images").glob("*.jpg"))
    samples = [Sample(f"bench-{i:06d}", {"jpg": files[i % len(files)].read_bytes()}) for i in range(args.images)]
    humans_cfg, pii_cfg, nsfw_cfg = HumansConfig(preset=args.preset, device="cpu"), PiiConfig(device="cpu"), None
    if not args.no_nsfw:
        try:
            model_path(NsfwConfig().model, download=False)
            nsfw_cfg = NsfwConfig(device="cpu")
        except ModelError as error:
            print(f"nsfw skipped: {error}")
    warm = samples[:1]  # load every model before timing (once per worker process in a pipeline)
    humans_stage(warm, humans_cfg)
    pii_stage(warm, pii_cfg)
    if nsfw_cfg is not None:
        nsfw_stage(warm, nsfw_cfg)
    t_humans = t_pii_all = t_pii_kept = t_nsfw = 0.0
    kept = 0
    for start in range(0, len(samples), args.chunk):
        part = samples[start : start + args.chunk]
        began = time.perf_counter()
        survivors = {s.key for s in humans_stage(part, humans_cfg).kept}
        t_humans += time.perf_counter() - began
        for sample, seconds in zip(part, per_image(pii_stage, pii_cfg, part), strict=True):
            t_pii_all += seconds
            if sample.key in survivors:
                t_pii_kept += seconds
        kept += len(survivors)
        if nsfw_cfg is not None:
            t_nsfw += sum(per_image(nsfw_stage, nsfw_cfg, part))
    n = len(samples)
    mean_kib = sum(len(s.parts["jpg"]) for s in samples) / n / 1024
    print(f"{n} JPEGs (people-dev cycled, {len(files)} distinct, mean {mean_kib:.0f} KiB), one onnxruntime thread")
    print(f"{'stage':28s} {'img/s':>8s}")
    print(f"{'humans (' + args.preset + ')':28s} {n / t_humans:8.2f}")
    print(f"{'pii (default: plates)':28s} {n / t_pii_all:8.2f}")
    if nsfw_cfg is not None:
        print(f"{'nsfw (open_nsfw)':28s} {n / t_nsfw:8.2f}")
    print(f"humans kept {kept}/{n} images (the PII stage only sees those in the filter chain)")
    worst = t_humans / (t_humans + t_pii_all)
    chain = t_humans / (t_humans + t_pii_kept)
    print(f"humans+pii vs humans alone, PII on every image:   {worst:.3f}x  (target >= 0.5)")
    print(f"humans+pii vs humans alone, as chained in filter: {chain:.3f}x  (target >= 0.5)")
    if nsfw_cfg is not None:
        with_all = t_humans / (t_humans + t_pii_all + t_nsfw)
        print(f"humans+pii+nsfw vs humans alone, every image:     {with_all:.3f}x")


if __name__ == "__main__":
    main()
