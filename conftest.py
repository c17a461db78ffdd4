"""Root pytest configuration: doctests of optional layers run only where their extra is installed."""

import importlib.util
import os

import matplotlib

matplotlib.use("Agg")

collect_ignore_glob = []


def _has_autora() -> bool:
    try:
        return importlib.util.find_spec("autora.experiment_runner.synthetic") is not None
    except ModuleNotFoundError:
        return False


if not _has_autora() and not os.environ.get("GLMMSIM_REQUIRE_AUTORA"):
    collect_ignore_glob.append("src/glmmsim/autora/*")
