"""Output claims: a file (or folder) appears at its target path whole, or not at all.

Every file glmmsim writes goes through :func:`claim` (one output) or :class:`OutputClaims`
(several outputs of one command). The data are written to a *partial* file beside the
target, named ``.glmmsim-partial-<token>-<name>`` (hidden, and ending in the target's own
name so the format and compression are read from the same extension). Only when the writer
has finished is the partial file published under the target name:

* without ``force`` it is hard-linked to the target name, which fails if that name exists:
  of two processes claiming one path exactly one wins, and an existing file is never
  replaced (no check-then-write race);
* with ``force`` it is renamed over the target (``os.replace``, atomic), so a reader sees the
  old file or the new one, never a mix;
* a target that exists and is not a regular file (a FIFO, a device, a socket, a directory)
  is refused, even with ``force``, and never opened.

If the writer fails or is interrupted (an exception, Ctrl-C), the partial file is removed and
the target is untouched; a write error (a full disk, no permission) becomes an
:class:`OutputError` that names the target and the removed partial file. After a SIGKILL only
the partial file can remain; its name says what it is, and no glmmsim reader takes it for
output (Parquet dataset readers skip hidden files too).

Examples
--------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> target = os.path.join(folder, "table.csv")
>>> with claim(target) as partial:
...     _ = open(partial, "w").write("x\\n1\\n")
...     print(os.path.basename(partial).startswith(".glmmsim-partial-"), os.path.exists(target))
True False
>>> open(target).read()
'x\\n1\\n'
>>> with claim(target) as partial:  # doctest: +ELLIPSIS
...     pass
Traceback (most recent call last):
...
glmmsim.outputs.OutputError: output file '...table.csv' exists; pass --force to replace it (force=True in Python)
>>> sorted(os.listdir(folder))  # the loser left nothing behind
['table.csv']
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import stat
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType

from . import interrupts
from .errors import GlmmsimError, GlmmsimWarning

__all__ = [
    "PARTIAL_PREFIX",
    "OutputError",
    "OutputClaims",
    "claim",
    "check_target",
    "check_distinct",
    "is_partial",
    "partial_path",
    "stale_partials",
]

#: Start of the name of every partial (not yet complete) output file or folder.
PARTIAL_PREFIX = ".glmmsim-partial-"

#: Called with (target, partial) after a partial output was removed because the run failed.
Discarded = Callable[[str, str], None]


class OutputError(GlmmsimError):
    """An output path cannot be claimed or written.

    Besides the GlmmsimError attributes (``path`` is the option, e.g. ``("out",)``, when
    known) it carries ``file`` (the target path as given), ``reason`` (``"exists"``,
    ``"not_regular"``, ``"directory"``, ``"no_directory"``, ``"no_permission"``, ``"same_file"``,
    ``"write"``)
    and ``partial`` (the partial file that was removed, or None).
    """

    def __init__(
        self, message: str, *, file: str, reason: str, partial: str | None = None, **attributes: object
    ) -> None:
        GlmmsimError.__init__(self, message, **attributes)  # type: ignore[arg-type]
        self.file = file
        self.reason = reason
        self.partial = partial

    def __reduce__(self):
        return (_rebuild, (str(self), self.file, self.reason, self.partial, self.attributes()))


def _rebuild(message: str, file: str, reason: str, partial: str | None, attributes: dict) -> OutputError:
    return OutputError(message, file=file, reason=reason, partial=partial, **attributes)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def is_partial(name: str | os.PathLike) -> bool:
    """Whether ``name`` is a partial output (an unfinished or interrupted write).

    >>> is_partial(".glmmsim-partial-3f9a-curve.csv"), is_partial("curve.csv")
    (True, False)
    """
    return os.path.basename(os.fspath(name)).startswith(PARTIAL_PREFIX)


def partial_path(target: str | os.PathLike) -> str:
    """A new partial name beside ``target``: same folder (so publishing is a rename), same ending.

    >>> p = partial_path("out/curve.csv.gz")
    >>> p.startswith("out/.glmmsim-partial-") and p.endswith("-curve.csv.gz")
    True
    """
    folder, name = os.path.split(os.fspath(target))
    # the process id says which run left a partial file behind; the random part keeps two
    # claims of one target in one process apart
    return os.path.join(folder, f"{PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(3)}-{name}")


def stale_partials(target: str | os.PathLike) -> list[str]:
    """Partial files of ``target`` left by runs that ended without cleaning up (SIGKILL, a crash).

    Only partial files whose process no longer runs on this machine are listed; one still
    being written (by this or another process) is not.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> left = os.path.join(folder, PARTIAL_PREFIX + "999999999-abcdef-t.csv")
    >>> _ = open(left, "w").write("x")
    >>> [os.path.basename(p) for p in stale_partials(os.path.join(folder, "t.csv"))]
    ['.glmmsim-partial-999999999-abcdef-t.csv']
    """
    folder, name = os.path.split(os.path.realpath(os.fspath(target)))
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    out = []
    for entry in sorted(entries):
        pid, _, rest = entry[len(PARTIAL_PREFIX):].partition("-")
        if not (entry.startswith(PARTIAL_PREFIX) and pid.isdigit() and rest.partition("-")[2] == name):
            continue
        if not _running(int(pid)):
            out.append(os.path.join(folder, entry))
    return out


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process
        return True
    except (ProcessLookupError, OverflowError):  # ended, or no process could have that id
        return False
    return True


def _warn_stale(given: str, target: str) -> None:
    for left in stale_partials(target):
        warnings.warn(GlmmsimWarning(
            f"{left!r} is an incomplete {given!r} left by an interrupted run (its process has ended); "
            f"it is not output: delete it"), stacklevel=4)


def check_target(
    target: str | os.PathLike, *, force: bool = False, directory: bool = False, option: str | None = None
) -> str:
    """Check, before any work, that ``target`` can be claimed; return it with symlinks resolved.

    Refused: an existing file without ``force``; an existing FIFO, device, socket (never opened,
    not even with ``force``); a directory where a file is wanted (or the reverse); a missing
    parent folder. Publishing checks again, atomically: this check only fails early.

    >>> check_target("/dev/null")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.outputs.OutputError: output '/dev/null' is a character device, not a regular file; ...
    """
    given = os.fspath(target)
    attrs = {"path": (option,)} if option else {}
    # a symlink is followed, as open() would: the file it points to is the one written
    resolved = os.path.realpath(given)
    try:
        st = os.stat(resolved)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode) and not directory:
            raise OutputError(f"output {given!r} is a directory; give a file name",
                              file=given, reason="directory", **attrs)
        if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
            raise OutputError(f"output {given!r} is {_kind(st.st_mode)}, not a regular file; "
                              f"glmmsim writes only regular files", file=given, reason="not_regular", **attrs)
        if directory and not stat.S_ISDIR(st.st_mode):
            raise OutputError(f"output {given!r} exists and is a file; a partitioned dataset is a directory",
                              file=given, reason="not_regular", **attrs)
        if not force:
            raise _exists(given, attrs)
    parent = os.path.dirname(resolved) or "."
    folder = os.path.dirname(given) or "."
    if not os.path.isdir(parent):
        raise OutputError(f"cannot write {given!r}: folder {folder!r} does not exist",
                          file=given, reason="no_directory", **attrs)
    # the partial file is created in the folder: said now, not after hours of simulation
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {given!r}: no permission to create files in folder {folder!r}",
                          file=given, reason="no_permission", **attrs)
    return resolved


def _exists(given: str, attrs: Mapping[str, object]) -> OutputError:
    return OutputError(f"output file {given!r} exists; pass --force to replace it (force=True in Python)",
                       file=given, reason="exists", **attrs)


def check_distinct(outputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse two outputs of one command that are the same file (after resolving links).

    ``outputs`` maps an option name to its path (None: not written).

    >>> check_distinct({"out": "x.csv", "simulations": "./x.csv"})
    Traceback (most recent call last):
    ...
    glmmsim.outputs.OutputError: --out and --simulations are the same file ('x.csv' and './x.csv'); give each output its own file
    """
    seen: dict[str, tuple[str, str]] = {}
    for option, path in outputs.items():
        if path is None or os.fspath(path) == "-":
            continue
        given = os.fspath(path)
        real = os.path.realpath(given)
        for other, (other_given, other_real) in seen.items():
            same = real == other_real
            if not same and os.path.exists(real) and os.path.exists(other_real):
                same = os.path.samefile(real, other_real)  # hard links
            if same:
                raise OutputError(
                    f"--{other.replace('_', '-')} and --{option.replace('_', '-')} are the same file "
                    f"({other_given!r} and {given!r}); give each output its own file",
                    file=given, reason="same_file", path=(option,),
                )
        seen[option] = (given, real)


# renameat2(RENAME_NOREPLACE): an atomic rename that fails if the target exists (Linux >= 3.15).
# Hard links do this for files everywhere; folders cannot be hard-linked, so they need it.
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _rename_noreplace(src: str, dst: str) -> bool:
    """Rename without replacing; False when the system has no such call (the caller falls back)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # an old kernel or a filesystem without it
        return False
    raise OSError(err, os.strerror(err), dst)


def _fsync(path: str) -> None:
    # the data reach the disk before the name does: after a power cut the target is whole or absent
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (and FIFOs) cannot fsync; the rename is still atomic
        pass
    finally:
        os.close(fd)


class _Output:
    """One claimed output: its target, its partial file, and whether it was published."""

    def __init__(self, given: str, target: str, *, force: bool, directory: bool, option: str | None) -> None:
        self.given = given
        self.target = target
        self.force = force
        self.directory = directory
        self.option = option
        self.partial = partial_path(target)
        self.published = False
        if directory:
            os.mkdir(self.partial)
        else:
            # O_EXCL: never open (or truncate) anything that already exists; 0o666 honours the umask
            os.close(os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            self._keep_mode()

    def _keep_mode(self) -> None:
        # a replaced file keeps its permissions, as a file written over in place would
        try:
            st = os.stat(self.target)
        except OSError:
            return
        if self.force and stat.S_ISREG(st.st_mode):
            os.chmod(self.partial, stat.S_IMODE(st.st_mode))

    def _attrs(self) -> dict[str, object]:
        return {"path": (self.option,)} if self.option else {}

    def check(self) -> None:
        """The target is still claimable (again just before publishing, so nothing is half-published)."""
        check_target(self.target, force=self.force, directory=self.directory, option=self.option)

    def publish(self) -> None:
        try:
            st = os.lstat(self.target)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode) and not (self.directory and stat.S_ISDIR(st.st_mode)):
            self.check()  # raises: a FIFO, device, socket, or a directory where a file belongs
        if self.directory:
            self._publish_directory(st is not None)
        elif self.force:
            _fsync(self.partial)
            os.replace(self.partial, self.target)
        else:
            _fsync(self.partial)
            self._link()
        self.published = True

    def _link(self) -> None:
        try:
            os.link(self.partial, self.target)
        except FileExistsError:
            raise _exists(self.given, self._attrs()) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # a filesystem without hard links: an atomic no-replace rename, else an O_EXCL claim
            if _rename_noreplace(self.partial, self.target):
                return
            try:
                os.close(os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                raise _exists(self.given, self._attrs()) from None
            os.replace(self.partial, self.target)
            return
        os.unlink(self.partial)

    def _publish_directory(self, exists: bool) -> None:
        if exists and not self.force:
            raise _exists(self.given, self._attrs())
        if exists:
            # the old dataset is moved aside first, so the target never holds a mix of two runs
            aside = partial_path(self.target)
            os.rename(self.target, aside)
            os.rename(self.partial, self.target)
            shutil.rmtree(aside, ignore_errors=True)
            return
        try:
            if _rename_noreplace(self.partial, self.target):
                return
        except FileExistsError:
            raise _exists(self.given, self._attrs()) from None
        if os.path.lexists(self.target):
            raise _exists(self.given, self._attrs())
        os.rename(self.partial, self.target)

    def discard(self) -> bool:
        """Remove the partial file (or folder); True if there was one."""
        if self.directory:
            if not os.path.isdir(self.partial):
                return False
            shutil.rmtree(self.partial, ignore_errors=True)
            return True
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            return False
        return True

    def unpublish(self) -> None:
        """Take back a file this claim linked (its target is ours: nothing else was replaced)."""
        if self.published and not self.force and not self.directory:
            try:
                os.unlink(self.target)
            except OSError:
                pass


class OutputClaims:
    """The outputs of one command, claimed together: all published at the end, or none.

    ``add(target)`` checks the target at once (before any work) and returns the partial path
    to write to; leaving the ``with`` block normally publishes every output, leaving it with
    an exception removes every partial file (calling ``on_discard(target, partial)`` for each)
    and turns a write error (``OSError``: a full disk, no permission) into an
    :class:`OutputError` naming the target.

    Parameters
    ----------
    force : bool
        Replace existing files (never a FIFO, device or other non-regular file).
    on_discard : callable, optional
        Told about each partial output removed after a failure or an interruption.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with OutputClaims() as outs:
    ...     a = outs.add(os.path.join(folder, "a.csv"), option="out")
    ...     b = outs.add(os.path.join(folder, "b.csv"), option="simulations")
    ...     for p in (a, b):
    ...         _ = open(p, "w").write("x\\n")
    >>> sorted(os.listdir(folder))
    ['a.csv', 'b.csv']
    """

    def __init__(self, *, force: bool = False, on_discard: Discarded | None = None) -> None:
        self.force = force
        self.on_discard = on_discard
        self._outputs: list[_Output] = []

    def add(self, target: str | os.PathLike, *, option: str | None = None, directory: bool = False) -> str:
        """Claim ``target``; return the partial path to write it to."""
        given = os.fspath(target)
        for out in self._outputs:
            if out.target == os.path.realpath(given):
                check_distinct({out.option or "out": out.given, option or "out": given})
        resolved = check_target(given, force=self.force, directory=directory, option=option)
        _warn_stale(given, resolved)
        try:
            out = _Output(given, resolved, force=self.force, directory=directory, option=option)
        except OSError as exc:
            raise self._write_error(given, None, exc, option) from exc
        self._outputs.append(out)
        return out.partial

    def __enter__(self) -> OutputClaims:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            self._publish_all()
            return
        self._discard_all(report=not isinstance(exc, (OSError, OutputError)))
        if isinstance(exc, OSError):
            failed = self._outputs[0] if len(self._outputs) == 1 else None
            raise self._write_error(failed.given if failed else None, failed, exc, failed and failed.option) from exc

    def _publish_all(self) -> None:
        try:
            interrupts.raise_if_interrupted()  # a Ctrl-C swallowed by a finalizer still stops publishing
            for out in self._outputs:  # every target is checked before the first is published
                out.check()
            for out in self._outputs:
                out.publish()
        except BaseException as exc:
            for out in self._outputs:
                out.unpublish()
            self._discard_all(report=not isinstance(exc, (OSError, OutputError)))
            if isinstance(exc, OSError):
                raise self._write_error(None, None, exc, None) from exc
            raise

    def _discard_all(self, *, report: bool) -> None:
        for out in self._outputs:
            if out.discard() and report and self.on_discard is not None and not out.published:
                self.on_discard(out.given, out.partial)

    def _write_error(self, given: str | None, out: _Output | None, exc: OSError, option: str | None) -> OutputError:
        reason = exc.strerror or str(exc)
        names = [o.given for o in self._outputs] if given is None else [given]
        targets = ", ".join(repr(n) for n in names) or "the output"
        if out is not None:
            partials = [out.partial]
        else:  # a claim that failed before its partial file existed removed nothing of its own
            partials = [] if given is not None else [o.partial for o in self._outputs]
        removed = f"; removed the partial file{'s' if len(partials) > 1 else ''} " + ", ".join(
            repr(p) for p in partials) if partials else ""
        return OutputError(
            f"could not write {targets}: {reason}{removed}; nothing was written to {targets}",
            file=names[0] if names else "", reason="write", partial=partials[0] if partials else None,
            **({"path": (option,)} if option else {}),
        )


@contextmanager
def claim(
    target: str | os.PathLike,
    *,
    force: bool = False,
    directory: bool = False,
    option: str | None = None,
    on_discard: Discarded | None = None,
) -> Iterator[str]:
    """Claim one output: yield a partial path to write; publish it whole when the block ends.

    ``directory=True`` claims a folder (a partitioned dataset): the partial folder is created
    and renamed to the target when complete. See :class:`OutputClaims` for the rest.
    """
    with OutputClaims(force=force, on_discard=on_discard) as outs:
        yield outs.add(target, option=option, directory=directory)
