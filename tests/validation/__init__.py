"""Statistical validation: glmmsim against exact theory, simr's figures, lme4/lmerTest and Monte Carlo rates."""
