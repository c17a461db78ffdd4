"""Tests of glmmsim.autora, the AutoRA drop-in (named so it does not shadow the autora package)."""
