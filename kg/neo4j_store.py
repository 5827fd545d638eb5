"""The `GraphStore` on a Neo4j 5 server over Bolt, with the official `neo4j` driver.

The graph shape and every query are in `kg.cypher`. Writes go in `UNWIND $rows` batches; a
job's writes share one explicit driver transaction (`transaction()`), so they commit together
or not at all. Reads inside a job see its uncommitted writes; reads outside one run as
auto-routed read queries.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kg import cypher
from kg.model import (
    NODE_SCHEMAS,
    PROVENANCE_COLUMNS,
    REL_SCHEMAS,
    Direction,
    Edge,
    InferredFact,
    Label,
    Node,
    PropType,
    Provenance,
    RelType,
)
from kg.store import (
    ARROW_TYPES,
    SCHEMA_VERSION,
    SchemaVersionError,
    StoreCapabilities,
    StoreError,
)

if TYPE_CHECKING:
    import neo4j

_CAST_TYPES: dict[PropType, pa.DataType] = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}
# Rows per UNWIND: big enough to amortise a round trip, small enough for the server's heap.
WRITE_BATCH_ROWS = 5_000
# Batches converted ahead of the one being written: bounds client memory, overlaps the
# Python-side conversion with the server's work.
BATCHES_IN_FLIGHT = 2
_INDEX_WAIT_S = 300
_LABEL_NAMES = frozenset(label.value for label in Label)


def _import_driver() -> Any:
    try:
        import neo4j
    except ImportError as error:
        raise StoreError(
            "the Neo4j store needs the neo4j Python driver: pip install 'riskgraph[neo4j]'"
        ) from error
    return neo4j


def _plain(value: Any) -> Any:
    """A value as Neo4j stores it and the SQLite store returns it (ISO text for dates)."""
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _column_values(table: pa.Table, name: str, kind: PropType | None = None) -> list[Any]:
    """A column as Python values, cast to the property's type from the model."""
    if name not in table.column_names:
        return [None] * table.num_rows
    column = table.column(name)
    if kind in _CAST_TYPES and column.type != _CAST_TYPES[kind]:
        try:
            column = column.cast(_CAST_TYPES[kind])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise StoreError(f"column {name} is not a {kind}: {error}") from error
    if kind in ("str", "date", "timestamp") and pa.types.is_integer(column.type):
        column = column.cast(pa.string())
    return [None if v is None else _plain(v) for v in column.to_pylist()]


def _props_rows(
    table: pa.Table, kinds: dict[str, PropType], reserved: set[str]
) -> list[dict[str, Any]]:
    """One dict of non-null properties per row: schema columns typed, unknown columns kept."""
    columns = {
        name: _column_values(table, name, kinds.get(name))
        for name in table.column_names
        if name not in reserved
    }
    return [
        {name: values[i] for name, values in columns.items() if values[i] is not None}
        for i in range(table.num_rows)
    ]


def _provenance_columns(table: pa.Table) -> list[list[Any]]:
    return [_column_values(table, name) for name in PROVENANCE_COLUMNS]


def _label_of(labels: Sequence[str]) -> Label:
    for name in labels:
        if name in _LABEL_NAMES:
            return Label(name)
    raise StoreError(f"a node has none of the model's labels: {list(labels)}")


def _provenance_of(props: dict[str, Any]) -> list[Any]:
    return [props.get(column) for column in PROVENANCE_COLUMNS]


def _node(record: Any) -> Node:
    props = dict(record["props"])
    source, line, job = _provenance_of(props)
    user_props = {k: v for k, v in props.items() if k not in cypher.NODE_INTERNAL_PROPS}
    provenance = (
        Provenance(source, int(line), job) if source is not None and line is not None else None
    )
    return Node(
        int(record["nid"]), str(record["id"]), _label_of(record["labels"]), user_props, provenance
    )


def _edge(rel_type: RelType, record: Any) -> Edge:
    props = dict(record["props"])
    source, line, job = _provenance_of(props)
    user_props = {k: v for k, v in props.items() if k not in cypher.EDGE_INTERNAL_PROPS}
    provenance = Provenance(source, int(line), job) if line is not None else None
    return Edge(
        rel_type,
        str(record["src"]),
        str(record["dst"]),
        str(record["key"]),
        user_props,
        provenance,
    )


def _typed_table(columns: dict[str, list[Any]], fields: list[tuple[str, pa.DataType]]) -> pa.Table:
    return pa.table(
        {name: pa.array(columns[name], type=type_) for name, type_ in fields},
        schema=pa.schema(fields),
    )


class Neo4jStore:
    """The `GraphStore` on a Neo4j 5 server.

    Example:
        >>> store = Neo4jStore("bolt://127.0.0.1:7687", "neo4j", "secret")  # doctest: +SKIP
        >>> store.count_nodes()  # doctest: +SKIP
        0
    """

    capabilities = StoreCapabilities(
        name="neo4j",
        native_path_queries=True,
        # Reads are read-committed and take no locks: they never wait for a writing job.
        concurrent_readers=True,
        # Name search uses a text index (CONTAINS), not a full-text (Lucene) index.
        fulltext_search=False,
    )

    def __init__(
        self,
        uri: str,
        user: str = "neo4j",
        password: str = "",
        *,
        database: str | None = None,
        write_batch_rows: int = WRITE_BATCH_ROWS,
    ) -> None:
        """Connect lazily to the server at `uri`; schema and indexes are made on first use.

        Args:
            uri: Bolt or neo4j URI, e.g. `neo4j://graph.bank.internal:7687`.
            user: the database user.
            password: its password; empty for a server without authentication.
            database: the database name; None means the server's default.
            write_batch_rows: rows per `UNWIND` write.
        """
        self._neo4j = _import_driver()
        self.uri = uri
        self.database = database
        self.write_batch_rows = write_batch_rows
        auth = (user, password) if password else None
        self._driver: neo4j.Driver = self._neo4j.GraphDatabase.driver(uri, auth=auth)
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    # --- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._driver.close()

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            statements = list(cypher.SCHEMA_STATEMENTS)
            for label in (Label.PERSON, Label.COMPANY):
                for prop in cypher.INDEXED_NODE_PROPS:
                    if prop in NODE_SCHEMAS[label].props:
                        statements.append(cypher.render(cypher.PROP_INDEX, label=label, prop=prop))
            try:
                for statement in statements:
                    self._driver.execute_query(statement, database_=self.database)
                self._driver.execute_query(
                    cypher.AWAIT_INDEXES, {"seconds": _INDEX_WAIT_S}, database_=self.database
                )
                records, _, _ = self._driver.execute_query(
                    cypher.STORE_INIT, {"version": SCHEMA_VERSION}, database_=self.database
                )
            except self._neo4j.exceptions.Neo4jError as error:
                raise StoreError(f"cannot prepare the store at {self.uri}: {error}") from error
            except self._neo4j.exceptions.DriverError as error:
                raise StoreError(f"cannot reach the store at {self.uri}: {error}") from error
            version = int(records[0]["version"])
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the Neo4j store at {self.uri} has schema version {version}; this "
                    f"riskgraph reads up to {SCHEMA_VERSION} — upgrade riskgraph"
                )
            self._schema_ready = True

    def schema_version(self) -> int:
        records = self._run(cypher.SCHEMA_VERSION, {}, "read the schema version")
        return int(records[0]["version"]) if records else 0

    def wipe(self) -> None:
        """Delete every node and relationship (constraints and indexes stay); for tests."""
        if getattr(self._local, "depth", 0):
            raise StoreError("cannot wipe the Neo4j store inside a transaction")
        try:
            with self._driver.session(database=self.database) as session:
                session.run(cypher.WIPE).consume()
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"cannot wipe the Neo4j store at {self.uri}: {error}") from error
        self._schema_ready = False

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        # Neo4j maintains its indexes transactionally; there is nothing to defer.
        yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        local = self._local
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        self._ensure_schema()
        try:
            session = self._driver.session(database=self.database)
            tx = session.begin_transaction()
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"cannot begin a transaction on {self.uri}: {error}") from error
        local.tx, local.depth = tx, 1
        try:
            yield
        except BaseException:
            if not tx.closed():
                tx.rollback()
            raise
        else:
            try:
                tx.commit()
            except (
                self._neo4j.exceptions.Neo4jError,
                self._neo4j.exceptions.DriverError,
            ) as error:
                raise StoreError(f"commit on {self.uri} failed: {error}") from error
        finally:
            local.tx, local.depth = None, 0
            session.close()

    def _run(self, query: str, params: dict[str, Any], what: str) -> list[Any]:
        """Run one query in the thread's job transaction, or as an auto-routed read."""
        self._ensure_schema()
        tx = getattr(self._local, "tx", None)
        try:
            if tx is not None:
                return list(tx.run(query, params))
            records, _, _ = self._driver.execute_query(
                query, params, database_=self.database, routing_=self._neo4j.RoutingControl.READ
            )
            return list(records)
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"{what} failed: {error}") from error

    def _write_batches(
        self,
        what: str,
        rows: pa.Table,
        prepare: Callable[[pa.Table], list[dict[str, Any]]],
        write: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        """Convert and write `rows` in batches inside one transaction; name a failing batch."""
        size = self.write_batch_rows
        with self.transaction():
            for number, (start, batch) in enumerate(_prefetched(rows, size, prepare), start=1):
                try:
                    write(batch)
                except StoreError as error:
                    where = _batch_origin(rows, start, size)
                    raise StoreError(f"{what}, batch {number} ({where}): {error}") from error

    def _one(self, query: str, params: dict[str, Any], what: str) -> Any:
        records = self._run(query, params, what)
        return records[0] if records else None

    # --- writes -----------------------------------------------------------------------------
    def upsert_nodes(self, label: Label, rows: pa.Table) -> int:
        label = Label(label)
        kinds = NODE_SCHEMAS[label].props
        reserved = {*cypher.NODE_INTERNAL_PROPS}
        query = cypher.render(cypher.NODES_UPSERT, label=label)
        if "nid" in rows.column_names:
            raise StoreError(f"{label.value} rows: column nid is set by the store")

        def prepare(batch: pa.Table) -> list[dict[str, Any]]:
            ids = [None if v is None else str(v) for v in _column_values(batch, "id")]
            if None in ids:
                raise StoreError(f"{label.value} rows without an id")
            props = _props_rows(batch, kinds, reserved)
            provenance = _provenance_columns(batch)
            return [
                {
                    "id": node_id,
                    "props": props[i],
                    **{c: provenance[j][i] for j, c in enumerate(PROVENANCE_COLUMNS)},
                }
                for i, node_id in enumerate(ids)
            ]

        def write(batch: list[dict[str, Any]]) -> None:
            ids = list(dict.fromkeys(row["id"] for row in batch))
            existing = self._run(cypher.EXISTING_NODES, {"ids": ids}, "look up node ids")
            conflicts = [
                f"{r['id']} (a {_label_of(r['labels']).value})"
                for r in existing
                if label.value not in r["labels"]
            ]
            if conflicts:
                raise StoreError(
                    f"cannot store {label.value} nodes: ids already used by "
                    + ", ".join(conflicts[:5])
                )
            known = {r["id"] for r in existing}
            new_ids = [node_id for node_id in ids if node_id not in known]
            nid_of: dict[str, int] = {}
            if new_ids:
                reserved_range = self._one(
                    cypher.RESERVE_NIDS, {"count": len(new_ids)}, "reserve nids"
                )
                first = int(reserved_range["first"])
                nid_of = {node_id: first + i for i, node_id in enumerate(new_ids)}
            for row in batch:
                row["nid"] = nid_of.get(row["id"])
            self._run(query, {"rows": batch}, f"write {label.value} nodes")

        self._write_batches(f"{label.value} nodes", rows, prepare, write)
        return int(rows.num_rows)

    def upsert_edges(self, rel_type: RelType, rows: pa.Table) -> int:
        rel_type = RelType(rel_type)
        kinds = REL_SCHEMAS[rel_type].props
        reserved = {"src", "dst", *cypher.EDGE_INTERNAL_PROPS}
        query = cypher.render(cypher.EDGES_UPSERT, rel_type=rel_type)

        def prepare(batch: pa.Table) -> list[dict[str, Any]]:
            src = _column_values(batch, "src")
            dst = _column_values(batch, "dst")
            keys = _column_values(batch, "key")
            props = _props_rows(batch, kinds, reserved)
            provenance = _provenance_columns(batch)
            return [
                {
                    "src": None if src[i] is None else str(src[i]),
                    "dst": None if dst[i] is None else str(dst[i]),
                    "key": "" if keys[i] is None else str(keys[i]),
                    "props": props[i],
                    **{c: provenance[j][i] for j, c in enumerate(PROVENANCE_COLUMNS)},
                }
                for i in range(batch.num_rows)
            ]

        def write(batch: list[dict[str, Any]]) -> None:
            # Checked first so that a batch with a dangling end writes nothing at all.
            dangling = self._run(cypher.DANGLING_EDGES, {"rows": batch}, "check edge ends")
            if dangling:
                where = "; ".join(
                    f"{r['src']}->{r['dst']}"
                    + (f" ({r['source']}:{r['line']})" if r["source"] else "")
                    for r in dangling
                )
                raise StoreError(f"{rel_type.value} edges reference unknown nodes: {where}")
            self._run(query, {"rows": batch}, f"write {rel_type.value} edges")

        self._write_batches(f"{rel_type.value} edges", rows, prepare, write)
        return int(rows.num_rows)

    def add_aliases(self, rows: pa.Table) -> int:
        def prepare(batch: pa.Table) -> list[dict[str, Any]]:
            aliases = _column_values(batch, "alias", "str")
            ids = _column_values(batch, "id", "str")
            return [{"alias": a, "id": i} for a, i in zip(aliases, ids, strict=True)]

        def write(batch: list[dict[str, Any]]) -> None:
            self._run(cypher.ALIASES_UPSERT, {"rows": batch}, "write aliases")

        self._write_batches("aliases", rows, prepare, write)
        return int(rows.num_rows)

    def insert_transactions(self, rows: pa.Table) -> int:
        """Store transactions not stored yet (by txn_id); returns how many were new."""
        inserted = 0

        def prepare(batch: pa.Table) -> list[dict[str, Any]]:
            columns = {
                "txn_id": _column_values(batch, "txn_id", "str"),
                "from_account": _column_values(batch, "from_account", "str"),
                "to_account": _column_values(batch, "to_account", "str"),
                "amount": _column_values(batch, "amount", "float"),
                "ts": _column_values(batch, "ts", "timestamp"),
                "channel": _column_values(batch, "channel", "str"),
                **{c: _column_values(batch, c) for c in PROVENANCE_COLUMNS},
            }
            return [
                dict(zip(columns, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]

        def write(batch: list[dict[str, Any]]) -> None:
            nonlocal inserted
            first_of = {row["txn_id"]: row for row in reversed(batch)}
            unique = list(reversed(first_of.values()))
            lookup = {
                r["txn_id"]: r
                for r in self._run(cypher.TXN_LOOKUP, {"rows": unique}, "look up transactions")
            }
            new = []
            missing = []
            for row in unique:
                found = lookup[row["txn_id"]]
                if found["stored"]:
                    continue
                for end, nid in (("from_account", "from_nid"), ("to_account", "to_nid")):
                    if found[nid] is None:
                        missing.append(f"{row[end]} ({row['_source']}:{row['_line']})")
                new.append(
                    {
                        "txn_id": row["txn_id"],
                        "from_nid": found["from_nid"],
                        "to_nid": found["to_nid"],
                        "amount": row["amount"],
                        "ts": row["ts"],
                        "channel": row["channel"],
                        **{c: row[c] for c in PROVENANCE_COLUMNS},
                    }
                )
            if missing:
                raise StoreError(
                    "transactions reference unknown accounts: " + "; ".join(missing[:5])
                )
            if new:
                self._run(cypher.TXN_INSERT, {"rows": new}, "write transactions")
            inserted += len(new)

        self._write_batches("transactions", rows, prepare, write)
        return inserted

    def rebuild_transfers(self) -> int:
        with self.transaction():
            self._run(cypher.TRANSFERS_CLEAR, {}, "clear transfers")
            record = self._one(cypher.TRANSFERS_REBUILD, {}, "rebuild transfers")
        return int(record["pairs"]) if record else 0

    # --- point reads --------------------------------------------------------------------------
    def resolve(self, entity_id: str) -> str | None:
        record = self._one(cypher.RESOLVE, {"id": entity_id}, "resolve an id")
        return None if record is None or record["id"] is None else str(record["id"])

    def get_node(self, entity_id: str) -> Node | None:
        canonical = self.resolve(entity_id)
        if canonical is None:
            return None
        record = self._one(cypher.NODE_BY_ID, {"id": canonical}, "read a node")
        return _node(record) if record is not None else None

    def get_nodes_by_nid(self, nids: Sequence[int]) -> list[Node]:
        wanted = [int(nid) for nid in nids]
        records = self._run(cypher.NODES_BY_NID, {"nids": wanted}, "read nodes by nid")
        found = {int(r["nid"]): _node(r) for r in records}
        return [found[nid] for nid in wanted if nid in found]

    def aliases_of(self, entity_id: str) -> list[str]:
        canonical = self.resolve(entity_id)
        if canonical is None:
            return []
        records = self._run(cypher.ALIASES_OF, {"id": canonical}, "read aliases")
        return [str(r["alias"]) for r in records]

    def find_nodes(self, label: Label, prop: str, values: Sequence[str]) -> dict[str, str]:
        query = cypher.render(cypher.FIND_NODES, label=Label(label), prop=prop)
        unique = list(dict.fromkeys(values))
        records = self._run(query, {"values": unique}, f"find {label} nodes by {prop}")
        return {str(r["value"]): str(r["id"]) for r in records}

    def neighbours(
        self, entity_id: str, rel_type: RelType, direction: Direction = Direction.BOTH
    ) -> list[Edge]:
        rel_type = RelType(rel_type)
        canonical = self.resolve(entity_id)
        if canonical is None:
            return []
        templates = []
        if direction in (Direction.OUT, Direction.BOTH):
            templates.append(cypher.NEIGHBOURS_OUT)
        if direction in (Direction.IN, Direction.BOTH):
            templates.append(cypher.NEIGHBOURS_IN)
        edges = []
        seen: set[tuple[str, str, str]] = set()
        for template in templates:
            query = cypher.render(template, rel_type=rel_type)
            for record in self._run(query, {"id": canonical}, f"read {rel_type.value} edges"):
                edge = _edge(rel_type, record)
                if (edge.src, edge.dst, edge.key) in seen:  # a self loop, seen both ways
                    continue
                seen.add((edge.src, edge.dst, edge.key))
                edges.append(edge)
        return edges

    def search(self, query: str, limit: int = 20) -> list[Node]:
        query = query.strip()
        if not query:
            return []
        nids: dict[int, None] = {}
        for statement in (
            cypher.SEARCH_EXACT,
            cypher.SEARCH_NAME_PREFIX,
            cypher.SEARCH_NAME_SUBSTRING,
        ):
            for record in self._run(statement, {"query": query, "limit": limit}, "search"):
                nids.setdefault(int(record["nid"]))
            if len(nids) >= limit:
                break
        return self.get_nodes_by_nid(list(nids)[:limit])

    def _count(self, query: str, params: dict[str, Any], what: str) -> int:
        return int(self._one(query, params, what)["count"])

    def count_nodes(self, label: Label | None = None) -> int:
        if label is None:
            return self._count(cypher.COUNT_NODES, {}, "count nodes")
        query = cypher.render(cypher.COUNT_NODES_LABEL, label=Label(label))
        return self._count(query, {}, f"count {label} nodes")

    def count_edges(self, rel_type: RelType | None = None) -> int:
        types = list(RelType) if rel_type is None else [RelType(rel_type)]
        return sum(
            self._count(cypher.render(cypher.COUNT_EDGES, rel_type=t), {}, f"count {t} edges")
            for t in types
        )

    def count_transactions(self) -> int:
        return self._count(cypher.COUNT_TXNS, {}, "count transactions")

    # --- streaming reads ------------------------------------------------------------------------
    def node_batches(
        self, label: Label | None = None, batch_size: int = 500_000
    ) -> Iterator[pa.Table]:
        fields = [("nid", pa.int64()), ("id", pa.string()), ("label", pa.string())]
        if label is None:
            query = cypher.NODE_PAGE
            kinds: dict[str, PropType] = {}
        else:
            label = Label(label)
            query = cypher.render(cypher.NODE_PAGE_LABEL, label=label)
            kinds = NODE_SCHEMAS[label].props
            fields += [(p, ARROW_TYPES[k]) for p, k in kinds.items()]
        after = 0
        while True:
            records = self._run(query, {"after": after, "limit": batch_size}, "stream nodes")
            if not records:
                return
            columns: dict[str, list[Any]] = {
                "nid": [r["nid"] for r in records],
                "id": [r["id"] for r in records],
                "label": [_label_of(r["labels"]).value for r in records],
            }
            for prop in kinds:
                columns[prop] = [r["props"].get(prop) for r in records]
            yield _typed_table(columns, fields)
            if len(records) < batch_size:
                return
            after = int(records[-1]["nid"])

    def edge_batches(self, rel_type: RelType, batch_size: int = 500_000) -> Iterator[pa.Table]:
        rel_type = RelType(rel_type)
        kinds = REL_SCHEMAS[rel_type].props
        fields = [("src", pa.int64()), ("dst", pa.int64()), ("key", pa.string())]
        fields += [(p, ARROW_TYPES[k]) for p, k in kinds.items()]
        query = cypher.render(cypher.EDGE_PAGE, rel_type=rel_type)
        after: dict[str, Any] = {"after_src": 0, "after_dst": 0, "after_key": ""}
        while True:
            records = self._run(
                query, {**after, "limit": batch_size}, f"stream {rel_type.value} edges"
            )
            if not records:
                return
            columns: dict[str, list[Any]] = {
                name: [r[name] for r in records] for name in ("src", "dst", "key")
            }
            for prop in kinds:
                columns[prop] = [r["props"].get(prop) for r in records]
            yield _typed_table(columns, fields)
            if len(records) < batch_size:
                return
            last = records[-1]
            after = {"after_src": last["src"], "after_dst": last["dst"], "after_key": last["key"]}

    def transaction_batches(self, batch_size: int = 500_000) -> Iterator[pa.Table]:
        """Stored transactions ordered by txn_id. Columns: txn_id, from_nid, to_nid, amount,
        ts, channel, and the provenance columns."""
        fields = [
            ("txn_id", pa.string()),
            ("from_nid", pa.int64()),
            ("to_nid", pa.int64()),
            ("amount", pa.float64()),
            ("ts", pa.string()),
            ("channel", pa.string()),
            ("_source", pa.string()),
            ("_line", pa.int64()),
            ("_job", pa.string()),
        ]
        after = ""
        while True:
            records = self._run(
                cypher.TXN_PAGE, {"after": after, "limit": batch_size}, "stream transactions"
            )
            if not records:
                return
            yield _typed_table({name: [r[name] for r in records] for name, _ in fields}, fields)
            if len(records) < batch_size:
                return
            after = str(records[-1]["txn_id"])

    # --- inferred facts ---------------------------------------------------------------------
    @staticmethod
    def _inferred_rows(batch: pa.Table) -> list[dict[str, Any]]:
        columns = {
            "predicate": _column_values(batch, "predicate", "str"),
            "src": _column_values(batch, "src", "str"),
            "dst": _column_values(batch, "dst", "str"),
            "rule": _column_values(batch, "rule", "str"),
            "premises": _column_values(batch, "premises", "str"),
            "value": _column_values(batch, "value", "float"),
        }
        return [
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        ]

    def _write_inferred(self, rows: pa.Table) -> None:
        def write(batch: list[dict[str, Any]]) -> None:
            self._run(cypher.INFERRED_UPSERT, {"rows": batch}, "write inferred facts")

        self._write_batches("inferred facts", rows, self._inferred_rows, write)

    def replace_inferred(self, rows: pa.Table, predicates: Sequence[str] | None = None) -> int:
        with self.transaction():
            if predicates is None:
                self._run(cypher.INFERRED_CLEAR_ALL, {}, "clear inferred facts")
            else:
                self._run(
                    cypher.INFERRED_CLEAR_PREDICATES,
                    {"predicates": list(predicates)},
                    "clear inferred facts",
                )
            self._write_inferred(rows)
        return int(rows.num_rows)

    def apply_inferred_delta(self, added: pa.Table, removed: pa.Table) -> None:
        def delete(batch: list[dict[str, Any]]) -> None:
            self._run(cypher.INFERRED_DELETE, {"rows": batch}, "retract inferred facts")

        with self.transaction():
            self._write_batches("retracted inferred facts", removed, self._inferred_rows, delete)
            self._write_inferred(added)

    def inferred_batches(
        self, predicate: str | None = None, batch_size: int = 500_000
    ) -> Iterator[pa.Table]:
        fields = [
            ("predicate", pa.string()),
            ("src", pa.int64()),
            ("dst", pa.int64()),
            ("rule", pa.string()),
            ("value", pa.float64()),
        ]
        after: dict[str, Any] = {"after_src": 0, "after_dst": 0, "after_predicate": ""}
        while True:
            records = self._run(
                cypher.INFERRED_PAGE,
                {**after, "predicate": predicate, "limit": batch_size},
                "stream inferred facts",
            )
            if not records:
                return
            yield _typed_table({name: [r[name] for r in records] for name, _ in fields}, fields)
            if len(records) < batch_size:
                return
            last = records[-1]
            after = {
                "after_src": last["src"],
                "after_dst": last["dst"],
                "after_predicate": last["predicate"],
            }

    def get_inferred(
        self, src: str, predicate: str | None = None, dst: str | None = None
    ) -> list[InferredFact]:
        src_id = self.resolve(src)
        if src_id is None:
            return []
        dst_id = None
        if dst is not None:
            dst_id = self.resolve(dst)
            if dst_id is None:
                return []
        records = self._run(
            cypher.INFERRED_GET,
            {"src": src_id, "predicate": predicate, "dst": dst_id},
            "read inferred facts",
        )
        return [
            InferredFact(
                r["predicate"],
                r["src"],
                r["dst"],
                r["rule"],
                tuple(json.loads(r["premises"])) if r["premises"] else (),
                r["value"],
            )
            for r in records
        ]

    def count_inferred(self, predicate: str | None = None) -> int:
        if predicate is None:
            return self._count(cypher.COUNT_INFERRED_ALL, {}, "count inferred facts")
        return self._count(
            cypher.COUNT_INFERRED_PREDICATE, {"predicate": predicate}, "count inferred facts"
        )

    # --- documents ----------------------------------------------------------------------------
    def put_document(self, collection: str, key: str, body: dict[str, Any]) -> None:
        text = json.dumps(body, ensure_ascii=False, default=str)
        with self.transaction():
            self._run(
                cypher.DOC_PUT,
                {"collection": collection, "key": key, "body": text},
                f"store document {collection}/{key}",
            )

    def get_document(self, collection: str, key: str) -> dict[str, Any] | None:
        record = self._one(
            cypher.DOC_GET, {"collection": collection, "key": key}, f"read {collection}/{key}"
        )
        if record is None:
            return None
        body: dict[str, Any] = json.loads(record["body"])
        return body

    def list_documents(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        records = self._run(cypher.DOC_LIST, {"collection": collection}, f"list {collection}")
        return [(str(r["key"]), json.loads(r["body"])) for r in records]

    def delete_documents(self, collection: str, keys: Sequence[str] | None = None) -> int:
        with self.transaction():
            if keys is None:
                record = self._one(
                    cypher.DOC_DELETE_ALL, {"collection": collection}, f"delete {collection}"
                )
            else:
                record = self._one(
                    cypher.DOC_DELETE_KEYS,
                    {"collection": collection, "keys": list(keys)},
                    f"delete from {collection}",
                )
        return int(record["deleted"]) if record else 0


def _batch_origin(rows: pa.Table, start: int, size: int) -> str:
    """Rows `start`.. of the input, and the source file and line of the first, if known."""
    end = min(start + size, rows.num_rows)
    where = f"rows {start + 1}-{end}"
    if "_source" in rows.column_names and "_line" in rows.column_names:
        source = rows.column("_source")[start].as_py()
        line = rows.column("_line")[start].as_py()
        if source is not None:
            where += f", from {source} line {line}"
    return where


def _prefetched(
    rows: pa.Table, size: int, prepare: Callable[[pa.Table], list[dict[str, Any]]]
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(start, prepared batch) for each slice of `rows`, converted up to BATCHES_IN_FLIGHT
    batches ahead in a worker thread while the caller writes the current one."""
    starts = iter(range(0, rows.num_rows, size))
    if rows.num_rows <= size:
        for start in starts:
            yield start, prepare(rows.slice(start, size))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="neo4j-batch") as pool:
        pending: deque[tuple[int, Future[list[dict[str, Any]]]]] = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                pending.append((start, pool.submit(prepare, rows.slice(start, size))))

        for _ in range(BATCHES_IN_FLIGHT):
            submit()
        while pending:
            start, future = pending.popleft()
            submit()
            yield start, future.result()
