"""Cross-checks against R's lme4."""
