"""AutoRA drop-in: ``lmm_experiment`` with autora-synthetic's numbers or lme4's meaning.

``from glmmsim.autora import lmm_experiment`` replaces
``autora.experiment_runner.synthetic.abstract.lmm.lmm_experiment``; importing
this package also registers it in autora-synthetic's inventory, so
``retrieve("lmm_experiment", formula=...)`` builds it.

* ``semantics="autora"`` (default) reproduces autora-synthetic 2.2.0 draw for
  draw, including its non-lme4 readings, and warns (:class:`GlmmsimWarning`)
  when a formula meets one of them.
* ``semantics="lme4"`` runs on :class:`glmmsim.Model`: lme4 meaning,
  correlated effects, GLMM families and a persistent population of subjects.

Examples
--------
The default reading gives autora-synthetic's documented numbers (every documented
table is checked in ``tests/autora_layer/test_documented.py``); the warning about
that reading is silenced here:

>>> import warnings
>>> import numpy as np, pandas as pd
>>> from glmmsim import GlmmsimWarning
>>> from glmmsim.autora import lmm_experiment
>>> warnings.simplefilter("ignore", GlmmsimWarning)
>>> conditions = pd.concat([
...     pd.DataFrame({'x1': np.linspace(0, 1, 3), 'subject': np.repeat(1, 3)}),
...     pd.DataFrame({'x1': np.linspace(0, 1, 3), 'subject': np.repeat(2, 3)})])
>>> experiment = lmm_experiment('rt ~ 1 + (1|subject) + x1',
...                             fixed_effects={'Intercept': 1, 'x1': 2},
...                             random_effects={'subject': {'Intercept': .1}})
>>> experiment.ground_truth(conditions=conditions, random_state=42)
    x1  subject        rt
0  0.0        1  1.030472
1  0.5        1  2.030472
2  1.0        1  3.030472
0  0.0        2  0.896002
1  0.5        2  1.896002
2  1.0        2  2.896002

The lme4 reading keeps its subjects: the same seed gives the same population,
``run``'s ``random_state`` only changes the noise.

>>> experiment = lmm_experiment('rt ~ x1 + (x1|subject)',
...                             fixed_effects={'Intercept': 1, 'x1': 2},
...                             random_effects={'subject': {'1': .5, 'x1': .2}},
...                             random_state=7, semantics='lme4')
>>> a = experiment.ground_truth(conditions)
>>> b = experiment.ground_truth(conditions)
>>> bool((a['rt'] == b['rt']).all())
True
>>> noisy = experiment.run(conditions, added_noise=0.1, random_state=1)
>>> bool(noisy['rt'].equals(experiment.run(conditions, added_noise=0.1, random_state=1)['rt']))
True
"""

from __future__ import annotations

try:
    import autora.experiment_runner.synthetic.utilities as _inventory
    import autora.variable  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "glmmsim.autora needs AutoRA: pip install 'glmmsim[autora]' (from a checkout: pip install '.[autora]') "
        "(autora-core and autora-synthetic==2.2.0, which require numpy < 2)"
    ) from exc

from ._experiment import lmm_experiment

__all__ = ["lmm_experiment", "register"]


def register(id_: str = "lmm_experiment") -> None:
    """Register :func:`lmm_experiment` in autora-synthetic's inventory under ``id_``.

    Done on import under ``"lmm_experiment"``.

    Examples
    --------
    >>> from autora.experiment_runner.synthetic.utilities import retrieve
    >>> retrieve("lmm_experiment", formula="y ~ x", fixed_effects={"Intercept": 0, "x": 1}).params["formula"]
    'y ~ x'
    """
    _inventory.register(id_, lmm_experiment)


register()
