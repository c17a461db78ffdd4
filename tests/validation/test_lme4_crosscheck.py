"""Cross-checks against R's lme4 (marked ``r``: skipped without R and lme4 unless GLMMSIM_REQUIRE_R=1).

1. Parameter recovery: data simulated by glmmsim and fitted with ``lmer`` give
   fixed effects within 4 of lme4's standard errors of the truth, and the true
   SDs / correlation / sigma inside lme4's 99.9% profile confidence intervals.
2. ``glmmsim.to_theta`` equals the theta that R computes from the same
   covariances in lme4's own term order (``lFormula()$reTrms$cnms``), including
   tied numbers of levels, ``||`` and ``/``; and ``glmmsim.random_from_theta``
   turns a fitted ``getME(fit, "theta")`` into exactly the SDs and correlations
   of ``VarCorr(fit)``, for lmer and for a Poisson glmer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmsim


pytestmark = pytest.mark.r


def run_r(code: str, workdir: Path) -> None:
    """Run an R script in ``workdir``; fail the test with R's message on error."""
    script = workdir / "check.R"
    script.write_text("suppressMessages(library(lme4))\n" + code)
    proc = subprocess.run(["Rscript", str(script)], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"Rscript failed:\n{proc.stderr}"


def lme4_coef(name: str) -> str:
    return "(Intercept)" if name == "Intercept" else name


def lme4_factor(factor: str) -> str:
    # glmmsim keys (1 | a/b)'s interaction "a:b"; lme4 names it "b:a"
    return ":".join(reversed(factor.split(":")))


def crossed_conditions(n_subject: int, n_item: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product(
        [[f"s{i:03d}" for i in range(n_subject)], [f"i{j:03d}" for j in range(n_item)]], names=["subject", "item"]
    ).to_frame(index=False)
    grid["x1"] = rng.standard_normal(len(grid))
    grid["x2"] = rng.standard_normal(len(grid))
    return grid


# --------------------------------------------------------------------------- recovery


@pytest.mark.slow
def test_lmer_recovers_glmmsim_parameters(tmp_path: Path) -> None:
    fixed = {"Intercept": 1.5, "x1": 2.0, "x2": -1.2}
    sd_subject = {"Intercept": 0.8, "x1": 0.4}
    corr = 0.3
    sd_item, sigma = 0.5, 1.0
    model = glmmsim.Model(
        "y ~ 1 + x1 + x2 + (1 + x1 | subject) + (1 | item)",
        fixed=fixed,
        random={"subject": {"sd": sd_subject, "corr": {("Intercept", "x1"): corr}}, "item": sd_item},
        sigma=sigma,
        seed=11,
    )
    # 120 subjects x 50 items: the correlation is estimated from 120 subjects,
    # Fisher SE (1 - r^2) / sqrt(117) ~ 0.08, so the 99.9% interval is informative
    data = model.simulate(crossed_conditions(120, 50, seed=1), seed=2)
    data.to_csv(tmp_path / "data.csv", index=False)
    run_r(
        """
d <- read.csv("data.csv")
fit <- lmer(y ~ 1 + x1 + x2 + (1 + x1 | subject) + (1 | item), data = d)
write.csv(data.frame(name = names(fixef(fit)), est = fixef(fit), se = sqrt(diag(as.matrix(vcov(fit))))),
          "fixef.csv", row.names = FALSE)
ci <- confint(fit, parm = "theta_", method = "profile", level = 0.999, oldNames = FALSE)
write.csv(data.frame(name = rownames(ci), lo = ci[, 1], hi = ci[, 2]), "ci.csv", row.names = FALSE)
""",
        tmp_path,
    )
    fx = pd.read_csv(tmp_path / "fixef.csv").set_index("name")
    for coef, true in fixed.items():
        est, se = fx.loc[lme4_coef(coef), ["est", "se"]]
        # 4 standard errors: a false alarm has probability ~6e-5 per coefficient
        assert abs(est - true) < 4 * se, f"{coef}: lme4 estimate {est:.3f} +- {se:.3f}, true {true}"

    ci = pd.read_csv(tmp_path / "ci.csv").set_index("name")
    truth = {
        "sd_(Intercept)|subject": sd_subject["Intercept"],
        "cor_x1.(Intercept)|subject": corr,
        "sd_x1|subject": sd_subject["x1"],
        "sd_(Intercept)|item": sd_item,
        "sigma": sigma,
    }
    assert set(ci.index) == set(truth)
    for name, true in truth.items():
        lo, hi = ci.loc[name, ["lo", "hi"]]
        assert lo < true < hi, f"{name}: true {true} outside lme4's 99.9% profile interval [{lo:.3f}, {hi:.3f}]"


# --------------------------------------------------------------------------- theta conversion

# Numbers of levels: subject 40, g 20, item 15, a 10, b 10. In formula order they
# increase and decrease, so lme4 sorts them and reverses the a/b and g ties.
THETA_CASES = [
    (
        "y ~ x + (1 | a) + (1 + x | subject) + (1 | b) + (x || g) + (1 | item)",
        {
            "a": 0.3,
            "subject": {"sd": {"Intercept": 0.9, "x": 0.4}, "corr": {("Intercept", "x"): -0.35}},
            "b": 0.6,
            "g": {"Intercept": 0.5, "x": 0.25},
            "item": 0.45,
        },
    ),
    (
        "y ~ x + (1 | school/room) + (0 + x | subject) + (1 | subject)",
        {"school": 0.7, "school:room": 0.35, "subject": {"Intercept": 0.5, "x": 0.3}},
    ),
]


def theta_conditions(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 3000
    frame = pd.DataFrame(
        {
            "subject": [f"s{i % 40:02d}" for i in range(n)],
            "item": rng.choice([f"i{j:02d}" for j in range(15)], n),
            "a": rng.choice([f"a{j}" for j in range(10)], n),
            "b": rng.choice([f"b{j}" for j in range(10)], n),
            "g": rng.choice([f"g{j:02d}" for j in range(20)], n),
            "school": rng.choice([f"sc{j}" for j in range(8)], n),
            "room": rng.choice(["r1", "r2", "r3"], n),
            "x": rng.standard_normal(n),
        }
    )
    return frame


def spec_table(model: glmmsim.Model) -> pd.DataFrame:
    """The model's covariances as rows (lme4 factor, coef1, coef2, value): SDs on the diagonal, correlations off it."""
    rows = []
    for factor, (coefs, sd, corr) in model.covariance().items():
        for i, ci in enumerate(coefs):
            rows.append((lme4_factor(factor), lme4_coef(ci), lme4_coef(ci), sd[i]))
            for j in range(i):
                rows.append((lme4_factor(factor), lme4_coef(coefs[j]), lme4_coef(ci), corr[i, j]))
    return pd.DataFrame(rows, columns=["factor", "c1", "c2", "value"])


THETA_R = """
d <- read.csv("data.csv")
spec <- read.csv("spec.csv")
sigma_true <- as.numeric(readLines("sigma.txt"))
f <- as.formula(readLines("formula.txt"))
fam <- readLines("family.txt")
look <- function(g, a, b) {
  v <- spec$value[spec$factor == g & ((spec$c1 == a & spec$c2 == b) | (spec$c1 == b & spec$c2 == a))]
  if (length(v) == 0) 0 else v
}
cnms <- lFormula(f, data = d, control = lmerControl(check.nobs.vs.nRE = "ignore"))$reTrms$cnms
theta <- c()
for (t in seq_along(cnms)) {
  g <- names(cnms)[t]; cn <- cnms[[t]]; k <- length(cn)
  S <- matrix(0, k, k)
  for (i in 1:k) for (j in 1:k) S[i, j] <- if (i == j) look(g, cn[i], cn[i])^2 else look(g, cn[i], cn[j]) * look(g, cn[i], cn[i]) * look(g, cn[j], cn[j])
  L <- t(chol(S)) / (if (fam == "gaussian") sigma_true else 1)
  theta <- c(theta, L[lower.tri(L, diag = TRUE)])
}
writeLines(format(theta, digits = 17), "theta_true.txt")
fit <- if (fam == "gaussian") lmer(f, data = d) else glmer(f, data = d, family = get(fam))
writeLines(format(getME(fit, "theta"), digits = 17), "theta_fit.txt")
writeLines(format(sigma(fit), digits = 17), "sigma_fit.txt")
vc <- as.data.frame(VarCorr(fit))
vc$grp <- sub("\\\\.[0-9]+$", "", vc$grp)  # "g.1" (second term of (x || g)) -> "g"
write.csv(vc, "varcorr.csv", row.names = FALSE)
"""


def run_theta_check(tmp_path: Path, formula: str, data: pd.DataFrame, model: glmmsim.Model, family: str):
    data.to_csv(tmp_path / "data.csv", index=False)
    spec_table(model).to_csv(tmp_path / "spec.csv", index=False)
    (tmp_path / "sigma.txt").write_text(f"{model.sigma if model.sigma is not None else 1.0!r}\n")
    (tmp_path / "formula.txt").write_text(formula + "\n")
    (tmp_path / "family.txt").write_text(family + "\n")
    run_r(THETA_R, tmp_path)

    def numbers(name: str) -> np.ndarray:
        return np.array([float(v) for v in (tmp_path / name).read_text().split()])

    return numbers("theta_true.txt"), numbers("theta_fit.txt"), float(numbers("sigma_fit.txt")[0]), pd.read_csv(
        tmp_path / "varcorr.csv"
    )


def assert_matches_varcorr(spec: dict, varcorr: pd.DataFrame) -> None:
    """Every SD and correlation of a random_from_theta spec equals lme4's VarCorr entry."""
    checked = 0
    for row in varcorr.itertuples():
        if row.grp == "Residual":
            continue
        # VarCorr's data frame spells the factor "room:school" as "room.school"
        factor = next(f for f in spec if lme4_factor(f).replace(":", ".") == row.grp)
        names = {lme4_coef(c): c for c in spec[factor]["sd"]}
        if pd.isna(row.var2):
            got = spec[factor]["sd"][names[row.var1]]
        else:
            pair = (names[row.var1], names[row.var2])
            corr = spec[factor]["corr"]
            got = corr[pair] if pair in corr else corr[pair[::-1]]
        assert got == pytest.approx(row.sdcor, rel=1e-6, abs=1e-9), f"{row.grp} {row.var1} {row.var2}"
        checked += 1
    assert checked == sum(len(s["sd"]) + len(s["corr"]) for s in spec.values())


@pytest.mark.parametrize("formula, random", THETA_CASES, ids=["ties-and-doublebar", "nested"])
def test_theta_matches_lme4_gaussian(tmp_path: Path, formula: str, random: dict) -> None:
    sigma = 0.7
    model = glmmsim.Model(formula, fixed={"Intercept": 0.5, "x": 1.0}, random=random, sigma=sigma, seed=5)
    data = model.simulate(theta_conditions(seed=4), seed=6)
    theta_true, theta_fit, sigma_fit, varcorr = run_theta_check(tmp_path, formula, data, model, "gaussian")

    np.testing.assert_allclose(glmmsim.to_theta(model, data), theta_true, rtol=1e-12, atol=1e-14)

    # R's theta back to glmmsim's spec: the SDs and correlations the model was built with
    back = glmmsim.random_from_theta(formula, theta_true, data, sigma=sigma)
    for factor, (coefs, sd, corr) in model.covariance().items():
        assert [back[factor]["sd"][c] for c in coefs] == pytest.approx(list(sd), rel=1e-12)
        for i in range(len(coefs)):
            for j in range(i):
                pair = (coefs[j], coefs[i])
                got = back[factor]["corr"].get(pair, back[factor]["corr"].get(pair[::-1], 0.0))
                assert got == pytest.approx(corr[i, j], abs=1e-12)

    # a fitted theta: random_from_theta must reproduce lme4's own VarCorr
    fitted = glmmsim.random_from_theta(formula, theta_fit, data, sigma=sigma_fit)
    assert_matches_varcorr(fitted, varcorr)


def test_theta_matches_lme4_poisson(tmp_path: Path) -> None:
    formula = "y ~ x + (1 | item) + (1 + x | subject)"
    random = {"item": 0.3, "subject": {"sd": {"Intercept": 0.4, "x": 0.2}, "corr": {("Intercept", "x"): 0.5}}}
    model = glmmsim.Model(formula, fixed={"Intercept": 1.0, "x": 0.3}, random=random, family="poisson", seed=8)
    data = model.simulate(theta_conditions(seed=9)[["subject", "item", "x"]], seed=10)
    theta_true, theta_fit, _, varcorr = run_theta_check(tmp_path, formula, data, model, "poisson")

    # GLMM theta is the Cholesky factor of Sigma itself (no sigma scaling)
    np.testing.assert_allclose(glmmsim.to_theta(model, data), theta_true, rtol=1e-12, atol=1e-14)
    fitted = glmmsim.random_from_theta(formula, theta_fit, data, family="poisson")
    assert_matches_varcorr(fitted, varcorr)


def test_random_from_theta_takes_a_scalar_and_refuses_nan():
    from glmmsim import ParameterError
    from glmmsim.lme4.theta import random_from_theta

    data = pd.DataFrame({"g": list("aabbcc")})
    assert random_from_theta("y ~ (1 | g)", 0.5, data, sigma=2.0) == {"g": {"sd": {"Intercept": 1.0}, "corr": {}}}
    for bad in ([np.nan], [np.inf], ["a"]):
        with pytest.raises(ParameterError, match="theta"):
            random_from_theta("y ~ (1 | g)", bad, data, sigma=2.0)


def test_random_from_theta_gives_zero_correlation_for_a_zero_sd():
    from glmmsim.lme4.theta import random_from_theta

    data = pd.DataFrame({"x": [0.0, 1.0] * 3, "g": list("aabbcc")})
    spec = random_from_theta("y ~ (1 + x | g)", [1.0, 0.0, 0.0], data, sigma=1.0)  # x has SD 0
    assert spec["g"]["sd"]["x"] == 0.0
    assert spec["g"]["corr"][("Intercept", "x")] == 0.0  # lme4 prints NaN; 0 keeps the spec valid
