"""A partitioned dataset appears at its target only when complete; one writer per target."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from glmmsim.dask.staged_folder import staged_folder
from glmmsim.errors import ParameterError


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_target_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "data.parquet"
    with staged_folder(target) as partial:
        (partial / "part.00000.parquet").write_bytes(b"x")
        assert not target.exists() and partial.parent == tmp_path and partial.name.startswith(".")
    assert _names(target) == ["part.00000.parquet"]
    assert _names(tmp_path) == ["data.parquet"]  # no partial folder, no lock file left


def test_an_error_removes_the_partial_folder_and_says_so(tmp_path):
    target = tmp_path / "data.parquet"
    said: list[str] = []
    with pytest.raises(OSError, match="disk full"):
        with staged_folder(target, report=said.append) as partial:
            (partial / "part.00000.parquet").write_bytes(b"x")
            raise OSError("disk full")
    assert _names(tmp_path) == []
    assert len(said) == 1 and said[0].startswith("failed: removed") and "1 part(s)" in said[0]
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(target, report=said.append):
            raise KeyboardInterrupt
    assert said[1].startswith("interrupted: removed") and "not created" in said[1]
    assert _names(tmp_path) == []


def test_an_existing_dataset_is_replaced_only_with_force_and_kept_on_failure(tmp_path):
    target = tmp_path / "data.parquet"
    target.mkdir()
    (target / "part.00000.parquet").write_bytes(b"old")
    with pytest.raises(ParameterError, match="--force"):
        with staged_folder(target):
            pytest.fail("must not start writing")
    with pytest.raises(RuntimeError):
        with staged_folder(target, force=True) as partial:
            (partial / "part.00000.parquet").write_bytes(b"new")
            raise RuntimeError("worker died")
    assert (target / "part.00000.parquet").read_bytes() == b"old"  # the old dataset, whole
    with staged_folder(target, force=True) as partial:
        (partial / "part.00000.parquet").write_bytes(b"new")
    assert (target / "part.00000.parquet").read_bytes() == b"new"
    assert _names(tmp_path) == ["data.parquet"]


def test_a_folder_holding_anything_else_is_never_replaced(tmp_path):
    target = tmp_path / "data.parquet"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="notes.txt") as err:
        with staged_folder(target, force=True):
            pass
    assert err.value.parameter == "out"
    (tmp_path / "file.parquet").write_text("a file")
    with pytest.raises(ParameterError, match="is a file"):
        with staged_folder(tmp_path / "file.parquet", force=True):
            pass
    assert (target / "notes.txt").read_text() == "mine"


def test_a_second_writer_is_refused_while_the_first_holds_the_target(tmp_path):
    target = tmp_path / "data.parquet"
    with staged_folder(target):
        with pytest.raises(ParameterError, match=rf"another run \(pid {os.getpid()} .*is writing"):
            with staged_folder(target, force=True):
                pass
    # released: the next writer gets it
    with staged_folder(target, force=True) as partial:
        (partial / "part.00000.parquet").write_bytes(b"x")
    assert _names(target) == ["part.00000.parquet"]


def test_a_killed_writer_leaves_no_dataset_and_the_next_run_removes_its_leftovers(tmp_path):
    target = tmp_path / "data.parquet"
    script = textwrap.dedent(
        f"""
        import os, signal
        from glmmsim.dask.staged_folder import staged_folder
        with staged_folder({str(target)!r}) as partial:
            (partial / "part.00000.parquet").write_bytes(b"x")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=os.environ, capture_output=True)
    assert proc.returncode == -9
    assert not target.exists()  # nothing that looks like a dataset
    (left,) = tmp_path.glob(".data.parquet.partial-*")
    assert _names(left) == ["part.00000.parquet"]
    said: list[str] = []
    with staged_folder(target, report=said.append) as partial:  # the kernel released the dead run's lock
        assert _names(partial) == []
    assert "left by an earlier run that was killed" in said[0]
    assert _names(tmp_path) == ["data.parquet"]


def test_of_two_concurrent_writers_exactly_one_wins(tmp_path):
    target = tmp_path / "data.parquet"
    script = textwrap.dedent(
        f"""
        import sys, time
        from glmmsim.dask.staged_folder import staged_folder
        from glmmsim.errors import ParameterError
        try:
            with staged_folder({str(target)!r}) as partial:
                (partial / ("part.00000.parquet")).write_text(sys.argv[1])
                time.sleep(1.0)
        except ParameterError as exc:
            print("refused:", exc)
            sys.exit(1)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, name], env=os.environ, stdout=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    results = [(p.wait(timeout=60), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    winner = "a" if results[0][0] == 0 else "b"
    assert (target / "part.00000.parquet").read_text() == winner
    assert "refused:" in results[[0, 1][winner == "a"]][1]
