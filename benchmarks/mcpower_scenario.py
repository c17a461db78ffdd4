"""The MCPower 1.4.1 scenario the benchmarks compare glmmsim with, written once.

The closest to ``y ~ cond + (1 + cond | subject) + (1 | item)`` (30 subjects x 20 items x 2,
1,200 rows) that MCPower's API states: a standardized effect of a binary ``cond``, ICCs and a
correlated random slope. Imports neither glmmsim nor numpy, so ``bench_peers.py`` runs it in
MCPower's own virtual environment.
"""

import warnings

FORMULA = "y ~ cond + (1 + cond|subject) + (1|item)"
ROWS = 1200
CURVE_SUBJECTS = (20, 30, 40, 50, 60)  # the power curve's points (20 items x 2 conditions each)


def scenario(mcpower, subjects=30):
    """A configured ``mcpower.MCPower`` model of the standard crossed design with ``subjects`` subjects."""
    m = mcpower.MCPower(FORMULA, family="lme")
    m.set_variable_type("cond=binary")
    m.set_effects({"cond": 0.2})
    m.set_cluster("subject", ICC=0.2, n_clusters=subjects, random_slopes=["cond"], slope_variance=0.05,
                  slope_intercept_corr=0.2)
    m.set_cluster("item", ICC=0.1, n_clusters=20)
    return m


def find_power(mcpower, sims, *, rows=ROWS, df_method=None, subjects=30):
    """``sims`` simulations of the scenario with MCPower's own test (``df_method`` as MCPower names it)."""
    options = {} if df_method is None else {"df_method": df_method}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MCPower's notes on its approximations, once per call
        return scenario(mcpower, subjects).find_power(rows, target_test="cond", n_sims=sims, seed=1, progress_callback=False,
                                            verbose=False, **options)


def power_curve(mcpower, sims):
    """The 5-point curve over ``CURVE_SUBJECTS``, ``sims`` simulations a point, MCPower's default test.

    One ``find_power`` a point: MCPower's ``find_sample_size`` varies rows, and with crossed
    factors it needs a fixed number of clusters.
    """
    return [find_power(mcpower, sims, rows=s * 40, subjects=s) for s in CURVE_SUBJECTS]
