"""End to end: ``glmmsim simulate --partitions`` at growing sizes, its memory and time, projected to 1e9 rows.

For each size the script runs the command a user runs,

    glmmsim simulate examples/stroop.yaml --set design.subjects=ROWS/50 --set design.items=25
        --set design.missing=0 --partitions ROWS/1e6 --out TMP/data.parquet

(the Stroop spec: 25 items x 2 conditions = 50 rows per subject, shifted-lognormal response),
on the default 2-worker ``LocalCluster`` of this 2-core machine, as a subprocess whose process
tree is sampled with psutil every 0.2 s. It reports the wall time from the outside (process
start to exit: imports, spec, cluster start, simulate and write, shutdown), the rate in rows
per second end to end, the peak resident memory of the command's own process (the client,
which also hosts the scheduler) and of each worker process, and the workers' peak in the first
and the last quarter of the run (equal when nothing accumulates). The reference, measured in
the same run: the same command without ``--partitions`` (one process, pandas) at 1e6 rows;
ratio = partitioned rate / single-process rate.

The projection to 1e9 rows fits wall = a + b * rows by least squares over the measured sizes.
The load average is printed with every row: the machine is shared, so compare rows measured
in one run.

Usage::

    PYTHONPATH=src python benchmarks/bench_scale_out.py                      # 1e7 and 5e7 rows (~10 min)
    PYTHONPATH=src python benchmarks/bench_scale_out.py --rows 1e7 5e7 2e8   # adds ~15-30 min
    PYTHONPATH=src python benchmarks/bench_scale_out.py --rows 2e6 --reference 2e5   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "stroop.yaml"
ROWS_PER_SUBJECT = 50  # 25 items x 2 conditions


class Run:
    """One command, its wall time and the sampled RSS of every process in its tree."""

    def __init__(self, argv: list[str], every: float = 0.2) -> None:
        self.argv = argv
        self.every = every
        self.series: dict[int, list[tuple[float, int]]] = {}
        self.kind: dict[int, str] = {}

    def run(self) -> Run:
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            now = time.perf_counter() - start
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in tree:
                try:
                    rss = p.memory_info().rss
                    if p.pid not in self.kind:
                        self.kind[p.pid] = self._kind(p, root)
                except psutil.Error:
                    continue
                self.series.setdefault(p.pid, []).append((now, rss))
            time.sleep(self.every)
        self.out, self.err = proc.communicate()
        self.seconds = time.perf_counter() - start
        self.status = proc.returncode
        self.load = (load_before + os.getloadavg()[0]) / 2
        return self

    @staticmethod
    def _kind(p: psutil.Process, root: psutil.Process) -> str:
        if p.pid == root.pid:
            return "client"
        line = " ".join(p.cmdline())
        return "helper" if "resource_tracker" in line else "worker"

    def peak(self, kind: str) -> list[float]:
        return [max(r for _, r in s) / 1e9 for pid, s in self.series.items() if self.kind[pid] == kind]

    def quarters(self) -> list[tuple[float, float]]:
        """Per worker: the peak RSS (GB) in the first and in the last quarter of its life."""
        out = []
        for pid, s in self.series.items():
            if self.kind[pid] != "worker" or len(s) < 8:
                continue
            t0, t1 = s[0][0], s[-1][0]
            q = (t1 - t0) / 4
            first = max(r for t, r in s if t <= t0 + q)
            last = max(r for t, r in s if t >= t1 - q)
            out.append((first / 1e9, last / 1e9))
        return out


def command(rows: int, out: Path, partitions: int | None) -> list[str]:
    argv = [
        sys.executable, "-m", "glmmsim.cli", "simulate", str(SPEC),
        "--set", f"design.subjects={rows // ROWS_PER_SUBJECT}", "--set", "design.items=25",
        "--set", "design.missing=0", "--out", str(out),
    ]  # fmt: skip
    return argv + (["--partitions", str(partitions)] if partitions else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e7, 5e7])
    parser.add_argument("--rows-per-partition", type=float, default=1e6)
    parser.add_argument("--reference", type=float, default=1e6, help="rows of the single-process reference")
    parser.add_argument("--keep", action="store_true", help="keep the written datasets (in a temporary folder)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-out-", dir=os.environ.get("TMPDIR", "/tmp")))
    print(f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB")
    try:
        ref_rows = int(args.reference)
        ref = Run(command(ref_rows, tmp / "reference.parquet", None)).run()
        if ref.status:
            sys.exit(f"reference run failed:\n{ref.err}")
        ref_rate = ref_rows / ref.seconds
        print(f"\nreference: one process (pandas), {ref_rows:,} rows: {ref.seconds:.1f} s, "
              f"{ref_rate / 1e6:.2f} M rows/s end to end, peak RSS {max(ref.peak('client')):.2f} GB "
              f"(load {ref.load:.1f})\n")
        print("| rows | partitions | wall (s) | M rows/s end to end | ratio to one process | client peak (GB) "
              "| worker peaks (GB) | worker peak, first -> last quarter (GB) | load |")
        print("|---:|---:|---:|---:|---:|---:|---|---|---:|")
        measured = []
        for rows in (int(r) for r in args.rows):
            k = max(1, round(rows / args.rows_per_partition))
            out = tmp / f"data-{rows}.parquet"
            run = Run(command(rows, out, k)).run()
            if run.status:
                sys.exit(f"{rows:,} rows failed (status {run.status}):\n{run.err[-3000:]}")
            rate = rows / run.seconds
            measured.append((rows, run.seconds, max(run.peak("client")), max(run.peak("worker"))))
            quarters = ", ".join(f"{a:.2f} -> {b:.2f}" for a, b in run.quarters())
            print(f"| {rows:.0e} | {k} | {run.seconds:.1f} | {rate / 1e6:.2f} | {rate / ref_rate:.2f} | "
                  f"{max(run.peak('client')):.2f} | {', '.join(f'{w:.2f}' for w in run.peak('worker'))} | "
                  f"{quarters} | {run.load:.1f} |", flush=True)
            print(f"  the command said: {run.out.strip()}", flush=True)
            noisy = [line for line in run.err.splitlines() if "Traceback" in line or " ERROR " in line]
            if noisy:
                print(f"  stderr had {len(noisy)} error line(s), e.g. {noisy[0]}")
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        if len(measured) >= 2:
            rows_, secs = np.array([m[0] for m in measured], float), np.array([m[1] for m in measured])
            b, a = np.polyfit(rows_, secs, 1)
            t = a + b * 1e9
            print(f"\nprojection to 1e9 rows (wall = {a:.1f} s + rows / {1 / b / 1e6:.2f} M/s): {t:.0f} s "
                  f"({t / 3600:.2f} h), {1e9 / t / 1e6:.2f} M rows/s; client and worker peaks do not grow with rows "
                  f"(client {measured[0][2]:.2f} -> {measured[-1][2]:.2f} GB, worker {measured[0][3]:.2f} -> "
                  f"{measured[-1][3]:.2f} GB from {measured[0][0]:.0e} to {measured[-1][0]:.0e} rows)")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
