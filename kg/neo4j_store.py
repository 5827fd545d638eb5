"""The `GraphStore` on a Neo4j 5 server over Bolt, with the official `neo4j` driver.

The graph shape and every query are in `kg.cypher`. Writes go in `UNWIND $rows` batches; a
job's writes share one explicit driver transaction (`transaction()`), so they commit together
or not at all. Reads inside a job see its writes; reads outside one run as auto-routed read
queries.

Two kinds of job write too much for one server transaction (its state lives in the server's
heap): a bulk load into an empty store (`bulk_load()`) and the first inferred facts written
into a store that has none. Their batches commit one by one, and if the job fails the store
undoes them (it knows exactly what they were, because there was nothing before), so a failed
job still leaves the store as it was; readers outside the job may see a partial load while it
runs. A process killed in the middle of such a job leaves the committed batches behind.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg import cypher
from kg.fingerprints import SortedFingerprints, pair_fingerprints
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
    TRANSFERS_DERIVED,
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
# Rows per UNWIND: big enough to amortise a round trip and a commit, small enough for the
# server's heap.
WRITE_BATCH_ROWS = 10_000
# Transactions per stored segment node (each column one array property of this length).
TXN_SEGMENT_ROWS = 50_000
# Batches converted ahead of the one being written: bounds client memory, overlaps the
# Python-side conversion with the server's work.
BATCHES_IN_FLIGHT = 2
# Batches that commit on their own and cannot collide (inferred facts and transfers of a
# bulk job) are written by this many sessions at once, so the server works on several.
PARALLEL_WRITERS = 3
_INDEX_WAIT_S = 300
_DEADLOCK_RETRIES = 8
_LABEL_NAMES = frozenset(label.value for label in Label)
# How a transaction segment's columns are typed when read back.
_TXN_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("txn_id", pa.string()),
    ("from_nid", pa.int64()),
    ("to_nid", pa.int64()),
    ("amount", pa.float64()),
    ("ts", pa.string()),
    ("channel", pa.string()),
    ("_source", pa.string()),
    ("_line", pa.int64()),
    ("_job", pa.string()),
)
_TXN_SCHEMA = pa.schema(list(_TXN_FIELDS))
# Stands in for a null inside an array property (arrays cannot hold nulls).
_ARRAY_FILL: dict[pa.DataType, Any] = {pa.string(): "", pa.int64(): 0, pa.float64(): 0.0}
_NULLS_SUFFIX = "__nulls"
Write = Literal["graph", "inferred"]


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
    values: list[Any] = column.to_pylist()
    if _is_plain(column.type):
        return values
    return [None if v is None else _plain(v) for v in values]


def _is_plain(type_: pa.DataType) -> bool:
    """Whether the driver sends the column's Python values as they are."""
    return bool(
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_integer(type_)
        or pa.types.is_floating(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_null(type_)
    )


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


def _segment_columns(segment: pa.Table) -> dict[str, list[Any]]:
    """A transaction segment as array properties: one list per column, with the positions of
    nulls (which an array cannot hold) in `<column>__nulls`."""
    columns: dict[str, list[Any]] = {}
    for name, type_ in _TXN_FIELDS:
        values = segment.column(name).to_pylist()
        if segment.column(name).null_count:
            columns[name + _NULLS_SUFFIX] = [i for i, v in enumerate(values) if v is None]
            fill = _ARRAY_FILL[type_]
            values = [fill if v is None else v for v in values]
        columns[name] = values
    return columns


def _segment_table(columns: dict[str, Any]) -> pa.Table:
    """The inverse of `_segment_columns`."""
    rows = int(columns["rows"])
    arrays = []
    for name, type_ in _TXN_FIELDS:
        values = list(columns.get(name) or [None] * rows)
        for i in columns.get(name + _NULLS_SUFFIX) or ():
            values[i] = None
        arrays.append(pa.array(values, type_))
    return pa.Table.from_arrays(arrays, schema=_TXN_SCHEMA)


@dataclass(slots=True)
class _Batched:
    """Writes of a job that commit batch by batch, and what undoes them if the job fails.

    `bulk`: a load into an empty store; every write commits on its own, and undoing deletes
    the nodes numbered from `first_nid` on (with their relationships), the transaction
    segments after `after_seq` and aliases left pointing nowhere. `inferred`: the first
    inferred facts of a store that had none; only inferred writes commit on their own, and
    undoing deletes every inferred fact.
    """

    session: Any
    scope: Literal["bulk", "inferred"]
    first_nid: int = 0
    end_nid: int = 0
    after_seq: int = 0
    # Indexes dropped for the load, built again when it ends: (name, statement).
    dropped: list[tuple[str, str]] = field(default_factory=list)
    # Inferred facts this job has created, as fingerprints of (src, dst) per predicate: a
    # later write of one of them merges instead (a fingerprint clash only costs a MERGE).
    created: dict[str, SortedFingerprints] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(slots=True)
class _Job:
    """The thread's open job: its transaction and how its writes travel."""

    session: Any
    tx: Any
    depth: int = 1
    # Graph writes went through `tx`: it holds their locks to the end, so from now on no
    # batch may commit on its own (it could wait for those locks forever).
    wrote_in_tx: bool = False
    batched: _Batched | None = None
    # Per-job memo (account nids, stored txn ids); dropped with the job.
    cache: dict[str, Any] = field(default_factory=dict)
    # In a thread that writes a job's batches in parallel (`tx` is None): its own session,
    # for those writes and its reads.
    own_session: Any = None


def _deferrable_schema() -> list[tuple[str, str]]:
    """(name, statement) of every index a bulk load may drop and build again."""
    indexes = list(cypher.DEFERRABLE_SCHEMA)
    for label in (Label.PERSON, Label.COMPANY):
        for prop in cypher.INDEXED_NODE_PROPS:
            if prop in NODE_SCHEMAS[label].props:
                name = f"{label.value.lower()}_{prop}"
                indexes.append((name, cypher.render(cypher.PROP_INDEX, label=label, prop=prop)))
    return indexes


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
        # Queries over labels a young database has not seen yet (transaction segments before
        # the first transactions file) are expected: the server need not warn about them.
        self._driver: neo4j.Driver = self._neo4j.GraphDatabase.driver(
            uri, auth=auth, notifications_disabled_categories=["UNRECOGNIZED"]
        )
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    # --- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._driver.close()

    def _execute(self, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
        """One auto-committed statement (schema changes, `IN TRANSACTIONS` clean-ups)."""
        records, _, _ = self._driver.execute_query(statement, params or {}, database_=self.database)
        return list(records)

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            try:
                for statement in cypher.SCHEMA_STATEMENTS:
                    self._execute(statement)
                for name, statement in _deferrable_schema():
                    self._execute(statement, {"name": name})
                self._execute(cypher.AWAIT_INDEXES, {"seconds": _INDEX_WAIT_S})
                records = self._execute(cypher.STORE_INIT, {"version": SCHEMA_VERSION})
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
        if self._job() is not None:
            raise StoreError("cannot wipe the Neo4j store inside a transaction")
        try:
            with self._driver.session(database=self.database) as session:
                session.run(cypher.WIPE).consume()
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"cannot wipe the Neo4j store at {self.uri}: {error}") from error
        self._schema_ready = False

    def _job(self) -> _Job | None:
        job: _Job | None = getattr(self._local, "job", None)
        return job

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Inside `transaction()`: into an empty store, batches commit one by one (undone if
        the job fails) and the secondary indexes are built once, when the job ends."""
        job = self._job()
        if job is None:
            raise StoreError("bulk_load() must run inside transaction()")
        if job.batched is not None or job.wrote_in_tx or not self._is_empty():
            yield
            return
        batched = self._begin_batched(job, "bulk")
        self._call(self._drop_deferrable, batched, what="defer index maintenance")
        # The indexes are built when the job ends (`transaction()`): an index being built
        # waits for every transaction open at its creation, the job's own among them.
        yield

    def _is_empty(self) -> bool:
        # Read outside the job: it has written nothing yet, and a schema change must not
        # wait for a reading transaction.
        records = self._execute(cypher.STORE_EMPTY)
        return bool(records[0]["empty"])

    def _begin_batched(self, job: _Job, scope: Literal["bulk", "inferred"]) -> _Batched:
        session = self._driver.session(database=self.database)
        batched = _Batched(session, scope)
        if scope == "bulk":
            next_nid = int(self._execute(cypher.NEXT_NID)[0]["next_nid"])
            batched.first_nid = batched.end_nid = next_nid
            batched.after_seq = int(self._execute(cypher.TXN_SEGMENT_LAST)[0]["seq"])
        job.batched = batched
        return batched

    def _drop_deferrable(self, batched: _Batched) -> None:
        for name, statement in _deferrable_schema():
            self._execute(cypher.DROP_INDEX, {"name": name})
            batched.dropped.append((name, statement))

    def _index_online(self, name: str) -> bool:
        """Whether a deferrable index can be named in a hint now: not dropped by the thread's
        bulk job (the schema is built and awaited before any query)."""
        job = self._job()
        batched = job.batched if job is not None else None
        return batched is None or all(dropped != name for dropped, _ in batched.dropped)

    def _build_dropped(self, batched: _Batched) -> None:
        for name, statement in batched.dropped:
            self._execute(statement, {"name": name})
        self._execute(cypher.AWAIT_INDEXES, {"seconds": _INDEX_WAIT_S})
        batched.dropped.clear()

    def _undo(self, batched: _Batched) -> None:
        """Delete what the committed batches of a failed job wrote."""
        if batched.scope == "inferred":
            batched.session.run(cypher.UNDO_INFERRED).consume()
            return
        batched.session.run(cypher.UNDO_BULK_NODES, {"first_nid": batched.first_nid}).consume()
        batched.session.run(cypher.UNDO_BULK_SEGMENTS, {"after_seq": batched.after_seq}).consume()
        batched.session.run(cypher.UNDO_BULK_ALIASES).consume()
        batched.session.run(
            cypher.UNDO_BULK_COUNTER,
            {"first_nid": batched.first_nid, "end_nid": batched.end_nid},
        ).consume()
        self._build_dropped(batched)

    def _call(self, action: Callable[[_Batched], None], batched: _Batched, *, what: str) -> None:
        try:
            action(batched)
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"{what} on {self.uri} failed: {error}") from error

    @contextmanager
    def transaction(self) -> Iterator[None]:
        job = self._job()
        if job is not None:
            job.depth += 1
            try:
                yield
            finally:
                job.depth -= 1
            return
        self._ensure_schema()
        try:
            session = self._driver.session(database=self.database)
            tx = session.begin_transaction()
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"cannot begin a transaction on {self.uri}: {error}") from error
        job = self._local.job = _Job(session, tx)
        try:
            yield
        except BaseException:
            if not tx.closed():
                tx.rollback()
            if job.batched is not None:
                self._call(
                    self._undo,
                    job.batched,
                    what="undoing the committed batches of a failed job (the store may hold "
                    "part of it)",
                )
            raise
        else:
            try:
                tx.commit()
            except (
                self._neo4j.exceptions.Neo4jError,
                self._neo4j.exceptions.DriverError,
            ) as error:
                if job.batched is not None:
                    self._call(self._undo, job.batched, what="undoing a job whose commit failed")
                raise StoreError(f"commit on {self.uri} failed: {error}") from error
            if job.batched is not None and job.batched.dropped:
                self._call(self._build_dropped, job.batched, what="build the deferred indexes")
        finally:
            self._local.job = None
            if job.batched is not None:
                job.batched.session.close()
            session.close()

    def _run(
        self, query: str, params: dict[str, Any], what: str, *, write: Write | None = None
    ) -> list[Any]:
        """Run one query: in the thread's job (a write that may commit on its own goes as
        its own auto-committed transaction), or as an auto-routed read outside one."""
        self._ensure_schema()
        job = self._job()
        try:
            if job is None:
                if write is not None:
                    raise StoreError(f"{what}: a write outside transaction()")
                records, _, _ = self._driver.execute_query(
                    query,
                    params,
                    database_=self.database,
                    routing_=self._neo4j.RoutingControl.READ,
                )
                return list(records)
            batched = job.batched
            if write is not None and self._commits_alone(write):
                assert batched is not None
                return self._auto_commit(job.own_session or batched.session, query, params)
            if job.tx is None:  # a parallel writer reads committed data
                return self._auto_commit(job.own_session, query, params)
            if write is not None:
                job.wrote_in_tx = True
            return list(job.tx.run(query, params))
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"{what} failed: {error}") from error

    def _write_batches(
        self,
        what: str,
        rows: pa.Table,
        prepare: Callable[[pa.Table], list[dict[str, Any]]],
        write: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        """Convert and write `rows` in batches inside one job; name a failing batch."""
        size = self.write_batch_rows
        with self.transaction():
            for number, (start, batch) in enumerate(_prefetched(rows, size, prepare), start=1):
                try:
                    _write_then_release(write, batch)
                except StoreError as error:
                    where = _batch_origin(rows, start, size)
                    raise StoreError(f"{what}, batch {number} ({where}): {error}") from error

    def _auto_commit(self, session: Any, query: str, params: dict[str, Any]) -> list[Any]:
        """One statement as its own transaction, retried when it lost a deadlock (it rolled
        back whole, so running it again is safe)."""
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return list(session.run(query, params))
            except self._neo4j.exceptions.TransientError:
                if attempt == _DEADLOCK_RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _commits_alone(self, write: Write) -> bool:
        """Whether a write of this kind commits on its own in the thread's job."""
        job = self._job()
        if job is None or job.batched is None:
            return False
        return job.batched.scope == "bulk" or (write == "inferred" and not job.wrote_in_tx)

    def _write_independent(
        self,
        what: str,
        rows: pa.Table,
        prepare: Callable[[pa.Table], list[dict[str, Any]]],
        write: Callable[[list[dict[str, Any]]], None],
        disjoint: bool,
    ) -> None:
        """Write batches in parallel when they commit on their own and no two of them share
        a key (`disjoint`); otherwise one after the other in the job."""
        with self.transaction():
            if disjoint and self._commits_alone("graph") and rows.num_rows > self.write_batch_rows:
                self._write_in_parallel(what, rows, prepare, write)
            else:
                self._write_batches(what, rows, prepare, write)

    def _write_in_parallel(
        self,
        what: str,
        rows: pa.Table,
        prepare: Callable[[pa.Table], list[dict[str, Any]]],
        write: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        """Like `_write_batches`, for batches that commit on their own and share no key:
        several threads write them at once, each with its own session, so the server works
        on several batches (a batch that loses a deadlock is retried)."""
        job = self._job()
        assert job is not None and job.batched is not None
        size = self.write_batch_rows
        sessions: list[Any] = []

        def start_writer() -> None:
            session = self._driver.session(database=self.database)
            sessions.append(session)
            self._local.job = _Job(
                None, None, wrote_in_tx=job.wrote_in_tx, batched=job.batched, own_session=session
            )

        pending: deque[tuple[int, int, Future[None]]] = deque()

        def settle(number: int, start: int, future: Future[None]) -> None:
            try:
                future.result()
            except StoreError as error:
                where = _batch_origin(rows, start, size)
                raise StoreError(f"{what}, batch {number} ({where}): {error}") from error

        try:
            with ThreadPoolExecutor(
                PARALLEL_WRITERS, thread_name_prefix="neo4j-write", initializer=start_writer
            ) as pool:
                batches = _prefetched(rows, size, prepare)
                for number, (start, batch) in enumerate(batches, start=1):
                    pending.append((number, start, pool.submit(_write_then_release, write, batch)))
                    if len(pending) > PARALLEL_WRITERS:
                        settle(*pending.popleft())
                while pending:
                    settle(*pending.popleft())
        finally:
            for session in sessions:
                session.close()

    def _one(
        self, query: str, params: dict[str, Any], what: str, *, write: Write | None = None
    ) -> Any:
        records = self._run(query, params, what, write=write)
        return records[0] if records else None

    def _columns(
        self, query: str, params: dict[str, Any], what: str, width: int
    ) -> list[list[Any]]:
        """The first `width` values of every record as column lists, streamed (no record
        objects kept): for reads of millions of rows."""
        self._ensure_schema()
        columns: list[list[Any]] = [[] for _ in range(width)]
        job = self._job()
        try:
            if job is not None:
                result = job.tx.run(query, params)
                for values in result:
                    for column, value in zip(columns, values, strict=False):
                        column.append(value)
                return columns
            with self._driver.session(
                database=self.database, default_access_mode=self._neo4j.READ_ACCESS
            ) as session:
                for values in session.run(query, params):
                    for column, value in zip(columns, values, strict=False):
                        column.append(value)
            return columns
        except (self._neo4j.exceptions.Neo4jError, self._neo4j.exceptions.DriverError) as error:
            raise StoreError(f"{what} failed: {error}") from error

    # --- writes -----------------------------------------------------------------------------
    def upsert_nodes(self, label: Label, rows: pa.Table) -> int:
        label = Label(label)
        kinds = NODE_SCHEMAS[label].props
        reserved = {*cypher.NODE_INTERNAL_PROPS}
        create = cypher.render(cypher.NODES_CREATE, label=label)
        upsert = cypher.render(cypher.NODES_UPSERT, label=label)
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
                nid_of = dict(zip(new_ids, self._reserve_nids(len(new_ids)), strict=True))
            # The first row of a new id creates its node; any later row of the same id in
            # the batch, and every row of a known id, merges into it.
            created: list[dict[str, Any]] = []
            merged: list[dict[str, Any]] = []
            for row in batch:
                nid = nid_of.pop(row["id"], None)
                row["nid"] = nid
                (created if nid is not None else merged).append(row)
            if created:
                self._run(create, {"rows": created}, f"write {label.value} nodes", write="graph")
            if merged:
                self._run(upsert, {"rows": merged}, f"update {label.value} nodes", write="graph")

        ids = rows.column("id")
        distinct = pc.count_distinct(ids).as_py() == rows.num_rows and ids.null_count == 0
        self._write_independent(f"{label.value} nodes", rows, prepare, write, distinct)
        return int(rows.num_rows)

    def _reserve_nids(self, count: int) -> range:
        record = self._one(cypher.RESERVE_NIDS, {"count": count}, "reserve nids", write="graph")
        first = int(record["first"])
        job = self._job()
        if job is not None and job.batched is not None:
            with job.batched.lock:
                job.batched.end_nid = max(job.batched.end_nid, first + count)
        return range(first, first + count)

    def upsert_edges(self, rel_type: RelType, rows: pa.Table) -> int:
        rel_type = RelType(rel_type)
        if rel_type is RelType.TRANSFERRED:
            raise StoreError(TRANSFERS_DERIVED)
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
            written = self._one(
                query, {"rows": batch}, f"write {rel_type.value} edges", write="graph"
            )
            if written is not None and int(written["written"]) > 0:
                return
            # Nothing was written: the batch has an end that is no node.
            dangling = self._run(cypher.DANGLING_EDGES, {"rows": batch}, "check edge ends")
            where = "; ".join(
                f"{r['src']}->{r['dst']}" + (f" ({r['source']}:{r['line']})" if r["source"] else "")
                for r in dangling
            )
            raise StoreError(f"{rel_type.value} edges reference unknown nodes: {where}")

        self._write_independent(
            f"{rel_type.value} edges", rows, prepare, write, _distinct_edges(rows)
        )
        return int(rows.num_rows)

    def add_aliases(self, rows: pa.Table) -> int:
        def prepare(batch: pa.Table) -> list[dict[str, Any]]:
            aliases = _column_values(batch, "alias", "str")
            ids = _column_values(batch, "id", "str")
            return [{"alias": a, "id": i} for a, i in zip(aliases, ids, strict=True)]

        def write(batch: list[dict[str, Any]]) -> None:
            self._run(cypher.ALIASES_UPSERT, {"rows": batch}, "write aliases", write="graph")

        self._write_batches("aliases", rows, prepare, write)
        return int(rows.num_rows)

    def _account_nids(self, cache: dict[str, Any]) -> tuple[pa.Array, np.ndarray]:
        """Every account's (id, nid), read once per job."""
        if "account_ids" not in cache:
            ids, nids = self._columns(cypher.ACCOUNT_NIDS, {}, "read account nids", 2)
            cache["account_ids"] = pa.array(ids, pa.string())
            cache["account_nids"] = np.asarray(nids, np.int64)
        return cache["account_ids"], cache["account_nids"]

    def _learn_accounts(self, cache: dict[str, Any], ids: list[str]) -> None:
        """Accounts written after the job first read them."""
        records = self._run(cypher.ACCOUNT_NIDS_OF, {"ids": ids}, "look up accounts")
        if records:
            cache["account_ids"] = pa.concat_arrays(
                [cache["account_ids"], pa.array([r["id"] for r in records], pa.string())]
            )
            cache["account_nids"] = np.concatenate(
                [cache["account_nids"], np.asarray([r["nid"] for r in records], np.int64)]
            )

    def insert_transactions(self, rows: pa.Table) -> int:
        """Store transactions not stored yet (by txn_id) in segment nodes; returns how many
        were new."""
        with self.transaction():
            job = self._job()
            assert job is not None
            cache = job.cache
            if "txn_ids" not in cache:
                self._account_nids(cache)
                cache["txn_ids"] = pa.concat_arrays(
                    [t.column("txn_id").combine_chunks() for t in self.transaction_batches()]
                    or [pa.array([], pa.string())]
                )
            txn_ids = rows.column("txn_id").cast(pa.string())
            # First occurrence of each txn_id in the batch, and only ids not stored before.
            codes = pc.index_in(txn_ids, value_set=pc.unique(txn_ids)).to_numpy()
            _, first = np.unique(codes, return_index=True)
            keep = np.zeros(rows.num_rows, dtype=bool)
            keep[first] = True
            keep &= ~np.asarray(pc.is_in(txn_ids, value_set=cache["txn_ids"]), dtype=bool)
            new = rows.filter(pa.array(keep))
            if new.num_rows == 0:
                return 0
            ends = [self._account_ends(cache, new, c) for c in ("from_account", "to_account")]
            segment = pa.table(
                {
                    "txn_id": new.column("txn_id").cast(pa.string()),
                    "from_nid": ends[0],
                    "to_nid": ends[1],
                    "amount": pa.array(_column_values(new, "amount", "float"), pa.float64()),
                    "ts": pa.array(_column_values(new, "ts", "timestamp"), pa.string()),
                    "channel": pa.array(_column_values(new, "channel", "str"), pa.string()),
                    "_source": pa.array(_column_values(new, "_source", "str"), pa.string()),
                    "_line": pa.array(_column_values(new, "_line", "int"), pa.int64()),
                    "_job": pa.array(_column_values(new, "_job", "str"), pa.string()),
                }
            )
            for start in range(0, segment.num_rows, TXN_SEGMENT_ROWS):
                part = segment.slice(start, TXN_SEGMENT_ROWS)
                self._run(
                    cypher.TXN_SEGMENT_CREATE,
                    {"rows": part.num_rows, "columns": _segment_columns(part)},
                    f"write transactions ({_batch_origin(new, start, TXN_SEGMENT_ROWS)})",
                    write="graph",
                )
            cache["txn_ids"] = pa.concat_arrays(
                [cache["txn_ids"], segment.column("txn_id").combine_chunks()]
            )
            return int(new.num_rows)

    def _account_ends(self, cache: dict[str, Any], rows: pa.Table, column: str) -> pa.Array:
        """The nids of the accounts in `column`; raises naming rows with an unknown one."""
        values = rows.column(column).cast(pa.string())
        index = pc.index_in(values, value_set=self._account_nids(cache)[0])
        if index.null_count:
            self._learn_accounts(cache, pc.unique(pc.filter(values, pc.is_null(index))).to_pylist())
            index = pc.index_in(values, value_set=cache["account_ids"])
        if index.null_count:
            missing = rows.filter(pc.is_null(index)).slice(0, 5)
            where = "; ".join(
                f"{r[column]} ({r.get('_source')}:{r.get('_line')})" for r in missing.to_pylist()
            )
            raise StoreError(f"transactions reference unknown accounts: {where}")
        return pa.array(cache["account_nids"][index.to_numpy()])

    def rebuild_transfers(self) -> int:
        """Aggregate the stored transactions per account pair (in Arrow, as the SQLite store
        does) and write one TRANSFERRED edge per pair."""
        with self.transaction():
            job = self._job()
            assert job is not None
            parts = [
                t.select(["from_nid", "to_nid", "amount", "ts"]) for t in self.transaction_batches()
            ]
            self._run(cypher.TRANSFERS_CLEAR, {}, "clear transfers", write="graph")
            if not parts:
                return 0
            table = pa.concat_tables(parts)
            # Numeric ranks stand in for the ISO timestamps: min/max of strings per group is
            # an order of magnitude slower in Arrow than of integers.
            distinct_ts = pc.unique(table.column("ts")).sort()
            rank = pc.index_in(table.column("ts"), value_set=distinct_ts)
            grouped = (
                table.append_column("ts_rank", rank)
                .group_by(["from_nid", "to_nid"], use_threads=False)
                .aggregate(
                    [("amount", "count"), ("amount", "sum"), ("ts_rank", "min"), ("ts_rank", "max")]
                )
                # In order of the source account: parallel batches then lock disjoint nodes.
                .sort_by([("from_nid", "ascending"), ("to_nid", "ascending")])
            )
            pairs = pa.table(
                {
                    "src": grouped.column("from_nid"),
                    "dst": grouped.column("to_nid"),
                    "count": grouped.column("amount_count"),
                    "total": grouped.column("amount_sum"),
                    "first_ts": pc.take(distinct_ts, grouped.column("ts_rank_min")),
                    "last_ts": pc.take(distinct_ts, grouped.column("ts_rank_max")),
                }
            )

            def write(batch: list[dict[str, Any]]) -> None:
                self._run(
                    cypher.TRANSFERS_CREATE, {"rows": batch}, "write transfers", write="graph"
                )

            # One row per account pair: batches share no key.
            self._write_independent("transfers", pairs, pa.Table.to_pylist, write, True)
        return int(grouped.num_rows)

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

    def _page(self, query: str, params: dict[str, Any], what: str) -> list[list[Any]]:
        """The rows of a page query that returns them collected in one record (`rows`)."""
        record = self._one(query, params, what)
        return list(record["rows"]) if record is not None else []

    def aliases_of_many(self, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        unique = list(dict.fromkeys(entity_ids))
        found: dict[str, list[str]] = {}
        for start in range(0, len(unique), self.write_batch_rows):
            chunk = unique[start : start + self.write_batch_rows]
            for r in self._run(cypher.ALIASES_OF_MANY, {"ids": chunk}, "read aliases"):
                found.setdefault(str(r["id"]), []).append(str(r["alias"]))
        return found

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
        if label is not None and self.count_nodes(label) <= batch_size:
            rows = self._page(cypher.render(cypher.NODE_PAGE_SCAN, label=label), {}, "read nodes")
            if rows:
                yield _node_page(rows, kinds, fields)
            return
        after = 0
        while True:
            rows = self._page(query, {"after": after, "limit": batch_size}, "stream nodes")
            if not rows:
                return
            yield _node_page(rows, kinds, fields)
            if len(rows) < batch_size:
                return
            after = int(rows[-1][0])

    def edge_batches(self, rel_type: RelType, batch_size: int = 500_000) -> Iterator[pa.Table]:
        rel_type = RelType(rel_type)
        kinds = REL_SCHEMAS[rel_type].props
        fields = [("src", pa.int64()), ("dst", pa.int64()), ("key", pa.string())]
        fields += [(p, ARROW_TYPES[k]) for p, k in kinds.items()]
        what = f"stream {rel_type.value} edges"
        if self.count_edges(rel_type) <= batch_size:
            rows = self._page(cypher.render(cypher.EDGE_PAGE_SCAN, rel_type=rel_type), {}, what)
            if rows:
                yield _edge_page(rows, kinds, fields)
            return
        query = cypher.render(cypher.EDGE_PAGE, rel_type=rel_type)
        after: dict[str, Any] = {"after_src": 0, "after_dst": 0, "after_key": ""}
        while True:
            rows = self._page(query, {**after, "limit": batch_size}, what)
            if not rows:
                return
            yield _edge_page(rows, kinds, fields)
            if len(rows) < batch_size:
                return
            src, dst, key, _ = rows[-1]
            after = {"after_src": src, "after_dst": dst, "after_key": key}

    def transaction_batches(self, batch_size: int = 500_000) -> Iterator[pa.Table]:
        """Stored transactions, one table per stored segment in the order they were stored
        (`batch_size` is not used: a segment is the unit). Columns: txn_id, from_nid, to_nid,
        amount, ts, channel, and the provenance columns."""
        segments = [r["segment"] for r in self._run(cypher.TXN_SEGMENTS, {}, "list segments")]
        for segment in segments:
            record = self._one(
                cypher.TXN_SEGMENT_READ, {"segment": segment}, "read a transaction segment"
            )
            if record is not None:
                yield _segment_table(dict(record["columns"]))

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
        job = self._job()
        if job is not None and job.batched is not None and self._commits_alone("inferred"):
            # The store had no inferred facts when the job began, so a fact is new unless
            # this job wrote it before: CREATE, from several sessions at once.
            def create(batch: list[dict[str, Any]]) -> None:
                self._run(
                    cypher.INFERRED_CREATE,
                    {"rows": batch},
                    "write inferred facts",
                    write="inferred",
                )

            rows = _last_per_fact(rows)
            again = _written_before(job.batched.created, rows)
            self._write_in_parallel(
                "inferred facts", rows.filter(pa.array(~again)), self._inferred_rows, create
            )
            rows = rows.filter(pa.array(again))
            if rows.num_rows == 0:
                return

        def write(batch: list[dict[str, Any]]) -> None:
            self._run(
                cypher.INFERRED_UPSERT, {"rows": batch}, "write inferred facts", write="inferred"
            )

        self._write_batches("inferred facts", rows, self._inferred_rows, write)

    def _batch_first_inferred(self) -> None:
        """The first inferred facts of a store that has none commit batch by batch (twenty
        million facts do not fit one server transaction); undone if the job fails."""
        job = self._job()
        assert job is not None
        if (
            job.batched is None
            and not job.wrote_in_tx
            and not self._one(cypher.ANY_INFERRED, {}, "look for inferred facts")["any"]
        ):
            self._begin_batched(job, "inferred")

    def replace_inferred(self, rows: pa.Table, predicates: Sequence[str] | None = None) -> int:
        with self.transaction():
            self._batch_first_inferred()
            if predicates is None:
                self._run(cypher.INFERRED_CLEAR_ALL, {}, "clear inferred facts", write="inferred")
            else:
                self._run(
                    cypher.INFERRED_CLEAR_PREDICATES,
                    {"predicates": list(predicates)},
                    "clear inferred facts",
                    write="inferred",
                )
            self._write_inferred(rows)
        return int(rows.num_rows)

    def apply_inferred_delta(self, added: pa.Table, removed: pa.Table) -> None:
        def delete(batch: list[dict[str, Any]]) -> None:
            self._run(
                cypher.INFERRED_DELETE, {"rows": batch}, "retract inferred facts", write="inferred"
            )

        with self.transaction():
            if added.num_rows:
                self._batch_first_inferred()
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
        query = cypher.INFERRED_PAGE
        if predicate is not None and self._index_online(cypher.INFERRED_PREDICATE_INDEX):
            # Through the predicate's index each page reads the predicate's facts; from the
            # nid range all pages together read every inferred fact once: the cheaper one.
            facts = self.count_inferred(predicate)
            pages = -(-facts // batch_size)
            if pages <= 1 or pages * facts <= self._count(
                cypher.COUNT_INFERRED_RELATIONSHIPS, {}, "count inferred facts"
            ):
                query = cypher.INFERRED_PAGE_PREDICATE
        while True:
            rows = self._page(
                query,
                {**after, "predicate": predicate, "limit": batch_size},
                "stream inferred facts",
            )
            if not rows:
                return
            yield _typed_table(
                {name: [r[i] for r in rows] for i, (name, _) in enumerate(fields)}, fields
            )
            if len(rows) < batch_size:
                return
            last_predicate, last_src, last_dst, _, _ = rows[-1]
            after = {
                "after_src": last_src,
                "after_dst": last_dst,
                "after_predicate": last_predicate,
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


def _distinct_edges(rows: pa.Table) -> bool:
    """Whether no two rows name the same edge (src, dst, key)."""
    if rows.num_rows == 0:
        return True
    keys = [c for c in ("src", "dst", "key") if c in rows.column_names]
    groups = rows.select(keys).group_by(keys, use_threads=False).aggregate([])
    return bool(groups.num_rows == rows.num_rows)


def _written_before(
    created: dict[str, SortedFingerprints], rows: pa.Table
) -> npt.NDArray[np.bool_]:
    """Which rows (one per fact) may repeat a fact in `created`; records the others there."""
    strings = [rows.column(c).cast(pa.string()) for c in ("src", "dst")]
    prints = pair_fingerprints(*strings)
    again = np.zeros(rows.num_rows, bool)
    predicates = rows.column("predicate").combine_chunks().dictionary_encode()
    codes = predicates.indices.to_numpy(zero_copy_only=False)
    for code, predicate in enumerate(predicates.dictionary.to_pylist()):
        at = np.flatnonzero(codes == code)
        seen = created.setdefault(predicate, SortedFingerprints())
        again[at] = seen.contains(prints[at])
        seen.add(prints[at][~again[at]])
    return again


def _node_page(
    rows: list[list[Any]], kinds: dict[str, PropType], fields: list[tuple[str, pa.DataType]]
) -> pa.Table:
    """A page of nodes ([nid, id, labels, properties] each) as a `node_batches` table."""
    columns: dict[str, list[Any]] = {
        "nid": [r[0] for r in rows],
        "id": [r[1] for r in rows],
        "label": [_label_of(r[2]).value for r in rows],
    }
    for prop in kinds:
        columns[prop] = [r[3].get(prop) for r in rows]
    return _typed_table(columns, fields)


def _edge_page(
    rows: list[list[Any]], kinds: dict[str, PropType], fields: list[tuple[str, pa.DataType]]
) -> pa.Table:
    """A page of edges ([src, dst, key, properties] each) as an `edge_batches` table."""
    columns: dict[str, list[Any]] = {
        name: [r[i] for r in rows] for i, name in enumerate(("src", "dst", "key"))
    }
    for prop in kinds:
        columns[prop] = [r[3].get(prop) for r in rows]
    return _typed_table(columns, fields)


def _last_per_fact(rows: pa.Table) -> pa.Table:
    """Inferred rows with one row per (predicate, src, dst), the last one given."""
    if rows.num_rows == 0:
        return rows
    numbered = rows.append_column("_row", pa.array(np.arange(rows.num_rows)))
    last = numbered.group_by(["predicate", "src", "dst"], use_threads=False).aggregate(
        [("_row", "max")]
    )
    if last.num_rows == rows.num_rows:
        return rows
    return rows.take(pa.array(np.sort(last.column("_row_max").to_numpy())))


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


def _write_then_release(
    write: Callable[[list[dict[str, Any]]], None], batch: list[dict[str, Any]]
) -> None:
    """`write(batch)`, then the batch emptied. The driver's result keeps the parameters it
    sent (in its summary metadata) inside reference cycles that only a full collection frees,
    and with a large heap those come seldom: written batches piled up at 0.5-0.7 KiB a fact,
    12 GiB after 7.7M inferred facts at 1M customers. Emptied, a written batch is freed at
    once, whenever the driver's objects go."""
    try:
        write(batch)
    finally:
        batch.clear()


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
