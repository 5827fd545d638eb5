"""Reason over a store: read the graph, run ontology + banking rules, write inferred facts.

The stored graph is mapped onto the predicates of `kg/ontology.ttl` and the input
predicates of `reasoning/rules/banking.dl`:

- node labels: `Person(n)`, `Company(n)`, `Account(n)`, `Loan(n)`, `Device(n)`
- node `phone`, `address_norm`, `id_number`: `hasPhone`, `hasAddress`, `hasIdNumber(n, value)`
- HOLDS_SHARES: `holdsShares(x, c)`, `votingPct(x, c, voting_pct or else share_pct)`,
  `sharePct(x, c, share_pct)`
- HOLDS_POSITION with role r: `holdsPosition(x, c)` and the role's property
  (`actual_controller` -> `actualControllerOf`, `director` -> `directorOf`, ...)
- RELATIVE_OF with relation r (dst is src's r): `relativeOf(x, y)`; `spouseOf(x, y)`,
  `siblingOf(x, y)`; `parentOf(y, x)` for parent and `parentOf(x, y)` for child
- GUARANTEES, BORROWED, OWNS_ACCOUNT, TRANSFERRED, USES_DEVICE: `guarantees`, `borrowed`,
  `ownsAccount`, `transferredTo`, `usesDevice`

Inferred binary facts, and ternary facts with a numeric value (`votingPower`), are written
in one transaction; helper facts of other shapes are embedded in the premises of the facts
that use them. Effective ownership (`effectiveShare`, percent) and `beneficialOwnerOf` from
`reasoning.ownership` are written beside them. A store that takes `InferredColumns` (SQLite)
gets node ids and premises as records (`PremiseRecords`); any other gets tables with
premises JSON through `replace_inferred` and `apply_inferred_delta`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg.model import NODE_SCHEMAS, REL_SCHEMAS, Label, RelType
from kg.store import (
    GraphStore,
    InferredColumns,
    InferredColumnWrites,
    node_columns,
    node_property_columns,
)
from reasoning.datalog import Comparison, Negation, Rule, builtin_rules_path, load_rules
from reasoning.engine import EXPLICIT, Array, Engine, EngineError, RunStats
from reasoning.owl import compile_owl, load_ontology, ontology_rules
from reasoning.ownership import EffectiveOwnership, beneficial_owners, effective_ownership
from reasoning.premises import (
    PremiseRecords,
    PremiseWriter,
    SourceChunk,
    SourceRefs,
    json_quote,
)

IntArray = npt.NDArray[np.int64]
OwnershipFacts = tuple[IntArray, IntArray, npt.NDArray[np.float64]]
Shares = tuple[IntArray, IntArray, npt.NDArray[np.float64]]

ROLE_PREDICATES: dict[str, str] = {
    "legal_representative": "legalRepresentativeOf",
    "director": "directorOf",
    "supervisor": "supervisorOf",
    "executive": "executiveOf",
    "financial_controller": "financialControllerOf",
    "actual_controller": "actualControllerOf",
}
SIMPLE_EDGES: dict[RelType, str] = {
    RelType.GUARANTEES: "guarantees",
    RelType.BORROWED: "borrowed",
    RelType.OWNS_ACCOUNT: "ownsAccount",
    RelType.TRANSFERRED: "transferredTo",
    RelType.USES_DEVICE: "usesDevice",
}
IDENTIFIER_PROPS: dict[str, str] = {
    "phone": "hasPhone",
    "address_norm": "hasAddress",
    "id_number": "hasIdNumber",
}
# The predicates each relationship type is loaded as.
EDGE_PREDICATES: dict[RelType, frozenset[str]] = {
    **{t: frozenset({p}) for t, p in SIMPLE_EDGES.items()},
    RelType.HOLDS_SHARES: frozenset({"holdsShares", "votingPct", "sharePct"}),
    RelType.HOLDS_POSITION: frozenset({"holdsPosition", *ROLE_PREDICATES.values()}),
    RelType.RELATIVE_OF: frozenset({"relativeOf", "spouseOf", "siblingOf", "parentOf"}),
}
OWNERSHIP_RULE = "ownership:effective_share"
UBO_RULE = "ownership:beneficial_owner"
# The one premise of every effective share: the system of equations it was solved from.
SHARE_PREMISE = {
    "kind": "derived",
    "predicate": "sharePct",
    "args": [],
    "rule": "linear system over all HOLDS_SHARES edges",
}
_INFERRED_FIELDS: list[tuple[str, pa.DataType]] = [
    ("predicate", pa.string()),
    ("src", pa.string()),
    ("dst", pa.string()),
    ("rule", pa.string()),
    # Large: at a million customers one predicate's derivations pass 2 GiB of JSON.
    ("premises", pa.large_string()),
    ("value", pa.float64()),
]
INFERRED_SCHEMA = pa.schema(_INFERRED_FIELDS)


def default_rules() -> list[Rule]:
    """The ontology's OWL axioms followed by the shipped banking rules."""
    return ontology_rules() + load_rules(builtin_rules_path("banking"))


@dataclass(slots=True)
class ReasoningSummary:
    """What a reasoning run read, derived and wrote."""

    facts_in: int = 0
    inferred: int = 0
    written: int = 0
    iterations: int = 0
    seconds: float = 0.0
    per_predicate: dict[str, int] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)  # seconds by stage

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts_in": self.facts_in,
            "inferred": self.inferred,
            "written": self.written,
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "per_predicate": dict(sorted(self.per_predicate.items())),
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
        }


class KnowledgeGraphFacts:
    """The stored graph loaded into an engine, with the maps back to ids and sources."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        # stored predicates: the ontology's properties; rule helpers are embedded in premises
        self.outputs = compile_owl(load_ontology()).properties
        # Rules and inputs that cannot reach a stored fact are left out: the ontology's
        # domain and range axioms type every account and loan, which nothing stores or uses.
        # (`sharePct` also feeds effective ownership, which is solved outside the rules)
        self.needed = relevant_predicates(rules, self.outputs) | {"sharePct"}
        self.engine = Engine([r for r in rules if r.head_pred in self.needed])
        self.ids: pa.Array = pa.array([], pa.string())  # entity id by nid (null: no node)
        self.labels: dict[Label, IntArray] = {}
        self.symbol_base = 0
        self.symbols: pa.Array = pa.array([], pa.string())
        self.sources: dict[str, SourceRefs] = {}
        self._shares: list[Shares] = []
        self.facts_in = 0
        self._entity_json: pa.Array | None = None
        self._effective: EffectiveOwnership | None = None
        self._effective_lock = threading.Lock()

    @property
    def shares(self) -> list[Shares]:
        """Shareholdings (holder, company, fraction) for effective ownership."""
        return self._shares

    @shares.setter
    def shares(self, value: list[Shares]) -> None:
        self._shares = value
        self._effective = None

    # --- loading --------------------------------------------------------------------------------
    def add(self, pred: str, source: SourceChunk | None, *cols: npt.ArrayLike) -> IntArray:
        """Assert explicit facts; `source` (its fids left empty) says where they came from."""
        if pred not in self.needed:
            return np.empty(0, np.int64)
        fids = self.engine.add_facts(pred, *cols)
        self.facts_in += len(fids)
        if source is not None and len(fids):
            source.fids = fids
            self.sources.setdefault(pred, SourceRefs()).add(source)
        return fids

    def load(self, store: GraphStore) -> None:
        nodes = node_columns(store)
        nid = np.asarray(nodes.column("nid").to_numpy(), np.int64)
        size = int(nid.max()) + 1 if len(nid) else 0
        position = np.full(size, -1, np.int64)
        position[nid] = np.arange(len(nid), dtype=np.int64)
        self.ids = (
            nodes.column("id")
            .combine_chunks()
            .cast(pa.string())
            .take(pa.array(position, mask=position < 0))
        )
        self.symbol_base = size
        label_column = nodes.column("label")
        props: dict[str, tuple[list[IntArray], list[Any]]] = {p: ([], []) for p in IDENTIFIER_PROPS}
        for label in self._needed_labels():
            mask = pc.equal(label_column, label.value).to_numpy(zero_copy_only=False)
            self.labels[label] = nid[np.asarray(mask, bool)]
            wanted = [
                p
                for p in IDENTIFIER_PROPS
                if p in NODE_SCHEMAS[label].props and IDENTIFIER_PROPS[p] in self.needed
            ]
            if wanted:
                table = node_property_columns(store, label, wanted)
                owner = np.asarray(table.column("nid").to_numpy(), np.int64)
                for prop in wanted:
                    props[prop][0].append(owner)
                    props[prop][1].append(table.column(prop))
        for label, nids in self.labels.items():
            if len(nids):
                self.add(label.value, SourceChunk(_NO_FIDS, nids), nids)
        self._load_identifiers(props)
        for rel_type in RelType:
            if self.needs_edges(rel_type):
                for batch in store.edge_batches(rel_type):
                    self._add_edges(rel_type, batch)

    def needs_edges(self, rel_type: RelType) -> bool:
        # shareholdings also feed effective ownership, which is solved outside the rules
        return rel_type is RelType.HOLDS_SHARES or bool(EDGE_PREDICATES[rel_type] & self.needed)

    def _needed_labels(self) -> list[Label]:
        """Labels whose nodes can appear in a fact: used as classes, carrying identifiers,
        or at an end of a needed relationship (their ids are needed for the output)."""
        out = []
        for label in Label:
            ends = any(
                label in REL_SCHEMAS[t].src_labels | REL_SCHEMAS[t].dst_labels
                for t in RelType
                if self.needs_edges(t)
            )
            props = any(
                IDENTIFIER_PROPS[p] in self.needed
                for p in IDENTIFIER_PROPS
                if p in NODE_SCHEMAS[label].props
            )
            if label.value in self.needed or ends or props:
                out.append(label)
        return out

    def _load_identifiers(self, props: dict[str, tuple[list[IntArray], list[Any]]]) -> None:
        """Identifier properties as (node, value) facts; values are interned as one symbol
        space, so a phone equal to another customer's phone is the same constant."""
        found: list[tuple[str, IntArray, pa.Array]] = []
        for prop, (nids_p, values_p) in props.items():
            if not nids_p:
                continue
            nid = np.concatenate(nids_p)
            values = pa.chunked_array(
                [c for part in values_p for c in part.chunks], pa.string()
            ).combine_chunks()
            text = pc.utf8_trim_whitespace(values)
            keep = pc.fill_null(pc.greater(pc.utf8_length(text), 0), False)
            mask = keep.to_numpy(zero_copy_only=False)
            found.append((prop, nid[mask], text.filter(keep)))
        if not found:
            return
        encoded = pa.concat_arrays([t for _, _, t in found]).dictionary_encode()
        self.symbols = encoded.dictionary
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
        start = 0
        for prop, nid, text in found:
            part = codes[start : start + len(text)] + self.symbol_base
            start += len(text)
            self.add(IDENTIFIER_PROPS[prop], SourceChunk(_NO_FIDS, nid, prop=prop), nid, part)

    def _add_edges(self, rel_type: RelType, batch: pa.Table) -> None:
        for pred, source, cols in edge_facts(rel_type, batch):
            if pred == "sharePct":
                self.shares.append((cols[0], cols[1], cols[2] / 100.0))
            self.add(pred, source, *cols)

    # --- output ---------------------------------------------------------------------------------
    def writable(self, pred: str) -> bool:
        """Ontology properties, and (entity, entity, number) facts, go to the inferred table."""
        rel = self.engine.relations.get(pred)
        if rel is None or not rel.cols:
            return False
        if rel.arity == 2 and pred not in self.outputs:
            return False
        kinds = [c.dtype.kind for c in rel.cols]
        return kinds in (["i", "i"], ["i", "i", "f"])

    def entity_json(self) -> pa.Array:
        """JSON text of every engine constant by value: node ids, then interned symbols."""
        if self._entity_json is None:
            self._entity_json = pa.concat_arrays([json_quote(self.ids), json_quote(self.symbols)])
        return self._entity_json

    def premise_writer(self) -> PremiseWriter:
        return PremiseWriter(self.engine, self.sources, self.entity_json(), self.writable)

    def inferred_table(self, writer: PremiseWriter | None = None) -> pa.Table:
        """Every derived fact of a stored predicate, with one derivation, plus ownership."""
        return pa.concat_tables(list(self.inferred_parts(writer)))

    def inferred_parts(
        self, writer: PremiseWriter | None = None, slice_rows: int = 500_000
    ) -> Iterator[pa.Table]:
        """`inferred_table` in slices of at most `slice_rows` facts, built as they are asked
        for: the derivations of a million-customer bank do not fit in memory at once."""
        writer = writer or self.premise_writer()
        for pred, rel in self.engine.relations.items():
            if not self.writable(pred):
                continue
            rows = rel.live_rows()
            rows = rows[rel.rule[rows] != EXPLICIT]
            for start in range(0, len(rows), slice_rows):
                yield self.rows_table(writer, pred, rows[start : start + slice_rows])
        yield self.ownership_table()

    def inferred_columns(
        self,
        ownership: bool = True,
        slice_rows: int = 200_000,
        done: StrataDone | None = None,
    ) -> Iterator[InferredColumns]:
        """`inferred_parts` for a store that takes `InferredColumns`: node ids, premises as
        records, each predicate in (src, dst) order and in slices built as they are asked for.

        With `done`, the fixpoint is still running on another thread: predicates come in
        stratum order, each once its stratum (and so every premise it can have) is done.
        Slices are smaller than `inferred_parts`' since their arrays sit beside the fixpoint's
        (at a million customers the two together peak near 6 GiB)."""
        records = PremiseRecords(self.premise_writer(), self.ids.is_valid().to_numpy(False))
        stratum_of = {p: k for k, st in enumerate(self.engine.strata) for p in st.preds}
        for pred in sorted(self.engine.relations, key=lambda p: stratum_of.get(p, -1)):
            if done is not None:
                done.wait(stratum_of.get(pred, -1))
            rel = self.engine.relations[pred]
            if not self.writable(pred):
                continue
            rows = rel.live_rows()
            rows = rows[rel.rule[rows] != EXPLICIT]
            src, dst = rel.cols[0][rows], rel.cols[1][rows]
            rows = rows[records.nodes(src) & records.nodes(dst)]
            # key order; of equal keys (a ternary fact with two values) the last row wins
            keys = (rel.cols[0][rows] << 32) | rel.cols[1][rows]
            order = np.argsort(keys, kind="stable" if rel.arity > 2 else None)
            rows = rows[order]
            for start in range(0, len(rows), slice_rows):
                part = rows[start : start + slice_rows]
                value = rel.cols[2][part] if rel.arity == 3 else np.full(len(part), np.nan)
                yield InferredColumns(
                    pred,
                    rel.cols[0][part],
                    rel.cols[1][part],
                    records.rule_names(rel.rule[part]),
                    value.astype(np.float64),
                    records.premises(pred, part),
                    tuple(records.names),
                )
        if ownership:
            if done is not None:
                done.wait(len(self.engine.strata) - 1)
            yield from self.ownership_columns(records)

    def ownership_columns(self, records: PremiseRecords) -> Iterator[InferredColumns]:
        """`ownership_table` as `InferredColumns`."""
        share, ubo = self.ownership_facts()
        for pred, rule, premise, (src, dst, value) in (
            ("effectiveShare", OWNERSHIP_RULE, SHARE_PREMISE, share),
            ("beneficialOwnerOf", UBO_RULE, None, ubo),
        ):
            order = np.lexsort((dst, src))
            n = len(order)
            yield InferredColumns(
                pred,
                src[order],
                dst[order],
                np.full(n, records.name(rule), np.int32),
                value[order],
                records.constant(premise, n),
                tuple(records.names),
            )

    def rows_table(self, writer: PremiseWriter, pred: str, rows: IntArray) -> pa.Table:
        """Rows of one stored predicate in the store's inferred layout."""
        rel = self.engine.relations[pred]
        # only facts between nodes can be stored
        on_nodes = np.ones(len(rows), bool)
        for col in rel.cols[:2]:
            values = col[rows]
            on_nodes &= (values >= 0) & (values < self.symbol_base)
        rows = rows[on_nodes]
        if not len(rows):
            return INFERRED_SCHEMA.empty_table()
        rule_ids = pa.array([r.id for r in self.engine.rules], pa.string())
        value = rel.cols[2][rows] if rel.arity == 3 else None
        return pa.table(
            {
                "predicate": pa.array([pred], pa.string()).take(
                    pa.array(np.zeros(len(rows), np.int64))
                ),
                "src": self.ids.take(pa.array(rel.cols[0][rows])),
                "dst": self.ids.take(pa.array(rel.cols[1][rows])),
                "rule": rule_ids.take(pa.array(rel.rule[rows].astype(np.int64))),
                "premises": writer.lists(pred, rows).cast(pa.large_string()),
                "value": pa.nulls(len(rows), pa.float64())
                if value is None
                else pa.array(value, pa.float64()),
            },
            schema=INFERRED_SCHEMA,
        )

    def ownership_facts(
        self, among: IntArray | None = None
    ) -> tuple[OwnershipFacts, OwnershipFacts]:
        """(person, company, percent) of effective shares of natural persons, and (person,
        company, NaN) of their UBO facts, as nids; only of `among` (natural persons) when
        given."""
        persons = self.labels.get(Label.PERSON, np.empty(0, np.int64))
        if not self.shares:
            none = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
            return none, none
        eff = self.effective_shares()
        if among is not None:
            persons = among
            keep = np.isin(eff.person, persons)
            eff = EffectiveOwnership(eff.person[keep], eff.company[keep], eff.share[keep])
        rel = self.engine.relations.get("controls")
        ctl = None
        if rel is not None and rel.cols:
            # an update reaches few persons: their control facts through the column's index
            rows = rel.live_rows() if among is None else rel.lookup(0, persons)
            if among is not None and rel.live is not None:
                rows = rows[rel.live[rows]]
            ctl = (rel.cols[0][rows], rel.cols[1][rows])
        ubo_p, ubo_c = beneficial_owners(eff, ctl, persons)
        return (
            (eff.person, eff.company, eff.share * 100.0),
            (ubo_p, ubo_c, np.full(len(ubo_p), np.nan)),
        )

    def effective_shares(self) -> EffectiveOwnership:
        """Effective shares of natural persons from the loaded shareholdings (solved once
        per load: they do not depend on the rules)."""
        with self._effective_lock:  # materialise solves it on a thread; others wait
            if self._effective is None:
                persons = self.labels.get(Label.PERSON, np.empty(0, np.int64))
                holder = np.concatenate([s[0] for s in self.shares])
                company = np.concatenate([s[1] for s in self.shares])
                fraction = np.concatenate([s[2] for s in self.shares])
                self._effective = effective_ownership(holder, company, fraction, persons)
            return self._effective

    def ownership_table(self, among: IntArray | None = None) -> pa.Table:
        """Effective shares (percent) of natural persons and their UBO facts (only of the
        natural persons `among` when given)."""
        if not self.shares:
            return INFERRED_SCHEMA.empty_table()
        (person, company, share), (ubo_p, ubo_c, _) = self.ownership_facts(among)
        share_rule = json.dumps([SHARE_PREMISE])
        n, m = len(person), len(ubo_p)
        constant = np.zeros(n + m, np.int64)
        constant[n:] = 1
        return pa.table(
            {
                "predicate": pa.array(["effectiveShare", "beneficialOwnerOf"]).take(constant),
                "src": self.ids.take(pa.array(np.concatenate([person, ubo_p]))),
                "dst": self.ids.take(pa.array(np.concatenate([company, ubo_c]))),
                "rule": pa.array([OWNERSHIP_RULE, UBO_RULE]).take(constant),
                "premises": pa.array([share_rule, "[]"], pa.large_string()).take(constant),
                "value": pa.array(
                    np.concatenate([share, np.full(m, np.nan)]),
                    pa.float64(),
                    from_pandas=True,
                ),
            },
            schema=INFERRED_SCHEMA,
        )


_NO_FIDS = np.empty(0, np.int64)


EdgeFacts = tuple[str, SourceChunk, tuple[Array, ...]]


def edge_facts(rel_type: RelType, batch: pa.Table) -> list[EdgeFacts]:
    """The input facts a batch of stored edges (integer ends) stands for, with their source."""
    src = batch.column("src").to_numpy().astype(np.int64)
    dst = batch.column("dst").to_numpy().astype(np.int64)
    keys = batch.column("key").combine_chunks()
    out: list[EdgeFacts] = []

    def add(pred: str, mask: npt.NDArray[np.bool_] | None, *cols: Array) -> None:
        chunk = SourceChunk(_NO_FIDS, src, dst, rel_type.value, keys)
        if mask is not None:
            chunk = chunk.take(np.flatnonzero(mask))
        out.append((pred, chunk, tuple(cols)))

    if rel_type in SIMPLE_EDGES:
        add(SIMPLE_EDGES[rel_type], None, src, dst)
    elif rel_type is RelType.HOLDS_SHARES:
        share = _floats(batch, "share_pct")
        voting = _floats(batch, "voting_pct")
        voting = np.where(np.isnan(voting), share, voting)
        add("holdsShares", None, src, dst)
        ok = ~np.isnan(voting)
        add("votingPct", ok, src[ok], dst[ok], voting[ok])
        ok = ~np.isnan(share)
        add("sharePct", ok, src[ok], dst[ok], share[ok])
    elif rel_type is RelType.HOLDS_POSITION:
        role = _strings(batch, "role")
        # a position without a role column is keyed by its role
        roles = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(role), 0), False), role, keys)
        add("holdsPosition", None, src, dst)
        for name, pred in ROLE_PREDICATES.items():
            m = _equals(roles, name)
            if m.any():
                add(pred, m, src[m], dst[m])
    elif rel_type is RelType.RELATIVE_OF:
        relation = _strings(batch, "relation")
        add("relativeOf", None, src, dst)
        for name, pred in (("spouse", "spouseOf"), ("sibling", "siblingOf")):
            m = _equals(relation, name)
            if m.any():
                add(pred, m, src[m], dst[m])
        m = _equals(relation, "parent")  # dst is src's parent
        if m.any():
            add("parentOf", m, dst[m], src[m])
        m = _equals(relation, "child")  # dst is src's child
        if m.any():
            add("parentOf", m, src[m], dst[m])
    return out


def _floats(batch: pa.Table, name: str) -> npt.NDArray[np.float64]:
    if name not in batch.column_names:
        return np.full(batch.num_rows, np.nan)
    col = batch.column(name).cast(pa.float64())
    return np.asarray(col.to_numpy(zero_copy_only=False), np.float64)


def _strings(batch: pa.Table, name: str) -> pa.Array:
    if name not in batch.column_names:
        return pa.nulls(batch.num_rows, pa.string())
    return batch.column(name).combine_chunks().cast(pa.string())


def _equals(values: pa.Array, text: str) -> npt.NDArray[np.bool_]:
    mask = pc.fill_null(pc.equal(values, text), False)
    return np.asarray(mask.to_numpy(zero_copy_only=False), bool)


def relevant_predicates(rules: Sequence[Rule], outputs: Iterable[str]) -> set[str]:
    """Predicates a stored fact can depend on: the heads that are stored (ontology
    properties, and entity-entity-number facts such as `votingPower`), and, recursively,
    every predicate in the body of a rule for one of them."""
    heads: dict[str, list[Rule]] = {}
    for rule in rules:
        heads.setdefault(rule.head_pred, []).append(rule)
    stored = set(outputs)
    todo = [p for p, rs in heads.items() if p in stored or any(len(r.head_args) == 3 for r in rs)]
    needed = set(todo)
    while todo:
        pred = todo.pop()
        for rule in heads.get(pred, []):
            for lit in rule.body:
                if isinstance(lit, Comparison):
                    continue
                atom = lit.atom if isinstance(lit, Negation) else lit
                if atom.pred not in needed:
                    needed.add(atom.pred)
                    todo.append(atom.pred)
    return needed


def load_graph(store: GraphStore, rules: Sequence[Rule] | None = None) -> KnowledgeGraphFacts:
    """The stored graph as engine facts (not yet evaluated)."""
    kg = KnowledgeGraphFacts(default_rules() if rules is None else rules)
    kg.load(store)
    return kg


def materialise(
    store: GraphStore,
    rules: Sequence[Rule] | None = None,
    *,
    progress: bool = False,
    ownership: bool = True,
) -> ReasoningSummary:
    """Recompute every inferred fact of the store and replace the stored ones atomically.

    Args:
        store: the graph store to read base facts from and write inferred facts to.
        rules: rules to evaluate; default: ontology axioms + `reasoning/rules/banking.dl`.
        progress: print the stages and their timings to stderr.
        ownership: also write `effectiveShare` and `beneficialOwnerOf`.

    Example:
        >>> summary = materialise(store)  # doctest: +SKIP
        >>> summary.per_predicate["controls"]  # doctest: +SKIP
        42
    """
    start = time.perf_counter()

    def say(msg: str) -> None:
        if progress:
            print(f"[reason {time.perf_counter() - start:7.2f}s] {msg}", file=sys.stderr)

    stages: dict[str, float] = {}
    mark = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages[name] = now - mark
        mark = now

    kg = load_graph(store, rules)
    stage("load")
    say(f"loaded {kg.facts_in} facts")
    columns = store.capabilities.inferred_columns and isinstance(store, InferredColumnWrites)
    done = StrataDone()
    with ThreadPoolExecutor(max_workers=2) as pool:
        # effective ownership is a sparse linear system (SciPy releases the GIL): solved
        # beside the fixpoint, which it does not depend on
        shares = pool.submit(kg.effective_shares) if ownership and kg.shares else None
        # The fixpoint runs on a thread; the derivations of each stratum are built and
        # written as soon as it is done, while later strata are still evaluated.
        fixpoint = pool.submit(_run_fixpoint, kg.engine, done)
        try:
            if columns:
                assert isinstance(store, InferredColumnWrites)
                per_pred, building, writing = _write_columns(store, kg, ownership, done)
            else:
                done.wait(len(kg.engine.strata) - 1)
                per_pred, building, writing = _write_tables(store, kg, ownership)
        except BaseException as exc:
            failure = fixpoint.exception()  # the fixpoint's own error explains a failed wait
            if failure is not None:
                raise failure from exc
            raise
        stats, fixpoint_seconds = fixpoint.result()
        if shares is not None:
            shares.result()
    say(f"fixpoint: {stats.derived} facts in {stats.iterations} rounds")
    written = sum(per_pred.values())
    stage("fixpoint+premises+write")
    # the same span by what it spent on: the fixpoint (on its own thread), building
    # derivations and waiting for the store's writes (on this one, overlapping the fixpoint)
    stages["fixpoint"] = fixpoint_seconds
    stages["premises"], stages["write"] = building - done.waited, writing
    summary = ReasoningSummary(
        facts_in=kg.facts_in,
        inferred=stats.derived,
        written=written,
        iterations=stats.iterations,
        seconds=time.perf_counter() - start,
        per_predicate=per_pred,
        stages=stages,
    )
    say("done")
    return summary


class StrataDone:
    """How far a fixpoint running on another thread has come: `wait(k)` returns once
    stratum k is done (at once for k < 0), and raises if the fixpoint failed."""

    def __init__(self) -> None:
        self._done = -1
        self._failed = False
        self._changed = threading.Condition()
        self.waited = 0.0  # seconds spent in `wait`

    def mark(self, stratum: int) -> None:
        with self._changed:
            self._done = stratum
            self._changed.notify_all()

    def fail(self) -> None:
        with self._changed:
            self._failed = True
            self._changed.notify_all()

    def wait(self, stratum: int) -> None:
        start = time.perf_counter()
        with self._changed:
            while self._done < stratum and not self._failed:
                self._changed.wait()
            self.waited += time.perf_counter() - start
            if self._done < stratum:
                raise EngineError("the fixpoint failed; see the error it raised")


def _run_fixpoint(engine: Engine, done: StrataDone) -> tuple[RunStats, float]:
    """Run the fixpoint, telling `done` of each stratum; returns its stats and seconds."""
    start = time.perf_counter()
    try:
        stats = engine.run(after_stratum=done.mark)
    except BaseException:
        done.fail()
        raise
    return stats, time.perf_counter() - start


def _write_columns(
    store: InferredColumnWrites, kg: KnowledgeGraphFacts, ownership: bool, done: StrataDone
) -> tuple[dict[str, int], float, float]:
    """Replace the inferred facts through `replace_inferred_columns`; returns the facts per
    predicate and the seconds spent building parts and writing them."""
    per_pred: dict[str, int] = {}
    building = 0.0
    total = time.perf_counter()

    def parts() -> Iterator[InferredColumns]:
        nonlocal building
        source = kg.inferred_columns(ownership, done=done)
        while True:
            t0 = time.perf_counter()
            part = next(source, None)
            building += time.perf_counter() - t0
            if part is None:
                return
            if len(part):
                per_pred[part.predicate] = per_pred.get(part.predicate, 0) + len(part)
                yield part

    store.replace_inferred_columns(parts())
    return per_pred, building, time.perf_counter() - total - building


def _write_tables(
    store: GraphStore, kg: KnowledgeGraphFacts, ownership: bool
) -> tuple[dict[str, int], float, float]:
    """Replace the inferred facts through `replace_inferred` and `apply_inferred_delta`
    (premises as JSON); returns as `_write_columns`."""
    per_pred: dict[str, int] = {}
    empty = INFERRED_SCHEMA.empty_table()
    # Derivations are built slice by slice as they are written, inside one transaction:
    # the store switches to the new facts all at once, and memory stays bounded.
    building = writing = 0.0
    with store.transaction():
        store.replace_inferred(empty)
        parts = kg.inferred_parts()
        while True:
            t0 = time.perf_counter()
            part = next(parts, None)
            building += time.perf_counter() - t0
            if part is None:
                break
            if not ownership:
                part = part.filter(
                    pc.invert(
                        pc.is_in(
                            part.column("predicate"),
                            value_set=pa.array(["effectiveShare", "beneficialOwnerOf"]),
                        )
                    )
                )
            if not part.num_rows:
                continue
            t0 = time.perf_counter()
            store.apply_inferred_delta(part, empty)
            writing += time.perf_counter() - t0
            counts = part.group_by("predicate").aggregate([("predicate", "count")])
            for predicate, count in zip(
                counts.column("predicate").to_pylist(),
                counts.column("predicate_count").to_pylist(),
                strict=True,
            ):
                per_pred[predicate] = per_pred.get(predicate, 0) + count
    return per_pred, building, writing
