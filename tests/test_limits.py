"""The size budget: defaults, the environment variables, overrides."""

import os
import subprocess
import sys

import pytest

from glmmsim.errors import ParameterError
from glmmsim.limits import check_rows, check_total_rows, config


def test_environment_variables_set_the_limits():
    code = "import glmmsim; print(glmmsim.config.max_rows, glmmsim.config.max_total_rows)"
    env = {**os.environ, "GLMMSIM_MAX_ROWS": "1e8", "GLMMSIM_MAX_TOTAL_ROWS": "123"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["100000000", "123"]


def test_override_restores_the_limits_and_refuses_unknown_names():
    before = config.max_rows
    with config.override(max_rows=5):
        with pytest.raises(ParameterError, match="would make 6 rows; the limit is 5 rows"):
            check_rows(6, "a design")
    assert config.max_rows == before
    with pytest.raises(ParameterError, match="unknown limit"):
        with config.override(max_cols=5):
            pass


def test_total_rows_are_exact_python_integers():
    check_total_rows(10, 10)
    with pytest.raises(ParameterError, match=r"1e\+23 replicates of 48 rows would write 4\.8e\+24 rows"):
        check_total_rows(48, 10**23)


@pytest.mark.parametrize("bad", ["10", 0, -5, 2.5, float("inf"), True, None])
def test_a_bad_limit_fails_where_it_is_set(bad):
    before = config.max_rows
    with pytest.raises(ParameterError, match="config.max_rows must be a whole number >= 1"):
        config.max_rows = bad
    with pytest.raises(ParameterError, match="config.max_rows must be a whole number >= 1"):
        with config.override(max_rows=bad):
            pass
    assert config.max_rows == before


def test_limits_accept_whole_floats_and_refuse_unknown_attributes():
    before = config.max_total_rows
    try:
        config.max_total_rows = 1e8
        assert config.max_total_rows == 100_000_000 and isinstance(config.max_total_rows, int)
    finally:
        config.max_total_rows = before
    with pytest.raises(ParameterError, match="unknown limit 'max_cols'"):
        config.max_cols = 5


# ---------------------------------------------------------------- every limit of issue 16
from glmmsim.limits import LIMITS, check_limit  # noqa: E402


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_limit_is_named_with_how_to_raise_it(name):
    with config.override(**{name: 10}):
        with pytest.raises(ParameterError) as info:
            check_limit(11, name, "this request")
    message = str(info.value)
    assert f"the limit {name} is 10" in message
    assert f"glmmsim.config.{name} = N" in message and f"GLMMSIM_{name.upper()}" in message
    check_limit(10, name, "this request")  # at the limit is allowed


@pytest.mark.parametrize("name", ["max_cells", "max_replicates", "max_formula_terms"])
def test_every_limit_is_read_from_the_environment(name):
    import subprocess
    import sys

    code = f"import glmmsim; print(glmmsim.config.{name})"
    env = {**__import__("os").environ, f"GLMMSIM_{name.upper()}": "1234"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1234"
