"""passkit select on YFCC100M-format metadata: rows/s against the decompressor alone and a pandas baseline.

Generates a synthetic YFCC100M file (single-file layout by default: 25 fields with the photo hash; field lengths
and license mix close to the real dump: ~17% CC-BY, ~0.8% videos, heavy-tailed photos per creator, %-encoded text),
bzip2-compresses it, then measures in one run, under the same load:

* ``decompress``: ``lbzip2 -dc FILE > /dev/null`` (the parallel decompressor select uses), the physical limit;
* ``select``: ``passkit select FILE`` end to end, as a user runs it (a fresh process: imports, decompress,
  parse, license/attribution/video/hash checks, dedup, per-creator cap, both parquet outputs, the summary), with
  its peak RSS: of its own process (VmHWM) and of its process tree (select + lbzip2, sampled every 20 ms);
* ``pipe only``: ``lbzip2 -dc FILE`` into a pipe read by a Python process that discards the bytes: the bound
  for any reader of lbzip2's output (writing into a pipe costs lbzip2 more than writing to /dev/null);
* ``pandas``: ``pandas.read_csv(FILE.bz2, sep="\\t", chunksize=...)`` + the same license/video filter, the
  baseline a data scientist would write.

Prints rows/s and the ratios select/decompress (target >= 0.8) and select/pandas (target >= 5), the bound on the
latter that decompression alone sets (decompress-only / pandas), and the peak RSS of select for each size and the
ratio largest / smallest size, for the process and the tree (target: flat in file size).

    python benchmarks/select_yfcc.py [--rows 1000000 4000000] [--layout single-file|original] [--keep DIR]
                                     [--repeat N] [--pandas-rows N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np

LICENSES = [  # (name, url code, share); YFCC100M is all Creative Commons
    ("Attribution-NonCommercial-ShareAlike License", "by-nc-sa", 0.31),
    ("Attribution-NonCommercial License", "by-nc", 0.14),
    ("Attribution-NonCommercial-NoDerivs License", "by-nc-nd", 0.25),
    ("Attribution License", "by", 0.17),
    ("Attribution-ShareAlike License", "by-sa", 0.09),
    ("Attribution-NoDerivs License", "by-nd", 0.04),
]
CC_BY_NAMES = ["Attribution+License"]
WORDS = [
    "sunset",
    "beach",
    "city",
    "night",
    "street",
    "park",
    "tree",
    "river",
    "lake",
    "mountain",
    "snow",
    "bridge",
    "church",
    "museum",
    "market",
    "train",
    "station",
    "garden",
    "flower",
    "dog",
    "cat",
    "bird",
    "boat",
    "harbour",
    "festival",
    "concert",
    "wedding",
    "party",
    "family",
    "trip",
    "holiday",
    "summer",
    "winter",
    "autumn",
    "spring",
    "sky",
    "cloud",
    "rain",
    "road",
    "building",
    "tower",
    "castle",
    "forest",
    "island",
    "village",
    "café",
    "été",
    "naïve",
]
DEVICES = ["Canon+EOS+400D+DIGITAL", "NIKON+D70", "Canon+PowerShot+A95", "Apple+iPhone+4", "SONY+DSC-W55", ""]


def _text(rng: np.random.Generator, low: int, high: int, sep: str = " ") -> str:
    return quote_plus(sep.join(rng.choice(WORDS, rng.integers(low, high + 1)).tolist()), safe=",")


def generate(path: Path, rows: int, layout: str, seed: int = 0) -> None:
    """Write ``rows`` synthetic lines through ``lbzip2 -z`` (or bzip2) into ``path``."""
    rng = np.random.default_rng(seed)
    shares = np.array([share for *_, share in LICENSES])
    pools = {
        "title": [_text(rng, 0, 6) for _ in range(5000)],
        "description": [_text(rng, 0, 40) if i % 3 else "" for i in range(5000)],
        "tags": [_text(rng, 0, 15, ",") for _ in range(5000)],
    }
    creators = max(rows // 170, 10)
    compressor = shutil.which("lbzip2") or shutil.which("bzip2")
    if compressor is None:
        raise SystemExit("needs lbzip2 or bzip2 to compress the synthetic file")
    with path.open("wb") as out:
        process = subprocess.Popen([compressor, "-zc", "-9"], stdin=subprocess.PIPE, stdout=out)
        assert process.stdin is not None
        block = 100_000
        for start in range(0, rows, block):
            count = min(block, rows - start)
            license_index = rng.choice(len(LICENSES), count, p=shares / shares.sum())
            creator = (rng.random(count) ** 2 * creators).astype(np.int64)  # heavy-tailed photos per creator
            title = rng.integers(0, 5000, count)
            description = rng.integers(0, 5000, count)
            tags = rng.integers(0, 5000, count)
            video = rng.random(count) < 0.008
            geo = rng.random(count) < 0.5
            lines = []
            for i in range(count):
                photo_id = 10_000_000 + (start + i) * 37
                digit = photo_id % 10
                nsid = f"{10_000_000 + int(creator[i]) * 13}@N0{int(creator[i]) % 8}"
                name, code, _ = LICENSES[int(license_index[i])]
                server, secret = 1000 + photo_id % 7000, f"{photo_id * 2654435761 % 16**10:010x}"
                url = f"http://farm{1 + photo_id % 9}.staticflickr.com/{server}/{photo_id}_{secret}.jpg"
                lon, lat = (f"{(photo_id % 36000) / 100 - 180:.6f}", f"{(photo_id % 18000) / 100 - 90:.6f}")
                shared = [
                    nsid,
                    f"user{int(creator[i])}",
                    f"20{10 + photo_id % 4}-0{1 + photo_id % 9}-1{digit} 1{digit}:2{digit}:00.0",
                    str(1_300_000_000 + photo_id % 100_000_000),
                    DEVICES[photo_id % len(DEVICES)],
                    pools["title"][int(title[i])],
                    pools["description"][int(description[i])],
                    pools["tags"][int(tags[i])],
                    "",
                    lon if geo[i] else "",
                    lat if geo[i] else "",
                    str(16 if geo[i] else ""),
                    f"http://www.flickr.com/photos/{nsid}/{photo_id}/",
                    url,
                    quote_plus(name),
                    f"http://creativecommons.org/licenses/{code}/2.0/",
                    str(server),
                    str(1 + photo_id % 9),
                    secret,
                    f"{photo_id * 40503 % 16**10:010x}",
                    "mp4" if video[i] else "jpg",
                    "1" if video[i] else "0",
                ]
                if layout == "single-file":
                    digest = "".join(f"{b:x}" for b in hashlib.md5(url.encode()).digest())
                    lines.append("\t".join([str(start + i), str(photo_id), digest, *shared]))
                else:
                    lines.append("\t".join([str(photo_id), *shared]))
            process.stdin.write(("\n".join(lines) + "\n").encode())
        process.stdin.close()
        if process.wait() != 0:
            raise SystemExit(f"{compressor} failed")


def _descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (from /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                kids = [int(kid) for kid in task.read_text().split()]
            except OSError:  # the task ended meanwhile
                continue
            found += kids
            todo += kids
    return found


def _rss(pid: int) -> int:
    """Resident bytes of ``pid`` now (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError):
        return 0


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python; it prints one JSON line. Adds its peak RSS in MiB: ``rss_mib`` of the
    process itself (its VmHWM, read by itself at the end), ``tree_rss_mib`` of the process tree (the sum over the
    process and its descendants, e.g. lbzip2, sampled every 20 ms) and ``child_rss_mib`` of its largest descendant
    (sampled); and CPU seconds of the child and of its own children (the decompressor).

    Not ``ru_maxrss``: a process started by vfork + exec inherits the high-water mark of its parent's memory at that
    moment, so a child's ``ru_maxrss`` can be its parent's peak (lbzip2 showed select's ~95 MiB at its start, and
    select at 4M rows this script's own ~420 MiB after it had read the 349 MiB file to warm the page cache)."""
    wrapper = (
        "import json, resource, sys, time\n"
        f"{code}\n"
        "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())\n"
        "result.update(rss_mib=int(status['VmHWM'].split()[0]) / 1024,\n"
        "              cpu=me.ru_utime + me.ru_stime, child_cpu=kids.ru_utime + kids.ru_stime)\n"
        "print(json.dumps(result))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", wrapper, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    tree = largest_descendant = 0

    def sample() -> None:
        nonlocal tree, largest_descendant
        while process.poll() is None:
            descendants = [_rss(pid) for pid in _descendants(process.pid)]
            tree = max(tree, _rss(process.pid) + sum(descendants))
            largest_descendant = max(largest_descendant, *descendants, 0)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, process.args, stdout, stderr)
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(tree_rss_mib=max(tree / 2**20, result["rss_mib"]), child_rss_mib=largest_descendant / 2**20)
    return result


SELECT_CODE = """
start = time.perf_counter()
from passkit.cli import app
app(["select", sys.argv[1], "--out", sys.argv[2]], standalone_mode=False)
seconds = time.perf_counter() - start
import pyarrow.parquet as pq
candidates = pq.read_metadata(sys.argv[2]).num_rows
rejects = pq.read_metadata(sys.argv[2].removesuffix(".parquet") + ".rejects.parquet").num_rows
result = dict(seconds=seconds, rows=candidates + rejects, candidates=candidates, rejects=rejects)
"""

# The pipe alone: what a reader of lbzip2's output that did no work at all would reach.
PIPE_CODE = """
import subprocess
start = time.perf_counter()
process = subprocess.Popen(["lbzip2", "-dc", sys.argv[1]], stdout=subprocess.PIPE, bufsize=0, pipesize=1 << 20)
buffer = memoryview(bytearray(16 << 20))
while process.stdout.readinto(buffer):
    pass
process.wait()
result = dict(seconds=time.perf_counter() - start)
"""

PANDAS_CODE = """
import csv
import pandas as pd
columns = json.loads(sys.argv[2])
start = time.perf_counter()
rows = kept = 0
for chunk in pd.read_csv(sys.argv[1], sep="\\t", header=None, names=columns, dtype=str, quoting=csv.QUOTE_NONE,
                         keep_default_na=False, chunksize=200_000, compression="bz2"):
    rows += len(chunk)
    keep = chunk["license_name"].isin(["Attribution+License"]) & (chunk["marker"] == "0")
    keep &= chunk["user_nickname"].str.len() > 0
    kept += int(keep.sum())
result = dict(seconds=time.perf_counter() - start, rows=rows, candidates=kept)
"""


def decompress_only(path: Path, tool: str | None) -> dict:
    """Wall and CPU seconds of decompressing ``path`` to /dev/null with lbzip2, or Python's bz2 (tool None)."""
    command = [tool, "-dc", str(path)] if tool else [sys.executable, "-c", _PY_DECOMPRESS, str(path)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with Path("/dev/null").open("wb") as null:
        subprocess.run(command, stdout=null, check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu": cpu}


def fastest(runs: list[dict]) -> dict:
    return min(runs, key=lambda run: run["seconds"])


def report(label: str, rows: int, seconds: float, cpu: float, note: str = "") -> float:
    rate = rows / seconds
    print(f"  {label:<40} {rate:>10,.0f} rows/s {seconds:>8.1f} s wall {cpu:>8.1f} s CPU  {note}")
    return rate


_PY_DECOMPRESS = "import bz2, sys\nwith bz2.open(sys.argv[1]) as f:\n    while f.read(1 << 22): pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--layout", choices=["single-file", "original"], default="single-file")
    parser.add_argument("--pandas-rows", type=int, default=None, help="run pandas on this size only (default first)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the generated files in this folder")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run decompress-only, select and pipe-only this many times in turn; "
        "each side's fastest run counts (less sensitive to other jobs on a shared machine)",
    )
    args = parser.parse_args()
    from passkit.sources.yfcc import ORIGINAL, SINGLE_FILE

    columns = (SINGLE_FILE if args.layout == "single-file" else ORIGINAL).columns
    pandas_rows = args.pandas_rows or args.rows[0]
    work = args.keep or Path(tempfile.mkdtemp(prefix="passkit-select-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"layout {args.layout}; decompressor: {shutil.which('lbzip2') or 'python bz2 (lbzip2 not installed)'}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    peaks: dict[int, dict[str, float]] = {}
    try:
        for rows in args.rows:
            path = work / f"yfcc100m_dataset-{rows}.bz2"
            if not path.exists():
                start = time.perf_counter()
                generate(path, rows, args.layout)
                print(
                    f"generated {rows:,} rows: {path.stat().st_size / 2**20:.0f} MiB bz2 in "
                    f"{time.perf_counter() - start:.0f} s"
                )
            with path.open("rb") as handle:  # warm the page cache (in pieces: this process stays small)
                while handle.read(16 << 20):
                    pass
            lbzip2 = shutil.which("lbzip2")
            # The three sides in turn, --repeat times: each keeps its fastest run (the one least slowed by other
            # jobs on a shared machine), as timeit does.
            decs, sels, pipes = [], [], []
            for _ in range(args.repeat):
                decs.append(decompress_only(path, lbzip2))
                sels.append(run_child(SELECT_CODE, str(path), str(work / f"candidates-{rows}.parquet")))
                assert sels[-1]["rows"] == rows, sels[-1]
                if lbzip2:
                    pipes.append(run_child(PIPE_CODE, str(path)))
            dec, sel = fastest(decs), fastest(sels)
            pipe = fastest(pipes) if pipes else None
            print(
                f"\n{rows:,} rows ({path.stat().st_size / 2**20:.0f} MiB bz2)"
                + (f", fastest of {args.repeat} runs each" if args.repeat > 1 else "")
            )
            dec_rate = report(
                "lbzip2 -dc > /dev/null" if lbzip2 else "python bz2 > /dev/null", rows, dec["seconds"], dec["cpu"]
            )
            sel_cpu = sel["cpu"] + sel["child_cpu"]
            sel_rate = report(
                "passkit select",
                rows,
                sel["seconds"],
                sel_cpu,
                f"({sel['candidates']:,} candidates, {sel['rejects']:,} rejects)",
            )
            print(f"  select / decompress-only: {sel_rate / dec_rate:.2f}x (target >= 0.8)")
            if pipe is not None:
                pipe_rate = report(
                    "lbzip2 -dc | reader that discards", rows, pipe["seconds"], pipe["cpu"] + pipe["child_cpu"]
                )
                print(
                    f"  bound: pipe only / decompress-only = {pipe_rate / dec_rate:.2f}x (a reader of the pipe that "
                    f"did no work; lbzip2 CPU {pipe['child_cpu']:.1f} s into the pipe vs {dec['cpu']:.1f} s into "
                    "/dev/null)"
                )
            print(
                f"  select's own CPU (parse, checks, parquet; decompressor excluded): {sel['cpu']:.1f} s = "
                f"{sel['cpu'] / dec['cpu']:.2f}x the decompressor's {dec['cpu']:.1f} s"
            )
            if rows == pandas_rows:
                pan = fastest(
                    [run_child(PANDAS_CODE, str(path), json.dumps(list(columns))) for _ in range(args.repeat)]
                )
                bz2_alone = fastest([decompress_only(path, None) for _ in range(args.repeat)])
                report("python bz2 > /dev/null (pandas' decoder)", rows, bz2_alone["seconds"], bz2_alone["cpu"])
                pan_rate = report("pandas read_csv + filter", rows, pan["seconds"], pan["cpu"])
                print(f"  select / pandas: {sel_rate / pan_rate:.2f}x (target >= 5)")
                print(
                    f"  bound: decompress-only / pandas = {dec_rate / pan_rate:.2f}x (what a reader whose parsing "
                    "cost nothing would reach on this machine)"
                )
                parse = pan["cpu"] - bz2_alone["cpu"]
                print(
                    f"  parse + filter CPU without decompression: pandas {parse:.1f} s, select {sel['cpu']:.1f} s "
                    f"({parse / sel['cpu']:.2f}x)"
                )
            peaks[rows] = {
                name: max(run[name] for run in sels) for name in ("rss_mib", "tree_rss_mib", "child_rss_mib")
            }
            print(
                f"  select peak RSS: {peaks[rows]['rss_mib']:.0f} MiB process (VmHWM), "
                f"{peaks[rows]['tree_rss_mib']:.0f} MiB process tree (select + lbzip2, sampled; lbzip2 alone "
                f"{peaks[rows]['child_rss_mib']:.0f} MiB), highest of its runs"
            )
            print(f"  load average {os.getloadavg()[0]:.1f} after this size")
        if len(peaks) > 1:
            small, large = min(peaks), max(peaks)
            print(
                f"\nselect peak RSS {large:,} / {small:,} rows: process "
                f"{peaks[large]['rss_mib'] / peaks[small]['rss_mib']:.3f}x, process tree "
                f"{peaks[large]['tree_rss_mib'] / peaks[small]['tree_rss_mib']:.3f}x (target: flat, <= 1.1x)"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
