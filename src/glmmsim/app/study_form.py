"""The planner's form as a study spec, and a spec as the form: the one translation of the app.

The page holds text (a formula, numbers typed into boxes, ``cond: a, b`` factor
lists). :func:`form_to_spec` turns it into the dictionary a YAML study spec holds
(``model:``, ``design:``, ``seeds:``, ``power:``), checking every piece with glmmsim
itself: the formula and parameters by building a :class:`glmmsim.Model`, the design by
calling :func:`glmmsim.design.crossed` or :func:`~glmmsim.design.nested` (whose row
limit applies), the work by :func:`glmmsim.limits.check_total_rows`. Each problem is a
:class:`FieldError` on the form field it is about, read from the error's attributes
(``path``, ``coefficient``), never from its message. :func:`spec_to_form` reads a spec
back into the form.

A parameter box takes a number in the model's units (ms, log-odds) or an effect size
that glmmsim's helpers (:mod:`glmmsim.analysis.effect_sizes`) convert: ``d=0.2``
(Cohen's d, times the total SD), ``OR=1.5`` (an odds ratio), and for the SDs and the
residual ``share=0.15`` (a share of the total variance) or ``icc=0.2`` (an intraclass
correlation of a random intercept).

Examples
--------
>>> form = example_form()
>>> spec, errors = form_to_spec(form)
>>> errors
{}
>>> spec["model"]["fixed"], spec["design"]["subjects"]
({'(Intercept)': 600.0, 'condb': 20.0}, 30)
>>> bad = {**form, "formula": "rt ~ cond + (1 + cond | subject"}
>>> form_to_spec(bad)[1]["formula"].path
('formula',)
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from ..analysis.tested_terms import choose_method
from ..analysis.effect_sizes import (
    coefficient_from_d,
    coefficient_from_odds_ratio,
    sds_from_icc,
    sds_from_proportions,
)
from ..design import crossed, nested
from ..errors import GlmmsimError, ParameterError, Where
from ..fit.protocol import resolve_engine
from .. import limits
from ..limits import check_total_rows
from ..model import Model
from ..model.parameters import check_number
from .parameters import Slot, model_slots, slot_for_error

__all__ = ["FieldError", "Checked", "form_to_spec", "check_form", "spec_to_form", "example_form", "along_choices",
           "parse_factors", "parse_values", "param_text", "MAX_POINTS", "MAX_NSIM", "DESIGN_FIELDS", "ANALYSIS_FIELDS"]

#: Most design points one run may have (a grid of two lists counts their product).
MAX_POINTS = 50
#: Most replicates per point the page accepts (the work is also bounded by rows: ``max_total_rows``).
MAX_NSIM = 100_000

DESIGN_FIELDS = ("design_type", "subjects", "items", "subject_name", "item_name", "within", "between_subjects",
                 "between_items", "repetitions", "units", "unit_between", "covariates", "trials_file")
ANALYSIS_FIELDS = ("test", "method", "alpha", "nsim", "engine", "failures", "target", "seed", "along1", "values1",
                   "along2", "values2")

# design arguments of glmmsim.design -> the form field that holds them
_DESIGN_ARGUMENT_FIELDS = {
    "subjects": "subjects", "items": "items", "within": "within", "between_subjects": "between_subjects",
    "between_items": "between_items", "repetitions": "repetitions", "subject": "subject_name", "item": "item_name",
    "levels": "units", "between": "unit_between", "covariates": "covariates", "path": "trials_file",
}
_MODEL_ARGUMENT_FIELDS = {"formula": "formula", "family": "family", "link": "link", "levels": "within",
                          "trials": "formula"}


@dataclass(frozen=True)
class FieldError:
    """A problem with one form field: glmmsim's message and the error's ``path``."""

    field: str
    message: str
    path: tuple = ()

    @classmethod
    def of(cls, field: str, exc: GlmmsimError) -> FieldError:
        return cls(field, " ".join(str(exc).split()), tuple(exc.path or ()))


@dataclass
class Checked:
    """What :func:`check_form` found: the spec, the slots, the design, the errors by field."""

    spec: dict | None
    slots: list[Slot]
    errors: dict[str, FieldError]
    conditions: pd.DataFrame | None = None
    converted: dict[str, float] | None = None  # slot key -> value in model units (for effect-size entries)


def example_form() -> dict[str, Any]:
    """The README's power question (``examples/power.yaml``) as a filled form."""
    return {
        "formula": "rt ~ cond + (1 + cond | subject) + (1 | item)",
        "family": "gaussian",
        "link": "",
        "params": {
            "fixed||(Intercept)": "600", "fixed||condb": "20",
            "sd|subject|(Intercept)": "60", "sd|subject|condb": "30", "corr|subject|(Intercept)|condb": "0.2",
            "sd|item|(Intercept)": "30", "family||sigma": "120",
        },
        "total_sd": "",
        "design_type": "crossed", "subjects": "30", "items": "20", "subject_name": "subject", "item_name": "item",
        "within": "cond: a, b", "between_subjects": "", "between_items": "", "repetitions": "1",
        "units": "school: 20; class: 3; pupil: 10", "unit_between": "", "covariates": "", "trials_file": None,
        "test": "condb", "method": "auto", "alpha": "0.05", "nsim": "200", "engine": "auto",
        "failures": "exclude", "target": "0.8", "seed": "1",
        "along1": "design.subjects", "values1": "20, 30, 40, 50, 60", "along2": "", "values2": "",
        "seeds": {"population": 1, "noise": 2, "design": 3},
    }


# --------------------------------------------------------------------------------------
# small parsers of the form's text fields
# --------------------------------------------------------------------------------------


def parse_factors(text: str, field: str) -> dict[str, list[str]]:
    """``"cond: a, b; freq: high, low"`` (or one factor a line) as ``{"cond": ["a", "b"], ...}``.

    Examples
    --------
    >>> parse_factors("cond: a, b\\nfreq: high, low", "within")
    {'cond': ['a', 'b'], 'freq': ['high', 'low']}
    """
    out: dict[str, list[str]] = {}
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        name, sep, levels = part.partition(":")
        values = [v.strip() for v in levels.split(",") if v.strip()]
        if not sep or not name.strip() or len(values) < 2:
            raise ParameterError(f"{field}: write each factor as 'name: level1, level2' (two levels or more); "
                                 f"got {part.strip()!r}", parameter=field)
        if len(set(values)) != len(values):
            raise ParameterError(f"{field}: factor {name.strip()!r} lists a level twice", parameter=field)
        out[name.strip()] = values
    return out


def parse_values(text: str, field: str) -> list[Any]:
    """``"20, 30, 40"`` as ``[20, 30, 40]`` (each value read as YAML, as ``--along`` reads it)."""
    values = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        try:
            values.append(yaml.safe_load(part.strip()))
        except yaml.YAMLError:
            raise ParameterError(f"{field}: {part.strip()!r} is not a number", parameter=field) from None
    if not values:
        raise ParameterError(f"{field}: give the values to vary, e.g. 20, 30, 40", parameter=field)
    return values


def _whole(text: Any, field: str, minimum: int = 1, maximum: int | None = None) -> int:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ParameterError(f"{field} must be a whole number >= {minimum}; got {text!r}", parameter=field) from None
    if not value.is_integer() or value < minimum or (maximum is not None and value > maximum):
        limit = f" and <= {maximum:,}" if maximum is not None else ""
        raise ParameterError(f"{field} must be a whole number >= {minimum}{limit}; got {text!r}", parameter=field)
    return int(value)


def _fraction(text: Any, field: str, upper: float = 1.0) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan
    if not 0 < value < upper:
        raise ParameterError(f"{field} must be a number between 0 and {upper:g}; got {text!r}", parameter=field)
    return value


def _units(text: str) -> dict[str, Any]:
    """``"school: 20; class: 2-4; pupil: 10"`` as nested()'s ``levels`` (a range is a (low, high) pair)."""
    out: dict[str, Any] = {}
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        name, sep, size = part.partition(":")
        size = size.strip()
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", size)
        if not sep or not name.strip() or not (size.isdigit() or match):
            raise ParameterError(f"units: write each level as 'name: count' or 'name: low-high'; got {part.strip()!r}",
                                 parameter="units")
        out[name.strip()] = [int(match.group(1)), int(match.group(2))] if match else int(size)
    if not out:
        raise ParameterError("units: give the nested levels, outermost first, e.g. 'school: 20; pupil: 10'",
                             parameter="units")
    return out


def _unit_between(text: str) -> dict[str, dict[str, list[str]]]:
    """``"school: treatment = control, program"`` as nested()'s ``between``."""
    out: dict[str, dict[str, list[str]]] = {}
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        unit, sep, rest = part.partition(":")
        if not sep or "=" not in rest:
            raise ParameterError(f"unit_between: write 'unit: factor = level1, level2'; got {part.strip()!r}",
                                 parameter="unit_between")
        factor, _, levels = rest.partition("=")
        found = parse_factors(f"{factor}: {levels}", "unit_between")
        out.setdefault(unit.strip(), {}).update(found)
    return out


def _covariates(text: str) -> dict[str, dict[str, Any]]:
    """``"age: subject normal 35 10; x: trial uniform 0 1"`` as the designs' ``covariates``."""
    params = {"normal": ("mean", "sd"), "uniform": ("low", "high"), "lognormal": ("meanlog", "sdlog"),
              "integers": ("low", "high")}
    out: dict[str, dict[str, Any]] = {}
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        name, sep, rest = part.partition(":")
        words = rest.split()
        if not sep or len(words) < 2 or words[1] not in params:
            raise ParameterError(f"covariates: write 'name: per dist a b' with per subject, item or trial and dist "
                                 f"one of {', '.join(params)}; got {part.strip()!r}", parameter="covariates")
        spec: dict[str, Any] = {"per": words[0], "dist": words[1]}
        for key, value in zip(params[words[1]], words[2:]):
            spec[key] = yaml.safe_load(value)
        out[name.strip()] = spec
    return out


# --------------------------------------------------------------------------------------
# parameters: numbers and effect sizes
# --------------------------------------------------------------------------------------

_ENTRY = re.compile(r"^\s*(?:(d|or|share|icc)\s*=\s*)?([-+0-9.eE]+)\s*$", re.IGNORECASE)


def _entry(text: str) -> tuple[str, float] | None:
    """``"20"`` -> ("value", 20.0); ``"d=0.2"`` -> ("d", 0.2); empty -> None."""
    if text is None or not str(text).strip():
        return None
    match = _ENTRY.match(str(text))
    if not match:
        raise ValueError(text)
    kind = (match.group(1) or "value").lower()
    return kind, float(match.group(2))


def param_text(slot: Slot, params: Mapping[str, str]) -> str:
    """The text typed for a slot, found under either spelling of its names (``Intercept``, ``cond[T.b]``).

    Examples
    --------
    >>> param_text(Slot("fixed", "", ("(Intercept)",), ("Intercept",)), {"fixed||Intercept": "600"})
    '600'
    """
    if slot.key in params:
        return params[slot.key]
    for key, text in params.items():
        kind, factor, *names = key.split("|")
        if kind == slot.kind and factor == slot.factor and len(names) == len(slot.names) and all(
                Slot(kind, factor, (n,)).matches(s) or slot.matches(n) for n, s in zip(names, slot.names)):
            return text
    return ""


def _convert(slots: list[Slot], texts: Mapping[str, str], family: str, total_sd: str,
             errors: dict[str, FieldError]) -> dict[str, float]:
    """Slot key -> value in model units; effect sizes go through glmmsim's helpers."""
    values: dict[str, float] = {}
    shares: dict[str, float] = {}
    iccs: dict[str, float] = {}
    latent = family == "binomial"
    total: float | None = None
    if str(total_sd or "").strip():
        try:
            total = float(total_sd)
        except ValueError:
            errors["total_sd"] = FieldError("total_sd", f"total SD must be a number; got {total_sd!r}", ("total_sd",))
    for slot in slots:
        field = slot.input_id
        try:
            entry = _entry(param_text(slot, texts))
        except ValueError:
            errors[field] = FieldError(field, f"{slot.label}: expected a number, or d=, OR=, share=, icc= and a "
                                              f"number; got {param_text(slot, texts)!r}", (slot.kind, *slot.names))
            continue
        if entry is None:
            continue
        kind, number = entry
        try:
            if kind == "value":
                values[slot.key] = number
            elif kind == "d" and slot.kind == "fixed":
                if total is None:
                    raise ParameterError("d= needs the total SD of one observation (the box above the parameters)",
                                         parameter="total_sd")
                values[slot.key] = coefficient_from_d(number, total)
            elif kind == "or" and slot.kind == "fixed":
                values[slot.key] = coefficient_from_odds_ratio(number)
            elif kind == "share" and (slot.kind == "sd" or slot.names == ("sigma",)):
                shares[slot.key] = number
            elif kind == "icc" and slot.kind == "sd" and slot.names[0] == "(Intercept)":
                iccs[slot.key] = number
            else:
                raise ParameterError(f"{kind}= does not apply to {slot.label}: d= and OR= are for fixed effects, "
                                     f"share= for SDs and sigma, icc= for random intercepts", parameter=slot.kind)
        except GlmmsimError as exc:
            errors[field] = FieldError.of(field, exc)
    by_key = {s.key: s for s in slots}
    if shares:
        _from_shares(shares, by_key, total, latent, values, errors)
    if iccs:
        _from_iccs(iccs, by_key, values, latent, errors)
    for key, value in values.items():
        slot = by_key[key]
        try:
            _check_range(slot, value)
        except GlmmsimError as exc:
            errors.setdefault(slot.input_id, FieldError.of(slot.input_id, exc))
    return values


def _check_range(slot: Slot, value: float) -> None:
    """An SD below 0 or a correlation outside [-1, 1], with the Model argument path it belongs to."""
    if slot.kind == "sd":
        check_number(value, Where.of("random", slot.factor, slot.names[0]), minimum=0.0)
    elif slot.kind == "corr":
        where = Where.of("random", slot.factor, "corr", ", ".join(slot.names))
        if not -1 <= check_number(value, where) <= 1:
            raise ParameterError.at(where, f"is a correlation: it must be between -1 and 1; got {value:g}")


def _from_shares(shares, by_key, total, latent, values, errors) -> None:
    sds = [k for k in shares if by_key[k].kind == "sd"]
    proportions: dict[str, Any] = {}
    for key in sds:
        slot = by_key[key]
        proportions.setdefault(slot.factor, {})[slot.names[0]] = shares[key]
    residual = [k for k in shares if by_key[k].kind == "family"]
    if residual:
        proportions["residual"] = shares[residual[0]]
    first = by_key[next(iter(shares))].input_id
    try:
        out = sds_from_proportions(proportions, total if total is not None else math.nan,
                                   family="binomial" if latent else "gaussian")
    except GlmmsimError as exc:
        errors[first] = FieldError.of(first, exc)
        return
    for key in sds:
        slot = by_key[key]
        values[key] = out["random"][slot.factor][slot.names[0]]
    if residual and out["sigma"] is not None:
        values[residual[0]] = out["sigma"]


def _from_iccs(iccs, by_key, values, latent, errors) -> None:
    sigma_key = "family||sigma"
    first = by_key[next(iter(iccs))].input_id
    try:
        if latent:
            out = sds_from_icc({by_key[k].factor: v for k, v in iccs.items()}, family="binomial")
        else:
            if sigma_key not in values:
                raise ParameterError("icc= needs sigma as a number (the residual SD sets the scale)", parameter="sigma")
            out = sds_from_icc({by_key[k].factor: v for k, v in iccs.items()}, sigma=values[sigma_key])
    except GlmmsimError as exc:
        errors[first] = FieldError.of(first, exc)
        return
    for key in iccs:
        values[key] = out["random"][by_key[key].factor]


def _model_parts(slots: list[Slot], values: Mapping[str, float]) -> tuple[dict, dict, dict, dict]:
    """fixed, random (Model's form), random (spec's form), family parameters."""
    fixed = {s.names[0]: values[s.key] for s in slots if s.kind == "fixed" and s.key in values}
    family = {s.names[0]: values[s.key] for s in slots if s.kind == "family" and s.key in values}
    random: dict[str, dict] = {}
    spec_random: dict[str, Any] = {}
    factors = list(dict.fromkeys(s.factor for s in slots if s.kind == "sd"))
    for factor in factors:
        sd = {s.names[0]: values[s.key] for s in slots if s.kind == "sd" and s.factor == factor and s.key in values}
        corr = {s.names: values[s.key] for s in slots if s.kind == "corr" and s.factor == factor and s.key in values}
        random[factor] = {"sd": sd, **({"corr": corr} if corr else {})}
        if not corr and list(sd) == ["(Intercept)"]:
            spec_random[factor] = sd["(Intercept)"]
        else:
            spec_random[factor] = {"sd": sd, **({"corr": {f"{a}, {b}": r for (a, b), r in corr.items()}} if corr else {})}
    return fixed, random, spec_random, family


# --------------------------------------------------------------------------------------
# the whole form
# --------------------------------------------------------------------------------------


def _guarded(errors: dict[str, FieldError], field: str, fn, *a):
    """``fn(*a)``, or None with glmmsim's error recorded against ``field``."""
    try:
        return fn(*a)
    except GlmmsimError as exc:
        errors[field] = FieldError.of(field, exc)
        return None


def _design_args(form: Mapping[str, Any], errors: dict[str, FieldError]) -> tuple[str, dict[str, Any], dict]:
    """The design type, its arguments and the declared levels of its factors."""
    kind = form.get("design_type") or "crossed"
    args: dict[str, Any] = {}
    levels: dict[str, list[str]] = {}
    guarded = functools.partial(_guarded, errors)

    if kind == "file":
        if not form.get("trials_file"):
            errors["trials_file"] = FieldError("trials_file", "upload a trial list (CSV) or choose crossed or nested",
                                               ("path",))
        return kind, {"path": form.get("trials_name") or "trials.csv"}, levels
    within = guarded("within", parse_factors, form.get("within", ""), "within") or {}
    if within:
        args["within"] = within
    levels.update(within)
    if kind == "crossed":
        subjects = guarded("subjects", _whole, form.get("subjects"), "subjects")
        items_text = str(form.get("items") or "").strip()
        items = guarded("items", _whole, items_text, "items") if items_text not in ("", "0") else None
        args.update(subjects=subjects, items=items)
        for field in ("between_subjects", "between_items"):
            found = guarded(field, parse_factors, form.get(field, ""), field) or {}
            if found:
                args[field] = found
                levels.update(found)
        for field, arg in (("subject_name", "subject"), ("item_name", "item")):
            name = str(form.get(field) or "").strip()
            if name and name != arg:
                args[arg] = name
    else:
        args["levels"] = guarded("units", _units, form.get("units", ""))
        between = guarded("unit_between", _unit_between, form.get("unit_between", "")) or {}
        if between:
            args["between"] = between
            for factors in between.values():
                levels.update(factors)
    reps = guarded("repetitions", _whole, form.get("repetitions") or 1, "repetitions")
    if reps and reps > 1:
        args["repetitions"] = reps
    covariates = guarded("covariates", _covariates, form.get("covariates", "")) or {}
    if covariates:
        args["covariates"] = covariates
    return kind, args, levels


def _call_design(kind: str, args: Mapping[str, Any], seed: Any) -> pd.DataFrame:
    python_args = copy.deepcopy(dict(args))
    if kind == "nested":
        python_args["levels"] = {k: tuple(v) if isinstance(v, list) else v for k, v in python_args["levels"].items()}
        return nested(**python_args, seed=seed)
    return crossed(**python_args, seed=seed)


def _design_error(exc: GlmmsimError) -> FieldError:
    head = exc.parameter or (exc.path[0] if exc.path else None)
    return FieldError.of(_DESIGN_ARGUMENT_FIELDS.get(str(head), "design_type"), exc)


def check_form(form: Mapping[str, Any], trials: pd.DataFrame | None = None, *, with_analysis: bool = True) -> Checked:
    """Check the form with glmmsim and build its spec (``None`` while any field is wrong).

    ``trials`` is the uploaded trial list when the design type is ``file``.
    """
    errors: dict[str, FieldError] = {}
    kind, design_args, levels = _design_args(form, errors)
    family = form.get("family") or "gaussian"
    link = form.get("link") or None
    slots: list[Slot] = []
    if kind == "file" and trials is not None:
        levels = _trial_levels(trials, form.get("formula", ""))
    try:
        slots = model_slots(form.get("formula", ""), family, link, levels)
    except GlmmsimError as exc:
        field = _MODEL_ARGUMENT_FIELDS.get(str(exc.parameter), "formula")
        errors[field] = FieldError.of(field, exc)
    values = _convert(slots, form.get("params") or {}, family, form.get("total_sd", ""), errors)
    fixed, random, spec_random, fam = _model_parts(slots, values)
    model = None
    if "formula" not in errors and not any(k.startswith("par_") or k == "total_sd" for k in errors):
        sigma = fam.pop("sigma", None)
        try:
            model = Model(form["formula"], fixed=fixed, random=random, sigma=sigma, family=family, link=link,
                          dispersion=fam or None, levels=_used_levels(form["formula"], levels))
        except GlmmsimError as exc:
            _model_error(exc, slots, errors)
        if sigma is not None:
            fam["sigma"] = sigma
    conditions = None
    seeds = dict(form.get("seeds") or {"population": 1, "noise": 2, "design": 3})
    if kind == "file":
        conditions = trials
    elif not any(f in errors for f in DESIGN_FIELDS):
        try:
            conditions = _call_design(kind, design_args, seeds.get("design"))
        except GlmmsimError as exc:
            err = _design_error(exc)
            errors[err.field] = err
    if model is not None and conditions is not None:
        missing = [c for c in model.variables if c not in conditions.columns]
        if missing:
            field = "trials_file" if kind == "file" else "within"
            errors[field] = FieldError(field, f"the model uses column(s) {', '.join(map(repr, missing))} that the "
                                              f"design does not make; design columns: "
                                              f"{', '.join(map(repr, conditions.columns))}", ("design",))
        else:
            try:
                model.predict(conditions, type="link")
            except GlmmsimError as exc:
                _model_error(exc, slots, errors)
    spec = None
    model_spec: dict[str, Any] = {"formula": form.get("formula", "")}
    if family != "gaussian":
        model_spec["family"] = family
    if link:
        model_spec["link"] = link
    model_spec["fixed"] = fixed
    model_spec["random"] = spec_random
    if "sigma" in fam:
        model_spec["sigma"] = fam["sigma"]
    others = {k: v for k, v in fam.items() if k != "sigma"}
    if others:
        model_spec["dispersion"] = others
    used = _used_levels(form.get("formula", ""), levels) if "formula" not in errors else {}
    if used:
        model_spec["levels"] = used
    design_spec = {"type": kind, **design_args}
    power_spec: dict[str, Any] = {}
    if with_analysis:
        power_spec = _analysis(form, conditions, errors, slots)
    if not errors:
        spec = {"model": model_spec, "design": design_spec, "seeds": seeds, "power": power_spec}
    return Checked(spec, slots, errors, conditions, {k: v for k, v in values.items()})


def _trial_levels(trials: pd.DataFrame, formula: str) -> dict[str, list]:
    """Levels of a trial list's text columns, in order of appearance, leaving out the grouping factors."""
    from ..model.formula import parse_formula
    from ..model.terms import expand_bars

    try:
        grouping = {c for t in expand_bars(parse_formula(formula).bars) for c in t.columns}
    except GlmmsimError:
        grouping = set()
    return {c: list(pd.unique(trials[c].dropna())) for c in trials.columns
            if c not in grouping and is_label_column(trials[c]) and trials[c].nunique() <= 50}


def is_label_column(series: pd.Series) -> bool:
    """Text, categorical or boolean values: a column of levels rather than of numbers."""
    return (isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(series.dtype)
            or pd.api.types.is_bool_dtype(series.dtype))


def _used_levels(formula: str, levels: Mapping[str, list]) -> dict[str, list]:
    """The declared levels of the columns the formula reads (Model refuses the others)."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", formula))
    return {k: list(v) for k, v in levels.items() if k in names}


def _model_error(exc: GlmmsimError, slots: list[Slot], errors: dict[str, FieldError]) -> None:
    slot = slot_for_error(exc, slots)
    if slot is not None:
        errors[slot.input_id] = FieldError.of(slot.input_id, exc)
        return
    head = str(exc.parameter or (exc.path[0] if exc.path else ""))
    field = _MODEL_ARGUMENT_FIELDS.get(head, "params")
    errors.setdefault(field, FieldError.of(field, exc))


def along_choices(slots: list[Slot], design_type: str, units: str = "") -> dict[str, str]:
    """What a curve may vary: spec path -> label (the design's sizes, then each fixed effect).

    ``units`` is the nested design's units field: each unit's count can be varied.
    """
    out: dict[str, str] = {}
    if design_type == "crossed":
        out.update({"design.subjects": "subjects", "design.items": "items"})
    if design_type == "nested":
        try:
            out.update({f"design.levels.{u}": f"{u} (count)" for u in _units(units)})
        except GlmmsimError:
            pass
    out["design.repetitions"] = "repetitions"
    out.update({f"fixed.{s.names[0]}": f"effect {s.names[0]}" for s in slots if s.kind == "fixed"})
    return out


def _analysis(form: Mapping[str, Any], conditions: pd.DataFrame | None, errors: dict[str, FieldError],
              slots: list[Slot]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    guarded = functools.partial(_guarded, errors)

    tests = form.get("test") or []
    tests = [tests] if isinstance(tests, str) else list(tests)
    if not tests:
        errors["test"] = FieldError("test", "choose the effect(s) to test", ("test",))
    out["test"] = tests[0] if len(tests) == 1 else tests
    out["nsim"] = guarded("nsim", _whole, form.get("nsim"), "nsim", 1, MAX_NSIM)
    out["method"] = form.get("method") or "auto"
    try:  # the method glmmsim would choose or refuse for this family and engine (kr needs lmm or lme4)
        family, link = form.get("family") or "gaussian", form.get("link") or "identity"
        choose_method(out["method"], 1, family=family, link=link,
                      engine=resolve_engine(form.get("engine") or "auto", family, link))
    except GlmmsimError as exc:
        errors["method"] = FieldError.of("method", exc)
    out["alpha"] = guarded("alpha", _fraction, form.get("alpha"), "alpha")
    out["target"] = guarded("target", _fraction, form.get("target"), "target", 1.0 + 1e-12)
    out["seed"] = guarded("seed", _whole, form.get("seed"), "seed", 0)
    out["engine"] = form.get("engine") or "auto"
    out["failures"] = form.get("failures") or "exclude"
    along: dict[str, list] = {}
    for n in ("1", "2"):
        path = form.get(f"along{n}") or ""
        if not path:
            continue
        if path in along:
            errors[f"along{n}"] = FieldError(f"along{n}", f"{path} is varied twice", (f"along{n}",))
            continue
        values = guarded(f"values{n}", parse_values, form.get(f"values{n}", ""), f"values{n}")
        if values is not None and guarded(f"values{n}", _check_along_values, path, values, f"values{n}"):
            along[path] = values
    if along:
        points = math.prod(len(v) for v in along.values())
        if points > MAX_POINTS:
            errors["values1"] = FieldError("values1", f"{points} design points; at most {MAX_POINTS} per run",
                                           ("values1",))
        out["along"] = along
    if conditions is not None and out["nsim"]:
        rows = len(conditions)
        for path, values in along.items():
            sizes = {"design.subjects": form.get("subjects"), "design.items": form.get("items"),
                     "design.repetitions": form.get("repetitions") or 1}
            if path.startswith("design.levels."):
                sizes[path] = dict(guarded("units", _units, form.get("units", "")) or {}).get(path.split(".")[-1])
            if path in sizes and not isinstance(sizes[path], list):
                current = sizes[path]
                try:
                    scale = max(float(v) for v in values) / max(float(current or 1), 1.0)
                except (TypeError, ValueError):
                    field = "values1" if form.get("along1") == path else "values2"
                    errors[field] = FieldError(field, f"{path} takes whole numbers; got {values!r}", (field,))
                    continue
                rows = int(rows * max(scale, 1.0))
        points = math.prod(len(v) for v in along.values()) if along else 1
        try:
            if rows > limits.max_rows:
                raise ParameterError(f"the largest design point would have about {rows:,} rows; the limit is "
                                     f"{limits.max_rows:,} rows (glmmsim.limits.max_rows)", parameter="nsim")
            check_total_rows(rows, out["nsim"] * points, "replicates of every design point")
        except GlmmsimError as exc:
            errors["nsim"] = FieldError.of("nsim", exc)
    return {k: v for k, v in out.items() if v is not None}


def _check_along_values(path: str, values: list, field: str) -> bool:
    """Sizes are whole numbers >= 1, effects are numbers: checked before a run, not at its third point."""
    for value in values:
        if path.startswith("design."):
            _whole(value, f"{field} ({path})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParameterError(f"{field} ({path}): {value!r} is not a number", parameter=field)
    return True


def form_to_spec(form: Mapping[str, Any], trials: pd.DataFrame | None = None) -> tuple[dict | None, dict[str, FieldError]]:
    """The form as a spec dictionary, or ``None`` and the errors by field."""
    checked = check_form(form, trials)
    return checked.spec, checked.errors


# --------------------------------------------------------------------------------------
# a spec back into the form
# --------------------------------------------------------------------------------------


def _format_number(value: Any) -> str:
    return f"{float(value):g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _factors_text(factors: Mapping[str, Any] | None) -> str:
    return "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (factors or {}).items())


def _corr_pairs(corr: Any, sd_names: list[str]) -> dict[tuple[str, str], float]:
    """The three spellings of correlations in a spec as ``{(a, b): r}``."""
    if isinstance(corr, Mapping):
        return {tuple(x.strip() for x in str(k).split(",")): v for k, v in corr.items()}  # type: ignore[misc]
    if isinstance(corr, list) and corr and all(isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) for r in corr):
        return {(a, b): r for a, b, r in corr}
    if isinstance(corr, list):
        return {(sd_names[i], sd_names[j]): corr[i][j] for i in range(len(corr)) for j in range(i + 1, len(corr))}
    return {}


def spec_to_form(text: str) -> dict[str, Any]:
    """A YAML study spec (as ``glmmsim power`` reads it) as the form's fields.

    The spec is validated by glmmsim first (:func:`glmmsim.study.parse_spec`), so a bad
    file is refused with the spec's own error; a trial-list design keeps its file name
    (upload the file beside it).
    """
    from ..study.spec import parse_spec
    from ..study.study_sections import power_settings

    raw = yaml.safe_load(text)
    design = raw.get("design") or {}
    if design.get("type") != "file":
        study = parse_spec(text)
        power_settings(study.sections, study.where)
    form = example_form()
    model = raw["model"]
    form.update(formula=str(model["formula"]), family=str(model.get("family") or "gaussian"),
                link=str(model.get("link") or ""), total_sd="")
    params: dict[str, str] = {}
    for name, value in (model.get("fixed") or {}).items():
        params[f"fixed||{name}"] = _format_number(value)
    for factor, spec in (model.get("random") or {}).items():
        if isinstance(spec, Mapping) and "sd" in spec:
            sds = spec["sd"] if isinstance(spec["sd"], Mapping) else {"(Intercept)": spec["sd"]}
            corr = _corr_pairs(spec.get("corr"), list(sds))
        elif isinstance(spec, Mapping):
            sds, corr = spec, {}
        else:
            sds, corr = {"(Intercept)": spec}, {}
        for coef, sd in sds.items():
            params[f"sd|{factor}|{coef}"] = _format_number(sd)
        for (a, b), r in corr.items():
            params[f"corr|{factor}|{a}|{b}"] = _format_number(r)
    if model.get("sigma") is not None:
        params["family||sigma"] = _format_number(model["sigma"])
    for name, value in (model.get("dispersion") or {}).items():
        params[f"family||{name}"] = _format_number(value)
    form["params"] = params
    kind = design.get("type", "crossed")
    form["design_type"] = kind
    if kind in ("crossed", "nested"):
        form["within"] = _factors_text(design.get("within"))
        form["repetitions"] = str(design.get("repetitions", 1))
        form["covariates"] = "; ".join(
            f"{k}: {v.get('per', 'trial')} {v.get('dist', 'normal')} "
            + " ".join(str(x) for key, x in v.items() if key not in ("per", "dist"))
            for k, v in (design.get("covariates") or {}).items())
    if kind == "crossed":
        form.update(subjects=str(design.get("subjects", 20)), items=str(design.get("items") or ""),
                    between_subjects=_factors_text(design.get("between_subjects")),
                    between_items=_factors_text(design.get("between_items")),
                    subject_name=str(design.get("subject", "subject")), item_name=str(design.get("item", "item")))
    elif kind == "nested":
        form["units"] = "; ".join(f"{k}: {f'{v[0]}-{v[1]}' if isinstance(v, list) else v}"
                                  for k, v in design["levels"].items())
        form["unit_between"] = "; ".join(f"{unit}: {name} = {', '.join(map(str, lv))}"
                                         for unit, factors in (design.get("between") or {}).items()
                                         for name, lv in factors.items())
    else:
        form["trials_name"] = str(design.get("path", ""))
    seeds = raw.get("seeds")
    if isinstance(seeds, Mapping):
        form["seeds"] = {k: seeds.get(k) for k in ("population", "noise", "design")}
    power = raw.get("power") or {}
    for key in ("method", "engine", "failures"):
        if key in power:
            form[key] = str(power[key])
    for key in ("alpha", "nsim", "target", "seed"):
        if key in power:
            form[key] = _format_number(power[key])
    if "test" in power:
        form["test"] = power["test"] if isinstance(power["test"], str) else list(power["test"])
    along = list((power.get("along") or {}).items())
    form.update(along1="", values1="", along2="", values2="")
    for n, (path, values) in zip(("1", "2"), along):
        path = str(path)
        parts = path.split(".")
        form[f"along{n}"] = "fixed." + parts[-1] if "fixed" in parts[:-1] else path
        form[f"values{n}"] = ", ".join(_format_number(v) for v in values)
    return form
