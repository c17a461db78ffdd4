"""Condition frames shared by the fitting tests."""

import numpy as np
import pandas as pd


def crossed_conditions(subjects: int = 30, items: int = 20) -> pd.DataFrame:
    """subjects x items x 2 conditions, every subject sees every item in both."""
    s, i, c = np.meshgrid(np.arange(subjects), np.arange(items), [0, 1], indexing="ij")
    return pd.DataFrame(
        {
            "subject": [f"s{v:03d}" for v in s.ravel()],
            "item": [f"i{v:03d}" for v in i.ravel()],
            "cond": np.where(c.ravel() == 1, "b", "a"),
        }
    )
