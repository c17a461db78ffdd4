"""What a power analysis tests: user spellings of coefficients and terms resolved before any work.

A test is named as a user thinks of it: a coefficient in formulaic or lme4 spelling
(``cond[T.b]``, ``condb``) or a term (``cond``, ``cond:freq``), which may stand for
several coefficients (a three-level factor: two). Each is resolved once, in the main
process, against the analysis model's coefficients on the design, so that a typo is
an error naming the valid choices before a single replicate runs.

Examples
--------
>>> names = ["Intercept", "cond[T.b]", "cond[T.c]", "x"]
>>> resolve_test("condb", names).coefficients
('cond[T.b]',)
>>> resolve_test("cond", names).coefficients
('cond[T.b]', 'cond[T.c]')
>>> choose_method("auto", 2, family="gaussian", link="identity", engine="glmm")
'lrt'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ParameterError, did_you_mean, format_names
from ..model.names import CoefficientNames
from ..model.terms import split_interaction

__all__ = ["Hypothesis", "resolve_test", "resolve_tests", "choose_method", "METHODS", "term_of"]

METHODS = ("auto", "z", "satterthwaite", "lrt", "kr")
#: Engines with a Kenward-Roger test ("auto" is lmm for the linear mixed models KR applies to).
KR_ENGINES = ("lmm", "lme4", "auto")
_METHOD_NAMES = {
    "z": "Wald z test",
    "satterthwaite": "t test with Satterthwaite df",
    "lrt": "likelihood-ratio test (ML refits)",
    "kr": "t test with Kenward-Roger df",
}


@dataclass(frozen=True)
class Hypothesis:
    """One test of a study: its label (as the user wrote it), the coefficients it tests, the method."""

    label: str
    coefficients: tuple[str, ...]
    method: str = "auto"

    @property
    def description(self) -> str:
        """``'cond[T.b]: t test with Satterthwaite df'``."""
        what = ", ".join(self.coefficients)
        return f"{what}: {_METHOD_NAMES.get(self.method, self.method)}"


def _strip_contrast(part: str) -> str:
    """``cond[T.b]`` -> ``cond``; ``C(cond, Sum)[S.a]`` -> ``cond``."""
    base = re.sub(r"\[[^\[\]]*\]$", "", part.strip())
    call = re.match(r"^C\(\s*([^,()]+?)\s*(,.*)?\)$", base)
    return call.group(1) if call else base


def term_of(name: str) -> str:
    """The term a coefficient belongs to, its parts sorted: ``x:cond[T.b]`` -> ``cond:x``."""
    return ":".join(sorted(_strip_contrast(p) for p in split_interaction(name)))


def _resolver(names: CoefficientNames | Sequence[str], levels: Mapping[str, Sequence[object]] | None) -> CoefficientNames:
    return names if isinstance(names, CoefficientNames) else CoefficientNames(names, levels)


def resolve_test(
    spec: str, names: CoefficientNames | Sequence[str], levels: Mapping[str, Sequence[object]] | None = None
) -> Hypothesis:
    """The coefficients ``spec`` names among the analysis model's coefficients ``names``.

    ``names`` is the design's :class:`~glmmsim.model.names.CoefficientNames` (or the
    coefficient names, with ``levels`` for lme4's spellings): the resolver fits use too. A
    coefficient (either spelling) is matched first; otherwise ``spec`` is read as a term
    and stands for all its coefficients.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"test must be a coefficient or term name (a non-empty string); got {spec!r}")
    text = spec.strip()
    resolver = _resolver(names, levels)
    found = resolver.find(text)
    if found is not None:
        return Hypothesis(text, tuple(resolver.names[i] for i in found))
    names = resolver.names
    terms = list(dict.fromkeys(term_of(n) for n in names if n != "Intercept"))
    raise ParameterError(
        f"test {text!r} names no coefficient or term of the analysis model.{did_you_mean(text, [*names, *terms])} "
        f"Coefficients: {format_names(names)}; terms: {format_names(terms)}"
    )


def resolve_tests(
    test: str | Sequence[str],
    names: CoefficientNames | Sequence[str],
    levels: Mapping[str, Sequence[object]] | None = None,
) -> list[Hypothesis]:
    """Resolve one test or a list of tests (several effects tested on the same fits)."""
    specs = [test] if isinstance(test, str) else list(test)
    if not specs:
        raise ParameterError("test is empty: name at least one coefficient or term to test")
    resolver = _resolver(names, levels)
    out = [resolve_test(s, resolver) for s in specs]
    labels = [h.label for h in out]
    if len(set(labels)) != len(labels):
        raise ParameterError(f"test lists the same effect twice: {format_names(labels)}")
    return out


def choose_method(method: str, n_coefficients: int, *, family: str, link: str, engine: str) -> str:
    """The test a replicate runs: ``auto`` is Satterthwaite t for LMMs, Wald z for GLMMs, LRT for several df."""
    if method not in METHODS:
        raise ParameterError(f"method must be one of {format_names(METHODS)}; got {method!r}.{did_you_mean(str(method), METHODS)}")
    lmm = family == "gaussian" and link == "identity"
    if method == "auto":
        if n_coefficients > 1:
            return "lrt"
        return "satterthwaite" if lmm else "z"
    if method in ("satterthwaite", "kr") and not lmm:
        raise ParameterError(
            f"method {method!r} is for linear mixed models (gaussian family, identity link); this model is "
            f"{family} ({link}): use 'z' or 'lrt'"
        )
    if method == "kr" and engine not in KR_ENGINES:
        raise ParameterError(
            f"method 'kr' (Kenward-Roger) needs engine 'lmm' or 'lme4' (pbkrtest); engine is {engine!r}"
        )
    return method
