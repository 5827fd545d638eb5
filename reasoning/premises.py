"""The `premises` JSON of inferred facts, built column-wise from the engine's derivations.

`materialise` writes one derivation per inferred fact: the facts its rule used, each in one
of the shapes `reasoning.provenance` expands (`edge`, `node`, `inferred`, `derived`). Building
a Python dict and calling `json.dumps` per fact costs more than the whole fixpoint on a large
bank, so the text is assembled with Arrow string kernels instead: the facts of one rule share
their shape, and only the ids and values differ from row to row. The output is the same JSON
the per-fact encoder wrote (numbers may print in another valid form, `25` for `25.0`).

`PremiseRecords` builds the same derivations as integer records (`kg.store.Premises`) for a
store that keeps them structured: twenty million JSON texts are never built, and a store
renders one fact's premises when it is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg.store import PremiseKind, Premises
from reasoning.datalog import Aggregate, Var
from reasoning.engine import (
    EXPLICIT,
    Array,
    Bindings,
    Engine,
    Relation,
    composite_keys,
    equi_join,
)

# Premises of at most 1/_FEW_GROUPS of an aggregate's rows join only their groups' bindings.
_FEW_GROUPS = 16

IntArray = npt.NDArray[np.int64]
TEXT = pa.large_string()
# Helper facts embed their own premises; first-found derivations are well-founded, so this
# depth is only a guard against a pathological rule set.
MAX_DEPTH = 32


def lit(text: str) -> pa.Scalar:
    """A string literal for the element-wise kernels."""
    return pa.scalar(text, TEXT)


def concat(*parts: pa.Array | pa.Scalar | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals (null if any part is null)."""
    args = [lit(p) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, lit(""))


def json_quote(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each string as a JSON string literal; nulls stay null."""
    text = values.cast(TEXT)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = concat('"', escaped, '"')
    control = pc.match_substring_regex(text, r"[\x00-\x1f]").fill_null(False)
    if pc.any(control).as_py():  # rare: let the json module write the \u escapes
        rows = np.flatnonzero(control.to_numpy(zero_copy_only=False))
        fixed = [json.dumps(text[int(i)].as_py(), ensure_ascii=False) for i in rows]
        mask = np.zeros(len(text), bool)
        mask[rows] = True
        quoted = pc.replace_with_mask(quoted, pa.array(mask), pa.array(fixed, TEXT))
    return quoted


def join_lists(counts: IntArray, values: pa.Array, sep: str = ", ") -> pa.Array:
    """Row i: the next `counts[i]` strings of `values` joined with `sep`."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), values.cast(TEXT))
    return pc.binary_join(lists, lit(sep))


def scatter(n: int, parts: Sequence[tuple[IntArray, pa.Array]]) -> pa.Array:
    """One array of length n from pieces that each fill the given positions."""
    parts = [(pos, arr) for pos, arr in parts if len(pos)]
    if not parts:
        return pa.array([], TEXT) if n == 0 else pa.nulls(n, TEXT)
    positions = np.concatenate([pos for pos, _ in parts])
    if len(parts) == 1 and np.array_equal(positions, np.arange(n)):
        return parts[0][1].cast(TEXT)
    order = np.empty(n, np.int64)
    order[positions] = np.arange(len(positions), dtype=np.int64)
    return _take(pa.chunked_array([arr.cast(TEXT) for _, arr in parts], TEXT), order)


def _take(values: pa.ChunkedArray, indices: IntArray) -> pa.Array:
    """`values[indices]` as one array; a chunked take copies each string once, where
    concatenating the chunks first would copy them twice."""
    taken = values.take(pa.array(indices))
    return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken


@dataclass(slots=True)
class SourceChunk:
    """Explicit facts loaded from one batch of stored nodes or edges, as columns.

    A node fact has `a` = the node's nid (and `prop` when it comes from a property); an edge
    fact has `a`, `b` = the ends' nids, `rel_type` and the edge `keys`.
    """

    fids: IntArray
    a: IntArray
    b: IntArray | None = None
    rel_type: str | None = None
    keys: pa.Array | None = None
    prop: str | None = None

    def take(self, rows: IntArray) -> SourceChunk:
        return SourceChunk(
            self.fids[rows] if len(self.fids) else self.fids,
            self.a[rows],
            None if self.b is None else self.b[rows],
            self.rel_type,
            None if self.keys is None else self.keys.take(pa.array(rows)),
            self.prop,
        )


@dataclass(slots=True)
class SourceRefs:
    """Where the explicit facts of one predicate came from (the first source of a fact wins)."""

    chunks: list[SourceChunk] = field(default_factory=list)
    _index: tuple[IntArray, IntArray, IntArray] | None = None
    # the same as a dense map over the fid range when that is compact: (first fid, chunk
    # number by fid - first, row in it)
    _dense: tuple[int, npt.NDArray[np.int32], npt.NDArray[np.int32]] | None = None

    def add(self, chunk: SourceChunk) -> None:
        self.chunks.append(chunk)
        self._index = self._dense = None

    def locate(self, fids: IntArray) -> tuple[IntArray, IntArray]:
        """Chunk number and row in it of each fid; chunk -1 where the fact has no source."""
        if self._index is None:
            all_fids = np.concatenate([c.fids for c in self.chunks])
            chunk_of = np.repeat(
                np.arange(len(self.chunks), dtype=np.int64), [len(c.fids) for c in self.chunks]
            )
            row_in = np.concatenate([np.arange(len(c.fids), dtype=np.int64) for c in self.chunks])
            uniq, first = np.unique(all_fids, return_index=True)
            self._index = (uniq, chunk_of[first], row_in[first])
            span = int(uniq[-1] - uniq[0]) + 1 if len(uniq) else 0
            if len(uniq) and span <= 4 * len(uniq) + 1_000_000:
                # a binary search per premise cost more than building the premises
                dense_chunk = np.full(span, -1, np.int32)
                dense_row = np.zeros(span, np.int32)
                dense_chunk[uniq - uniq[0]] = chunk_of[first]
                dense_row[uniq - uniq[0]] = row_in[first]
                self._dense = (int(uniq[0]), dense_chunk, dense_row)
        if self._dense is not None:
            low, dense_chunk, dense_row = self._dense
            at = fids - low
            inside = (at >= 0) & (at < len(dense_chunk))
            at = np.where(inside, at, 0)
            chunk = np.where(inside, dense_chunk[at], -1).astype(np.int64)
            return chunk, np.where(chunk >= 0, dense_row[at], 0).astype(np.int64)
        uniq, chunk_of, row_in = self._index
        if not len(uniq):
            return np.full(len(fids), -1, np.int64), np.zeros(len(fids), np.int64)
        pos = np.minimum(np.searchsorted(uniq, fids), len(uniq) - 1)
        hit = uniq[pos] == fids
        return np.where(hit, chunk_of[pos], -1), np.where(hit, row_in[pos], 0)


@dataclass(slots=True)
class _FactSplit:
    """Positions of looked-up facts, by what their premise object is built from."""

    rows: IntArray  # each fact's row in its relation, -1 when not found
    missing: IntArray  # not in the relation
    sourced: list[tuple[IntArray, SourceChunk]]  # explicit, with their source rows
    bare: IntArray  # explicit, with no source recorded
    derived: IntArray


def _split_facts(
    rel: Relation, fids: IntArray, pos: IntArray, refs: SourceRefs | None
) -> _FactSplit:
    """Split facts `fids` of `rel`, `pos` being each one's candidate row (checked here)."""
    found = rel.fids[pos] == fids
    rows = np.where(found, pos, -1)
    explicit = found & (rel.rule[np.maximum(rows, 0)] == EXPLICIT)
    sourced: list[tuple[IntArray, SourceChunk]] = []
    bare = np.flatnonzero(explicit)
    if len(bare) and refs is not None and refs.chunks:
        at = bare
        chunk_of, row_in = refs.locate(fids[at])
        bare = at[chunk_of < 0]
        for k, chunk in enumerate(refs.chunks):
            sel = chunk_of == k
            if sel.any():
                sourced.append((at[sel], chunk.take(row_in[sel])))
    return _FactSplit(
        rows, np.flatnonzero(~found), sourced, bare, np.flatnonzero(found & ~explicit)
    )


class PremiseWriter:
    """Premises JSON for the derived facts of an evaluated engine.

    Args:
        engine: the evaluated engine.
        sources: per input predicate, the stored rows its explicit facts came from.
        entity_json: JSON text of each engine constant, indexed by its value (node ids for
            nids, the string for interned symbols); values outside it print as numbers.
        stored: whether a predicate's derived facts are stored (then premises refer to them
            as `inferred` instead of embedding their derivation).
    """

    def __init__(
        self,
        engine: Engine,
        sources: dict[str, SourceRefs],
        entity_json: pa.Array,
        stored: Callable[[str], bool],
    ) -> None:
        self.engine = engine
        self.sources = sources
        self.entity_json = entity_json.cast(TEXT)
        self.stored = stored
        self._aggregates: dict[int, Bindings] = {}
        self._rule_json = pa.array(
            [json.dumps(r.id, ensure_ascii=False) for r in engine.rules], TEXT
        )

    # --- values -----------------------------------------------------------------------------
    def entities(self, values: Array) -> pa.Array:
        """JSON of engine values: entity ids and symbols as strings, other numbers as numbers."""
        if values.dtype.kind == "f":
            return pa.array(values, pa.float64()).cast(TEXT)
        values = values.astype(np.int64, copy=False)
        inside = (values >= 0) & (values < len(self.entity_json))
        known = self.entity_json.take(pa.array(np.where(inside, values, 0)))
        if known.null_count == 0 and inside.all():  # the usual case: entities and symbols
            return known
        known = pc.if_else(pa.array(inside), known, pa.nulls(len(values), TEXT))
        return pc.coalesce(known, pa.array(values, pa.int64()).cast(TEXT))

    # --- one fact -----------------------------------------------------------------------------
    def facts(self, pred: str, fids: IntArray, depth: int = 0) -> pa.Array:
        """The premise object (JSON text) of each fact `pred` with the given fid."""
        n = len(fids)
        rel = self.engine.relations.get(pred)
        p = json.dumps(pred, ensure_ascii=False)
        if rel is None or not len(rel):
            return scatter(n, [(np.arange(n), _repeat(_unknown(p), n))])
        pos = np.minimum(np.searchsorted(rel.fids, fids), len(rel) - 1)
        split = _split_facts(rel, fids, pos, self.sources.get(pred))
        rows, bare, derived = split.rows, split.bare, split.derived
        parts: list[tuple[IntArray, pa.Array]] = [
            (split.missing, _repeat(_unknown(p), len(split.missing)))
        ]
        parts += [(at, self._source(chunk)) for at, chunk in split.sourced]
        if len(bare):
            parts.append((bare, self._derived(p, rel, rows[bare], "null", None)))
        if len(derived):
            drows = rows[derived]
            if self.stored(pred):
                parts.append((derived, self.inferred_ref(p, rel, drows)))
            else:
                premises = self.lists(pred, drows, depth + 1) if depth < MAX_DEPTH else None
                rule_text = self._rule_json.take(pa.array(rel.rule[drows].astype(np.int64)))
                parts.append((derived, self._derived(p, rel, drows, rule_text, premises)))
        return scatter(n, parts)

    def _source(self, chunk: SourceChunk) -> pa.Array:
        a = self.entities(chunk.a)
        if chunk.rel_type is None:
            if chunk.prop is None:
                return concat('{"kind": "node", "id": ', a, "}")
            return concat('{"kind": "node", "id": ', a, f', "prop": {json.dumps(chunk.prop)}}}')
        assert chunk.b is not None
        keys = (
            json_quote(pc.fill_null(chunk.keys.cast(TEXT), ""))
            if chunk.keys is not None
            else _repeat('""', len(chunk.a))
        )
        return concat(
            f'{{"kind": "edge", "type": {json.dumps(chunk.rel_type)}, "src": ',
            a,
            ', "dst": ',
            self.entities(chunk.b),
            ', "key": ',
            keys,
            "}",
        )

    def inferred_ref(self, p: str, rel: Relation, rows: IntArray) -> pa.Array:
        return concat(
            f'{{"kind": "inferred", "predicate": {p}, "src": ',
            self.entities(rel.cols[0][rows]),
            ', "dst": ',
            self.entities(rel.cols[1][rows]),
            "}",
        )

    def _derived(
        self,
        p: str,
        rel: Relation,
        rows: IntArray,
        rule: pa.Array | str,
        premises: pa.Array | None,
    ) -> pa.Array:
        n = len(rows)
        head = concat(
            f'{{"kind": "derived", "predicate": {p}, "args": ', self.args(rel, rows), ', "rule": '
        )
        rule_text = _repeat(rule, n) if isinstance(rule, str) else rule
        if premises is None:
            return concat(head, rule_text, "}")
        return concat(head, rule_text, ', "premises": ', premises, "}")

    def args(self, rel: Relation, rows: IntArray) -> pa.Array:
        """The arguments of the given rows as JSON arrays."""
        n = len(rows)
        if not rel.arity:
            return _repeat("[]", n)
        args = [self.entities(c[rows]) for c in rel.cols]
        flat = pa.concat_arrays(args).take(
            pa.array((np.arange(rel.arity) * n + np.arange(n)[:, None]).ravel())
        )
        return concat("[", join_lists(np.full(n, rel.arity, np.int64), flat), "]")

    def aggregate_bindings(
        self, r: int, rel: Relation, rows: IntArray
    ) -> tuple[list[str], Bindings]:
        """The group variables of aggregate rule `r` and the body bindings of the groups of
        its head rows `rows`: every binding (evaluated once and kept) unless the rows are a
        few groups the engine can take alone (an incremental update's new rows)."""
        rule = self.engine.rules[r]
        group_vars = [t.name for t in rule.head_args if isinstance(t, Var)]
        cached = self._aggregates.get(r)
        if cached is not None:
            return group_vars, cached
        if len(rows) * _FEW_GROUPS <= len(rel) and self.engine.takes_groups(r):
            agg_pos = next(k for k, t in enumerate(rule.head_args) if isinstance(t, Aggregate))
            groups = [rel.cols[k][rows] for k in range(rel.arity) if k != agg_pos]
            return group_vars, self.engine.group_bindings(r, groups)
        _, _, bind = self.engine.aggregate_groups(r)
        self._aggregates[r] = bind
        return group_vars, bind

    # --- the premises of derived facts ------------------------------------------------------------
    def lists(self, pred: str, rows: IntArray, depth: int = 0) -> pa.Array:
        """`[premise, ...]` (JSON text) of each given derived row of `pred`."""
        rel = self.engine.relations[pred]
        rules = rel.rule[rows]
        parts: list[tuple[IntArray, pa.Array]] = []
        for r in np.unique(rules).tolist():
            at = np.flatnonzero(rules == r)
            rule = self.engine.rules[r]
            if rule.aggregate is not None:
                text = self._aggregate_lists(r, rel, rows[at], depth)
            else:
                slots = [
                    (atom.pred, rel.premises[rows[at], slot])
                    for slot, atom in enumerate(rule.positives)
                ]
                text = self._slot_lists(slots, depth)
            parts.append((at, concat("[", text, "]")))
        return scatter(len(rows), parts)

    def _slot_lists(self, slots: Sequence[tuple[str, IntArray]], depth: int) -> pa.Array:
        """Per row, the premises of its slots (fid -1: no premise in that slot) joined."""
        n = len(slots[0][1]) if slots else 0
        if not slots:
            return _repeat("", n)
        matrix = np.stack([f for _, f in slots], axis=1)
        valid = matrix >= 0
        pieces: list[pa.Array] = []
        index = np.full(matrix.shape, -1, np.int64)
        offset = 0
        for s, (pred, fids) in enumerate(slots):
            ok = valid[:, s]
            pieces.append(self.facts(pred, fids[ok], depth))
            index[ok, s] = offset + np.arange(int(ok.sum()), dtype=np.int64)
            offset += int(ok.sum())
        if valid.all() and len(slots) == 1:
            return pieces[0]
        flat = index.ravel()
        values = _take(pa.chunked_array(pieces, TEXT), flat[flat >= 0])
        return join_lists(valid.sum(axis=1).astype(np.int64), values)

    def _aggregate_lists(self, r: int, rel: Relation, rows: IntArray, depth: int) -> pa.Array:
        """The contributors of each aggregate group: every binding of the rule's body."""
        rule = self.engine.rules[r]
        group_vars, bind = self.aggregate_bindings(r, rel, rows)
        head_cols = [k for k, t in enumerate(rule.head_args) if isinstance(t, Var) and bind.n]
        if not bind.n or not head_cols:
            return _repeat("", len(rows))
        lk, rk = composite_keys(
            [rel.cols[k][rows] for k in head_cols], [bind.vars[v] for v in group_vars]
        )
        row_i, bind_j = _contributors(lk, rk, bind)
        slots = [(atom.pred, bind.fids[s][bind_j]) for s, atom in enumerate(rule.positives)]
        per_binding = self._slot_lists(slots, depth)
        counts = np.bincount(row_i, minlength=len(rows)).astype(np.int64)
        return join_lists(counts, per_binding)


def _contributors(lk: IntArray, rk: IntArray, bind: Bindings) -> tuple[IntArray, IntArray]:
    """(row, binding) pairs of head rows and the bindings in their groups, by row and then
    by the bindings' values: the same order whichever join found them and whenever their
    facts were derived (an incremental update lists them as a full materialisation does)."""
    row_i, bind_j = equi_join(lk, rk)
    values = [bind.vars[v][bind_j] for v in sorted(bind.vars, reverse=True)]
    order = np.lexsort([*values, row_i])
    return row_i[order], bind_j[order]


def _unknown(p: str) -> str:
    return f'{{"kind": "derived", "predicate": {p}, "args": [], "rule": null}}'


def _repeat(text: str, n: int) -> pa.Array:
    return pa.array([text], TEXT).take(pa.array(np.zeros(n, np.int64)))


# --- premises as records -------------------------------------------------------------------------
@dataclass(slots=True)
class _Forest:
    """Per item a contiguous run of premise records in preorder (see `kg.store.Premises`);
    `text` indexes the text pool of the `PremiseRecords` that built it (-1: empty)."""

    offsets: IntArray
    kind: npt.NDArray[np.int8]
    name: npt.NDArray[np.int32]
    rule: npt.NDArray[np.int32]
    a: npt.NDArray[np.int32]
    b: npt.NDArray[np.int32]
    size: npt.NDArray[np.int32]
    text: npt.NDArray[np.int32]

    @staticmethod
    def empty(n: int) -> _Forest:
        return _Forest.leaves(0, 0, -1, -1, np.empty(0, np.int64)).group(np.zeros(n, np.int64))

    @staticmethod
    def leaves(
        kind: int,
        name: int | npt.NDArray[np.int32],
        rule: int | npt.NDArray[np.int32],
        text: int | npt.NDArray[np.int32],
        a: IntArray,
        b: IntArray | None = None,
    ) -> _Forest:
        """One record per item."""
        n = len(a)
        return _Forest(
            np.arange(n + 1, dtype=np.int64),
            np.full(n, kind, np.int8),
            np.broadcast_to(np.asarray(name, np.int32), n).copy(),
            np.broadcast_to(np.asarray(rule, np.int32), n).copy(),
            a.astype(np.int32),
            np.zeros(n, np.int32) if b is None else b.astype(np.int32),
            np.ones(n, np.int32),
            np.broadcast_to(np.asarray(text, np.int32), n).copy(),
        )

    def _records(self, index: IntArray, offsets: IntArray) -> _Forest:
        return _Forest(
            offsets,
            self.kind[index],
            self.name[index],
            self.rule[index],
            self.a[index],
            self.b[index],
            self.size[index],
            self.text[index],
        )

    def take(self, items: IntArray) -> _Forest:
        if len(self.kind) == len(self.offsets) - 1:  # one record per item: a plain gather
            return self._records(items, np.arange(len(items) + 1, dtype=np.int64))
        starts = self.offsets[items]
        lengths = self.offsets[items + 1] - starts
        offsets = np.zeros(len(items) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        index = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)
        return self._records(index, offsets)

    def group(self, counts: IntArray) -> _Forest:
        """Consecutive items joined: new item i is the next `counts[i]` items."""
        bounds = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=bounds[1:])
        return _Forest(
            self.offsets[bounds],
            self.kind,
            self.name,
            self.rule,
            self.a,
            self.b,
            self.size,
            self.text,
        )

    @staticmethod
    def concat(parts: Sequence[_Forest]) -> _Forest:
        if len(parts) == 1:
            return parts[0]
        counts = np.concatenate([np.diff(f.offsets) for f in parts])
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return _Forest(
            offsets,
            *(np.concatenate([getattr(f, c) for f in parts]) for c in _RECORD_COLUMNS),
        )

    @staticmethod
    def scatter(n: int, parts: Sequence[tuple[IntArray, _Forest]]) -> _Forest:
        """One forest of n items from pieces that each fill the given positions."""
        parts = [(pos, f) for pos, f in parts if len(pos)]
        if not parts:
            return _Forest.empty(n)
        positions = np.concatenate([pos for pos, _ in parts])
        joined = _Forest.concat([f for _, f in parts])
        if np.array_equal(positions, np.arange(n)):
            return joined
        order = np.empty(n, np.int64)
        order[positions] = np.arange(len(positions), dtype=np.int64)
        return joined.take(order)

    def under(self, heads: _Forest) -> _Forest:
        """Item i: the one record of `heads` item i, with this forest's item i as its
        premises (the head's subtree)."""
        counts = np.diff(self.offsets)
        offsets = self.offsets + np.arange(len(self.offsets), dtype=np.int64)
        total = int(offsets[-1])
        head_at = offsets[:-1]
        child_at = np.arange(len(self.kind), dtype=np.int64) + np.repeat(
            np.arange(1, len(counts) + 1, dtype=np.int64), counts
        )
        size = (counts + 1).astype(np.int32)
        out = _Forest(
            offsets,
            np.empty(total, np.int8),
            np.empty(total, np.int32),
            np.empty(total, np.int32),
            np.empty(total, np.int32),
            np.empty(total, np.int32),
            np.empty(total, np.int32),
            np.empty(total, np.int32),
        )
        for column in _RECORD_COLUMNS:
            target = getattr(out, column)
            target[head_at] = size if column == "size" else getattr(heads, column)
            target[child_at] = getattr(self, column)
        return out


_RECORD_COLUMNS = ("kind", "name", "rule", "a", "b", "size", "text")


def _distinct_rows(rows: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """The distinct values of `rows` (row numbers below n), ascending, and the position of
    each row among them; a mark per row instead of a sort."""
    seen = np.zeros(n, bool)
    seen[rows] = True
    rank = np.cumsum(seen) - 1
    return np.flatnonzero(seen), rank[rows]


class PremiseRecords:
    """Premises of derived facts as `kg.store.Premises` records: the derivations that
    `PremiseWriter` spells as JSON, as integer columns (the JSON is rendered when read).

    Args:
        writer: the JSON writer of the same engine (it spells derived args, and the rare
            premises whose ends are not nodes).
        is_node: per engine value below its length, whether it is a node id.
    """

    def __init__(self, writer: PremiseWriter, is_node: npt.NDArray[np.bool_]) -> None:
        self.writer = writer
        self.engine = writer.engine
        self.is_node = is_node
        self.names: list[str] = []
        self._name_index: dict[str, int] = {}
        self._pool: list[pa.Array] = []
        self._pool_size = 0
        self._rows = np.empty(0, np.int32)
        self._filled: set[str] = set()
        self._rule_names = np.array([self.name(r.id) for r in self.engine.rules] or [-1], np.int32)

    def _row_of_fid(self, pred: str) -> npt.NDArray[np.int32]:
        """Row of every fact id in its relation, for the facts of `pred` and of relations seen
        before (a dense map: a binary search per premise over relations of millions of rows
        cost more than the rest of the build). A relation is entered when it is first asked
        for, which is after its stratum is done."""
        if pred not in self._filled:
            fids = self.engine.relations[pred].fids
            top = int(fids.max()) + 1 if len(fids) else 0
            if top > len(self._rows):
                size = max(top, self.engine.next_fid, len(self._rows) * 3 // 2)
                grown = np.full(size, -1, np.int32)
                grown[: len(self._rows)] = self._rows
                self._rows = grown
            self._rows[fids] = np.arange(len(fids), dtype=np.int32)
            self._filled.add(pred)
        return self._rows

    def name(self, text: str) -> int:
        """Index of a predicate, rule, type or property name in `names`."""
        index = self._name_index.get(text)
        if index is None:
            index = self._name_index[text] = len(self.names)
            self.names.append(text)
        return index

    def rule_names(self, rules: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        """`names` index of each engine rule number."""
        return self._rule_names[rules.astype(np.int64)]

    def _texts(self, values: pa.Array) -> npt.NDArray[np.int32]:
        start = self._pool_size
        self._pool.append(values.cast(TEXT))
        self._pool_size += len(values)
        return np.arange(start, self._pool_size, dtype=np.int32)

    def constant(self, premise: dict[str, Any] | None, n: int) -> Premises:
        """n facts whose premises are the one given leaf premise (a derived fact without
        premises of its own), or none."""
        if premise is None:
            return self.resolve(_Forest.empty(n))
        assert premise["kind"] == "derived" and "premises" not in premise
        args = self._texts(pa.array([json.dumps(premise["args"])], TEXT))[0]
        rule = -1 if premise["rule"] is None else self.name(premise["rule"])
        leaf = _Forest.leaves(
            PremiseKind.DERIVED_LEAF,
            self.name(premise["predicate"]),
            rule,
            args,
            np.zeros(n, np.int64),
        )
        return self.resolve(leaf)

    def nodes(self, values: Array) -> npt.NDArray[np.bool_]:
        """Whether each engine value is a node id."""
        values = values.astype(np.int64, copy=False)
        inside = (values >= 0) & (values < len(self.is_node))
        return inside & self.is_node[np.where(inside, values, 0)]

    # --- one fact ---------------------------------------------------------------------------------
    def facts(self, pred: str, fids: IntArray, depth: int = 0) -> _Forest:
        """One record subtree per fact `pred` with the given fid (as `PremiseWriter.facts`)."""
        n = len(fids)
        rel = self.engine.relations.get(pred)
        p = self.name(pred)
        if rel is None or not len(rel):
            return self._unknown(p, n)
        row_of = self._row_of_fid(pred)
        pos = row_of[np.clip(fids, 0, len(row_of) - 1)].astype(np.int64)
        pos = np.where((pos >= 0) & (pos < len(rel)), pos, 0)
        split = _split_facts(rel, fids, pos, self.writer.sources.get(pred))
        rows, bare, derived = split.rows, split.bare, split.derived
        parts: list[tuple[IntArray, _Forest]] = [
            (split.missing, self._unknown(p, len(split.missing)))
        ]
        parts += [(at, self._source(chunk)) for at, chunk in split.sourced]
        if len(bare):
            args = self._args(rel, rows[bare])
            leaves = _Forest.leaves(PremiseKind.DERIVED_LEAF, p, -1, args, np.zeros_like(bare))
            parts.append((bare, leaves))
        if len(derived):
            drows = rows[derived]
            if self.writer.stored(pred):
                parts.append((derived, self._inferred_ref(pred, rel, drows)))
            else:
                # A helper fact is often a premise of many facts (one address's holder count
                # of every pair sharing it): its subtree is built once and copied.
                distinct, inverse = _distinct_rows(drows, len(rel))
                args = self._texts(self.writer.args(rel, distinct))
                rules = self.rule_names(rel.rule[distinct])
                zeros = np.zeros_like(distinct)
                if depth < MAX_DEPTH:
                    heads = _Forest.leaves(PremiseKind.DERIVED, p, rules, args, zeros)
                    subtrees = self.lists(pred, distinct, depth + 1).under(heads)
                else:
                    subtrees = _Forest.leaves(PremiseKind.DERIVED_LEAF, p, rules, args, zeros)
                parts.append((derived, subtrees.take(inverse)))
        return _Forest.scatter(n, parts)

    def _args(self, rel: Relation, rows: IntArray) -> npt.NDArray[np.int32]:
        """Text ids of the JSON args of the given rows, spelled once per distinct row."""
        distinct, inverse = _distinct_rows(rows, len(rel))
        ids: npt.NDArray[np.int32] = self._texts(self.writer.args(rel, distinct))[inverse]
        return ids

    def _unknown(self, p: int, n: int) -> _Forest:
        args = self._texts(pa.array(["[]"], TEXT))[0]
        return _Forest.leaves(PremiseKind.DERIVED_LEAF, p, -1, args, np.zeros(n, np.int64))

    def _source(self, chunk: SourceChunk) -> _Forest:
        if chunk.rel_type is None:
            prop = -1 if chunk.prop is None else self.name(chunk.prop)
            return _Forest.leaves(PremiseKind.NODE, prop, -1, -1, chunk.a)
        assert chunk.b is not None
        keys = (
            self._texts(pc.fill_null(chunk.keys.cast(TEXT), "")) if chunk.keys is not None else -1
        )
        return _Forest.leaves(
            PremiseKind.EDGE, self.name(chunk.rel_type), -1, keys, chunk.a, chunk.b
        )

    def _inferred_ref(self, pred: str, rel: Relation, rows: IntArray) -> _Forest:
        src, dst = rel.cols[0][rows], rel.cols[1][rows]
        ok = self.nodes(src) & self.nodes(dst)
        at, odd = np.flatnonzero(ok), np.flatnonzero(~ok)
        parts = [
            (at, _Forest.leaves(PremiseKind.INFERRED, self.name(pred), -1, -1, src[at], dst[at]))
        ]
        if len(odd):  # an end that is a symbol or a number: spelled as JSON
            text = self.writer.inferred_ref(json.dumps(pred, ensure_ascii=False), rel, rows[odd])
            json_leaves = _Forest.leaves(
                PremiseKind.JSON, -1, -1, self._texts(text), np.zeros_like(odd)
            )
            parts.append((odd, json_leaves))
        return _Forest.scatter(len(rows), parts)

    # --- the premises of derived facts ------------------------------------------------------------
    def lists(self, pred: str, rows: IntArray, depth: int = 0) -> _Forest:
        """The premise records of each given derived row of `pred` (as `PremiseWriter.lists`)."""
        rel = self.engine.relations[pred]
        rules = rel.rule[rows]
        parts: list[tuple[IntArray, _Forest]] = []
        for r in np.unique(rules).tolist():
            at = np.flatnonzero(rules == r)
            rule = self.engine.rules[r]
            if rule.aggregate is not None:
                forest = self._aggregate_lists(r, rel, rows[at], depth)
            else:
                slots = [
                    (atom.pred, rel.premises[rows[at], slot])
                    for slot, atom in enumerate(rule.positives)
                ]
                forest = self._slot_lists(len(at), slots, depth)
            parts.append((at, forest))
        return _Forest.scatter(len(rows), parts)

    def _slot_lists(self, n: int, slots: Sequence[tuple[str, IntArray]], depth: int) -> _Forest:
        if not slots:
            return _Forest.empty(n)
        matrix = np.stack([f for _, f in slots], axis=1)
        valid = matrix >= 0
        pieces: list[_Forest] = []
        index = np.full(matrix.shape, -1, np.int64)
        offset = 0
        for s, (pred, fids) in enumerate(slots):
            ok = valid[:, s]
            pieces.append(self.facts(pred, fids[ok], depth))
            index[ok, s] = offset + np.arange(int(ok.sum()), dtype=np.int64)
            offset += int(ok.sum())
        if valid.all() and len(slots) == 1:
            return pieces[0]
        if valid.all() and all(len(f.kind) == len(f.offsets) - 1 for f in pieces):
            # every premise is one record: row i's records are column i of the pieces
            k = len(pieces)
            columns = [np.stack([getattr(f, c) for f in pieces], axis=1) for c in _RECORD_COLUMNS]
            return _Forest(
                np.arange(0, n * k + 1, k, dtype=np.int64), *(c.ravel() for c in columns)
            )
        joined = _Forest.concat(pieces)
        flat = index.ravel()
        return joined.take(flat[flat >= 0]).group(valid.sum(axis=1).astype(np.int64))

    def _aggregate_lists(self, r: int, rel: Relation, rows: IntArray, depth: int) -> _Forest:
        rule = self.engine.rules[r]
        group_vars, bind = self.writer.aggregate_bindings(r, rel, rows)
        head_cols = [k for k, t in enumerate(rule.head_args) if isinstance(t, Var) and bind.n]
        if not bind.n or not head_cols:
            return _Forest.empty(len(rows))
        lk, rk = composite_keys(
            [rel.cols[k][rows] for k in head_cols], [bind.vars[v] for v in group_vars]
        )
        row_i, bind_j = _contributors(lk, rk, bind)
        slots = [(atom.pred, bind.fids[s][bind_j]) for s, atom in enumerate(rule.positives)]
        per_binding = self._slot_lists(len(bind_j), slots, depth)
        return per_binding.group(np.bincount(row_i, minlength=len(rows)).astype(np.int64))

    # --- output -----------------------------------------------------------------------------------
    def premises(self, pred: str, rows: IntArray) -> Premises:
        """The premises of the given derived rows of `pred`, ready for the store."""
        forest = self.lists(pred, rows)
        return self.resolve(forest)

    def _text_of(self, ids: npt.NDArray[np.int32]) -> pa.Array:
        """The pool's texts by id ("" for -1), built from the non-empty ones alone: most
        records have no text."""
        has = ids >= 0
        if not has.any():
            offsets = pa.py_buffer(np.zeros(len(ids) + 1, np.int64))
            return pa.Array.from_buffers(TEXT, len(ids), [None, offsets, pa.py_buffer(b"")])
        pool = pa.chunked_array(self._pool, TEXT)
        taken = _take(pool, ids[has].astype(np.int64))
        lengths = np.zeros(len(ids), np.int64)
        lengths[has] = pc.binary_length(taken).to_numpy(zero_copy_only=False)
        offsets = np.zeros(len(ids) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = taken.buffers()[2]
        value_offsets = taken.buffers()[1]
        start = int(np.frombuffer(value_offsets, np.int64, count=1, offset=taken.offset * 8)[0])
        body = data.slice(start, int(offsets[-1])) if data is not None else pa.py_buffer(b"")
        return pa.Array.from_buffers(TEXT, len(ids), [None, pa.py_buffer(offsets), body])

    def resolve(self, forest: _Forest) -> Premises:
        """A forest with its text ids turned into text; the text pool starts afresh."""
        text = self._text_of(forest.text)
        self._pool, self._pool_size = [], 0
        base = int(forest.offsets[0])
        end = int(forest.offsets[-1])
        return Premises(
            forest.offsets - base,
            forest.kind[base:end],
            forest.name[base:end],
            forest.rule[base:end],
            forest.a[base:end],
            forest.b[base:end],
            forest.size[base:end],
            text.slice(base, end - base),
        )
