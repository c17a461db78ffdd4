"""Fuzzing the formula checker: whatever it accepts calls nothing outside the whitelist.

Hypothesis builds formulas from formulaic's grammar -- quotes, backticks, ``{...}`` blocks,
unicode names, nesting, formula operators -- with Python pieces that mix allowed transforms
with calls that touch the system.  For each formula, either :func:`check_formula` refuses it
(a GlmmsimError) or every expression glmmsim hands formulaic is evaluated under
instrumentation: ``__import__``, ``open``, ``eval``/``exec`` of anything but formulaic's own
compiled expressions, and numpy's file functions record every call, and a profiler records
every function called directly from formula code.  Nothing outside the whitelist may appear.

Derandomized (a fixed seed) and bounded in examples so CI runs it in well under a minute.
"""

from __future__ import annotations

import builtins
import os
import sys
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmmsim.errors import GlmmsimError
from glmmsim.model.formula import parse_formula
from glmmsim.model.formula_safety import (
    CONTRASTS,
    NUMPY_FUNCTIONS,
    TRANSFORMS,
    check_formula,
)
from glmmsim.model.matrices import model_columns, split_offsets
from glmmsim.model.terms import expand_bars

DATA = pd.DataFrame(
    {
        "x": np.linspace(0.5, 2.0, 8),
        "z": np.linspace(-1.0, 1.0, 8),
        "g": list("abab" * 2),
        "cond": list("aabb" * 2),
        "my col": np.arange(8.0) + 1,
        "é": np.arange(8.0) + 2,
    }
)

NAMES = ["x", "z", "g", "cond", "`my col`", "`x`", "é", "`é`", "__class__", "__builtins__", "open", "np", "os", "_x"]
FUNCTIONS = [
    "np.log", "np.exp", "np.where", "np.sqrt", "np.clip", "log", "exp", "I", "center", "scale", "abs",
    "np.save", "np.load", "np.savetxt", "numpy.fromfile", "np.lib.npyio.savez", "open", "__import__", "eval",
    "exec", "getattr", "compile", "globals", "vars", "x.__class__", "(lambda a: a)", "np.log.__call__",
]  # fmt: skip
CANARY = "/nonexistent/glmmsim-fuzz-canary"

quoted_text = st.text(alphabet="ab`'\"{}()_ é\\+|~", max_size=6)


def _string_literal(text: str) -> str:
    return repr(text)  # Python quoting; formulaic's tokenizer must agree on where it ends


numbers = st.one_of(st.integers(-3, 70).map(str), st.sampled_from(["0.5", "1e3", "9**64", "2**-3", "10**10**10"]))
atoms = st.one_of(st.sampled_from(NAMES), numbers, quoted_text.map(_string_literal))


def _python(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    call = st.tuples(st.sampled_from(FUNCTIONS), st.lists(children, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})"
    )
    binop = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "==", ">", "&", "|", "%"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    attribute = st.tuples(children, st.sampled_from(["__class__", "real", "save", "T", "__globals__"])).map(
        lambda t: f"{t[0]}.{t[1]}"
    )
    other = st.sampled_from(["[a for a in x]", "x[0]", "f'{x}'", "*x", "{'a': x}", f"open({CANARY!r}, 'w')"])
    return st.one_of(call, binop, attribute, other, children.map(lambda c: f"[{c}, 'a']"))


python = st.recursive(atoms, _python, max_leaves=8)


def _term(expr: str, form: int) -> str:
    return [f"I({expr})", f"{{{expr}}}", expr, f"C(g, levels=['a', {expr}])", f"np.log(`my col` + 0 * {expr})"][form]


terms = st.one_of(
    st.sampled_from(["x", "z", "cond", "`my col`", "é", "C(cond, Sum)", "poly(x, 2)", "Q('my col')"]),
    st.tuples(python, st.integers(0, 4)).map(lambda t: _term(*t)),
)


def _join(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from([" + ", " - ", ":", "*", "/", " %in% "]), children).map("".join),
        children.map(lambda c: f"({c})"),
        st.tuples(children, st.integers(1, 3)).map(lambda t: f"({t[0]})**{t[1]}"),
    )


rhs = st.recursive(terms, _join, max_leaves=5)
formulas = st.tuples(rhs, st.sampled_from(["(1 | g)", "({} | g)", "offset({})"]), python).map(
    lambda t: f"y ~ {t[0]} + {t[1].format(t[2]) if '{}' in t[1] else t[1]}"
)


class _Calls:
    """What formula code called: anything outside the whitelist fails the property."""

    def __init__(self) -> None:
        self.forbidden: list[str] = []
        self.called: set[str] = set()


_ALLOWED_CODES: set = set()


def _function_names() -> set[str]:
    """The names under which the whitelisted functions show up when called: their ``__name__``."""
    from formulaic.transforms import TRANSFORMS as FORMULAIC

    names = set(TRANSFORMS) | set(NUMPY_FUNCTIONS) | set(CONTRASTS)
    for name in TRANSFORMS | CONTRASTS:
        if name in FORMULAIC:
            names.add(getattr(FORMULAIC[name], "__name__", name))
            # formulaic also calls a whitelisted stateful transform's get_required_variables
            helper = getattr(FORMULAIC[name], "get_required_variables", None)
            if getattr(helper, "__code__", None) is not None:
                _ALLOWED_CODES.add(helper.__code__)
    for name in NUMPY_FUNCTIONS:
        names.add(getattr(getattr(np, name), "__name__", name))
    return names


_ALLOWED_CALLS = _function_names() | {
    # stateful transforms are wrapped; contrasts are classes (their __init__ runs)
    "wrapper", "__init__", "__new__", "_array_function_dispatch",
    # name lookups: eval reads a formula's names from formulaic's layered mapping of the data
    "__getitem__", "__contains__", "get", "get_with_layer_name", "__missing__",
    # operators on a column: pandas dispatches arithmetic and comparisons through these
    "new_method", "__array_ufunc__", "__array__",
    *(f"__{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "eq",
                            "ne", "lt", "le", "gt", "ge", "neg", "pos", "invert", "abs", "radd", "rsub", "rmul",
                            "rtruediv", "rfloordiv", "rmod", "rpow", "rand", "ror", "rxor", "bool")),
}  # fmt: skip


def _is_formula_code(frame) -> bool:
    # formulaic compiles every formula expression with the file name ""
    return frame is not None and frame.f_code.co_filename == ""


@contextmanager
def _instrumented(calls: _Calls):
    real = {
        "__import__": builtins.__import__, "open": builtins.open, "eval": builtins.eval, "exec": builtins.exec,
    }  # fmt: skip
    np_files = ["save", "savez", "savetxt", "load", "loadtxt", "genfromtxt", "fromfile", "memmap"]
    real_np = {name: getattr(np, name) for name in np_files}

    def importer(name, *args, **kwargs):
        if _is_formula_code(sys._getframe(1)):
            calls.forbidden.append(f"__import__({name!r})")
        return real["__import__"](name, *args, **kwargs)

    def opener(*args, **kwargs):
        calls.forbidden.append(f"open{args!r}")
        raise PermissionError("open() during formula evaluation")

    def evaluator(kind):
        def run(source, *args, **kwargs):
            # formulaic's own eval of an expression it compiled (and we checked) is the evaluation itself
            if not (hasattr(source, "co_filename") and source.co_filename == ""):
                calls.forbidden.append(f"{kind}({str(source)[:40]!r})")
                raise PermissionError(f"{kind} during formula evaluation")
            return real[kind](source, *args, **kwargs)

        return run

    def np_file(name):
        def run(*args, **kwargs):
            calls.forbidden.append(f"np.{name}")
            raise PermissionError(f"np.{name} during formula evaluation")

        return run

    def profile(frame, event, arg):
        if event == "call" and _is_formula_code(frame.f_back):
            # formulaic's evaluation machinery (its layered mapping, the stateful-transform
            # plumbing) is not a function the formula chose; its transforms are
            code = frame.f_code
            if os.sep + os.path.join("formulaic", "utils") + os.sep not in code.co_filename and code not in _ALLOWED_CODES:
                calls.called.add(code.co_name)
        elif event == "c_call" and _is_formula_code(frame):
            calls.called.add(getattr(arg, "__name__", repr(arg)))

    builtins.__import__, builtins.open = importer, opener
    builtins.eval, builtins.exec = evaluator("eval"), evaluator("exec")
    for name in np_files:
        setattr(np, name, np_file(name))
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)
        builtins.__import__, builtins.open, builtins.eval, builtins.exec = (
            real["__import__"], real["open"], real["eval"], real["exec"],
        )  # fmt: skip
        for name, fn in real_np.items():
            setattr(np, name, fn)


def _expressions(formula: str) -> list[tuple[str, bool]]:
    """What glmmsim hands formulaic for ``formula``: (expression, is an offset)."""
    parsed = parse_formula(formula)
    fixed, offsets = split_offsets(parsed.fixed, formula)
    return [(fixed, False), *((o, True) for o in offsets), *((t.expr, False) for t in expand_bars(parsed.bars))]


def _evaluate(formula: str) -> _Calls:
    from glmmsim.model.matrices import offset_values

    calls = _Calls()
    pieces = _expressions(formula)
    with _instrumented(calls):
        for expr, is_offset in pieces:
            try:
                if is_offset:
                    offset_values(expr, DATA, "offset")
                else:
                    model_columns(expr, DATA)
            except GlmmsimError:
                pass  # refused or not evaluable: either way the question is what ran
    return calls


@pytest.fixture(scope="module", autouse=True)
def _warm_up():
    # lazy imports of numpy, scipy and formulaic happen once, outside the instrumented runs
    for formula in ["y ~ x + C(cond, Sum) + poly(x, 2) + center(z) + np.where(x > 1, 1, 0) + (1 | g)",
                    "y ~ I(np.log(x)) + {x + 1} + Q('my col') + offset(np.log(x)) + (x | g)"]:
        check_formula(formula)
        _evaluate(formula)


@settings(
    max_examples=600,
    derandomize=True,  # a fixed seed: the same examples in every run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
@given(formulas)
def test_an_accepted_formula_calls_nothing_outside_the_whitelist(formula):
    try:
        check_formula(formula)
    except GlmmsimError:
        return  # refused: nothing was evaluated
    calls = _evaluate(formula)
    assert not calls.forbidden, (formula, calls.forbidden)
    unexpected = {name for name in calls.called if name.split(".")[-1] not in _ALLOWED_CALLS}
    assert not unexpected, (formula, unexpected)


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + I(np.where('`', open('/nonexistent/f', 'w'), '`')) + (1 | g)",
        "y ~ x + {eval('1')} + (1 | g)",
        "y ~ x + (I(np.save('/nonexistent/f', x)) | g)",
    ],
)
def test_the_instrumentation_would_see_a_payload(formula):
    # the property above is only as good as its instruments: evaluated without the checker,
    # these payloads must be recorded (and stopped before they touch anything)
    calls = _Calls()
    from formulaic import model_matrix

    with _instrumented(calls):
        for expr, _ in _expressions(formula):
            try:
                model_matrix(expr, DATA)
            except Exception:  # noqa: BLE001, S110 - the instruments raise PermissionError inside formulaic
                pass
    assert calls.forbidden, formula
