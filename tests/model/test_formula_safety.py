"""A formula is data: payloads that touch a canary file must not run, through any entry point.

The payloads are the families of issue 16: code hidden behind backticks inside string
literals (a regular expression once blanked them out), in ``{...}`` blocks, in the left
side of a random term, in ``offset()``, in ``C(g, levels=[...])``, in double quotes.
Every entry point that takes a formula is driven with them, and each test asserts both
the GlmmsimError and that the canary file does not exist afterwards.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pandas as pd
import pytest

import glmmsim
from glmmsim.cli import main
from glmmsim.errors import FormulaError, GlmmsimError
from glmmsim.model.formula_safety import check_expression, check_formula
from glmmsim.model.matrices import model_columns, offset_values

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _pieces(canary: pathlib.Path) -> dict[str, str]:
    """Fixed-part pieces, each of which writes ``canary`` if formulaic ever evaluates it."""
    c = repr(str(canary))
    touch = f"__import__('pathlib').Path({c}).touch()"
    return {
        "backticks in single quotes": f"I(np.where('`', {touch}, '`'))",
        "backticks in double quotes": f'I(np.where("`", open({c}, "w"), "`"))',
        "numpy writes a file": f"I(np.where('`', np.save({c}, x), '`'))",
        "numpy.save spelt out": f"I(numpy.save({c}, x))",
        "python block": f"{{{touch}}}",
        "python block in backticks": f"{{x + 0 * `a`}} + {{{touch}}}",
        "levels list": f"C(g, levels=['`', {touch}, '`'])",
        "plain call": f"I(x + 0*{touch})",
        "escaped quote": f"I(np.where('\\'`', {touch}, '`'))",
        "backtick name then code": f"`x` + I({touch})",
        "keyword smuggled": f"C(g, levels=[str({touch})])",
        "exec by name": f"I(exec({c}))",
        "getattr chain": "I(getattr(x, '__class__'))",
        "builtins via Q": "Q('__builtins__')",
    }


@pytest.fixture
def canary(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "CANARY"


@pytest.fixture
def data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "x": rng.normal(size=40),
            "g": np.repeat(["a", "b", "c", "d"], 10),
            "t": np.full(40, 2.0),
            "y": rng.normal(size=40),
        }
    )


def _formulas(canary: pathlib.Path) -> list[tuple[str, str]]:
    out = []
    for name, piece in _pieces(canary).items():
        out.append((f"fixed: {name}", f"y ~ x + {piece} + (1 | g)"))
    touch = f"__import__('pathlib').Path({str(canary)!r}).touch()"
    out.append(("random lhs", f"y ~ x + (I(np.where('`', {touch}, '`')) | g)"))
    out.append(("random lhs block", f"y ~ x + ({{{touch}}} | g)"))
    out.append(("offset", f"y ~ x + offset(np.where('`', {touch}, '`')) + (1 | g)"))
    out.append(("offset plain", f"y ~ x + offset({touch}) + (1 | g)"))
    return out


def _ids(canary_free=pathlib.Path("C")) -> list[str]:
    return [name for name, _ in _formulas(canary_free)]


def _each_formula(canary):
    return [f for _, f in _formulas(canary)]


@pytest.mark.parametrize("index", range(len(_ids())), ids=_ids())
def test_model_refuses_every_payload(index, canary, data):
    formula = _each_formula(canary)[index]
    with pytest.raises(FormulaError):
        glmmsim.Model(formula, fixed={"Intercept": 0}, random={"g": 1}, sigma=1)
    assert not canary.exists()


@pytest.mark.parametrize("index", range(len(_ids())), ids=_ids())
def test_fit_and_prepare_refuse_every_payload(index, canary, data):
    formula = _each_formula(canary)[index]
    with pytest.raises(GlmmsimError):
        glmmsim.fit(formula, data)
    with pytest.raises(GlmmsimError):
        glmmsim.fit.prepare(formula, data)
    assert not canary.exists()


def _model():
    return glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 0, "x": 1}, random={"g": 1}, sigma=1, seed=1)


@pytest.mark.parametrize("index", [0, 1, 4, 6], ids=[_ids()[i] for i in (0, 1, 4, 6)])
def test_power_and_recovery_refuse_a_payload_fit_formula(index, canary, data):
    formula = _each_formula(canary)[index]
    with pytest.raises(GlmmsimError):
        glmmsim.power(_model(), data[["x", "g"]], test="x", nsim=2, fit_formula=formula, progress=False)
    with pytest.raises(GlmmsimError):
        glmmsim.recovery(_model(), data[["x", "g"]], nsim=2, fit_formula=formula, progress=False)
    assert not canary.exists()


def test_the_evaluation_chokepoint_refuses_what_no_entry_point_checked(canary, data):
    # model_columns and offset_values are the only callers of formulaic's evaluation:
    # a piece that skipped every entry check is still refused there
    touch = f"__import__('pathlib').Path({str(canary)!r}).touch()"
    with pytest.raises(FormulaError):
        model_columns(f"1 + x + I(np.where('`', {touch}, '`'))", data)
    with pytest.raises(FormulaError):
        offset_values(touch, data, "offset")
    for expr in ("1 + I(open)", "1 + Q('y2')", "1 + I(lag)"):
        with pytest.raises(GlmmsimError):
            model_columns(expr, data)  # a missing column, or refused as no column
        with pytest.raises(FormulaError, match="no column has this name"):
            check_expression(expr, columns=list(data.columns))
    assert not canary.exists()
    # a column may well be named like a builtin: then it is the column
    named = data.assign(open=data["x"])
    assert model_columns("1 + I(open * 2)", named).names == ("Intercept", "I(open * 2)")


def test_random_from_theta_refuses_a_payload(canary):
    touch = f"__import__('pathlib').Path({str(canary)!r}).touch()"
    with pytest.raises(GlmmsimError):
        glmmsim.random_from_theta(f"y ~ x + (I(np.where('`', {touch}, '`')) | g)", [1.0], pd.DataFrame(
            {"x": [0.0, 1.0], "g": ["a", "b"]}))
    assert not canary.exists()


# ---------------------------------------------------------------- the command line
SPEC = (ROOT / "examples" / "power.yaml").read_text()
SMALL = ["--set", "design.subjects=4", "--set", "design.items=4", "-q"]


def _run(*argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, err.getvalue()


def _payload_formula(canary: pathlib.Path) -> str:
    touch = f"__import__('pathlib').Path({str(canary)!r}).touch()"
    return f"rt ~ cond + I(np.where('`', {touch}, '`')) + (1 + cond | subject) + (1 | item)"


def _spec(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    return spec


def _yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def test_cli_spec_model_formula(tmp_path, canary):
    formula = _payload_formula(canary)
    spec = _spec(tmp_path, SPEC.replace('"rt ~ cond + (1 + cond | subject) + (1 | item)"', _yaml_str(formula)))
    for command in ("simulate", "describe", "power", "recover"):
        extra = ["--out", tmp_path / f"{command}.csv"] if command == "simulate" else []
        code, err = _run(command, spec, *(SMALL[:-1] if command == "describe" else SMALL), *extra)
        assert code == 1 and "not allowed" in err, (command, err)
    assert not canary.exists()


def test_cli_spec_power_fit_formula(tmp_path, canary):
    formula = _payload_formula(canary)
    spec = _spec(tmp_path, SPEC.replace("  test: cond ", f"  fit_formula: {_yaml_str(formula)}\n  test: cond "))
    code, err = _run("power", spec, "--nsim", "2", *SMALL)
    assert code == 1 and "not allowed" in err, err
    assert not canary.exists()


def test_cli_set_model_formula(tmp_path, canary):
    spec = _spec(tmp_path, SPEC)
    setting = "model.formula=" + _yaml_str(_payload_formula(canary))
    for command in ("simulate", "power", "recover", "describe"):
        extra = ["--out", tmp_path / f"{command}.csv"] if command == "simulate" else []
        code, err = _run(command, spec, "--set", setting, *(SMALL[:-1] if command == "describe" else SMALL), *extra)
        assert code == 1 and "not allowed" in err, (command, err)
    assert not canary.exists()


def test_cli_fit_formula_option(tmp_path, canary):
    spec = _spec(tmp_path, SPEC)
    for command in ("power", "recover"):
        code, err = _run(command, spec, "--nsim", "2", "--fit-formula", _payload_formula(canary), *SMALL)
        assert code == 1 and "not allowed" in err, (command, err)
    assert not canary.exists()


def test_cli_simulate_partitions(tmp_path, canary):
    pytest.importorskip("dask")
    pytest.importorskip("pyarrow")
    spec = _spec(tmp_path, SPEC)
    setting = "model.formula=" + _yaml_str(_payload_formula(canary))
    code, err = _run("simulate", spec, "--set", setting, *SMALL, "--partitions", "2", "--scheduler", "processes",
                     "--out", tmp_path / "parts")
    assert code == 1 and "not allowed" in err, err
    assert not canary.exists()


@pytest.mark.parametrize("semantics", ["autora", "lme4"])
def test_autora_drop_in(canary, semantics):
    pytest.importorskip("autora")
    from glmmsim.autora import lmm_experiment

    touch = f"__import__('pathlib').Path({str(canary)!r}).touch()"
    formula = f"y ~ x1 + I(np.where('`', {touch}, '`')) + (1 | subject)"
    with pytest.raises(GlmmsimError):
        experiment = lmm_experiment(formula, {"Intercept": 0, "x1": 1}, {"subject": {"Intercept": 1}},
                                    semantics=semantics)
        experiment.run(pd.DataFrame({"x1": [0.0, 1.0], "subject": [1, 2]}), random_state=1)
    assert not canary.exists()


# ---------------------------------------------------------------- bounded work
@pytest.mark.parametrize(
    "formula",
    [
        "y ~ I(((9**64)**64)**64)",
        "y ~ I(9 ** (64*64*64*64*64))",
        "y ~ I(x + " + " * ".join(["9**64"] * 25) + ")",
        "y ~ poly(x, 1000000)",
        "y ~ np.isin(x, [1, 2], kind='table')",
    ],
)
def test_unbounded_arithmetic_is_refused_before_evaluation(formula):
    with pytest.raises(FormulaError, match="not allowed"):
        check_formula(formula)


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ (" + "+".join(f"x{i}" for i in range(24)) + ")**24",
        "y ~ " + "*".join(f"x{i}" for i in range(24)),
        "y ~ x + (" + "*".join(f"x{i}" for i in range(24)) + " | g)",
        "y ~ (a + b)**100000000",
    ],
)
def test_combinatorial_expansion_is_counted_before_it_is_built(formula):
    with pytest.raises(FormulaError, match="max_formula_terms|at most 64") as info:
        check_formula(formula)
    assert info.value.term


def test_the_term_budget_is_a_limit_that_can_be_raised():
    formula = "y ~ " + "*".join(f"x{i}" for i in range(8))  # 255 terms
    with glmmsim.limits.override(max_formula_terms=100):
        with pytest.raises(FormulaError, match=r"glmmsim.limits.max_formula_terms = N"):
            check_formula(formula)
    check_formula(formula)


def test_overlong_formulas_and_nul_are_refused_saying_what_is_allowed():
    with pytest.raises(FormulaError, match="max_formula_chars"):
        check_formula("y ~ " + "x + " * 30_000 + "x")
    with pytest.raises(FormulaError, match="printable text"):
        check_expression("x\x00")


@pytest.mark.parametrize("piece", ["`unclosed", "{x + 1", "I(x", "'a", "%foo% x", "x ^^^ 2"])
def test_unreadable_formulas_are_refused(piece):
    with pytest.raises(FormulaError):
        check_formula(f"y ~ {piece}")


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ 1 + C(cond, Sum) + np.log(x) + I(x**2) + (1 + x | subject)",
        "y ~ {x + 1} + `my col` + Q('other col') + C(g, levels=['a', 'b'], contrasts=contr.sum)",
        "y ~ I(np.where(x > 0, 1, 0)) + np.round(x, decimals=2) + I(x * np.pi)",
        "y ~ x + offset(log(t)) + (0 + x || g)",
        "y ~ I(2**10 * x) + I(x ** -2)",
    ],
)
def test_ordinary_formulas_still_pass(formula):
    check_formula(formula)
