"""Skip-or-fail gates for tests that need software outside Python: R with lme4, a browser.

Without the software a gated test skips and says why. With ``GLMMSIM_REQUIRE_R=1`` (or
``GLMMSIM_REQUIRE_BROWSER=1``) it fails instead, so a CI run that installed R never passes by
skipping the lme4 checks. Probes run when the first gated test is set up, never while tests are
collected (``pytest --collect-only`` starts no Rscript), and once per session.
"""

from __future__ import annotations

import functools
import os

import pytest

REQUIRE_R = "GLMMSIM_REQUIRE_R"
REQUIRE_BROWSER = "GLMMSIM_REQUIRE_BROWSER"


def required(variable: str) -> bool:
    """Whether the environment makes a missing dependency a failure (``VARIABLE=1``)."""
    return os.environ.get(variable) == "1"


def skip_or_fail(variable: str, problem: str | None) -> None:
    """Return when ``problem`` is None; else fail the test if ``variable`` requires it, skip it if not."""
    if problem is None:
        return
    if required(variable):
        pytest.fail(f"{variable}=1 but {problem}", pytrace=False)
    pytest.skip(f"{problem} (set {variable}=1 to make this a failure)")


@functools.lru_cache(maxsize=1)
def r_problem() -> str | None:
    """None when the lme4 engine's R server starts here (Rscript, lme4, lmerTest, pbkrtest), else why not."""
    from glmmsim.errors import GlmmsimError
    from glmmsim.fit.engines.lme4_engine import r_server

    try:
        r_server().ensure()
    except GlmmsimError as exc:  # EngineError when R or a package is missing, FitError when R hangs
        return f"the lme4 engine cannot run: {exc}"
    return None


def require_r() -> None:
    """Skip (or, under ``GLMMSIM_REQUIRE_R=1``, fail) the calling test unless R with lme4 runs here."""
    skip_or_fail(REQUIRE_R, r_problem())
