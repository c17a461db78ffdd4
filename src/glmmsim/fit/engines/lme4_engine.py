"""The ``lme4`` engine: lme4 + lmerTest (+ pbkrtest) in one long-lived R process.

One ``Rscript`` runs ``lme4_server.R`` per Python process (so one per worker of a
process pool), is fed many datasets and is closed at exit. A design is uploaded
once (a float64 file the server reads) and each fit sends only the response, as
raw float64 on stdin. Every fit calls ``lmer()``/``glmer()`` afresh. A request
that takes longer than the timeout kills the process (the next fit starts a new
one) and raises :class:`FitError`. When R dies under a request (killed, out of
memory), a new R process is started and the request retried (``RESTARTS`` times):
the answer is the one the first process would have given. A missing ``Rscript`` or R package raises
:class:`EngineError` naming what to install.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing.util
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import weakref
from importlib import resources

import numpy as np

from ..design import FitDesign
from ..errors import EngineError, FitError
from ..protocol import RawFit

__all__ = ["Lme4Engine", "RServer", "RProcessEnded", "r_server"]

#: Seconds one request may take before the R process is killed (env GLMMSIM_R_TIMEOUT overrides).
DEFAULT_TIMEOUT = 300.0
#: Times a request is sent again to a restarted R process when R died (killed, out of memory) under it.
RESTARTS = 2
_STARTUP_TIMEOUT = 120.0
_FAMILIES = ("gaussian", "binomial", "poisson")
_INSTALL = (
    "install R and the packages lme4, lmerTest and pbkrtest (Debian/Ubuntu: apt-get install r-base-core "
    "r-cran-lme4 r-cran-lmertest r-cran-pbkrtest; elsewhere install.packages(c('lme4', 'lmerTest', "
    "'pbkrtest')) in R), or use engine='glmm'"
)


def _timeout() -> float:
    try:
        return float(os.environ.get("GLMMSIM_R_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


class RProcessEnded(FitError):
    """The R process ended (killed, out of memory) while answering a request; a new one can retry it."""


class RServer:
    """One R process running the lme4 server; requests are serialised by a lock."""

    def __init__(self, rscript: str | None = None) -> None:
        self._rscript = rscript or shutil.which("Rscript")
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr = None
        self.generation = 0  # increases on every (re)start: uploaded designs belong to one generation
        self.version = ""

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> None:
        if self._rscript is None:
            raise EngineError(f"engine 'lme4' needs R, but Rscript is not on PATH: {_INSTALL}")
        script = resources.files("glmmsim.fit.engines").joinpath("lme4_server.R")
        self._stderr = tempfile.TemporaryFile()
        self._lines = queue.Queue()
        with resources.as_file(script) as path:
            self._proc = subprocess.Popen(
                [self._rscript, "--vanilla", str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        threading.Thread(target=self._read, args=(self._proc.stdout, self._lines), daemon=True).start()
        first = self._next_line(_STARTUP_TIMEOUT, "starting R")
        while not first.startswith("@@"):
            first = self._next_line(_STARTUP_TIMEOUT, "starting R")
        if first.startswith("@@MISSING"):
            self.close()
            raise EngineError(f"engine 'lme4' needs the R package(s) {first.split(chr(9))[1]}: {_INSTALL}")
        if not first.startswith("@@READY"):
            self.close()
            raise EngineError(f"engine 'lme4': R did not start the server ({first!r})")
        self.version = ", ".join(first.split("\t")[1:])
        self.generation += 1

    @staticmethod
    def _read(stream, lines: queue.Queue) -> None:
        for raw in iter(stream.readline, b""):
            lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        lines.put(None)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace").strip()[-1500:]
        except (OSError, ValueError):
            return ""

    def _next_line(self, timeout: float, doing: str) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise FitError(f"engine 'lme4': R took longer than {timeout:g} s {doing}; the R process was stopped") from None
        if line is None:
            detail = self._stderr_tail()
            self.close()
            error = EngineError if doing == "starting R" else RProcessEnded
            raise error(f"engine 'lme4': the R process ended while {doing}. R said: {detail or '(nothing)'}")
        return line

    def ensure(self) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = None
                self._start()

    def close(self) -> None:
        """Stop the R process (QUIT, then kill after 5 s) and reap it: no zombies."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            try:
                if proc.poll() is None:
                    proc.stdin.write(b"QUIT\n")
                    proc.stdin.flush()
                    proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # ------------------------------------------------------------------ requests
    def request(self, header: list[str], payload: bytes = b"", doing: str = "fitting") -> dict[str, list[list[str]]]:
        """Send one request; return the answer's lines grouped by key. Raises FitError on an R error."""
        with self._lock:
            self.ensure()
            try:
                self._proc.stdin.write(("\t".join(header) + "\n").encode())
                if payload:
                    self._proc.stdin.write(payload)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                detail = self._stderr_tail()
                self.close()
                raise RProcessEnded(f"engine 'lme4': the R process is gone. R said: {detail or '(nothing)'}") from None
            deadline = _timeout()
            while self._next_line(deadline, doing) != "@@BEGIN":
                pass  # anything R printed outside an answer
            answer: dict[str, list[list[str]]] = {}
            while (line := self._next_line(deadline, doing)) != "@@END":
                key, _, rest = line.partition("\t")
                answer.setdefault(key, []).append(rest.split("\t") if rest else [])
        if "error" in answer:
            raise FitError(f"engine 'lme4' failed {doing}: {answer['error'][0][0]}")
        return answer

    def drop(self, design_id: str, generation: int) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or generation != self.generation:
                return
            try:
                self._proc.stdin.write(f"DROP\t{design_id}\n".encode())
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass


_SERVERS: dict[int, RServer] = {}
_SERVERS_LOCK = threading.Lock()
_IDS = itertools.count()


def r_server() -> RServer:
    """This process's R server (a forked worker gets its own, never its parent's).

    A worker of a process pool or of Dask leaves by ``os._exit`` after multiprocessing's
    finalizers, not ``atexit``: the server is closed (and reaped) by such a finalizer, so
    no R process outlives a worker that ends normally. One whose worker is killed reads
    the end of its input and quits.
    """
    pid = os.getpid()
    with _SERVERS_LOCK:
        if pid not in _SERVERS:
            _SERVERS[pid] = RServer()
            multiprocessing.util.Finalize(None, _close_servers, exitpriority=10)
        return _SERVERS[pid]


@atexit.register
def _close_servers() -> None:
    server = _SERVERS.get(os.getpid())
    if server is not None:
        server.close()


class Lme4Engine:
    """Factory product registered as ``"lme4"``."""

    name = "lme4"

    def available(self) -> bool:
        """Whether ``Rscript`` is on PATH (the packages are checked when R first starts)."""
        return shutil.which("Rscript") is not None

    def prepare(self, design: FitDesign) -> _PreparedLme4:
        if design.family not in _FAMILIES:
            # glmer.nb alternates theta and glmer fits (4 s here) and glmer's Gamma GLMM estimates the
            # dispersion by moments; neither matched glmm's maximum likelihood closely enough to serve as
            # the reference, so they are not offered rather than offered as a reference they are not
            raise EngineError(
                f"engine 'lme4' fits families {', '.join(map(repr, _FAMILIES))} here; for {design.family!r} "
                f"use engine='glmm'"
            )
        return _PreparedLme4(design, r_server())


def _r_formula(design: FitDesign) -> tuple[str, dict[str, np.ndarray], list[str]]:
    """The R formula over generated column names, the columns, and which are grouping factors."""
    cols: dict[str, np.ndarray] = {}
    fixed = []
    has_intercept = bool(design.x) and design.x[0] is None
    for i, col in enumerate(design.x):
        if col is not None:
            cols[f"X{i}"] = col
            fixed.append(f"X{i}")
    rhs = ["1" if has_intercept else "0"] + fixed
    factors = []
    for k, td in enumerate(design.terms):
        parts = ["1" if td.has_intercept else "0"]
        for j, col in enumerate(td.z):
            if col is not None:
                cols[f"Z{k}_{j}"] = col
                parts.append(f"Z{k}_{j}")
        cols[f"G{k}"] = td.codes.astype(np.float64)
        factors.append(f"G{k}")
        rhs.append(f"({' + '.join(parts)} | G{k})")
    if design.offset is not None:
        cols["OFFSET"] = design.offset
        rhs.append("offset(OFFSET)")
    lhs = "Y"
    if design.family == "binomial" and design.trials is not None:
        cols["TRIALS"] = design.trials
        lhs = "cbind(Y, TRIALS - Y)"
    return f"{lhs} ~ {' + '.join(rhs)}", cols, factors


def _token(native: object) -> str:
    """The R-side name of a fit (see ``fit``); ``-`` for a RawFit from elsewhere (R then fits again)."""
    token = getattr(native, "native", native)
    return token if isinstance(token, str) else "-"


def _drop(server: RServer, design_id: str, generation: list[int]) -> None:
    """Free a design in R when its Fitter is gone (a no-op when R has restarted since the upload)."""
    server.drop(design_id, generation[0])


class _PreparedLme4:
    """One design uploaded to the R server (again after a restart); each fit sends the response."""

    def __init__(self, design: FitDesign, server: RServer) -> None:
        self._design = design
        self._server = server
        self._formula, self._cols, self._factors = _r_formula(design)
        self._id = f"d{os.getpid()}_{next(_IDS)}"
        self._tokens = itertools.count(1)
        self._generation = [-1]  # the server generation holding the upload (a list: the finalizer reads it)
        with server._lock:
            self._upload()
        weakref.finalize(self, _drop, server, self._id, self._generation)

    def _upload(self) -> None:
        server = self._server
        server.ensure()
        if self._generation[0] == server.generation:
            return
        names = list(self._cols)
        matrix = np.column_stack([self._cols[n] for n in names]).astype("<f8")
        fd, path = tempfile.mkstemp(suffix=".bin", prefix="glmmsim-design-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(matrix.tobytes(order="F"))
            d = self._design
            server.request(
                ["DESIGN", self._id, str(d.nobs), str(len(names)), path, ",".join(names), ",".join(self._factors),
                 self._formula, d.family, d.link],
                doing="reading the design",
            )
        finally:
            os.unlink(path)
        self._generation[0] = server.generation

    def _send(self, header: list[str], payload: bytes, doing: str,
              nested: _PreparedLme4 | None = None) -> dict[str, list[list[str]]]:
        """One request; when R dies under it, a new R process gets the design(s) and the request again.

        Every request carries all it needs (the response, the fit's token: R fits again
        what a new process does not hold), so the retried answer is the one the first
        process would have given.
        """
        for attempt in range(RESTARTS + 1):
            try:
                with self._server._lock:  # the upload and the request must meet the same R process
                    self._upload()
                    if nested is not None:
                        nested._upload()
                    return self._server.request(header, payload, doing)
            except RProcessEnded as exc:
                if attempt == RESTARTS:
                    raise FitError(f"{exc} (the request was sent to {RESTARTS + 1} R processes; each ended)") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def fit(self, y: np.ndarray, *, reml: bool) -> RawFit:
        # the token names this fit in R, whose tests (CONTEST, LRT) then reuse it instead of refitting
        token = str(next(self._tokens))
        answer = self._send(
            ["FIT", self._id, "1" if reml else "0", str(len(y)), token], np.asarray(y, "<f8").tobytes(), "fitting"
        )
        raw = self._raw(answer)
        raw.native = token
        return raw

    def contrast(self, y: np.ndarray, L: np.ndarray, *, reml: bool, ddf: str, native=None) -> tuple[float, float, float]:
        """F test of ``L @ beta = 0`` by lmerTest's ``contest`` (Satterthwaite or Kenward-Roger via pbkrtest)."""
        k, p = L.shape
        payload = np.asarray(y, "<f8").tobytes() + np.asarray(L, "<f8").tobytes(order="C")
        header = ["CONTEST", self._id, "1" if reml else "0", ddf, str(len(y)), str(k), str(p), _token(native)]
        answer = self._send(header, payload, f"testing with {ddf} df")
        return float(answer["F"][0][0]), float(answer["dendf"][0][0]), float(answer["p"][0][0])

    def lrt(self, y: np.ndarray, nested: _PreparedLme4, *, reml: bool, native=None) -> tuple[float, float]:
        """ML log-likelihoods of this design's model and of ``nested`` (fewer fixed effects) for response ``y``.

        One request: the full model's kept fit (refitted by ML from its theta when it was
        REML) and the nested model started at the full model's theta.
        """
        header = ["LRT", self._id, "1" if reml else "0", str(len(y)), _token(native), nested._id]
        answer = self._send(header, np.asarray(y, "<f8").tobytes(), "testing by likelihood ratio", nested)
        return float(answer["full"][0][0]), float(answer["nested"][0][0])

    def _raw(self, answer: dict[str, list[list[str]]]) -> RawFit:
        design = self._design
        first = lambda key: answer[key][0]  # noqa: E731
        floats = lambda key: np.array(first(key), dtype=float)  # noqa: E731
        p = len(design.x)
        pos = {"(Intercept)": 0, **{f"X{i}": i for i in range(p)}}
        order = np.array([pos[n] for n in first("names")], dtype=int) if p else np.array([], dtype=int)
        beta, df = np.full(p, np.nan), np.full(p, np.nan)
        beta[order] = floats("beta")
        df[order] = floats("df")
        vcov = np.full((p, p), np.nan)
        vcov[np.ix_(order, order)] = floats("vcov").reshape(len(order), len(order), order="F")
        covs = [np.full((len(td.coefs),) * 2, np.nan) for td in design.terms]
        for names, values in zip(answer.get("covnames", []), answer.get("cov", [])):
            k = int(names[0][1:])
            td = design.terms[k]
            slot = {"(Intercept)": 0, **{f"Z{k}_{j}": j for j in range(len(td.z))}}
            idx = np.array([slot[n] for n in names[1:]])
            q = len(idx)
            covs[k][np.ix_(idx, idx)] = np.array(values[1:], dtype=float).reshape(q, q, order="F")
        gaussian = design.family == "gaussian"
        return RawFit(
            beta=beta,
            vcov=vcov,
            df=df if gaussian else np.full(p, np.nan),
            loglik=float(first("loglik")[0]),
            reml=first("reml")[0] == "1",
            sigma=float(first("sigma")[0]) if gaussian else None,
            covariances=covs,
            converged=first("converged")[0] == "1",
            warned=answer.get("warned", [["0"]])[0][0] == "1",
            singular=first("singular")[0] == "1",
            warnings=[w[0] for w in answer.get("warning", []) if w],
            engine="lme4",
            engine_version=self._server.version,
            nobs=int(first("nobs")[0]),
        )
