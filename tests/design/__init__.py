"""Tests of glmmsim.design: crossed and nested designs."""
