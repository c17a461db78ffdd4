"""The documentation's examples run: README and docs pages, their shown outputs and CLI transcripts.

The tutorials (MyST notebooks, ``file_format: mystnb``) are executed by the documentation build
(``nox -s docs``). Every other page's ```python blocks run here, in order, one namespace per page,
as a reader would paste them; a ``# `` comment right under a top-level ``print(...)`` is output
the code must still print. A ```text block whose first line is ``$ glmmsim ...`` is a transcript:
the command runs and must print the rest of the block. Every public name has a reference page.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from ._gates import require_r

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
PYTHON = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
TRANSCRIPT = re.compile(r"^```text\n\$ (glmmsim .*?)\n(.*?)^```", flags=re.S | re.M)


def _executed_by_the_build(page: Path) -> bool:
    return page.read_text().startswith("---\nfile_format: mystnb")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


HAS_AUTORA = _has("autora.experiment_runner.synthetic")
HAS_DASK = _has("dask") and _has("distributed")


PLAIN_PAGES = [p for p in PAGES if not _executed_by_the_build(p) and PYTHON.search(p.read_text())]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture
def in_scratch(tmp_path, monkeypatch):
    """A scratch directory holding a copy of examples/: paths read as from the repository root."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_pages_are_found():
    names = {_name(p) for p in PLAIN_PAGES}
    assert {"README.md", "docs/howto/models.md", "docs/howto/coming-from-simr.md"} <= names
    shown = [s for p in PLAIN_PAGES for code in PYTHON.findall(p.read_text()) for s in _shown_outputs(code)]
    assert any("lme4_name" in s for s in shown)
    assert any("subjects for 80% power" in s for s in shown)


def test_executed_pages_hold_no_unexecuted_python():
    """A tutorial's Python is a {code-cell}, which the build runs; a ```python block would not run."""
    for page in PAGES:
        if _executed_by_the_build(page):
            assert not PYTHON.search(page.read_text()), f"{_name(page)}: use a code-cell, not a python block"


@pytest.mark.parametrize("page", PLAIN_PAGES, ids=_name)
def test_python_blocks_run_and_print_what_they_show(page, in_scratch):
    namespace: dict = {}
    for number, code in enumerate(PYTHON.findall(page.read_text())):
        if "glmmsim.autora" in code and not HAS_AUTORA:
            pytest.skip("the autora extra is not installed")
        if ("npartitions=" in code or "import dask" in code) and not HAS_DASK:
            pytest.skip("the dask extra is not installed")
        if 'engine="lme4"' in code:
            require_r()  # skips the page without R, fails it under GLMMSIM_REQUIRE_R=1
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(code, f"{_name(page)} python block {number}", "exec"), namespace)
        except Exception as exc:  # say which block failed, with its first line
            pytest.fail(f"{_name(page)} python block {number} ({code.splitlines()[0]!r}) failed: {exc!r}")
        for shown in _shown_outputs(code):
            assert _words(shown) in _words(printed.getvalue()), (
                f"{_name(page)} python block {number} shows output that the code no longer prints:\n{shown}")


TRANSCRIPTS = [(page, command, output) for page in PAGES for command, output in TRANSCRIPT.findall(page.read_text())]


def test_transcripts_are_found():
    commands = {command.split()[1] for _, command, _ in TRANSCRIPTS}
    assert {"simulate", "describe", "power", "recover"} <= commands


@pytest.mark.slow
@pytest.mark.parametrize("page, command, output", TRANSCRIPTS,
                         ids=[f"{_name(p)}: {c[:60]}" for p, c, _ in TRANSCRIPTS])
def test_transcripts_print_what_they_show(page, command, output, in_scratch):
    """`$ glmmsim ...` blocks: the command prints the block's text (a few seconds each)."""
    from glmmsim.cli import main

    out = io.StringIO()
    assert main(shlex.split(command)[1:], stdout=out, stderr=io.StringIO()) == 0
    printed = out.getvalue().replace(f"{in_scratch}/", "")
    if not _NUMPY_2:
        # the lmm engine's optimizer (NLopt 2.11 on numpy 2, 2.7 on numpy 1.x) and BLAS stop at
        # optima equal to ~1e-4 relative, not bit for bit: the numpy 1.x line compares numbers so
        printed, output = _version_free(printed), _version_free(output)
        assert _numbers_close(printed, output), f"{printed}\n!=\n{output}"
        return
    assert printed == output


_NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


def _version_free(text: str) -> str:
    return re.sub(r"(nlopt|glmm) \d+(\.\d+)+", r"\1 <version>", text)


def _numbers_close(printed: str, shown: str, rel: float = 1e-3, abs_: float = 1e-4) -> bool:
    """Same words, and numbers equal to ``rel`` relative (or ``abs_`` absolute) tolerance."""
    a, b = printed.split(), shown.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        try:
            fx, fy = float(x.rstrip("%,)")), float(y.rstrip("%,)"))
        except ValueError:
            return False
        if abs(fx - fy) > max(abs_, rel * max(abs(fx), abs(fy))):
            return False
    return True


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


def test_readme_is_short_and_its_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10 * 1024
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert len(local) >= 10
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


# -- the API reference ---------------------------------------------------------------------------

PUBLIC_MODULES = ["glmmsim", "glmmsim.model", "glmmsim.design", "glmmsim.fit", "glmmsim.analysis", "glmmsim.study",
                  "glmmsim.plot", "glmmsim.lme4", "glmmsim.randomness", "glmmsim.errors", "glmmsim.limits",
                  "glmmsim.execution", "glmmsim.dask", "glmmsim.cli", "glmmsim.autora"]


def _documented() -> set[str]:
    """Full names listed in the reference pages' autosummary tables."""
    names = set()
    for page in (DOCS / "reference").glob("*.rst"):
        text = page.read_text()
        module = re.search(r"^\.\. currentmodule:: (\S+)", text, flags=re.M)
        for block in re.findall(r"^\.\. autosummary::\n((?:   .*\n|\n)*)", text, flags=re.M):
            for line in block.splitlines():
                entry = line.strip()
                if entry and not entry.startswith(":"):
                    names.add(f"{module.group(1)}.{entry}" if module else entry)
    return names


def test_every_public_name_has_a_reference_page():
    documented = _documented()
    missing = []
    for module_name in PUBLIC_MODULES:
        if module_name == "glmmsim.autora":  # importable only with the autora extra: check by name
            source = (ROOT / "src/glmmsim/autora/__init__.py").read_text()
            public = re.search(r"__all__ = \[(.*?)\]", source, flags=re.S).group(1)
            names = re.findall(r"\"(\w+)\"", public)
            missing += [f"{module_name}.{n}" for n in names if f"{module_name}.{n}" not in documented]
            continue
        if module_name == "glmmsim.dask" and not HAS_DASK:
            continue
        module = importlib.import_module(module_name)
        for name in module.__all__:
            full = f"{module_name}.{name}"
            top = f"glmmsim.{name}"
            obj = getattr(module, name)
            if isinstance(obj, type(importlib)):  # a subpackage has a page of its own
                assert (DOCS / "reference" / f"{name}.rst").exists(), name
                continue
            if full in documented or (top in documented and getattr(importlib.import_module("glmmsim"), name, None) is obj):
                continue
            missing.append(full)
    assert not missing, f"public names without a reference page: {missing}"


def test_the_site_link_checker_finds_missing_pages_and_anchors(tmp_path):
    """docs/_tools/check_links.py, which nox -s docs runs on the built site."""
    spec = importlib.util.spec_from_file_location("check_links", DOCS / "_tools" / "check_links.py")
    check_links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_links)
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#there">ok</a> <a href="sub/page.html#gone">anchor</a> '
        '<a href="missing.html">page</a> <a href="https://example.org/x">other site</a> <p id="top"></p>')
    (tmp_path / "sub" / "page.html").write_text('<h1 id="there">t</h1><a href="../index.html#top">up</a>')
    assert sorted(check_links.broken_links(tmp_path)) == [
        "index.html: missing.html (no such file)",
        "index.html: sub/page.html#gone (no such anchor)",
    ]
    assert check_links.main(["check_links", str(tmp_path)]) == 1
