"""Fingerprints: equal values get equal ones; sorted, they answer membership as a set does."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from kg.fingerprints import (
    SortedFingerprints,
    pair_fingerprints,
    sorted_member,
    string_fingerprints,
)


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
    prints = pair_fingerprints(pa.array(["p1", "p1", "p1"]), pa.array(["c1", "c2", "c1"]))
    assert prints[0] == prints[2] and prints[0] != prints[1]
    swapped = pair_fingerprints(pa.array(["c1"]), pa.array(["p1"]))
    assert swapped[0] != prints[0]


texts = st.text(alphabet=st.sampled_from("aB7-é企业 \x00"), max_size=12) | st.text(
    min_size=250, max_size=300
)


@given(st.lists(st.none() | texts, max_size=60), st.integers(0, 5))
def test_string_fingerprints_depend_on_the_string_alone(values: list[str | None], cut: int) -> None:
    """Equal strings get equal fingerprints however the column is laid out (a slice, chunks,
    32- or 64-bit offsets); a null gets 0."""
    prints = string_fingerprints(pa.array(values, pa.string()))
    assert [p for p, v in zip(prints.tolist(), values, strict=True) if v is None] == [0] * sum(
        v is None for v in values
    )
    by_value: dict[str, int] = {}
    for value, p in zip(values, prints.tolist(), strict=True):
        if value is not None:
            assert by_value.setdefault(value, p) == p
    padded = pa.array(["x" * cut, *values], pa.large_string()).slice(1)
    chunked = pa.chunked_array(
        [pa.array(values[:cut], pa.string()), pa.array(values[cut:], pa.string())]
    )
    assert string_fingerprints(padded).tolist() == prints.tolist()
    assert string_fingerprints(chunked).tolist() == prints.tolist()


def test_string_fingerprints_tell_near_strings_apart() -> None:
    values = [f"A{i:010d}" for i in range(100_000)] + [f"P{i}" for i in range(100_000)]
    values += ["", "a", "a\x00", "\x00a", "ab", "ba", "x" * 300, "x" * 301]
    prints = string_fingerprints(pa.array(values))
    assert len(set(prints.tolist())) == len(values)
