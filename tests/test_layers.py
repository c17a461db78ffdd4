"""Dependencies point one way: errors <- randomness <- model <- design, fit, ... <- analysis, dask <- cli, app.

Every import of a glmmsim module is checked, at module level and inside functions (a lazy
import is still a dependency): a module imports only lower layers, or its own. An import
under ``TYPE_CHECKING`` creates no dependency. An upward import is allowed only where the
import line, or the comment line right above it, says why with ``layering:``
(``Model.simulate`` hands a Dask DataFrame to :mod:`glmmsim.dask`, for example).

Every module also says what it is: its docstring's first line names its concept.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "glmmsim"

# layer of each top-level module or subpackage of glmmsim; a module imports only lower layers
RANK = {
    "errors": 0, "interrupts": 0,
    "randomness": 1, "limits": 1, "outputs": 1, "execution": 1,  # execution is generic: errors only
    "model": 2,
    "design": 3, "lme4": 3, "study": 3, "plot": 3, "fit": 3,
    "analysis": 4, "autora": 4, "dask": 4,  # Dask support builds on model, design and execution
    "cli": 5, "app": 5,  # the planner sits on top, beside the command line
}
# sideways imports within a layer that are part of the design: a study spec builds a design
SIDEWAYS = {("study", "design")}
#: The comment that makes an upward import deliberate; it must say why.
WHY = "layering:"


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(glmmsim module, line) of every import in ``path`` outside ``TYPE_CHECKING`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    skipped: set[int] = set()  # ids of import nodes under `if TYPE_CHECKING:`
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for part in node.body for n in ast.walk(part))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names if a.name.startswith("glmmsim"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("glmmsim"):
                names = [f"{target}.{a.name}" if target == "glmmsim" else target for a in node.names]
                out.extend((name, node.lineno) for name in names)
    return out


def _explained(lines: list[str], lineno: int) -> bool:
    """Whether the import at ``lineno`` (1-based) or the line above it carries a ``layering:`` comment."""
    here = lines[lineno - 1]
    above = lines[lineno - 2].strip() if lineno >= 2 else ""
    return ("#" in here and WHY in here.split("#", 1)[1]) or (above.startswith("#") and WHY in above)


def _upward_imports(path: Path) -> list[tuple[str, int]]:
    """Imports of ``path`` that point up (or sideways outside SIDEWAYS), explained or not."""
    here = _layer(_module_name(path))
    wrong = []
    for target, lineno in _imports(path):
        there = _layer(target)
        if there == here or there not in RANK or (here, there) in SIDEWAYS:
            continue
        if RANK[there] >= RANK[here]:
            wrong.append((target, lineno))
    return wrong


# the package root is the lazy public facade over every layer
MODULES = sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layers(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    wrong = [f"{target} (line {lineno})" for target, lineno in _upward_imports(path) if not _explained(lines, lineno)]
    assert not wrong, (
        f"{_module_name(path)} (layer {_layer(_module_name(path))}) imports {wrong} from a higher layer; "
        f"import it the other way round, or say why on the line above with a '# {WHY} ...' comment"
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_upward_imports_say_why(path):
    """A ``layering:`` comment explains: it has words after the marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for target, lineno in _upward_imports(path):
        for line in (lines[lineno - 1], lines[lineno - 2] if lineno >= 2 else ""):
            if WHY in line:
                reason = line.split(WHY, 1)[1].strip()
                assert len(reason.split()) >= 3, f"{path.name}:{lineno}: say why {target} is imported upward"


def test_every_layer_is_registered():
    """A new package or top-level module gets its place in RANK (here) before anything imports it."""
    tops = {p.stem if p.suffix == ".py" else p.name for p in SRC.iterdir()
            if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()}
    assert tops - set(RANK) == set(), f"register {sorted(tops - set(RANK))} in RANK"


@pytest.mark.parametrize("path", [*MODULES, SRC / "__init__.py"], ids=lambda p: str(p.relative_to(SRC)))
def test_every_module_names_its_concept_in_one_line(path):
    """A reader can name a module's concept from its docstring's first line: present, non-empty, one line."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
    assert docstring, f"{_module_name(path)} has no module docstring"
    lines = docstring.strip("\n").splitlines()
    assert lines[0].strip(), f"{_module_name(path)}: the docstring's first line is empty"
    assert len(lines) == 1 or not lines[1].strip(), (
        f"{_module_name(path)}: the docstring's summary runs over more than one line; "
        f"name the concept in one line, then a blank line"
    )


def test_the_checker_sees_lazy_imports_and_their_reasons(tmp_path, monkeypatch):
    """The check itself: an unexplained import inside a function fails, an explained one passes."""
    package = tmp_path / "glmmsim" / "model"
    package.mkdir(parents=True)
    (tmp_path / "glmmsim" / "__init__.py").write_text('"""Root."""\n')
    bad = package / "bad.py"
    bad.write_text('"""Bad."""\n\n\ndef f():\n    from ..cli import main\n    return main\n')
    good = package / "good.py"
    good.write_text('"""Good."""\n\n\ndef f():\n    # layering: the command line is above the model, needed here\n'
                    '    from ..cli import main\n    return main\n')
    typed = package / "typed.py"
    typed.write_text('"""Typed."""\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli import main\n')
    monkeypatch.setattr(f"{__name__}.SRC", tmp_path / "glmmsim")
    assert _upward_imports(bad) == [("glmmsim.cli", 5)]
    assert not _explained(bad.read_text().splitlines(), 5)
    assert _upward_imports(good) == [("glmmsim.cli", 6)]
    assert _explained(good.read_text().splitlines(), 6)
    assert _upward_imports(typed) == []
