"""glmmsim.outputs: outputs appear whole or not at all, claimed atomically, never over a non-regular file."""

from __future__ import annotations

import errno
import os
import pickle
import stat

import pytest

from glmmsim.errors import GlmmsimError
from glmmsim.outputs import OutputClaims, OutputError, check_distinct, check_target, claim, is_partial
from ._no_hang import no_hang


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def test_the_target_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "t.csv"
    with claim(target) as partial:
        _write(partial, "a\n")
        assert not target.exists() and is_partial(partial) and partial.endswith("-t.csv")
        assert os.path.dirname(partial) == str(tmp_path)  # beside the target: publishing is a rename
    assert target.read_text() == "a\n" and os.listdir(tmp_path) == ["t.csv"]


def test_of_two_claims_on_one_path_exactly_one_wins(tmp_path):
    target = tmp_path / "t.csv"
    first, second = OutputClaims(), OutputClaims()
    a = first.add(target, option="out")  # both pass the early check: nothing exists yet
    b = second.add(target, option="out")
    _write(a, "first\n")
    _write(b, "second\n")
    with first:
        pass
    with pytest.raises(OutputError) as info:
        with second:
            pass
    assert info.value.reason == "exists" and info.value.file == str(target) and info.value.path == ("out",)
    assert isinstance(info.value, GlmmsimError)
    assert target.read_text() == "first\n"
    assert os.listdir(tmp_path) == ["t.csv"]  # the loser's partial file is gone


def test_force_replaces_atomically_and_keeps_the_permissions(tmp_path):
    target = tmp_path / "t.csv"
    _write(target, "old\n")
    os.chmod(target, 0o640)
    with claim(target, force=True) as partial:
        _write(partial, "new\n")
        assert target.read_text() == "old\n"  # readers see the old file until the new one is whole
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o640


def test_an_existing_file_is_never_replaced_without_force(tmp_path):
    target = tmp_path / "t.csv"
    _write(target, "keep\n")
    with pytest.raises(OutputError, match="exists; pass --force"):
        with claim(target):
            pass
    assert target.read_text() == "keep\n" and os.listdir(tmp_path) == ["t.csv"]


def test_a_file_created_while_writing_is_not_replaced(tmp_path):
    target = tmp_path / "t.csv"
    with pytest.raises(OutputError, match="exists"):
        with claim(target) as partial:
            _write(partial, "mine\n")
            _write(target, "theirs\n")  # another process got there first
    assert target.read_text() == "theirs\n" and os.listdir(tmp_path) == ["t.csv"]


@pytest.mark.parametrize("force", [False, True])
def test_a_fifo_is_refused_not_opened(tmp_path, force):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with no_hang(), pytest.raises(OutputError, match="is a FIFO") as info:
        with claim(fifo, force=force):
            pass
    assert info.value.reason == "not_regular" and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_fifo_appearing_while_writing_is_not_replaced_even_with_force(tmp_path):
    target = tmp_path / "t.csv"
    with no_hang(), pytest.raises(OutputError, match="FIFO"):
        with claim(target, force=True) as partial:
            _write(partial, "x\n")
            os.mkfifo(target)
    assert stat.S_ISFIFO(os.lstat(target).st_mode) and os.listdir(tmp_path) == ["t.csv"]


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_devices_are_refused(device):
    with no_hang(), pytest.raises(OutputError, match="character device") as info:
        check_target(device, force=True, option="out")
    assert info.value.path == ("out",)


def test_a_directory_and_a_missing_folder_are_refused(tmp_path):
    with pytest.raises(OutputError, match="is a directory") as info:
        check_target(tmp_path)
    assert info.value.reason == "directory"
    with pytest.raises(OutputError, match="does not exist") as info:
        check_target(tmp_path / "no" / "t.csv")
    assert info.value.reason == "no_directory"


def test_a_symlink_is_followed_as_open_would(tmp_path):
    real = tmp_path / "real.csv"
    link = tmp_path / "link.csv"
    _write(real, "old\n")
    link.symlink_to(real)
    with claim(link, force=True) as partial:
        _write(partial, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_failure_removes_the_partial_file_and_says_so(tmp_path):
    target = tmp_path / "t.csv"
    told = []
    with pytest.raises(KeyboardInterrupt):
        with claim(target, on_discard=lambda t, p: told.append((t, p))) as partial:
            _write(partial, "half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == [] and told == [(str(target), partial)]


def test_a_write_error_becomes_an_output_error_naming_the_removed_partial(tmp_path):
    target = tmp_path / "t.csv"
    with pytest.raises(OutputError) as info:
        with claim(target, option="out") as partial:
            _write(partial, "half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    err = info.value
    assert err.reason == "write" and err.partial == partial and err.path == ("out",)
    assert "No space left on device" in str(err) and "nothing was written" in str(err) and partial in str(err)
    assert os.listdir(tmp_path) == []
    again = pickle.loads(pickle.dumps(err))  # process pools and Dask pass errors pickled
    assert (type(again), str(again), again.reason, again.partial, again.path) == (
        OutputError, str(err), "write", partial, ("out",))


def test_outputs_of_one_command_are_published_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    with pytest.raises(OutputError, match="b.csv' exists"):
        with OutputClaims() as outs:
            _write(outs.add(a, option="out"), "a\n")
            _write(outs.add(b, option="simulations"), "b\n")
            _write(b, "someone else's\n")
    assert not a.exists() and b.read_text() == "someone else's\n" and sorted(os.listdir(tmp_path)) == ["b.csv"]


def test_two_outputs_may_not_be_the_same_file(tmp_path):
    _write(tmp_path / "x.csv", "")
    os.link(tmp_path / "x.csv", tmp_path / "hard.csv")
    (tmp_path / "soft.csv").symlink_to(tmp_path / "x.csv")
    for other in ("x.csv", "./x.csv", "soft.csv", "hard.csv"):
        with pytest.raises(OutputError, match="--out and --simulations are the same file") as info:
            check_distinct({"out": str(tmp_path / "x.csv"), "simulations": str(tmp_path / other)})
        assert info.value.reason == "same_file" and info.value.path == ("simulations",)
    check_distinct({"out": str(tmp_path / "x.csv"), "simulations": None, "plot": str(tmp_path / "y.png")})


def test_a_folder_is_claimed_the_same_way(tmp_path):
    target = tmp_path / "data.parquet"
    with claim(target, directory=True) as partial:
        _write(os.path.join(partial, "part.0.parquet"), "1")
        assert not target.exists()
    assert os.listdir(target) == ["part.0.parquet"]
    with pytest.raises(OutputError, match="exists"):
        with claim(target, directory=True) as partial:
            _write(os.path.join(partial, "part.0.parquet"), "2")
    with claim(target, directory=True, force=True) as partial:
        _write(os.path.join(partial, "part.9.parquet"), "3")
    assert os.listdir(target) == ["part.9.parquet"] and os.listdir(tmp_path) == ["data.parquet"]


def test_a_folder_without_write_permission_is_said_before_any_work(tmp_path, monkeypatch):
    real_access = os.access
    # as root every folder is writable: the permission check is made to answer as for a user
    monkeypatch.setattr(os, "access", lambda path, mode: False if os.fspath(path) == str(tmp_path) else real_access(path, mode))
    with pytest.raises(OutputError, match="no permission to create files in folder") as info:
        check_target(tmp_path / "t.csv", option="out")
    assert info.value.reason == "no_permission" and info.value.path == ("out",)
