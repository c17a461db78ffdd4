"""Tests of glmmsim.lme4: lme4 conventions and the summary layout."""
