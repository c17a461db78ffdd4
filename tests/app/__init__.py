"""Tests of the power planner app, with and without a browser."""
