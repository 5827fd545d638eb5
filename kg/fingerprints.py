"""64-bit fingerprints of values, kept sorted to ask "seen before?" of a whole column at once,
or in a hash table to ask "where?".

A fingerprint of a string column is computed from its bytes with numpy (`string_fingerprints`:
no Python object per value); a pair of columns combines theirs (`pair_fingerprints`). A clash
only makes a new value look seen, so a caller either compares the suspects themselves (the
SQLite store's txn_ids) or takes the cautious path for them (the Neo4j store merges instead of
creating).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

# Bytes of a string that enter its fingerprint (with its length); longer strings share a
# fingerprint when they share these, which callers resolve by comparing the strings.
_HASHED_BYTES = 256
# Rows fingerprinted at a time: bounds the byte matrix of a column of long strings.
_ROWS_AT_ONCE = 1 << 18
_SEED = np.uint64(0x9E3779B97F4A7C15)
_MULTIPLIER = np.uint64(0xBF58476D1CE4E5B9)


def string_fingerprints(values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """The fingerprint of each string of an Arrow column (0 for a null), from its bytes: equal
    strings always get equal fingerprints, in every process."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.large_string())
    out = np.zeros(len(values), np.int64)
    for start in range(0, len(values), _ROWS_AT_ONCE):
        part = values.slice(start, _ROWS_AT_ONCE)
        out[start : start + len(part)] = _fingerprint_part(part)
    out[~np.asarray(values.is_valid().to_numpy(zero_copy_only=False), bool)] = 0
    return out


def pair_fingerprints(
    first: pa.Array | pa.ChunkedArray, second: pa.Array | pa.ChunkedArray
) -> npt.NDArray[np.int64]:
    """The fingerprint of each (first, second) pair of two string columns (order matters)."""
    a = string_fingerprints(first).view(np.uint64)
    b = string_fingerprints(second).view(np.uint64)
    with np.errstate(over="ignore"):
        hashed = (a ^ (b * _MULTIPLIER + _SEED)) * _MULTIPLIER
        hashed ^= hashed >> np.uint64(31)
    return hashed.view(np.int64)


def _fingerprint_part(values: pa.Array) -> npt.NDArray[np.int64]:
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64)
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int64, count=n + 1, offset=values.offset * 8)
    data = np.zeros(1, np.uint8) if data_buffer is None else np.frombuffer(data_buffer, np.uint8)
    lengths = np.diff(offsets)
    kept = np.minimum(lengths, _HASHED_BYTES)
    width = max(8, -(-int(kept.max()) // 8) * 8)
    # The kept bytes of each string, zero-padded to a whole number of 8-byte words.
    matrix = np.zeros((n, width), np.uint8)
    first = int(offsets[0])
    if (kept == lengths).all() and (lengths == lengths[0]).all():  # one length: a reshape
        size = int(lengths[0])
        matrix[:, :size] = data[first : first + n * size].reshape(n, size)
    else:
        rows = np.repeat(np.arange(n), kept)
        columns = np.arange(rows.size) - np.repeat(np.cumsum(kept) - kept, kept)
        matrix[rows, columns] = data[np.repeat(offsets[:-1], kept) + columns]
    words = matrix.view(np.uint64)
    hashed = lengths.astype(np.uint64) * _SEED
    with np.errstate(over="ignore"):
        for column in range(words.shape[1]):
            hashed = (hashed ^ words[:, column]) * _MULTIPLIER
            hashed ^= hashed >> np.uint64(31)
    return hashed.view(np.int64)


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


# Fibonacci hashing: a fingerprint's slot is the top bits of its product with 2^64 / phi.
_SLOT_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = -1
# A free slot wanted by row i of a batch holds _CLAIMED - i until the batch's winner is known.
_CLAIMED = -2


class FingerprintTable:
    """A position per fingerprint, in an open-addressing hash table (linear probing, at most
    half full) that lives as long as its owner: a whole column is probed at once, and adding
    a batch costs that batch, not everything added before.

    The first position given for a fingerprint stays. Callers confirm a hit by comparing the
    values themselves (two values may share a fingerprint).

    Example:
        >>> table = FingerprintTable()
        >>> table.add(np.array([11, 22, 11]), np.array([0, 1, 2]))
        >>> table.find(np.array([22, 11, 33])).tolist()
        [1, 0, -1]
    """

    def __init__(self) -> None:
        self._bits = 10
        self._prints = np.zeros(1 << self._bits, np.int64)
        self._at = np.full(1 << self._bits, _EMPTY, np.int64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def find(self, prints: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The position of each fingerprint, or -1 where it was never added."""
        slots = self._slots(prints)
        held = self._at[slots]
        hit = (held != _EMPTY) & (self._prints[slots] == prints)
        out = np.where(hit, held, _EMPTY)
        # a slot held by another fingerprint: look in the next one (few do, at most half full)
        active = np.flatnonzero((held != _EMPTY) & ~hit)
        mask = len(self._at) - 1
        while active.size:
            at_slot = (slots[active] + 1) & mask
            slots[active] = at_slot
            held = self._at[at_slot]
            hit = (held != _EMPTY) & (self._prints[at_slot] == prints[active])
            out[active[hit]] = held[hit]
            active = active[(held != _EMPTY) & ~hit]
        return out

    def add(self, prints: npt.NDArray[np.int64], positions: npt.NDArray[np.int64]) -> None:
        """Give each fingerprint not added before its position (the first one, for a
        fingerprint that repeats in `prints`)."""
        while 2 * (self._count + len(prints)) > len(self._at):
            self._grow()
        self._count += self._place(prints, np.asarray(positions, np.int64))

    def _slots(self, prints: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        with np.errstate(over="ignore"):
            product = prints.view(np.uint64) * _SLOT_MULTIPLIER
        return (product >> np.uint64(64 - self._bits)).astype(np.int64)

    def _grow(self) -> None:
        held = self._at != _EMPTY
        prints, positions = self._prints[held], self._at[held]
        self._bits += 1
        self._prints = np.zeros(1 << self._bits, np.int64)
        self._at = np.full(1 << self._bits, _EMPTY, np.int64)
        self._place(prints, positions)

    def _place(self, prints: npt.NDArray[np.int64], positions: npt.NDArray[np.int64]) -> int:
        """Store the fingerprints the table does not hold, each at its first position;
        returns how many were stored."""
        slots = self._slots(prints)
        pending = np.arange(len(prints))
        mask = len(self._at) - 1
        placed = 0
        while pending.size:
            at_slot = slots[pending]
            held = self._at[at_slot]
            taken = held != _EMPTY
            # held by the same fingerprint (added before, or earlier in `prints`): done
            moving = taken & (self._prints[at_slot] != prints[pending])
            slots[pending[moving]] = (at_slot[moving] + 1) & mask
            free, free_slot = pending[~taken], at_slot[~taken]
            # of several wanting one free slot, the first takes it: written last to first,
            # the first one's write is the one that stays
            self._at[free_slot[::-1]] = _CLAIMED - free[::-1]
            won = self._at[free_slot] == _CLAIMED - free
            self._at[free_slot[won]] = positions[free[won]]
            self._prints[free_slot[won]] = prints[free[won]]
            placed += int(won.sum())
            pending = np.concatenate([pending[moving], free[~won]])
        return placed
