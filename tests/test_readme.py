"""Every Python example in the README runs, in order, as a reader would paste them."""

import contextlib
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
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(code, f"README.md python block {number}", "exec"), namespace)
        except Exception as exc:  # report which block failed, with its first line
            pytest.fail(f"README python block {number} ({code.splitlines()[0]!r}) failed: {exc!r}")
        for shown in _shown_outputs(code):
            assert _words(shown) in _words(printed.getvalue()), (
                f"README python block {number} shows output that the code no longer prints:\n{shown}")
        ran += 1
    assert ran >= 10


def _shown_outputs(code: str) -> list[str]:
    """The outputs a block shows: runs of '# ' comment lines right below a top-level print(...) line."""
    shown, current, after_print = [], [], False
    for line in code.splitlines():
        if after_print and line.startswith("#"):
            current.append(line[2:])
            continue
        if current:
            shown.append("\n".join(current))
            current = []
        after_print = line.startswith("print(") and line.rstrip().endswith(")")
    if current:
        shown.append("\n".join(current))
    return shown


def _words(text: str) -> str:
    """Text with every run of whitespace made one space, so wrapped lists compare equal."""
    return " ".join(text.split())


def test_shown_outputs_are_found():
    """The output check above reads the README's output comments; it must find the known ones."""
    shown = [s for code in BLOCKS for s in _shown_outputs(code)]
    assert any("lme4_name" in s for s in shown)
    assert any("power at alpha 0.05 from 20 replicates" in s for s in shown)


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


def _readme_block_after(marker: str) -> str:
    """The ```text block following the line holding `marker` in the README."""
    readme = (ROOT / "README.md").read_text()
    rest = readme[readme.index(marker):]
    return re.search(r"```text\n(.*?)```", rest, flags=re.S).group(1)


def test_readme_shows_the_current_power_and_recovery_output(tmp_path, monkeypatch):
    """`glmmsim power` and `glmmsim recover` on examples/power.yaml print what the README shows (about 10 s)."""
    power = _run_cli(["power", "examples/power.yaml", "-q"], tmp_path, monkeypatch)
    assert power == _readme_block_after("glmmsim power examples/power.yaml\n")
    recover = _run_cli(["recover", "examples/power.yaml", "-q", "--out", str(tmp_path / "recovery.csv"),
                        "--plot", str(tmp_path / "recovery.png")], tmp_path, monkeypatch)
    assert recover.replace(f"{tmp_path}/", "") == _readme_block_after("glmmsim recover examples/power.yaml --out recovery.csv")
