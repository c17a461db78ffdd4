"""What the planner exports: the YAML spec, a Python script, CSV tables, the figure.

The spec is what ``glmmsim power SPEC`` reads, so the command reproduces the page's
numbers with the same seed. The script does the same through the Python API
(:func:`glmmsim.study.load_spec` per point and :func:`glmmsim.power_curve`), so that
a reader sees the whole analysis in a dozen lines.

Examples
--------
>>> from glmmsim.app.study_form import example_form, check_form
>>> spec = check_form(example_form()).spec
>>> text = spec_yaml(spec)
>>> text.splitlines()[0]
'# glmmsim study spec written by the power planner (glmmsim app)'
>>> "power_curve" in python_script(spec)
True
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pandas as pd
import yaml

from .. import __version__

__all__ = ["spec_yaml", "python_script", "table_csv", "figure_bytes", "curve_figure"]


def spec_yaml(spec: Mapping[str, Any]) -> str:
    """The spec as YAML text, with a header saying how to run it."""
    along = (spec.get("power") or {}).get("along") or {}
    head = [
        "# glmmsim study spec written by the power planner (glmmsim app)",
        f"# glmmsim {__version__}. Reproduce the page's numbers with:",
        "#   glmmsim power THIS_FILE" + (" --out curve.csv --plot curve.png" if along else ""),
    ]
    if (spec.get("design") or {}).get("type") == "file":
        head.append(f"# the trial list {spec['design']['path']!r} must sit beside this file")
    body = yaml.safe_dump(_plain(spec), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    return "\n".join(head) + "\n" + body


def _plain(value: Any) -> Any:
    """Plain Python values (YAML has no tuples or numpy scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def python_script(spec: Mapping[str, Any], spec_file: str = "study.yaml") -> str:
    """A script that runs the same analysis through the Python API (reads ``spec_file``)."""
    power = dict(spec.get("power") or {})
    along = dict(power.pop("along", None) or {})
    target = power.pop("target", 0.8)
    args = ", ".join(f"{k}={v!r}" for k, v in power.items())
    lines = [
        f'"""Power analysis written by the glmmsim power planner (glmmsim {__version__}).',
        "",
        f"The study is {spec_file}, written beside this script; `glmmsim power {spec_file}` gives the same table.",
        '"""',
        "import glmmsim",
        "from glmmsim.study import load_spec",
        "",
        f"SPEC = {spec_file!r}",
        "",
    ]
    if not along:
        lines += [
            "study = load_spec(SPEC)",
            f"result = glmmsim.power(study.model, study.conditions(), {args})",
            "print(result)            # the summary for a preregistration",
            "result.table.reset_index().to_csv('power.csv', index=False)",
        ]
        return "\n".join(lines) + "\n"
    names = {p: p.split(".")[-1] for p in along}
    lines += [
        f"ALONG = {dict(along)!r}",
        f"NAMES = {names!r}   # spec path -> the table's column",
        "",
        "",
        "def point(**values):",
        '    """The study at one point of the curve: the spec with the along values set."""',
        "    paths = {name: path for path, name in NAMES.items()}",
        "    return load_spec(SPEC, overrides=[('--along', f'{paths[n]}={v}') for n, v in values.items()])",
        "",
        "",
        "if __name__ == '__main__':",
        "    curve = glmmsim.power_curve(",
        "        lambda **v: point(**v).model,",
        "        lambda **v: point(**v).conditions(),",
        "        along={NAMES[p]: values for p, values in ALONG.items()},",
        f"        {args},",
        "    )",
        "    print(curve)",
        f"    print(curve.smallest({target!r}))   # the smallest design reaching the target",
        "    curve.table.to_csv('curve.csv', index=False)",
        f"    curve.plot(target={target!r}).figure.savefig('curve.png', dpi=150)",
    ]
    return "\n".join(lines) + "\n"


def table_csv(table: pd.DataFrame) -> str:
    """A table as CSV text, as ``glmmsim power --out`` writes it."""
    return table.to_csv(index=False)


def curve_figure(table: pd.DataFrame, along: list[str], tests: list[str], target: float, alpha: float,
                 layout: str = "constrained"):
    """The power curve (95% band, target line) as a matplotlib Figure, or intervals for one design.

    ``layout="tight"`` for the page (Shiny lays figures out itself).
    """
    from matplotlib.figure import Figure

    from ..plot.study_plots import plot_power_curve

    fig = Figure(figsize=(6.4, 4.0), layout=layout)
    ax = fig.add_subplot()
    rows = table if "test" not in table or not along else table[table["test"] == tests[0]]
    if along and len(rows):
        plot_power_curve(rows, along=along, target=target, ax=ax,
                         title=f"Power of {tests[0] if tests else ''} (alpha = {alpha:g})")
    elif len(rows):
        ax.errorbar(range(len(rows)), rows["power"], yerr=[rows["power"] - rows["ci_low"], rows["ci_high"] - rows["power"]],
                    fmt="o", capsize=4)
        ax.set_xticks(range(len(rows)), [str(t) for t in rows.get("test", tests)])
        ax.axhline(target, color="0.3", linestyle="--", linewidth=1)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("power (95% CI)")
    return fig


def figure_bytes(fig: Any, fmt: str) -> bytes:
    """A figure as PNG or SVG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150 if fmt == "png" else None)
    return buf.getvalue()
