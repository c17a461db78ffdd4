"""Start-up time of the ``glmmsim`` command and of ``import glmmsim``, against Python itself.

Run: ``python benchmarks/bench_startup.py``. Prints the median wall time of each command over
several runs and its ratio to a bare ``python -c pass`` measured in the same run (the machine is
shared, so absolute numbers are noisy; the ratio less so). Target: ``glmmsim --version`` under
0.5 s on a quiet machine. ``python -X importtime -c "import glmmsim.model"`` shows where the
rest of the time goes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "glmmsim --version": [sys.executable, "-m", "glmmsim.cli", "--version"],
    "import glmmsim": [sys.executable, "-c", "import glmmsim"],
    "import glmmsim.model (pandas, formulaic, scipy.special)": [sys.executable, "-c", "import glmmsim.model"],
    "import glmmsim.design": [sys.executable, "-c", "import glmmsim.design"],
}


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(runs: int = 7) -> None:
    base = None
    for name, cmd in COMMANDS.items():
        t = wall(cmd, runs)
        base = base or t
        print(f"{name:58s} {t:6.3f} s   {t / base:5.1f}x python")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
