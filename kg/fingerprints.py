"""64-bit fingerprints of values, kept sorted to ask "seen before?" of a whole column at once.

A fingerprint is Python's hash of the value (a string, or a tuple of them): stable within a
process, which is all one job needs. A clash only makes a new value look seen, so a caller
either compares the suspects themselves (the SQLite store's txn_ids) or takes the cautious
path for them (the Neo4j store merges instead of creating).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt


def fingerprints(values: Iterable[Hashable], count: int) -> npt.NDArray[np.int64]:
    """The fingerprint of each of `count` values."""
    return np.fromiter(map(hash, values), np.int64, count=count)


def sorted_member(ordered: npt.NDArray[Any], values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Whether each value is in the ascending array `ordered` (a binary search each: far
    cheaper than `isin` for a few values against many)."""
    if not len(ordered):
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    found: npt.NDArray[np.bool_] = ordered[at] == values
    return found


class SortedFingerprints:
    """Fingerprints seen so far, ascending; a batch is checked and added in O(batch · log n)
    and O(n) respectively, whatever was added before."""

    def __init__(self) -> None:
        self.sorted: npt.NDArray[np.int64] = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.sorted)

    def contains(self, prints: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Whether each fingerprint was added before (sorted probes walk the array in order)."""
        return sorted_member(self.sorted, prints)

    def add(self, prints: npt.NDArray[np.int64]) -> None:
        prints = np.sort(prints)
        self.sorted = np.insert(self.sorted, np.searchsorted(self.sorted, prints), prints)
