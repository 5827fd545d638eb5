"""The embedded default store: one SQLite file in WAL mode.

Readers (the API) never block on the nightly writer: WAL lets every thread read the last
committed state while one writer works. Each thread gets its own connection; a job's writes
run inside `transaction()` and commit together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg import sql
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

_WRITE_CHUNK = 50_000
# From this many rows, a full replace of the inferred facts rebuilds the table's secondary
# indexes after the load instead of maintaining them row by row.
_BULK_INFERRED = 50_000


def _column_values(table: pa.Table, name: str, kind: PropType | None = None) -> list[Any]:
    """A column as Python values in the form SQLite stores (dates as ISO text, bools as 0/1)."""
    if name not in table.column_names:
        return [None] * table.num_rows
    column = table.column(name)
    if kind in ("date", "timestamp", "str") and not pa.types.is_string(column.type):
        if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
            return [None if v is None else v.isoformat() for v in column.to_pylist()]
        column = column.cast(pa.string())
    values: list[Any] = column.to_pylist()
    return values


def _arrow_column(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    if pa.types.is_boolean(type_):  # SQLite keeps booleans as 0/1
        return pa.array([None if v is None else bool(v) for v in values], type_)
    return pa.array(values, type=type_)


def _extra_json(table: pa.Table, known: set[str]) -> list[str | None]:
    """Unknown columns are kept as properties: one JSON object per row, None when all null."""
    extra_cols = [c for c in table.column_names if c not in known]
    if not extra_cols:
        return [None] * table.num_rows
    values = {c: table.column(c).to_pylist() for c in extra_cols}
    out: list[str | None] = []
    for i in range(table.num_rows):
        row = {c: values[c][i] for c in extra_cols if values[c][i] is not None}
        out.append(json.dumps(row, ensure_ascii=False, default=str) if row else None)
    return out


def _decode_props(
    columns: Sequence[str], values: Sequence[Any], kinds: dict[str, PropType]
) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, value in zip(columns, values, strict=True):
        if value is None:
            continue
        if name == "extra":
            props.update(json.loads(value))
        elif kinds.get(name) == "bool":
            props[name] = bool(value)
        else:
            props[name] = value
    return props


class SQLiteStore:
    """The `GraphStore` on one SQLite file.

    Example:
        >>> store = SQLiteStore(":memory:")
        >>> store.count_nodes()
        0
    """

    capabilities = StoreCapabilities(
        name="sqlite",
        native_path_queries=False,
        concurrent_readers=True,
        fulltext_search=False,
    )

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path == ":memory:":
            # A shared in-memory database so that every thread sees the same data.
            self._uri = f"file:riskgraph-{id(self)}?mode=memory&cache=shared"
            self._keepalive: sqlite3.Connection | None = self._connect()
        else:
            if read_only and not Path(self.path).exists():
                raise StoreError(f"no store at {self.path}")
            mode = "ro" if read_only else "rwc"
            self._uri = f"file:{Path(self.path).resolve()}?mode={mode}"
            self._keepalive = None
        self._migrate()

    # --- connections and transactions ------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._uri, uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        for pragma in sql.PRAGMAS:
            if self.read_only and "journal_mode" in pragma:
                continue
            conn.execute(pragma)
        with self._lock:
            self._connections.append(conn)
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._conn
        if self._local.depth > 0:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only; it cannot be written")
        self._execute_write(conn, "BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield
        except sqlite3.Error as exc:
            # Disk full, I/O errors, a file gone read-only: said in words, never half-written.
            conn.execute("ROLLBACK")
            raise StoreError(
                f"store {self.path}: write failed, nothing was written: {exc}"
            ) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            self._execute_write(conn, "COMMIT")
        finally:
            self._local.depth = 0
            self._local.job_cache = None

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0) == 0:
            raise StoreError("bulk_load() must run inside transaction()")
        conn = self._conn
        if self.count_nodes() > 0:
            yield
            return
        # Building an index from sorted data at the end is far cheaper than millions of
        # random B-tree inserts; the drop is part of the job's transaction, so a failed
        # job rolls it back with everything else.
        dropped = conn.execute(sql.SECONDARY_INDEXES).fetchall()
        for name, _ in dropped:
            conn.execute(f'DROP INDEX "{name}"')
        yield
        for _, create in dropped:
            conn.execute(create)

    def _execute_write(self, conn: sqlite3.Connection, statement: str) -> None:
        try:
            conn.execute(statement)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"store {self.path}: {statement} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        conn = self._conn
        has_meta = conn.execute(sql.TABLE_EXISTS, ("meta",)).fetchone() is not None
        current = 0
        if has_meta:
            row = conn.execute(sql.GET_META, ("schema_version",)).fetchone()
            current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"store {self.path} has schema version {current}; this riskgraph reads up to "
                f"{SCHEMA_VERSION} — upgrade riskgraph"
            )
        if current == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(f"store {self.path} needs a schema migration; open it read-write")
        with self.transaction():
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in sql.MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(sql.SET_META, ("schema_version", str(version)))

    def schema_version(self) -> int:
        row = self._conn.execute(sql.GET_META, ("schema_version",)).fetchone()
        return int(row[0]) if row else 0

    # --- writes -----------------------------------------------------------------------------
    def upsert_nodes(self, label: Label, rows: pa.Table) -> int:
        label = Label(label)
        schema = NODE_SCHEMAS[label]
        known = {"id", *schema.props, *PROVENANCE_COLUMNS}
        conn = self._conn
        with self.transaction():
            conn.execute(sql.stage_node_props_create(label))
            for start in range(0, rows.num_rows, _WRITE_CHUNK):
                chunk = rows.slice(start, _WRITE_CHUNK)
                columns = [_column_values(chunk, "id")]
                columns += [_column_values(chunk, p, k) for p, k in schema.props.items()]
                columns.append(_extra_json(chunk, known))
                columns += [_column_values(chunk, c) for c in PROVENANCE_COLUMNS]
                conn.execute(sql.stage_node_clear(label))
                conn.executemany(sql.stage_node_insert(label), zip(*columns, strict=True))
                conflict = conn.execute(sql.node_label_conflicts(label), (label.value,)).fetchall()
                if conflict:
                    ids = ", ".join(f"{i} (a {other})" for i, other in conflict)
                    raise StoreError(f"cannot store {label.value} nodes: ids already used by {ids}")
                conn.execute(sql.node_register(label), (label.value,))
                conn.execute(sql.node_upsert_props(label))
            conn.execute(sql.stage_node_clear(label))
        return int(rows.num_rows)

    def upsert_edges(self, rel_type: RelType, rows: pa.Table) -> int:
        rel_type = RelType(rel_type)
        schema = REL_SCHEMAS[rel_type]
        known = {"src", "dst", "key", *schema.props, *PROVENANCE_COLUMNS}
        conn = self._conn
        with self.transaction():
            conn.execute(sql.stage_edges_create(rel_type))
            for start in range(0, rows.num_rows, _WRITE_CHUNK):
                chunk = rows.slice(start, _WRITE_CHUNK)
                keys = _column_values(chunk, "key")
                columns = [
                    _column_values(chunk, "src"),
                    _column_values(chunk, "dst"),
                    ["" if k is None else str(k) for k in keys],
                ]
                columns += [_column_values(chunk, p, k) for p, k in schema.props.items()]
                columns.append(_extra_json(chunk, known))
                columns += [_column_values(chunk, c) for c in PROVENANCE_COLUMNS]
                conn.execute(sql.stage_edges_clear(rel_type))
                conn.executemany(sql.stage_edges_insert(rel_type), zip(*columns, strict=True))
                dangling = conn.execute(sql.edge_dangling(rel_type)).fetchall()
                if dangling:
                    where = "; ".join(
                        f"{src}->{dst}" + (f" ({source}:{line})" if source else "")
                        for src, dst, source, line in dangling
                    )
                    raise StoreError(f"{rel_type.value} edges reference unknown nodes: {where}")
                conn.execute(sql.edge_upsert(rel_type))
            conn.execute(sql.stage_edges_clear(rel_type))
        return int(rows.num_rows)

    def add_aliases(self, rows: pa.Table) -> int:
        pairs = list(zip(_column_values(rows, "alias"), _column_values(rows, "id"), strict=True))
        with self.transaction():
            self._conn.executemany(sql.ALIAS_UPSERT, pairs)
        return len(pairs)

    def insert_transactions(self, rows: pa.Table) -> int:
        """Append transactions not stored yet (by txn_id) as one compressed Arrow segment.

        Transactions are immutable events: a txn_id seen before is skipped, so a re-run
        writes nothing. Returns the number of new transactions.
        """
        with self.transaction():
            cache = self._job_cache()
            if "account_nids" not in cache:
                ids, nids = [], []
                for node_id, nid in self._conn.execute(sql.NIDS_OF_LABEL, (Label.ACCOUNT.value,)):
                    ids.append(node_id)
                    nids.append(nid)
                cache["account_nids"] = (pa.array(ids, pa.string()), np.asarray(nids, np.int64))
                cache["txn_ids"] = pa.concat_arrays(
                    [t.column("txn_id").combine_chunks() for t in self.transaction_batches()]
                    or [pa.array([], pa.string())]
                )
            account_ids, account_nids = cache["account_nids"]
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
            ends = []
            for column in ("from_account", "to_account"):
                index = pc.index_in(new.column(column).cast(pa.string()), value_set=account_ids)
                if index.null_count:
                    missing = new.filter(pc.is_null(index)).slice(0, 5)
                    where = "; ".join(
                        f"{r[column]} ({r.get('_source')}:{r.get('_line')})"
                        for r in missing.to_pylist()
                    )
                    raise StoreError(f"transactions reference unknown accounts: {where}")
                ends.append(pa.array(account_nids[index.to_numpy()]))
            segment = pa.table(
                {
                    "txn_id": new.column("txn_id").cast(pa.string()),
                    "from_nid": ends[0],
                    "to_nid": ends[1],
                    "amount": new.column("amount").cast(pa.float64()),
                    "ts": pa.array(_column_values(new, "ts", "timestamp"), pa.string()),
                    "channel": pa.array(_column_values(new, "channel", "str"), pa.string()),
                    **{
                        c: pa.array(_column_values(new, c))
                        for c in PROVENANCE_COLUMNS
                        if c in new.column_names
                    },
                }
            )
            sink = pa.BufferOutputStream()
            options = pa.ipc.IpcWriteOptions(compression="zstd")
            with pa.ipc.new_stream(sink, segment.schema, options=options) as writer:
                writer.write_table(segment)
            job = segment.column("_job")[0].as_py() if "_job" in segment.column_names else None
            self._conn.execute(
                sql.TXN_SEGMENT_INSERT, (segment.num_rows, job, sink.getvalue().to_pybytes())
            )
            cache["txn_ids"] = pa.concat_arrays(
                [cache["txn_ids"], segment.column("txn_id").combine_chunks()]
            )
        return int(segment.num_rows)

    def rebuild_transfers(self) -> int:
        parts = [
            t.select(["from_nid", "to_nid", "amount", "ts"]) for t in self.transaction_batches()
        ]
        with self.transaction():
            self._conn.execute(sql.TRANSFERS_CLEAR)
            if not parts:
                return 0
            table = pa.concat_tables(parts)
            # Numeric ranks stand in for the ISO timestamps: min/max of strings per group is
            # an order of magnitude slower in Arrow than of integers.
            distinct_ts = pc.unique(table.column("ts")).sort()
            rank = pc.index_in(table.column("ts"), value_set=distinct_ts)
            grouped = (
                table.append_column("ts_rank", rank)
                .group_by(["from_nid", "to_nid"])
                .aggregate(
                    [("amount", "count"), ("amount", "sum"), ("ts_rank", "min"), ("ts_rank", "max")]
                )
                .sort_by([("from_nid", "ascending"), ("to_nid", "ascending")])
            )
            # In slices: ten million pairs as Python tuples at once would cost gigabytes.
            for start in range(0, grouped.num_rows, _WRITE_CHUNK * 4):
                part = grouped.slice(start, _WRITE_CHUNK * 4)
                self._conn.executemany(
                    sql.TRANSFERS_INSERT,
                    zip(
                        part.column("from_nid").to_pylist(),
                        part.column("to_nid").to_pylist(),
                        part.column("amount_count").to_pylist(),
                        part.column("amount_sum").to_pylist(),
                        pc.take(distinct_ts, part.column("ts_rank_min")).to_pylist(),
                        pc.take(distinct_ts, part.column("ts_rank_max")).to_pylist(),
                        strict=True,
                    ),
                )
        return int(grouped.num_rows)

    def _job_cache(self) -> dict[str, Any]:
        """Per-transaction memo (dropped at commit or rollback, so it never outlives the data)."""
        cache: dict[str, Any] | None = getattr(self._local, "job_cache", None)
        if cache is None:
            cache = {}
            self._local.job_cache = cache
        return cache

    # --- point reads ------------------------------------------------------------------------
    def resolve(self, entity_id: str) -> str | None:
        row = self._conn.execute(sql.RESOLVE, (entity_id,)).fetchone()
        return str(row[0]) if row else None

    def _node_from_row(self, row: tuple[Any, ...]) -> Node:
        nid, node_id, label_name, _name, source, line, job = row
        label = Label(label_name)
        columns = sql.node_props_columns(label)
        values = self._conn.execute(sql.node_props_by_nid(label), (nid,)).fetchone()
        props = (
            _decode_props(columns, values, NODE_SCHEMAS[label].props) if values is not None else {}
        )
        provenance = (
            Provenance(source, int(line), job) if source is not None and line is not None else None
        )
        return Node(int(nid), str(node_id), label, props, provenance)

    def get_node(self, entity_id: str) -> Node | None:
        canonical = self.resolve(entity_id)
        if canonical is None:
            return None
        row = self._conn.execute(sql.NODE_BY_ID, (canonical,)).fetchone()
        return self._node_from_row(row) if row else None

    def get_nodes_by_nid(self, nids: Sequence[int]) -> list[Node]:
        nodes = []
        for nid in nids:
            row = self._conn.execute(sql.NODE_BY_NID, (int(nid),)).fetchone()
            if row is not None:
                nodes.append(self._node_from_row(row))
        return nodes

    def aliases_of(self, entity_id: str) -> list[str]:
        canonical = self.resolve(entity_id)
        if canonical is None:
            return []
        return [r[0] for r in self._conn.execute(sql.ALIASES_OF, (canonical,))]

    def find_nodes(self, label: Label, prop: str, values: Sequence[str]) -> dict[str, str]:
        query = sql.find_nodes_by_prop(Label(label), prop)
        found: dict[str, str] = {}
        for value in dict.fromkeys(values):
            row = self._conn.execute(query, (value,)).fetchone()
            if row is not None:
                found[str(row[0])] = str(row[1])
        return found

    def neighbours(
        self, entity_id: str, rel_type: RelType, direction: Direction = Direction.BOTH
    ) -> list[Edge]:
        rel_type = RelType(rel_type)
        canonical = self.resolve(entity_id)
        if canonical is None:
            return []
        nid_row = self._conn.execute(sql.NID_BY_ID, (canonical,)).fetchone()
        nid = int(nid_row[0])
        queries = []
        if direction in (Direction.OUT, Direction.BOTH):
            queries.append(sql.neighbours_out(rel_type))
        if direction in (Direction.IN, Direction.BOTH):
            queries.append(sql.neighbours_in(rel_type))
        schema = REL_SCHEMAS[rel_type]
        columns = [*schema.props, "extra"]
        edges = []
        seen: set[tuple[str, str, str]] = set()
        for query in queries:
            for row in self._conn.execute(query, (nid,)):
                src, dst, key = row[0], row[1], row[2]
                if (src, dst, key) in seen:  # a self loop comes back from both directions
                    continue
                seen.add((src, dst, key))
                props = _decode_props(columns, row[3 : 3 + len(columns)], schema.props)
                source, line, job = row[3 + len(columns) :]
                provenance = Provenance(source, int(line), job) if line is not None else None
                edges.append(Edge(rel_type, src, dst, key, props, provenance))
        return edges

    def search(self, query: str, limit: int = 20) -> list[Node]:
        query = query.strip()
        if not query:
            return []
        nids: dict[int, None] = {}
        for statement, params in (
            (sql.SEARCH_EXACT, (query,)),
            (sql.SEARCH_NAME_PREFIX, (query, limit)),
            (sql.SEARCH_NAME_SUBSTRING, (query, limit)),
        ):
            for (nid,) in self._conn.execute(statement, params):
                nids.setdefault(int(nid))
            if len(nids) >= limit:
                break
        return self.get_nodes_by_nid(list(nids)[:limit])

    def count_nodes(self, label: Label | None = None) -> int:
        if label is None:
            return int(self._conn.execute(sql.COUNT_NODES).fetchone()[0])
        return int(self._conn.execute(sql.COUNT_NODES_LABEL, (Label(label).value,)).fetchone()[0])

    def count_edges(self, rel_type: RelType | None = None) -> int:
        types = list(RelType) if rel_type is None else [RelType(rel_type)]
        return sum(int(self._conn.execute(sql.count_edges(t)).fetchone()[0]) for t in types)

    def count_transactions(self) -> int:
        return int(self._conn.execute(sql.COUNT_TXNS).fetchone()[0])

    # --- streaming reads ---------------------------------------------------------------------
    def _stream(
        self, query: str, params: tuple[Any, ...], schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.Table]:
        # A dedicated connection: the stream stays consistent (one read snapshot) and does not
        # disturb the thread's own connection while the caller writes elsewhere.
        conn = self._conn if getattr(self._local, "depth", 0) > 0 else self._connect()
        try:
            cursor = conn.execute(query, params)
            while True:
                rows = cursor.fetchmany(batch_size)
                if not rows:
                    break
                columns = list(zip(*rows, strict=True))
                yield pa.Table.from_arrays(
                    [
                        _arrow_column(col, field.type)
                        for col, field in zip(columns, schema, strict=True)
                    ],
                    schema=schema,
                )
        finally:
            if conn is not self._conn:
                conn.close()
                with self._lock:
                    self._connections.remove(conn)

    def node_batches(
        self, label: Label | None = None, batch_size: int = 500_000
    ) -> Iterator[pa.Table]:
        base = [("nid", pa.int64()), ("id", pa.string()), ("label", pa.string())]
        if label is None:
            return self._stream(sql.NODE_BATCHES_ALL, (), pa.schema(base), batch_size)
        label = Label(label)
        fields = base + [(p, ARROW_TYPES[k]) for p, k in NODE_SCHEMAS[label].props.items()]
        return self._stream(sql.node_batches(label), (label.value,), pa.schema(fields), batch_size)

    def edge_batches(self, rel_type: RelType, batch_size: int = 500_000) -> Iterator[pa.Table]:
        rel_type = RelType(rel_type)
        fields = [("src", pa.int64()), ("dst", pa.int64()), ("key", pa.string())]
        fields += [(p, ARROW_TYPES[k]) for p, k in REL_SCHEMAS[rel_type].props.items()]
        return self._stream(sql.edge_batches(rel_type), (), pa.schema(fields), batch_size)

    def transaction_batches(self, batch_size: int = 500_000) -> Iterator[pa.Table]:
        """Stored transactions, one table per stored segment (`batch_size` is not used: a
        segment is the unit). Columns: txn_id, from_nid, to_nid, amount, ts, channel, and
        the provenance columns."""
        for (body,) in self._conn.execute(sql.TXN_SEGMENTS).fetchall():
            with pa.ipc.open_stream(body) as reader:
                yield reader.read_all()

    # --- inferred facts -----------------------------------------------------------------------
    def _inferred_ends(self, rows: pa.Table) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Node ids of the `src` and `dst` of each row (-1 where the id names no node)."""
        n = rows.num_rows
        if n == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        ends = pa.chunked_array(
            [
                *rows.column("src").cast(pa.string()).chunks,
                *rows.column("dst").cast(pa.string()).chunks,
            ],
            pa.string(),
        ).combine_chunks()
        encoded = ends.dictionary_encode()
        distinct: list[Any] = encoded.dictionary.to_pylist()
        conn = self._conn
        conn.execute(sql.INFERRED_STAGE_IDS_CREATE)
        conn.execute(sql.INFERRED_STAGE_IDS_CLEAR)
        conn.executemany(sql.INFERRED_STAGE_IDS_INSERT, enumerate(distinct))
        resolved = np.array(conn.execute(sql.INFERRED_STAGE_IDS_RESOLVE).fetchall(), np.int64)
        conn.execute(sql.INFERRED_STAGE_IDS_CLEAR)
        nid_of = np.full(len(distinct), -1, np.int64)
        if len(resolved):
            nid_of[resolved[:, 0]] = resolved[:, 1]
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        nids = np.where(indices >= 0, nid_of[np.maximum(indices, 0)], -1)
        return nids[:n], nids[n:]

    def _write_inferred(self, rows: pa.Table) -> int:
        """Upsert rows in primary-key order, in bounded chunks; rows whose ends are not
        nodes are skipped. Returns the number of rows written."""
        src, dst = self._inferred_ends(rows)
        known = np.flatnonzero((src >= 0) & (dst >= 0))
        if not len(known):
            return 0
        predicate = rows.column("predicate").cast(pa.string()).take(pa.array(known))
        keys = pa.table({"predicate": predicate, "src": src[known], "dst": dst[known]})
        # Appending in key order fills the clustered B-tree page by page.
        order = pc.sort_indices(
            keys,
            sort_keys=[("predicate", "ascending"), ("src", "ascending"), ("dst", "ascending")],
        ).to_numpy()
        rows_sorted = known[order]
        src_sorted, dst_sorted = src[rows_sorted], dst[rows_sorted]
        ordered = rows.take(pa.array(rows_sorted))
        conn = self._conn
        for start in range(0, len(rows_sorted), _WRITE_CHUNK):
            stop = start + _WRITE_CHUNK
            part = ordered.slice(start, _WRITE_CHUNK)
            conn.executemany(
                sql.INFERRED_INSERT,
                zip(
                    _column_values(part, "predicate"),
                    src_sorted[start:stop].tolist(),
                    dst_sorted[start:stop].tolist(),
                    _column_values(part, "rule"),
                    _column_values(part, "premises"),
                    _column_values(part, "value"),
                    strict=True,
                ),
            )
        return len(rows_sorted)

    def replace_inferred(self, rows: pa.Table, predicates: Sequence[str] | None = None) -> int:
        conn = self._conn
        with self.transaction():
            if predicates is None:
                conn.execute(sql.INFERRED_CLEAR_ALL)
            else:
                conn.executemany(sql.INFERRED_CLEAR_PREDICATE, [(p,) for p in predicates])
            rebuild = predicates is None and rows.num_rows >= _BULK_INFERRED
            if rebuild:
                for statement in sql.INFERRED_DROP_INDEXES:
                    conn.execute(statement)
            self._write_inferred(rows)
            if rebuild:
                for statement in sql.INFERRED_INDEXES:
                    conn.execute(statement)
        return int(rows.num_rows)

    def apply_inferred_delta(self, added: pa.Table, removed: pa.Table) -> None:
        conn = self._conn
        with self.transaction():
            src, dst = self._inferred_ends(removed)
            known = np.flatnonzero((src >= 0) & (dst >= 0))
            if len(known):
                predicate = removed.column("predicate").cast(pa.string())
                conn.executemany(
                    sql.INFERRED_DELETE,
                    zip(
                        predicate.take(pa.array(known)).to_pylist(),
                        src[known].tolist(),
                        dst[known].tolist(),
                        strict=True,
                    ),
                )
            self._write_inferred(added)

    def inferred_batches(
        self, predicate: str | None = None, batch_size: int = 500_000
    ) -> Iterator[pa.Table]:
        schema = pa.schema(
            [
                ("predicate", pa.string()),
                ("src", pa.int64()),
                ("dst", pa.int64()),
                ("rule", pa.string()),
                ("value", pa.float64()),
            ]
        )
        if predicate is None:
            return self._stream(sql.INFERRED_BATCHES_ALL, (), schema, batch_size)
        return self._stream(sql.INFERRED_BATCHES_PREDICATE, (predicate,), schema, batch_size)

    def get_inferred(
        self, src: str, predicate: str | None = None, dst: str | None = None
    ) -> list[InferredFact]:
        src_id = self.resolve(src)
        if src_id is None:
            return []
        src_nid = self._conn.execute(sql.NID_BY_ID, (src_id,)).fetchone()[0]
        dst_nid = None
        if dst is not None:
            dst_id = self.resolve(dst)
            if dst_id is None:
                return []
            dst_nid = self._conn.execute(sql.NID_BY_ID, (dst_id,)).fetchone()[0]
        facts = []
        for pred, a, b, rule, premises, value in self._conn.execute(
            sql.INFERRED_GET, (src_nid, predicate, dst_nid)
        ):
            facts.append(InferredFact(pred, a, b, rule, tuple(json.loads(premises)), value))
        return facts

    def count_inferred(self, predicate: str | None = None) -> int:
        if predicate is None:
            return int(self._conn.execute(sql.COUNT_INFERRED_ALL).fetchone()[0])
        return int(self._conn.execute(sql.COUNT_INFERRED_PREDICATE, (predicate,)).fetchone()[0])

    # --- documents ---------------------------------------------------------------------------
    def put_document(self, collection: str, key: str, body: dict[str, Any]) -> None:
        with self.transaction():
            self._conn.execute(
                sql.DOC_PUT, (collection, key, json.dumps(body, ensure_ascii=False, default=str))
            )

    def get_document(self, collection: str, key: str) -> dict[str, Any] | None:
        row = self._conn.execute(sql.DOC_GET, (collection, key)).fetchone()
        return json.loads(row[0]) if row else None

    def list_documents(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        return [(k, json.loads(b)) for k, b in self._conn.execute(sql.DOC_LIST, (collection,))]

    def delete_documents(self, collection: str, keys: Sequence[str] | None = None) -> int:
        with self.transaction():
            if keys is None:
                return int(self._conn.execute(sql.DOC_DELETE_ALL, (collection,)).rowcount)
            return sum(
                int(self._conn.execute(sql.DOC_DELETE_KEY, (collection, k)).rowcount) for k in keys
            )
