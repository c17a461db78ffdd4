"""Study spec files: a whole simulation study (model, design, seeds, output) in YAML, as a :class:`Study`.

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
glmmsim.study.safe_yaml.SpecError: <string>, line 6: model.sigmaa: unknown key 'sigmaa'. Did you mean 'sigma'? ...
"""

from __future__ import annotations

import copy
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlmmsimError, GlmmsimWarning, ParameterError, did_you_mean, format_names
from ..model.model import Model
from ..randomness.seeds import SeedLike
from ..limits import check_total_rows
from .trials import read_trials
from .safe_yaml import MAX_SPEC_BYTES, Path, SpecError, _compose, _Ctx, _dotted, load_value, read_text_file
from .schema import (
    DESIGN_TYPES,
    MODEL_KEYS,
    SEED_KEYS,
    TOP_KEYS,
    _check_keys,
    _clip,
    _design_args,
    _kind,
    _model_kwargs,
    _output,
    _seeds,
)

__all__ = ["SpecError", "Study", "load_spec", "parse_spec"]


# ---------------------------------------------------------------------------
# overrides
# ---------------------------------------------------------------------------


def _apply_override(spec: dict, assignment: str, option: str = "--set") -> tuple[dict, Path]:
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
    >>> _apply_override(spec, "fixed.x=0.3")[0]["model"]["fixed"]
    {'x': 0.3}
    >>> _apply_override(spec, "design.subjects=80")[0]["design"]
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
        """Refuse ``k`` that is not a whole number >= 1, or whose rows together exceed ``glmmsim.limits.max_total_rows``."""
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
        ``PATH=VALUE`` assignments applied before validation (``dotted.path=value``; the value is read as YAML);
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
        raw, path = _apply_override(raw, assignment, option)
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
