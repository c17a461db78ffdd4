"""Shared models and designs of the study tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import glmmsim
from glmmsim.design import crossed

RT_FORMULA = "rt ~ cond + (1 + cond | subject) + (1 | item)"


def rt_model(effect: float = 20.0, seed: int = 1) -> glmmsim.Model:
    """The README's power question: 20 ms effect, by-subject slopes, item intercepts."""
    return glmmsim.Model(
        RT_FORMULA,
        fixed={"Intercept": 600.0, "condb": effect},
        random={"subject": {"sd": {"Intercept": 50.0, "condb": 20.0}, "corr": {("Intercept", "condb"): 0.2}},
                "item": 30.0},
        sigma=80.0,
        seed=seed,
    )


def rt_design(subjects: int = 30, items: int = 20):
    return crossed(subjects=subjects, items=items, within={"cond": ["a", "b"]})


def paired_design(subjects: int, per_cell: int):
    """Balanced within-subject design with a centred two-level predictor (+-0.5)."""
    d = crossed(subjects=subjects, within={"x": ["a", "b"]}, repetitions=per_cell)
    d["xc"] = np.where(d["x"] == "a", -0.5, 0.5)
    return d


def fromscratch(x_dtype=float, groups="abc") -> tuple[glmmsim.Model, pd.DataFrame]:
    """simr's "fromscratch" vignette model: y ~ x + (1|g), x = 1..10 in each of 3 groups."""
    design = pd.DataFrame({"x": np.tile(np.arange(1, 11), len(groups)).astype(x_dtype),
                           "g": np.repeat(list(groups), 10)})
    model = glmmsim.Model("y ~ x + (1 | g)", fixed={"Intercept": 2.0, "x": -0.1}, random={"g": math.sqrt(0.5)},
                          sigma=1.0)
    return model, design


class Sometimes:
    """An engine (glmm underneath) that fails on about one dataset in five, chosen by the data alone.

    One in ten raises in the fit; one in ten fits but reports no Satterthwaite df (as glmm
    does on an occasional dataset). The choice hashes the response, so every executor and
    every process meets the same failures.
    """

    name = "sometimes"

    def available(self):
        return True

    def prepare(self, design):
        from glmmsim.fit.errors import FitError
        from glmmsim.fit.protocol import get_engine

        inner = get_engine("glmm").prepare(design)

        class Prepared:
            def fit(self, y, *, reml):
                import hashlib

                roll = int.from_bytes(hashlib.blake2b(np.asarray(y).tobytes(), digest_size=4).digest(), "little") % 10
                if roll == 0:
                    raise FitError("injected failure")
                raw = inner.fit(y, reml=reml)
                if roll == 1:
                    raw.df = np.full_like(raw.df, np.nan)
                return raw

        return Prepared()


def register_sometimes() -> None:
    """Register :class:`Sometimes` in this process (run it on every Dask worker too)."""
    from glmmsim.fit import register_engine

    register_engine("sometimes", Sometimes)


class KillsItsWorker:
    """An engine (glmm underneath) that SIGKILLs the process it runs in, at replicate 3 of a study.

    Only outside the process whose pid is in ``GLMMSIM_TEST_MAIN_PID`` (a pool or Dask
    worker), and only once per marker file ``GLMMSIM_TEST_KILL_MARKER`` (created just
    before the kill); ``GLMMSIM_TEST_KILL_ALWAYS=1`` kills every time.
    """

    name = "kills-its-worker"

    def available(self):
        return True

    def prepare(self, design):
        import os
        import signal

        from glmmsim.fit.protocol import get_engine

        inner = get_engine("glmm").prepare(design)
        calls = {"n": 0}

        class Prepared:
            def fit(self, y, *, reml):
                calls["n"] += 1
                marker = os.environ.get("GLMMSIM_TEST_KILL_MARKER", "")
                always = os.environ.get("GLMMSIM_TEST_KILL_ALWAYS") == "1"
                in_worker = str(os.getpid()) != os.environ.get("GLMMSIM_TEST_MAIN_PID")
                if in_worker and calls["n"] == 3 and marker and (always or not os.path.exists(marker)):
                    open(marker, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)
                return inner.fit(y, reml=reml)

        return Prepared()


def register_killer() -> None:
    from glmmsim.fit import register_engine

    register_engine("kills-its-worker", KillsItsWorker)
