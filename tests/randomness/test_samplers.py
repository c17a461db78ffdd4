"""Tests of the keyed samplers (glmmsim.randomness.samplers): the uniforms they read, rejection retries, exp/log.

The samplers as a family's response draws (moments, distributions, pinned digests) are
tested with the families, in tests/model/test_families.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from glmmsim.randomness import samplers
from glmmsim.randomness.streams import RowStreams


def streams(n: int, stream: int = 77, offset: int = 0) -> RowStreams:
    return RowStreams(np.arange(offset, offset + n, dtype=np.uint64), stream)


def test_blocked_uniforms_are_the_textbook_bits():
    """The blocked, in-place uniforms equal the scalar SplitMix64 recipe bit for bit, rows or not."""
    from glmmsim.randomness.seeds import splitmix64

    def textbook(key: int, stream: int) -> float:
        return ((splitmix64(splitmix64(key ^ stream)) >> 11) + 0.5) * 2.0**-53

    keys = np.random.default_rng(0).integers(0, 2**63, 200_003, dtype=np.uint64)
    rs = RowStreams(keys, stream=123)
    for draw_index in (0, 1, 17):
        u = rs.uniforms(draw_index)
        stream = rs.draw_stream(draw_index)
        for r in (0, 1, 65_535, 65_536, 131_072, 200_002):  # both sides of every block edge
            assert u[r] == textbook(int(keys[r]), stream)
    rows = np.array([5, 0, 199_999, 70_000, 5])
    assert np.array_equal(rs.uniforms(3, rows), rs.uniforms(3)[rows])
    assert rs.uniforms(0, np.array([], dtype=np.intp)).shape == (0,)


def test_rejection_samplers_retry_from_the_rows_own_stream():
    """Rows rejected at the first attempt exist, and their values are the same alone or in bulk."""
    n = 20_000
    rs = streams(n, offset=10**6)
    lam = np.full(n, 40.0)
    whole = samplers.poisson(lam, rs)
    # PTRS attempt 0 on every row, by hand: the rows whose attempt-0 value differs were retried
    u = rs.uniforms(0) - 0.5
    b = 0.931 + 2.53 * np.sqrt(40.0)
    a = -0.059 + 0.02483 * b
    first = np.floor((2 * a / (0.5 - np.abs(u)) + b) * u + 40.0 + 0.43)
    retried = np.flatnonzero(first != whole)
    assert retried.shape[0] > 100  # about 10% of attempts are rejected at this mean
    for r in retried[:20]:
        one = RowStreams(rs.keys[r : r + 1], rs.stream)
        assert samplers.poisson(lam[r : r + 1], one)[0] == whole[r]


def test_exp_and_log_are_within_one_ulp():
    """samplers.exp / samplers.log (IEEE-exact operations only) against the C library's exp and log."""
    import math

    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(-745.0, 709.7, 20_000), rng.uniform(-1, 1, 20_000), rng.normal(0, 1e-9, 1000)])
    got = samplers.exp(x)
    want = np.array([math.exp(v) for v in x])
    normal = want > 2.3e-308  # subnormal results have fewer bits; checked separately below
    assert np.all(np.abs(got[normal] - want[normal]) <= np.spacing(want[normal]))
    assert np.all(np.abs(got[~normal] - want[~normal]) <= 2 * 5e-324)
    special = samplers.exp(np.array([0.0, 709.79, -746.0, np.inf, -np.inf, np.nan]))
    np.testing.assert_array_equal(special, [1.0, np.inf, 0.0, np.inf, 0.0, np.nan])
    assert samplers.exp(np.array(1.0)).shape == () and float(samplers.exp(np.array(1.0))) == pytest.approx(math.e)

    u = np.concatenate([rng.uniform(0, 1, 20_000), np.exp(rng.uniform(-740, 700, 20_000)),
                        [2.0**-54, 1 - 2.0**-53, 1.0, 5e-324]])
    got = samplers.log(u)
    want = np.array([math.log(v) for v in u])
    assert np.all(np.abs(got - want) <= np.spacing(np.abs(want)) + (want == 0) * 0.0)
