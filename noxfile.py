"""Test sessions: the core on the newest numpy/pandas, the AutoRA layer with its extra, the main job;
and the documentation site (``nox -s docs``, not a default session: CI runs it after the tests).

autora-core pins numpy < 2 and the autora extra pandas < 3, so the whole suite runs once on the
newest numpy 2 / pandas 3 and once on numpy 1.x / pandas 2.x, the oldest line glmmsim supports.
"""

import pathlib
import shutil

import nox

nox.options.sessions = ["tests", "autora", "example"]
nox.options.reuse_existing_virtualenvs = True

#: Figures of docs/howto/app.md, written by tests/app/test_planner_browser.py (not committed).
APP_SCREENSHOTS = ("docs/img/app/planner.png", "docs/img/app/formula_error.png", "docs/img/app/errors.png")


@nox.session
def tests(session: nox.Session) -> None:
    """Core suite on the newest numpy and pandas (the AutoRA tests skip: no extra here)."""
    session.install("-e", ".[test,dask,app]")  # the Dask tests run here, on a LocalCluster they start
    session.install("playwright")  # drives the system Chromium in tests/app (no browser download)
    session.run(
        "python",
        "-c",
        "import numpy, pandas, pyarrow; print('numpy', numpy.__version__, 'pandas', pandas.__version__, "
        "'pyarrow', pyarrow.__version__)",
    )
    session.run("pytest", *session.posargs)


@nox.session
def autora(session: nox.Session) -> None:
    """Whole suite with the AutoRA and Parquet extras on numpy 1.x / pandas 2.x; AutoRA tests must run.

    The extras alone must give a working combination (a pyarrow that imports beside AutoRA's
    numpy < 2): nothing is pinned here that a user of ``pip install ".[autora,parquet]"`` lacks.
    """
    session.install("-e", ".[test,autora,parquet]")
    # importing pyarrow here fails the session if the extras ever pick a pyarrow that needs numpy 2
    session.run(
        "python",
        "-c",
        "import numpy, pandas, pyarrow; print('numpy', numpy.__version__, 'pandas', pandas.__version__, "
        "'pyarrow', pyarrow.__version__)",
    )
    # the app extra is not installed here: its browser tests run in the `tests` session
    session.run("pytest", *session.posargs, env={"GLMMSIM_REQUIRE_AUTORA": "1", "GLMMSIM_REQUIRE_BROWSER": "0"})


@nox.session
def example(session: nox.Session) -> None:
    """The README's main job on a plain install (no test extras): the Stroop example study."""
    session.install("-e", ".")
    out = f"{session.create_tmp()}/stroop.csv"
    session.run("glmmsim", "simulate", "examples/stroop.yaml", "--out", out)
    session.run("glmmsim", "describe", "examples/stroop.yaml")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: tutorials executed, warnings as errors, links inside the site checked.

    Builds from scratch every time (no cached notebook outputs, no stale API pages), so a
    broken example, a failing tutorial or a reference to a name without a page fails here.
    The site is docs/_build/html/index.html.
    """
    session.install("-e", ".[docs,dask]")
    if not all(pathlib.Path(shot).exists() for shot in APP_SCREENSHOTS):
        # the planner's how-to shows screenshots its browser tests take (Chromium): take them first
        session.install("-e", ".[docs,dask,app,test]", "playwright")
        session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/app/test_planner_browser.py",
                    env={"GLMMSIM_REQUIRE_BROWSER": "1"})
    for stale in ("docs/_build", "docs/reference/generated", "docs/jupyter_execute"):
        shutil.rmtree(stale, ignore_errors=True)
    session.run("sphinx-build", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html")
    # every link between the site's pages, to a page and to an anchor in it (Sphinx's linkcheck
    # fetches links to other sites, which CI cannot reach, and leaves the site's anchors unchecked)
    session.run("python", "docs/_tools/check_links.py", "docs/_build/html")
