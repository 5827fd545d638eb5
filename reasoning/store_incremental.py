"""Incremental reasoning over a store: new and retracted edges update the inferred facts.

`StoreReasoner.open(store)` loads the graph and evaluates it once (as `materialise` does);
from then on `apply_changes` writes a batch of edges to the store, updates the fixpoint
incrementally (`reasoning.incremental`) and hands the store only what changed, with one
derivation per new fact, through `apply_inferred_delta` — in one transaction. Effective
shares and UBO facts are recomputed for the persons a change can reach (those holding a
changed holder, directly or through companies, and those whose control changed), and only
the ones that changed are written. A process that keeps the reasoner open (the API, the
nightly job between batches) pays the load once; opening also builds the indexes updates
join through. An update that fails leaves the store as it was; if the fixpoint had already
moved, the reasoner refuses further updates with an error that says to open a new one.

Limits: the ends of every edge must be nodes the store held when the reasoner was opened
(new customers need a reopen: their ids have no place among the loaded constants); the
`GraphStore` protocol has no edge deletion yet, so retracted edges must already be gone
from the store — `apply_changes` retracts what they stood for; and explicit support is not
counted, so two edges that state the same fact (two guarantees between one pair, a kinship
recorded from both sides) are retracted together when one of them goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg.model import Label, RelType
from kg.store import GraphStore, InferredDeltaWrites, StoreError
from reasoning.datalog import Rule
from reasoning.engine import EXPLICIT, Array, rows_in
from reasoning.incremental import Change, IncrementalReasoner
from reasoning.materialise import (
    INFERRED_SCHEMA,
    KnowledgeGraphFacts,
    edge_facts,
    load_graph,
)
from reasoning.premises import SourceChunk, SourceRefs

IntArray = npt.NDArray[np.int64]


class StoreReasoner:
    """A store's inferred facts, kept equal to a full `materialise` as edges change.

    Example:
        >>> live = StoreReasoner.open(store, write=True)  # doctest: +SKIP
        >>> change = live.apply_changes(inserted={RelType.GUARANTEES: rows})  # doctest: +SKIP
    """

    def __init__(self, store: GraphStore, kg: KnowledgeGraphFacts) -> None:
        self.store = store
        self.kg = kg
        self.reasoner = IncrementalReasoner.adopt(kg.engine)
        ids = kg.ids.to_pylist()
        self._nid: dict[str, int] = {i: n for n, i in enumerate(ids) if i is not None}
        self._is_person = np.zeros(kg.symbol_base, bool)
        self._is_person[kg.labels.get(Label.PERSON, np.empty(0, np.int64))] = True
        # Set when an update failed after the fixpoint moved: the store rolled back, the
        # engine did not, so every later update would start from facts the store lacks.
        self._diverged: str | None = None
        kg.entity_json()  # built once here rather than by the first update

    @classmethod
    def open(
        cls, store: GraphStore, rules: Sequence[Rule] | None = None, *, write: bool = False
    ) -> StoreReasoner:
        """Load and evaluate the store's graph; `write` also replaces the stored inferred
        facts (as `materialise` does), otherwise they are taken to be current."""
        kg = load_graph(store, rules)
        kg.engine.run()
        if write:
            with store.transaction():
                store.replace_inferred(kg.inferred_table())
        if isinstance(store, InferredDeltaWrites):
            store.prepare_inferred_deltas()
        return cls(store, kg)

    def apply_changes(
        self,
        inserted: Mapping[RelType, pa.Table] | None = None,
        deleted: Mapping[RelType, pa.Table] | None = None,
    ) -> Change:
        """Write `inserted` edges (the `upsert_edges` layout), retract `deleted` ones (same
        layout, with the property values that made the facts, e.g. `voting_pct`), and bring
        the stored inferred facts up to date. Returns the change of the engine's facts."""
        if self._diverged is not None:
            raise StoreError(
                f"an earlier update failed ({self._diverged}); the store was left as it was "
                "but this reasoner was not: open a new one"
            )
        inserted = inserted or {}
        deleted = deleted or {}
        moved = False
        try:
            with self.store.transaction():
                for rel_type, rows in inserted.items():
                    self.store.upsert_edges(rel_type, rows)
                insert_facts, sources = self._facts(inserted)
                delete_facts, _ = self._facts(deleted)
                moved = True
                change = self._update(insert_facts, delete_facts, sources)
        except BaseException as error:
            if moved:
                self._diverged = str(error) or type(error).__name__
            raise
        return change

    def _update(
        self,
        insert_facts: dict[str, list[Array]],
        delete_facts: dict[str, list[Array]],
        sources: dict[str, list[SourceChunk]],
    ) -> Change:
        """Move the fixpoint and write what changed (inside the caller's transaction)."""
        eng = self.kg.engine
        mark = eng.next_fid
        # Facts stored as derived that an inserted edge now states: after the update they
        # are explicit, and the inferred table must lose them.
        stated = self._derived_among(insert_facts)
        change = self.reasoner.update(insert=insert_facts, delete=delete_facts)
        gone = self._register(insert_facts, sources)
        for pred, cols in stated.items():
            prev = gone.get(pred)
            gone[pred] = (
                cols
                if prev is None
                else [np.concatenate([a, b]) for a, b in zip(prev, cols, strict=True)]
            )
        added, removed = self._store_delta(change, mark, gone, delete_facts)
        own_added, own_removed = self._ownership_delta(change)
        self.store.apply_inferred_delta(
            pa.concat_tables([added, own_added]), pa.concat_tables([removed, own_removed])
        )
        return change

    # --- edges to facts -------------------------------------------------------------------------
    def _nids(self, ids: pa.ChunkedArray | pa.Array) -> IntArray:
        out = np.empty(len(ids), np.int64)
        for k, i in enumerate(ids.to_pylist()):
            nid = self._nid.get(i)
            if nid is None:
                raise StoreError(
                    f"edge end {i!r} was not a node when the reasoner was opened; reopen it"
                )
            out[k] = nid
        return out

    def _facts(
        self, tables: Mapping[RelType, pa.Table]
    ) -> tuple[dict[str, list[Array]], dict[str, list[SourceChunk]]]:
        facts: dict[str, list[Array]] = {}
        sources: dict[str, list[SourceChunk]] = {}
        for rel_type, rows in tables.items():
            if not rows.num_rows or not self.kg.needs_edges(rel_type):
                continue
            batch = rows.set_column(
                rows.column_names.index("src"), "src", pa.array(self._nids(rows.column("src")))
            )
            batch = batch.set_column(
                batch.column_names.index("dst"), "dst", pa.array(self._nids(rows.column("dst")))
            )
            if "key" not in batch.column_names:
                batch = batch.append_column("key", pa.array([""] * batch.num_rows))
            for pred, source, cols in edge_facts(rel_type, batch):
                if pred not in self.kg.needed or not len(cols[0]):
                    continue
                prev = facts.get(pred)
                facts[pred] = (
                    list(cols)
                    if prev is None
                    else [np.concatenate([a, b]) for a, b in zip(prev, cols, strict=True)]
                )
                sources.setdefault(pred, []).append(source)
        return facts, sources

    def _derived_among(self, facts: Mapping[str, list[Array]]) -> dict[str, list[Array]]:
        """The given facts that are currently live and derived (not explicit)."""
        out: dict[str, list[Array]] = {}
        for pred, cols in facts.items():
            rel = self.kg.engine.relations.get(pred)
            if rel is None or not self.kg.writable(pred) or not len(cols[0]):
                continue
            rows = rel.find(rel.coerce(cols))
            rows = rows[rows >= 0]
            if rel.live is not None:
                rows = rows[rel.live[rows]]
            rows = rows[rel.rule[rows] != EXPLICIT]
            if len(rows):
                out[pred] = [c[rows] for c in rel.cols]
        return out

    def _register(
        self, facts: Mapping[str, list[Array]], sources: Mapping[str, list[SourceChunk]]
    ) -> dict[str, list[Array]]:
        """Record where the inserted facts came from. A fact that was derived and is now
        also explicit becomes explicit (as in a full run); those leave the stored set."""
        eng = self.kg.engine
        became_explicit: dict[str, list[Array]] = {}
        for pred, cols in facts.items():
            rel = eng.relations[pred]
            rows = rel.find(rel.coerce(cols))
            offset = 0
            for chunk in sources[pred]:
                part = rows[offset : offset + len(chunk.a)]
                offset += len(chunk.a)
                ok = np.flatnonzero(part >= 0)
                if len(ok):
                    chunk = chunk.take(ok)
                    chunk.fids = rel.fids[part[ok]]
                    self.kg.sources.setdefault(pred, SourceRefs()).add(chunk)
            found = rows[rows >= 0]
            derived = found[rel.rule[found] != EXPLICIT]
            if len(derived):
                rel.rule[derived] = EXPLICIT
                rel.premises[derived] = -1
                became_explicit[pred] = [c[derived] for c in rel.cols]
        return became_explicit

    # --- facts to the store -------------------------------------------------------------------
    def _store_delta(
        self,
        change: Change,
        mark: int,
        became_explicit: Mapping[str, list[Array]],
        deleted: Mapping[str, list[Array]],
    ) -> tuple[pa.Table, pa.Table]:
        """Rows to write: live derived facts of stored predicates that are new or re-derived
        (fid from this update, so appended since `mark`); rows to retract: the facts that
        went away or became explicit."""
        kg = self.kg
        eng = kg.engine
        writer = kg.premise_writer()
        added: list[pa.Table] = []
        removed: list[pa.Table] = []
        for pred, rel in eng.relations.items():
            if not kg.writable(pred):
                continue
            rows = np.arange(int(np.searchsorted(rel.fids, mark)), len(rel), dtype=np.int64)
            if rel.live is not None:
                rows = rows[rel.live[rows]]
            rows = rows[rel.rule[rows] != EXPLICIT]
            if deleted.get(pred) and len(deleted[pred][0]):
                # An explicit fact whose edge went away but which is still derived (the
                # inverse of a kinship that remains) was never stored; it is now.
                found = rel.find(rel.coerce(deleted[pred]))
                found = found[found >= 0]
                demoted = found[rel.rule[found] != EXPLICIT]
                rows = np.union1d(rows, demoted)
            if len(rows):
                added.append(kg.rows_table(writer, pred, rows))
            for cols in (change.removed.get(pred), became_explicit.get(pred)):
                if cols and len(cols[0]):
                    removed.append(self._keys_table(pred, cols))
        empty = INFERRED_SCHEMA.empty_table()
        return (
            pa.concat_tables(added) if added else empty,
            pa.concat_tables(removed) if removed else empty,
        )

    def _keys_table(self, pred: str, cols: list[Array]) -> pa.Table:
        src, dst = cols[0], cols[1]
        ok = (src >= 0) & (src < self.kg.symbol_base) & (dst >= 0) & (dst < self.kg.symbol_base)
        n = int(ok.sum())
        return pa.table(
            {
                "predicate": pa.array([pred] * n, pa.string()),
                "src": self.kg.ids.take(pa.array(src[ok])),
                "dst": self.kg.ids.take(pa.array(dst[ok])),
                "rule": pa.array([""] * n, pa.string()),
                "premises": pa.array(["[]"] * n, pa.large_string()),
                "value": pa.nulls(n, pa.float64()),
            },
            schema=INFERRED_SCHEMA,
        )

    def _ownership_delta(self, change: Change) -> tuple[pa.Table, pa.Table]:
        """Effective shares and UBO facts of the persons an update can affect, recomputed
        before and after it over the holdings they reach: persons who hold, directly or
        through companies, a holder whose shareholding changed, and persons whose control
        changed. Returns the rows to write and the keys to retract."""
        kg = self.kg
        empty = INFERRED_SCHEMA.empty_table()
        share = kg.engine.relations.get("sharePct")
        added, removed = change.added.get("sharePct"), change.removed.get("sharePct")
        ctl_added, ctl_removed = change.added.get("controls"), change.removed.get("controls")
        if share is None or not share.cols or not (added or removed or ctl_added or ctl_removed):
            return empty, empty
        now = list(share.cols)  # every sharePct row is explicit (no rule derives it)
        old = now
        if added:
            keep = ~rows_in(now, added)
            old = [c[keep] for c in now]
        if removed:
            old = [np.concatenate([a, b]) for a, b in zip(old, removed, strict=True)]
        # who can be affected: the holders of changed holdings and everyone above them,
        # over the old and the new holdings together
        both = [
            np.concatenate([a, b])
            for a, b in zip(now, removed or [c[:0] for c in now], strict=True)
        ]
        seeds = [np.empty(0, np.int64)]
        seeds += [cols[0] for cols in (added, removed) if cols]
        upstream = _reach(both[1], both[0], np.concatenate(seeds), kg.symbol_base)
        persons = upstream & self._is_person
        for cols in (ctl_added, ctl_removed):
            if cols:
                persons[cols[0][self._is_person[cols[0]]]] = True
        if not persons.any():
            return empty, empty
        reached = _reach(both[0], both[1], np.flatnonzero(persons), kg.symbol_base)
        who = np.flatnonzero(persons)

        def ownership(cols: list[Array]) -> pa.Table:
            holder = cols[0]
            sub = np.flatnonzero(persons[holder] | (reached[holder] & ~self._is_person[holder]))
            kg.shares = [(holder[sub], cols[1][sub], cols[2][sub] / 100.0)]
            return kg.ownership_table(among=who)

        after, before = ownership(now), ownership(old)
        kg.shares = [(now[0], now[1], now[2] / 100.0)]
        # `before` saw the current control facts: a UBO fact that control gained or lost in
        # this update is compared with the control facts that changed instead
        gained = _fact_keys(self._ubo_table(ctl_added))
        after_keys = _fact_keys(after)
        at = pc.index_in(after_keys, value_set=_fact_keys(before))
        present = at.is_valid().to_numpy(zero_copy_only=False)
        new_value = after.column("value").to_numpy()
        old_value = before.column("value").take(at).to_numpy()
        same = present & (
            (np.isnan(new_value) & np.isnan(old_value)) | (np.abs(new_value - old_value) <= 1e-9)
        )
        same &= ~pc.is_in(after_keys, value_set=gained).to_numpy(zero_copy_only=False)
        write = after.filter(pa.array(~same))
        retract = pa.concat_tables([before, self._ubo_table(ctl_removed)])
        retract = retract.filter(pc.invert(pc.is_in(_fact_keys(retract), value_set=after_keys)))
        return write, retract

    def _ubo_table(self, controls: list[Array] | None) -> pa.Table:
        """Keys of the UBO facts the given control facts ground (controllers who are persons)."""
        if not controls:
            return INFERRED_SCHEMA.empty_table()
        on = self._is_person[controls[0]]
        return self._keys_table("beneficialOwnerOf", [c[on] for c in controls[:2]])


def _reach(src: IntArray, dst: IntArray, seeds: IntArray, size: int) -> npt.NDArray[np.bool_]:
    """Nodes reachable from `seeds` (themselves included) along the edges src -> dst."""
    seen = np.zeros(size, bool)
    seen[seeds] = True
    frontier = np.unique(seeds)
    while len(frontier):
        at = np.zeros(size, bool)
        at[frontier] = True
        nxt = np.unique(dst[at[src]])
        frontier = nxt[~seen[nxt]]
        seen[frontier] = True
    return seen


def _fact_keys(table: pa.Table) -> pa.Array:
    """One string per fact of an inferred-layout table: predicate, src and dst."""
    return pc.binary_join_element_wise(
        table.column("predicate"), table.column("src"), table.column("dst"), "\x1f"
    )
