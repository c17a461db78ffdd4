"""The schema of a study spec: each section checked, with its line, and turned into arguments.

``model:`` becomes the keyword arguments of :class:`glmmsim.Model` (``random:`` sds and
correlations in their three spellings), ``design:`` a design generator and its arguments,
``seeds:`` and ``output:`` their settings. Misspelt keys are errors naming the valid ones,
never ignored; values of the wrong kind are errors naming the key path and the line.
The ``power:`` and ``recovery:`` sections are ``glmmsim.study.study_sections``'.
"""

from __future__ import annotations

import inspect
import numbers
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import design as design_mod
from ..errors import did_you_mean, format_names
from ..randomness.seeds import SeedLike
from .safe_yaml import Path, _Ctx
from .writers import DATA_FORMATS

MODEL_KEYS = ("formula", "fixed", "random", "sigma", "family", "link", "dispersion", "trials", "levels")
# power: and recovery: are read by study/study_sections.py (glmmsim power / recover)
TOP_KEYS = ("model", "design", "seeds", "output", "power", "recovery")
SEED_KEYS = ("population", "noise", "design")
OUTPUT_KEYS = ("file", "format", "replicates")
DESIGN_TYPES: dict[str, Callable[..., pd.DataFrame]] = {
    "crossed": design_mod.crossed,
    "nested": design_mod.nested,
}



# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _check_keys(ctx: _Ctx, value: Any, path: Path, valid: Sequence[str], required: Sequence[str] = ()) -> dict:
    if not isinstance(value, Mapping):
        raise ctx.error(path, f"must be a mapping with keys {format_names(valid)}; got {_kind(value)}")
    for key in value:
        if key not in valid:
            raise ctx.error(
                path + (key,),
                f"unknown key {key!r}.{did_you_mean(str(key), valid)} Valid keys: {format_names(valid)}",
            )
    for key in required:
        if key not in value:
            raise ctx.error(path, f"missing required key {key!r}")
    return dict(value)


def _kind(value: Any) -> str:
    """``value`` for a message, bounded: a huge integer by its digits, a big list shortened."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 64:
        return f"int of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    return f"{type(value).__name__} {_SHORT.repr(value)}"


def _clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message (a --set value may be a megabyte)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlong = 40


def _number(ctx: _Ctx, value: Any, path: Path, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ctx.error(path, f"must be a number; got {_kind(value)}")
    try:
        return float(value)
    except OverflowError:
        digits = int(abs(int(value)).bit_length() * 0.30103) + 1
        raise ctx.error(path, f"must be a finite number (|x| < 1.8e308); got an integer of about {digits} digits") from None


def _string(ctx: _Ctx, value: Any, path: Path, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(path, f"must be a non-empty string; got {_kind(value)}")
    return value


def _number_map(ctx: _Ctx, value: Any, path: Path) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ctx.error(path, f"must be a mapping name -> number; got {_kind(value)}")
    return {str(k): _number(ctx, v, path + (k,)) for k, v in value.items()}


# ---------------------------------------------------------------------------
# the model section
# ---------------------------------------------------------------------------


def _model_kwargs(ctx: _Ctx, spec: Any) -> dict[str, Any]:
    path = ("model",)
    model = _check_keys(ctx, spec, path, MODEL_KEYS, required=("formula",))
    out: dict[str, Any] = {"formula": _string(ctx, model["formula"], path + ("formula",))}
    if "fixed" in model:
        out["fixed"] = _number_map(ctx, model["fixed"], path + ("fixed",))
    if "random" in model:
        out["random"] = _random(ctx, model["random"], path + ("random",))
    if "sigma" in model:
        out["sigma"] = _number(ctx, model["sigma"], path + ("sigma",), allow_none=True)
    for key in ("family", "link"):
        if key in model:
            out[key] = _string(ctx, model[key], path + (key,), allow_none=True)
    if "dispersion" in model and model["dispersion"] is not None:
        out["dispersion"] = _number_map(ctx, model["dispersion"], path + ("dispersion",))
    if "trials" in model:
        trials = model["trials"]
        if not (trials is None or isinstance(trials, str) or (isinstance(trials, int) and not isinstance(trials, bool))):
            raise ctx.error(path + ("trials",), f"must be a whole number of trials or a column name; got {_kind(trials)}")
        out["trials"] = trials
    if "levels" in model and model["levels"] is not None:
        levels = model["levels"]
        if not isinstance(levels, Mapping) or not all(isinstance(v, list) for v in levels.values()):
            raise ctx.error(path + ("levels",), "must be a mapping column -> list of levels (reference level first)")
        out["levels"] = {str(k): list(v) for k, v in levels.items()}
    return out


def _random(ctx: _Ctx, spec: Any, path: Path) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise ctx.error(path, f"must be a mapping grouping factor -> SD spec; got {_kind(spec)}")
    out: dict[str, Any] = {}
    for factor, value in spec.items():
        fpath = path + (factor,)
        if isinstance(value, Mapping) and ("sd" in value or "corr" in value):
            entry = _check_keys(ctx, value, fpath, ("sd", "corr"), required=("sd",))
            sd = entry["sd"]
            sd = _number_map(ctx, sd, fpath + ("sd",)) if isinstance(sd, Mapping) else _number(ctx, sd, fpath + ("sd",))
            item: dict[str, Any] = {"sd": sd}
            if entry.get("corr") is not None:
                item["corr"] = _corr(ctx, entry["corr"], fpath + ("corr",), sd)
            out[str(factor)] = item
        elif isinstance(value, Mapping):
            out[str(factor)] = _number_map(ctx, value, fpath)
        else:
            out[str(factor)] = _number(ctx, value, fpath)
    return out


def _corr(ctx: _Ctx, spec: Any, path: Path, sd: Any) -> Any:
    """Turn the YAML correlation forms into what Model accepts: {(a, b): r} or a matrix."""
    if isinstance(spec, Mapping):
        pairs = {}
        for key, r in spec.items():
            names = [p.strip() for p in str(key).split(",")]
            if len(names) != 2 or not all(names):
                raise ctx.error(path + (key,), "key must name two coefficients separated by a comma, e.g. 'Intercept, x1'")
            pairs[tuple(names)] = _number(ctx, r, path + (key,))
        return pairs
    if isinstance(spec, list) and spec and all(isinstance(row, list) for row in spec):
        if all(len(row) == 3 and isinstance(row[0], str) and isinstance(row[1], str) for row in spec):
            return {(row[0], row[1]): _number(ctx, row[2], path + (i, 2)) for i, row in enumerate(spec)}
        matrix = [[_number(ctx, v, path + (i, j)) for j, v in enumerate(row)] for i, row in enumerate(spec)]
        n = len(sd) if isinstance(sd, Mapping) else None
        if n is None or any(len(row) != n for row in matrix) or len(matrix) != n:
            raise ctx.error(path, "a correlation matrix must be square with one row per coefficient of 'sd' (in its order)")
        return matrix
    raise ctx.error(
        path,
        "must be a mapping {'a, b': r}, a list of [a, b, r] triples or a full correlation matrix; "
        f"got {_kind(spec)}",
    )


# ---------------------------------------------------------------------------
# design, seeds, output
# ---------------------------------------------------------------------------


def _design_args(ctx: _Ctx, spec: Any, base_dir: str) -> tuple[str, dict[str, Any]]:
    path = ("design",)
    kinds = [*DESIGN_TYPES, "file"]
    if not isinstance(spec, Mapping):
        raise ctx.error(path, f"must be a mapping with 'type' ({format_names(kinds)}) and its arguments")
    kind = spec.get("type")
    if kind == "file":
        args = _check_keys(ctx, spec, path, ["type", "path"], required=("path",))
        name = _string(ctx, args["path"], path + ("path",))
        # relative to the spec file, so a spec and its trial list travel together
        return kind, {"path": ctx.spec_path(name, path + ("path",))}
    if kind not in DESIGN_TYPES:
        raise ctx.error(
            path + ("type",),
            f"must be one of {format_names(kinds)}; got {kind!r}.{did_you_mean(str(kind), kinds)}",
        )
    params = [p for p in inspect.signature(DESIGN_TYPES[kind]).parameters if p not in ("seed", "npartitions")]
    args = _check_keys(ctx, spec, path, ["type", *params])
    args.pop("type")
    # YAML has no tuples: a two-element list is a (low, high) size range
    for key in ("trials_per_subject",):
        if isinstance(args.get(key), list):
            args[key] = tuple(args[key])
    if kind == "nested" and isinstance(args.get("levels"), Mapping):
        args["levels"] = {k: tuple(v) if isinstance(v, list) else v for k, v in args["levels"].items()}
    return kind, args


def _seed(ctx: _Ctx, value: Any, path: Path) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ctx.error(path, f"must be a non-negative whole number or null; got {_kind(value)}")
    return value


def _seeds(ctx: _Ctx, spec: Any, noise: int | None = None) -> dict[str, SeedLike]:
    path = ("seeds",)
    if spec is None:
        seeds = dict.fromkeys(SEED_KEYS)
    elif isinstance(spec, int) and not isinstance(spec, bool):
        root = _seed(ctx, spec, path)
        # one number seeds all three streams through independent children
        seeds = {k: np.random.SeedSequence(root, spawn_key=(i,)) for i, k in enumerate(SEED_KEYS)}
    else:
        given = _check_keys(ctx, spec, path, SEED_KEYS)
        seeds = {k: _seed(ctx, given.get(k), path + (k,)) for k in SEED_KEYS}
    if noise is not None:
        ctx.origins[("seeds", "noise")] = "--seed"
        seeds["noise"] = _seed(ctx, noise, ("seeds", "noise"))
    return seeds


def _output(ctx: _Ctx, spec: Any) -> dict[str, Any]:
    path = ("output",)
    out = {"file": None, "format": None, "replicates": 1}
    if spec is None:
        return out
    given = _check_keys(ctx, spec, path, OUTPUT_KEYS)
    if given.get("file") is not None:
        out["file"] = ctx.spec_path(_string(ctx, given["file"], path + ("file",)), path + ("file",))
    if given.get("format") is not None:
        fmt = given["format"]
        if fmt not in DATA_FORMATS:
            raise ctx.error(path + ("format",), f"must be one of {format_names(DATA_FORMATS)}; got {fmt!r}")
        out["format"] = fmt
    if "replicates" in given:
        k = given["replicates"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ctx.error(path + ("replicates",), f"must be a whole number >= 1; got {_kind(k)}")
        out["replicates"] = k
    return out
