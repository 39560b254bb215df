"""Shard I/O throughput: passkit's tar writer/reader against the standard library's tarfile and webdataset.

Writes one shard of N synthetic samples (random JPEG-sized payloads + a JSON attribution), reads it back with
each reader, and prints MB/s and samples/s (best of 3) with ratios against the baselines measured in the same
run, plus the peak Python heap while streaming (tracemalloc) to show constant memory. passkit writes include the
fsync that makes a shard durable before it is renamed into place; the tarfile baseline does not fsync.

    python benchmarks/shard_io.py [--samples 4000] [--kib 120]
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from passkit.core.sample import Sample
from passkit.core.tar import read_shard, write_shard


def make_samples(count: int, kib: int) -> list[Sample]:
    payload = os.urandom(kib * 1024)
    return [
        Sample.build(
            f"bench-{i:07d}",
            jpg=payload[i % 97 :] + payload[: i % 97],
            json={"creator": f"creator {i}", "title": "t", "license": "CC-BY-2.0"},
        )
        for i in range(count)
    ]


def timed(fn: Callable[[], int], repeat: int = 3) -> tuple[float, int]:
    best = float("inf")
    result = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def write_tarfile(path: Path, samples: list[Sample]) -> int:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for sample in samples:
            for ext in sorted(sample.parts):
                info = tarfile.TarInfo(f"{sample.key}.{ext}")
                info.size = len(sample.parts[ext])
                archive.addfile(info, io.BytesIO(sample.parts[ext]))
    return len(samples)


def read_passkit(path: Path) -> int:
    return sum(1 for _ in read_shard(path))


def read_tarfile_stream(path: Path) -> int:
    count = 0
    with tarfile.open(path, "r|") as archive:
        for member in archive:
            handle = archive.extractfile(member)
            if handle is not None:
                handle.read()
                count += member.name.endswith(".jpg")
    return count


def read_webdataset(path: Path) -> int:
    import webdataset

    return sum(1 for _ in webdataset.WebDataset(str(path), shardshuffle=False))


def peak_heap(fn: Callable[[], int]) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--kib", type=int, default=120, help="image payload size per sample")
    args = parser.parse_args()
    samples = make_samples(args.samples, args.kib)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ours = root / "passkit.tar"
        shuffled = samples[1::2] + samples[::2]
        t_ours, _ = timed(lambda: len(write_shard(ours, samples).name) and args.samples)
        t_ours_unsorted, _ = timed(lambda: len(write_shard(root / "u.tar", shuffled).name) and args.samples)
        t_tarfile, _ = timed(lambda: write_tarfile(root / "stdlib.tar", samples))
        size_mb = ours.stat().st_size / 1e6
        print(f"shard: {args.samples} samples, {size_mb:.0f} MB")
        print("write (MB/s)")
        print(f"  passkit ShardWriter, sorted input  {size_mb / t_ours:8.0f}   x{t_tarfile / t_ours:.2f} vs tarfile")
        print(
            f"  passkit ShardWriter, shuffled input {size_mb / t_ours_unsorted:7.0f}   "
            f"x{t_tarfile / t_ours_unsorted:.2f} vs tarfile (one extra copy to sort)"
        )
        print(f"  tarfile (baseline)                 {size_mb / t_tarfile:8.0f}")
        readers = {
            "passkit read_shard": read_passkit,
            "tarfile r| stream (baseline)": read_tarfile_stream,
        }
        try:
            import webdataset  # noqa: F401

            readers["webdataset.WebDataset"] = read_webdataset
        except ImportError:
            print("  (webdataset not installed: skipped)")
        times = {}
        for name, reader in readers.items():
            elapsed, count = timed(lambda reader=reader: reader(ours))
            assert count == args.samples, (name, count)
            times[name] = elapsed
        print("read (MB/s, samples/s, ratio vs tarfile stream)")
        base = times["tarfile r| stream (baseline)"]
        for name, elapsed in times.items():
            print(f"  {name:30s} {size_mb / elapsed:8.0f} {args.samples / elapsed:10.0f}   x{base / elapsed:.2f}")
        print(f"peak Python heap while streaming with read_shard: {peak_heap(lambda: read_passkit(ours)):.1f} MiB")


if __name__ == "__main__":
    main()
