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
        self._index: tuple[Array, IntArray] | None = None

    def __len__(self) -> int:
        return len(self.fids)

    # --- row identity ---------------------------------------------------------------------
    def _set_kind(self, cols: Sequence[Array]) -> None:
        if self.packed is None:
            self.packed = self.arity <= 2 and all(c.dtype.kind in "iu" for c in cols)
            dtypes = [np.int64 if c.dtype.kind in "iub" else np.float64 for c in cols]
            self.cols = [np.empty(0, d) for d in dtypes]

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

    def index(self) -> tuple[Array, IntArray]:
        """Sorted keys of the live rows and the row number of each."""
        if self._index is None:
            rows = self.live_rows()
            keys = self.keys([c[rows] for c in self.cols])
            order = np.argsort(keys, kind="stable")
            self._index = (keys[order], rows[order])
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
        sorted_keys, rows = self.index()
        if len(sorted_keys) == 0:
            return np.full(len(keys), -1, np.int64)
        pos = np.searchsorted(sorted_keys, keys)
        pos_c = np.minimum(pos, len(sorted_keys) - 1)
        hit = sorted_keys[pos_c] == keys
        return np.where(hit, rows[pos_c], -1)

    # --- mutation ---------------------------------------------------------------------------
    def append(
        self,
        cols: Sequence[Array],
        fids: IntArray,
        rule: npt.NDArray[np.int32],
        premises: IntArray,
        sorted_keys: Array | None = None,
    ) -> None:
        """Append rows; `sorted_keys` (their keys, ascending) lets the index be merged."""
        merged: tuple[Array, IntArray] | None = None
        if sorted_keys is not None and self._index is not None:
            old_keys, old_rows = self._index
            pos = np.searchsorted(old_keys, sorted_keys)
            new_rows = np.arange(len(self), len(self) + len(fids), dtype=np.int64)
            merged = (np.insert(old_keys, pos, sorted_keys), np.insert(old_rows, pos, new_rows))
        if self.live is not None:
            self.live = np.concatenate([self.live, np.ones(len(fids), bool)])
        self.cols = [np.concatenate([a, b]) for a, b in zip(self.cols, cols, strict=True)]
        self.fids = np.concatenate([self.fids, fids])
        self.rule = np.concatenate([self.rule, rule])
        pad = np.full((len(fids), self.width), -1, np.int64)
        pad[:, : premises.shape[1]] = premises
        self.premises = np.concatenate([self.premises, pad])
        self._index = merged

    def retire(self, rows: IntArray) -> None:
        """Mark superseded aggregate rows dead; they stay as premises of older facts."""
        if self.live is None:
            self.live = np.ones(len(self), bool)
        self.live[rows] = False
        self._index = None

    def keep(self, mask: npt.NDArray[np.bool_]) -> None:
        """Drop the rows where `mask` is False (incremental retraction)."""
        self.cols = [c[mask] for c in self.cols]
        self.fids = self.fids[mask]
        self.rule = self.rule[mask]
        self.premises = self.premises[mask]
        if self.live is not None:
            self.live = self.live[mask]
        self._index = None


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


def unique_keys(keys: Array) -> tuple[Array, IntArray]:
    """Sorted distinct keys and the position of one occurrence of each.

    Any occurrence is a valid derivation, so an unstable (faster) sort is enough.
    """
    if keys.dtype.kind not in "iu":
        uniq, first = np.unique(keys, return_index=True)
        return uniq, first.astype(np.int64)
    order = np.argsort(keys)
    ordered = keys[order]
    head = np.ones(len(keys), bool)
    head[1:] = ordered[1:] != ordered[:-1]
    return ordered[head], order[head].astype(np.int64)


def unique_first_inverse(keys: Array) -> tuple[Array, IntArray, IntArray]:
    """`np.unique(keys, return_index=True, return_inverse=True)` (first occurrences), for
    int keys without the stable sort `return_index` costs there."""
    if keys.dtype.kind not in "iu" or not len(keys):
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return uniq, first.astype(np.int64), inverse.ravel().astype(np.int64)
    order = np.argsort(keys)
    ordered = keys[order]
    head = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    starts = np.flatnonzero(head)
    inverse = np.empty(len(keys), np.int64)
    inverse[order] = np.cumsum(head) - 1
    return ordered[starts], np.minimum.reduceat(order, starts).astype(np.int64), inverse


def first_unique(keys: Array) -> IntArray:
    """Positions of the first occurrence of each distinct key, in input order."""
    if keys.dtype.kind not in "iu" or not len(keys):
        _, first = np.unique(keys, return_index=True)
        return np.sort(first).astype(np.int64)
    # an unstable sort, then the smallest position of each run (no stable sort needed)
    order = np.argsort(keys)
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return np.sort(np.minimum.reduceat(order, starts)).astype(np.int64)


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
        order = np.argsort(b, kind="stable")
        lo = bucket_start[p]
        counts = bucket_counts[p]
    else:
        order = np.argsort(build, kind="stable")
        sorted_build = build[order]
        lo = np.searchsorted(sorted_build, probe, "left")
        counts = np.searchsorted(sorted_build, probe, "right") - lo
    total = int(counts.sum())
    probe_idx = np.repeat(np.arange(len(probe), dtype=np.int64), counts)
    starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    build_idx = order[np.arange(total, dtype=np.int64) + starts].astype(np.int64)
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


@dataclass(slots=True)
class View:
    """Rows of one relation an atom ranges over: columns, fact ids."""

    cols: list[Array]
    fids: IntArray

    @classmethod
    def of(cls, rel: Relation, start: int = 0, end: int | None = None) -> View:
        end = len(rel) if end is None else end
        if not rel.cols:  # no rows yet, column types unknown
            return cls([np.empty(0, np.int64) for _ in range(rel.arity)], rel.fids)
        if rel.live is None:
            return cls([c[start:end] for c in rel.cols], rel.fids[start:end])
        rows = np.flatnonzero(rel.live[start:end]) + start
        return cls([c[rows] for c in rel.cols], rel.fids[rows])


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
        cols = [np.concatenate([b.cols[k] for b in batches]) for k in range(rel.arity)]
        cols = rel.coerce(cols)
        keys = rel.keys(cols)
        uniq, first = unique_keys(keys)
        absent = rel.find_keys(uniq) < 0
        new = first[absent]
        # rule and premises only for the rows kept, gathered batch by batch
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
        rel.append([c[new] for c in cols], fids, rule, prem, uniq[absent])
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

    def run_stratum(
        self, stratum: Stratum, seed: Mapping[str, tuple[int, int]] | None = None
    ) -> int:
        """Fixpoint of one stratum; `seed` gives delta row ranges to start from (incremental).

        Without a seed every rule is first evaluated over all rows.
        """
        if seed is None:
            delta = self._evaluate_all(stratum)
        else:
            delta = self._evaluate_delta(stratum, dict(seed))
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
                agg_delta.update(self._apply_aggregate(i))
                continue
            views = [View.of(rels) for rels in (self.relations[a.pred] for a in rule.positives)]
            out = self.evaluate_rule(i, views)
            if out is not None:
                produced.setdefault(rule.head_pred, []).append(out)
        delta = self._commit(produced)
        return _merge_ranges(delta, agg_delta)

    def _evaluate_delta(
        self, stratum: Stratum, delta: dict[str, tuple[int, int]]
    ) -> dict[str, tuple[int, int]]:
        produced: dict[str, list[Derived]] = {}
        agg_delta: dict[str, tuple[int, int]] = {}
        for i in stratum.rules:
            rule = self.rules[i]
            if rule.aggregate is not None:
                if any(a.pred in delta for a in rule.positives):
                    agg_delta.update(self._apply_aggregate(i))
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
                        views.append(View.of(rel, d[0], d[1]))
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
        rule = self.rules[index]
        bind = self.join_body(rule, views, first)
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

    def join_body(self, rule: Rule, views: Sequence[View], first: int = 0) -> Bindings | None:
        """Bindings of the body: start at atom `first` (the delta), then join atoms sharing
        variables, applying comparisons and negations as soon as their variables are bound."""
        atoms = rule.positives
        pending = list(range(len(atoms)))
        order: list[int] = []
        bound: set[str] = set()
        nxt = first if atoms else None
        bind: Bindings | None = None
        filters = [lit for lit in rule.body if not isinstance(lit, Atom)]
        while pending:
            if nxt is None:
                sharing = [j for j in pending if _vars(atoms[j]) & bound]
                nxt = sharing[0] if sharing else pending[0]
            pending.remove(nxt)
            order.append(nxt)
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
            bind = self.join_body(rule, [View.of(self.relations[a.pred]) for a in rule.positives])
            assert bind is not None
        # set semantics: each distinct binding of the body variables counts once
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

    def _apply_aggregate(self, index: int) -> dict[str, tuple[int, int]]:
        rule = self.rules[index]
        rel = self.relations[rule.head_pred]
        groups, values, _ = self.aggregate_groups(index)
        agg_pos = next(k for k, t in enumerate(rule.head_args) if isinstance(t, Aggregate))
        cols = list(groups)
        cols.insert(agg_pos, values)
        if not len(values):
            return {}
        cols = rel.coerce(cols)
        group_idx = [k for k in range(rel.arity) if k != agg_pos]
        # current live value of each group, to supersede changed groups
        live = rel.live_rows()
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
            stale = live[ri[~same]]
            if len(stale):
                rel.retire(stale)
        if not changed.any():
            return {}
        start = len(rel)
        sel = np.flatnonzero(changed)
        fids = self.new_fids(len(sel))
        rel.append(
            [c[sel] for c in cols],
            fids,
            np.full(len(sel), index, np.int32),
            np.empty((len(sel), 0), np.int64),
        )
        if rel.live is None:
            rel.live = np.ones(len(rel), bool)
        return {rule.head_pred: (start, len(rel))}


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
