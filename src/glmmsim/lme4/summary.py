"""Plain-text summaries of a model and its design: lme4's ``summary()`` layout, and study descriptions.

:func:`describe_study` (``glmmsim describe``) lays a simulation model out as lme4's
``summary()`` prints a fit: term order, names, family line. :func:`describe_model` and
:func:`describe_design` give the one-item-per-line descriptions that power and recovery
summaries carry, for a reader to paste.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import GlmmsimError
from ..model.formula import parse_formula
from ..model.names import categorical_levels, lme4_name
from .theta import lme4_terms

if TYPE_CHECKING:  # study sits beside lme4, not below it: a study is only read here, never imported
    from ..study.spec import Study

__all__ = ["describe_study", "group_counts", "describe_model", "describe_design"]


def describe_study(study: Study) -> str:
    """The model and design as text, laid out like lme4's summary of a fit.

    Random-effect terms come in lme4's order (decreasing number of levels in the
    design, see :func:`glmmsim.lme4.to_theta`) under lme4's factor names
    (``class:school`` for ``(1 | school/class)``); the family line is lme4's,
    absent for a gaussian model with identity link, as in ``summary(lmer(...))``.
    """
    model = study.model
    data = study.conditions()
    levels = categorical_levels(data)
    rows = _random_rows(model, data)
    family = _family_line(model)
    lines = [
        f"Simulation model (glmmsim {__version__}) from {study.source}",
        *([family] if family else []),
        f"Formula: {model.formula}",
        f" Design: {_design_text(study)}; seeds: {_seeds_text(study.seeds)}",
        "",
        "Random effects:",
        *_random_table(rows, _residual_sd(model.family), levels),
        f"Number of obs: {len(data)}, groups:  " + "; ".join(f"{f}, {n}" for f, n in _lme4_group_counts(study, data, rows)),
        "",
        "Fixed effects:",
        *_fixed_table(model, levels),
    ]
    return "\n".join(lines)


# families lme4 fits with glmer(family = ...); the summary line uses R's name (Family.r_name)
_LME4_FAMILIES = frozenset({"gaussian", "binomial", "poisson", "gamma", "inverse_gaussian"})


def _r_number(value: float) -> str:
    """``value`` as R's ``format()`` prints it (7 significant digits, no trailing zeros)."""
    return f"{value:.7g}"


def _family_line(model) -> str | None:
    """lme4's `` Family: binomial  ( logit )`` line; ``None`` where lme4 prints none (``lmer``).

    Families lme4 cannot fit get a line saying what the linear predictor and the
    Residual row of the table mean on their scale.
    """
    fam = model.family
    link = fam.link.name
    if fam.name == "gaussian" and link == "identity":
        return None
    if fam.name in _LME4_FAMILIES:
        return f" Family: {fam.r_name}  ( {link} )"
    if fam.name == "negative_binomial":  # glmer.nb: MASS names the family with theta rounded to 4 decimals
        return f" Family: Negative Binomial({_r_number(round(fam.params['theta'], 4))})  ( {link} )"
    y = model.response
    if fam.name == "shifted_lognormal":
        scale = f"log({y} - shift)"
        return (
            f" Family: shifted_lognormal (shift = {_r_number(fam.params['shift'])}; {link} link: "
            f"eta = mean of {scale}, Residual = SD of {scale})"
        )
    if fam.name == "lognormal":
        return f" Family: lognormal ({link} link: eta = mean of log({y}), Residual = SD of log({y}))"
    if fam.name == "exgaussian":
        return (
            f" Family: exgaussian (tau = {_r_number(fam.params['tau'])} = mean of the exponential part; "
            f"{link} link: eta = mean of the Gaussian part of {y}, Residual = its SD)"
        )
    return f" Family: {fam.describe()}"


def _residual_sd(family) -> float | None:
    """The Residual row's SD: lme4's ``sigma()`` (the CV of a Gamma, sqrt(dispersion) of an inverse Gaussian)."""
    params = family.params
    if "sigma" in params:  # includes Gamma, whose params list sigma = 1/sqrt(shape)
        return float(params["sigma"])
    if family.name == "inverse_gaussian":
        return float(np.sqrt(params["dispersion"]))
    return None


def _lme4_factor_name(group: str, depth: int) -> str:
    """lme4's name of the ``depth``-th factor of the written group ``a/b/c``: ``a``, ``b:a``, ``c:(b:a)``."""
    parts = group.split("/")
    name = parts[0]
    for j in range(1, depth + 1):
        name = f"{parts[j]}:{name}" if j == 1 else f"{parts[j]}:({name})"
    return name


def _unique_labels(names: Sequence[str]) -> list[str]:
    """R's ``make.unique``: repeated names get ``.1``, ``.2``, ... (lme4's ``g``, ``g.1`` for ``(x || g)``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = seen.get(name, 0)
        out.append(name if k == 0 else f"{name}.{k}")
        seen[name] = k + 1
    return out


def _random_rows(model, data: pd.DataFrame) -> list[tuple[str, str, object]]:
    """Per random-effect term in lme4's order: (lme4 factor name, glmmsim factor, covariance)."""
    bars = parse_formula(model.formula).bars
    out = []
    for term, cov in lme4_terms(model, data):
        bar_no, _, neg_depth = term.lme4_rank
        out.append((_lme4_factor_name(bars[bar_no].group, -neg_depth), term.factor, cov))
    return out


def _lme4_group_counts(study: Study, data: pd.DataFrame, rows: Sequence[tuple]) -> list[tuple[str, int]]:
    counts = group_counts(study, data)
    out: dict[str, int] = {}
    for name, factor, _ in rows:
        out.setdefault(name, counts[factor])
    return list(out.items())


def _seed_text(seed: object) -> str:
    if seed is None:
        return "none (fresh entropy: not reproducible)"
    if isinstance(seed, np.random.SeedSequence):
        if len(seed.spawn_key) == 1:
            return f"child {seed.spawn_key[0]} of {seed.entropy}"
        return f"SeedSequence({seed.entropy}, spawn_key={tuple(seed.spawn_key)})"
    return str(seed)


def _design_text(study: Study) -> str:
    """``crossed``, ``nested``, or ``file trials.csv`` for a trial list."""
    if study.design_type == "file":
        return f"file {study.design_args['path']}"
    return study.design_type


def _seeds_text(seeds: dict) -> str:
    """The seeds line; one root seed reads as ``42 (population, noise, design = SeedSequence(42).spawn(3))``.

    Examples
    --------
    >>> ss = [np.random.SeedSequence(42, spawn_key=(i,)) for i in range(3)]
    >>> _seeds_text(dict(zip(["population", "noise", "design"], ss)))
    '42 (population, noise, design = SeedSequence(42).spawn(3))'
    >>> _seeds_text({"population": ss[0], "noise": 5, "design": ss[2]})
    'population child 0 of 42, noise 5, design child 2 of 42'
    """
    values = list(seeds.values())
    derived = all(isinstance(v, np.random.SeedSequence) and len(v.spawn_key) == 1 for v in values)
    if derived and len({v.entropy for v in values}) == 1 and [v.spawn_key[0] for v in values] == list(range(len(values))):
        root = values[0].entropy
        return f"{root} ({', '.join(seeds)} = SeedSequence({root}).spawn({len(values)}))"
    return ", ".join(f"{k} {_seed_text(v)}" for k, v in seeds.items())


def _decimals(value: float, digits: int = 4) -> int:
    """Fewest decimals showing ``value`` to ``digits`` significant digits without trailing zeros."""
    if value == 0.0 or not np.isfinite(value):
        return 0
    full = max(digits - 1 - int(np.floor(np.log10(abs(value)))), 0)
    for d in range(full + 1):
        if round(value, d) == round(value, full):
            return d
    return full


def _column(values: Sequence[float]) -> list[str]:
    """Numbers formatted with one common number of decimals, like R's ``format(x, digits = 4)``."""
    d = max([_decimals(float(v)) for v in values] + [0])
    return [f"{float(v):.{d}f}" for v in values]


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append(" " + " ".join(cells).rstrip())
    return out


def _random_table(rows: Sequence[tuple], residual: float | None, levels: dict) -> list[str]:
    names: list[tuple[str, str, str]] = []
    sds: list[float] = []
    labels = _unique_labels([name for name, _, _ in rows])
    for label, (_, _, cov) in zip(labels, rows):
        for i, coef in enumerate(cov.coefs):
            corr_text = " ".join(f"{cov.corr[i, j]:5.2f}" for j in range(i)) if i else ""
            names.append((label if i == 0 else "", lme4_name(coef, levels), corr_text))
            sds.append(float(cov.sd[i]))
    if residual is not None:
        names.append(("Residual", "", ""))
        sds.append(residual)
    variances, stds = _column([s**2 for s in sds]), _column(sds)
    rows_out = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    rows_out += [[g, n, v, s, c] for (g, n, c), v, s in zip(names, variances, stds)]
    if not any(len(cov.coefs) > 1 for _, _, cov in rows):  # lme4 drops the column when no term has one
        rows_out = [r[:4] for r in rows_out]
    return _table(rows_out, right={2, 3})


def _fixed_table(model, levels: dict) -> list[str]:
    values = _column(list(model.fixed.values()))
    rows = [["", "Value"]] + [[lme4_name(c, levels), v] for c, v in zip(model.fixed, values)]
    return _table(rows, right={1})


def group_counts(study: Study, data: pd.DataFrame) -> dict[str, int]:
    """Number of levels of each grouping factor in ``data``."""
    model = study.model
    return {f: len(data[list(cols)].drop_duplicates()) for f, cols in model.factor_columns.items()}


# ------------------------------------------------- descriptions in study summaries


def _num(x: float) -> str:
    return f"{x:.4g}"


def describe_model(model: Any, conditions: pd.DataFrame) -> list[str]:
    """The formula, family and every parameter value of ``model``, one item per line."""
    family = model.family
    lines = [f"{model.formula}  [{family.describe()}]"]
    fixed = ", ".join(f"{k} = {_num(v)}" for k, v in model.fixed.items())
    lines.append(f"fixed effects: {fixed}")
    try:
        cov = model.covariance(conditions)
    except GlmmsimError:  # a description must not fail a finished study; a bug still surfaces
        cov = {}
    for factor, (coefs, sd, corr) in cov.items():
        parts = [f"SD({c}) = {_num(s)}" for c, s in zip(coefs, sd)]
        for i in range(len(coefs)):
            for j in range(i):
                if corr[i, j] != 0:
                    parts.append(f"corr({coefs[j]}, {coefs[i]}) = {_num(corr[i, j])}")
        lines.append(f"random effects of {factor}: " + ", ".join(parts))
    return lines  # the family's parameters are part of family.describe() on the first line


def describe_design(model: Any, conditions: pd.DataFrame, key: Sequence[str] | None) -> list[str]:
    """Rows, levels per grouping factor, the other label columns' levels, and the noise key."""
    counts = []
    for factor, cols in model.factor_columns.items():
        n = len(conditions[list(cols)].drop_duplicates())
        counts.append(f"{n} {factor}")
    line = f"{len(conditions)} rows" + (f": {', '.join(counts)}" if counts else "")
    lines = [line]
    grouping = {c for cols in model.factor_columns.values() for c in cols}
    for col in model.variables:
        if col in grouping or col not in conditions:
            continue
        values = conditions[col]
        if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or values.dtype.kind in "OSUb":
            levels = list(pd.unique(values))
            shown = ", ".join(map(str, levels[:6])) + (", ..." if len(levels) > 6 else "")
            lines.append(f"{col}: {len(levels)} levels ({shown})")
        elif np.issubdtype(values.dtype, np.number):
            lines.append(f"{col}: numeric, mean {_num(values.mean())}, SD {_num(values.std())}")
    if key:
        lines.append(f"noise keyed by {', '.join(key)} (common random numbers across designs)")
    return lines
