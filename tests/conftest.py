"""Suite-wide gates: a test marked ``r`` runs only where R with lme4, lmerTest and pbkrtest runs.

Mark such a test (or module, ``pytestmark = pytest.mark.r``) and nothing else: the check is
made here, lazily, when the first marked test is set up (see tests/_gates.py). Without R the
test skips with the reason; under ``GLMMSIM_REQUIRE_R=1`` (CI) it fails.
"""

from __future__ import annotations

import pytest

from ._gates import require_r


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("r") is not None:
        require_r()


@pytest.fixture(autouse=True)
def _limits_restored():
    """Every test starts from the limits in force and leaves them so (a docs block sets max_rows)."""
    import glmmsim.limits

    with glmmsim.limits.override():
        yield
