"""Root pytest configuration: Agg backend, hypothesis profile, AutoRA doctests only with the extra."""

import importlib.util
import os

import matplotlib
from hypothesis import settings

matplotlib.use("Agg")

# Property tests: the same examples on every run (reproducible CI), and no per-example deadline,
# which a loaded 2-core machine would otherwise trip at random.
settings.register_profile("glmmsim", deadline=None, derandomize=True)
settings.load_profile("glmmsim")

collect_ignore_glob = []


def _has_autora() -> bool:
    try:
        return importlib.util.find_spec("autora.experiment_runner.synthetic") is not None
    except ModuleNotFoundError:
        return False


if not _has_autora() and not os.environ.get("GLMMSIM_REQUIRE_AUTORA"):
    collect_ignore_glob.append("src/glmmsim/autora/*")

# doctests that need the dask extra (the tests under tests/dask_layer skip by themselves)
if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
    collect_ignore_glob += ["src/glmmsim/dask/frames.py", "src/glmmsim/dask/partitions.py"]

# the planner's page and server import shiny (the app extra); its other modules doctest without it
if importlib.util.find_spec("shiny") is None:
    collect_ignore_glob += ["src/glmmsim/app/layout.py", "src/glmmsim/app/server.py"]
