"""Data writers: the Parquet dependency's errors say what is wrong and how to fix it."""

import sys

import pandas as pd
import pytest

from glmmsim.errors import GlmmsimError
from glmmsim.study.writers import write_data


def test_missing_pyarrow_names_the_extra_as_the_readme_spells_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail as if absent
    with pytest.raises(GlmmsimError, match=r'not installed; .*`pip install "\.\[parquet\]"`'):
        write_data(pd.DataFrame({"a": [1]}), str(tmp_path / "d.parquet"))


def test_a_pyarrow_that_fails_to_import_reports_the_real_error(tmp_path, monkeypatch):
    # what a pyarrow built for numpy 2 does next to numpy 1: installed, but its import fails
    fake = tmp_path / "site" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('numpy.core.multiarray failed to import')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "pyarrow", raising=False)
    with pytest.raises(GlmmsimError, match=r"installed but fails to import \(ImportError: numpy.core.multiarray failed") as info:
        write_data(pd.DataFrame({"a": [1]}), str(tmp_path / "d.parquet"))
    assert "not installed" not in str(info.value)
    assert not (tmp_path / "d.parquet").exists()
