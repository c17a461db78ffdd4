"""The planner in a real browser: the app in a subprocess on a free port, Debian's Chromium via Playwright.

The tests skip when shiny, playwright or Chromium is missing, unless
``GLMMSIM_REQUIRE_BROWSER=1`` (CI) makes them fail. Playwright drives the system
Chromium (``/usr/bin/chromium``): no browser is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .._gates import REQUIRE_BROWSER, skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "img" / "app"


def chromium() -> str:
    """The browser to drive: $GLMMSIM_CHROMIUM, else chromium on PATH (looked up when a test needs it)."""
    return os.environ.get("GLMMSIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _missing() -> str | None:
    for module in ("shiny", "playwright"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install '.[app]' playwright)"
    if not os.path.exists(chromium()):
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="session")
def browser_ready():
    """Skips the browser tests without shiny, Playwright or Chromium (fails them under GLMMSIM_REQUIRE_BROWSER=1)."""
    skip_or_fail(REQUIRE_BROWSER, _missing())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, env: dict | None = None) -> subprocess.Popen:
    """``glmmsim app --no-browser`` on ``port``, waited for until it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmmsim.cli", "app", "--host", "127.0.0.1", "--port", str(port), "--no-browser"],
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the app did not answer within 90 s")


@pytest.fixture(scope="session")
def app_url(browser_ready):
    port = free_port()
    proc = start_app(port)
    yield f"http://127.0.0.1:{port}/", proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def chromium_browser(browser_ready):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def planner(chromium_browser, app_url):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(app_url[0])
    pg.wait_for_selector("#param_inputs input")
    yield pg
    context.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
