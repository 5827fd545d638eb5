"""Incremental maintenance of a materialised program under inserts and deletes.

An update walks the strata in topological order, handing each the exact change of the
predicates below it (rows added and rows removed), and computes the stratum's own change in
time proportional to what changed, not to the relations:

1. deletions by delete-and-rederive (DRed): over-delete every fact with a derivation that
   uses a removed fact (evaluated against the old facts), remove them, re-derive those that
   still follow in one step from what is left (the rule bodies joined from the removed heads);
2. insertions by semi-naive evaluation seeded with the added and re-derived facts only.

Aggregates take part in both: a group is over-deleted when one of its inputs goes, and only
the groups a change touches are recomputed (a changed value retires the group's old row and
adds a new one, which the strata above see as one removal and one addition). As in full
evaluation, an aggregate inside a recursive component must only grow with its inputs and be
tested upward (a `sum` of non-negative votes compared with `>`). A negated atom works the
other way round: a fact added below over-deletes the heads it refutes, a fact removed below
seeds the heads it lets through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from reasoning.datalog import Aggregate, Atom, Negation, Rule
from reasoning.engine import (
    EXPLICIT,
    Array,
    Derived,
    Engine,
    IntArray,
    Relation,
    Stratum,
    View,
    unique_keys,
)

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
                base.index()  # sorted now rather than by the first update
        return reasoner

    def _setup(self, engine: Engine) -> None:
        self.engine = engine
        self.base: dict[str, Relation] = {}
        self.head_preds = {r.head_pred for r in engine.rules}
        self._inputs = [_inputs(engine, s) for s in engine.strata]
        # updates join a few rows with whole relations: through column indexes, built now
        # with the key indexes rather than by the first update
        engine.probing = True
        for pred, col in engine.probe_columns():
            rel = engine.relations.get(pred)
            if rel is not None and rel.cols:
                rel.lookup(col, np.empty(0, rel.cols[col].dtype))
        for rel in engine.relations.values():
            if rel.cols:
                rel.index()

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
        mark = eng.next_fid  # rows appended from here on have fids >= mark
        removed_explicit, added_explicit = self._update_base(insert or {}, delete or {})
        change = Change()
        fresh: dict[str, View] = {}  # the added rows of `change`, with their fids
        # predicates no rule derives change directly
        for pred in removed_explicit.keys() | added_explicit.keys():
            if pred in self.head_preds:
                continue
            dropped: list[View] = []
            rel = eng.relations.get(pred)
            if rel is not None and pred in removed_explicit:
                dropped = _drop(rel, _live_rows_of(rel, removed_explicit[pred]))
            if pred in added_explicit:
                eng.add_facts(pred, *added_explicit[pred])
            self._record(eng.relations[pred], dropped, mark, change, fresh)
        for stratum, inputs in zip(eng.strata, self._inputs, strict=True):
            own_removed = {p: removed_explicit[p] for p in stratum.preds if p in removed_explicit}
            own_added = {p: added_explicit[p] for p in stratum.preds if p in added_explicit}
            gone = {p: change.removed[p] for p in inputs if p in change.removed}
            new = {p: fresh[p] for p in inputs if p in fresh}
            if own_removed or own_added or gone or new:
                self._maintain(stratum, gone, new, own_removed, own_added, mark, change, fresh)
        return change

    def _update_base(
        self, insert: Mapping[str, Rows], delete: Mapping[str, Rows]
    ) -> tuple[dict[str, list[Array]], dict[str, list[Array]]]:
        """Apply the update to the explicit facts; returns the rows that really went and came."""
        removed: dict[str, list[Array]] = {}
        added: dict[str, list[Array]] = {}
        for pred, cols in delete.items():
            base = self._base(pred, len(cols))
            arrays = base.coerce([np.asarray(c) for c in cols]) if base.cols or len(cols) else []
            if not base.cols or not len(arrays[0]):
                continue
            rows = base.find(arrays)
            rows = np.unique(rows[rows >= 0])
            if len(rows):
                removed[pred] = [c[rows] for c in base.cols]
                mask = np.ones(len(base), bool)
                mask[rows] = False
                base.keep(mask)
        for pred, cols in insert.items():
            base = self._base(pred, len(cols))
            arrays = base.coerce([np.asarray(c) for c in cols])
            start = len(base)
            _append_unique(base, arrays)
            if len(base) > start:
                added[pred] = [c[start:] for c in base.cols]
        return removed, added

    def _record(
        self,
        rel: Relation,
        dropped: Sequence[View],
        mark: int,
        change: Change,
        fresh: dict[str, View],
    ) -> None:
        """Net change of one relation: `dropped` holds rows removed during this update
        (physically or retired); rows with fids >= `mark` were appended during it."""
        if not rel.cols:
            return
        start = int(np.searchsorted(rel.fids, mark))
        new_rows = np.arange(start, len(rel), dtype=np.int64)
        if rel.live is not None:
            new_rows = new_rows[rel.live[start:]]
        gone = [v for v in dropped if len(v.fids)]
        gone_keys: Array | None = None
        if gone:
            cols = [np.concatenate([v.cols[c] for v in gone]) for c in range(rel.arity)]
            fids = np.concatenate([v.fids for v in gone])
            # only rows that were live before the update (not appended and dropped since)
            before = fids < mark
            cols = [c[before] for c in cols]
            keys, first = np.unique(rel.keys(cols), return_index=True)
            gone_keys = keys
            cols = [c[first] for c in cols]
            still = rel.find(cols) >= 0
            if not still.all():
                change.removed[rel.name] = [c[~still] for c in cols]
        if len(new_rows):
            if gone_keys is not None and len(gone_keys):
                # a key that was live before the update is no addition
                keys = rel.keys([c[new_rows] for c in rel.cols])
                new_rows = new_rows[~np.isin(keys, gone_keys)]
            if len(new_rows):
                cols = [c[new_rows] for c in rel.cols]
                change.added[rel.name] = cols
                fresh[rel.name] = View(cols, rel.fids[new_rows])

    # --- maintained strata ------------------------------------------------------------------------
    def _maintain(
        self,
        stratum: Stratum,
        gone: Mapping[str, list[Array]],
        new: Mapping[str, View],
        own_removed: Mapping[str, list[Array]],
        own_added: Mapping[str, list[Array]],
        mark: int,
        change: Change,
        fresh: dict[str, View],
    ) -> None:
        eng = self.engine
        dropped = self._over_delete(stratum, gone, new, own_removed)
        marks = {p: len(eng.relations[p]) for p in stratum.preds}
        # aggregate rows retired from here on are removals too
        live_before = {
            p: rel.live.copy() for p in stratum.preds if (rel := eng.relations[p]).live is not None
        }
        if dropped:
            self._rederive(stratum, dropped)
        self._let_through(stratum, gone)
        for pred, cols in own_added.items():
            eng.add_facts(pred, *cols)
        seed = dict(new)
        for pred in stratum.preds:
            rel = eng.relations[pred]
            if len(rel) > marks[pred]:
                seed[pred] = View.of(rel, marks[pred])
        if seed:
            eng.run_stratum(stratum, seed)
        for pred in stratum.preds:
            rel = eng.relations[pred]
            removed = [dropped[pred]] if pred in dropped else []
            if pred in live_before and rel.live is not None:
                was = live_before[pred]
                retired = np.flatnonzero(was & ~rel.live[: len(was)])
                if len(retired):
                    removed.append(View([c[retired] for c in rel.cols], rel.fids[retired]))
            self._record(rel, removed, mark, change, fresh)

    def _over_delete(
        self,
        stratum: Stratum,
        gone: Mapping[str, list[Array]],
        new: Mapping[str, View],
        own_removed: Mapping[str, list[Array]],
    ) -> dict[str, View]:
        """Remove every fact of the stratum with a derivation that uses a removed fact, or
        whose negated atom an added fact now matches; returns the rows removed per
        predicate."""
        eng = self.engine
        over: dict[str, IntArray] = {}  # rows over-deleted so far (sorted)
        delta: dict[str, View] = {}
        for pred, cols in gone.items():
            if cols and len(cols[0]):
                delta[pred] = View(list(cols), np.full(len(cols[0]), -1, np.int64))
        for pred, cols in own_removed.items():
            rel = eng.relations[pred]
            rows = _live_rows_of(rel, cols)
            if len(rows):
                over[pred] = rows
                delta[pred] = View([c[rows] for c in rel.cols], rel.fids[rows])
        refuted = [
            (i, j, new[lit.atom.pred])
            for i in stratum.rules
            for j, lit in enumerate(x for x in eng.rules[i].body if isinstance(x, Negation))
            if lit.atom.pred in new
        ]
        if not delta and not refuted:
            return {}
        old: dict[str, View] = {}

        def old_view(pred: str) -> View:
            # the facts before the update: what is there (a superset where rows were added
            # below, which over-deletes no less) and what went
            if pred not in old:
                view = View.of(eng.relations[pred])
                removed = gone.get(pred)
                if removed and len(removed[0]) and eng.relations[pred].cols:
                    view = view.plus(list(removed), np.full(len(removed[0]), -1, np.int64))
                old[pred] = view
            return old[pred]

        found: dict[str, list[IntArray]] = {}
        for i, j, refuting in refuted:  # heads a fact added below now refutes
            rule = eng.rules[i]
            rel = eng.relations[rule.head_pred]
            views = [old_view(a.pred) for a in rule.positives]
            out = eng.evaluate_negated(i, j, refuting, views, check=False)
            if out is not None and rel.cols:
                hit = rel.find(rel.coerce(out.cols))
                found.setdefault(rule.head_pred, []).append(hit[hit >= 0])
        while delta or found:
            for i in stratum.rules:
                rule = eng.rules[i]
                rel = eng.relations[rule.head_pred]
                for k, atom in enumerate(rule.positives):
                    if atom.pred not in delta:
                        continue
                    views = [
                        delta[a.pred] if j == k else old_view(a.pred)
                        for j, a in enumerate(rule.positives)
                    ]
                    if rule.aggregate is not None:
                        rows = eng.group_rows(i, eng.touched_groups(i, {k: delta[atom.pred]}))
                    else:
                        out = eng.evaluate_rule(i, views, first=k)
                        if out is None or not rel.cols:
                            continue
                        rows = rel.find(rel.coerce(out.cols))
                    found.setdefault(rule.head_pred, []).append(rows[rows >= 0])
            delta = {}
            for pred, parts in found.items():
                rel = eng.relations[pred]
                rows = np.unique(np.concatenate(parts))
                if pred in over:
                    rows = rows[~np.isin(rows, over[pred])]
                if len(rows):
                    over[pred] = np.union1d(over.get(pred, rows[:0]), rows)
                    delta[pred] = View([c[rows] for c in rel.cols], rel.fids[rows])
            found = {}
        dropped: dict[str, View] = {}
        for pred, rows in over.items():
            [dropped[pred]] = _drop(eng.relations[pred], rows)
        return dropped

    def _rederive(self, stratum: Stratum, dropped: Mapping[str, View]) -> None:
        """Put back the removed facts that still follow in one step from what is left."""
        eng = self.engine
        for pred, view in dropped.items():
            rel = eng.relations[pred]
            batches: list[Derived] = []
            for i in stratum.rules:
                rule = eng.rules[i]
                if rule.head_pred != pred:
                    continue
                if rule.aggregate is not None:
                    agg = next(k for k, t in enumerate(rule.head_args) if isinstance(t, Aggregate))
                    eng.apply_aggregate(i, [c for k, c in enumerate(view.cols) if k != agg])
                    continue
                out = eng.derive_bound(i, rel.coerce(view.cols))
                if out is not None:
                    batches.append(out)
            base = self.base.get(pred)
            if base is not None and base.cols:
                still = base.find(base.coerce(view.cols)) >= 0
                if still.any():
                    batches.append(
                        Derived(
                            [c[still] for c in view.cols],
                            EXPLICIT,
                            np.empty((int(still.sum()), 0), np.int64),
                        )
                    )
            if batches:
                eng.add_rows(rel, batches)

    def _let_through(self, stratum: Stratum, gone: Mapping[str, list[Array]]) -> None:
        """Add the heads whose negated atom matched a fact that went away and now holds."""
        eng = self.engine
        for i in stratum.rules:
            rule = eng.rules[i]
            negated = [lit for lit in rule.body if isinstance(lit, Negation)]
            for j, lit in enumerate(negated):
                cols = gone.get(lit.atom.pred)
                if not cols or not len(cols[0]):
                    continue
                rows = View(list(cols), np.full(len(cols[0]), -1, np.int64))
                views = [View.of(eng.relations[a.pred]) for a in rule.positives]
                out = eng.evaluate_negated(i, j, rows, views, check=True)
                if out is not None:
                    eng.add_rows(eng.relations[rule.head_pred], [out])


def _inputs(eng: Engine, stratum: Stratum) -> set[str]:
    out: set[str] = set()
    for i in stratum.rules:
        for lit in eng.rules[i].body:
            if isinstance(lit, Atom):
                out.add(lit.pred)
            elif isinstance(lit, Negation):
                out.add(lit.atom.pred)
    return out - stratum.preds


def _live_rows_of(rel: Relation, cols: Sequence[Array]) -> IntArray:
    """Live rows equal to the given rows (absent ones left out)."""
    if not rel.cols or not len(cols[0]):
        return np.empty(0, np.int64)
    rows = rel.find(rel.coerce(list(cols)))
    return np.unique(rows[rows >= 0])


def _drop(rel: Relation, rows: IntArray) -> list[View]:
    """Remove rows; returns them."""
    if not len(rows):
        return []
    gone = View([c[rows] for c in rel.cols], rel.fids[rows])
    mask = np.ones(len(rel), bool)
    mask[rows] = False
    rel.keep(mask)
    return [gone]


def _append_unique(rel: Relation, cols: list[Array]) -> None:
    """Append the rows not there yet, in key order (which keeps the relation's index)."""
    if not len(cols[0]):
        return
    keys, first = unique_keys(rel.keys(cols))
    if rel.cols and len(rel):
        absent = rel.find_keys(keys) < 0
        keys, first = keys[absent], first[absent]
    n = len(first)
    rel.append(
        [c[first] for c in cols],
        np.arange(n, dtype=np.int64) + len(rel),
        np.full(n, EXPLICIT, np.int32),
        np.empty((n, 0), np.int64),
        keys,
    )
