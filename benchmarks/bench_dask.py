"""Benchmark the Dask scale-out: a partitioned crossed design simulated and written to Parquet.

On a 2-worker ``LocalCluster`` (processes, one thread each) the script

1. builds ``crossed(subjects, 500 items, within cond a/b, x per trial, npartitions=...)``,
   simulates ``y ~ x + cond + (1 + x | subject) + (1 | item)`` on it (gaussian) and
   writes one Parquet file per partition (``glmmsim.dask.write_partitions``,
   what ``glmmsim simulate --partitions`` runs), at ~1e6-row partitions: rows/s and the
   peak resident memory of each worker process (polled every 0.1 s with psutil);
2. the same in one process with pandas for 1e6 rows (design, simulate, to_parquet), before
   and after the cluster run (mean): the single-core rate the cluster's rate is compared with;
3. writes the dataset again with 16 and with 100 partitions and compares the two bit for
   bit, column by column, through an order-sensitive checksum computed on the workers
   (sum over rows of mix64(row hash XOR global row number)), so no dataset is loaded whole;
4. with ``--power N``: an N-replicate power analysis (``glmmsim.analysis.power``, the glmm
   engine, 30 subjects x 20 items) serially, on a 2-process pool and on the cluster's
   Client: seconds, ms per replicate, and whether the per-replicate tables are identical.

Usage::

    PYTHONPATH=src python benchmarks/bench_dask.py                # 2e7 rows (~2-3 min)
    PYTHONPATH=src python benchmarks/bench_dask.py --rows 1e8     # the issue's size
    PYTHONPATH=src python benchmarks/bench_dask.py --rows 2e6 --no-identity
    PYTHONPATH=src python benchmarks/bench_dask.py --rows 0 --power 1000   # the study comparison only
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
try:
    import glmmsim  # noqa: F401
except ImportError:  # pragma: no cover - run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

import psutil  # noqa: E402  (a dependency of distributed)
from distributed import Client, LocalCluster  # noqa: E402

from glmmsim import Model  # noqa: E402
from glmmsim.dask import write_partitions  # noqa: E402
from glmmsim.design import crossed  # noqa: E402
from glmmsim.randomness.streams import mix64  # noqa: E402

ITEMS = 500
CELLS = 2  # within cond a/b: rows per subject = ITEMS * CELLS


def make_model() -> Model:
    return Model(
        "y ~ x + cond + (1 + x | subject) + (1 | item)",
        fixed={"Intercept": 0.5, "x": 0.3, "cond[T.b]": 0.2},
        random={"subject": {"sd": {"Intercept": 0.4, "x": 0.1}, "corr": {("Intercept", "x"): 0.3}}, "item": 0.3},
        sigma=1.0,
        levels={"cond": ["a", "b"]},
        seed=1,
    )


def design(rows: int, npartitions):
    subjects = max(1, int(rows) // (ITEMS * CELLS))
    return crossed(
        subjects, ITEMS, within={"cond": ["a", "b"]}, covariates={"x": {"per": "trial"}}, npartitions=npartitions, seed=2
    )


class PeakMemory:
    """Peak RSS of each worker process, polled from the client in a thread."""

    def __init__(self, pids: list[int], every: float = 0.1) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.peak = {p: 0 for p in pids}
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in self.procs:
                try:
                    self.peak[proc.pid] = max(self.peak[proc.pid], proc.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_dask(client: Client, rows: int, npartitions, out: Path) -> tuple[int, float, int]:
    data = make_model().simulate(design(rows, npartitions), seed=3)
    start = time.perf_counter()
    n = write_partitions(data, out, client=client, progress=False)
    return n, time.perf_counter() - start, data.npartitions


def run_pandas(rows: int, out: Path) -> float:
    start = time.perf_counter()
    subjects = max(1, rows // (ITEMS * CELLS))
    d = crossed(subjects, ITEMS, within={"cond": ["a", "b"]}, covariates={"x": {"per": "trial"}}, seed=2)
    make_model().simulate(d, seed=3).to_parquet(out, index=False)
    return time.perf_counter() - start


def _file_checksums(path: str, start: int) -> dict[str, int]:
    frame = pd.read_parquet(path)
    position = np.arange(start, start + len(frame), dtype=np.uint64)
    out = {}
    for col in frame.columns:
        values = frame[col].astype(str) if isinstance(frame[col].dtype, pd.CategoricalDtype) else frame[col]
        h = pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)
        out[col] = int(mix64(h ^ position).sum(dtype=np.uint64))
    return out


def checksums(client: Client, directory: Path) -> tuple[int, dict[str, int]]:
    """Order-sensitive, partition-independent checksum per column of a dataset."""
    import pyarrow.parquet as pq

    files = sorted(directory.glob("part.*.parquet"))
    lengths = [pq.ParquetFile(f).metadata.num_rows for f in files]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    parts = client.gather(client.map(_file_checksums, [str(f) for f in files], [int(s) for s in starts]))
    total: dict[str, int] = {}
    for part in parts:
        for col, value in part.items():
            total[col] = (total.get(col, 0) + value) % 2**64
    return int(sum(lengths)), total


def run_power(client: Client, nsim: int) -> None:
    from glmmsim.analysis import power

    m = Model(
        "rt ~ cond + (1 + cond | subject) + (1 | item)",
        fixed={"Intercept": 600.0, "condb": 20.0},
        random={"subject": {"sd": {"Intercept": 50.0, "condb": 20.0}}, "item": 30.0},
        sigma=80.0,
        seed=1,
    )
    d = crossed(30, 20, within={"cond": ["a", "b"]})
    power(m, d, test="cond", nsim=20, seed=5, progress=False, executor=client)  # warm the workers
    results = {}
    for name, executor in (("serial", None), ("process pool (2)", 2), ("dask Client (2 workers)", client)):
        start = time.perf_counter()
        res = power(m, d, test="cond", nsim=nsim, seed=5, progress=False, executor=executor)
        seconds = time.perf_counter() - start
        results[name] = res
        print(f"power, {nsim} replicates, {name}: {seconds:.1f} s, {1000 * seconds / nsim:.1f} ms/replicate, "
              f"power {res.power:.3f}")
    serial = results["serial"].simulations
    same = all(r.simulations.equals(serial) for r in results.values())
    print(f"per-replicate tables identical on all three: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=2e7, help="design rows (default 2e7; the issue's size: 1e8)")
    parser.add_argument("--rows-per-partition", type=float, default=1e6)
    parser.add_argument("--no-identity", action="store_true", help="skip the 16 vs 100 partitions identity check")
    parser.add_argument("--power", type=int, default=0, metavar="N", help="also an N-replicate power analysis")
    args = parser.parse_args()
    rows = int(args.rows)
    k = max(1, round(rows / args.rows_per_partition))
    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(
            cluster
        ) as client:
            pids = list(client.run(os.getpid).values())
            if args.power:
                run_power(client, args.power)
            if rows <= 0:
                return
            run_dask(client, 2 * ITEMS * CELLS * 2, 2, tmp / "warm")  # imports and pickles on every worker
            pandas_rows = min(rows, 1_000_000)
            # the single-process reference before and after: the machine's load moves during a long run
            before = run_pandas(pandas_rows, tmp / "pandas.parquet")
            with PeakMemory(pids) as mem:
                n, seconds, parts = run_dask(client, rows, k, tmp / "main")
            peaks = ", ".join(f"{v / 2**30:.2f}" for v in mem.peak.values())
            print(
                f"dask: {n:,} rows in {parts} partitions ({n / parts / 1e6:.2f}e6 rows each) -> Parquet in "
                f"{seconds:.1f} s: {n / seconds / 1e6:.2f} M rows/s; peak RSS per worker: {peaks} GB"
            )
            single = (before + run_pandas(pandas_rows, tmp / "pandas.parquet")) / 2
            single_rate = pandas_rows / single
            print(
                f"pandas, one process, {pandas_rows:,} rows: {single_rate / 1e6:.2f} M rows/s; "
                f"dask/pandas rate ratio: {n / seconds / single_rate:.2f} (2 workers on 2 cores)"
            )
            if not args.no_identity:
                found = {}
                for parts_ in (16, 100):
                    run_dask(client, rows, parts_, tmp / f"p{parts_}")
                    found[parts_] = checksums(client, tmp / f"p{parts_}")
                    shutil.rmtree(tmp / f"p{parts_}")
                (n16, c16), (n100, c100) = found[16], found[100]
                same = [c for c in c16 if c16[c] == c100.get(c)]
                differ = [c for c in c16 if c16[c] != c100.get(c)]
                verdict = "identical" if n16 == n100 and not differ else "DIFFERENT"
                print(
                    f"16 vs 100 partitions: {verdict} ({n16:,} vs {n100:,} rows; equal columns: {', '.join(same)}"
                    + (f"; differing: {', '.join(differ)}" if differ else "")
                    + ")"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
