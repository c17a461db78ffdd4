"""Sphinx configuration of the glmmsim documentation site.

Built by ``python3 -m nox -s docs`` with warnings as errors and nitpicky cross-references:
a reference to a name that has no page fails the build. Tutorials are MyST notebooks that
myst-nb executes on every build (nothing is cached between builds), so their outputs and
figures are always those of the current code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # document the sources beside this file, not an older install

import glmmsim  # noqa: E402  (after the path is set)

project = "glmmsim"
author = "the glmmsim authors"
copyright = "the glmmsim authors, MIT licence"
release = glmmsim.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",
    "sphinx_copybutton",
]

exclude_patterns = ["_build", "_tools", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
root_doc = "index"

# -- cross-references: every reference must resolve ----------------------------------------
nitpicky = True
# Names of other projects: without network there is no intersphinx inventory to resolve them,
# so references into numpy, pandas, dask, matplotlib, the standard library and typing are
# rendered as text. References to glmmsim's own names are still checked.
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|pd|pandas|dask|dd|distributed|matplotlib|mpl|scipy|formulaic|yaml|glmm|autora|sklearn|concurrent|collections|typing|typing_extensions|os|pathlib|io|types|argparse|contextlib|enum|abc|numbers|datetime|ast|pickle|hashlib|functools|itertools|multiprocessing|warnings|math|sys|re|dataclasses|struct|subprocess|tempfile|shutil|signal|threading|weakref)(\..*)?"),
    (r"py:.*", r"(int|float|str|bytes|bool|object|None|dict|list|tuple|set|frozenset|type|callable|Callable|Any|Iterable|Iterator|Sequence|Mapping|MutableMapping|Hashable|Generator|Literal|Union|Optional|Self|TypeAlias|PathLike|TextIO|BinaryIO|Path|ValueError|TypeError|KeyError|Exception|Warning|UserWarning|RuntimeError|OSError|ImportError|AttributeError|KeyboardInterrupt|NotImplementedError|array[-_]like|ArrayLike|NDArray|DataFrame|Series|Index|ndarray|Figure|Axes|Executor|Future|Client|SeedSequence|Generator|ModuleType|optional|default)"),
    (r"py:.*", r".*\.(T|P|K|V)$"),  # type variables
]

# -- API reference ----------------------------------------------------------------------------
# the package pages (explicitly: with myst-nb loaded, autosummary does not scan .rst sources itself)
autosummary_generate = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs" / "reference").glob("*.rst"))
autosummary_imported_members = True
autodoc_default_options = {"members": True, "member-order": "bysource"}
# Types are given in the numpydoc "Parameters" sections; signatures show names and defaults
# (as numpy, pandas and xarray do), so private type aliases never appear as broken links.
autodoc_typehints = "none"
autodoc_mock_imports = ["autora"]  # the autora extra pins numpy < 2; its API is documented without it
numpydoc_show_class_members = False  # autodoc documents the members themselves
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# -- MyST and executed notebooks -------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # every build runs every tutorial: outputs are never stale
nb_execution_raise_on_error = True
nb_execution_timeout = 600
nb_execution_in_temp = False
nb_merge_streams = True
nb_execution_show_tb = True

# -- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"glmmsim {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False

# Links inside the site are checked after the build by _tools/check_links.py (nox -s docs).
# For `-b linkcheck` by hand: there is no network in CI, so links to other sites are skipped.
linkcheck_ignore = [r"https?://.*", r"mailto:.*"]


def _resolve_short_names(app, env, node, contnode):
    """Resolve a docstring's short reference (``:class:`BoundModel```) to the one documented name.

    Docstrings name their neighbours without the package path (``power`` in
    ``glmmsim.analysis``), and Sphinx only searches the current module and the top level. A
    short name that ends exactly one documented object's full name is linked to it; an
    ambiguous or unknown one is left to fail the nitpicky build.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    if not target:
        return None
    domain = env.get_domain("py")
    same = _documented_as(domain, target)
    if same is not None:
        obj = domain.objects[same]
        from sphinx.util.nodes import make_refnode

        return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, same)
    suffix = "." + target
    matches = sorted({name for name, obj in domain.objects.items() if name.endswith(suffix) and not obj.aliased})
    # prefer the public spelling: the shortest full name (glmmsim.Model over glmmsim.model.model.Model)
    if not matches:
        return None
    shortest = min(len(name) for name in matches)
    best = [name for name in matches if len(name) == shortest]
    if len(best) != 1:
        return None
    name = best[0]
    obj = domain.objects[name]
    from sphinx.util.nodes import make_refnode

    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, name)


def _documented_as(domain, target: str) -> str | None:
    """The documented name of the object a full glmmsim path names (``glmmsim.lme4.to_theta``).

    A re-exported name is documented once, where users import it from (``glmmsim.to_theta``);
    a reference by its package path is linked there when both names are the same object.
    """
    if not target.startswith("glmmsim.") or target in domain.objects:
        return None
    obj = _import(target)
    if obj is None:
        return None
    last = target.rsplit(".", 1)[-1]
    for name in domain.objects:
        if name.rsplit(".", 1)[-1] == last and name != target and _import(name) is obj:
            return name
    return None


def _import(path: str):
    """The object at a dotted path, or None."""
    import importlib

    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


def _constant_docs(app, what, name, obj, options, lines):
    """A re-exported constant's ``#:`` comment from the module that defines it.

    autodoc looks for the comment in the module a name is documented under (``glmmsim.fit``),
    not where it is written (``glmmsim.fit.significance``), and would show the docstring of
    ``dict`` or ``int`` instead.
    """
    if what not in ("data", "attribute") or not name.startswith("glmmsim."):
        return
    from sphinx.pycode import ModuleAnalyzer

    attr = name.rsplit(".", 1)[-1]
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("glmmsim") or getattr(module, attr, None) is not obj:
            continue
        try:
            comment = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attr))
        except Exception:  # a module without source: keep what autodoc found
            continue
        if comment:
            lines[:] = list(comment)
            return


def setup(app):
    app.connect("missing-reference", _resolve_short_names)
    app.connect("autodoc-process-docstring", _constant_docs, priority=400)
