"""The power planner under load: a 5-point curve x 500 replicates on one core, and clicks meanwhile.

The issue's scenario: the README's model (``examples/power.yaml``: 600 ms, a 20 ms effect,
correlated by-subject slopes, by-item intercepts) at 20, 30, 40, 50 and 60 subjects x 20
items, 500 replicates per point, Satterthwaite t tests. The app (server and its worker
process) is pinned to one core; headless Chromium (Debian's, via Playwright) drives it.

Measured in the same run:

* the run's wall time in the page (click on Run -> "done"), once untouched and once while the
  page is being used, against the target of 30 s and against the same curve run by
  ``glmmsim power`` on the page's exported spec on the same core at the workers' priority
  (the reference: the app's overhead is the ratio);
* the page's answer time while the run goes on: a design field is changed and the time until
  the server's design summary shows the new size is taken, against the same round trip
  with the app idle.

Usage: ``python benchmarks/bench_app.py [--nsim 500] [--core 0]`` (needs the app extra,
playwright and /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "app"))

from conftest import CHROMIUM, free_port, start_app  # noqa: E402  (the tests' app starter)


def _pin(core: int):
    """One core and the app's workers' priority (nice 10), so the command is measured as the page runs it."""

    def setup() -> None:
        os.sched_setaffinity(0, {core})
        os.nice(10)

    return setup


def run_once(page, clicks: bool) -> tuple[float, list[float]]:
    """Seconds from Run to done, and the round trips measured meanwhile (every 0.5 s when ``clicks``)."""
    start = time.perf_counter()
    page.click("#run")
    page.wait_for_selector("#run_text[data-status=running]")
    busy: list[float] = []
    n = 0
    while page.get_attribute("#run_text", "data-status") == "running":
        if clicks:
            busy.append(round_trip(page, 31 + n % 5))
            n += 1
        time.sleep(0.5 if clicks else 0.1)
    page.wait_for_selector("#run_text[data-status=done]")
    return time.perf_counter() - start, busy


def round_trip(page, subjects: int) -> float:
    """Seconds from typing a subject count to the server's design summary showing it."""
    rows = f"{subjects * 40:,} rows"
    start = time.perf_counter()
    page.fill("#subjects", str(subjects))
    page.wait_for_function(f"() => document.querySelector('#design_summary').innerText.includes('{rows}')",
                           timeout=60_000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nsim", type=int, default=500)
    parser.add_argument("--core", type=int, default=0, help="the one core the app runs on")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT / "src"))}
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {args.core})  # the app and its worker processes inherit the one core
    try:
        proc = start_app(port, env)
    finally:
        os.sched_setaffinity(0, old)
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.set_default_timeout(600_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#param_inputs input")
            page.fill("#nsim", str(args.nsim))
            page.fill("#values1", "20, 30, 40, 50, 60")
            time.sleep(1)
            idle = [round_trip(page, s) for s in (31, 32, 33, 34, 35, 30)]

            quiet, _ = run_once(page, clicks=False)
            wall, busy = run_once(page, clicks=True)
            with page.expect_download() as info:
                page.click("#dl_spec")
            spec = os.path.join(tmp, "study.yaml")
            info.value.save_as(spec)
            browser.close()

            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "glmmsim.cli", "power", spec, "-q", "--out",
                            os.path.join(tmp, "cli.csv")], check=True, preexec_fn=_pin(args.core),
                           env={**os.environ, **env}, stdout=subprocess.DEVNULL)
            cli = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    total = 5 * args.nsim
    print(f"5-point curve x {args.nsim} replicates ({total} fits) on core {args.core}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"  in the page, no clicks (Run -> done):     {quiet:6.1f} s   target < 30 s: {'yes' if quiet < 30 else 'NO'}")
    print(f"  in the page, a change every 0.5 s:        {wall:6.1f} s")
    print(f"  glmmsim power on the same spec, nice 10:  {cli:6.1f} s   (reference, includes start-up)")
    print(f"  ratio page (no clicks) / command:         {quiet / cli:6.2f}")
    print(f"  per replicate in the page (no clicks):    {1000 * quiet / total:6.2f} ms")
    print("page round trip (type a subject count -> server's design summary updated):")
    print(f"  idle:        median {1000 * statistics.median(idle):5.0f} ms, max {1000 * max(idle):5.0f} ms "
          f"({len(idle)} tries)")
    if busy:
        print(f"  during run:  median {1000 * statistics.median(busy):5.0f} ms, max {1000 * max(busy):5.0f} ms "
              f"({len(busy)} tries)")
        print(f"  ratio during / idle (median):      {statistics.median(busy) / statistics.median(idle):6.2f}")


if __name__ == "__main__":
    main()
