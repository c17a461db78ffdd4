"""Cost of claiming outputs atomically: ``write_data`` (partial file, fsync, link) vs a plain write.

Both contenders write the same frame to a new file in the same folder, in alternating order,
after one untimed warm-up each; the script prints the median of each and their ratio.
The plain write is what glmmsim did before (the same CSV and Parquet writers, straight to the
target), so the ratio is the price of "whole or not at all" (mostly the fsync).

    python benchmarks/bench_outputs.py                 # 2e5 rows, CSV and Parquet, 5 rounds
    python benchmarks/bench_outputs.py --rows 1e6 --rounds 3 --dir /some/disk
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from glmmsim.study import write_data  # noqa: E402
from glmmsim.study.writers import _write_parquet  # noqa: E402


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "subject": pd.Categorical([f"s{i % 500:03d}" for i in range(rows)]),
        "cond": np.where(np.arange(rows) % 2, "a", "b"),
        "x": rng.standard_normal(rows),
        "y": rng.standard_normal(rows),
    })


def plain(data: pd.DataFrame, path: str) -> None:
    # write_data's own writers, straight to the target (as before outputs were claimed)
    if path.endswith(".parquet"):
        _write_parquet([data], path)
    else:
        data.to_csv(path, index=False)


def claimed(data: pd.DataFrame, path: str) -> None:
    write_data(data, path, force=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=2e5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None, help="folder to write in (default: a temporary folder)")
    args = ap.parse_args()
    data = frame(int(args.rows))
    folder = tempfile.mkdtemp(dir=args.dir)
    print(f"{int(args.rows)} rows, {args.rounds} rounds, in {folder}")
    for ext in ("csv", "parquet"):
        times: dict[str, list[float]] = {"plain": [], "claimed": []}
        contenders = {"plain": plain, "claimed": claimed}
        for name, fn in contenders.items():  # warm-up
            fn(data, os.path.join(folder, f"warm-{name}.{ext}"))
        for r in range(args.rounds):
            order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
            for name in order:
                path = os.path.join(folder, f"{name}-{r}.{ext}")
                start = time.perf_counter()
                contenders[name](data, path)
                times[name].append(time.perf_counter() - start)
                os.unlink(path)
        a, b = statistics.median(times["plain"]), statistics.median(times["claimed"])
        print(f"{ext:8s} plain {a * 1e3:8.1f} ms   claimed {b * 1e3:8.1f} ms   ratio {b / a:5.2f}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
