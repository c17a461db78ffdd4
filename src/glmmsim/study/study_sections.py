"""The ``power:`` and ``recovery:`` sections of a study spec (read by ``glmmsim power`` / ``glmmsim recover``).

Both take the keys of the command line options, so a spec can hold a whole power
analysis and the command line can override any of it::

    power:
      test: cond                          # a coefficient, a term, or a list of them (required)
      nsim: 1000
      along: {design.subjects: [10, 20, 30, 40]}   # spec paths, as --set writes them
      method: auto                        # auto | z | satterthwaite | lrt | kr
      engine: auto                        # auto (lmm for LMMs, glmm otherwise) | lmm | glmm | lme4
      alpha: 0.05
      target: 0.8
      seed: 1
      out: curve.csv
      plot: curve.png

    recovery:
      nsim: 500
      out: recovery.csv

Errors name the file, the line and the key, as every spec error does.

Examples
--------
>>> s = power_settings({"power": {"test": "cond", "nsim": 200, "along": {"design.subjects": [10, 20]}}})
>>> s.nsim, s.along
(200, {'design.subjects': [10, 20]})
>>> power_settings({"power": {"tests": "cond"}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
glmmsim.study.safe_yaml.SpecError: <spec>: power.tests: unknown key 'tests'. Did you mean 'test'? ...
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import did_you_mean, format_names
from .safe_yaml import SpecError

__all__ = ["PowerSettings", "RecoverySettings", "power_settings", "recovery_settings", "parse_along"]


@dataclass(frozen=True)
class PowerSettings:
    test: Any = None
    nsim: int = 1000
    alpha: float = 0.05
    method: str = "auto"
    engine: str = "auto"
    fit_formula: str | None = None
    seed: int = 1
    along: dict[str, list] = field(default_factory=dict)
    failures: str = "exclude"
    target: float = 0.8
    executor: Any = None
    out: str | None = None
    plot: str | None = None
    simulations: str | None = None


@dataclass(frozen=True)
class RecoverySettings:
    nsim: int = 500
    engine: str = "auto"
    fit_formula: str | None = None
    seed: int = 1
    executor: Any = None
    out: str | None = None
    plot: str | None = None


def _where(where: Callable[[tuple], str] | None, path: tuple) -> str:
    return where(path) if where is not None else "<spec>"


def _err(where, path: tuple, message: str) -> SpecError:
    return SpecError(f"{_where(where, path)}: {'.'.join(map(str, path))}: {message}")


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _check(section: str, key: str, value: Any, where) -> Any:
    path = (section, key)
    if key in ("nsim",) and not _whole(value, 1 if section == "power" else 2):
        raise _err(where, path, f"must be a whole number >= {1 if section == 'power' else 2}; got {value!r}")
    if key == "seed" and not _whole(value, 0):
        raise _err(where, path, f"must be a non-negative whole number; got {value!r}")
    if key in ("alpha", "target") and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1.0 + (key == "target")):
        raise _err(where, path, f"must be a number between 0 and 1; got {value!r}")
    if key in ("method", "engine", "failures", "fit_formula", "out", "plot", "simulations") and not (
        isinstance(value, str) and value.strip()
    ):
        raise _err(where, path, f"must be a non-empty string; got {value!r}")
    if key == "test" and not (
        (isinstance(value, str) and value.strip()) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
    ):
        raise _err(where, path, f"must be a coefficient or term name, or a list of them; got {value!r}")
    if key == "executor" and not (value in ("serial", "processes") or _whole(value, 1)):
        raise _err(where, path, f"must be 'serial', 'processes' or a number of processes; got {value!r}")
    if key == "along":
        if not isinstance(value, Mapping) or not value:
            raise _err(where, path, "must be a mapping spec path -> list of values, e.g. {design.subjects: [10, 20, 30]}")
        for k, v in value.items():
            if not isinstance(v, list) or not v:
                raise _err(where, (*path, k), f"must be a non-empty list of values; got {v!r}")
        return {str(k): list(v) for k, v in value.items()}
    return value


#: Keys of power:/recovery: that name files written: inside the spec's folder when the spec sets them.
PATH_KEYS = ("out", "plot", "simulations")


def _settings(cls, section: str, raw: Mapping[str, Any], where, resolve=None) -> Any:
    spec = raw.get(section)
    valid = [f.name for f in fields(cls)]
    if spec is None:
        return cls()
    if not isinstance(spec, Mapping):
        raise _err(where, (section,), f"must be a mapping with keys {format_names(valid)}")
    for key in spec:
        if key not in valid:
            raise _err(where, (section, key),
                       f"unknown key {key!r}.{did_you_mean(str(key), valid)} Valid keys: {format_names(valid)}")
    values = {k: _check(section, k, v, where) for k, v in spec.items()}
    if resolve is not None:
        values.update({k: resolve((section, k), v) for k, v in values.items() if k in PATH_KEYS})
    return cls(**values)


def power_settings(
    sections: Mapping[str, Any], where: Callable[[tuple], str] | None = None, resolve: Callable | None = None
) -> PowerSettings:
    """The validated ``power:`` section (defaults where it is absent).

    ``resolve(path, value)`` (``Study.spec_path``) resolves the files it names in the spec's folder.
    """
    return _settings(PowerSettings, "power", sections, where, resolve)


def recovery_settings(
    sections: Mapping[str, Any], where: Callable[[tuple], str] | None = None, resolve: Callable | None = None
) -> RecoverySettings:
    """The validated ``recovery:`` section (defaults where it is absent); ``resolve`` as for :func:`power_settings`."""
    return _settings(RecoverySettings, "recovery", sections, where, resolve)


def override_settings(settings: Any, options: Mapping[str, Any]) -> Any:
    """``settings`` with the command-line options that were given (not None) in place of the spec's values."""
    given = {k: v for k, v in options.items() if v is not None}
    return replace(settings, **given)


def parse_along(texts: list[str]) -> dict[str, list]:
    """``--along design.subjects=10,20,30`` options as ``{"design.subjects": [10, 20, 30]}``.

    >>> parse_along(["design.subjects=10,20", "fixed.condb=0.1,0.2"])
    {'design.subjects': [10, 20], 'fixed.condb': [0.1, 0.2]}
    """
    from ..limits import check_limit
    from .safe_yaml import load_value

    out: dict[str, list] = {}
    for text in texts:
        path, sep, values = text.partition("=")
        if not sep or not path.strip() or not values.strip():
            raise SpecError(f"--along {text[:80]}: expected PATH=V1,V2,..., e.g. design.subjects=10,20,30")
        parts = values.split(",")
        check_limit(len(parts), "max_replicates", f"--along {path.strip()} points", parameter="along")
        # each value within the budgets of a spec file (aliases, depth, size)
        out[path.strip()] = [load_value(v, f"--along {path.strip()}") for v in parts]
    return out
