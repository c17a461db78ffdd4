"""Error and warning classes shared by every layer of glmmsim.

Every problem with a user's input is reported as a subclass of
:class:`GlmmsimError`, raised before any simulation work starts, with a
message that names the offending term, coefficient, column or level and says
what would be valid.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = [
    "GlmmsimError",
    "Where",
    "FormulaError",
    "ParameterError",
    "DataError",
    "InputTypeError",
    "SystematicFailureError",
    "WorkerLostError",
    "GlmmsimWarning",
    "PilotFitWarning",
    "about",
    "did_you_mean",
    "format_names",
    "plain",
]


#: The attributes an error may carry about what it concerns (all default to None).
ERROR_ATTRIBUTES = ("parameter", "path", "coefficient", "column", "row", "term", "key")


class Where(str):
    """The spelling of an argument path in messages (``random['subject']``) that keeps the path.

    Raise sites build messages from a ``Where`` and pass it to :meth:`GlmmsimError.at`, so the
    layers above (spec files, the CLI, AutoRA) read *what* an error is about from
    ``error.path`` and never parse the message text.

    Examples
    --------
    >>> w = Where.of("random", "subject")
    >>> str(w), w.path
    ("random['subject']", ('random', 'subject'))
    >>> Where.of("fixed").path
    ('fixed',)
    """

    path: tuple

    @classmethod
    def of(cls, parameter: str, *keys: object) -> Where:
        text = str(parameter) + "".join(f"[{plain(k)!r}]" for k in keys)
        out = cls(text)
        out.path = (str(parameter), *(plain(k) for k in keys))
        return out

    def __reduce__(self):  # keep the path through pickling
        return (Where.of, self.path)


class GlmmsimError(Exception):
    """Base class of every error glmmsim raises on bad input.

    Besides the message, an error carries what it is about as attributes, each ``None``
    unless known: ``parameter`` (the argument, e.g. ``"random"``, ``"subjects"``), ``path``
    (the key path inside the arguments, a tuple starting with ``parameter``, e.g.
    ``("random", "subject")``), ``coefficient``, ``column``, ``row`` (an index label),
    ``term`` (a formula piece), ``key`` (a spec/YAML key).  Errors built with :meth:`at`
    also keep ``detail``, the message without its leading argument path, so a layer
    that names the arguments differently can re-spell the path (:meth:`renamed`).

    Examples
    --------
    >>> e = ParameterError.at(Where.of("random", "g"), "has no value for 'x'", coefficient="x")
    >>> str(e), e.parameter, e.path, e.coefficient
    ("random['g'] has no value for 'x'", 'random', ('random', 'g'), 'x')
    >>> str(e.renamed({"random": "random_effects"}))
    "random_effects['g'] has no value for 'x'"
    """

    def __init__(
        self,
        message: str = "",
        *,
        parameter: str | None = None,
        path: tuple | None = None,
        coefficient: str | None = None,
        column: str | None = None,
        row: object = None,
        term: str | None = None,
        key: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        path = tuple(path) if path is not None else ((parameter,) if parameter is not None else None)
        self.parameter = parameter if parameter is not None else (path[0] if path else None)
        self.path = path
        self.coefficient = coefficient
        self.column = column
        self.row = row
        self.term = term
        self.key = key
        self.detail = detail

    @classmethod
    def at(cls, where: str, detail: str, **attributes: object) -> GlmmsimError:
        """An error about argument path ``where`` (a :class:`Where`): message ``"<where> <detail>"``.

        ``{parameter}`` in ``detail`` stands for the argument's name (``e.g. {parameter}={'g': 1}``).
        """
        path = getattr(where, "path", None)
        # "{parameter}" in the detail names the argument (in an example), re-spelled by renamed()
        text = detail.replace("{parameter}", path[0]) if path else detail
        return cls(f"{where} {text}", path=path, detail=detail, **attributes)  # type: ignore[arg-type]

    def attributes(self) -> dict[str, object]:
        """The non-None attributes of :data:`ERROR_ATTRIBUTES`."""
        return {name: getattr(self, name) for name in ERROR_ATTRIBUTES if getattr(self, name) is not None}

    def renamed(self, names: dict[str, str]) -> GlmmsimError | None:
        """The same error with its argument re-spelled (``{"random": "random_effects"}``).

        None when the error has no structured path (it was not built with :meth:`at`) or its
        argument is not in ``names``.
        """
        if self.detail is None or not self.path or self.parameter not in names:
            return None
        new_path = (names[self.parameter], *self.path[1:])
        where = Where.of(*new_path)
        attrs = {k: v for k, v in self.attributes().items() if k not in ("parameter", "path")}
        return type(self).at(where, self.detail, **attrs)

    def __reduce__(self):  # keyword attributes survive pickling (process pools, Dask workers)
        return (_rebuild_error, (type(self), self.args, {**self.attributes(), "detail": self.detail}))


@contextmanager
def about(parameter: str, *keys: object) -> Iterator[None]:
    """Mark GlmmsimErrors raised inside the block as about argument ``parameter[keys...]``.

    Only errors that do not know yet what they are about get the path, so an inner, more
    precise path wins.

    Examples
    --------
    >>> try:
    ...     with about("covariates", "x"):
    ...         raise ParameterError("dist must be one of ...")
    ... except ParameterError as exc:
    ...     exc.path
    ('covariates', 'x')
    """
    try:
        yield
    except GlmmsimError as exc:
        if exc.path is None:
            exc.path = (parameter, *keys)
            exc.parameter = parameter
        raise


def _rebuild_error(cls: type, args: tuple, attributes: dict) -> GlmmsimError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    GlmmsimError.__init__(err, *args[:1], **attributes)
    return err


class FormulaError(GlmmsimError, ValueError):
    """The model formula is malformed or uses a construct glmmsim cannot honour."""


class ParameterError(GlmmsimError, ValueError):
    """A fixed effect, random-effect SD/correlation, dispersion or family is invalid."""


class DataError(GlmmsimError, ValueError):
    """The conditions data lack a column, hold missing values or are otherwise unusable."""


class InputTypeError(GlmmsimError, TypeError):
    """An argument has the wrong type (a seed that is a string, data that is not a DataFrame)."""


class SystematicFailureError(GlmmsimError, RuntimeError):
    """A study stopped because its replicates fail systematically, not one by one.

    Besides the message, it carries ``point`` (the design point's number) and
    ``point_label`` (``"subjects=120"``), ``replicate`` and ``seed_path`` of the first
    failed replicate, ``first_error`` (its message), ``failure_rate`` (the share that
    failed), and every replicate finished before the stop: ``records`` (raw) and, when
    a study attached them, ``simulations`` (a DataFrame like the result's).
    """

    _EXTRA = ("point", "point_label", "replicate", "seed_path", "first_error", "failure_rate", "records")

    def __init__(self, message: str = "", **attributes: object) -> None:
        extra = {name: attributes.pop(name, None) for name in self._EXTRA}
        super().__init__(message, **attributes)  # type: ignore[arg-type]
        for name, value in extra.items():
            setattr(self, name, value)
        self.simulations = None

    def __reduce__(self):
        return (_rebuild_study_error, (type(self), self.args, {**self.attributes(), "detail": self.detail,
                                                                **{n: getattr(self, n) for n in self._EXTRA}}))


class WorkerLostError(GlmmsimError, RuntimeError):
    """A worker process died (killed, out of memory) while running a batch, and retries did not help.

    ``batch`` names the batch (its design point and replicates), ``attempts`` how many times it ran.
    """

    def __init__(self, message: str = "", *, batch: str | None = None, attempts: int | None = None,
                 **attributes: object) -> None:
        super().__init__(message, **attributes)  # type: ignore[arg-type]
        self.batch = batch
        self.attempts = attempts


def _rebuild_study_error(cls: type, args: tuple, attributes: dict) -> GlmmsimError:
    return cls(*args[:1], **attributes)


class GlmmsimWarning(UserWarning):
    """A model is valid but behaves in a way the user may not expect.

    Like errors, a warning may carry the argument it is about: ``parameter`` and ``path``.
    """

    def __init__(self, message: str = "", *, parameter: str | None = None, path: tuple | None = None) -> None:
        super().__init__(message)
        self.path = tuple(path) if path is not None else ((parameter,) if parameter is not None else None)
        self.parameter = parameter if parameter is not None else (self.path[0] if self.path else None)


class PilotFitWarning(GlmmsimWarning):
    """A fit turned into a simulation model (a pilot) is singular or has a correlation at +-1.

    Such estimates sit on the boundary of the parameter space: simulating from them
    assumes, for example, that every subject's effect is a fixed multiple of its
    intercept. ``factor`` names the grouping factor concerned (None for a singular fit
    whose boundary the engine did not locate).
    """

    def __init__(self, message: str = "", *, factor: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.factor = factor


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` suffix naming the closest valid name, or ``""``.

    Examples
    --------
    >>> did_you_mean("poison", ["poisson", "gaussian"])
    " Did you mean 'poisson'?"
    >>> did_you_mean("x3", ["Intercept", "x1"])  # one letter off, even in a short name
    " Did you mean 'x1'?"
    >>> did_you_mean("zzz", ["poisson"])
    ''
    """
    candidates = [str(v) for v in valid]
    # one typed letter wrong, missing, extra or swapped: short names ('x2' for 'x1') too
    one_off = [c for c in candidates if _one_edit_apart(str(name), c)]
    close = one_off or difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with one letter substituted, inserted, deleted or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1 or min(len(a), len(b)) < 1 or max(len(a), len(b)) < 2:
        return False  # any one letter is "one edit" from any other: no suggestion there
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def format_names(names: Iterable[object]) -> str:
    """Quote and comma-join names for an error message."""
    return ", ".join(repr(str(n)) for n in names)


def plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages read ``1``, not ``np.int64(1)``.

    Examples
    --------
    >>> import numpy as np
    >>> repr(plain(np.int64(1))), repr(plain("a"))
    ('1', "'a'")
    """
    # duck-typed so this module does not import numpy (start-up time of the CLI)
    is_numpy_scalar = type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0
    return value.item() if is_numpy_scalar else value
