"""Download throughput: ``passkit download`` against img2dataset, same loopback server, same run.

A local aiohttp server (its own process) serves N distinct real-size JPEGs (50-200 KB: gradients + noise encoded
by Pillow; each URL gets its own bytes through a JPEG comment segment carrying its index) after an injected
latency per request. Both tools download the same N URLs with the same processes x concurrency and shard size,
store the bytes as downloaded (img2dataset: ``resize_mode=no``, ``disable_all_reencoding``, webdataset output,
sha256 on) and are timed end to end as subprocesses; peak RSS is the largest sum over the process tree, sampled.
img2dataset is installed with pip into its own venv (``--i2d-venv``, created on first use).

Prints images/s of each, the ratio passkit / img2dataset, lost rows (input rows with no output row), failed
rows, peak RSS, and checks a sample of passkit's stored bytes against the served bytes.

    python benchmarks/download_vs_img2dataset.py [--images 20000] [--latency 0.05] [--processes 2] [--threads 64]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from loopback import start_server
from passkit.download import final_rows

MIN_BYTES, MAX_BYTES = 50_000, 200_000


def make_pool(count: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct JPEGs of 50-200 KB (smooth gradients plus Gaussian noise, quality 85)."""
    rng = np.random.default_rng(seed)
    pool: list[bytes] = []
    while len(pool) < count:
        width = int(rng.integers(500, 1025))
        height = width * 3 // 4
        y, x = np.mgrid[0:height, 0:width]
        phase = rng.uniform(0, 255, 3)
        base = np.stack([x * 255 / width + phase[0], y * 255 / height + phase[1], (x + y) * 0.2 + phase[2]], -1)
        pixels = np.clip(base % 256 + rng.normal(0, rng.uniform(5, 20), base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
        if MIN_BYTES <= buffer.tell() <= MAX_BYTES - 64:
            pool.append(buffer.getvalue())
    return pool


def save_pool(pool: list[bytes], path: Path) -> None:
    pq.write_table(pa.table({"jpeg": pa.array(pool, pa.binary())}), path)


def load_pool(path: Path) -> list[bytes]:
    return pq.read_table(path)["jpeg"].to_pylist()


def served_bytes(pool: list[bytes], index: int) -> bytes:
    """Image ``index``: a pool JPEG with a COM segment naming the index right after SOI (distinct bytes)."""
    comment = f"passkit-bench image {index:08d}".encode()
    base = pool[index % len(pool)]
    return base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]


class PoolImages:
    """``served_bytes`` of the pool saved at ``pool_file``, loaded on first use (in the server's process)."""

    def __init__(self, pool_file: str) -> None:
        self.pool_file = pool_file
        self.pool: list[bytes] | None = None

    def __call__(self, index: int) -> bytes:
        if self.pool is None:
            self.pool = load_pool(Path(self.pool_file))
        return served_bytes(self.pool, index)


def process_tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def timed_run(command: list[str], log: Path, limit: float) -> tuple[float, int, int]:
    """Run ``command`` (killed with its process group after ``limit`` s); returns (seconds, peak tree RSS in
    bytes, exit code)."""
    peak = 0
    with log.open("w") as out:
        started = time.perf_counter()
        environment = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}  # no update check over the network
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, process_tree_rss(process.pid))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    return seconds, peak, code


def write_inputs(folder: Path, base_url: str, count: int) -> Path:
    keys = [f"bench-{i:07d}" for i in range(count)]
    table = pa.table(
        {
            "key": keys,
            "source": ["bench"] * count,
            "photo_id": [str(i) for i in range(count)],
            "url": [f"{base_url}/img/{i}.jpg" for i in range(count)],
            "page_url": [f"https://www.flickr.com/photos/bench/{i}" for i in range(count)],
            "license": ["CC-BY-2.0"] * count,
            "license_url": ["https://creativecommons.org/licenses/by/2.0/"] * count,
            "creator": [f"creator {i % 997}" for i in range(count)],
            "title": [f"photo {i}" for i in range(count)],
            "date_taken": ["2010-05-01 10:00:00"] * count,
            "latitude": [None] * count,
            "longitude": [None] * count,
        }
    )
    path = folder / "candidates.parquet"
    pq.write_table(table, path)
    return path


def ensure_img2dataset(venv_dir: Path) -> Path:
    python = venv_dir / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import img2dataset"], capture_output=True) if python.exists() else None
    if probe is None or probe.returncode != 0:
        print(f"installing img2dataset into {venv_dir} (pip) ...", flush=True)
        venv.create(venv_dir, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "img2dataset"], check=True)
    return python


I2D_SCRIPT = """
import sys
from img2dataset import download

if __name__ == "__main__":
    url_list, out, processes, threads, shard_size, timeout = sys.argv[1:7]
    download(url_list=url_list, input_format="parquet", url_col="url", output_folder=out,
             output_format="webdataset", processes_count=int(processes), thread_count=int(threads),
             number_sample_per_shard=int(shard_size), resize_mode="no", disable_all_reencoding=True,
             extract_exif=False, compute_hash="sha256",
             save_additional_columns=["creator", "title", "page_url", "license", "license_url"],
             timeout=int(float(timeout)), retries=3, enable_wandb=False, distributor="multiprocessing",
             incremental_mode="incremental")  # fresh folder; "overwrite" deletes its own _tmp
"""


def img2dataset_outcome(out: Path) -> tuple[int, int]:
    """(rows, successes) over img2dataset's per-shard parquet files."""
    rows = successes = 0
    for path in sorted(out.glob("*.parquet")):
        status = pq.read_table(path, columns=["status"])["status"].to_pylist()
        rows += len(status)
        successes += sum(1 for value in status if value == "success")
    return rows, successes


def passkit_outcome(out: Path, pool: list[bytes], check: int) -> tuple[int, int, int, int]:
    """(rows, kept, rows checked, mismatches among about ``check`` kept rows compared with the served bytes)."""
    rows = final_rows(out)
    kept = [
        (key, sha)
        for key, status, sha in zip(
            rows["key"].to_pylist(), rows["status"].to_pylist(), rows["sha256"].to_pylist(), strict=True
        )
        if status == "kept"
    ]
    step = max(1, len(kept) // max(1, check))
    checked = kept[::step]
    mismatches = sum(
        hashlib.sha256(served_bytes(pool, int(key.rsplit("-", 1)[1]))).hexdigest() != sha for key, sha in checked
    )
    return rows.num_rows, len(kept), len(checked), mismatches


def run_passkit(args: argparse.Namespace, candidates: Path, pool: list[bytes], name: str) -> dict[str, float]:
    out = args.work / name
    command = [
        sys.executable, "-m", "passkit.cli", "download", str(candidates), "--out", str(out),
        "--workers", str(args.processes), "--concurrency", str(args.threads), "--per-host", str(args.threads),
        "--shard-size", str(args.shard_size), "--timeout", str(args.timeout), "--max-bytes", "32MB",
    ]  # fmt: skip
    seconds, rss, code = timed_run(command, args.work / f"{name}.log", args.run_limit)
    rows, kept, checked, mismatches = passkit_outcome(out, pool, check=2_000)
    shutil.rmtree(out, ignore_errors=True)
    result = {"rate": kept / seconds, "ok": kept, "seconds": seconds, "rss": rss, "code": code}
    print(
        f"passkit      : {result['rate']:8.1f} images/s  ({kept:,} kept in {seconds:.1f} s, exit {code}); "
        f"lost rows {args.images - rows}, failed rows {rows - kept}, peak RSS {rss / 2**20:,.0f} MiB; "
        f"sha256 of stored vs served bytes: {mismatches} mismatches in {checked:,} rows checked",
        flush=True,
    )
    return result


def run_img2dataset(args: argparse.Namespace, python: Path, candidates: Path, name: str) -> dict[str, float]:
    out = args.work / name
    script = args.work / "run_img2dataset.py"
    script.write_text(I2D_SCRIPT)
    command = [str(python), str(script), str(candidates), str(out), str(args.processes), str(args.threads),
               str(args.shard_size), str(args.timeout)]  # fmt: skip
    seconds, rss, code = timed_run(command, args.work / f"{name}.log", args.run_limit)
    rows, ok = img2dataset_outcome(out)
    shutil.rmtree(out, ignore_errors=True)
    if code != 0 or rows == 0:
        log_tail = (args.work / f"{name}.log").read_text()[-1500:]
        raise RuntimeError(f"img2dataset exited {code} with {rows} rows; log tail:\n{log_tail}")
    result = {"rate": ok / seconds, "ok": ok, "seconds": seconds, "rss": rss, "code": code}
    print(
        f"img2dataset  : {result['rate']:8.1f} images/s  ({ok:,} ok in {seconds:.1f} s, exit {code}); "
        f"lost rows {args.images - rows}, failed rows {rows - ok}, peak RSS {rss / 2**20:,.0f} MiB",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds injected per request")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=64, help="requests in flight per process (both tools)")
    parser.add_argument("--shard-size", type=int, default=2_500)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=1, help="rounds, alternating which tool goes first")
    parser.add_argument("--pool", type=int, default=256, help="distinct base JPEGs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/passkit-bench-download"))
    parser.add_argument("--i2d-venv", type=Path, default=Path("/tmp/passkit-bench-img2dataset-venv"))
    parser.add_argument("--run-limit", type=float, default=1800, help="seconds before a tool's run is killed")
    parser.add_argument("--skip-img2dataset", action="store_true")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    i2d_python = None
    i2d_problem = ""
    if not args.skip_img2dataset:
        try:
            i2d_python = ensure_img2dataset(args.i2d_venv)
        except (subprocess.CalledProcessError, OSError) as error:
            i2d_problem = f"img2dataset could not be installed: {error}"

    pool = make_pool(args.pool)
    pool_file = args.work / "pool.parquet"
    save_pool(pool, pool_file)
    server, base_url = start_server(PoolImages(str(pool_file)), args.latency)
    passkit_runs: list[dict[str, float]] = []
    i2d_runs: list[dict[str, float]] = []
    try:
        candidates = write_inputs(args.work, base_url, args.images)
        sizes = [len(served_bytes(pool, i)) for i in range(min(args.images, len(pool)))]
        print(
            f"{args.images:,} JPEGs of {min(sizes) / 1e3:.0f}-{max(sizes) / 1e3:.0f} KB "
            f"(mean {np.mean(sizes) / 1e3:.0f} KB) on {base_url}, {args.latency * 1e3:.0f} ms latency; "
            f"{args.processes} processes x {args.threads} in flight, shards of {args.shard_size}",
            flush=True,
        )
        for round_ in range(args.rounds):
            order = ["passkit", "img2dataset"] if round_ % 2 == 0 else ["img2dataset", "passkit"]
            for tool in order:
                if tool == "passkit":
                    passkit_runs.append(run_passkit(args, candidates, pool, f"passkit-{round_}"))
                elif i2d_python is not None and not i2d_problem:
                    try:
                        i2d_runs.append(run_img2dataset(args, i2d_python, candidates, f"img2dataset-{round_}"))
                    except RuntimeError as error:
                        i2d_problem = str(error)
    finally:
        server.terminate()
        server.join()
        shutil.rmtree(args.work, ignore_errors=True)

    p_rate = float(np.mean([run["rate"] for run in passkit_runs]))
    summary: dict[str, object] = {"images": args.images, "passkit_images_per_s": round(p_rate, 1)}
    if i2d_runs:
        i_rate = float(np.mean([run["rate"] for run in i2d_runs]))
        summary |= {"img2dataset_images_per_s": round(i_rate, 1), "ratio": round(p_rate / i_rate, 2)}
        print(
            f"ratio passkit / img2dataset: {p_rate / i_rate:.2f}x images/s "
            f"(mean of {len(passkit_runs)} + {len(i2d_runs)} runs; target >= 1.0x)"
        )
    if i2d_problem:
        print(f"img2dataset not measured: {i2d_problem}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
