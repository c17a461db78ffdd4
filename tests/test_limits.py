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
