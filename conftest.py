"""Root pytest configuration: doctests of optional layers run only where their extra is installed."""

import importlib.util
import os

import matplotlib

matplotlib.use("Agg")

collect_ignore_glob = []
if importlib.util.find_spec("autora") is None and not os.environ.get("GLMMSIM_REQUIRE_AUTORA"):
    collect_ignore_glob.append("src/glmmsim/autora/*")
