"""A dataset folder that appears at its target only when complete.

:func:`staged_folder` gives the writer a hidden folder beside the target
(``.NAME.partial-XXXX``) and renames it to the target when the ``with`` block ends
without an error, so a reader never sees a half-written dataset at the target:
an interrupted, failed or disk-full run removes the partial folder (and says
so), and one killed outright (``SIGKILL``) leaves at most the hidden folder,
which the next run at that target removes.

Only one writer at a time may own a target: the claim is an exclusive lock
(``flock``) on a hidden lock file beside it (``.NAME.lock``), released by the
kernel even when the process is killed, so of two concurrent runs exactly one
proceeds and the other is refused before any work. An existing target is
replaced only with ``force=True``, and only when it holds nothing but a
dataset's files.

Examples
--------
>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with staged_folder(root / "data.parquet") as partial:
...     _ = (partial / "part.00000.parquet").write_bytes(b"...")
...     (root / "data.parquet").exists()
False
>>> sorted(p.name for p in (root / "data.parquet").iterdir())
['part.00000.parquet']
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import interrupts
from ..errors import ParameterError

__all__ = ["staged_folder", "is_dataset_file"]


def is_dataset_file(name: str) -> bool:
    """Whether a file name is one a partitioned dataset is made of (``part.00012.parquet``)."""
    return name.startswith("part.") and name.endswith(".parquet")


def _hidden(target: Path, suffix: str) -> Path:
    return target.parent / f".{target.name}.{suffix}"


@contextmanager
def _lock(target: Path) -> Iterator[None]:
    """Hold the exclusive claim on ``target`` (non-blocking: a second writer is refused)."""
    import fcntl

    path = _hidden(target, "lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            owner = _read_owner(path)
            raise ParameterError(
                f"another run{owner} is writing {str(target)!r}; wait for it to finish or choose another --out",
                parameter="out",
            ) from None
        # the lock file may have been removed by the writer that held it (it removes it when
        # done): a lock on a removed file claims nothing, so lock the current one instead
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        yield
    finally:
        try:
            os.unlink(path)  # while still locked: a waiting writer then finds a new file
        finally:
            os.close(fd)


def _read_owner(path: Path) -> str:
    try:
        host, pid = path.read_text().split()
        return f" (pid {pid} on {host})"
    except (OSError, ValueError):
        return ""


def _count_parts(folder: Path) -> int:
    try:
        return sum(1 for p in folder.iterdir() if is_dataset_file(p.name))
    except OSError:
        return 0


def _remove(folder: Path) -> None:
    """Remove a folder a straggling writer (a task finishing after a cancel) may still add a file to."""
    for _ in range(10):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.2)
    shutil.rmtree(folder)  # the error, if it still cannot be removed


def check_replaceable(target: Path, force: bool) -> None:
    """Refuse a target that exists, unless ``force`` and it holds only a dataset's files."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ParameterError(
            f"output {str(target)!r} exists and is a file; a partitioned dataset is a directory", parameter="out"
        )
    others = sorted(p.name for p in target.iterdir() if not is_dataset_file(p.name))
    if others:
        raise ParameterError(
            f"output directory {str(target)!r} holds other files than a dataset's parts (e.g. {others[0]!r}); "
            f"choose another directory",
            parameter="out",
        )
    if not force:
        raise ParameterError(f"output directory {str(target)!r} exists; pass --force to replace it", parameter="out")


@contextmanager
def staged_folder(
    target: str | os.PathLike, *, force: bool = False, report: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Claim ``target``, yield an empty hidden folder beside it, and publish it there on success.

    Parameters
    ----------
    target : path
        The dataset folder to create (or, with ``force``, replace).
    force : bool
        Replace an existing dataset folder (one holding only ``part.*.parquet`` files).
    report : callable, optional
        Called with one line for the user when something was removed: a partial
        folder left by a killed run, or this run's own after an error or interrupt.

    Raises
    ------
    ParameterError
        Another run holds the target, or the target exists (without ``force``, or
        holding other files), before anything is written.
    """
    target = Path(os.path.abspath(target))
    say = report or (lambda line: None)
    if not target.parent.is_dir():
        raise ParameterError(f"the folder of output {str(target)!r} does not exist; create it first", parameter="out")
    with _lock(target):
        check_replaceable(target, force)
        for left in sorted(target.parent.glob(f".{glob.escape(target.name)}.partial-*")):
            # we hold the lock: no run is writing it, a killed one left it
            parts = _count_parts(left)
            _remove(left)
            say(f"removed {left} ({parts} part(s)), left by an earlier run that was killed")
        # a name of this run's own: a task of a killed run still finishing on a worker writes
        # into that run's (removed) folder, never into this one
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        os.chmod(partial, 0o777 & ~_umask())  # a folder's usual mode (mkdtemp's is private to us)
        try:
            yield partial
            interrupts.raise_if_interrupted()  # a Ctrl-C swallowed by a finalizer still stops publishing
        except BaseException as exc:
            parts = _count_parts(partial)
            _remove(partial)
            what = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
            kept = "left as it was" if target.exists() else "not created"
            say(f"{what}: removed the incomplete dataset {partial} ({parts} part(s) written); {target} was {kept}")
            raise
        try:
            _publish(partial, target)
        except OSError:  # e.g. something else created the target meanwhile: never merged into
            _remove(partial)
            say(f"failed to move the dataset into place: removed {partial}")
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(partial: Path, target: Path) -> None:
    """Rename the complete folder to ``target``; an existing target (checked and forced) is swapped out."""
    if target.exists():
        old = _hidden(target, "replaced")
        if old.exists():
            _remove(old)
        os.rename(target, old)
        os.rename(partial, target)
        _remove(old)
    else:
        os.rename(partial, target)
