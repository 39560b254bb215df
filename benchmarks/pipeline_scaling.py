"""Does ``passkit build`` scale flat? Throughput per stage and peak memory at two pool sizes, in one run.

A synthetic pool of N records (a parquet url table: CC-BY, attribution complete, ~10 records per creator) points
at a loopback aiohttp server (its own process) that generates a distinct small JPEG per index (a random 8x6 colour
grid, bilinear-upsampled to 96x72, plus noise: distinct bytes, pixels and pHashes). ``passkit build`` runs as a
subprocess with the local runner (2 worker processes, shards of 1,000), humans off (detector cost is measured by
benchmarks/human_filter_speed.py; here the question is the pipeline's own scaling), validate + privacy + dedup + cap
on. The process tree's resident memory is sampled every 0.1 s (sum over the build and its workers), and the build's
own process's peak (VmHWM) is read from /proc while it runs.

Prints, per size: records/s of each stage (run.json timings), end-to-end records/s, peak RSS (tree, driver) and the
driver's sampled RSS peak per phase (select; download + filter + global pass; release); then the ratios large /
small. Targets: RSS ratio <= 1.2, throughput within 10 % (ratio >= 0.9).

    python benchmarks/pipeline_scaling.py [--sizes 10000 100000] [--workers 2] [--no-release] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loopback import start_server

SHARD_SIZE = 1000
PER_CREATOR = 10


def image_bytes(index: int) -> bytes:
    import io

    from PIL import Image

    rng = np.random.default_rng(index)
    grid = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    pixels = np.asarray(grid.resize((96, 72), Image.Resampling.BILINEAR), np.int16)
    pixels = np.clip(pixels + rng.integers(-6, 7, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def write_pool(path: Path, count: int, base: str) -> None:
    ids = np.arange(count)
    pq.write_table(
        pa.table(
            {
                "id": [f"b{i:07d}" for i in ids],
                "url": [f"{base}/img/{i}.jpg" for i in ids],
                "page_url": [f"https://www.flickr.com/photos/bench/{i}" for i in ids],
                "license": ["CC-BY-2.0"] * count,
                "creator": [f"Creator {i // PER_CREATOR}" for i in ids],
                "title": [f"Image {i}" for i in ids],
            }
        ),
        path,
    )


def write_config(path: Path, pool: Path, out: Path, workers: int, release: bool = True) -> None:
    path.write_text(
        f"""out = "{out}"
[sources]
paths = ["{pool}"]
[download]
shard_size = {SHARD_SIZE}
concurrency = 64
per_host = 64
retries = 1
[filter.humans]
enabled = false
[runner]
workers = {workers}
[release]
enabled = {"true" if release else "false"}
"""
    )


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants."""
    children, total, stack = _children(), 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def driver_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the build process, in bytes."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(maxsplit=1)[0] if line else ""
            if name in values:
                values[name] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


PHASES = ("select", "download+filter", "release")


def phase_of(run: Path) -> str:
    """Where the build is, from the files it has published: candidates.parquet ends select, release/ starts the
    release step (download, filter and the filter's global pass lie between)."""
    if (run / "release").exists():
        return "release"
    return "download+filter" if (run / "candidates.parquet").exists() else "select"


def run_size(count: int, folder: Path, base: str, workers: int, release: bool = True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    pool, config, out = folder / "pool.parquet", folder / "build.toml", folder / "run"
    write_pool(pool, count, base)
    write_config(config, pool, out, workers, release)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "passkit.cli", "build", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    peak_tree = peak_driver = 0
    phase_peaks = dict.fromkeys(PHASES, 0)  # the build process's sampled RSS per phase
    while process.poll() is None:
        peak_tree = max(peak_tree, tree_rss(process.pid))
        rss, hwm = driver_memory(process.pid)
        peak_driver = max(peak_driver, hwm)
        phase = phase_of(out)
        phase_peaks[phase] = max(phase_peaks[phase], rss)
        time.sleep(0.1)
    seconds = time.monotonic() - started
    output = process.stdout.read().decode() if process.stdout else ""
    if process.returncode != 0:
        raise SystemExit(f"build of {count} records failed ({process.returncode}):\n{output[-3000:]}")
    report = json.loads((out / "run.json").read_text())
    return {
        "records": count,
        "kept": report["kept"],
        "outcomes": report["outcomes"],
        "seconds": seconds,
        "stages": {t["stage"]: (t["seconds"], t["items"]) for t in report["timings"]},
        "peak_tree": peak_tree,
        "peak_driver": peak_driver,
        "phase_peaks": phase_peaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--no-release",
        action="store_true",
        help="stop after the filter (measure the pipeline without the release step)",
    )
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temporary one)")
    args = parser.parse_args()
    server, base = start_server(image_bytes)
    root = args.keep or Path(tempfile.mkdtemp(prefix="passkit-scaling-"))
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; server {base}")
    results = []
    try:
        for count in args.sizes:
            result = run_size(count, root / f"n{count}", base, args.workers, not args.no_release)
            results.append(result)
            stages = "  ".join(
                f"{stage} {items / secs:,.0f}/s" if secs and items else f"{stage} -"
                for stage, (secs, items) in result["stages"].items()
            )
            print(
                f"{count:>9,} records: {result['kept']:,} kept, {result['seconds']:.1f} s, "
                f"{count / result['seconds']:,.0f} records/s end to end | {stages} | peak RSS tree "
                f"{result['peak_tree'] / 2**20:,.0f} MiB, driver {result['peak_driver'] / 2**20:,.0f} MiB"
            )
            phases = ", ".join(f"{name} {peak / 2**20:,.0f} MiB" for name, peak in result["phase_peaks"].items())
            print(f"{'':>9}  driver RSS sampled per phase: {phases}", flush=True)
    finally:
        server.terminate()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    small, large = results
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"ratios {large['records']:,} / {small['records']:,} records (targets: RSS <= 1.20, throughput >= 0.90):")
    print(f"  peak RSS, process tree   {large['peak_tree'] / small['peak_tree']:.3f}")
    print(f"  peak RSS, build process  {large['peak_driver'] / small['peak_driver']:.3f}")
    for phase in PHASES:
        if small["phase_peaks"][phase] and large["phase_peaks"][phase]:
            print(f"  driver RSS {phase:<15} {large['phase_peaks'][phase] / small['phase_peaks'][phase]:.3f}")
    for stage, (secs, items) in small["stages"].items():
        big_secs, big_items = large["stages"][stage]
        if secs and items and big_secs and big_items:
            print(f"  throughput {stage:<9} {(big_items / big_secs) / (items / secs):.3f}")
    print(
        f"  throughput end to end  {(large['records'] / large['seconds']) / (small['records'] / small['seconds']):.3f}"
    )


if __name__ == "__main__":
    main()
