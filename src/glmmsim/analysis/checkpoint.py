"""Checkpoints: a study keeps its finished replicates on disk and a rerun continues from them.

A checkpoint is a folder. ``study.json`` describes the study canonically (model,
design, analysis, tests, seeds, glmmsim version: everything that decides a
replicate's numbers); each finished batch is one small Parquet file, written under a
temporary name and renamed when complete, so a killed run leaves only whole batches.
A rerun with the same study loads them, runs only the missing replicates and gives
exactly the results of an uninterrupted run (every replicate is seeded by its address,
not by the batch or executor that ran it). A rerun with a different study is refused,
naming what differs. Arguments that only summarise the replicates (``alpha``,
``failures``) and where they run (``executor``) are not part of the description, and
a larger ``nsim`` extends a checkpoint.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> cp = Checkpoint(folder, {"model": "y ~ x", "seed": 1})
>>> cp.save([{"point": 0, "replicate": 0, "converged": True, "p": 0.03}])
>>> Checkpoint(folder, {"model": "y ~ x", "seed": 1}).load()[(0, 0)]["p"]
0.03
>>> Checkpoint(folder, {"model": "y ~ x", "seed": 2})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
glmmsim.errors.ParameterError: checkpoint ... was made by another study: seed is 1 there, 2 here; ...
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError

__all__ = ["Checkpoint", "describe_study", "describe_frame"]

_MANIFEST = "study.json"


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(temp_path)`` beside ``path`` and rename it into place when complete."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(temp)
        with open(temp, "rb+") as fh:  # the bytes are on disk before the name says the file is complete
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


class Checkpoint:
    """A folder of finished replicates for one study (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        The folder (created if missing).
    description : mapping
        The study's canonical description (:func:`describe_study`); JSON-serialisable.
    """

    def __init__(self, path: str | os.PathLike, description: Mapping[str, Any]) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ParameterError(f"checkpoint {str(self.path)!r} exists and is not a folder", parameter="checkpoint")
        self.path.mkdir(parents=True, exist_ok=True)
        self.description = json.loads(json.dumps(description))
        manifest = self.path / _MANIFEST
        if manifest.exists():
            stored = json.loads(manifest.read_text(encoding="utf-8"))
            differences = _differences(stored, self.description)
            if differences:
                raise ParameterError(
                    f"checkpoint {str(self.path)!r} was made by another study: {'; '.join(differences[:5])}; "
                    f"use another folder, or delete this one to start afresh", parameter="checkpoint")
        else:
            text = json.dumps(self.description, indent=1, sort_keys=True)
            _atomic_write(manifest, lambda temp: Path(temp).write_text(text, encoding="utf-8"))

    def load(self) -> dict[tuple[int, int], dict]:
        """Every stored replicate, by ``(point, replicate)``."""
        out: dict[tuple[int, int], dict] = {}
        for part in sorted(self.path.glob("batch-*.parquet")):
            frame = pd.read_parquet(part)
            for point, replicate, payload in zip(frame["point"], frame["replicate"], frame["record"]):
                out[(int(point), int(replicate))] = _decode(payload)
        return out

    def save(self, records: Sequence[dict]) -> None:
        """Keep one finished batch (one file, written atomically)."""
        if not records:
            return
        first, last = records[0], records[-1]
        name = f"batch-{first['point']:05d}-{first['replicate']:07d}-{last['replicate']:07d}.parquet"
        frame = pd.DataFrame({
            "point": [int(r["point"]) for r in records],
            "replicate": [int(r["replicate"]) for r in records],
            "record": [json.dumps(r, default=_plain) for r in records],
        })
        _atomic_write(self.path / name, lambda temp: frame.to_parquet(temp, index=False))

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r})"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def _decode(payload: str) -> dict:
    record = json.loads(payload)  # floats round-trip exactly (repr), NaN included
    if "parameters" in record:
        record["parameters"] = [(k, f, tuple(n), e, s, d) for k, f, n, e, s, d in record["parameters"]]
    return record


def _differences(stored: Any, current: Any, path: str = "") -> list[str]:
    """Where two descriptions differ, as ``"path is A there, B here"``."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in dict.fromkeys([*stored, *current]):
            where = f"{path}.{key}" if path else str(key)
            if key not in stored:
                out.append(f"{where} is not in the checkpoint")
            elif key not in current:
                out.append(f"{where} is in the checkpoint only")
            else:
                out += _differences(stored[key], current[key], where)
        return out
    if isinstance(stored, list) and isinstance(current, list) and len(stored) == len(current):
        return [d for i, (a, b) in enumerate(zip(stored, current)) for d in _differences(a, b, f"{path}[{i}]")]
    if stored != current:
        return [f"{path} is {_short(stored)} there, {_short(current)} here"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """A design's shape and a digest of its values, columns and index.

    Examples
    --------
    >>> describe_frame(pd.DataFrame({"x": [1, 2]}))["rows"]
    2
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return {"rows": len(frame), "columns": [str(c) for c in frame.columns], "sha256": digest.hexdigest()}


def _model(model: Any, conditions: pd.DataFrame) -> dict[str, Any]:
    random = {}
    for factor, (coefs, sd, corr) in model.covariance(conditions).items():
        random[factor] = {"coefficients": list(coefs), "sd": [repr(float(v)) for v in sd],
                          "corr": [[repr(float(v)) for v in row] for row in np.asarray(corr)]}
    return {
        "formula": model.formula,
        "family": model.family.describe(),
        "fixed": {str(k): repr(float(v)) for k, v in model.fixed.items()},
        "random": random,
        "sigma": repr(model.sigma),
        "trials": repr(model.trials),
        "levels": {str(k): [repr(v) for v in vals] for k, vals in (getattr(model, "levels", None) or {}).items()},
    }


def describe_study(kind: str, jobs: Sequence[Any], along: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The canonical description of a study's replicates: what a checkpoint must match."""
    from .. import __version__

    points = []
    for i, job in enumerate(jobs):
        points.append({
            **({"along": {str(k): repr(v) for k, v in along[i].items()}} if along else {}),
            "model": _model(job.model, job.conditions),
            "design": describe_frame(job.conditions),
            "key": job.key_names,
            "seed": str(job.tree.key),
        })
    first = jobs[0]
    return {
        "study": kind,
        "glmmsim": __version__,
        "analysis": first.fit_formula,
        "engine": {k: repr(v) for k, v in first.fit_kwargs.items()},
        "fallback_engine": first.fallback,
        "tests": [[h.label, list(h.coefficients), h.method] for h in first.hypotheses],
        "points": points,
        # a user's measure is known by its qualified name (its code cannot be compared); none: no entry,
        # so checkpoints of studies without one stay valid
        **({"measure": _qualified_name(first.user_measure.fn)} if getattr(first, "user_measure", None) else {}),
    }


def _qualified_name(fn: Any) -> str:
    """``module.qualname`` of a function (of its class, for a callable object).

    Examples
    --------
    >>> _qualified_name(describe_frame)
    'glmmsim.analysis.checkpoint.describe_frame'
    """
    named = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(named, '__module__', '')}.{named.__qualname__}"
