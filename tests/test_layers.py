"""Dependencies point one way: errors, randomness <- model <- design, lme4, study, plot, fit <- analysis <- cli, app.

Only imports that run when a module is imported are checked: an import inside a
function (``Model.plot`` drawing through the plot layer) or under ``TYPE_CHECKING``
creates no import-time dependency.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "glmmsim"

# layer of each top-level module or subpackage of glmmsim; a module imports only lower layers
RANK = {
    "errors": 0,
    "randomness": 1, "limits": 1, "outputs": 1, "execution": 1,  # execution is generic: errors only
    "model": 2,
    "design": 3, "lme4": 3, "study": 3, "plot": 3, "fit": 3,
    "analysis": 4, "autora": 4, "dask": 4,  # Dask support builds on model, design and execution
    "cli": 5, "app": 5,  # the planner sits on top, beside the command line
}
# sideways imports within a layer that are part of the design: a study spec builds a design
SIDEWAYS = {("study", "design")}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_imports(path: Path) -> list[str]:
    """glmmsim modules imported at module level (not in functions, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out: list[str] = []

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                visit([n for field in ("body", "orelse", "finalbody", "handlers") for n in getattr(node, field, [])])
            elif isinstance(node, ast.ExceptHandler):
                visit(node.body)
            elif isinstance(node, ast.Import):
                out.extend(a.name for a in node.names if a.name.startswith("glmmsim"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("glmmsim"):
                    names = [f"{target}.{a.name}" if target == "glmmsim" else target for a in node.names]
                    out.extend(names)

    visit(tree.body)
    return out


# the package root is the lazy public facade over every layer
MODULES = sorted(p for p in SRC.rglob("*.py") if p != SRC / "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layers(path):
    here = _layer(_module_name(path))
    wrong = []
    for target in _import_time_imports(path):
        there = _layer(target)
        if there == here or there not in RANK or (here, there) in SIDEWAYS:
            continue
        if RANK[there] >= RANK[here]:
            wrong.append(target)
    assert not wrong, f"{_module_name(path)} (layer {here}) imports {wrong} at import time"
