"""The test suite: folders mirror the packages of src/glmmsim; validation/ holds the statistical checks."""
