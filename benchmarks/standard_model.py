"""Issue 19's standard crossed model, written once for the benchmarks that time it.

``rt ~ cond + (1 + cond | subject) + (1 | item)``: mean 600 ms, a 20 ms effect of condition b,
subject SDs 60 (intercept) and 30 (effect) with correlation 0.2, item SD 30, sigma 120.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import glmmsim

FORMULA = "rt ~ cond + (1 + cond | subject) + (1 | item)"
INTERCEPT, EFFECT, SIGMA = 600.0, 20.0, 120.0
SUBJECT_SD, SUBJECT_CORR, ITEM_SD = (60.0, 30.0), 0.2, 30.0


def subject_cov() -> np.ndarray:
    """The by-subject covariance of intercept and effect."""
    sd = np.array(SUBJECT_SD)
    return np.outer(sd, sd) * np.array([[1.0, SUBJECT_CORR], [SUBJECT_CORR, 1.0]])


def model(seed: int | None = None) -> glmmsim.Model:
    """The model as a glmmsim.Model (conditions a and b)."""
    return glmmsim.Model(
        FORMULA, fixed={"Intercept": INTERCEPT, "condb": EFFECT},
        random={"subject": {"sd": {"Intercept": SUBJECT_SD[0], "condb": SUBJECT_SD[1]},
                            "corr": {("Intercept", "condb"): SUBJECT_CORR}},
                "item": ITEM_SD},
        sigma=SIGMA, levels={"cond": ["a", "b"]}, seed=seed)


def responses(d: pd.DataFrame, count: int, seed: int = 1) -> np.ndarray:
    """``count`` responses of the model on ``d`` (columns subject ``sNN``, item ``iNN``, cond ``a``/``b`` or
    0/1), one column each, drawn with numpy so that every engine and peer fits the same numbers."""
    rng = np.random.default_rng(seed)
    s = d["subject"].str[1:].astype(int).to_numpy()
    i = d["item"].str[1:].astype(int).to_numpy()
    cond = d["cond"]
    c = cond.to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(cond) else (cond == "b").to_numpy(dtype=float)
    out = np.empty((len(d), count))
    for r in range(count):
        us = rng.multivariate_normal([0, 0], subject_cov(), size=s.max() + 1)
        ui = rng.normal(0, ITEM_SD, size=i.max() + 1)
        out[:, r] = INTERCEPT + EFFECT * c + us[s, 0] + us[s, 1] * c + ui[i] + rng.normal(0, SIGMA, size=len(d))
    return out
