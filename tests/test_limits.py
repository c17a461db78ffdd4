"""The size budget: defaults, the environment variables, overrides."""

import os
import subprocess
import sys

import pytest

import glmmsim
from glmmsim import limits
from glmmsim.errors import ParameterError
from glmmsim.limits import check_rows, check_total_rows


def test_environment_variables_set_the_limits():
    code = "import glmmsim; print(glmmsim.limits.max_rows, glmmsim.limits.max_total_rows)"
    env = {**os.environ, "GLMMSIM_MAX_ROWS": "1e8", "GLMMSIM_MAX_TOTAL_ROWS": "123"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["100000000", "123"]


def test_override_restores_the_limits_and_refuses_unknown_names():
    before = limits.max_rows
    with limits.override(max_rows=5):
        with pytest.raises(ParameterError, match="would make 6 rows; the limit is 5 rows"):
            check_rows(6, "a design")
    assert limits.max_rows == before
    with pytest.raises(ParameterError, match="unknown limit"):
        with limits.override(max_cols=5):
            pass


def test_total_rows_are_exact_python_integers():
    check_total_rows(10, 10)
    with pytest.raises(ParameterError, match=r"1e\+23 replicates of 48 rows would write 4\.8e\+24 rows"):
        check_total_rows(48, 10**23)


@pytest.mark.parametrize("bad", ["10", 0, -5, 2.5, float("inf"), True, None])
def test_a_bad_limit_fails_where_it_is_set(bad):
    before = limits.max_rows
    with pytest.raises(ParameterError, match="glmmsim.limits.max_rows must be a whole number >= 1"):
        limits.max_rows = bad
    with pytest.raises(ParameterError, match="glmmsim.limits.max_rows must be a whole number >= 1"):
        with limits.override(max_rows=bad):
            pass
    assert limits.max_rows == before


def test_limits_accept_whole_floats_and_refuse_unknown_attributes():
    before = limits.max_total_rows
    try:
        limits.max_total_rows = 1e8
        assert limits.max_total_rows == 100_000_000 and isinstance(limits.max_total_rows, int)
    finally:
        limits.max_total_rows = before
    with pytest.raises(ParameterError, match="unknown limit 'max_cols'"):
        limits.max_cols = 5


# ---------------------------------------------------------------- every limit of issue 16
from glmmsim.limits import LIMITS, check_limit  # noqa: E402


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_limit_is_named_with_how_to_raise_it(name):
    with limits.override(**{name: 10}):
        with pytest.raises(ParameterError) as info:
            check_limit(11, name, "this request")
    message = str(info.value)
    assert f"the limit {name} is 10" in message
    assert f"glmmsim.limits.{name} = N" in message and f"GLMMSIM_{name.upper()}" in message
    check_limit(10, name, "this request")  # at the limit is allowed


@pytest.mark.parametrize("name", ["max_cells", "max_replicates", "max_formula_terms"])
def test_every_limit_is_read_from_the_environment(name):
    import subprocess
    import sys

    code = f"import glmmsim; print(glmmsim.limits.{name})"
    env = {**__import__("os").environ, f"GLMMSIM_{name.upper()}": "1234"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1234"


def test_the_module_is_the_limits_whether_imported_or_reached_as_an_attribute():
    import glmmsim.limits as imported

    assert imported is glmmsim.limits is limits
    before = limits.max_rows
    try:
        imported.max_rows = 1e8
        assert glmmsim.limits.max_rows == 100_000_000
        assert "max_rows=100,000,000" in repr(glmmsim.limits) and "max_rows" in dir(glmmsim.limits)
    finally:
        limits.max_rows = before
    with pytest.raises(ParameterError, match="unknown limit 'max_row'"):
        limits.max_row = 5  # a misspelt limit is refused, not kept as an attribute no check reads
    assert not hasattr(limits, "max_row")


def test_glmmsim_config_of_glmmsim_0_2_still_works_with_a_warning():
    before = limits.max_rows
    try:
        with pytest.warns(FutureWarning, match="glmmsim.config is now glmmsim.limits"):
            glmmsim.config.max_rows = 10**8
        assert limits.max_rows == 10**8
        with pytest.warns(FutureWarning):
            with glmmsim.config.override(max_rows=5):
                assert limits.max_rows == 5
    finally:
        limits.max_rows = before
    assert "config" not in glmmsim.__all__ and "config" not in dir(glmmsim)
