"""The `GraphStore` protocol: what every store (SQLite, Neo4j) must do.

Writes take columnar batches (`pyarrow.Table`) so that millions of rows move without a Python
object per row. Every node gets a stable integer `nid` from its store; projections and the
reasoner work on nids and translate back to ids only at the edges of the system.

Batch layouts (column names; properties are the ones in `kg.model` schemas, all optional,
unknown columns are kept as extra properties):

- nodes: `id`, property columns, `_source`, `_line`, `_job`
- edges: `src`, `dst` (resolved entity ids, strings), `key` (str, "" when the type has no
  key property), property columns, `_source`, `_line`, `_job`
- aliases: `alias`, `id`
- transactions: `txn_id`, `from_account`, `to_account`, `amount`, `ts`, `channel`,
  `_source`, `_line`, `_job`
- inferred: `predicate`, `src`, `dst` (ids), `rule`, `premises` (JSON text), `value`
  (float or null); a store with `capabilities.inferred_columns` also takes them as
  `InferredColumns` (nids, premises as records) for a full replace

Reads for analytics (`edge_batches`, `node_batches`, `inferred_batches`) stream tables with
integer `src`/`dst`/`nid` columns (int64) instead of string ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from kg.id_index import NodeIdIndex
from kg.model import (
    NODE_SCHEMAS,
    REL_SCHEMAS,
    Direction,
    Edge,
    InferredFact,
    Label,
    Node,
    PropType,
    RelType,
)

SCHEMA_VERSION = 6

# Why `upsert_edges` refuses TRANSFERRED edges (every store says the same).
TRANSFERS_DERIVED = (
    "TRANSFERRED edges are aggregated from transactions: insert the transactions and call "
    "rebuild_transfers()"
)

# How each property type of the model travels in a batch (dates and timestamps as ISO text).
ARROW_TYPES: dict[PropType, pa.DataType] = {
    "str": pa.string(),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "date": pa.string(),
    "timestamp": pa.string(),
}


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """What a store does natively; callers branch on these, never on exceptions."""

    name: str
    # The store can run variable-length path queries itself (Cypher `*1..n`).
    native_path_queries: bool
    # Readers never block while a writer holds a transaction.
    concurrent_readers: bool
    # Full-text search on names is backed by an index of the store.
    fulltext_search: bool
    # The store hands over whole columns at once (`ColumnarReads`), e.g. from a kept copy.
    columnar_reads: bool = False
    # The store takes inferred facts as node-id columns with structured premises
    # (`InferredColumnWrites`), so a full materialisation never builds premises JSON.
    inferred_columns: bool = False


class StoreError(RuntimeError):
    """A store operation failed; the message names what and where."""


class SchemaVersionError(StoreError):
    """The store was written by a newer riskgraph than this one."""


@runtime_checkable
class GraphStore(Protocol):
    capabilities: StoreCapabilities

    # --- lifecycle ------------------------------------------------------------------
    def close(self) -> None: ...

    def schema_version(self) -> int: ...

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together or not at all (one ingest job = one transaction).

        Nested use joins the outer transaction.
        """
        ...

    def bulk_load(self) -> AbstractContextManager[None]:
        """Inside `transaction()`: many rows follow. A store may defer index maintenance to
        the end of the block (the SQLite store does when it is empty); semantics are
        unchanged."""
        ...

    # --- writes ---------------------------------------------------------------------
    def upsert_nodes(self, label: Label, rows: pa.Table) -> int:
        """Insert or update nodes by `id`; properties of an existing node are merged
        (non-null values win). A node keeps the provenance of the row that created it.
        Returns the number of rows written."""
        ...

    def upsert_edges(self, rel_type: RelType, rows: pa.Table) -> int:
        """Insert or update edges by (src, dst, key). Both ends must exist. An edge carries
        the provenance of the latest row that wrote it. TRANSFERRED edges are refused
        (`TRANSFERS_DERIVED`): `rebuild_transfers` derives them from the transactions."""
        ...

    def add_aliases(self, rows: pa.Table) -> int:
        """Record other customer numbers of an entity (`alias` -> `id`)."""
        ...

    def insert_transactions(self, rows: pa.Table) -> int:
        """Keep individual transactions (idempotent by txn_id)."""
        ...

    def rebuild_transfers(self) -> int:
        """Recompute the aggregated TRANSFERRED edges from all stored transactions."""
        ...

    # --- point reads ----------------------------------------------------------------
    def resolve(self, entity_id: str) -> str | None:
        """The canonical id for an id or an alias, or None when unknown."""
        ...

    def get_node(self, entity_id: str) -> Node | None:
        """A node by id or alias."""
        ...

    def get_nodes_by_nid(self, nids: Sequence[int]) -> list[Node]: ...

    def aliases_of(self, entity_id: str) -> list[str]: ...

    def aliases_of_many(self, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        """The aliases of many canonical ids in a few round trips: each id that has any,
        with its aliases sorted (ids without aliases, and aliases given as ids, are left out)."""
        ...

    def find_nodes(self, label: Label, prop: str, values: Sequence[str]) -> dict[str, str]:
        """Map each given property value to the id of a node that has it (entity resolution)."""
        ...

    def neighbours(
        self, entity_id: str, rel_type: RelType, direction: Direction = Direction.BOTH
    ) -> list[Edge]: ...

    def search(self, query: str, limit: int = 20) -> list[Node]:
        """Nodes whose name contains the query, or whose id, alias, id_number or uscc
        equals it. Exact matches first."""
        ...

    def count_nodes(self, label: Label | None = None) -> int: ...

    def count_edges(self, rel_type: RelType | None = None) -> int: ...

    def count_transactions(self) -> int: ...

    # --- streaming reads for projections ----------------------------------------------
    def node_batches(
        self, label: Label | None = None, batch_size: int = 500_000
    ) -> Iterator[pa.Table]:
        """Columns `nid` (int64), `id`, `label`, then the label's properties."""
        ...

    def edge_batches(self, rel_type: RelType, batch_size: int = 500_000) -> Iterator[pa.Table]:
        """Columns `src`, `dst` (int64 nids), `key`, then the type's properties."""
        ...

    def transaction_batches(self, batch_size: int = 500_000) -> Iterator[pa.Table]: ...

    # --- inferred facts -------------------------------------------------------------
    def replace_inferred(self, rows: pa.Table, predicates: Sequence[str] | None = None) -> int:
        """Replace the stored inferred facts (all of them, or only those of `predicates`)."""
        ...

    def apply_inferred_delta(self, added: pa.Table, removed: pa.Table) -> None:
        """Add and retract inferred facts (incremental reasoning); columns as for inferred."""
        ...

    def inferred_batches(
        self, predicate: str | None = None, batch_size: int = 500_000
    ) -> Iterator[pa.Table]:
        """Columns `predicate`, `src`, `dst` (int64 nids), `rule`, `value`."""
        ...

    def get_inferred(
        self, src: str, predicate: str | None = None, dst: str | None = None
    ) -> list[InferredFact]: ...

    def count_inferred(self, predicate: str | None = None) -> int: ...

    # --- documents: job records, reject reports, ring runs, precomputed indexes ----------
    def put_document(self, collection: str, key: str, body: dict[str, Any]) -> None: ...

    def get_document(self, collection: str, key: str) -> dict[str, Any] | None: ...

    def list_documents(self, collection: str) -> list[tuple[str, dict[str, Any]]]: ...

    def delete_documents(self, collection: str, keys: Sequence[str] | None = None) -> int: ...


# --- whole-column reads for projections ------------------------------------------------------
NODE_COLUMNS = ("nid", "id", "label")


def edge_schema(rel_type: RelType) -> pa.Schema:
    """The columns `edge_batches` streams for a relationship type."""
    fields = [("src", pa.int64()), ("dst", pa.int64()), ("key", pa.string())]
    fields += [(p, ARROW_TYPES[k]) for p, k in REL_SCHEMAS[RelType(rel_type)].props.items()]
    return pa.schema(fields)


@runtime_checkable
class ColumnarReads(Protocol):
    """Optional reads of a store that declares `capabilities.columnar_reads`."""

    def node_columns(self) -> pa.Table:
        """Columns `nid` (int64, ascending), `id`, `label` (string or dictionary) of all nodes."""
        ...

    def edge_columns(self, rel_type: RelType, columns: Sequence[str] | None = None) -> pa.Table:
        """All edges of a type in `edge_batches` order: `src`, `dst` (int64 nids), then the
        chosen columns of `edge_batches` (all of them when None)."""
        ...

    def node_property_columns(self, label: Label, columns: Sequence[str]) -> pa.Table:
        """`nid` (int64, ascending) and the chosen properties of the nodes of a label that
        have a stored property row (the others have no property)."""
        ...


def node_columns(store: GraphStore) -> pa.Table:
    """Columns `nid` (int64, ascending), `id`, `label` of every node, in one table.

    From the store's own columnar read when it declares one, else from `node_batches`.

    Example:
        >>> from kg.sqlite_store import SQLiteStore
        >>> node_columns(SQLiteStore(":memory:")).column_names
        ['nid', 'id', 'label']
    """
    if store.capabilities.columnar_reads and isinstance(store, ColumnarReads):
        return store.node_columns()
    schema = pa.schema([("nid", pa.int64()), ("id", pa.string()), ("label", pa.string())])
    parts = [batch.select(list(NODE_COLUMNS)).cast(schema) for batch in store.node_batches()]
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    return table.sort_by("nid")


def edge_columns(
    store: GraphStore, rel_type: RelType, columns: Sequence[str] | None = None
) -> pa.Table:
    """All edges of a type as one table: `src`, `dst` (int64 nids), then `columns` (all the
    columns of `edge_batches` when None).

    From the store's own columnar read when it declares one, else from `edge_batches`.
    """
    if store.capabilities.columnar_reads and isinstance(store, ColumnarReads):
        return store.edge_columns(rel_type, columns)
    parts = list(store.edge_batches(rel_type))
    table = pa.concat_tables(parts) if parts else edge_schema(rel_type).empty_table()
    if columns is None:
        return table
    return table.select(["src", "dst", *(c for c in columns if c not in ("src", "dst"))])


# --- inferred facts with structured premises ---------------------------------------------------
class PremiseKind:
    """The kinds of premise record (`Premises.kind`), one per shape of `InferredFact.premises`."""

    EDGE = 1  # {"kind": "edge", "type": name, "src": id(a), "dst": id(b), "key": text}
    NODE = 2  # {"kind": "node", "id": id(a)}, plus "prop": name unless name is -1
    INFERRED = 3  # {"kind": "inferred", "predicate": name, "src": id(a), "dst": id(b)}
    # {"kind": "derived", "predicate": name, "args": text (a JSON array), "rule": rule or
    # null, "premises": [the records of its subtree]}
    DERIVED = 4
    DERIVED_LEAF = 5  # as DERIVED without the "premises" key
    JSON = 6  # one premise given as JSON text
    JSON_LIST = 7  # the whole premises list given as JSON text (the only record of its fact)


@dataclass(frozen=True, slots=True)
class Premises:
    """The premises of a run of inferred facts as records, each fact's in one contiguous
    range in preorder: a DERIVED record is followed by the records of its own premises.

    `name` and `rule` index `names` (-1: none); `size` counts the records of a record's
    subtree, itself included; `text` holds the edge key, the derived args, or JSON.
    """

    offsets: npt.NDArray[np.int64]  # fact i's records: [offsets[i], offsets[i + 1])
    kind: npt.NDArray[np.int8]
    name: npt.NDArray[np.int32]
    rule: npt.NDArray[np.int32]
    a: npt.NDArray[np.int32]  # node ids
    b: npt.NDArray[np.int32]
    size: npt.NDArray[np.int32]
    text: pa.Array  # large_string, one per record ("" when unused)


@dataclass(frozen=True, slots=True)
class InferredColumns:
    """Inferred facts of one predicate with node ids for ends, in (src, dst) order.

    `rule` and the premises' `name`/`rule` index `names`; `value` is NaN where a fact has
    none.
    """

    predicate: str
    src: npt.NDArray[np.int64]
    dst: npt.NDArray[np.int64]
    rule: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    premises: Premises
    names: Sequence[str]

    def __len__(self) -> int:
        return len(self.src)


@runtime_checkable
class InferredColumnWrites(Protocol):
    """Optional write of a store that declares `capabilities.inferred_columns`."""

    def replace_inferred_columns(self, parts: Iterable[InferredColumns]) -> int:
        """Replace every stored inferred fact by `parts` (consecutive parts of a predicate
        continue each other in (src, dst) order; of equal keys the last wins). Returns the
        facts written."""
        ...


@runtime_checkable
class InferredDeltaWrites(Protocol):
    """Optional preparation of a store for many small `apply_inferred_delta` calls."""

    def prepare_inferred_deltas(self) -> None:
        """Load what fast delta writes need (a long-lived incremental reasoner calls this
        once on opening instead of its first update paying for it)."""
        ...


@runtime_checkable
class LentNodeIndex(Protocol):
    """Optional: a store that keeps its node ids in memory during a bulk load lends them to
    the ingest job, which looks every reference up there once; the store's own look-up of
    the same column to write it is then remembered (`NodeIdIndex.lookup`), not repeated."""

    def bulk_node_index(self) -> NodeIdIndex | None:
        """The ids of every node stored or written so far in the running bulk load (None
        outside one)."""
        ...


def node_property_columns(store: GraphStore, label: Label, columns: Sequence[str]) -> pa.Table:
    """`nid` and the chosen properties of the nodes of a label (nodes without any stored
    property may be left out), ascending by nid.

    From the store's own columnar read when it declares one, else from `node_batches`.
    """
    if store.capabilities.columnar_reads and isinstance(store, ColumnarReads):
        return store.node_property_columns(label, columns)
    parts = [batch.select(["nid", *columns]) for batch in store.node_batches(label)]
    if parts:
        return pa.concat_tables(parts)
    fields = [("nid", pa.int64())] + [
        (c, ARROW_TYPES[NODE_SCHEMAS[label].props[c]]) for c in columns
    ]
    return pa.schema(fields).empty_table()
