"""Error and warning classes shared by every layer of glmmsim.

Every problem with a user's input is reported as a subclass of
:class:`GlmmsimError`, raised before any simulation work starts, with a
message that names the offending term, coefficient, column or level and says
what would be valid.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np

__all__ = [
    "GlmmsimError",
    "FormulaError",
    "ParameterError",
    "DataError",
    "InputTypeError",
    "GlmmsimWarning",
    "did_you_mean",
    "format_names",
    "plain",
]


class GlmmsimError(Exception):
    """Base class of every error glmmsim raises on bad input."""


class FormulaError(GlmmsimError, ValueError):
    """The model formula is malformed or uses a construct glmmsim cannot honour."""


class ParameterError(GlmmsimError, ValueError):
    """A fixed effect, random-effect SD/correlation, dispersion or family is invalid."""


class DataError(GlmmsimError, ValueError):
    """The conditions data lack a column, hold missing values or are otherwise unusable."""


class InputTypeError(GlmmsimError, TypeError):
    """An argument has the wrong type (a seed that is a string, data that is not a DataFrame)."""


class GlmmsimWarning(UserWarning):
    """A model is valid but behaves in a way the user may not expect."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` suffix naming the closest valid name, or ``""``.

    Examples
    --------
    >>> did_you_mean("poison", ["poisson", "gaussian"])
    " Did you mean 'poisson'?"
    >>> did_you_mean("zzz", ["poisson"])
    ''
    """
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


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
    return value.item() if isinstance(value, np.generic) else value
