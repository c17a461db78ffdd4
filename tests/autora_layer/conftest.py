"""AutoRA tests run only where the autora extra is installed.

Without it the directory is skipped, unless GLMMSIM_REQUIRE_AUTORA=1 (CI's
autora job), where a missing AutoRA is an error.
"""

import os

import pytest

try:
    import autora.experiment_runner.synthetic.abstract.lmm  # noqa: F401
    import autora.state  # noqa: F401
    import autora.variable  # noqa: F401

    HAVE_AUTORA = True
except ImportError as exc:
    if os.environ.get("GLMMSIM_REQUIRE_AUTORA") == "1":
        raise RuntimeError(
            "GLMMSIM_REQUIRE_AUTORA=1 but AutoRA is not importable: install glmmsim[autora]"
        ) from exc
    HAVE_AUTORA = False

collect_ignore_glob = [] if HAVE_AUTORA else ["test_*.py"]


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.autora)
