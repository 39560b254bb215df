"""`passkit demo` end to end: first run vs. resumed second run in the same folder (the baseline is the first run).

Runs the demo CLI twice as subprocesses (fresh interpreter each time, as a user would) and prints wall-clock and
CPU seconds of both runs, the second/first ratio, and the time of each step of the first run. Needs the demo extra
and the detector models (PASSKIT_MODELS). Target: first run <= 300 s on 2 cores; second run much faster.

    python benchmarks/demo_resume.py [--out DIR] [--steps 40]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(out: Path, steps: int) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "passkit.cli", "demo", "--out", str(out), "--steps", str(steps)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        sys.exit(f"passkit demo failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, cpu, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="Run folder (default: a temporary one).")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="passkit-demo-bench-") as temp:
        out = args.out or Path(temp) / "demo"
        load = Path("/proc/loadavg").read_text().split()[0]
        first_wall, first_cpu, first_log = run(out, args.steps)
        second_wall, second_cpu, _ = run(out, args.steps)
    print(f"load average at start: {load}")
    print(f"first run:  {first_wall:7.1f} s wall, {first_cpu:7.1f} s CPU (baseline)")
    print(f"second run: {second_wall:7.1f} s wall, {second_cpu:7.1f} s CPU (resumed)")
    print(f"second / first: {second_wall / first_wall:.3f} wall, {second_cpu / first_cpu:.3f} CPU")
    print("first run steps:")
    for line in first_log.splitlines():
        if line.startswith("✓"):
            print("  " + line[1:].strip())


if __name__ == "__main__":
    main()
