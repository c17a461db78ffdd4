"""The formula splitter and lme4's expansion of bar terms."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glmmsim.errors import FormulaError
from glmmsim.model.formula import parse_formula, split_top_level
from glmmsim.model.terms import expand_bars, has_intercept


def terms_of(formula):
    return [(t.expr, t.factor) for t in expand_bars(parse_formula(formula).bars)]


@pytest.mark.parametrize(
    "formula, fixed",
    [
        ("y ~ 1 + x", "1 + x"),
        ("y ~ x + (1 | g)", "x"),
        ("y ~ (1 | g)", "1"),
        ("y ~ 0 + (1 | g)", "0"),
        ("y ~ x - 1 + (x | g)", "x - 1"),
        ("y ~ -1 + x + (1|g)", "1 - 1 + x"),
        ("y ~ x*cond + np.log(z) + (1|g)", "x*cond + np.log(z)"),
        ("y ~ (a + b):c + (1|g)", "(a + b):c"),
        ("y ~ I(x - 1e-3) + (1|g)", "I(x - 1e-3)"),
    ],
)
def test_fixed_part_is_everything_but_the_bars(formula, fixed):
    assert parse_formula(formula).fixed == fixed


@pytest.mark.parametrize(
    "formula, expected",
    [
        ("y ~ (x | g)", [("x", "g")]),
        ("y ~ (1 + x | g)", [("1 + x", "g")]),
        ("y ~ (0 + x | g)", [("0 + x", "g")]),
        ("y ~ (-1 + x | g)", [("-1 + x", "g")]),
        ("y ~ (x || g)", [("1", "g"), ("0 + x", "g")]),
        ("y ~ (0 + x + z || g)", [("0 + x", "g"), ("0 + z", "g")]),
        ("y ~ (x * z || g)", [("1", "g"), ("0 + x", "g"), ("0 + z", "g"), ("0 + x:z", "g")]),
        ("y ~ (1 | a/b)", [("1", "a"), ("1", "a:b")]),
        ("y ~ (1 | a/b/c)", [("1", "a"), ("1", "a:b"), ("1", "a:b:c")]),
        ("y ~ (1 | a:b)", [("1", "a:b")]),
        ("y ~ (x || a/b)", [("1", "a"), ("0 + x", "a"), ("1", "a:b"), ("0 + x", "a:b")]),
        ("y ~ (1|subject) + (1|item)", [("1", "subject"), ("1", "item")]),
        ("y ~ ((1 | g))", [("1", "g")]),
    ],
)
def test_bar_terms_expand_as_lme4_does(formula, expected):
    assert terms_of(formula) == expected


def test_lme4_rank_lists_inner_nesting_level_first():
    terms = expand_bars(parse_formula("y ~ (1 | a/b) + (1 | c)").bars)
    assert [t.factor for t in sorted(terms, key=lambda t: t.lme4_rank)] == ["a:b", "a", "c"]


@pytest.mark.parametrize(
    "expr, expected",
    [("1", True), ("x", True), ("1 + x", True), ("0 + x", False), ("-1 + x", False), ("x - 1", False)],
)
def test_intercept_rule(expr, expected):
    assert has_intercept(expr) is expected


@pytest.mark.parametrize(
    "formula, message",
    [
        ("y ~ x + (1 | g", "unbalanced parentheses"),
        ("y ~ x + 1 | g)", "unbalanced parentheses"),
        ("y ~ x + ( | g)", "nothing left of the bar"),
        ("y ~ x + (1 | )", "no grouping factor"),
        ("x + (1 | g)", "exactly one '~'"),
        (" ~ x", "no response"),
        ("y ~ ", "nothing right of '~'"),
        ("y ~ x + 1 | g", "bar outside parentheses"),
        ("y ~ x +", "dangling operator"),
        ("y ~ x + + z", "dangling operator"),
        ("y ~ x * (1 | g)", "bar terms must be separate"),
        ("y ~ x - (1 | g)", "cannot be subtracted"),
        ("y ~ (0 | g)", "has no coefficient"),
        ("y ~ (0 || g)", "has no coefficient"),
        ("y ~ (1 | g + h)", "is not valid"),
        ("y ~ (1 | a:a)", "repeats a column"),
        ("y ~ x ~ z", "exactly one '~'"),
        ("log(y) ~ x", "plain column name"),
    ],
)
def test_malformed_formulas_are_rejected_with_a_reason(formula, message):
    with pytest.raises(FormulaError, match=message):
        expand_bars(parse_formula(formula).bars)


def test_formula_errors_are_value_errors():
    with pytest.raises(ValueError):
        parse_formula("y ~ (1 |")


names = st.sampled_from(["x", "z", "x1", "cond", "w_2"])
groups = st.sampled_from(["g", "subject", "item", "a:b", "school/class"])


@st.composite
def bar_terms(draw):
    slopes = draw(st.lists(names, max_size=3, unique=True))
    intercept = draw(st.sampled_from(["", "1", "0"]))
    parts = ([intercept] if intercept else []) + slopes
    if not parts or parts == ["0"]:
        parts = ["1"]
    return " + ".join(parts), draw(groups), draw(st.booleans())


@given(
    fixed=st.lists(names, max_size=4, unique=True),
    bars=st.lists(bar_terms(), max_size=4),
    interleave=st.randoms(use_true_random=False),
)
def test_splitter_round_trips_any_arrangement(fixed, bars, interleave):
    bar_of = {f"({lhs} {'||' if double else '|'} {group})": (lhs, group, double) for lhs, group, double in bars}
    pieces = fixed + [f"({lhs} {'||' if double else '|'} {group})" for lhs, group, double in bars]
    interleave.shuffle(pieces)
    parsed = parse_formula("y ~ " + (" + ".join(pieces) or "1"))
    assert [(b.lhs, b.group.replace(" ", ""), b.double) for b in parsed.bars] == [
        bar_of[p] for p in pieces if p in bar_of
    ]
    fixed_in_order = [p for p in pieces if not p.startswith("(")]
    assert parsed.fixed == (" + ".join(fixed_in_order) or "1")


@given(st.text(alphabet="()+-|~xg 1", max_size=25))
def test_splitter_never_fails_with_anything_but_a_formula_error(text):
    try:
        expand_bars(parse_formula(text).bars)
    except FormulaError:
        pass


def test_split_top_level_ignores_nested_and_quoted_separators():
    assert split_top_level("a + f(b + c) + 'd + e'", "+") == [("", "a"), ("+", "f(b + c)"), ("+", "'d + e'")]


# ---------------------------------------------------------------- a formula is data, never code
from glmmsim.model.formula import MAX_NESTING  # noqa: E402
from glmmsim.model.formula_safety import check_formula  # noqa: E402


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ 1 + C(cond, Sum) + np.log(x) + I(x**2) + (1 + x | subject)",
        "y ~ x*z + x:z + (x || g) + (1 | a/b)",
        "y ~ C(c, Treatment('b')) + C(d, levels=['a', 'b']) + C(e, contr.sum)",
        "y ~ center(x) + poly(x, 2) + {x + 1} + `my col` + scale(z)",
        "y ~ 0 + x",
        "y ~ x - 1 + offset(np.log(n))",
        "y ~ I(cond == 'b') + I(x > 0.5)",
        "y ~ (x + z)**2",
    ],
)
def test_whitelisted_formulas_pass(formula):
    check_formula(formula)  # no error


@pytest.mark.parametrize(
    "formula, piece",
    [
        ("y ~ I(x + 0*__import__('os').system('touch /tmp/pwned'))", "__import__('os').system"),
        ("y ~ x.__class__", "x.__class__"),
        ("y ~ x[0]", "x[0]"),
        ("y ~ I([a for a in x])", "[a for a in x]"),
        ("y ~ eval('1')", "eval"),
        ("y ~ I(10**10**10)", "10 ** 10 ** 10"),
        ("y ~ I(x ** 100000)", "x ** 100000"),
        ("y ~ I('a' * 10**9)", "'a' * 10 ** 9"),
        ("y ~ np.linalg.norm(x)", "np.linalg.norm"),
        ("y ~ x + (I(open('f')) | g)", "open"),
        ("y ~ np.log(*x)", "*x"),
        ("y ~ __x__", "__x__"),
        ("y ~ C(x, __builtins__)", "__builtins__"),
    ],
)
def test_code_in_a_formula_is_refused_naming_the_piece(formula, piece):
    with pytest.raises(FormulaError, match="is not allowed") as info:
        check_formula(formula)
    assert info.value.term == piece


def test_lambda_is_refused():
    with pytest.raises(FormulaError) as info:
        check_formula("y ~ I((lambda: 1)())")
    assert info.value.term is not None


def test_model_checks_the_formula_by_default_and_trusted_formula_opts_out(tmp_path):
    import pandas as pd

    import glmmsim

    marker = tmp_path / "ran"
    formula = f"y ~ I(x + 0*__import__('pathlib').Path({str(marker)!r}).touch())"
    with pytest.raises(FormulaError, match="is not allowed"):
        glmmsim.Model(formula, fixed={"Intercept": 0, "I(x + 0*__import__('pathlib').Path": 0}, sigma=1)
    assert not marker.exists()
    # a user's own formula with a transform outside the whitelist: allowed when trusted
    own = "y ~ np.hypot(x, x)"
    with pytest.raises(FormulaError):
        glmmsim.Model(own, fixed={"Intercept": 0, "np.hypot(x, x)": 1}, sigma=1)
    m = glmmsim.Model(own, fixed={"Intercept": 0, "np.hypot(x, x)": 1}, sigma=1, trusted_formula=True)
    out = m.simulate(pd.DataFrame({"x": [3.0, 4.0]}), seed=1)
    assert out.shape == (2, 2)
    assert m.replace(sigma=2).sigma == 2  # replace keeps the trust


def test_deep_nesting_is_refused_before_any_quadratic_pass():
    # 5,000 nested parentheses took 34 s; the depth cap stops at the first pass over the text
    deep = "y ~ " + "(" * 5000 + "x" + ")" * 5000
    with pytest.raises(FormulaError, match=f"more than {MAX_NESTING} deep"):
        parse_formula(deep)
    ok = "y ~ " + "(" * 50 + "x" + ")" * 50
    assert parse_formula(ok).fixed.strip("()") == "x"


def test_formulas_with_many_terms_pass_the_check():
    # a chain of 5,000 terms is 5,000 small trees, not one tree Python's parser refuses
    check_formula("y ~ " + " + ".join(f"x{i}" for i in range(5000)) + " + (1 | g)")
    check_formula("y ~ " + "(" * 99 + "x + np.log(z)" + ")" * 99)
