"""Sorted fingerprints answer membership as a Python set does."""

from __future__ import annotations

import numpy as np

from kg.fingerprints import SortedFingerprints, fingerprints, sorted_member


def test_membership_matches_a_set_across_batches() -> None:
    rng = np.random.default_rng(3)
    seen = SortedFingerprints()
    oracle: set[int] = set()
    for _ in range(20):
        batch = rng.integers(-50, 50, size=int(rng.integers(0, 30)), dtype=np.int64)
        assert seen.contains(batch).tolist() == [int(v) in oracle for v in batch]
        seen.add(batch)
        oracle.update(int(v) for v in batch)
        assert np.all(np.diff(seen.sorted) >= 0) and len(seen) >= len(oracle)


def test_sorted_member_is_isin_on_an_ascending_array() -> None:
    ordered = np.array([-7, 0, 3, 3, 10], np.int64)
    values = np.array([10, 4, -7, 11, -8, 3], np.int64)
    assert sorted_member(ordered, values).tolist() == np.isin(values, ordered).tolist()
    assert sorted_member(ordered[:0], values).tolist() == [False] * len(values)


def test_equal_values_have_equal_fingerprints() -> None:
    prints = fingerprints([("p1", "c1"), ("p1", "c2"), ("p1", "c1")], 3)
    assert prints[0] == prints[2] and prints[0] != prints[1]
