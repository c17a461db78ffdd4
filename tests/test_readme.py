"""Every Python example in the README runs, in order, as a reader would paste them."""

import importlib.util
import io
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)

def _has_autora() -> bool:
    try:
        return importlib.util.find_spec("autora.experiment_runner.synthetic") is not None
    except ModuleNotFoundError:
        return False


HAS_AUTORA = _has_autora()


def test_readme_has_examples():
    assert len(BLOCKS) >= 10


def test_readme_examples_run(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = 0
    for number, code in enumerate(BLOCKS):
        if "glmmsim.autora" in code and not HAS_AUTORA:
            continue
        if "npartitions=" in code and importlib.util.find_spec("dask") is None:  # the [dask] extra
            continue
        try:
            exec(compile(code, f"README.md python block {number}", "exec"), namespace)
        except Exception as exc:  # report which block failed, with its first line
            pytest.fail(f"README python block {number} ({code.splitlines()[0]!r}) failed: {exc!r}")
        ran += 1
    assert ran >= 10


def _run_cli(args, tmp_path, monkeypatch) -> str:
    from glmmsim.cli import main

    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    assert main(args, stdout=out, stderr=io.StringIO()) == 0
    return out.getvalue()


def test_readme_shows_the_current_cli_output(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    summary = _run_cli(["simulate", "examples/stroop.yaml", "--out", str(tmp_path / "stroop.csv")], tmp_path, monkeypatch)
    assert summary.replace(str(tmp_path / "stroop.csv"), "stroop.csv") in readme
    assert _run_cli(["describe", "examples/stroop.yaml"], tmp_path, monkeypatch) in readme + "\n"
