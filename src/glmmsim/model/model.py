"""The :class:`Model`: an lme4-formula mixed model with persistent random effects.

Pipeline of one call: formula -> terms (at construction) -> design (model
columns and group codes for the data) -> parameters matched to coefficient
names -> persistent random-effect draws -> linear predictor -> response family.
Everything that can be wrong with the data or parameters is checked before the
first number is drawn.
"""

from __future__ import annotations

import builtins
import copy
import itertools
import reprlib
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from formulaic import Formula

from .bound import BoundModel, KeyLike, noise_stream
from .model_design import ModelDesign, build_model_design
from .. import limits
from ..limits import check_limit
from ..errors import (
    Where,
    about,
    DataError,
    FormulaError,
    GlmmsimWarning,
    InputTypeError,
    ParameterError,
    did_you_mean,
    format_names,
)
from .families import Family, get_family
from .formula import parse_formula
from .formula_safety import check_formula
from .matrices import (
    expression_variables,
    model_columns,
    split_offsets,
    stateful_transforms,
)
from .names import find_levels, match_keys
from .parameters import (
    FactorSpec,
    TermCovariance,
    factor_covariance,
    parse_dispersion,
    parse_fixed,
    parse_random,
    require_mapping,
)
from ..randomness.seeds import SeedLike, seed_key
from .terms import RandomTerm, expand_bars

__all__ = ["Model"]


class Model:
    """A (generalized) linear mixed model in lme4 formula syntax, ready to simulate.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"y ~ x + (1 + x | subject) + (1 | item)"``. The
        fixed part is read by formulaic (interactions, ``C(cond, Sum)``,
        ``np.log(x)``, ``center(x)``, ``I(x**2)``); bar terms follow lme4:
        ``(x | g)`` is ``(1 + x | g)``, ``(x || g)`` uncorrelated, ``(1 | a/b)``
        is ``(1 | a) + (1 | a:b)``.
    fixed : mapping, optional
        Coefficient -> value for every fixed-effect column, in formulaic
        (``Intercept``, ``cond[T.b]``) or lme4 (``(Intercept)``, ``condb``)
        spelling. Needed unless the formula has no fixed coefficient.
    random : mapping, optional
        Grouping factor -> spec: an SD, a mapping coefficient -> SD, or
        ``{"sd": {...}, "corr": {(c1, c2): r}}`` (or a correlation matrix in
        ``sd`` order). Needed for every grouping factor of the formula.
    sigma : float, optional
        Residual SD (gaussian, lognormal, exgaussian, shifted_lognormal; for
        gamma lme4's ``sigma = 1/sqrt(shape)``). Required where the family has it.
    family : str or Family, default "gaussian"
        Response family (see :mod:`glmmsim.model.families`).
    link : str, optional
        Link function; the family's default when omitted.
    dispersion : mapping, optional
        Other family parameters by name (``{"theta": 2}``, ``{"tau": 0.1}``).
    trials : int or str, optional
        Binomial trials: a number, or the name of a column holding one per row.
    levels : mapping, optional
        Column -> ordered levels for categorical predictors. Fixes the
        reference level and the coefficient set whatever levels a call's data
        happen to contain.
    seed : int, SeedSequence or Generator, optional
        The population: the random effects of a level depend only on this seed,
        the factor, the coefficient and the level's value.
    trusted_formula : bool, default False
        By default the formula's Python pieces are checked before formulaic
        evaluates them: only column names, numbers, operators and whitelisted
        transforms (``C``, ``I``, ``np.log``, ``center``, ...) pass (see
        :mod:`glmmsim.model.formula_safety`). ``True`` skips the check for a
        formula you wrote yourself; never for one read from a file.

    Examples
    --------
    >>> data = pd.DataFrame({"x": [0.0, 1.0, 0.0, 1.0], "subject": ["a", "a", "b", "b"]})
    >>> m = Model("y ~ 1 + x + (1 | subject)", fixed={"Intercept": 1.0, "x": 2.0},
    ...           random={"subject": 0.5}, sigma=0.1, seed=7)
    >>> out = m.simulate(data, seed=1)
    >>> list(out.columns)
    ['x', 'subject', 'y']
    >>> re = m.random_effects(data)["subject"]
    >>> bool(re.loc["a", "Intercept"] == m.random_effects(data.iloc[:2])["subject"].loc["a", "Intercept"])
    True
    """

    def __init__(
        self,
        formula: str,
        fixed: Mapping[str, float] | None = None,
        random: Mapping[str, Any] | None = None,
        sigma: float | None = None,
        *,
        family: str | Family = "gaussian",
        link: str | None = None,
        dispersion: Mapping[str, float] | None = None,
        trials: int | str | None = None,
        levels: Mapping[str, Sequence[object]] | None = None,
        seed: SeedLike = None,
        trusted_formula: bool = False,
    ) -> None:
        with about("formula"):
            if not trusted_formula:  # a formula is data: see glmmsim.model.formula_safety
                check_formula(formula)
            parsed = parse_formula(formula)
        self._trusted_formula = bool(trusted_formula)
        self._formula = formula
        self._parsed = parsed
        # lme4's offset(...) terms: added to the linear predictor with coefficient 1
        self._fixed_expr, self._offsets = split_offsets(parsed.fixed, formula)
        self._terms = tuple(expand_bars(parsed.bars))
        self._factor_columns: dict[str, tuple[str, ...]] = {}
        for term in self._terms:
            self._factor_columns.setdefault(term.factor, term.columns)
        _check_distinct_factors(self._factor_columns)
        with about("fixed"):
            self._fixed = parse_fixed(fixed)
        # our own copy, parsed from: later edits of the caller's dicts or arrays cannot reach the model
        self._random_input = copy.deepcopy(random)
        with about("random"):
            self._specs: dict[str, FactorSpec] = parse_random(self._random_input, list(self._factor_columns))
        self._sigma = sigma
        with about("dispersion"):
            self._dispersion = parse_dispersion(dispersion)
        with about("family"):
            self._family = _make_family(family, link, sigma, self._dispersion)
        with about("trials"):
            self._trials = _check_trials_arg(trials, self._family)
        self._variables = self._find_variables()
        _check_no_intercept_column(self._variables, formula)
        self._check_response_not_used()
        with about("levels"):
            self._levels = _check_levels(levels, self._predictor_columns())
        self._seed_key = seed_key(seed, "seed")
        _warn_stateful_transforms([self._fixed_expr] + [t.expr for t in self._terms], formula)

    # ----------------------------------------------------------------- properties
    @property
    def formula(self) -> str:
        """The formula as given."""
        return self._formula

    @property
    def trusted_formula(self) -> bool:
        """Whether the formula skips the whitelist check (``trusted_formula=True``)."""
        return self._trusted_formula

    @property
    def response(self) -> str:
        """Name of the simulated column."""
        return self._parsed.response

    @property
    def fixed(self) -> dict[str, float]:
        """Fixed effects as given (a copy)."""
        return dict(self._fixed)

    @property
    def sigma(self) -> float | None:
        """Residual SD as given."""
        return self._sigma

    @property
    def family(self) -> Family:
        """The response family with its parameters."""
        return self._family

    @property
    def terms(self) -> tuple[RandomTerm, ...]:
        """Random-effect terms after lme4's expansion of ``||`` and ``/``."""
        return self._terms

    @property
    def factors(self) -> tuple[str, ...]:
        """Grouping factors in formula order, named as ``random`` keys them."""
        return tuple(self._factor_columns)

    @property
    def factor_columns(self) -> dict[str, tuple[str, ...]]:
        """Data columns forming each grouping factor."""
        return dict(self._factor_columns)

    @property
    def variables(self) -> tuple[str, ...]:
        """Data columns the formula uses, in order of first appearance."""
        return self._variables

    def _find_variables(self) -> tuple[str, ...]:
        found: list[str] = []
        for expr in [self._fixed_expr] + [t.expr for t in self._terms]:
            found.extend(expression_variables(expr))
        for expr in self._offsets:
            found.extend(expression_variables(f"0 + I({expr})"))
        for term in self._terms:
            found.extend(term.columns)
        if self._trials_column is not None:
            found.append(self._trials_column)
        return tuple(dict.fromkeys(found))

    @property
    def trials(self) -> int | str | None:
        """Binomial trials as given: a number, a column name, or None (Bernoulli)."""
        return self._trials

    @property
    def levels(self) -> dict[str, list[object]]:
        """Declared levels of categorical columns (``levels=``), a copy.

        Examples
        --------
        >>> Model("y ~ cond + (1 | g)", fixed={"Intercept": 0, "cond[T.b]": 1}, random={"g": 1}, sigma=1,
        ...       levels={"cond": ["a", "b"]}).levels
        {'cond': ['a', 'b']}
        """
        return {k: list(v) for k, v in self._levels.items()}

    @property
    def _trials_column(self) -> str | None:
        return self._trials if isinstance(self._trials, str) else None

    def replace(self, **changes: Any) -> Model:
        """A new Model with some constructor arguments changed and the same population.

        The population seed is kept unless ``seed`` is among the changes.

        Examples
        --------
        >>> m = Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1}, sigma=1, seed=3)
        >>> m.replace(sigma=0.5).sigma
        0.5
        """
        args = dict(
            formula=self._formula,
            fixed=self._fixed,
            random=self._random_input,
            sigma=self._sigma,
            family=self._family,
            link=None,
            dispersion=self._dispersion,
            trials=self._trials,
            levels=self._levels,
            trusted_formula=self._trusted_formula,
        )
        has_seed = "seed" in changes
        unknown = set(changes) - set(args) - {"seed"}
        if unknown:
            raise InputTypeError(
                f"replace() got unknown argument(s) {format_names(sorted(unknown))}; valid: "
                f"{format_names(list(args) + ['seed'])}"
            )
        new_seed = changes.pop("seed", None)
        args.update(changes)
        try:
            model = Model(**args, seed=new_seed)
        except ParameterError as exc:
            if "family" in changes and "sigma" not in changes and exc.parameter == "sigma":
                raise ParameterError(f"{exc} (replace() keeps sigma={self._sigma!r}; pass sigma=None)", parameter="sigma") from None
            raise
        if not has_seed:
            model._seed_key = self._seed_key
        return model

    # ------------------------------------------------------------------- public calls
    def bind(self, conditions: pd.DataFrame, *, key: KeyLike = None, offset: int = 0) -> BoundModel:
        """Bind the model to ``conditions``: validate and materialise once, simulate many times.

        Parameters
        ----------
        conditions : pandas.DataFrame
            One row per observation, with every column the formula uses.
        key : None, "index" or list of str
            What identifies a row's noise: its position (``None``; plus
            ``offset``), its index value (``"index"``) or the values of these
            columns. Rows keyed by index or columns get the same numbers in any
            slice, subset or partition. Keys must be unique.
        offset : int, default 0
            Position of the first row when ``key`` is None (a partition of a
            larger frame).

        Returns
        -------
        BoundModel

        Examples
        --------
        >>> data = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "g": ["a", "a", "b", "b"]})
        >>> m = Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1, seed=2)
        >>> whole = m.bind(data, key="index").simulate_response(seed=5)
        >>> part = m.bind(data.iloc[2:], key="index").simulate_response(seed=5)
        >>> bool((whole[2:] == part).all())
        True
        """
        return BoundModel(self, conditions, key=key, offset=offset)

    def simulate(self, conditions: pd.DataFrame, seed: SeedLike = None, *, key: KeyLike = None) -> pd.DataFrame:
        """Simulate the response for every row of ``conditions``.

        Parameters
        ----------
        conditions : pandas.DataFrame
            One row per observation, with every column the formula uses.
        seed : int, SeedSequence or Generator, optional
            Drives the response noise only; the random effects come from the
            model's own seed. A Generator is used once, to derive a key.
        key : None, "index" or list of str
            What identifies each row's noise (see :meth:`bind`).

        Returns
        -------
        pandas.DataFrame
            A copy of ``conditions`` (same index and column order) with the
            response column added (or replaced, in its place).
        """
        if type(conditions).__module__.split(".")[0] == "dask":  # lazy, per partition: glmmsim/dask/frames.py
            # layering: a Dask frame is simulated by the Dask package above the model, imported on use
            from ..dask import frames as dask_frames
            return dask_frames.simulate(self, conditions, seed, key=key)
        stream = noise_stream(seed)  # checks the seed before any work
        bound = self.bind(conditions, key=key)
        return bound._frame(bound._simulate(stream, None), once=True)

    def predict(
        self,
        conditions: pd.DataFrame,
        *,
        type: Literal["response", "link"] = "response",
        random: bool = True,
    ) -> pd.Series:
        """Conditional mean of the response, without noise.

        Parameters
        ----------
        conditions : pandas.DataFrame
            Rows to predict.
        type : {"response", "link"}
            The mean on the response scale, or the linear predictor.
        random : bool, default True
            Include the random effects (the mean for these very levels); False
            gives the population-level prediction (all random effects zero).
        """
        if type not in ("response", "link"):
            raise ParameterError(f"type must be 'response' or 'link'; got {type!r}")
        if not isinstance(random, (bool, np.bool_)):
            raise InputTypeError(
                f"random must be True or False; got {builtins.type(random).__name__} {random!r}", parameter="random"
            )
        return self.bind(conditions).predict(type=type, random=random)

    def random_effects(self, conditions: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """The random effects of the levels present in ``conditions``.

        Returns
        -------
        dict of str to pandas.DataFrame
            Per grouping factor, one row per level (in order of first
            appearance) and one column per coefficient.
        """
        return self.bind(conditions).random_effects()

    def covariance(self, conditions: pd.DataFrame | None = None) -> dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
        """Per factor: coefficient names, SDs and correlation matrix (terms combined).

        Coefficients of categorical slopes are known only from data or from
        declared ``levels``; pass ``conditions`` when the random part has a
        categorical slope whose levels are not declared.

        Examples
        --------
        >>> m = Model("y ~ cond + (0 + cond | g)", fixed={"Intercept": 0, "cond[T.b]": 1},
        ...           random={"g": {"cond[a]": 1.0, "cond[b]": 0.5}}, sigma=1, levels={"cond": ["a", "b"]})
        >>> m.covariance()["g"][0]
        ('cond[a]', 'cond[b]')
        """
        out = {}
        for factor, covs in self._covariances(conditions).items():
            coefs = tuple(c for cov in covs for c in cov.coefs)
            sd = np.concatenate([cov.sd for cov in covs])
            corr = np.zeros((len(coefs), len(coefs)))
            start = 0
            for cov in covs:
                k = len(cov.coefs)
                corr[start : start + k, start : start + k] = cov.corr
                start += k
            out[factor] = (coefs, sd, corr)
        return out

    def plot(self, kind: str, data: pd.DataFrame, **kwargs: Any):
        """Draw the model on ``data`` (see :func:`glmmsim.plot.plot_model`)."""
        # layering: the plot layer draws models, so it sits above them; a convenience, imported on use
        from ..plot import plot_model

        return plot_model(self, data, kind=kind, **kwargs)

    def __repr__(self) -> str:
        return f"Model({self._formula!r}, family={self._family.describe()})"

    # ---------------------------------------------------------------- internals
    def _check_response_not_used(self) -> None:
        if self.response in self.variables:
            role = "the trials column" if self.response == self._trials_column else "a predictor or grouping factor"
            raise FormulaError(
                f"response {self.response!r} of {self._formula!r} is also {role}; simulating it "
                f"would overwrite that input column: give the response another name"
            )

    def _predictor_columns(self) -> tuple[str, ...]:
        grouping_columns = {c for cols in self._factor_columns.values() for c in cols}
        return tuple(v for v in self.variables if v not in grouping_columns)

    def _levels_frame(self) -> pd.DataFrame | None:
        """Stand-in data when no conditions are given: declared levels as categoricals, 1.0 elsewhere.

        Enough to name the coefficients of categorical slopes whose levels are declared.
        """
        if not self._levels:
            return None
        rows = max(len(v) for v in self._levels.values())
        frame = {}
        for col in self._predictor_columns():
            if col in self._levels:
                levels = self._levels[col]
                frame[col] = pd.Categorical([levels[i % len(levels)] for i in range(rows)], categories=levels)
            else:
                frame[col] = np.ones(rows)
        return pd.DataFrame(frame)

    def _term_coefs(self, frame: pd.DataFrame | None) -> dict[str, list[list[str]]]:
        per_factor: dict[str, list[list[str]]] = {}
        for term in self._terms:
            if frame is None:
                names = _static_names(term.expr)
            else:
                names = list(model_columns(term.expr, frame, self._levels, str(term), trusted=self._trusted_formula).names)
            per_factor.setdefault(term.factor, []).append(names)
        return per_factor

    def _covariances(self, conditions: pd.DataFrame | None) -> dict[str, list[TermCovariance]]:
        frame = conditions if conditions is not None else self._levels_frame()
        per_factor = self._term_coefs(frame)
        # levels of categorical columns, to accept lme4's sum-contrast names (cond1) in random
        levels = find_levels(frame, self._predictor_columns(), self._levels) if frame is not None else self._levels
        try:
            return {
                factor: factor_covariance(self._specs[factor], coefs, levels)
                for factor, coefs in per_factor.items()
            }
        except ParameterError as exc:
            if conditions is None and exc.coefficient is not None and exc.parameter == "random":
                raise ParameterError(
                    f"{exc}. Without conditions every slope is taken as numeric unless its column "
                    f"has declared levels; categorical slopes have one coefficient per level, known "
                    f"only from data or levels=: pass conditions or levels",
                    **exc.attributes(),
                ) from None
            raise

    def design(self, conditions: pd.DataFrame) -> ModelDesign:
        """The formula read against ``conditions`` once: columns, groups, offsets, trials (a ``ModelDesign``, see ``glmmsim.model.model_design``).

        Examples
        --------
        >>> data = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "g": ["a", "a", "b", "b"]})
        >>> m = Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1)
        >>> des = m.design(data)
        >>> des.names.names, des.blocks[0].nlevels, des.family is m.family
        (('Intercept', 'x'), 2, True)
        """
        _check_unique_columns(conditions, self.variables)
        return build_model_design(
            self._formula, conditions, family=self._family, levels=self._levels, trials=self._trials,
            trusted=self._trusted_formula, parsed=(self.response, self._fixed_expr, self._offsets, self._terms),
            limit_parameter="random",
        )

    def _parameters(self, design: ModelDesign, conditions: pd.DataFrame) -> tuple[tuple[float, ...], tuple[TermCovariance, ...]]:
        """The fixed coefficients in column order and each random term's covariance, matched to ``design``."""
        x = design.fixed
        beta = match_keys(self._fixed, x.names, Where.of("fixed"), design.levels, _categorical_hint(conditions, x.names))
        per_factor: dict[str, list[list[str]]] = {}
        for block in design.blocks:
            per_factor.setdefault(block.term.factor, []).append(list(block.z.names))
        covs = {f: iter(factor_covariance(self._specs[f], c, design.levels)) for f, c in per_factor.items()}
        return tuple(beta.values()), tuple(next(covs[b.term.factor]) for b in design.blocks)

def _static_names(expr: str) -> list[str]:
    return ["Intercept" if str(t) == "1" else str(t) for t in Formula(expr)]


def _categorical_hint(conditions: pd.DataFrame, names: Sequence[str]) -> str:
    cats = [
        c
        for c in conditions.columns
        if any(str(n).startswith((f"{c}[", f"C({c}")) or f":{c}[" in str(n) for n in names)
    ]
    if not cats:
        return ""
    return (
        f" (categorical column(s) {format_names(cats)} expand to one coefficient per level, less "
        f"the reference level when there is an intercept; pass levels={{column: [...]}} to fix the "
        f"levels and reference)"
    )


def _make_family(family: str | Family, link: str | None, sigma: float | None, dispersion: Mapping[str, float]) -> Family:
    if "sigma" in dispersion and sigma is not None:
        raise ParameterError("sigma is given twice: as sigma= and in dispersion; give it once", parameter="sigma")
    params = dict(dispersion)
    if sigma is not None:
        params["sigma"] = sigma
    try:
        return get_family(family, link, **params)
    except ParameterError as exc:
        # the family names its own parameter; here it is a key of the dispersion= argument
        if exc.parameter in dispersion and exc.path == (exc.parameter,):
            exc.path, exc.parameter = ("dispersion", exc.parameter), "dispersion"
        raise


def _check_trials_arg(trials: int | str | None, family: Family) -> int | str | None:
    if trials is None:
        return None
    if family.name != "binomial":
        raise ParameterError(f"trials is for the binomial family only; this model is {family.describe()}")
    if isinstance(trials, str):
        return trials
    if isinstance(trials, bool) or not isinstance(trials, numbers.Integral) or trials < 1:
        raise ParameterError(f"trials must be a positive int or a column name; got {trials!r}", parameter="trials")
    return int(trials)


def _check_levels(
    levels: Mapping[str, Sequence[object]] | None, predictors: Sequence[str]
) -> dict[str, list[object]]:
    if levels is None:
        return {}
    require_mapping(levels, "levels", "column -> list of levels")
    out = {}
    for col, values in levels.items():
        if str(col) not in predictors:
            raise ParameterError(
                f"levels names column {col!r}, which is not a predictor of the formula."
                f"{did_you_mean(str(col), predictors)} Predictor columns: {format_names(predictors) or 'none'}"
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ParameterError(f"levels[{col!r}] must be a list of levels; got {values!r}", path=("levels", col))
        # at most one past the budget is read: a generator of levels may be endless
        values = list(itertools.islice(values, limits.max_levels + 1))
        with about("levels", col):
            check_limit(len(values), "max_levels", f"the levels listed in levels[{col!r}]")
        try:
            distinct = len(set(values))
        except TypeError:
            raise ParameterError(
                f"levels[{col!r}] holds unhashable values: {reprlib.repr(values)}; levels are strings or numbers",
                path=("levels", col),
            ) from None
        if not values or distinct != len(values):
            raise ParameterError(
                f"levels[{col!r}] must be a non-empty list without repeats; got {reprlib.repr(values)}",
                path=("levels", col),
            )
        out[str(col)] = values
    return out


def _check_distinct_factors(factor_columns: Mapping[str, tuple[str, ...]]) -> None:
    """``a:b`` and ``b:a`` are one factor; written both ways they would share their draws."""
    seen: dict[tuple[str, ...], str] = {}
    for factor, columns in factor_columns.items():
        key = tuple(sorted(columns))
        if key in seen:
            raise FormulaError(
                f"grouping factors {seen[key]!r} and {factor!r} are the same factor written two ways; "
                f"write it one way in every bar term"
            )
        seen[key] = factor


def _check_no_intercept_column(variables: Sequence[str], formula: str) -> None:
    """formulaic names the intercept ``Intercept``: a data column of that name would vanish into it."""
    if "Intercept" in variables:
        raise FormulaError(
            f"formula {formula!r} uses a column named 'Intercept', which formulaic would read as the "
            f"intercept (the column would be silently ignored); rename the column, e.g. to 'intercept_col'",
            column="Intercept",
            term="Intercept",
        )


def _check_unique_columns(conditions: pd.DataFrame, used: Sequence[str]) -> None:
    if not conditions.columns.has_duplicates:
        return
    duplicated = [c for c in used if (conditions.columns == c).sum() > 1]
    if duplicated:
        raise DataError(
            f"the data have more than one column named {format_names(duplicated)}; column names "
            f"the model uses must be unique"
        )


def _warn_stateful_transforms(exprs: Sequence[str], formula: str) -> None:
    """Transforms estimated from the data break the promise that a row's mean ignores other rows."""
    found = set().union(*(stateful_transforms(e) for e in exprs))
    if found:
        warnings.warn(
            f"{formula!r} uses {format_names(sorted(found))}, which formulaic estimates from each "
            f"call's data (means, SDs, basis knots): a row's prediction then depends on the other "
            f"rows in the call. Precompute such columns once to keep simulations comparable across "
            f"calls and partitions.",
            GlmmsimWarning,
            stacklevel=3,
        )
