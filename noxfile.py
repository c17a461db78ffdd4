"""Test sessions: the core on the newest numpy/pandas, and the AutoRA layer with its extra.

autora-core pins numpy < 2, so the AutoRA session also runs the whole suite on
numpy 1.x / pandas 2.x, which checks that the core works there too.
"""

import nox

nox.options.sessions = ["tests", "autora"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Core suite on the newest numpy and pandas (the AutoRA tests skip: no extra here)."""
    session.install("-e", ".[test]")
    session.run("python", "-c", "import numpy, pandas; print('numpy', numpy.__version__, 'pandas', pandas.__version__)")
    session.run("pytest", *session.posargs)


@nox.session
def autora(session: nox.Session) -> None:
    """Whole suite with the AutoRA extra (numpy < 2); AutoRA tests must run, not skip."""
    # pyarrow >= 25 needs numpy 2 at import time without declaring it; AutoRA keeps numpy < 2
    session.install("-e", ".[test,autora]", "pyarrow<25")
    session.run("python", "-c", "import numpy, pandas; print('numpy', numpy.__version__, 'pandas', pandas.__version__)")
    session.run("pytest", *session.posargs, env={"GLMMSIM_REQUIRE_AUTORA": "1"})
