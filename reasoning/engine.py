"""Semi-naive forward chaining over integer-encoded relations, vectorised with numpy.

A relation is a set of rows stored column-wise (int64 entity ids, float64 values). Rows are
only ever appended during evaluation, so "the rows added in the last round" is a suffix of
each relation and semi-naive evaluation needs no copies: for a rule with body atoms
b1..bn and a delta in bi it joins b1..b(i-1) over the rows before the delta, bi over the
delta, b(i+1)..bn over all rows. Joins are sort + searchsorted merges on int64 keys; binary
relations of entity ids deduplicate by packing a row into one int64 `(src << 32) | dst`.

Strata are the strongly connected components of the predicate dependency graph, evaluated
in topological order. Negation must not occur inside a component (stratified negation).
Aggregation inside a component (control through the votes of controlled companies) is
evaluated inflationarily: every round recomputes the aggregate from the current facts and
supersedes a group's previous value; facts derived from earlier values are kept. That is the
least fixpoint when the aggregate only grows as its inputs grow and its consumers are
upward-closed (a `sum` of non-negative votes compared with `>`), which the banking rules are.
Datalog adds no new constants, so every program terminates, on cyclic data and on
self-referential property chains alike.

Every row carries a fact id (`fid`) and one derivation: the rule that first produced it and
the fids of the body facts it joined (explicit facts have rule -1). Aggregated rows record
no premises; their contributors are recomputed when explained.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt

from reasoning.datalog import (
    Aggregate,
    Atom,
    Comparison,
    Const,
    Negation,
    Rule,
    RuleSyntaxError,
    Var,
)

IntArray = npt.NDArray[np.int64]
Array = npt.NDArray[Any]

EXPLICIT = -1
_SHIFT = np.int64(32)
_MAX_PACKED_ID = 1 << 31
# A join fetches an atom's rows through a column index when its bindings are at least this
# many times fewer than the rows.
_PROBE_RATIO = 8


class EngineError(RuntimeError):
    """The program cannot be evaluated (not stratifiable, arity clash, id out of range)."""


class Relation:
    """The rows of one predicate, their fact ids and one derivation per row."""

    def __init__(self, name: str, arity: int, width: int) -> None:
        self.name = name
        self.arity = arity
        self.width = width  # premise slots: the most positive atoms of a rule heading it
        self.cols: list[Array] = []
        self.fids: IntArray = np.empty(0, np.int64)
        self.rule: npt.NDArray[np.int32] = np.empty(0, np.int32)
        self.premises: IntArray = np.empty((0, width), np.int64)
        self.live: npt.NDArray[np.bool_] | None = None  # None: every row is live
        self.packed: bool | None = None
        # Sorted keys of the live rows with their row numbers, in two levels: the main index
        # and the rows appended since, merged into it once they are many (appending stays
        # proportional to the rows appended). `_fresh` is empty while `_index` is None.
        self._index: tuple[Array, IntArray] | None = None
        self._fresh: tuple[Array, IntArray] = (np.empty(0, np.int64), np.empty(0, np.int64))
        # Arrays with room to grow behind cols, fids, rule, premises (and live): the public
        # arrays are views of their first rows, so appending m rows costs O(m) amortised,
        # not a copy of the relation. None after any other change of the layout.
        self._buffers: list[Array] | None = None
        # bumped whenever rows are retired or removed (views of a range then go stale)
        self.changes = 0
        # column -> (values sorted, their rows, rows covered): an index of rows [0, covered),
        # retired ones included; rows appended since are searched directly until there are
        # enough of them to merge in
        self._by_column: dict[int, tuple[Array, IntArray, int]] = {}

    def __len__(self) -> int:
        return len(self.fids)

    # --- row identity ---------------------------------------------------------------------
    def _set_kind(self, cols: Sequence[Array]) -> None:
        if self.packed is None:
            self.packed = self.arity <= 2 and all(c.dtype.kind in "iu" for c in cols)
            dtypes = [np.int64 if c.dtype.kind in "iub" else np.float64 for c in cols]
            self.cols = [np.empty(0, d) for d in dtypes]
            self._buffers = None
            self._by_column = {}

    def coerce(self, cols: Sequence[Array]) -> list[Array]:
        if len(cols) != self.arity:
            raise EngineError(f"{self.name} has arity {self.arity}, got {len(cols)} columns")
        arrays = [np.asarray(c) for c in cols]
        if self.packed is None and (not arrays or len(arrays[0]) == 0):
            # no rows tell the column types yet
            return [a.astype(np.int64) if a.dtype.kind == "f" else a for a in arrays]
        self._set_kind(arrays)
        out = [a.astype(base.dtype, copy=False) for a, base in zip(arrays, self.cols, strict=True)]
        if self.packed and out and len(out[0]):
            for col in out:
                if int(col.min()) < 0 or int(col.max()) >= _MAX_PACKED_ID:
                    raise EngineError(f"{self.name}: entity ids must lie in [0, 2**31)")
        return out

    def keys(self, cols: Sequence[Array]) -> Array:
        """One sortable key per row (packed int64, or a void view for wide/float rows)."""
        if self.packed:
            if self.arity == 1:
                return cols[0]
            if self.arity == 0:
                return np.zeros(0 if not cols else len(cols[0]), np.int64)
            return (cols[0] << _SHIFT) | cols[1]
        return _void_rows(cols)

    def sort_codes(self, cols: Sequence[Array]) -> IntArray | None:
        """Int codes of rows in the order of their keys, equal exactly where the keys are,
        over a range small enough to sort fast (`sorted_order`); a new array, None for void
        keys."""
        if not self.packed:
            return None
        if self.arity != 2 or not len(cols[0]):
            return np.array(self.keys(cols), np.int64)
        lo0, lo1 = int(cols[0].min()), int(cols[1].min())
        span1 = int(cols[1].max()) - lo1 + 1
        if (int(cols[0].max()) - lo0 + 1) * span1 >= 1 << 62:
            return self.keys(cols)
        # c0 * span1 + c1 orders rows as the keys do; its range is at most span0 * span1
        # (the sort subtracts the minimum), and ids below 2**31 keep it below 2**63
        codes = cols[0] * span1
        codes += cols[1]
        return codes

    def index(self) -> tuple[Array, IntArray]:
        """Sorted keys of the live rows but the latest (`_fresh`) and the row of each."""
        if self._index is None:
            rows = self.live_rows()
            live_cols = [c[rows] for c in self.cols]
            keys = self.keys(live_cols)
            codes = self.sort_codes(live_cols)
            _, order = sorted_order(keys) if codes is None else sorted_order(codes, overwrite=True)
            self._index = (keys[order], rows[order])
            self._fresh = (keys[:0], rows[:0])
        return self._index

    def live_rows(self, end: int | None = None) -> IntArray:
        n = len(self) if end is None else end
        if self.live is None:
            return np.arange(n, dtype=np.int64)
        return np.flatnonzero(self.live[:n]).astype(np.int64)

    def find(self, cols: Sequence[Array]) -> IntArray:
        """Row number of each given row, -1 where absent."""
        return self.find_keys(self.keys(cols))

    def find_keys(self, keys: Array) -> IntArray:
        """Row number of each row key, -1 where absent (fastest for sorted keys)."""
        found = _search(*self.index(), keys)
        fresh_keys, fresh_rows = self._fresh
        if len(fresh_keys):
            miss = found < 0
            found[miss] = _search(fresh_keys, fresh_rows, keys[miss])
        return found

    def lookup(self, col: int, values: Array) -> IntArray:
        """Rows (ascending, retired ones included) whose column `col` holds one of `values`:
        O(k log n) through an index of the column, built on first use."""
        n = len(self)
        entry = self._by_column.get(col)
        column = self.cols[col]
        if entry is None:
            order = np.argsort(column, kind="stable").astype(np.int64)
            entry = (column[order], order, n)
        index_values, index_rows, covered = entry
        if n - covered > max(4096, covered // 8):
            tail = column[covered:n]
            order = np.argsort(tail, kind="stable")
            pos = np.searchsorted(index_values, tail[order], "right")
            index_values = np.insert(index_values, pos, tail[order])
            index_rows = np.insert(index_rows, pos, order.astype(np.int64) + covered)
            covered = n
        self._by_column[col] = (index_values, index_rows, covered)
        keys = np.unique(values)
        lo = np.searchsorted(index_values, keys, "left")
        counts = np.searchsorted(index_values, keys, "right") - lo
        total = int(counts.sum())
        at = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(total)
        found = [index_rows[at]]
        if covered < n:
            found.append(np.flatnonzero(np.isin(column[covered:n], keys)) + covered)
        return np.sort(np.concatenate(found))

    # --- mutation ---------------------------------------------------------------------------
    def append(
        self,
        cols: Sequence[Array],
        fids: IntArray,
        rule: npt.NDArray[np.int32],
        premises: IntArray,
        sorted_keys: Array | None = None,
    ) -> None:
        """Append rows; `sorted_keys` (their keys, ascending) lets the index be merged.

        The first rows of a relation are kept as given, not copied: the caller hands them
        over."""
        n, m = len(self), len(fids)
        if self._index is not None and sorted_keys is None:
            self._index = None
        elif self._index is not None and sorted_keys is not None:
            new_rows = np.arange(n, n + m, dtype=np.int64)
            main_keys, main_rows = self._index
            fresh_keys, fresh_rows = self._fresh
            if len(fresh_keys):
                pos = np.searchsorted(fresh_keys, sorted_keys)
                fresh_keys = np.insert(fresh_keys, pos, sorted_keys)
                fresh_rows = np.insert(fresh_rows, pos, new_rows)
            else:
                fresh_keys, fresh_rows = sorted_keys, new_rows
            if len(fresh_keys) > max(4096, len(main_keys) // 8):
                if len(main_keys):
                    pos = np.searchsorted(main_keys, fresh_keys)
                    self._index = (
                        np.insert(main_keys, pos, fresh_keys),
                        np.insert(main_rows, pos, fresh_rows),
                    )
                else:  # the first rows of the relation are the index as they are
                    self._index = (fresh_keys, fresh_rows)
                fresh_keys, fresh_rows = fresh_keys[:0], fresh_rows[:0]
            self._fresh = (fresh_keys, fresh_rows)
        if premises.shape[1] == self.width:
            pad = premises
        else:
            pad = np.full((m, self.width), -1, np.int64)
            pad[:, : premises.shape[1]] = premises
        new = [*cols, fids, rule, pad]
        old = [*self.cols, self.fids, self.rule, self.premises]
        if self.live is not None:
            new.append(np.ones(m, bool))
            old.append(self.live)
        if len(self.cols) != self.arity:
            raise EngineError(f"{self.name}: rows appended before their column types are known")
        if n == 0 and self.live is None:
            arrays = [np.asarray(b, a.dtype) for a, b in zip(old, new, strict=True)]
            self.cols = arrays[: self.arity]
            self.fids, self.rule, self.premises = arrays[self.arity :]
            self._buffers = None  # the next append copies them into room to grow
            return
        bufs = self._buffers
        if bufs is None or n + m > len(bufs[0]):
            cap = max(n + m, n + n // 4, 64)  # a quarter to spare: amortised O(m)
            bufs = []
            for a in old:
                buf = np.empty((cap, *a.shape[1:]), a.dtype)
                buf[:n] = a
                bufs.append(buf)
            self._buffers = bufs
        for buf, b in zip(bufs, new, strict=True):
            buf[n : n + m] = b
        views = [buf[: n + m] for buf in bufs]
        self.cols = views[: self.arity]
        self.fids, self.rule, self.premises = views[self.arity : self.arity + 3]
        if self.live is not None:
            self.live = views[-1]

    def track_live(self) -> None:
        """Keep live flags from now on (rows of an aggregate can be superseded)."""
        if self.live is None:
            self.live = np.ones(len(self), bool)
            self._buffers = None

    def retire(self, rows: IntArray) -> None:
        """Mark superseded aggregate rows dead; they stay as premises of older facts."""
        self.track_live()
        assert self.live is not None
        self.live[rows] = False
        self.changes += 1
        if self._index is not None:
            # the index covers live rows only: drop the retired ones without a new sort
            for level in ("_index", "_fresh"):
                keys, index_rows = getattr(self, level)
                keep = self.live[index_rows]
                setattr(self, level, (keys[keep], index_rows[keep]))

    def keep(self, mask: npt.NDArray[np.bool_]) -> None:
        """Drop the rows where `mask` is False (incremental retraction)."""
        self.cols = [c[mask] for c in self.cols]
        self.fids = self.fids[mask]
        self.rule = self.rule[mask]
        self.premises = self.premises[mask]
        if self.live is not None:
            self.live = self.live[mask]
        self._buffers = None
        self.changes += 1
        renumber = np.cumsum(mask, dtype=np.int64) - 1
        for col, (values, rows, covered) in self._by_column.items():
            stay = mask[rows]
            self._by_column[col] = (values[stay], renumber[rows[stay]], int(mask[:covered].sum()))
        if self._index is not None:
            # renumber the index instead of sorting the keys again
            for level in ("_index", "_fresh"):
                keys, index_rows = getattr(self, level)
                stay = mask[index_rows]
                setattr(self, level, (keys[stay], renumber[index_rows[stay]]))


def _search(sorted_keys: Array, rows: IntArray, keys: Array) -> IntArray:
    """Row of each key in a sorted index, -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(len(keys), -1, np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == keys, rows[pos], -1)


def _void_rows(cols: Sequence[Array]) -> Array:
    if not cols:
        return np.zeros(0, np.int64)
    bits = [
        (c + 0.0).view(np.int64) if c.dtype.kind == "f" else c.astype(np.int64, copy=False)
        for c in cols
    ]
    mat = np.ascontiguousarray(np.stack(bits, axis=1))
    return mat.view(np.dtype((np.void, mat.dtype.itemsize * mat.shape[1]))).ravel()


def row_codes(cols: Sequence[Array]) -> Array:
    """One int64 key per row, equal exactly for equal rows: a mixed-radix code of the
    columns, renumbered densely whenever it would overflow (sorting int64 is far faster than
    sorting void rows)."""
    code = np.zeros(len(cols[0]) if cols else 0, np.int64)
    radix = 1
    for col in cols:
        if not len(col):
            return code
        span = int(col.max()) - int(col.min()) + 1 if col.dtype.kind in "iub" else 0
        if 0 < span <= max(len(col), 2**31):
            digits = col.astype(np.int64) - int(col.min())
        else:  # floats, or ints of a wide range: their rank among the distinct values
            values, digits = np.unique(
                col + 0 if col.dtype.kind == "f" else col, return_inverse=True
            )
            span = len(values)
        if radix * span >= 2**62:  # renumber the rows so far densely (at most n values)
            seen, code = np.unique(code, return_inverse=True)
            code = code.ravel().astype(np.int64)
            radix = len(seen)
        radix *= span
        code = code * span + digits.ravel()
    return code


def sorted_order(keys: Array, overwrite: bool = False) -> tuple[Array, IntArray]:
    """`keys` sorted and the stable order that sorts them (`np.argsort(kind="stable")`).

    Int keys whose range and position fit together in 63 bits are sorted as one packed int64
    `(key - min) << bits | position`: a plain sort, several times faster than an argsort,
    and ties stay in input order because the position breaks them. `overwrite`: int64 keys
    may be packed in place (the caller does not need them any more).
    """
    ordered, order, _ = _sort_keys(keys, overwrite, stable=True)
    return ordered, order


def _sort_keys(keys: Array, overwrite: bool, stable: bool) -> tuple[Array, IntArray, bool]:
    """Keys sorted, the order that sorts them and whether that order is stable."""
    n = len(keys)
    if n and (keys.dtype.kind == "i" or (keys.dtype.kind == "u" and keys.dtype.itemsize < 8)):
        lo, hi = int(keys.min()), int(keys.max())
        pos_bits = max(n - 1, 1).bit_length()
        if (hi - lo).bit_length() + pos_bits <= 63:
            packed = keys if overwrite and keys.dtype == np.int64 else keys.astype(np.int64)
            if lo:
                packed -= lo
            packed <<= pos_bits
            packed |= np.arange(n, dtype=np.int64)
            packed.sort()
            order = packed & np.int64((1 << pos_bits) - 1)
            packed >>= pos_bits
            if lo:
                packed += lo
            return packed.astype(keys.dtype, copy=False), order, True
    # too wide to pack: a stable argsort is about 3x slower than the default one
    order = np.argsort(keys, kind="stable" if stable else None).astype(np.int64, copy=False)
    return keys[order], order, stable


def _run_firsts(order: IntArray, starts: IntArray, stable: bool) -> IntArray:
    """First position of each run of equal sorted keys (the run's start when stable)."""
    return order[starts] if stable else np.minimum.reduceat(order, starts).astype(np.int64)


def _distinct_firsts(keys: Array, overwrite: bool) -> tuple[Array, IntArray]:
    if not len(keys):
        return keys[:0], np.empty(0, np.int64)
    ordered, order, stable = _sort_keys(keys, overwrite, stable=False)
    head = np.ones(len(keys), bool)
    head[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(head)
    return ordered[starts], _run_firsts(order, starts, stable)


def unique_keys(keys: Array) -> tuple[Array, IntArray]:
    """Sorted distinct keys and the position of the first occurrence of each."""
    if keys.dtype.kind not in "iu":
        uniq, first = np.unique(keys, return_index=True)
        return uniq, first.astype(np.int64)
    return _distinct_firsts(keys, overwrite=False)


def first_positions(codes: IntArray) -> IntArray:
    """Position of the first occurrence of each distinct int code, in ascending code order;
    `codes` is overwritten."""
    return _distinct_firsts(codes, overwrite=True)[1]


def unique_first_inverse(keys: Array) -> tuple[Array, IntArray, IntArray]:
    """`np.unique(keys, return_index=True, return_inverse=True)` (first occurrences), for
    int keys without the stable sort `return_index` costs there."""
    if keys.dtype.kind not in "iu" or not len(keys):
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return uniq, first.astype(np.int64), inverse.ravel().astype(np.int64)
    ordered, order, stable = _sort_keys(keys, False, stable=False)
    head = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    starts = np.flatnonzero(head)
    inverse = np.empty(len(keys), np.int64)
    inverse[order] = np.cumsum(head) - 1
    return ordered[starts], _run_firsts(order, starts, stable), inverse


def first_unique(keys: Array) -> IntArray:
    """Positions of the first occurrence of each distinct key, in input order."""
    if keys.dtype.kind not in "iu" or not len(keys):
        _, first = np.unique(keys, return_index=True)
        return np.sort(first).astype(np.int64)
    ordered, order, stable = _sort_keys(keys, False, stable=False)
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return np.sort(_run_firsts(order, starts, stable))


def equi_join(left: Array, right: Array) -> tuple[IntArray, IntArray]:
    """All (i, j) with left[i] == right[j].

    Integer keys of a small range are bucketed (counting sort, O(1) probes); other keys sort
    the smaller side and binary-search the larger one into it.
    """
    swap = len(left) < len(right)
    probe, build = (right, left) if swap else (left, right)
    if len(build) == 0 or len(probe) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if build.dtype.kind in "iu" and probe.dtype.kind in "iu":
        lo_key = int(min(build.min(), probe.min()))
        span = int(max(build.max(), probe.max())) - lo_key + 1
    else:
        span = -1
    if 0 < span <= 4 * (len(build) + len(probe)) + 1024:
        b = build - lo_key
        p = probe - lo_key
        bucket_counts = np.bincount(b, minlength=span)
        bucket_start = np.cumsum(bucket_counts) - bucket_counts
        order = sorted_order(b)[1]
        lo = bucket_start[p]
        counts = bucket_counts[p]
    else:
        sorted_build, order = sorted_order(build)
        lo = np.searchsorted(sorted_build, probe, "left")
        counts = np.searchsorted(sorted_build, probe, "right") - lo
    total = int(counts.sum())
    probe_idx = np.repeat(np.arange(len(probe), dtype=np.int64), counts)
    at = np.arange(total, dtype=np.int64)
    at += (lo - (np.cumsum(counts) - counts))[probe_idx]
    build_idx = order[at].astype(np.int64, copy=False)
    return (build_idx, probe_idx) if swap else (probe_idx, build_idx)


def composite_keys(left: Sequence[Array], right: Sequence[Array]) -> tuple[Array, Array]:
    """Comparable keys for multi-column equality between two tables."""
    if len(left) == 1 and left[0].dtype.kind == right[0].dtype.kind:
        return left[0], right[0]
    n = len(left[0])
    code: IntArray | None = None
    for lcol, rcol in zip(left, right, strict=True):
        both = (
            np.concatenate([lcol.astype(np.float64), rcol.astype(np.float64)])
            if (lcol.dtype.kind != rcol.dtype.kind)
            else np.concatenate([lcol, rcol])
        )
        uniq, inv = np.unique(both, return_inverse=True)
        inv = inv.astype(np.int64)
        if code is None:
            code = inv
        else:
            _, code = np.unique(code * np.int64(len(uniq)) + inv, return_inverse=True)
            code = code.astype(np.int64)
    assert code is not None
    return code[:n], code[n:]


class View:
    """Rows of one relation an atom ranges over: columns, fact ids.

    A view of a relation's live rows in a range (`View.of`) keeps that `source`, so that a
    join with a few bindings can fetch just the rows matching them through the relation's
    column index (`restrict`) instead of reading the range; its columns are gathered only
    when asked for. `plus` adds rows that are not in the relation (facts just removed).
    """

    __slots__ = ("_cols", "_fids", "extra", "source")

    def __init__(
        self,
        cols: list[Array] | None,
        fids: IntArray | None,
        source: tuple[Relation, int, int, int] | None = None,
        extra: tuple[list[Array], IntArray] | None = None,
    ) -> None:
        self._cols = cols
        self._fids = fids
        self.source = source  # (relation, start, end, its `changes` when taken)
        self.extra = extra

    @classmethod
    def of(cls, rel: Relation, start: int = 0, end: int | None = None) -> View:
        end = len(rel) if end is None else end
        if not rel.cols:  # no rows yet, column types unknown
            return cls([np.empty(0, np.int64) for _ in range(rel.arity)], rel.fids)
        return cls(None, None, (rel, start, end, rel.changes))

    def plus(self, cols: list[Array], fids: IntArray) -> View:
        """This view and the given rows."""
        if self.source is None or self.extra is not None:
            return View(
                [np.concatenate([a, b]) for a, b in zip(self.cols, cols, strict=True)],
                np.concatenate([self.fids, fids]),
            )
        return View(None, None, self.source, (cols, fids))

    def _gather(self) -> None:
        assert self.source is not None
        rel, start, end, changes = self.source
        # rows are read before their relation loses any: the range would mean others then
        assert rel.changes == changes, f"view of {rel.name} read after rows were removed"
        if rel.live is None:
            cols, fids = [c[start:end] for c in rel.cols], rel.fids[start:end]
        else:
            rows = np.flatnonzero(rel.live[start:end]) + start
            cols, fids = [c[rows] for c in rel.cols], rel.fids[rows]
        if self.extra is not None:
            cols = [np.concatenate([a, b]) for a, b in zip(cols, self.extra[0], strict=True)]
            fids = np.concatenate([fids, self.extra[1]])
        self._cols, self._fids = cols, fids

    @property
    def cols(self) -> list[Array]:
        if self._cols is None:
            self._gather()
        assert self._cols is not None
        return self._cols

    @property
    def fids(self) -> IntArray:
        if self._fids is None:
            self._gather()
        assert self._fids is not None
        return self._fids

    def size(self) -> int:
        """Number of rows, at most (without gathering a live-flagged range)."""
        if self._fids is not None:
            return len(self._fids)
        assert self.source is not None
        extra = len(self.extra[1]) if self.extra is not None else 0
        return self.source[2] - self.source[1] + extra

    def restrict(self, col: int, values: Array) -> View | None:
        """The rows whose column `col` holds one of `values`, found through the relation's
        column index; None when the relation changed since (rows retired or removed)."""
        if self.source is None:
            return None
        rel, start, end, changes = self.source
        if rel.changes != changes:
            return None
        rows = rel.lookup(col, values)
        rows = rows[(rows >= start) & (rows < end)]
        if rel.live is not None:
            rows = rows[rel.live[rows]]
        cols, fids = [c[rows] for c in rel.cols], rel.fids[rows]
        if self.extra is not None:
            more = np.isin(self.extra[0][col], values)
            cols = [np.concatenate([a, b[more]]) for a, b in zip(cols, self.extra[0], strict=True)]
            fids = np.concatenate([fids, self.extra[1][more]])
        return View(cols, fids)


@dataclass(slots=True)
class Bindings:
    """A table of variable bindings plus, per positive atom, the fid of the matched fact."""

    n: int
    vars: dict[str, Array] = field(default_factory=dict)
    fids: dict[int, IntArray] = field(default_factory=dict)

    def take(self, idx: IntArray) -> Bindings:
        return Bindings(
            len(idx),
            {k: v[idx] for k, v in self.vars.items()},
            {k: v[idx] for k, v in self.fids.items()},
        )


@dataclass(slots=True)
class Derived:
    """Rows a rule produced (not yet deduplicated against the relation)."""

    cols: list[Array]
    rule: int
    premises: IntArray


@dataclass(frozen=True, slots=True)
class Stratum:
    preds: frozenset[str]
    rules: tuple[int, ...]
    recursive: bool
    has_negation: bool
    has_aggregate: bool


@dataclass(slots=True)
class RunStats:
    iterations: int = 0
    derived: int = 0
    seconds: float = 0.0
    per_predicate: dict[str, int] = field(default_factory=dict)


class Engine:
    """A Datalog program with its relations; `run()` computes the fixpoint.

    Example:
        >>> from reasoning.datalog import parse_rules
        >>> eng = Engine(parse_rules("t(X, Z) :- t(X, Y), t(Y, Z)."))
        >>> _ = eng.add_facts("t", [0, 1], [1, 2])
        >>> _ = eng.run()
        >>> sorted(zip(*(c.tolist() for c in eng.rows("t"))))
        [(0, 1), (0, 2), (1, 2)]
    """

    def __init__(self, rules: Iterable[Rule], symbols: Mapping[str, int] | None = None) -> None:
        self.rules: list[Rule] = list(rules)
        self.symbols: dict[str, int] = dict(symbols or {})
        self.relations: dict[str, Relation] = {}
        self.next_fid = 0
        arity: dict[str, int] = {}
        width: dict[str, int] = {}
        for rule in self.rules:
            atoms = [(rule.head_pred, len(rule.head_args))]
            atoms += [(a.pred, len(a.args)) for a in rule.positives]
            atoms += [(n.atom.pred, len(n.atom.args)) for n in rule.body if isinstance(n, Negation)]
            for pred, n in atoms:
                if arity.setdefault(pred, n) != n:
                    raise EngineError(f"predicate {pred} used with arities {arity[pred]} and {n}")
            width[rule.head_pred] = max(width.get(rule.head_pred, 0), len(rule.positives))
        for pred, n in arity.items():
            self.relations[pred] = Relation(pred, n, width.get(pred, 0))
        self.strata = self._stratify()
        # Joins of a few bindings fetch rows through column indexes (incremental updates);
        # a full evaluation reads whole relations and builds no index.
        self.probing = False
        self._aggregated = {r.head_pred for r in self.rules if r.aggregate is not None}
        self._group_atoms = {
            i: self._group_atom(r) for i, r in enumerate(self.rules) if r.aggregate is not None
        }
        self.undoes = _undoing_rules(self.rules)

    # --- program structure -------------------------------------------------------------------
    def _stratify(self) -> list[Stratum]:
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(self.relations)
        kinds: dict[tuple[str, str], set[str]] = {}
        for rule in self.rules:
            kind = "agg" if rule.aggregate is not None else "pos"
            for lit in rule.body:
                if isinstance(lit, Atom):
                    edge, k = (lit.pred, rule.head_pred), kind
                elif isinstance(lit, Negation):
                    edge, k = (lit.atom.pred, rule.head_pred), "neg"
                else:
                    continue
                graph.add_edge(*edge)
                kinds.setdefault(edge, set()).add(k)
        cond = nx.condensation(graph)
        strata: list[Stratum] = []
        for comp in nx.topological_sort(cond):
            preds = frozenset(cond.nodes[comp]["members"])
            rules = tuple(i for i, r in enumerate(self.rules) if r.head_pred in preds)
            if not rules:
                continue
            inner = [kinds[(a, b)] for a, b in graph.edges if a in preds and b in preds]
            if any("neg" in k for k in inner):
                raise EngineError(f"negation inside a recursive component: {sorted(preds)}")
            strata.append(
                Stratum(
                    preds,
                    rules,
                    recursive=bool(inner),
                    has_negation=any(
                        isinstance(lit, Negation) for i in rules for lit in self.rules[i].body
                    ),
                    has_aggregate=any(self.rules[i].aggregate is not None for i in rules),
                )
            )
        return strata

    def _group_atom(self, rule: Rule) -> tuple[int, list[int]] | None:
        """A body atom holding every grouping variable of an aggregate rule, with the column
        of each: the groups a delta touches can then be recomputed alone. None when there is
        none, or when a body relation is itself aggregated (its superseded rows would leave
        groups the delta does not name)."""
        names = [t.name for t in rule.head_args if isinstance(t, Var)]
        if not names or any(a.pred in self._aggregated for a in rule.positives):
            return None
        for k, atom in enumerate(rule.positives):
            columns: dict[str, int] = {}
            for c, term in enumerate(atom.args):
                if isinstance(term, Var):
                    columns.setdefault(term.name, c)
            if all(n in columns for n in names):
                return k, [columns[n] for n in names]
        return None

    def relation(self, pred: str, arity: int) -> Relation:
        rel = self.relations.get(pred)
        if rel is None:
            rel = self.relations[pred] = Relation(pred, arity, 0)
        elif rel.arity != arity:
            raise EngineError(f"{pred} has arity {rel.arity}, got {arity}")
        return rel

    # --- facts ---------------------------------------------------------------------------------
    def new_fids(self, n: int) -> IntArray:
        fids = np.arange(self.next_fid, self.next_fid + n, dtype=np.int64)
        self.next_fid += n
        return fids

    def add_facts(self, pred: str, *cols: npt.ArrayLike) -> IntArray:
        """Assert explicit facts; returns the fid of each given row (existing rows keep theirs)."""
        rel = self.relation(pred, len(cols))
        arrays = rel.coerce([np.asarray(c) for c in cols])
        empty = np.empty((len(arrays[0]), 0), np.int64)
        return self.add_rows(rel, [Derived(arrays, EXPLICIT, empty)], want_fids=True)

    def add_rows(
        self, rel: Relation, batches: Sequence[Derived], want_fids: bool = False
    ) -> IntArray:
        """Append the rows not yet in `rel` (first derivation wins).

        Returns the fid of every input row when `want_fids`, else an empty array.
        """
        batches = [b for b in batches if len(b.cols[0])]
        if not batches:
            return np.empty(0, np.int64)
        if len(batches) == 1:
            cols = list(batches[0].cols)
        else:
            cols = [np.concatenate([b.cols[k] for b in batches]) for k in range(rel.arity)]
        cols = rel.coerce(cols)
        codes = rel.sort_codes(cols)
        if codes is None:
            uniq, first = unique_keys(rel.keys(cols))
            distinct = [c[first] for c in cols]
        else:  # codes sort like keys: the keys of the distinct rows only
            first = first_positions(codes)
            distinct = [c[first] for c in cols]
            uniq = rel.keys(distinct)
        absent = rel.find_keys(uniq) < 0
        new = first[absent]
        # rule and premises only for the rows kept, gathered batch by batch
        if len(batches) == 1 and batches[0].premises.shape[1] == rel.width:
            rule = np.full(len(new), batches[0].rule, np.int32)
            prem = batches[0].premises[new]
        else:
            sizes = np.array([len(b.cols[0]) for b in batches])
            batch_of = np.searchsorted(np.cumsum(sizes), new, "right")
            offset = new - (np.cumsum(sizes) - sizes)[batch_of]
            rule = np.empty(len(new), np.int32)
            prem = np.full((len(new), rel.width), -1, np.int64)
            for k, b in enumerate(batches):
                sel = batch_of == k
                rule[sel] = b.rule
                width = min(b.premises.shape[1], rel.width)
                if width:
                    prem[sel, :width] = b.premises[offset[sel], :width]
        fids = self.new_fids(len(new))
        rel.append([c[absent] for c in distinct], fids, rule, prem, uniq[absent])
        if not want_fids:
            return np.empty(0, np.int64)
        return rel.fids[rel.find(cols)]

    def rows(self, pred: str, derived_only: bool = False) -> list[Array]:
        """Live rows of a predicate as columns (empty when unknown)."""
        rel = self.relations.get(pred)
        if rel is None or not rel.cols:
            return []
        rows = rel.live_rows()
        if derived_only:
            rows = rows[rel.rule[rows] != EXPLICIT]
        return [c[rows] for c in rel.cols]

    def fid_row(self, pred: str, fid: int) -> int:
        rel = self.relations[pred]
        pos = int(np.searchsorted(rel.fids, fid))
        if pos >= len(rel) or rel.fids[pos] != fid:
            return -1
        return pos

    # --- evaluation ------------------------------------------------------------------------------
    def run(self, after_stratum: Callable[[int], None] | None = None) -> RunStats:
        """Evaluate every stratum to its fixpoint; `after_stratum(k)` is told when stratum k
        (and so every one before it) is done."""
        stats = RunStats()
        start = time.perf_counter()
        before = {p: len(r) for p, r in self.relations.items()}
        for k, stratum in enumerate(self.strata):
            stats.iterations += self.run_stratum(stratum)
            if after_stratum is not None:
                after_stratum(k)
        for pred, rel in self.relations.items():
            added = len(rel) - before.get(pred, 0)
            if added:
                stats.per_predicate[pred] = added
                stats.derived += added
        stats.seconds = time.perf_counter() - start
        return stats

    def run_stratum(self, stratum: Stratum, seed: Mapping[str, View] | None = None) -> int:
        """Fixpoint of one stratum; `seed` (new rows of predicates of this stratum or below)
        starts it incrementally: the first round only makes derivations that use a seed row.

        Without a seed every rule is first evaluated over all rows.
        """
        delta = self._evaluate_all(stratum) if seed is None else self._evaluate_seed(stratum, seed)
        iterations = 1
        while delta and stratum.recursive:
            delta = self._evaluate_delta(stratum, delta)
            iterations += 1
        return iterations

    def _commit(self, produced: dict[str, list[Derived]]) -> dict[str, tuple[int, int]]:
        delta: dict[str, tuple[int, int]] = {}
        for pred, batches in produced.items():
            rel = self.relations[pred]
            start = len(rel)
            self.add_rows(rel, batches)
            if len(rel) > start:
                delta[pred] = (start, len(rel))
        return delta

    def _evaluate_all(self, stratum: Stratum) -> dict[str, tuple[int, int]]:
        produced: dict[str, list[Derived]] = {}
        agg_delta: dict[str, tuple[int, int]] = {}
        for i in stratum.rules:
            rule = self.rules[i]
            if rule.aggregate is not None:
                agg_delta.update(self.apply_aggregate(i))
                continue
            views = [View.of(rels) for rels in (self.relations[a.pred] for a in rule.positives)]
            out = self.evaluate_rule(i, views)
            if out is not None:
                produced.setdefault(rule.head_pred, []).append(out)
        delta = self._commit(produced)
        return _merge_ranges(delta, agg_delta)

    def _evaluate_seed(
        self, stratum: Stratum, seed: Mapping[str, View]
    ) -> dict[str, tuple[int, int]]:
        produced: dict[str, list[Derived]] = {}
        agg_delta: dict[str, tuple[int, int]] = {}
        for i in stratum.rules:
            rule = self.rules[i]
            firsts = [k for k, a in enumerate(rule.positives) if a.pred in seed]
            if not firsts:
                continue
            if rule.aggregate is not None:
                touched = self.touched_groups(i, {k: seed[rule.positives[k].pred] for k in firsts})
                agg_delta.update(self.apply_aggregate(i, touched))
                continue
            # every derivation using a seed row, once per seeded atom (duplicates are dropped)
            for k in firsts:
                views = [
                    seed[a.pred] if j == k else View.of(self.relations[a.pred])
                    for j, a in enumerate(rule.positives)
                ]
                out = self.evaluate_rule(i, views, first=k)
                if out is not None:
                    produced.setdefault(rule.head_pred, []).append(out)
        new = self._commit(produced)
        return _merge_ranges(new, agg_delta)

    def _evaluate_delta(
        self, stratum: Stratum, delta: dict[str, tuple[int, int]]
    ) -> dict[str, tuple[int, int]]:
        produced: dict[str, list[Derived]] = {}
        agg_delta: dict[str, tuple[int, int]] = {}
        for i in stratum.rules:
            rule = self.rules[i]
            if rule.aggregate is not None:
                firsts = [k for k, a in enumerate(rule.positives) if a.pred in delta]
                if firsts:
                    news = {
                        k: View.of(self.relations[rule.positives[k].pred], *delta[a.pred])
                        for k, a in enumerate(rule.positives)
                        if k in firsts
                    }
                    agg_delta.update(self.apply_aggregate(i, self.touched_groups(i, news)))
                continue
            for k, atom in enumerate(rule.positives):
                if atom.pred not in delta:
                    continue
                views: list[View] = []
                for j, other in enumerate(rule.positives):
                    rel = self.relations[other.pred]
                    d = delta.get(other.pred)
                    if j == k:
                        assert d is not None
                        views.append(_delta_view(rel, d, self.undoes.get(i)))
                    elif d is not None and j < k:
                        views.append(View.of(rel, 0, d[0]))
                    elif d is not None:
                        views.append(View.of(rel, 0, d[1]))
                    else:
                        views.append(View.of(rel))
                out = self.evaluate_rule(i, views, first=k)
                if out is not None:
                    produced.setdefault(rule.head_pred, []).append(out)
        new = self._commit(produced)
        return _merge_ranges(new, agg_delta)

    def evaluate_rule(self, index: int, views: Sequence[View], first: int = 0) -> Derived | None:
        """Join the body over the given views (one per positive atom) and project the head."""
        return self._project(index, self.join_body(self.rules[index], views, first))

    def derive_bound(self, index: int, head: Sequence[Array]) -> Derived | None:
        """Derivations of the given head rows (columns) by one rule over the current facts:
        the body joined from the head's variables bound to the rows (re-derivation after an
        over-deletion, in time proportional to the rows rather than to the relations)."""
        rule = self.rules[index]
        mask: npt.NDArray[np.bool_] | None = None
        bound: dict[str, Array] = {}
        for k, term in enumerate(rule.head_args):
            col = head[k]
            if isinstance(term, Const):
                cond = col == self._const(term)
            elif isinstance(term, Var) and term.name in bound:
                cond = col == bound[term.name]
            else:
                if isinstance(term, Var):
                    bound[term.name] = col
                continue
            mask = cond if mask is None else mask & cond
        if mask is not None:
            bound = {v: c[mask] for v, c in bound.items()}
        n = len(head[0]) if mask is None else int(mask.sum())
        views = [View.of(self.relations[a.pred]) for a in rule.positives]
        return self._project(index, self.join_body(rule, views, seed=Bindings(n, bound)))

    def evaluate_negated(
        self, index: int, negation: int, rows: View, views: Sequence[View], check: bool
    ) -> Derived | None:
        """Derivations of a rule over `views` (one per positive atom) whose `negation`-th
        negated atom matches one of `rows`: the heads a new fact of that atom refutes, or
        that a fact of it going away lets through. `check` applies the rule's negations (the
        one taken, too) against the current facts; without, the heads are a superset."""
        rule = self.rules[index]
        negated = [lit for lit in rule.body if isinstance(lit, Negation)]
        target = negated[negation]
        body = [
            lit
            for lit in rule.body
            if lit is not target and (check or not isinstance(lit, Negation))
        ]
        if check:
            body.append(target)
        # the negated atom joins last among the positives: the original slots keep their place
        variant = Rule(rule.id, rule.head_pred, rule.head_args, (*body, target.atom), rule.source)
        n = len(rule.positives)
        bind = self.join_body(variant, [*views, rows], first=n)
        if bind is None or bind.n == 0:
            return None
        cols = [self._term_values(t, bind) for t in rule.head_args if not isinstance(t, Aggregate)]
        premises = (
            np.stack([bind.fids[j] for j in range(n)], axis=1)
            if n
            else np.empty((bind.n, 0), np.int64)
        )
        return Derived(cols, index, premises)

    def _project(self, index: int, bind: Bindings | None) -> Derived | None:
        rule = self.rules[index]
        if bind is None or bind.n == 0:
            return None
        cols = [self._term_values(t, bind) for t in rule.head_args if not isinstance(t, Aggregate)]
        if not rule.positives:
            premises = np.empty((bind.n, 0), np.int64)
        else:
            premises = np.stack([bind.fids[j] for j in range(len(rule.positives))], axis=1)
        return Derived(cols, index, premises)

    def _term_values(self, term: Any, bind: Bindings) -> Array:
        if isinstance(term, Var):
            return bind.vars[term.name]
        return np.full(bind.n, self._const(term))

    def _const(self, term: Const) -> int | float:
        if isinstance(term.value, str):
            if term.value not in self.symbols:
                return -1  # unknown symbol: matches nothing
            return self.symbols[term.value]
        return term.value

    def join_body(
        self, rule: Rule, views: Sequence[View], first: int = 0, seed: Bindings | None = None
    ) -> Bindings | None:
        """Bindings of the body: start at atom `first` (the delta), or from `seed` (bindings
        of some variables), then join atoms sharing variables, applying comparisons and
        negations as soon as their variables are bound."""
        atoms = rule.positives
        pending = list(range(len(atoms)))
        bound: set[str] = set()
        nxt = first if atoms else None
        bind: Bindings | None = None
        filters = [lit for lit in rule.body if not isinstance(lit, Atom)]
        if seed is not None:
            bind, bound, nxt = seed, set(seed.vars), None
            remaining = []
            for lit in filters:
                if _lit_vars(lit) <= bound:
                    bind = self._filter(bind, lit)
                else:
                    remaining.append(lit)
            filters = remaining
        while pending:
            if nxt is None:
                nxt = _next_atom(atoms, pending, bound)
            pending.remove(nxt)
            bind = self._join_atom(bind, atoms[nxt], views[nxt], nxt)
            bound |= _vars(atoms[nxt])
            nxt = None
            if bind.n == 0:
                return bind
            remaining = []
            for lit in filters:
                lit_vars = _lit_vars(lit)
                if lit_vars <= bound:
                    bind = self._filter(bind, lit)
                else:
                    remaining.append(lit)
            filters = remaining
            if bind.n == 0:
                return bind
        if bind is None:
            bind = Bindings(1)
            for lit in filters:
                bind = self._filter(bind, lit)
        return bind

    def _atom_table(self, atom: Atom, view: View) -> tuple[dict[str, Array], IntArray]:
        """The atom's variables over the view, after constant and repeated-variable filters."""
        mask: npt.NDArray[np.bool_] | None = None
        first_col: dict[str, int] = {}
        for k, term in enumerate(atom.args):
            col = view.cols[k]
            cond = None
            if isinstance(term, Const):
                cond = col == self._const(term)
            elif term.name in first_col:
                cond = col == view.cols[first_col[term.name]]
            else:
                first_col[term.name] = k
            if cond is not None:
                mask = cond if mask is None else mask & cond
        if mask is None:
            return {v: view.cols[k] for v, k in first_col.items()}, view.fids
        return {v: view.cols[k][mask] for v, k in first_col.items()}, view.fids[mask]

    def _join_atom(self, bind: Bindings | None, atom: Atom, view: View, slot: int) -> Bindings:
        if self.probing and bind is not None and bind.n * _PROBE_RATIO < view.size():
            # few bindings against many rows: fetch the matching rows only
            probe = _probe_column(atom, bind.vars)
            if probe is not None:
                view = view.restrict(probe[0], bind.vars[probe[1]]) or view
        table, fids = self._atom_table(atom, view)
        if bind is None:
            return Bindings(len(fids), dict(table), {slot: fids})
        shared = [v for v in table if v in bind.vars]
        if shared:
            lk, rk = composite_keys([bind.vars[v] for v in shared], [table[v] for v in shared])
            li, ri = equi_join(lk, rk)
        else:  # cross product; rules are written so this only meets tiny tables
            li = np.repeat(np.arange(bind.n, dtype=np.int64), len(fids))
            ri = np.tile(np.arange(len(fids), dtype=np.int64), bind.n)
        out = bind.take(li)
        for v, col in table.items():
            if v not in out.vars:
                out.vars[v] = col[ri]
        out.fids[slot] = fids[ri]
        return out

    def _filter(self, bind: Bindings, lit: Negation | Comparison) -> Bindings:
        if isinstance(lit, Comparison):
            left = self._term_values(lit.left, bind)
            right = self._term_values(lit.right, bind)
            mask = _COMPARE[lit.op](left, right)
        else:
            rel = self.relations[lit.atom.pred]
            table, fids = self._atom_table(lit.atom, View.of(rel))
            names = list(table)
            if not names:  # fully ground negation
                mask = np.full(bind.n, len(fids) == 0)
            else:
                lk, rk = composite_keys([bind.vars[v] for v in names], [table[v] for v in names])
                mask = ~np.isin(lk, rk)
        return bind.take(np.flatnonzero(mask).astype(np.int64))

    # --- aggregation ---------------------------------------------------------------------------
    def aggregate_groups(
        self, index: int, bind: Bindings | None = None
    ) -> tuple[list[Array], Array, Bindings]:
        """Group keys and aggregate values of an aggregate rule over the current facts."""
        rule = self.rules[index]
        agg = rule.aggregate
        assert agg is not None
        if bind is None:
            # Set semantics (each distinct binding of the body variables counts once) hold
            # by construction here: live rows are distinct, and a binding of every variable
            # determines the row of each atom, so distinct row combinations bind differently.
            bind = self.join_body(rule, [View.of(self.relations[a.pred]) for a in rule.positives])
            assert bind is not None
        else:
            names = sorted(bind.vars)
            if bind.n and names:
                bind = bind.take(first_unique(row_codes([bind.vars[v] for v in names])))
        group_terms = [t for t in rule.head_args if not isinstance(t, Aggregate)]
        group_cols = [self._term_values(t, bind) for t in group_terms]
        values = bind.vars[agg.var.name].astype(np.float64) if bind.n else np.empty(0)
        if not group_cols:
            gkey: Array = np.zeros(bind.n, np.int64)
        else:
            gkey = row_codes(group_cols)
        uniq, first, inv = unique_first_inverse(gkey)
        if group_cols and len(first) > 1:
            # Groups in the order of their rows' bytes, as they always came: the order of
            # the aggregate's new rows decides which derivation downstream facts keep.
            order = np.argsort(_void_rows([c[first] for c in group_cols]), kind="stable")
            rank = np.empty(len(order), np.int64)
            rank[order] = np.arange(len(order), dtype=np.int64)
            uniq, first, inv = uniq[order], first[order], rank[inv]
        if agg.func == "sum":
            result = np.bincount(inv, weights=values, minlength=len(uniq))
        elif agg.func == "count":
            result = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
        elif agg.func == "min":
            result = np.full(len(uniq), np.inf)
            np.minimum.at(result, inv, values)
        elif agg.func == "max":
            result = np.full(len(uniq), -np.inf)
            np.maximum.at(result, inv, values)
        else:  # pragma: no cover - the parser only admits the four
            raise RuleSyntaxError(f"unknown aggregate {agg.func}")
        return [c[first] for c in group_cols], result, bind

    def takes_groups(self, index: int) -> bool:
        """Whether groups of aggregate rule `index` can be evaluated alone (`group_bindings`)."""
        return self._group_atoms[index] is not None

    def group_bindings(self, index: int, groups: Sequence[Array]) -> Bindings:
        """The body bindings of an aggregate rule in the given groups only (grouping values,
        head columns without the aggregate; the rule must have a group atom): the atom
        holding the grouping variables, restricted to the values, joined with the rest."""
        group_atom = self._group_atoms[index]
        assert group_atom is not None, "groups of this aggregate cannot be taken alone"
        rule = self.rules[index]
        k, columns = group_atom
        terms = [t for t in rule.head_args if not isinstance(t, Aggregate)]
        keys = [groups[g] for g, t in enumerate(terms) if isinstance(t, Var)]
        whole = View.of(self.relations[rule.positives[k].pred])
        if self.probing:
            whole = whole.restrict(columns[0], keys[0]) or whole
        sel = np.flatnonzero(rows_in([whole.cols[c] for c in columns], keys))
        views = [
            View([c[sel] for c in whole.cols], whole.fids[sel])
            if j == k
            else View.of(self.relations[a.pred])
            for j, a in enumerate(rule.positives)
        ]
        bind = self.join_body(rule, views, first=k)
        assert bind is not None
        return bind

    def group_rows(self, index: int, groups: Sequence[Array] | None) -> IntArray:
        """Live rows of an aggregate rule's head in the given groups (grouping values as
        from `touched_groups`; every live row for None)."""
        rule = self.rules[index]
        rel = self.relations[rule.head_pred]
        if groups is None:
            return rel.live_rows()
        agg_pos = next(k for k, t in enumerate(rule.head_args) if isinstance(t, Aggregate))
        terms = [t for t in rule.head_args if not isinstance(t, Aggregate)]
        columns = [k for k in range(rel.arity) if k != agg_pos]
        keys = [
            (c, g) for c, g, t in zip(columns, groups, terms, strict=True) if isinstance(t, Var)
        ]
        if not keys or not rel.cols:
            return rel.live_rows()
        if self.probing:
            rows = rel.lookup(keys[0][0], keys[0][1])
        else:
            rows = np.arange(len(rel), dtype=np.int64)
        if rel.live is not None:
            rows = rows[rel.live[rows]]
        return rows[rows_in([rel.cols[c][rows] for c, _ in keys], [g for _, g in keys])]

    def probe_columns(self) -> set[tuple[str, int]]:
        """(predicate, column) pairs whose index a join from few bindings can use: each
        body atom after the first in the join order from every atom and from the head, and
        the grouping columns of aggregates."""
        out: set[tuple[str, int]] = set()
        for i, rule in enumerate(self.rules):
            atoms = rule.positives
            head = {t.name for t in rule.head_args if isinstance(t, Var)}
            starts: list[tuple[int | None, set[str]]] = [(k, set()) for k in range(len(atoms))]
            for nxt, bound in [*starts, (None, head)]:
                pending = list(range(len(atoms)))
                while pending:
                    if nxt is None:
                        nxt = _next_atom(atoms, pending, bound)
                    pending.remove(nxt)
                    probe = _probe_column(atoms[nxt], bound)
                    if probe is not None:
                        out.add((atoms[nxt].pred, probe[0]))
                    bound = bound | _vars(atoms[nxt])
                    nxt = None
            group_atom = self._group_atoms.get(i)
            if group_atom is not None:
                first_var = next(k for k, t in enumerate(rule.head_args) if isinstance(t, Var))
                out.add((atoms[group_atom[0]].pred, group_atom[1][0]))
                out.add((rule.head_pred, first_var))
        return out

    def touched_groups(self, index: int, deltas: Mapping[int, View]) -> list[Array] | None:
        """Grouping values (head columns without the aggregate) of the bindings of an
        aggregate rule that use a row of `deltas` (views by body atom); None when the rule's
        groups cannot be recomputed alone."""
        if not self.takes_groups(index):
            return None
        rule = self.rules[index]
        terms = [t for t in rule.head_args if not isinstance(t, Aggregate)]
        parts: list[list[Array]] = []
        for k, delta in deltas.items():
            views = [
                delta if j == k else View.of(self.relations[a.pred])
                for j, a in enumerate(rule.positives)
            ]
            bind = self.join_body(rule, views, first=k)
            if bind is not None and bind.n:
                parts.append([self._term_values(t, bind) for t in terms])
        if not parts:
            return [np.empty(0, np.int64) for _ in terms]
        return [np.concatenate([p[c] for p in parts]) for c in range(len(terms))]

    def apply_aggregate(
        self, index: int, touched: Sequence[Array] | None = None
    ) -> dict[str, tuple[int, int]]:
        """Bring an aggregate rule's live rows up to date: every group, or only the `touched`
        ones (grouping values as from `touched_groups`). A group whose value changed gets a
        new row and its old row is retired; a group left without bindings is retired."""
        rule = self.rules[index]
        rel = self.relations[rule.head_pred]
        agg_pos = next(k for k, t in enumerate(rule.head_args) if isinstance(t, Aggregate))
        group_idx = [k for k in range(rel.arity) if k != agg_pos]
        group_atom = self._group_atoms[index]
        if touched is None or group_atom is None:
            groups, values, _ = self.aggregate_groups(index)
            live = rel.live_rows()
        else:
            if not len(touched[0]):
                return {}
            groups, values, _ = self.aggregate_groups(index, self.group_bindings(index, touched))
            live = self.group_rows(index, touched)
        cols = list(groups)
        cols.insert(agg_pos, values)
        if not len(values) and not len(live):
            return {}
        cols = rel.coerce(cols)
        # current live value of each group, to supersede changed groups
        changed = np.ones(len(values), bool)
        if len(live):
            lk, rk = (
                composite_keys([cols[k] for k in group_idx], [rel.cols[k][live] for k in group_idx])
                if group_idx
                else (np.zeros(len(values), np.int64), np.zeros(len(live), np.int64))
            )
            li, ri = equi_join(lk, rk)
            same = rel.cols[agg_pos][live][ri] == cols[agg_pos][li]
            changed[li[same]] = False
            stale = np.ones(len(live), bool)
            stale[ri[same]] = False
            if stale.any():
                rel.retire(live[stale])
        if not changed.any():
            return {}
        start = len(rel)
        sel = np.flatnonzero(changed)
        new_keys = rel.keys([c[sel] for c in cols])
        order = np.argsort(new_keys, kind="stable")  # in key order, for the index
        sel = sel[order]
        fids = self.new_fids(len(sel))
        rel.append(
            [c[sel] for c in cols],
            fids,
            np.full(len(sel), index, np.int32),
            np.empty((len(sel), 0), np.int64),
            new_keys[order],
        )
        rel.track_live()
        return {rule.head_pred: (start, len(rel))}


def _permutation(rule: Rule) -> tuple[int, ...] | None:
    """Where each head argument sits in the body of a rule that only reorders one atom's
    variables (`q(Y, X) :- p(X, Y)`), else None."""
    if len(rule.body) != 1 or not isinstance(rule.body[0], Atom):
        return None
    args = rule.body[0].args
    names = [a.name for a in args if isinstance(a, Var)]
    head = [a.name for a in rule.head_args if isinstance(a, Var)]
    if len(names) != len(args) or len(set(names)) != len(names) or len(head) != len(names):
        return None
    if sorted(head) != sorted(names):
        return None
    return tuple(names.index(v) for v in head)


def _undoing_rules(rules: Sequence[Rule]) -> dict[int, frozenset[int]]:
    """For each reordering rule, the reordering rules it undoes: applied to a row one of them
    derived, it gives back that row's premise, which is there already (an inverse property
    applied to its own inverse, a symmetric property to itself)."""
    perms = {i: perm for i, r in enumerate(rules) if (perm := _permutation(r)) is not None}
    undoes: dict[int, frozenset[int]] = {}
    for i, perm in perms.items():
        rule = rules[i]
        body_pred = rule.positives[0].pred
        found = frozenset(
            j
            for j, other in perms.items()
            if rules[j].head_pred == body_pred
            and rules[j].positives[0].pred == rule.head_pred
            and all(other[perm[k]] == k for k in range(len(perm)))
        )
        if found:
            undoes[i] = found
    return undoes


def _delta_view(rel: Relation, delta: tuple[int, int], undone: frozenset[int] | None) -> View:
    """The rows of a delta, but those derived by a rule the reading rule undoes."""
    view = View.of(rel, *delta)
    if not undone or not rel.cols:
        return view
    start, end = delta
    skip = np.isin(rel.rule[start:end], np.fromiter(undone, np.int32))
    if not skip.any():
        return view
    keep = ~skip
    if rel.live is not None:
        keep &= rel.live[start:end]
    rows = np.flatnonzero(keep) + start
    return View([c[rows] for c in rel.cols], rel.fids[rows])


def _merge_ranges(
    a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    out = dict(a)
    for pred, (s, e) in b.items():
        if pred in out:
            out[pred] = (min(out[pred][0], s), max(out[pred][1], e))
        else:
            out[pred] = (s, e)
    return out


def rows_in(cols: Sequence[Array], keys: Sequence[Array]) -> npt.NDArray[np.bool_]:
    """Whether each row of `cols` equals some row of `keys` (columns in the same order)."""
    keys = [k.astype(c.dtype, copy=False) for c, k in zip(cols, keys, strict=True)]
    mask = np.isin(cols[0], keys[0])
    if len(cols) > 1:
        cand = np.flatnonzero(mask)
        if len(cand):
            hit = np.isin(_void_rows([c[cand] for c in cols]), np.unique(_void_rows(keys)))
            mask[cand[~hit]] = False
    return mask


def _next_atom(atoms: Sequence[Atom], pending: Sequence[int], bound: set[str]) -> int:
    """The atom a join takes next: the first pending one sharing a bound variable."""
    sharing = [j for j in pending if _vars(atoms[j]) & bound]
    return sharing[0] if sharing else pending[0]


def _probe_column(atom: Atom, bound: Mapping[str, Array] | set[str]) -> tuple[int, str] | None:
    """The first column of `atom` holding an already bound variable, and the variable."""
    for k, term in enumerate(atom.args):
        if isinstance(term, Var) and term.name in bound:
            return k, term.name
    return None


def _vars(atom: Atom) -> set[str]:
    return {t.name for t in atom.args if isinstance(t, Var)}


def _lit_vars(lit: Negation | Comparison) -> set[str]:
    if isinstance(lit, Negation):
        return _vars(lit.atom)
    return {t.name for t in (lit.left, lit.right) if isinstance(t, Var)}


_COMPARE: dict[str, Any] = {
    "=": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
