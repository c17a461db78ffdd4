"""``glmmsim app``: a power planner in the browser, built with Shiny for Python.

Write an lme4 formula, give the values of its parameters (in the model's units or as
effect sizes), describe the design, and run a power curve; export the YAML spec that
``glmmsim power`` turns into the same numbers. Needs the ``app`` extra
(``pip install "glmmsim[app]"``).

* :mod:`~glmmsim.app.parameters` -- the inputs a model asks for, named by glmmsim;
* :mod:`~glmmsim.app.study_form` -- the form as a study spec and back, checked by glmmsim;
* :mod:`~glmmsim.app.runner` -- a run in worker processes, point by point, cancellable;
* :mod:`~glmmsim.app.exports` -- spec, script, CSV and figure downloads;
* :mod:`~glmmsim.app.layout` and :mod:`~glmmsim.app.server` -- the Shiny page and its server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app() -> Any:
    """The Shiny application object (an ASGI app).

    Examples
    --------
    >>> app = create_app()  # doctest: +SKIP
    """
    from shiny import App

    from .layout import page
    from .server import server

    return App(page(), server)


def serve(host: str = "127.0.0.1", port: int = 8000, open_browser: bool = True, log_level: str = "warning") -> None:
    """Serve the planner on ``host:port`` until interrupted, opening the default browser unless told not to."""
    import threading
    import webbrowser

    import uvicorn

    from .runner import warm_up

    url = f"http://{host}:{port}/"
    threading.Thread(target=warm_up, daemon=True).start()  # the worker processes' fork server, early
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    print(f"glmmsim power planner on {url} (Ctrl-C stops it)", flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level=log_level)
