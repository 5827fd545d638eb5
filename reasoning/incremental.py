"""Incremental maintenance of a materialised program under inserts and deletes.

Strata that are monotone (no negation, no aggregation) and depend only on monotone strata
are maintained incrementally, in two passes over the strata in topological order:

1. deletions by delete-and-rederive (DRed): over-delete every fact with a derivation that
   uses a removed fact (evaluated against the old facts), remove them, re-derive those that
   still follow in one step from what is left, then close semi-naively from the re-derived;
2. insertions by semi-naive evaluation seeded with the added facts only.

The other strata (negation, aggregation, and everything above them) are recomputed from
their explicit facts when one of their inputs changed, in order; a stratum whose result
did not change does not trigger those above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from reasoning.datalog import Atom, Negation, Rule
from reasoning.engine import EXPLICIT, Array, Derived, Engine, Relation, Stratum, View

Rows = Sequence[npt.ArrayLike]


@dataclass(slots=True)
class Change:
    """Net effect of one update: rows added and removed per predicate (as columns)."""

    added: dict[str, list[Array]] = field(default_factory=dict)
    removed: dict[str, list[Array]] = field(default_factory=dict)

    def count(self) -> tuple[int, int]:
        return (
            sum(len(c[0]) for c in self.added.values() if c),
            sum(len(c[0]) for c in self.removed.values() if c),
        )


class IncrementalReasoner:
    """A program whose fixpoint is kept up to date as explicit facts come and go.

    Example:
        >>> from reasoning.datalog import parse_rules
        >>> r = IncrementalReasoner(parse_rules("t(X, Z) :- e(X, Z). t(X, Z) :- t(X, Y), e(Y, Z)."))
        >>> _ = r.update(insert={"e": ([0, 1], [1, 2])})
        >>> _ = r.update(delete={"e": ([1], [2])})
        >>> sorted(zip(*(c.tolist() for c in r.engine.rows("t"))))
        [(0, 1)]
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._setup(Engine(rules))
        self.engine.run()  # rules without body atoms hold from the start

    @classmethod
    def adopt(cls, engine: Engine) -> IncrementalReasoner:
        """Maintain an engine that already holds its fixpoint; its explicit rows are the base."""
        reasoner = cls.__new__(cls)
        reasoner._setup(engine)
        for pred, rel in engine.relations.items():
            rows = np.flatnonzero(rel.rule == EXPLICIT)
            if len(rows):
                base = reasoner._base(pred, rel.arity)
                _append_unique(base, base.coerce([c[rows] for c in rel.cols]))
        return reasoner

    def _setup(self, engine: Engine) -> None:
        self.engine = engine
        self.base: dict[str, Relation] = {}
        eng = self.engine
        self.head_preds = {r.head_pred for r in eng.rules}
        tainted: set[str] = set()
        self.incremental: list[bool] = []
        for stratum in eng.strata:
            inputs = _inputs(eng, stratum)
            ok = not (stratum.has_negation or stratum.has_aggregate) and not (inputs & tainted)
            if not ok:
                tainted |= stratum.preds
            self.incremental.append(ok)

    # --- explicit facts ---------------------------------------------------------------------------
    def _base(self, pred: str, arity: int) -> Relation:
        rel = self.base.get(pred)
        if rel is None:
            rel = self.base[pred] = Relation(pred, arity, 0)
        return rel

    def update(
        self,
        insert: Mapping[str, Rows] | None = None,
        delete: Mapping[str, Rows] | None = None,
    ) -> Change:
        """Retract `delete`, then assert `insert` (explicit facts, per predicate as columns),
        and bring every derived fact up to date."""
        eng = self.engine
        removed_explicit: dict[str, list[Array]] = {}
        added_explicit: dict[str, list[Array]] = {}
        for pred, cols in (delete or {}).items():
            base = self._base(pred, len(cols))
            arrays = base.coerce([np.asarray(c) for c in cols]) if base.cols or len(cols) else []
            if not base.cols or not len(arrays[0]):
                continue
            rows = base.find(arrays)
            rows = np.unique(rows[rows >= 0])
            if len(rows):
                removed_explicit[pred] = [c[rows] for c in base.cols]
                mask = np.ones(len(base), bool)
                mask[rows] = False
                base.keep(mask)
        for pred, cols in (insert or {}).items():
            base = self._base(pred, len(cols))
            arrays = base.coerce([np.asarray(c) for c in cols])
            start = len(base)
            _append_unique(base, arrays)
            if len(base) > start:
                added_explicit[pred] = [c[start:] for c in base.cols]
        before = {p: _Snapshot(r) for p, r in eng.relations.items()}
        removed_lower: dict[str, list[Array]] = {}
        # EDB-only predicates change directly
        for pred, cols in removed_explicit.items():
            if pred not in self.head_preds and pred in eng.relations:
                rel = eng.relations[pred]
                rows = rel.find(rel.coerce(cols))
                rows = rows[rows >= 0]
                if len(rows):
                    removed_lower[pred] = [c[rows] for c in rel.cols]
                    mask = np.ones(len(rel), bool)
                    mask[rows] = False
                    rel.keep(mask)
        # pass 1: deletions through the incremental strata
        for stratum, inc in zip(eng.strata, self.incremental, strict=True):
            if inc:
                self._delete_stratum(stratum, removed_lower, removed_explicit)
        # pass 2: insertions
        marks = {p: len(r) for p, r in eng.relations.items()}
        for pred, cols in added_explicit.items():
            if pred not in self.head_preds:
                eng.add_facts(pred, *cols)
        for stratum, inc in zip(eng.strata, self.incremental, strict=True):
            if not inc:
                continue
            for pred in stratum.preds:
                if pred in added_explicit:
                    eng.add_facts(pred, *added_explicit[pred])
            seed = {
                p: (marks.get(p, 0), len(r))
                for p, r in eng.relations.items()
                if len(r) > marks.get(p, 0) and (p in stratum.preds or p in _inputs(eng, stratum))
            }
            if seed:
                eng.run_stratum(stratum, seed)
        # the rest: recompute a stratum when an input changed
        changed = {p for p, r in eng.relations.items() if _differs(before.get(p), r)}
        changed |= set(removed_explicit) | set(added_explicit)
        for stratum, inc in zip(eng.strata, self.incremental, strict=True):
            if inc:
                continue
            if not ((_inputs(eng, stratum) | stratum.preds) & changed):
                continue
            self._recompute(stratum)
            changed |= {p for p in stratum.preds if _differs(before.get(p), eng.relations[p])}
        return self._diff(before)

    # --- deletion -----------------------------------------------------------------------------
    def _delete_stratum(
        self,
        stratum: Stratum,
        removed_lower: dict[str, list[Array]],
        removed_explicit: dict[str, list[Array]],
    ) -> None:
        eng = self.engine
        over: dict[str, npt.NDArray[np.bool_]] = {
            p: np.zeros(len(eng.relations[p]), bool) for p in stratum.preds
        }
        delta: dict[str, View] = {}
        for pred, cols in removed_lower.items():
            if cols and len(cols[0]):
                delta[pred] = View(list(cols), np.full(len(cols[0]), -1, np.int64))
        for pred in stratum.preds:
            if pred in removed_explicit:
                rel = eng.relations[pred]
                rows = rel.find(rel.coerce(removed_explicit[pred]))
                rows = rows[rows >= 0]
                over[pred][rows] = True
                if len(rows):
                    delta[pred] = View([c[rows] for c in rel.cols], rel.fids[rows])

        def old_view(pred: str) -> View:
            rel = eng.relations[pred]
            view = View.of(rel)
            gone = removed_lower.get(pred)
            if gone and len(gone[0]) and view.cols:
                return View(
                    [np.concatenate([a, b]) for a, b in zip(view.cols, gone, strict=True)],
                    np.concatenate([view.fids, np.full(len(gone[0]), -1, np.int64)]),
                )
            return view

        while delta:
            found: dict[str, list[list[Array]]] = {}
            for i in stratum.rules:
                rule = eng.rules[i]
                for k, atom in enumerate(rule.positives):
                    if atom.pred not in delta:
                        continue
                    views = [
                        delta[a.pred] if j == k else old_view(a.pred)
                        for j, a in enumerate(rule.positives)
                    ]
                    out = eng.evaluate_rule(i, views, first=k)
                    if out is not None:
                        found.setdefault(rule.head_pred, []).append(out.cols)
            delta = {}
            for pred, parts in found.items():
                rel = eng.relations[pred]
                if not rel.cols:
                    continue
                cols = rel.coerce([np.concatenate([p[c] for p in parts]) for c in range(rel.arity)])
                rows = rel.find(cols)
                rows = np.unique(rows[rows >= 0])
                rows = rows[~over[pred][rows]]
                if len(rows):
                    over[pred][rows] = True
                    delta[pred] = View([c[rows] for c in rel.cols], rel.fids[rows])
        # remove, then re-derive what still follows from the rest
        gone_cols: dict[str, list[Array]] = {}
        for pred, mask in over.items():
            if mask.any():
                rel = eng.relations[pred]
                gone_cols[pred] = [c[mask] for c in rel.cols]
                rel.keep(~mask)
        if not gone_cols:
            return
        marks = {p: len(eng.relations[p]) for p in stratum.preds}
        for pred, cols in gone_cols.items():
            rel = eng.relations[pred]
            gone_keys = np.sort(rel.keys(cols))
            batches: list[Derived] = []
            for i in stratum.rules:
                rule = eng.rules[i]
                if rule.head_pred != pred:
                    continue
                out = eng.evaluate_rule(i, [View.of(eng.relations[a.pred]) for a in rule.positives])
                if out is None:
                    continue
                keys = rel.keys(rel.coerce(out.cols))
                keep = np.flatnonzero(np.isin(keys, gone_keys))
                if len(keep):
                    batches.append(
                        Derived([c[keep] for c in out.cols], out.rule, out.premises[keep])
                    )
            base = self.base.get(pred)
            if base is not None and base.cols:
                still = base.find(base.coerce(cols)) >= 0
                if still.any():
                    batches.append(
                        Derived(
                            [c[still] for c in cols],
                            EXPLICIT,
                            np.empty((int(still.sum()), 0), np.int64),
                        )
                    )
            if batches:
                eng.add_rows(rel, batches)
        seed = {
            p: (marks[p], len(eng.relations[p]))
            for p in stratum.preds
            if len(eng.relations[p]) > marks[p]
        }
        if seed:
            eng.run_stratum(stratum, seed)
        for pred, cols in gone_cols.items():
            rel = eng.relations[pred]
            absent = rel.find(cols) < 0
            if absent.any():
                prev = removed_lower.get(pred)
                now = [c[absent] for c in cols]
                removed_lower[pred] = (
                    now
                    if not prev
                    else [np.concatenate([a, b]) for a, b in zip(prev, now, strict=True)]
                )

    # --- recomputation ------------------------------------------------------------------------
    def _recompute(self, stratum: Stratum) -> None:
        eng = self.engine
        for pred in stratum.preds:
            rel = eng.relations[pred]
            rel.keep(np.zeros(len(rel), bool))
            base = self.base.get(pred)
            if base is not None and base.cols and len(base):
                eng.add_facts(pred, *base.cols)
        eng.run_stratum(stratum)

    def _diff(self, before: Mapping[str, _Snapshot]) -> Change:
        change = Change()
        for pred, rel in self.engine.relations.items():
            snap = before.get(pred)
            if snap is not None and snap.same_as(rel):
                continue
            old = snap.keys() if snap is not None else None
            new_rows = rel.live_rows()
            if not rel.cols:
                continue
            new_keys = rel.keys([c[new_rows] for c in rel.cols])
            if old is None or len(old) == 0:
                old = new_keys[:0]
            if _same(old, np.sort(new_keys)):
                continue
            added = ~np.isin(new_keys, old)
            if added.any():
                change.added[pred] = [c[new_rows[added]] for c in rel.cols]
            gone = ~np.isin(old, new_keys)
            if gone.any():
                change.removed[pred] = _unkey(rel, old[gone])
        return change


def _inputs(eng: Engine, stratum: Stratum) -> set[str]:
    out: set[str] = set()
    for i in stratum.rules:
        for lit in eng.rules[i].body:
            if isinstance(lit, Atom):
                out.add(lit.pred)
            elif isinstance(lit, Negation):
                out.add(lit.atom.pred)
    return out - stratum.preds


class _Snapshot:
    """A relation as it was before an update, without copying it: rows are only appended
    to new arrays or kept into new arrays, never changed in place, except the live flags."""

    def __init__(self, rel: Relation) -> None:
        self.rel_cols = rel.cols
        self.fids = rel.fids
        self.live = None if rel.live is None else rel.live.copy()
        self.rel = rel
        self._keys: Array | None = None

    def same_as(self, rel: Relation) -> bool:
        if rel.fids is not self.fids:
            return False
        if self.live is None or rel.live is None:
            return self.live is None and rel.live is None
        return bool(np.array_equal(self.live, rel.live))

    def keys(self) -> Array:
        if self._keys is None:
            if not self.rel_cols:
                self._keys = np.empty(0, np.int64)
            else:
                rows = (
                    np.arange(len(self.fids), dtype=np.int64)
                    if self.live is None
                    else np.flatnonzero(self.live).astype(np.int64)
                )
                self._keys = np.sort(self.rel.keys([c[rows] for c in self.rel_cols]))
        return self._keys


def _differs(snap: _Snapshot | None, rel: Relation) -> bool:
    if snap is None:
        return len(rel) > 0
    return not snap.same_as(rel) and not _same(snap.keys(), _key_set(rel))


def _key_set(rel: Relation) -> Array:
    if not rel.cols:
        return np.empty(0, np.int64)
    rows = rel.live_rows()
    return np.sort(rel.keys([c[rows] for c in rel.cols]))


def _same(a: Array | None, b: Array) -> bool:
    if a is None:
        return len(b) == 0
    return len(a) == len(b) and bool(np.all(a == b))


def _append_unique(rel: Relation, cols: list[Array]) -> None:
    if not len(cols[0]):
        return
    from reasoning.engine import first_unique

    keys = rel.keys(cols)
    first = first_unique(keys)
    if rel.cols and len(rel):
        first = first[rel.find([c[first] for c in cols]) < 0]
    n = len(first)
    rel.append(
        [c[first] for c in cols],
        np.arange(n, dtype=np.int64) + len(rel),
        np.full(n, EXPLICIT, np.int32),
        np.empty((n, 0), np.int64),
    )


def _unkey(rel: Relation, keys: Array) -> list[Array]:
    """Columns back from row keys (inverse of `Relation.keys`)."""
    if rel.packed:
        if rel.arity == 1:
            return [keys]
        return [keys >> np.int64(32), keys & np.int64(0xFFFFFFFF)]
    mat = np.frombuffer(keys.tobytes(), np.int64).reshape(len(keys), rel.arity)
    return [
        mat[:, k].view(np.float64) if base.dtype.kind == "f" else mat[:, k].copy()
        for k, base in enumerate(rel.cols)
    ]
