"""Data writers: the Parquet dependency's errors say what is wrong and how to fix it; a file is written whole or not at all."""

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


def _replicates(n_good: int, fail: BaseException):
    """Frames as `simulate --replicates` yields them, failing after `n_good` of them."""
    for r in range(n_good):
        yield pd.DataFrame({"replicate": [r + 1] * 3, "y": [0.5, 1.5, 2.5]})
    raise fail


@pytest.mark.parametrize("name", ["d.parquet", "d.csv", "d.csv.gz", "d.tsv"])
@pytest.mark.parametrize("fail", [KeyboardInterrupt(), GlmmsimError("replicate 3 failed")])
def test_a_write_that_fails_midway_leaves_no_file(tmp_path, name, fail):
    with pytest.raises(type(fail)):
        write_data(_replicates(2, fail), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["d.parquet", "d.csv"])
def test_a_failed_rewrite_keeps_the_old_file_whole(tmp_path, name):
    old = pd.DataFrame({"replicate": [1], "y": [9.0]})
    write_data(old, tmp_path / name)
    with pytest.raises(KeyboardInterrupt):
        write_data(_replicates(2, KeyboardInterrupt()), tmp_path / name)
    read = pd.read_parquet if name.endswith(".parquet") else pd.read_csv
    pd.testing.assert_frame_equal(read(tmp_path / name), old)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_force_false_refuses_an_existing_file(tmp_path):
    from glmmsim.outputs import OutputError

    write_data(pd.DataFrame({"y": [1]}), tmp_path / "d.csv")
    with pytest.raises(OutputError, match="exists") as info:
        write_data(pd.DataFrame({"y": [2]}), tmp_path / "d.csv", force=False)
    assert info.value.reason == "exists" and pd.read_csv(tmp_path / "d.csv")["y"].tolist() == [1]
