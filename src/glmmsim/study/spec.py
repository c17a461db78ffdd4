"""Study spec files: a whole simulation study (model, design, seeds, output) in YAML.

A spec has four top-level sections::

    model:            # arguments of glmmsim.Model
      formula: "rt ~ 1 + condition + (1 + condition | subject) + (1 | item)"
      family: shifted_lognormal
      fixed: {Intercept: 6.0, conditionincongruent: 0.08}
      random:
        subject:
          sd: {Intercept: 0.25, conditionincongruent: 0.05}
          corr: {"Intercept, conditionincongruent": 0.3}
        item: 0.1
      dispersion: {sigma: 0.3, shift: 200}
    design:           # a generator of glmmsim.design and its arguments
      type: crossed
      subjects: 40
      items: 30
      within: {condition: [congruent, incongruent]}
    seeds: {population: 1, noise: 2, design: 3}
    output: {file: stroop.csv}

Correlations under ``random.<factor>.corr`` may be written as

* a mapping with ``"a, b"`` keys (two coefficient names separated by a comma):
  ``{"Intercept, x1": 0.2}``;
* a list of ``[a, b, r]`` triples: ``[[Intercept, x1, 0.2]]``;
* a full correlation matrix (a list of rows of numbers), in the order of the
  ``sd`` mapping's keys.

Every problem is reported as a :class:`SpecError` naming the file, the YAML
line and the key path (``stroop.yaml, line 7: model.fixd: unknown key ...``);
misspelt keys are errors, never ignored.

Examples
--------
>>> text = '''
... model:
...   formula: "y ~ 1 + x + (1 | subject)"
...   fixed: {Intercept: 1.0, x: 0.5}
...   random: {subject: 0.3}
...   sigma: 1.0
... design:
...   type: crossed
...   subject: subject
...   subjects: 3
...   covariates: {x: {per: trial}}
...   repetitions: 4
... seeds: {population: 1, noise: 2, design: 3}
... '''
>>> study = parse_spec(text)
>>> study.simulate().shape
(12, 5)
>>> parse_spec(text.replace("sigma:", "sigmaa:"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
glmmsim.study.spec.SpecError: <string>, line 6: model.sigmaa: unknown key 'sigmaa'. Did you mean 'sigma'? ...
"""

from __future__ import annotations

import copy
import inspect
import numbers
import os
import reprlib
import stat
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from .. import design as design_mod
from ..errors import GlmmsimError, GlmmsimWarning, InputTypeError, ParameterError, did_you_mean, format_names
from ..model.model import Model
from ..randomness.seeds import SeedLike
from ..limits import check_total_rows
from .trials import read_trials
from .writers import DATA_FORMATS

__all__ = ["SpecError", "Study", "load_spec", "parse_spec", "set_value"]

Path = tuple  # a key path: tuple of str keys and int list positions

MODEL_KEYS = ("formula", "fixed", "random", "sigma", "family", "link", "dispersion", "trials", "levels")
# power: and recovery: are read by study/study_sections.py (glmmsim power / recover)
TOP_KEYS = ("model", "design", "seeds", "output", "power", "recovery")
SEED_KEYS = ("population", "noise", "design")
OUTPUT_KEYS = ("file", "format", "replicates")
DESIGN_TYPES: dict[str, Callable[..., pd.DataFrame]] = {
    "crossed": design_mod.crossed,
    "nested": design_mod.nested,
}


class SpecError(ParameterError):
    """A study spec is invalid; the message names the file, line and key path."""


# ---------------------------------------------------------------------------
# reading YAML with line numbers
# ---------------------------------------------------------------------------


#: Limits on what a spec file may ask of the YAML reader, all checked before anything is built.
MAX_SPEC_BYTES = 1_000_000  # spec files are a few hundred bytes
MAX_YAML_DEPTH = 32  # nesting of mappings and lists
MAX_YAML_NODES = 20_000  # nodes after expanding aliases (a "billion laughs" expands to 10**9)


def _check_yaml_budget(text: str, source: str) -> None:
    """Refuse YAML that nests too deep or whose aliases expand too far, from the event stream.

    The event parser is iterative, so this pass is safe on any input; PyYAML's composer
    (recursive) and our walk over the nodes (which follows aliases) run only afterwards.
    """
    stack: list[int] = [0]  # expanded node count of each open collection
    anchors: dict[str, int] = {}
    open_anchors: list[str | None] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) > MAX_YAML_DEPTH:
                raise SpecError(
                    f"{source}, line {line}: YAML nests deeper than {MAX_YAML_DEPTH} levels; a spec nests at most "
                    f"{MAX_YAML_DEPTH} (model.random.subject.sd is 4 deep)"
                )
            stack.append(0)
            open_anchors.append(event.anchor)
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            size = stack.pop() + 1
            anchor = open_anchors.pop()
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                # &a [*a]: a collection that contains itself has no finite value
                raise SpecError(
                    f"{source}, line {line}: recursive YAML alias *{event.anchor} (it refers to the collection "
                    f"that contains it); an alias may only repeat a value defined before it"
                )
            size, anchor = anchors.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            anchors[anchor] = size
        stack[-1] += size
        if stack[-1] > MAX_YAML_NODES or sum(stack) > MAX_YAML_NODES:
            raise SpecError(
                f"{source}, line {line}: YAML expands to more than {MAX_YAML_NODES} values "
                f"(aliases of aliases?); a spec holds at most {MAX_YAML_NODES} values once its aliases are expanded"
            )


def _compose(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """Parse YAML; return the data and the 1-based line of every key path."""
    try:
        _check_yaml_budget(text, source)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{where}: invalid YAML: {problem}") from None
    lines: dict[Path, int] = {}
    if node is not None:
        _walk(node, (), lines, source)
    return data, lines


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int], source: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                line = key_node.start_mark.line + 1
                raise SpecError(f"{source}, line {line}: {_dotted(path + (key,))}: duplicate key {key!r}")
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for pos, child in enumerate(node.value):
            _walk(child, path + (pos,), lines, source)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass
class _Ctx:
    """Where spec values came from, to point error messages at them."""

    source: str
    lines: dict[Path, int] = field(default_factory=dict)
    origins: dict[Path, str] = field(default_factory=dict)
    base_dir: str | None = None  # the spec file's folder: paths in the spec stay inside it

    def from_command_line(self, path: Path) -> bool:
        """Whether the value at ``path`` was given by ``--set`` / ``--along``, not by the file."""
        return any(tuple(path[:n]) in self.origins for n in range(len(path), -1, -1))

    def spec_path(self, value: str, path: Path) -> str:
        """A file path written in the spec, resolved in the spec's folder, which it may not leave.

        A spec is data from whoever wrote it: ``output.file: /home/me/.bashrc`` or
        ``../../x`` must not reach beyond the spec's folder.  A path given on the command
        line (``--out``, ``--set``) is the user's own and is taken as it is.
        """
        if self.from_command_line(path):
            if path[:2] == ("design", "path") and self.base_dir is not None:
                return os.path.join(self.base_dir, os.path.expanduser(value))
            return value
        parts = value.replace("\\", "/").split("/")
        if os.path.isabs(value) or value.startswith("~") or ".." in parts or os.path.splitdrive(value)[0]:
            raise self.error(
                path,
                f"must be a path inside the spec's folder, without '..' and not absolute; got {value!r}; "
                f"write e.g. 'results/out.csv', or name any path on the command line (--out, --set)",
            )
        if self.base_dir is None:  # a spec given as text: its folder is the working directory
            return value
        joined = os.path.join(self.base_dir, value)
        inside = os.path.realpath(self.base_dir)
        if os.path.commonpath([inside, os.path.realpath(joined)]) != inside:  # a symbolic link out of it
            raise self.error(path, f"{value!r} leads outside the spec's folder {inside!r} (a symbolic link?)")
        return joined

    def where(self, path: Path) -> str:
        for n in range(len(path), -1, -1):
            prefix = tuple(path[:n])
            if prefix in self.origins:
                return self.origins[prefix]
            if prefix in self.lines:
                return f"{self.source}, line {self.lines[prefix]}"
        return self.source

    def error(self, path: Path, message: str) -> SpecError:
        return SpecError(f"{self.where(path)}: {_dotted(path)}: {message}")


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


# ---------------------------------------------------------------------------
# overrides
# ---------------------------------------------------------------------------


def load_value(text: str, source: str) -> Any:
    """A ``--set`` / ``--along`` value parsed as YAML, within the same budgets as a spec file.

    Examples
    --------
    >>> load_value("[1, 2]", "--set x=[1, 2]")
    [1, 2]
    >>> load_value("&a [*a]", "--set x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.study.spec.SpecError: --set x, line 1: recursive YAML alias *a ...
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: the value is longer than {MAX_SPEC_BYTES:,} bytes, the limit of a whole spec file")
    try:
        _check_yaml_budget(text, source)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            f"{source}: the value is not valid YAML ({problem}); write a number (0.3), a word, "
            f"a list [a, b] or a mapping {{a: 1}}"
        ) from None


def set_value(spec: dict, assignment: str, option: str = "--set") -> tuple[dict, Path]:
    """Apply a ``dotted.path=value`` override to a raw spec; return the new spec and path.

    The value is parsed as YAML (``0.3`` is a number, ``[a, b]`` a list).  A
    path may leave out ``model.`` (``fixed.x1=0.3``).  Every section on the
    path must already exist, and the last key must exist unless its parent is
    a mapping of free names (coefficients, factors, ...), where the full
    validation that follows catches misspellings. ``option`` names where the
    assignment came from (``--set``, ``--along``) in error messages.

    Examples
    --------
    >>> spec = {"model": {"fixed": {"x": 1.0}}, "design": {"subjects": 10}}
    >>> set_value(spec, "fixed.x=0.3")[0]["model"]["fixed"]
    {'x': 0.3}
    >>> set_value(spec, "design.subjects=80")[0]["design"]
    {'subjects': 80}
    """
    if "=" not in assignment:
        raise SpecError(f"{option} {assignment}: expected PATH=VALUE, e.g. fixed.x1=0.3")
    dotted, text = assignment.split("=", 1)
    keys = [k.strip() for k in dotted.strip().split(".")]
    if not all(keys):
        raise SpecError(
            f"{option} {_clip(assignment)}: empty key in path {dotted!r}; write PATH=VALUE with a "
            f"dotted path of spec keys, e.g. fixed.x1=0.3 or design.subjects=80"
        )
    if keys[0] not in TOP_KEYS and keys[0] in MODEL_KEYS:
        keys.insert(0, "model")
    value = load_value(text, f"{option} {_clip(assignment)}")
    new = copy.deepcopy(spec) if spec is not None else {}
    node: Any = new
    for depth, key in enumerate(keys[:-1]):
        if not isinstance(node, dict):
            raise SpecError(f"{option} {assignment}: {'.'.join(keys[:depth])} is not a mapping")
        if key not in node and depth == 0 and key in TOP_KEYS:
            node[key] = {}  # a section the file leaves out (output:, power:) may be set
        if key not in node:
            valid = list(node) if depth else list(TOP_KEYS)
            raise SpecError(
                f"{option} {assignment}: unknown path {'.'.join(keys[: depth + 1])!r}."
                f"{did_you_mean(key, valid)} Keys there: {format_names(valid) or '(none)'}"
            )
        if node[key] is None:
            node[key] = {}
        node = node[key]
    if not isinstance(node, dict):
        raise SpecError(f"{option} {assignment}: {'.'.join(keys[:-1])} is not a mapping")
    if len(keys) == 1 and keys[0] not in TOP_KEYS:
        raise SpecError(
            f"{option} {assignment}: unknown path {keys[0]!r}.{did_you_mean(keys[0], [*TOP_KEYS, *MODEL_KEYS])}"
        )
    node[keys[-1]] = value
    return new, tuple(keys)


# ---------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------


@dataclass
class Study:
    """A validated study spec: the model, the design and how to seed and write them."""

    model_kwargs: dict[str, Any]
    design_type: str
    design_args: dict[str, Any]
    seeds: dict[str, SeedLike]
    output: dict[str, Any]
    source: str = "<string>"
    _model: Any = field(default=None, repr=False)
    _conditions: pd.DataFrame | None = field(default=None, repr=False)
    _ctx: _Ctx | None = field(default=None, repr=False)
    sections: dict[str, Any] = field(default_factory=dict)  # raw power:/recovery: sections

    @property
    def model(self):
        """The :class:`glmmsim.Model` with the spec's population seed."""
        if self._model is None:
            self._model = self.make_model(self.seeds["population"])
        return self._model

    def spec_path(self, path: Path, value: str) -> str:
        """``value``, a file path the spec sets at ``path``, resolved in the spec's folder (see ``_Ctx.spec_path``)."""
        return self._ctx.spec_path(value, path) if self._ctx is not None else value

    def make_model(self, population_seed: SeedLike):
        """The spec's model with another population seed."""
        try:
            return Model(**self.model_kwargs, seed=population_seed)
        except GlmmsimError as exc:
            raise self._model_error(exc) from None

    def with_seeds(self, **seeds: SeedLike) -> Study:
        """The same study with some of its seeds replaced (its model and design are rebuilt).

        Examples
        --------
        >>> study = parse_spec("model: {formula: 'y ~ 1 + (1 | subject)', fixed: {Intercept: 0},\\n"
        ...                    "        random: {subject: 1}, sigma: 1}\\n"
        ...                    "design: {type: crossed, subjects: 3, repetitions: 2}")
        >>> study.seeds["design"], study.with_seeds(design=7).seeds["design"]
        (None, 7)
        """
        unknown = [k for k in seeds if k not in SEED_KEYS]
        if unknown:
            raise ParameterError(f"unknown seed {unknown[0]!r}; seeds are {format_names(SEED_KEYS)}",
                                 path=("seeds", unknown[0]), key=unknown[0])
        return replace(self, seeds={**self.seeds, **seeds}, _model=None, _conditions=None)

    def input_files(self) -> list[str]:
        """The files this study reads (the spec file, a trial list): never to be written over."""
        files = [self.source] if os.path.isfile(self.source) else []
        if self.design_type == "file":
            files.append(self.design_args["path"])
        return files

    def check_replicates(self, k: int) -> None:
        """Refuse ``k`` that is not a whole number >= 1, or whose rows together exceed ``glmmsim.config.max_total_rows``."""
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ParameterError(f"replicates must be a whole number >= 1; got {_kind(k)}", parameter="replicates")
        check_total_rows(len(self.conditions()), int(k))

    def conditions(self) -> pd.DataFrame:
        """The design's conditions (generated once, then reused; a copy is returned)."""
        if self._conditions is None and self.design_type == "file":
            try:
                self._conditions = read_trials(self.design_args["path"])
            except GlmmsimError as exc:
                raise SpecError(f"{self._where(('design', 'path'))}: design.path: {exc}") from None
        if self._conditions is None:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", GlmmsimWarning)
                    self._conditions = DESIGN_TYPES[self.design_type](**self.design_args, seed=self.seeds["design"])
            except GlmmsimError as exc:
                raise self._located_error(exc, ("design",), list(self.design_args)) from None
            for w in caught:
                self._relay_warning(w, ("design",), list(self.design_args))
        return self._conditions.copy()

    def partitioned_conditions(self, npartitions: int | str) -> Any:
        """The design as a Dask DataFrame of ``npartitions`` partitions generated on the workers.

        Errors and warnings point at the spec key they are about, as :meth:`conditions`'
        do. A generated design never exists whole in this process; a design read from a
        file (in memory already) is split. Rows dropped at random are counted by the
        current Dask scheduler: create the ``distributed.Client`` first.
        """
        if self.design_type not in DESIGN_TYPES:
            import dask.dataframe as dd

            # layering: the Dask package (above the study) sizes partitions; imported for a partitioned run only
            from ..dask.partitions import ROWS_PER_PARTITION

            conditions = self.conditions()
            k = npartitions if npartitions != "auto" else -(-len(conditions) // ROWS_PER_PARTITION)
            return dd.from_pandas(conditions, npartitions=max(1, min(int(k), len(conditions))), sort=False)
        make = DESIGN_TYPES[self.design_type]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", GlmmsimWarning)
                lazy = make(**self.design_args, seed=self.seeds["design"], npartitions=npartitions)
        except GlmmsimError as exc:
            raise self._located_error(exc, ("design",), list(self.design_args)) from None
        for w in caught:
            self._relay_warning(w, ("design",), list(self.design_args))
        return lazy

    def _first_unit_conditions(self) -> pd.DataFrame:
        """The design of its first subject (outermost unit) only: what a partitioned run checks."""
        if self.design_type not in DESIGN_TYPES:
            return self.conditions()
        args = dict(self.design_args)
        if self.design_type == "crossed":
            args["subjects"] = range(1, 2)
        elif isinstance(args.get("levels"), Mapping) and args["levels"]:
            levels = dict(args["levels"])
            levels[next(iter(levels))] = range(1, 2)
            args["levels"] = levels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GlmmsimWarning)  # shown when the partitioned design is made
                return DESIGN_TYPES[self.design_type](**args, seed=self.seeds["design"])
        except GlmmsimError as exc:
            raise self._located_error(exc, ("design",), list(self.design_args)) from None

    def _relay_warning(self, w: warnings.WarningMessage, section: Path, keys: Sequence[str]) -> None:
        """Re-issue a design's warning pointing at the spec key it is about, like errors."""
        if not issubclass(w.category, GlmmsimWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            return
        path = section + _argument_path(w.message, keys)
        warnings.warn(f"{self._where(path)}: {_dotted(path)}: {w.message}", GlmmsimWarning, stacklevel=4)

    def check(self, *, first_unit: bool = False) -> None:
        """Build model and design and try the model on the design, so spec errors surface at load time.

        ``first_unit=True`` tries the model on the design of the first subject (outermost
        unit) only: a run that simulates the design in partitions never builds it whole.
        """
        conds = self._first_unit_conditions() if first_unit else self.conditions()
        needed = list(self.model.variables)
        missing = [c for c in needed if c not in conds.columns]
        if missing:
            raise SpecError(
                f"{self._where(('design',))}: design: the model uses column(s) {format_names(missing)} that the "
                f"design does not make; design columns: {format_names(conds.columns)}"
            )
        try:
            self.model.predict(conds, type="link")
        except GlmmsimError as exc:
            raise self._model_error(exc) from None

    def where(self, path: Path) -> str:
        """Where the spec sets the key ``path``, for messages: ``"study.yaml, line 12"``,
        the command-line option that overrode it, or the spec's source when unknown."""
        return self._where(path)

    def _where(self, path: Path) -> str:
        return self._ctx.where(path) if self._ctx is not None else self.source

    def _model_error(self, exc: GlmmsimError) -> SpecError:
        return self._located_error(exc, ("model",), list(MODEL_KEYS))

    def _located_error(self, exc: GlmmsimError, section: Path, keys: Sequence[str]) -> SpecError:
        """A SpecError pointing at the spec key an error message from Model or a design is about."""
        path = section + _argument_path(exc, keys)
        where = self._where(path)
        overrides = [o for p, o in (self._ctx.origins.items() if self._ctx else []) if p[: len(path)] == path]
        if overrides and not where.startswith("--"):
            where += f" ({', '.join(overrides)})"
        return SpecError(f"{where}: {_dotted(path)}: {exc}")

    def simulate(self, replicate: int = 0, vary_population: bool = True) -> pd.DataFrame:
        """Simulate one dataset.

        Replicate 0 uses the spec's seeds; replicate ``r > 0`` uses child seeds
        ``(seed, r)`` for the noise and, unless ``vary_population`` is false,
        for the population (new subjects' and items' random effects).  The
        design stays the same in every replicate.
        """
        if isinstance(replicate, bool) or not isinstance(replicate, numbers.Integral) or replicate < 0:
            raise ParameterError(f"replicate must be a whole number >= 0 (0: the spec's own seeds); got {replicate!r}", parameter="replicate")
        model = self.model
        noise = self.seeds["noise"]
        if replicate:
            noise = _child(noise, replicate)
            if vary_population:
                model = self.make_model(_child(self.seeds["population"], replicate))
        return model.simulate(self.conditions(), seed=noise)

    def replicates(self, k: int, vary_population: bool = True) -> Iterator[pd.DataFrame]:
        """``k`` datasets, each with a ``replicate`` column (1-based) in front.

        ``k`` is checked when this is called, not when the first dataset is asked for.
        """
        self.check_replicates(k)
        return self._replicates(int(k), vary_population)

    def _replicates(self, k: int, vary_population: bool) -> Iterator[pd.DataFrame]:
        for r in range(k):
            data = self.simulate(r, vary_population)
            data.insert(0, "replicate", r + 1)
            yield data


def _argument_path(problem: object, keys: Sequence[str]) -> Path:
    """The spec key path an error or warning from Model or a design is about.

    Read from the ``path``/``parameter`` attributes the raise site set (never from the
    message text): an argument of the section (``levels``, ``random``) keeps its sub-keys;
    a family parameter that is not an argument of its own (``tau``) lives under
    ``dispersion``.

    Examples
    --------
    >>> _argument_path(ParameterError("bad", path=("levels", "class")), ["levels", "seed"])
    ('levels', 'class')
    >>> _argument_path(ParameterError("needs tau", parameter="tau"), ["family", "dispersion"])
    ('dispersion', 'tau')
    >>> _argument_path(ParameterError("something else"), ["fixed"])
    ()
    """
    path = getattr(problem, "path", None) or ()
    parameter = getattr(problem, "parameter", None)
    if path and path[0] in keys:
        return tuple(path)
    if parameter is not None and "dispersion" in keys and isinstance(parameter, str) and parameter.isidentifier():
        return ("dispersion", parameter)
    return ()


def _child(seed: SeedLike, r: int) -> SeedLike:
    if seed is None:
        return None
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, r))
    return np.random.SeedSequence(int(seed), spawn_key=(r,))


def parse_spec(
    text: str,
    source: str = "<string>",
    overrides: Sequence[str | tuple[str, str]] = (),
    seed: int | None = None,
    base_dir: str | None = None,
    partitioned: bool = False,
) -> Study:
    """Validate a YAML study spec given as text.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        Name used in error messages (the file name).
    overrides : sequence of str or (option, str) pairs
        ``PATH=VALUE`` assignments applied before validation (see :func:`set_value`);
        a pair names the command-line option it came from (default ``--set``).
    seed : int, optional
        Replaces ``seeds.noise`` (a new sample from the same population and design).
    base_dir : str, optional
        Directory that relative paths in the spec (a trial list) are read from; default
        the working directory (:func:`load_spec` passes the spec file's directory).
    partitioned : bool
        The design will be simulated in partitions (:meth:`Study.partitioned_conditions`):
        the model is checked on the design's first subject (outermost unit) only, so the
        whole design is never built here.
    """
    raw, lines = _compose(text, source)
    ctx = _Ctx(source, lines, base_dir=base_dir)
    for override in overrides:
        option, assignment = override if isinstance(override, tuple) else ("--set", override)
        raw, path = set_value(raw, assignment, option)
        ctx.origins[path] = f"{option} {_clip(assignment)}"
    top = _check_keys(ctx, raw, (), TOP_KEYS, required=("model", "design"))
    kind, args = _design_args(ctx, top["design"], base_dir if base_dir is not None else os.getcwd())
    study = Study(
        model_kwargs=_model_kwargs(ctx, top["model"]),
        design_type=kind,
        design_args=args,
        seeds=_seeds(ctx, top.get("seeds"), seed),
        output=_output(ctx, top.get("output")),
        source=source,
        _ctx=ctx,
        sections={k: top[k] for k in ("power", "recovery") if top.get(k) is not None},
    )
    study.check(first_unit=partitioned)
    return study


def load_spec(
    path: str | os.PathLike,
    overrides: Sequence[str | tuple[str, str]] = (),
    seed: int | None = None,
    *,
    partitioned: bool = False,
) -> Study:
    """Read and validate a YAML study spec file (see :func:`parse_spec`).

    The file must be a regular file (not a device or a pipe such as ``/dev/zero``) of at
    most :data:`MAX_SPEC_BYTES` bytes, in UTF-8.
    """
    text = read_text_file(path, "spec", MAX_SPEC_BYTES)
    name = os.fspath(path)
    base_dir = os.path.dirname(os.path.abspath(name))
    return parse_spec(text, source=name, overrides=overrides, seed=seed, base_dir=base_dir, partitioned=partitioned)


def read_text_file(path: str | os.PathLike, what: str, limit: int) -> str:
    """The text of a regular UTF-8 file of at most ``limit`` bytes, else a one-line SpecError."""
    if not isinstance(path, (str, os.PathLike)):
        # an int would be taken as a file descriptor (and closed): load_spec(2) closed stderr
        raise InputTypeError(f"{what} path must be a str or os.PathLike; got {type(path).__name__} {path!r}")
    name = os.fspath(path)
    info = os.stat(name)  # a missing file is an OSError, as for any file
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"{name}: the {what} must be a regular file, not a device, pipe or directory", path=(name,))
    if info.st_size > limit:
        raise SpecError(f"{name}: the {what} file has {info.st_size} bytes; at most {limit} are read", path=(name,))
    with open(name, "rb") as fh:
        data = fh.read(limit + 1)  # the file may grow between stat and read
    if len(data) > limit:
        raise SpecError(f"{name}: the {what} file has more than {limit} bytes", path=(name,))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{name}: not a UTF-8 text file (byte {exc.start}); is it a YAML {what}?") from None
