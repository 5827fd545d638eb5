"""The `premises` JSON of inferred facts, built column-wise from the engine's derivations.

`materialise` writes one derivation per inferred fact: the facts its rule used, each in one
of the shapes `reasoning.provenance` expands (`edge`, `node`, `inferred`, `derived`). Building
a Python dict and calling `json.dumps` per fact costs more than the whole fixpoint on a large
bank, so the text is assembled with Arrow string kernels instead: the facts of one rule share
their shape, and only the ids and values differ from row to row. The output is the same JSON
the per-fact encoder wrote (numbers may print in another valid form, `25` for `25.0`).
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

from reasoning.datalog import Var
from reasoning.engine import EXPLICIT, Array, Engine, Relation, composite_keys, equi_join

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

    def add(self, chunk: SourceChunk) -> None:
        self.chunks.append(chunk)
        self._index = None

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
        uniq, chunk_of, row_in = self._index
        if not len(uniq):
            return np.full(len(fids), -1, np.int64), np.zeros(len(fids), np.int64)
        pos = np.minimum(np.searchsorted(uniq, fids), len(uniq) - 1)
        hit = uniq[pos] == fids
        return np.where(hit, chunk_of[pos], -1), np.where(hit, row_in[pos], 0)


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
        self._aggregates: dict[int, tuple[list[str], Any]] = {}
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
        found = rel.fids[pos] == fids
        rows = np.where(found, pos, -1)
        parts: list[tuple[IntArray, pa.Array]] = []
        missing = np.flatnonzero(~found)
        parts.append((missing, _repeat(_unknown(p), len(missing))))
        explicit = found & (rel.rule[np.maximum(rows, 0)] == EXPLICIT)
        bare = np.empty(0, np.int64)
        if explicit.any():
            at = np.flatnonzero(explicit)
            refs = self.sources.get(pred)
            if refs is None or not refs.chunks:
                bare = at
            else:
                chunk_of, row_in = refs.locate(fids[at])
                bare = at[chunk_of < 0]
                for k, chunk in enumerate(refs.chunks):
                    sel = chunk_of == k
                    if sel.any():
                        parts.append((at[sel], self._source(chunk.take(row_in[sel]))))
        if len(bare):
            parts.append((bare, self._derived(p, rel, rows[bare], "null", None)))
        derived = np.flatnonzero(found & ~explicit)
        if len(derived):
            drows = rows[derived]
            if self.stored(pred):
                parts.append((derived, self._inferred_ref(p, rel, drows)))
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

    def _inferred_ref(self, p: str, rel: Relation, rows: IntArray) -> pa.Array:
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
        if rel.arity:
            args = [self.entities(c[rows]) for c in rel.cols]
            flat = pa.concat_arrays(args).take(
                pa.array((np.arange(rel.arity) * n + np.arange(n)[:, None]).ravel())
            )
            arg_text = join_lists(np.full(n, rel.arity, np.int64), flat)
        else:
            arg_text = _repeat("", n)
        head = concat(f'{{"kind": "derived", "predicate": {p}, "args": [', arg_text, '], "rule": ')
        rule_text = _repeat(rule, n) if isinstance(rule, str) else rule
        if premises is None:
            return concat(head, rule_text, "}")
        return concat(head, rule_text, ', "premises": ', premises, "}")

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
        cached = self._aggregates.get(r)
        if cached is None:
            _, _, bind = self.engine.aggregate_groups(r)
            group_vars = [t.name for t in rule.head_args if isinstance(t, Var)]
            cached = self._aggregates[r] = (group_vars, bind)
        group_vars, bind = cached
        head_cols = [k for k, t in enumerate(rule.head_args) if isinstance(t, Var) and bind.n]
        if not bind.n or not head_cols:
            return _repeat("", len(rows))
        lk, rk = composite_keys(
            [rel.cols[k][rows] for k in head_cols], [bind.vars[v] for v in group_vars]
        )
        row_i, bind_j = equi_join(lk, rk)
        order = np.argsort(row_i, kind="stable")
        row_i, bind_j = row_i[order], bind_j[order]
        slots = [(atom.pred, bind.fids[s][bind_j]) for s, atom in enumerate(rule.positives)]
        per_binding = self._slot_lists(slots, depth)
        counts = np.bincount(row_i, minlength=len(rows)).astype(np.int64)
        return join_lists(counts, per_binding)


def _unknown(p: str) -> str:
    return f'{{"kind": "derived", "predicate": {p}, "args": [], "rule": null}}'


def _repeat(text: str, n: int) -> pa.Array:
    return pa.array([text], TEXT).take(pa.array(np.zeros(n, np.int64)))
