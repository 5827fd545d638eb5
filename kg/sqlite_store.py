"""The embedded default store: one SQLite file in WAL mode.

Readers (the API) never block on the nightly writer: WAL lets every thread read the last
committed state while one writer works. Each thread gets its own connection; a job's writes
run inside `transaction()` and commit together or not at all.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg import inferred_blocks as blocks
from kg import sql
from kg import transfer_blocks as transfers
from kg.fingerprints import SortedFingerprints, sorted_member, string_fingerprints
from kg.id_index import ALL_LABELS, LABELS, NodeIdIndex
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
    NODE_COLUMNS,
    SCHEMA_VERSION,
    TRANSFERS_DERIVED,
    InferredColumns,
    Premises,
    SchemaVersionError,
    StoreCapabilities,
    StoreError,
    edge_schema,
)

_WRITE_CHUNK = 50_000
# Look-ups the bulk load's node index remembers: the ingest job checks up to two groups of a
# file's columns in it, then the store looks the same columns up to write them.
_REMEMBERED_LOOKUPS = 4
_INFERRED_BATCH_SCHEMA = pa.schema(
    [
        ("predicate", pa.string()),
        ("src", pa.int64()),
        ("dst", pa.int64()),
        ("rule", pa.string()),
        ("value", pa.float64()),
    ]
)
# Rows per INSERT statement (at most; fewer when a row has many columns).
_ROWS_PER_STATEMENT = 64
# Rows per stored segment of a columnar copy (one compressed Arrow stream per column).
_COPY_SEGMENT_ROWS = 2_000_000
# The columnar copy of the node list (nid, id, label); edge copies are named by `_edges_copy`.
_NODES_COPY = "nodes"
_NODE_COPY_SCHEMA = pa.schema([("nid", pa.int64()), ("id", pa.string()), ("label", pa.string())])


# Relationship types kept as rows; TRANSFERRED is kept as blocks (`kg.transfer_blocks`).
_ROW_TYPES = tuple(t for t in RelType if t is not RelType.TRANSFERRED)


def _edges_copy(rel_type: RelType) -> str:
    return f"edges:{rel_type.value}"


def _ipc_column(name: str, column: pa.Array | pa.ChunkedArray) -> pa.Buffer:
    """One column as an LZ4-compressed Arrow IPC stream (LZ4 rather than zstd: it decodes
    about twice as fast, and decoding is most of a projection's read)."""
    table = pa.table({name: column})
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _decode_segment(body: bytes) -> pa.ChunkedArray:
    with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
        column: pa.ChunkedArray = reader.read_all().column(0)
    return column


# A `txn_segments` row: transactions, job, the compressed segment.
_SegmentRow = tuple[int, str | None, bytes]


def _segment_row(segment: pa.Table) -> _SegmentRow:
    """A table of transactions as a `txn_segments` row (one zstd Arrow IPC stream)."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, segment.schema, options=options) as writer:
        writer.write_table(segment)
    job = segment.column("_job")[0].as_py() if "_job" in segment.column_names else None
    return segment.num_rows, job, sink.getvalue().to_pybytes()


def _empty_strings(n: int) -> pa.Array:
    """n empty strings, built from buffers (no Python object per row)."""
    offsets = pa.py_buffer(np.zeros(n + 1, np.int32).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(b"")])


def _aggregate_transfers(parts: list[pa.Table]) -> pa.Table:
    """TRANSFERRED edges from transactions (`from_nid`, `to_nid`, `amount`, `ts`): one row
    per account pair in (src, dst) order with count, amount sum and the first and last
    timestamp (ISO text, so the smallest and largest string).

    Sorted with numpy on one int64 key per transaction; only pairs with several
    transactions need their timestamps compared, so the strings are never sorted wholesale.
    The parts are emptied once their columns are copied into whole arrays (a rebuild is the
    job's memory peak: the tables go as soon as they can).
    """
    table = pa.concat_tables(parts)
    parts.clear()
    src = table.column("from_nid").to_numpy()
    dst = table.column("to_nid").to_numpy()
    amount = table.column("amount").to_numpy()
    raw_ts = table.column("ts").combine_chunks()
    del table
    order = transfers.pair_order(src, dst)
    src, dst = src[order], dst[order]
    new_pair = np.ones(src.size, dtype=bool)
    new_pair[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    starts = np.flatnonzero(new_pair)
    counts = np.diff(np.append(starts, src.size))
    amounts: npt.NDArray[np.float64] = np.zeros(starts.size)
    if starts.size:
        amounts = np.add.reduceat(amount[order], starts)
    del amount

    def ts(sorted_rows: npt.NDArray[np.int64]) -> pa.Array:
        """Timestamps at positions of the sorted order (only those are taken: the column
        in full order is never built)."""
        return raw_ts.take(pa.array(order[sorted_rows]))

    first, last = starts.copy(), starts + counts - 1
    repeated = np.flatnonzero(counts > 1)
    if repeated.size:
        # Rows of the pairs with several transactions, ordered by (pair, ts): the first of a
        # pair with nulls last, the last of a pair with nulls first (nulls never win).
        rows = np.flatnonzero(np.repeat(counts > 1, counts))
        keys = pa.table(
            {"g": np.repeat(np.arange(repeated.size), counts[repeated]), "ts": ts(rows)}
        )
        ends = np.cumsum(counts[repeated])
        for placement, target, at in (
            ("at_end", first, ends - counts[repeated]),
            ("at_start", last, ends - 1),
        ):
            by_ts = pc.sort_indices(
                keys, sort_keys=[("g", "ascending", "at_end"), ("ts", "ascending", placement)]
            )
            target[repeated] = rows[by_ts.to_numpy()[at]]
    first_ts = ts(first)
    # A pair of one transaction (most of them) has its first timestamp as its last.
    last_ts = first_ts
    if repeated.size:
        several = np.zeros(starts.size, bool)
        several[repeated] = True
        last_ts = pc.replace_with_mask(first_ts, pa.array(several), ts(last[repeated]))
    return pa.table(
        {
            "src": src[starts],
            "dst": dst[starts],
            "key": _empty_strings(starts.size),
            "count": counts.astype(np.int64),
            "total_amount": pa.array(amounts, pa.float64()),
            "first_ts": first_ts,
            "last_ts": last_ts,
        }
    ).cast(edge_schema(RelType.TRANSFERRED))


def _copy_layout(table: pa.Table, name: str) -> pa.Table:
    """How a table is kept in a columnar copy: node labels dictionary-encoded (five values
    over millions of rows)."""
    if name != _NODES_COPY:
        return table
    index = table.schema.get_field_index("label")
    return table.set_column(index, "label", pc.dictionary_encode(table.column("label")))


# Values bound to a column of an INSERT: one per row, or `repeat(v)` for the same in every row
# (`repeat[Any]` as a string: the class is not subscriptable at runtime).
Values = Union[list[Any], "repeat[Any]"]


def _rows_at(column: Values, rows: list[int]) -> Values:
    return column if isinstance(column, repeat) else [column[i] for i in rows]


def _tables_from_rows(
    cursor: sqlite3.Cursor, schema: pa.Schema, batch_size: int
) -> Iterator[pa.Table]:
    """The rows of a query as Arrow tables of at most `batch_size` rows."""
    while True:
        rows = cursor.fetchmany(batch_size)
        if not rows:
            break
        columns = list(zip(*rows, strict=True))
        yield pa.Table.from_arrays(
            [_arrow_column(col, field.type) for col, field in zip(columns, schema, strict=True)],
            schema=schema,
        )


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


# Columns one batch of the ingest fills with one value (its file, its job; `key` of most
# edge types), worth a check that lets them be bound once per statement.
_OFTEN_CONSTANT = frozenset({"_source", "_job", "key"})


def _bound(table: pa.Table, name: str, kind: PropType | None = None) -> Values:
    """A column as `_insert_columns` binds it: `repeat(None)` when absent or all null, one
    repeated value for a constant provenance or key column, else the values."""
    if name not in table.column_names or table.column(name).null_count == table.num_rows:
        return repeat(None)
    column = table.column(name)
    if name in _OFTEN_CONSTANT and column.null_count == 0 and table.num_rows:
        bounds = pc.min_max(column)
        if bounds["min"] == bounds["max"]:
            return repeat(_column_values(table.slice(0, 1), name, kind)[0])
    return _column_values(table, name, kind)


def _text_column(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    """A column as text the way `_column_values` binds it (dates and timestamps in ISO
    form), staying in Arrow; null when absent."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table.column(name)
    if pa.types.is_string(column.type) or pa.types.is_null(column.type):
        return column.cast(pa.string())
    return pa.array(_column_values(table, name, "str"), pa.string())


def _arrow_column(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    if pa.types.is_boolean(type_):  # SQLite keeps booleans as 0/1
        return pa.array([None if v is None else bool(v) for v in values], type_)
    return pa.array(values, type=type_)


def _extra_json(table: pa.Table, known: set[str]) -> Values:
    """Unknown columns are kept as properties: one JSON object per row, None when all null
    (`repeat(None)` when there are no unknown columns)."""
    extra_cols = [c for c in table.column_names if c not in known]
    if not extra_cols:
        return repeat(None)
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


def _inferred_batch(
    cols: Sequence[npt.NDArray[Any]], names: pa.Array, position: npt.NDArray[np.int64]
) -> pa.Table:
    """An `inferred_batches` table from (predicate code, src, dst, rule code, value) columns;
    `names[position[code]]` is a term's name."""
    predicate, src, dst, rule, value = cols
    return pa.table(
        {
            "predicate": names.take(pa.array(position[predicate])),
            "src": src,
            "dst": dst,
            "rule": names.take(pa.array(position[rule])),
            "value": pa.array(value, pa.float64(), from_pandas=True),
        },
        schema=_INFERRED_BATCH_SCHEMA,
    )


def _predicate_columns(
    conn: sqlite3.Connection, predicate: int
) -> Iterator[tuple[npt.NDArray[Any], ...]]:
    """(predicate code, src, dst, rule code, value) columns of the stored facts of a
    predicate: its blocks in src order without the keys `inferred_rows` overrides, then the
    rows that are not retractions."""
    rows = conn.execute(sql.INFERRED_ROWS_OF_PREDICATE, (predicate,)).fetchall()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 5
    row_src, row_dst = np.array(cols[0], np.int64), np.array(cols[1], np.int64)
    overridden = np.sort(blocks.packed_keys(row_src, row_dst))
    for count, keys in conn.execute(sql.INFERRED_BLOCK_KEYS, (predicate,)):
        src, dst, rule, value = blocks.decode_keys(keys, count)
        if len(overridden):
            keep = ~np.isin(blocks.packed_keys(src, dst), overridden)
            src, dst, rule, value = src[keep], dst[keep], rule[keep], value[keep]
        yield np.full(len(src), predicate, np.int32), src, dst, rule, value
    live = np.flatnonzero(np.array(cols[4], bool) == 0)
    if len(live):
        value = pa.array(cols[3], pa.float64()).to_numpy(zero_copy_only=False)
        yield (
            np.full(len(live), predicate, np.int32),
            row_src[live],
            row_dst[live],
            np.array(cols[2], np.int32)[live],
            value[live],
        )


def _term_codes(conn: sqlite3.Connection, names: Sequence[str]) -> npt.NDArray[np.int32]:
    """The `inferred_terms` code of each name (new names get a code)."""
    conn.executemany(sql.INFERRED_TERM_ADD, [(name,) for name in set(names)])
    code_of: dict[str, int] = dict(conn.execute(sql.INFERRED_TERMS).fetchall())
    return np.array([code_of[name] for name in names], np.int32)


def _insert_blocks(conn: sqlite3.Connection, predicate: int, facts: blocks.Facts) -> None:
    """Sorted facts of one predicate (no key twice) as new blocks."""
    conn.executemany(
        sql.INFERRED_BLOCK_INSERT,
        ((predicate, *block) for block in blocks.encode_blocks(facts)),
    )


class _BlockWriter:
    """Writes consecutive `InferredColumns` parts as blocks on one connection; the last
    block of a part waits, since the next part of the predicate may continue its src."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.written = 0
        self.done: set[str] = set()
        self.predicate: str | None = None
        self.code = 0
        self.pending: blocks.Facts | None = None

    def add(self, part: InferredColumns) -> None:
        code = self.code
        if part.predicate != self.predicate:
            code = int(_term_codes(self.conn, [part.predicate])[0])
        self.add_facts(part.predicate, code, self._coded(part))

    def add_facts(self, predicate: str, code: int, facts: blocks.Facts) -> None:
        """Facts of `predicate` (term `code`) in store codes, continuing any before."""
        if predicate != self.predicate:
            self.finish()
            if predicate in self.done:
                raise StoreError(f"inferred facts of {predicate} must arrive in consecutive parts")
            self.done.add(predicate)
            self.predicate, self.code = predicate, code
        self.written += len(facts)
        if self.pending is not None:
            facts = blocks.concat_facts([self.pending, facts])
        if not blocks.is_sorted(facts):
            raise StoreError(f"inferred facts of {predicate} are not in key order")
        facts = blocks.last_of_equal_keys(facts)
        # The last block may continue in the next part: it waits.
        cut = int(blocks.block_cuts(facts)[-1]) if len(facts) else 0
        if cut:
            _insert_blocks(self.conn, self.code, facts.slice(0, cut))
        self.pending = facts.slice(cut, len(facts))

    def finish(self) -> None:
        if self.pending is not None and len(self.pending):
            _insert_blocks(self.conn, self.code, self.pending)
        self.pending = None

    def _coded(self, part: InferredColumns) -> blocks.Facts:
        """A part with its names turned into `inferred_terms` codes."""
        codes = np.append(_term_codes(self.conn, list(part.names)), np.int32(-1))
        p = part.premises
        premises = Premises(
            p.offsets, p.kind, codes[p.name], codes[p.rule], p.a, p.b, p.size, p.text
        )
        return blocks.Facts(
            part.src.astype(np.int64),
            part.dst.astype(np.int64),
            codes[part.rule],
            part.value.astype(np.float64),
            premises,
        )


class _V3Segments:
    """Premises texts of schema-3 rows: inline, or an item of a zstd segment (int64 offsets,
    then the texts: the layout of an Arrow large_string array, so a segment decodes whole)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.cache: dict[int, pa.Array] = {}

    def _segment(self, segment: int) -> pa.Array:
        if segment not in self.cache:
            if len(self.cache) > 256:  # rows come in key order, segments nearly so
                self.cache.clear()
            items, size, body = self.conn.execute(sql.INFERRED_V3_SEGMENT, (segment,)).fetchone()
            raw = pa.py_buffer(pa.decompress(body, size, codec="zstd", asbytes=True))
            header = 8 * (items + 1)
            self.cache[segment] = pa.Array.from_buffers(
                pa.large_string(), items, [None, raw.slice(0, header), raw.slice(header)]
            )
        return self.cache[segment]

    def texts(
        self, inline: Sequence[str | None], segment: Sequence[int | None], item: Sequence[Any]
    ) -> pa.Array:
        """The premises text of each row."""
        seg = np.array([-1 if s is None else s for s in segment], np.int64)
        at = np.flatnonzero(seg >= 0)
        if not len(at):
            return pa.array(inline, pa.large_string())
        used = np.unique(seg[at]).tolist()
        pool = pa.chunked_array([self._segment(s) for s in used], pa.large_string())
        sizes = np.array([len(self._segment(s)) for s in used], np.int64)
        base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        items = np.array([0 if i is None else i for i in item], np.int64)
        index = base[np.searchsorted(used, seg[at])] + items[at]
        taken = pool.take(pa.array(index)).combine_chunks()
        if len(at) == len(seg):
            return taken
        rest = np.flatnonzero(seg < 0)
        loose = pa.array([inline[i] for i in rest.tolist()], pa.large_string())
        order = np.empty(len(seg), np.int64)
        order[np.concatenate([at, rest])] = np.arange(len(seg))
        joined = pa.chunked_array([taken, loose], pa.large_string()).take(pa.array(order))
        return joined.combine_chunks()


def _valid(array: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=bool)


def _strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one string array (ids and keys may arrive as numbers)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


class _TxnIds:
    """The txn_ids stored so far, to skip the ones seen before.

    A batch is checked against 64-bit fingerprints of their bytes kept sorted, so its
    cost does not grow with what is stored; only rows whose fingerprint was seen before (a
    repeat, or a rare collision) are compared as strings.
    """

    def __init__(self) -> None:
        self._chunks: list[tuple[pa.Array, npt.NDArray[np.int64]]] = []
        self._seen = SortedFingerprints()

    def add(self, txn_ids: pa.Array, prints: npt.NDArray[np.int64] | None = None) -> None:
        """Txn_ids now stored (`prints` their fingerprints, when known)."""
        prints = string_fingerprints(txn_ids) if prints is None else prints
        self._chunks.append((txn_ids, prints))
        self._seen.add(prints)

    def new_rows(self, txn_ids: pa.Array) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """True on the first row of each txn_id not stored yet; and every row's fingerprint
        (for `add`)."""
        prints = string_fingerprints(txn_ids)
        order = np.argsort(prints)
        ordered = prints[order]
        same = ordered[1:] == ordered[:-1]
        suspect = np.zeros(len(prints), bool)
        suspect[order[1:][same]] = True
        suspect[order[:-1][same]] = True
        suspect[order[self._seen.contains(ordered)]] = True
        keep = ~suspect
        rows = np.flatnonzero(suspect)
        if rows.size:
            values = txn_ids.take(pa.array(rows))
            stored = [ids.filter(pa.array(np.isin(p, prints[rows]))) for ids, p in self._chunks]
            old = np.zeros(rows.size, bool)
            if stored:
                old = np.asarray(pc.is_in(values, value_set=pa.concat_arrays(stored)), bool)
            codes = pc.index_in(values, value_set=pc.unique(values)).to_numpy()
            first = np.zeros(rows.size, bool)
            first[np.unique(codes, return_index=True)[1]] = True
            keep[rows[first & ~old]] = True
        return keep, prints


@dataclass(slots=True)
class _BulkLoad:
    """What a bulk load keeps while it runs (see `SQLiteStore.bulk_load`)."""

    nodes: NodeIdIndex
    # CREATE statements of the secondary indexes dropped for the load, built at its end.
    indexes: list[str]
    # The nid the next new node gets.
    next_nid: int
    # Relationship types whose table was empty when the load began, with the rows written
    # since in write order (src, dst, key and properties, as the columnar copy keeps them);
    # a type leaves the map when a write cannot be mirrored exactly.
    edges: dict[RelType, list[pa.Table]]
    # Whether transactions were written yet (see `SQLiteStore._flush_bulk_load`).
    transactions_begun: bool = False
    # The flush that runs on a worker thread while transactions are read (see
    # `SQLiteStore._flush_bulk_load`).
    flushing: Future[None] | None = None
    flusher: ThreadPoolExecutor | None = None
    # Transaction segments being compressed on the encoder's thread or waiting for the
    # connection, in order (see `SQLiteStore.insert_transactions`).
    segments: deque[Future[_SegmentRow]] = dataclasses.field(default_factory=deque)
    encoder: ThreadPoolExecutor | None = None
    # The columns the transfer rebuild needs of every transaction this load wrote, when the
    # store held none before it (None otherwise: the rebuild reads the segments back).
    transfers: list[pa.Table] | None = None


_EDGE_KEY = [("src", "ascending"), ("dst", "ascending"), ("key", "ascending")]
# The transaction columns TRANSFERRED is aggregated from (`_aggregate_transfers`).
_TRANSFER_INPUT = ("from_nid", "to_nid", "amount", "ts")


def _copy_rows(
    rel_type: RelType,
    src: npt.NDArray[np.int64],
    dst: npt.NDArray[np.int64],
    keys: pa.Array,
    rows: pa.Table,
) -> pa.Table | None:
    """Written edge rows as the columnar copy keeps them, or None when a property column
    would not read back from the rows as it is (another type, or NaN, which SQLite keeps as
    NULL)."""
    schema = edge_schema(rel_type)
    columns: dict[str, Any] = {"src": pa.array(src), "dst": pa.array(dst), "key": keys}
    for field in schema:
        if field.name in columns:
            continue
        column = rows.column(field.name) if field.name in rows.column_names else None
        if column is None or column.type == pa.null():
            column = pa.nulls(rows.num_rows, field.type)
        elif column.type != field.type or (
            pa.types.is_floating(field.type) and pc.any(pc.is_nan(column)).as_py()
        ):
            return None
        columns[field.name] = column
    return pa.table(columns, schema=schema)


def _merge_edge_rows(table: pa.Table) -> pa.Table:
    """Edge rows in write order as the table ends up holding them: one row per (src, dst,
    key), in key order, each property the last non-null value written (the upsert's
    COALESCE)."""
    table = table.take(pc.sort_indices(table, sort_keys=_EDGE_KEY))
    if table.num_rows < 2:
        return table
    src, dst = table.column("src").to_numpy(), table.column("dst").to_numpy()
    keys = table.column("key")
    same_key = pc.equal(keys.slice(1), keys.slice(0, table.num_rows - 1))
    same = (src[1:] == src[:-1]) & (dst[1:] == dst[:-1]) & _valid_true(same_key)
    if not same.any():
        return table
    grouped = np.zeros(table.num_rows, bool)
    grouped[1:] |= same
    grouped[:-1] |= same
    props = [c for c in table.column_names if c not in ("src", "dst", "key")]
    merged = (
        table.filter(pa.array(grouped))
        .group_by(["src", "dst", "key"], use_threads=False)
        .aggregate([(c, "last") for c in props])
    )
    aggregated = {f"{c}_last": c for c in props}
    merged = merged.rename_columns([aggregated.get(c, c) for c in merged.column_names])
    combined = pa.concat_tables(
        [table.filter(pa.array(~grouped)), merged.select(table.column_names).cast(table.schema)]
    )
    return combined.take(pc.sort_indices(combined, sort_keys=_EDGE_KEY))


def _valid_true(mask: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


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
        columnar_reads=True,
        inferred_columns=True,
    )

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._keys_of_blocks: dict[int, npt.NDArray[np.int64]] = {}
        self._keys_version: tuple[int, int] | None = None
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
        self._has_columnar = self._ensure_columnar_tables()

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
        bulk = self._bulk()
        if bulk is not None and (bulk.flushing is not None or bulk.segments):
            # The connection is the worker's until its flush is done, and the segments
            # compressed meanwhile come first.
            self._write_segments(bulk, conn, wait=True)
        return conn

    def _insert_columns(self, statement: str, columns: Sequence[Values]) -> None:
        """A one-row INSERT over column lists (a `repeat` for a constant; at least one list),
        sent as statements of many rows each, in row order. A constant is bound once per
        statement (NULL is written as the literal), not once per row."""
        constants: list[bool | None] = []
        shared: list[Any] = []
        for column in columns:
            if not isinstance(column, repeat):
                constants.append(False)
                continue
            value = next(column)
            constants.append(None if value is None else True)
            if value is not None:
                shared.append(value)
        varying = [c for c in columns if not isinstance(c, repeat)]
        width = len(varying)
        values = list(chain.from_iterable(zip(*varying, strict=True)))
        count = len(values) // width
        per = max(1, min(_ROWS_PER_STATEMENT, (sql.MAX_PARAMETERS - len(shared)) // width))
        full = count // per
        if full:
            step = per * width
            self._conn.executemany(
                sql.multi_row(statement, per, tuple(constants)),
                # One statement's parameters at a time (a list of all of them would be
                # thousands of live lists for the garbage collector to walk).
                (shared + values[i * step : (i + 1) * step] for i in range(full)),
            )
        if count % per:
            self._conn.execute(
                sql.multi_row(statement, count % per, tuple(constants)),
                shared + values[full * per * width :],
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0) > 0:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only; it cannot be written")
        conn = self._conn
        rollback_journal = self._leave_wal_if_empty(conn)
        self._execute_write(conn, "BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield
        except sqlite3.Error as exc:
            # Disk full, I/O errors, a file gone read-only: said in words, never half-written.
            conn.execute("ROLLBACK")
            self._forget_block_keys()
            raise StoreError(
                f"store {self.path}: write failed, nothing was written: {exc}"
            ) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            self._forget_block_keys()
            raise
        else:
            self._execute_write(conn, "COMMIT")
        finally:
            self._local.depth = 0
            self._local.job_cache = None
            if rollback_journal:
                # A connection opened meanwhile may hold the file: it then set WAL mode itself
                # (every connection does), or the next one will.
                with suppress(sqlite3.OperationalError):
                    for pragma in sql.BACK_TO_WAL:
                        conn.execute(pragma)

    @staticmethod
    def _leave_wal_if_empty(conn: sqlite3.Connection) -> bool:
        """Whether a job into an empty store runs with a rollback journal (the store goes
        back to WAL after it).

        In WAL mode every page a load writes goes to the log, is found there again through
        the log's index each time it is read back, and is copied into the file by the
        checkpoint after the commit: a 1M-customer load writes 2 GB twice. With a rollback
        journal, pages new to the file go straight into it (the journal keeps only the
        originals of the few pages that existed, so a rollback still restores the store).
        It needs the file to itself: when another connection has it open, the job stays in
        WAL mode, as it would into a store that has nodes (whose readers WAL keeps going). A
        reader that opens the file during such a job waits for its commit (up to the busy
        timeout).
        """
        try:
            if conn.execute(sql.ANY_NODE).fetchone() is not None:
                return False
        except sqlite3.OperationalError:
            return False  # a new file, before its tables (the migration)
        conn.execute("PRAGMA busy_timeout=0")
        try:
            mode = conn.execute(sql.INTO_EMPTY_STORE[0]).fetchone()[0]
        except sqlite3.OperationalError:
            return False  # another connection has the file open
        finally:
            conn.execute(f"PRAGMA busy_timeout={sql.BUSY_TIMEOUT_MS}")
        if mode != "delete":
            return False
        for pragma in sql.INTO_EMPTY_STORE[1:]:
            conn.execute(pragma)
        return True

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0) == 0:
            raise StoreError("bulk_load() must run inside transaction()")
        if self._bulk() is not None:
            yield
            return
        conn = self._conn
        empty = self.count_nodes() == 0
        # Building an index from sorted data at the end is far cheaper than millions of
        # random B-tree inserts; the drop is part of the job's transaction, so a failed
        # job rolls it back with everything else.
        dropped = conn.execute(sql.SECONDARY_INDEXES).fetchall() if empty else []
        for name, _ in dropped:
            conn.execute(f'DROP INDEX "{name}"')
        bulk = _BulkLoad(
            NodeIdIndex(remembered=_REMEMBERED_LOOKUPS)
            if empty
            else NodeIdIndex.of(self.node_columns(), remembered=_REMEMBERED_LOOKUPS),
            [create for _, create in dropped],
            int(conn.execute(sql.NEXT_NID).fetchone()[0]),
            {t: [] for t in _ROW_TYPES if not conn.execute(sql.rel_has_rows(t)).fetchone()[0]},
            transfers=[] if conn.execute(sql.ANY_TXN_SEGMENT).fetchone() is None else None,
        )
        self._local.bulk = bulk
        try:
            yield
            self._flush_bulk_load(bulk, final=True)
        finally:
            # The workers are done (with the connection, after a failed job) before the
            # commit or the rollback.
            for pool in (bulk.flusher, bulk.encoder):
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
            self._local.bulk = None
        # In the same transaction: the first projection after a load reads columns, not rows
        # (the copies the load could not keep are read back from the rows).
        self.refresh_columnar_copies()

    def _flush_bulk_load(self, bulk: _BulkLoad, *, final: bool) -> None:
        """Build the indexes the load dropped and write the columnar copies from what the load
        kept (nothing read back from the rows).

        When transactions begin (not final), the nodes and edges they connect are taken as
        complete, and all of it runs on a worker thread, on this job's connection, while the
        transactions are read: index builds are SQLite's and compression is Arrow's, so the
        two cores share the work. The transactions touch no SQL meanwhile (their segments
        wait in memory), and any other use of the connection first waits for the worker
        (`_conn`). Writing the edge copies frees what was kept for them before the transfer
        rebuild, the job's peak. An edge or node written later leaves its copy stale, and the
        end of the load reads that copy back from the rows.
        """
        conn = self._conn
        indexes, bulk.indexes = bulk.indexes, []
        due: list[tuple[str, pa.Schema, list[pa.Table] | None]] = []
        if self._has_columnar:
            due.append((_NODES_COPY, _NODE_COPY_SCHEMA, None))
            due += [
                (_edges_copy(t), edge_schema(t), kept) for t, kept in bulk.edges.items() if kept
            ]
        bulk.edges.clear()

        def flush() -> None:
            for create in indexes:
                conn.execute(create)
                # The transaction segments compressed meanwhile, so that they do not all
                # wait in memory (a third of a GB at a million customers).
                self._insert_ready_segments(bulk, conn)
            for name, schema, kept in due:
                if self._copy_is_current(conn, name):
                    continue
                table = (
                    bulk.nodes.table() if kept is None else _merge_edge_rows(pa.concat_tables(kept))
                )
                self._write_copy(
                    name,
                    schema,
                    (
                        _copy_layout(table.slice(start, _COPY_SEGMENT_ROWS), name)
                        for start in range(0, table.num_rows, _COPY_SEGMENT_ROWS)
                    ),
                    conn,
                )

        if final:
            flush()
        else:
            bulk.flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskgraph-flush")
            bulk.flushing = bulk.flusher.submit(flush)

    @staticmethod
    def _write_segments(bulk: _BulkLoad, conn: sqlite3.Connection, *, wait: bool) -> None:
        """Insert the compressed transaction segments, in order, once the worker's flush is
        done (raising what either raised). Without `wait`, only what is ready is written."""
        if bulk.flushing is not None:
            if not wait and not bulk.flushing.done():
                return
            flushing, bulk.flushing = bulk.flushing, None
            flushing.result()
        if not wait:
            SQLiteStore._insert_ready_segments(bulk, conn)
            return
        while bulk.segments:
            conn.execute(sql.TXN_SEGMENT_INSERT, bulk.segments.popleft().result())

    @staticmethod
    def _insert_ready_segments(bulk: _BulkLoad, conn: sqlite3.Connection) -> None:
        """Insert the compressed segments at the head of the queue, in order. Only the
        thread that holds the connection calls it: the worker while it flushes, else the
        job (the job only appends meanwhile, which a deque allows from another thread)."""
        while bulk.segments and bulk.segments[0].done():
            conn.execute(sql.TXN_SEGMENT_INSERT, bulk.segments.popleft().result())

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
                if version == 4:
                    self._carry_inferred_into_blocks()
                if version == 6:
                    self._carry_transfers_into_blocks()
                for statement in sql.MIGRATION_CLEANUP.get(version, []):
                    conn.execute(statement)
                conn.execute(sql.SET_META, ("schema_version", str(version)))

    def schema_version(self) -> int:
        row = self._conn.execute(sql.GET_META, ("schema_version",)).fetchone()
        return int(row[0]) if row else 0

    def _ensure_columnar_tables(self) -> bool:
        """Create the columnar-copy tables when missing (a file from before them); returns
        whether they exist. A read-only store without them reads rows."""
        conn = self._conn
        if conn.execute(sql.TABLE_EXISTS, ("columnar_segments",)).fetchone() is not None:
            return True
        if self.read_only:
            return False
        with self.transaction():
            for statement in sql.COLUMNAR_TABLES:
                conn.execute(statement)
        return True

    # --- writes -----------------------------------------------------------------------------
    def upsert_nodes(self, label: Label, rows: pa.Table) -> int:
        label = Label(label)
        if rows.num_rows == 0:
            return 0
        if "id" not in rows.column_names or rows.column("id").null_count:
            raise StoreError(f"{label.value} rows without an id")
        ids = _strings(rows.column("id"))
        with self.transaction():
            nids, codes = self._lookup_nodes(ids, ALL_LABELS)
            clash = np.flatnonzero((codes >= 0) & (codes != LABELS.index(label)))
            if clash.size:
                shown = ", ".join(
                    f"{ids[int(i)].as_py()} (a {LABELS[codes[i]].value})" for i in clash[:5]
                )
                raise StoreError(f"cannot store {label.value} nodes: ids already used by {shown}")
            self._invalidate_copy(_NODES_COPY)
            # The first row of a new id creates its node, with the next free nid; every later
            # row of that id, and every row of a known id, merges into the node.
            created = np.zeros(rows.num_rows, bool)
            if (nids < 0).any():
                encoded = ids.dictionary_encode()
                positions = encoded.indices.to_numpy()
                created[np.unique(positions, return_index=True)[1]] = True
                created &= nids < 0
                bulk = self._bulk()
                if bulk is None:
                    first_nid = int(self._conn.execute(sql.NEXT_NID).fetchone()[0])
                else:
                    first_nid, bulk.next_nid = bulk.next_nid, bulk.next_nid + int(created.sum())
                nid_of = np.full(len(encoded.dictionary), -1, np.int64)
                nid_of[positions[created]] = np.arange(first_nid, first_nid + created.sum())
                nids = np.where(nids < 0, nid_of[positions], nids)
            for part in (created, ~created):
                at = np.flatnonzero(part)
                if at.size:
                    chosen = rows if at.size == rows.num_rows else rows.take(pa.array(at))
                    self._write_node_rows(label, chosen, nids[at], new=part is created)
            bulk = self._bulk()
            if bulk is not None:
                at = pa.array(np.flatnonzero(created))
                bulk.nodes.add(label, ids.take(at), nids[created])
                # The file's edges name these nodes next (an account's OWNS_ACCOUNT edge, a
                # loan's BORROWED edge): their look-up is known.
                code = np.full(len(ids), LABELS.index(label), np.int8)
                bulk.nodes.remember(frozenset({label}), ids, code, nids)
        return int(rows.num_rows)

    def _write_node_rows(
        self, label: Label, rows: pa.Table, nids: npt.NDArray[np.int64], *, new: bool
    ) -> None:
        """Rows of new nodes (inserted) or of known ones (merged into them), in chunks."""
        schema = NODE_SCHEMAS[label]
        known = {"id", *schema.props, *PROVENANCE_COLUMNS}
        has_name = "name" in schema.props
        for start in range(0, rows.num_rows, _WRITE_CHUNK):
            chunk = rows.slice(start, _WRITE_CHUNK)
            chunk_nids = nids[start : start + _WRITE_CHUNK].tolist()
            names = _bound(chunk, "name", "str") if has_name else repeat(None)
            if new:
                ids = _column_values(chunk, "id", "str")
                provenance = [_bound(chunk, c) for c in PROVENANCE_COLUMNS]
                self._insert_columns(
                    sql.NODES_INSERT, [chunk_nids, ids, repeat(label.value), names, *provenance]
                )
            elif has_name:
                pairs = zip(names, chunk_nids, strict=False)  # names may be repeat(None)
                self._conn.executemany(sql.NODE_NAME_MERGE, [p for p in pairs if p[0] is not None])
            props: list[Values] = [
                chunk_nids,
                *(_bound(chunk, p, k) for p, k in schema.props.items()),
                _extra_json(chunk, known),
            ]
            if not any(p in chunk.column_names for p in schema.props):
                # Nothing but maybe unknown columns (devices): a node without properties
                # needs no row in its label's table.
                extra = props[-1]
                kept = []
                if not isinstance(extra, repeat):
                    kept = [i for i, e in enumerate(extra) if e is not None]
                props = [_rows_at(column, kept) for column in props]
                if not kept:
                    continue
            self._insert_columns(sql.node_props_upsert(label), props)

    def upsert_edges(self, rel_type: RelType, rows: pa.Table) -> int:
        rel_type = RelType(rel_type)
        if rel_type is RelType.TRANSFERRED:
            raise StoreError(TRANSFERS_DERIVED)
        schema = REL_SCHEMAS[rel_type]
        known = {"src", "dst", "key", *schema.props, *PROVENANCE_COLUMNS}
        if rows.num_rows == 0:
            return 0
        with self.transaction():
            src_ids, dst_ids = _strings(rows.column("src")), _strings(rows.column("dst"))
            if schema.src_labels == schema.dst_labels:
                # Both ends in one look-up (one hash join), as the ingest job checked them.
                ends = self._edge_ends(pa.concat_arrays([src_ids, dst_ids]), schema.src_labels)
                src, dst = ends[: rows.num_rows], ends[rows.num_rows :]
            else:
                src = self._edge_ends(src_ids, schema.src_labels)
                dst = self._edge_ends(dst_ids, schema.dst_labels)
            dangling = np.flatnonzero((src < 0) | (dst < 0))
            if dangling.size:
                shown = rows.take(pa.array(dangling[:5])).to_pylist()
                where = "; ".join(
                    f"{r['src']}->{r['dst']}"
                    + (f" ({r['_source']}:{r['_line']})" if r.get("_source") else "")
                    for r in shown
                )
                raise StoreError(f"{rel_type.value} edges reference unknown nodes: {where}")
            self._invalidate_copy(_edges_copy(rel_type))
            keys = (
                pc.fill_null(_strings(rows.column("key")), "")
                if "key" in rows.column_names
                else _empty_strings(rows.num_rows)
            )
            # In clustered-key order (stable: of rows with the same key the later one is
            # merged last), so the B-tree grows by appends.
            if pc.all(pc.equal(keys, "")).as_py():
                order = np.lexsort((dst, src))
            else:
                ends = pa.table({"src": src, "dst": dst, "key": keys})
                order = pc.sort_indices(ends, sort_keys=_EDGE_KEY).to_numpy()
            taken = pa.array(order)
            rows = rows.take(taken)
            src, dst, keys = src[order], dst[order], keys.take(taken)
            statement = sql.edge_upsert(rel_type)
            for start in range(0, rows.num_rows, _WRITE_CHUNK):
                chunk = rows.slice(start, _WRITE_CHUNK)
                part = slice(start, start + _WRITE_CHUNK)
                columns: list[Values] = [src[part].tolist(), dst[part].tolist()]
                columns.append(_bound(pa.table({"key": keys[part]}), "key"))
                columns += [_bound(chunk, p, k) for p, k in schema.props.items()]
                columns.append(_extra_json(chunk, known))
                columns += [_bound(chunk, c) for c in PROVENANCE_COLUMNS]
                self._insert_columns(statement, columns)
            bulk = self._bulk()
            if bulk is not None and rel_type in bulk.edges:
                mirrored = _copy_rows(rel_type, src, dst, keys, rows)
                if mirrored is None:
                    del bulk.edges[rel_type]
                else:
                    bulk.edges[rel_type].append(mirrored)
        return int(rows.num_rows)

    def _bulk(self) -> _BulkLoad | None:
        bulk: _BulkLoad | None = getattr(self._local, "bulk", None)
        return bulk

    def bulk_node_index(self) -> NodeIdIndex | None:
        bulk = self._bulk()
        return None if bulk is None else bulk.nodes

    def _lookup_nodes(
        self, ids: pa.Array, labels: frozenset[Label]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
        """The nid and label code of each id among the nodes of `labels` (-1 where none):
        from the bulk load's index, or else with one indexed join over the distinct ids."""
        bulk = self._bulk()
        if bulk is not None:
            codes, nids = bulk.nodes.lookup(ids, labels)
            return nids, codes
        encoded = ids.dictionary_encode()
        distinct: list[Any] = encoded.dictionary.to_pylist()
        found, nids_found, labels_found = self._conn.execute(
            sql.NODES_OF_IDS, (json.dumps(distinct, ensure_ascii=False),)
        ).fetchone()
        wanted = [LABELS.index(label) if label in labels else -1 for label in LABELS]
        code_of = np.full(len(distinct), -1, np.int8)
        nid_of = np.full(len(distinct), -1, np.int64)
        at = np.array(json.loads(found), np.int64)
        codes = np.array(
            [wanted[LABELS.index(Label(v))] for v in json.loads(labels_found)], np.int8
        )
        code_of[at] = codes
        nid_of[at] = np.where(codes >= 0, np.array(json.loads(nids_found), np.int64), -1)
        positions = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(), np.int64)
        present = positions >= 0
        positions[~present] = 0
        return (
            np.where(present, nid_of[positions], -1),
            np.where(present, code_of[positions], -1).astype(np.int8),
        )

    def _edge_ends(self, ids: pa.Array, labels: frozenset[Label]) -> npt.NDArray[np.int64]:
        """Nids of edge ends (-1 where unknown): among the labels the type expects first, then
        among all nodes for the rest (the store does not police end labels)."""
        nids, _ = self._lookup_nodes(ids, labels)
        missing = np.flatnonzero((nids < 0) & _valid(ids))
        if missing.size and labels != ALL_LABELS:
            nids[missing] = self._lookup_nodes(ids.take(pa.array(missing)), ALL_LABELS)[0]
        return nids

    def add_aliases(self, rows: pa.Table) -> int:
        with self.transaction():
            # Through the bulk load's node index when one runs (the id index is dropped then).
            nids, _ = self._lookup_nodes(_strings(rows.column("id")), ALL_LABELS)
            aliases = _column_values(rows, "alias")
            pairs = [(a, n) for a, n in zip(aliases, nids.tolist(), strict=True) if n >= 0]
            self._conn.executemany(sql.ALIAS_UPSERT, pairs)
        return int(rows.num_rows)

    def insert_transactions(self, rows: pa.Table) -> int:
        """Append transactions not stored yet (by txn_id) as one compressed Arrow segment.

        Transactions are immutable events: a txn_id seen before is skipped, so a re-run
        writes nothing. Returns the number of new transactions.
        """
        with self.transaction():
            cache = self._job_cache()
            if "txn_ids" not in cache:
                cache["txn_ids"] = _TxnIds()
                for stored in self._transaction_columns(["txn_id"]):
                    cache["txn_ids"].add(_strings(stored.column("txn_id")))
            bulk = self._bulk()
            if bulk is not None and not bulk.transactions_begun:
                # the load's index builds and copies run on a worker while transactions are read
                bulk.transactions_begun = True
                self._flush_bulk_load(bulk, final=False)
            seen: _TxnIds = cache["txn_ids"]
            txn_ids = _strings(rows.column("txn_id"))
            keep, prints = seen.new_rows(txn_ids)
            new = rows if keep.all() else rows.filter(pa.array(keep))
            if new.num_rows == 0:
                return 0
            # Both ends in one lookup: one hash join per batch, not one per column.
            ends = pa.concat_arrays(
                [_strings(new.column("from_account")), _strings(new.column("to_account"))]
            )
            nids, _ = self._lookup_nodes(ends, frozenset({Label.ACCOUNT}))
            unknown = np.flatnonzero(nids < 0)
            if unknown.size:
                shown = new.take(pa.array(unknown[:5] % new.num_rows)).to_pylist()
                columns = [
                    "from_account" if i < new.num_rows else "to_account" for i in unknown[:5]
                ]
                where = "; ".join(
                    f"{r[c]} ({r.get('_source')}:{r.get('_line')})"
                    for r, c in zip(shown, columns, strict=True)
                )
                raise StoreError(f"transactions reference unknown accounts: {where}")
            segment = pa.table(
                {
                    "txn_id": txn_ids if keep.all() else txn_ids.filter(pa.array(keep)),
                    "from_nid": nids[: new.num_rows],
                    "to_nid": nids[new.num_rows :],
                    "amount": new.column("amount").cast(pa.float64()),
                    "ts": _text_column(new, "ts"),
                    "channel": _text_column(new, "channel"),
                    **{
                        c: new.column(c).cast(pa.int64() if c == "_line" else pa.string())
                        for c in PROVENANCE_COLUMNS
                        if c in new.column_names
                    },
                }
            )
            if bulk is None:
                self._conn.execute(sql.TXN_SEGMENT_INSERT, _segment_row(segment))
            else:
                # Compressed on a thread of its own (zstd releases the GIL) while the job
                # reads the next batch; written when ready and the connection is free.
                if bulk.encoder is None:
                    bulk.encoder = ThreadPoolExecutor(1, thread_name_prefix="riskgraph-segments")
                bulk.segments.append(bulk.encoder.submit(_segment_row, segment))
                self._write_segments(bulk, self._local.conn, wait=False)
                if bulk.transfers is not None:
                    bulk.transfers.append(segment.select(list(_TRANSFER_INPUT)))
            seen.add(segment.column("txn_id").combine_chunks(), prints[keep])
        return int(segment.num_rows)

    def rebuild_transfers(self) -> int:
        bulk = self._bulk()
        parts = None
        if bulk is not None:
            bulk.nodes.forget()  # the columns of the last look-ups: the rebuild is the peak
            # When every transaction stored is this load's, they are still in memory and
            # are aggregated before the connection is touched: while the worker builds the
            # indexes. Transactions written after this rebuild are read back by the next.
            parts, bulk.transfers = bulk.transfers, None
        if parts is None:
            parts = list(self._transaction_columns(list(_TRANSFER_INPUT)))
        grouped = _aggregate_transfers(parts) if parts else None
        blocks = iter(()) if grouped is None else transfers.blocks(grouped)
        # Blocks compressed while the worker still holds the connection wait in memory (at
        # most the compressed transfers, less than the aggregate's peak).
        ready = []
        while bulk is not None and bulk.flushing is not None and not bulk.flushing.done():
            block = next(blocks, None)
            if block is None:
                break
            ready.append(block)
        with self.transaction():
            # The job's txn_id memo is read again if more transactions come; the rebuild's
            # peak memory is the job's, so the memo goes now.
            self._job_cache().pop("txn_ids", None)
            self._conn.execute(sql.TRANSFER_BLOCKS_CLEAR)
            self._conn.executemany(sql.TRANSFER_BLOCK_INSERT, chain(ready, blocks))
        return 0 if grouped is None else int(grouped.num_rows)

    def _transfer_columns(self, columns: Sequence[str]) -> pa.Table:
        """All TRANSFERRED edges in (src, dst) order, with the named `edge_batches` columns
        (the timestamp text is read only when asked for)."""
        with_times = any(c in transfers.TIME_COLUMNS for c in columns)
        query = sql.TRANSFER_BLOCKS_WITH_TIMES if with_times else sql.TRANSFER_BLOCKS
        with self._snapshot() as conn:
            stored = conn.execute(query, (transfers.OUT,)).fetchall()
        # Decompression releases the GIL: blocks decode on two threads.
        with ThreadPoolExecutor(max_workers=2) as pool:
            parts = list(pool.map(lambda row: transfers.decode(*row), stored))
        schema = edge_schema(RelType.TRANSFERRED)
        table = pa.concat_tables(parts) if parts else schema.empty_table().drop_columns(["key"])
        table = table.append_column("key", _empty_strings(table.num_rows))
        return table.select(list(columns))

    def _transfers_of(self, nid: int, direction: Direction) -> list[Edge]:
        """The TRANSFERRED edges of a node: out ones by dst, then in ones by src."""
        out_blocks: dict[int, pa.Table] = {}

        def out_rows(src: int) -> pa.Table | None:
            row = self._conn.execute(sql.TRANSFER_BLOCK_OF, (transfers.OUT, src)).fetchone()
            if row is None:
                return None
            if row[0] not in out_blocks:
                out_blocks[row[0]] = transfers.decode(row[1], row[2])
            return transfers.rows_of(out_blocks[row[0]], transfers.OUT, src)

        found = []
        if direction in (Direction.OUT, Direction.BOTH) and (edges := out_rows(nid)) is not None:
            found.append(edges)
        if direction in (Direction.IN, Direction.BOTH):
            row = self._conn.execute(sql.TRANSFER_BLOCK_OF, (transfers.IN, nid)).fetchone()
            pairs = (
                transfers.rows_of(transfers.decode(row[1], row[2]), transfers.IN, nid)
                if row is not None
                else None
            )
            for src in [] if pairs is None else pairs.column("src").to_pylist():
                if src == nid and direction is Direction.BOTH:
                    continue  # a self loop came back with the out edges already
                edges = out_rows(src)
                assert edges is not None, f"transfer index names {src}, whose block is gone"
                # a sender's edges are in dst order, one per receiver
                at = int(np.searchsorted(edges.column("dst").to_numpy(), nid))
                found.append(edges.slice(at, 1))
        rows = [row for part in found for row in part.to_pylist()]
        ends = sorted({r[end] for r in rows for end in ("src", "dst")})
        id_of = dict(self._conn.execute(sql.IDS_OF_NIDS, (json.dumps(ends),)))
        kinds = REL_SCHEMAS[RelType.TRANSFERRED].props
        return [
            Edge(
                RelType.TRANSFERRED,
                id_of[r["src"]],
                id_of[r["dst"]],
                "",
                {k: r[k] for k in kinds if r[k] is not None},
            )
            for r in rows
        ]

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

    def aliases_of_many(self, entity_ids: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        wanted = json.dumps(list(dict.fromkeys(entity_ids)), ensure_ascii=False)
        for entity_id, alias in self._conn.execute(sql.ALIASES_OF_MANY, (wanted,)):
            found.setdefault(entity_id, []).append(alias)
        return found

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
        if rel_type is RelType.TRANSFERRED:
            return self._transfers_of(nid, Direction(direction))
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
        counted = 0
        for t in types:
            if t is RelType.TRANSFERRED:
                row = self._conn.execute(sql.COUNT_TRANSFERS, (transfers.OUT,)).fetchone()
            else:
                row = self._conn.execute(sql.count_edges(t)).fetchone()
            counted += int(row[0])
        return counted

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
            yield from _tables_from_rows(conn.execute(query, params), schema, batch_size)
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
        schema = edge_schema(rel_type)
        if rel_type is RelType.TRANSFERRED:
            return (
                pa.Table.from_batches([batch], schema)
                for batch in self._transfer_columns(schema.names).to_batches(batch_size)
            )
        if self._has_columnar:
            with self._snapshot() as conn:
                copy = self._read_copy(conn, _edges_copy(rel_type), schema.names)
            if copy is not None:
                return (
                    pa.Table.from_batches([batch], schema)
                    for batch in copy.to_batches(max_chunksize=batch_size)
                )
        return self._stream(sql.edge_batches(rel_type), (), schema, batch_size)

    def transaction_batches(self, batch_size: int = 500_000) -> Iterator[pa.Table]:
        """Stored transactions, one table per stored segment (`batch_size` is not used: a
        segment is the unit). Columns: txn_id, from_nid, to_nid, amount, ts, channel, and
        the provenance columns."""
        return self._transaction_columns(None)

    def _transaction_columns(self, columns: Sequence[str] | None) -> Iterator[pa.Table]:
        """Stored transaction segments with only the named columns decoded (all when None)."""
        for (body,) in self._conn.execute(sql.TXN_SEGMENTS).fetchall():
            options = None
            if columns is not None:
                schema = pa.ipc.open_stream(body).schema
                fields = [schema.get_field_index(c) for c in columns]
                options = pa.ipc.IpcReadOptions(included_fields=sorted(fields))
            with pa.ipc.open_stream(body, options=options) as reader:
                table = reader.read_all()
            yield table if columns is None else table.select(list(columns))

    # --- columnar copies ----------------------------------------------------------------------
    # Each relationship type and the node list (nid, id, label) are also kept as compressed
    # Arrow columns, so a projection reads a few blobs instead of millions of rows. A copy is
    # served only while its version equals the counter that every write to its rows bumps in
    # the same transaction; otherwise the rows are read and the copy is written anew.
    # TRANSFERRED needs no copy: its blocks are columns already.
    def node_columns(self) -> pa.Table:
        """Columns `nid` (ascending), `id`, `label` (dictionary-encoded) of every node."""
        return self._columns(
            _NODES_COPY, sql.NODE_BATCHES_ALL, _NODE_COPY_SCHEMA, list(NODE_COLUMNS)
        )

    def edge_columns(self, rel_type: RelType, columns: Sequence[str] | None = None) -> pa.Table:
        """All edges of a type as one table: `src`, `dst`, then `columns` (default: every
        column of `edge_batches`), in `edge_batches` order."""
        rel_type = RelType(rel_type)
        schema = edge_schema(rel_type)
        chosen = schema.names if columns is None else columns
        wanted = ["src", "dst", *(c for c in chosen if c not in ("src", "dst"))]
        unknown = [c for c in wanted if c not in schema.names]
        if unknown:
            raise StoreError(f"{rel_type.value} edges have no column(s) {', '.join(unknown)}")
        if rel_type is RelType.TRANSFERRED:
            return self._transfer_columns(wanted)
        return self._columns(_edges_copy(rel_type), sql.edge_batches(rel_type), schema, wanted)

    def node_property_columns(self, label: Label, columns: Sequence[str]) -> pa.Table:
        """`nid` and the chosen properties of the nodes of a label that have a property row,
        read from the label's table alone (no join with the node list)."""
        label = Label(label)
        props = NODE_SCHEMAS[label].props
        unknown = [c for c in columns if c not in props]
        if unknown:
            raise StoreError(f"{label.value} nodes have no propert(ies) {', '.join(unknown)}")
        schema = pa.schema([("nid", pa.int64())] + [(c, ARROW_TYPES[props[c]]) for c in columns])
        with self._snapshot() as conn:
            cursor = conn.execute(sql.node_property_columns(label, list(columns)))
            parts = list(_tables_from_rows(cursor, schema, _COPY_SEGMENT_ROWS))
        return pa.concat_tables(parts) if parts else schema.empty_table()

    def refresh_columnar_copies(self) -> None:
        """Write every copy that is missing or out of date (the end of a bulk load calls it)."""
        if not self._has_columnar or self.read_only:
            return
        with self.transaction():
            if not self._copy_is_current(self._conn, _NODES_COPY):
                self.node_columns()
            for rel_type in _ROW_TYPES:
                if not self._copy_is_current(self._conn, _edges_copy(rel_type)):
                    self.edge_columns(rel_type, [])

    def _columns(
        self, name: str, query: str, schema: pa.Schema, columns: Sequence[str]
    ) -> pa.Table:
        version = 0
        with self._snapshot() as conn:
            if self._has_columnar:
                copy = self._read_copy(conn, name, columns)
                if copy is not None:
                    return copy
                version = self._copy_version(conn, name)
            parts = [
                _copy_layout(part, name)
                for part in _tables_from_rows(conn.execute(query), schema, _COPY_SEGMENT_ROWS)
            ]
        if self._has_columnar and not self.read_only:
            with self.transaction():
                # Only if no write came in between: a copy never claims a newer version.
                if self._copy_version(self._conn, name) == version:
                    self._write_copy(name, schema, parts)
        table = pa.concat_tables(parts) if parts else _copy_layout(schema.empty_table(), name)
        return table.select(list(columns))

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A connection whose reads all see one state: the thread's open write transaction,
        or else one committed snapshot on a dedicated connection."""
        if getattr(self._local, "depth", 0) > 0:
            yield self._conn
            return
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()
            with self._lock:
                self._connections.remove(conn)

    def _invalidate_copy(self, name: str) -> None:
        """Bump the version of a copy; called inside the transaction that changes its rows."""
        if self._has_columnar:
            self._conn.execute(sql.COLUMNAR_BUMP, (name,))

    @staticmethod
    def _copy_version(conn: sqlite3.Connection, name: str) -> int:
        return int(conn.execute(sql.COLUMNAR_VERSION, (name,)).fetchone()[0])

    @staticmethod
    def _copy_is_current(conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute(sql.COLUMNAR_COLUMNS, (name,)).fetchone() is not None

    @staticmethod
    def _read_copy(conn: sqlite3.Connection, name: str, columns: Sequence[str]) -> pa.Table | None:
        """The current copy's columns, or None when it is missing, stale or lacks a column."""
        stored = {c for (c,) in conn.execute(sql.COLUMNAR_COLUMNS, (name,))}
        if not stored or not set(columns) <= stored:
            return None
        version = int(conn.execute(sql.COLUMNAR_VERSION, (name,)).fetchone()[0])
        bodies = [
            [body for (body,) in conn.execute(sql.COLUMNAR_SEGMENTS, (name, column, version))]
            for column in columns
        ]
        # Decompression releases the GIL: segments decode on two threads.
        with ThreadPoolExecutor(max_workers=2) as pool:
            decoded = [list(pool.map(_decode_segment, segments)) for segments in bodies]
        return pa.table(
            {
                column: pa.chunked_array(
                    [chunk for part in parts for chunk in part.chunks], parts[-1].type
                )
                for column, parts in zip(columns, decoded, strict=True)
            }
        )

    def _write_copy(
        self,
        name: str,
        schema: pa.Schema,
        parts: Iterable[pa.Table],
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Replace copy `name` by `parts` (one stored segment each) at the current version;
        inside a transaction (on the thread's connection unless given one)."""
        conn = self._conn if conn is None else conn
        version = self._copy_version(conn, name)
        conn.execute(sql.COLUMNAR_CLEAR, (name,))
        written = 0
        for part in parts:
            for column in part.column_names:
                body = _ipc_column(column, part.column(column))
                conn.execute(
                    sql.COLUMNAR_INSERT, (name, column, written, version, part.num_rows, body)
                )
            written += 1
        if written == 0:  # an empty copy is still a copy: its columns exist with no rows
            empty = _copy_layout(schema.empty_table(), name)
            for column in empty.column_names:
                body = _ipc_column(column, empty.column(column))
                conn.execute(sql.COLUMNAR_INSERT, (name, column, 0, version, 0, body))

    # --- inferred facts (compressed blocks, see kg.inferred_blocks) ----------------------------
    def _inferred_ends(self, rows: pa.Table) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Node ids of the `src` and `dst` of each row (-1 where the id names no node)."""
        n = rows.num_rows
        if n == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        ends = pa.concat_arrays([_strings(rows.column("src")), _strings(rows.column("dst"))])
        nids, _ = self._lookup_nodes(ends, ALL_LABELS)
        return nids[:n], nids[n:]

    def _term_codes(self, names: Sequence[str]) -> npt.NDArray[np.int32]:
        """The `inferred_terms` code of each name (new names get a code)."""
        return _term_codes(self._conn, names)

    def _column_codes(
        self, column: pa.ChunkedArray, rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int32]:
        """The `inferred_terms` code of each given row's text."""
        encoded = column.cast(pa.string()).take(pa.array(rows)).combine_chunks().dictionary_encode()
        codes = self._term_codes(encoded.dictionary.to_pylist())
        out: npt.NDArray[np.int32] = codes[encoded.indices.to_numpy(zero_copy_only=False)]
        return out

    def replace_inferred_columns(self, parts: Iterable[InferredColumns]) -> int:
        """Replace every inferred fact by `parts` (see `InferredColumnWrites`): each block is
        written once, in key order, with no index to maintain but the block starts."""
        with self.transaction():
            conn = self._conn
            self._forget_block_keys()
            for statement in sql.INFERRED_CLEAR_ALL:
                conn.execute(statement)
            writer = _BlockWriter(conn)
            # Blocks are encoded, compressed and inserted on a second thread (zstd and SQLite
            # release the GIL) while the caller builds the next part; one part in flight.
            with ThreadPoolExecutor(max_workers=1) as pool:
                in_flight = None
                for part in parts:
                    if in_flight is not None:
                        in_flight.result()
                    in_flight = pool.submit(writer.add, part)
                if in_flight is not None:
                    in_flight.result()
            writer.finish()
        return writer.written

    def _in_blocks(
        self, predicate: int, src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Whether a block of `predicate` holds each (src, dst)."""
        return sorted_member(self._block_keys(predicate), blocks.packed_keys(src, dst))

    def _block_keys(self, predicate: int) -> npt.NDArray[np.int64]:
        """The packed keys of every block fact of `predicate`, ascending. Decoded once and
        kept (8 bytes a fact) while no other connection commits (SQLite's data_version)
        and this store writes no block: deltas touch facts all over the blocks, and
        decompressing the keys of each block they touch cost a second per thousand
        shareholdings at 1M customers."""
        conn = self._conn
        version = (id(conn), int(conn.execute(sql.DATA_VERSION).fetchone()[0]))
        with self._lock:
            if self._keys_version != version:
                self._keys_of_blocks.clear()
                self._keys_version = version
            keys = self._keys_of_blocks.get(predicate)
        if keys is None:
            parts = [
                blocks.packed_keys(*blocks.decode_keys(data, rows)[:2])
                for rows, data in conn.execute(sql.INFERRED_BLOCK_KEYS, (predicate,))
            ]
            keys = np.concatenate(parts) if parts else np.empty(0, np.int64)
            if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
                keys = np.unique(keys)
            with self._lock:
                if self._keys_version == version:
                    self._keys_of_blocks[predicate] = keys
        return keys

    def prepare_inferred_deltas(self) -> None:
        """Decode the keys of every predicate's blocks now (see `_block_keys`)."""
        for (code,) in self._conn.execute(sql.INFERRED_BLOCK_PREDICATES).fetchall():
            self._block_keys(int(code))

    def _forget_block_keys(self) -> None:
        """Blocks were written or a write rolled back: the kept keys may be stale."""
        with self._lock:
            self._keys_of_blocks.clear()
            self._keys_version = None

    def _inferred_keys(
        self, rows: pa.Table
    ) -> Iterator[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        """Per predicate of `rows` (whose ends are nodes): its code and the rows, sorted by
        key (stable), with their packed keys."""
        src, dst = self._inferred_ends(rows)
        known = np.flatnonzero((src >= 0) & (dst >= 0))
        if not len(known):
            return
        predicate = self._column_codes(rows.column("predicate"), known)
        order = np.lexsort((dst[known], src[known], predicate))
        known, predicate = known[order], predicate[order]
        keys = blocks.packed_keys(src[known], dst[known])
        for code in np.unique(predicate).tolist():
            sel = predicate == code
            yield int(code), known[sel], keys[sel]

    def _write_inferred(self, rows: pa.Table, removed: pa.Table | None = None) -> None:
        """Upsert rows with JSON premises, after retracting the keys of `removed`; rows whose
        ends are not nodes are skipped, and of rows with the same key the last one wins.

        A predicate with nothing stored gets blocks; otherwise the rows go to
        `inferred_rows`, so a small write never rewrites a block."""
        conn = self._conn
        if removed is not None and removed.num_rows:
            src, dst = self._inferred_ends(removed)
            for code, at, _ in self._inferred_keys(removed):
                gone_src, gone_dst = src[at], dst[at]
                in_blocks = self._in_blocks(code, gone_src, gone_dst)
                conn.executemany(
                    sql.INFERRED_ROW_UPSERT,
                    (
                        (code, int(s), int(d), -1, None, "[]", 1, int(b))
                        for s, d, b in zip(gone_src, gone_dst, in_blocks, strict=True)
                    ),
                )
        if not rows.num_rows:
            return
        src, dst = self._inferred_ends(rows)
        premises = pc.fill_null(rows.column("premises").cast(pa.large_string()), "[]")
        value_col = (
            rows.column("value").cast(pa.float64()).combine_chunks()
            if "value" in rows.column_names
            else pa.nulls(rows.num_rows, pa.float64())
        )
        value = np.asarray(value_col.to_numpy(zero_copy_only=False), np.float64)
        for code, at, keys in self._inferred_keys(rows):
            last = np.ones(len(at), bool)
            last[:-1] = keys[1:] != keys[:-1]
            at = at[last]
            rule = self._column_codes(rows.column("rule"), at)
            texts = premises.take(pa.array(at)).combine_chunks()
            stored = conn.execute(sql.INFERRED_BLOCK_STARTS, (code,)).fetchone() is not None
            if not stored and not conn.execute(sql.INFERRED_HAS_ROWS, (code,)).fetchone()[0]:
                facts = blocks.Facts(
                    src[at], dst[at], rule, value[at], blocks.json_list_premises(texts)
                )
                self._forget_block_keys()
                _insert_blocks(conn, code, facts)
                continue
            in_blocks = self._in_blocks(code, src[at], dst[at])
            conn.executemany(
                sql.INFERRED_ROW_UPSERT,
                (
                    (code, s, d, r, None if np.isnan(v) else v, t, 0, int(b))
                    for s, d, r, v, t, b in zip(
                        src[at].tolist(),
                        dst[at].tolist(),
                        rule.tolist(),
                        value[at].tolist(),
                        texts.to_pylist(),
                        in_blocks,
                        strict=True,
                    )
                ),
            )

    def replace_inferred(self, rows: pa.Table, predicates: Sequence[str] | None = None) -> int:
        conn = self._conn
        with self.transaction():
            self._forget_block_keys()
            if predicates is None:
                for statement in sql.INFERRED_CLEAR_ALL:
                    conn.execute(statement)
            else:
                for statement in sql.INFERRED_CLEAR_PREDICATE:
                    conn.executemany(statement, [(p,) for p in predicates])
            self._write_inferred(rows)
        return int(rows.num_rows)

    def apply_inferred_delta(self, added: pa.Table, removed: pa.Table) -> None:
        with self.transaction():
            self._write_inferred(added, removed)

    def inferred_batches(
        self, predicate: str | None = None, batch_size: int = 500_000
    ) -> Iterator[pa.Table]:
        with self._snapshot() as conn:
            terms = conn.execute(sql.INFERRED_TERMS).fetchall()
            names = pa.array([name for name, _ in terms], pa.string())
            position = np.zeros(max((code for _, code in terms), default=0) + 1, np.int64)
            position[[code for _, code in terms]] = np.arange(len(terms))
            pending: list[tuple[npt.NDArray[Any], ...]] = []
            size = 0
            for _, code in conn.execute(sql.INFERRED_PREDICATES, (predicate,)).fetchall():
                for part in _predicate_columns(conn, code):
                    pending.append(part)
                    size += len(part[0])
                    if size >= batch_size:
                        cols = [np.concatenate(c) for c in zip(*pending, strict=True)]
                        whole = size - size % batch_size
                        for start in range(0, whole, batch_size):
                            chunk = [c[start : start + batch_size] for c in cols]
                            yield _inferred_batch(chunk, names, position)
                        pending, size = [tuple(c[whole:] for c in cols)], size - whole
            if size:
                cols = [np.concatenate(c) for c in zip(*pending, strict=True)]
                yield _inferred_batch(cols, names, position)

    def get_inferred(
        self, src: str, predicate: str | None = None, dst: str | None = None
    ) -> list[InferredFact]:
        src_id = self.resolve(src)
        if src_id is None:
            return []
        conn = self._conn
        src_nid = int(conn.execute(sql.NID_BY_ID, (src_id,)).fetchone()[0])
        dst_nid = None
        if dst is not None:
            dst_id = self.resolve(dst)
            if dst_id is None:
                return []
            dst_nid = int(conn.execute(sql.NID_BY_ID, (dst_id,)).fetchone()[0])
        # rows override (or retract) the block facts of their keys
        rows = conn.execute(sql.INFERRED_ROWS_OF_SRC, (src_nid, predicate, dst_nid)).fetchall()
        overridden = {(r[0], r[1]) for r in rows}
        found: list[tuple[int, blocks.Facts, npt.NDArray[np.int64]]] = []
        nids: list[npt.NDArray[Any]] = [np.array([r[1] for r in rows], np.int64)]
        query, params = (
            (sql.INFERRED_BLOCKS_OF_SRC, (src_nid,))
            if predicate is None
            else (sql.INFERRED_BLOCK_OF_SRC_PREDICATE, (src_nid, predicate))
        )
        for block, pred, count, srcs, keys in conn.execute(query, params).fetchall():
            if not blocks.holds_src(srcs, src_nid):
                continue
            s, d, rule, value = blocks.decode_keys(keys, count)
            at = np.arange(*np.searchsorted(s, [src_nid, src_nid + 1]), dtype=np.int64)
            if dst_nid is not None:
                at = at[d[at] == dst_nid]
            if overridden:
                at = np.array([i for i in at.tolist() if (pred, int(d[i])) not in overridden])
            if not len(at):
                continue
            (body,) = conn.execute(sql.INFERRED_BLOCK_PREMISES, (block,)).fetchone()
            facts = blocks.Facts(s, d, rule, value, blocks.decode_premises(body))
            found.append((pred, facts, at))
            nids += [d[at], blocks.premise_nids(facts.premises, at)]
        if not found and not rows:
            return []
        wanted = np.unique(np.concatenate([np.array([src_nid], np.int64), *nids]))
        id_of = dict(conn.execute(sql.IDS_OF_NIDS, (json.dumps(wanted.tolist()),)))
        name_of = self._term_names()
        out = []
        for pred, facts, at in found:
            for row in at.tolist():
                b = id_of.get(int(facts.dst[row]))
                if b is None:
                    continue
                value = float(facts.value[row])
                out.append(
                    InferredFact(
                        name_of[pred],
                        id_of[src_nid],
                        b,
                        name_of[int(facts.rule[row])],
                        tuple(blocks.render_premises(facts.premises, row, name_of, id_of.get)),
                        None if np.isnan(value) else value,
                    )
                )
        for pred, d, rule, row_value, text, deleted in rows:
            b = id_of.get(d)
            if deleted or b is None:
                continue
            premises = tuple(json.loads(text))
            out.append(
                InferredFact(name_of[pred], id_of[src_nid], b, name_of[rule], premises, row_value)
            )
        out.sort(key=lambda f: (f.predicate, f.dst))
        return out

    def _term_names(self) -> dict[int, str]:
        """Names of the `inferred_terms` codes. Codes are never reused or renamed, so the
        map is kept and read again only when a write added terms."""
        names: dict[int, str] | None = getattr(self._local, "terms", None)
        count = int(self._conn.execute(sql.INFERRED_TERM_COUNT).fetchone()[0])
        if names is None or len(names) != count:
            names = {code: name for name, code in self._conn.execute(sql.INFERRED_TERMS)}
            self._local.terms = names
        return names

    def count_inferred(self, predicate: str | None = None) -> int:
        if predicate is None:
            return int(self._conn.execute(sql.COUNT_INFERRED_ALL).fetchone()[0])
        return int(self._conn.execute(sql.COUNT_INFERRED_PREDICATE, (predicate,)).fetchone()[0])

    def _carry_inferred_into_blocks(self) -> None:
        """Migration to schema 4: the schema-3 rows become blocks, premises kept as JSON."""
        conn = self._conn
        cursor = conn.cursor()
        cursor.execute(sql.INFERRED_V3_ROWS)
        writer = _BlockWriter(conn)
        segments = _V3Segments(conn)
        while chunk := cursor.fetchmany(200_000):
            cols = list(zip(*chunk, strict=True))
            predicate = np.array(cols[0], np.int64)
            texts = segments.texts(cols[5], cols[6], cols[7])
            value = pa.array(cols[4], pa.float64()).to_numpy(zero_copy_only=False)
            src, dst, rule = (np.array(c, np.int64) for c in cols[1:4])
            # rows come in (predicate, src, dst) order: each predicate is one run
            starts = np.flatnonzero(np.concatenate([[True], predicate[1:] != predicate[:-1]]))
            for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(predicate)], strict=True):
                facts = blocks.Facts(
                    src[a:b],
                    dst[a:b],
                    rule[a:b].astype(np.int32),
                    value[a:b].astype(np.float64),
                    blocks.json_list_premises(texts.slice(a, b - a)),
                )
                writer.add_facts(str(predicate[a]), int(predicate[a]), facts)
        writer.finish()

    def _carry_transfers_into_blocks(self) -> None:
        """Migration to schema 6: the schema-5 TRANSFERRED rows become blocks; their old
        columnar copy goes."""
        conn = self._conn
        schema = pa.schema([edge_schema(RelType.TRANSFERRED).field(c) for c in transfers.COLUMNS])
        parts = list(_tables_from_rows(conn.execute(sql.TRANSFERS_V5_ROWS), schema, 1_000_000))
        if parts:
            conn.executemany(sql.TRANSFER_BLOCK_INSERT, transfers.blocks(pa.concat_tables(parts)))
        if conn.execute(sql.TABLE_EXISTS, ("columnar_segments",)).fetchone() is not None:
            for statement in sql.COLUMNAR_DROP:
                conn.execute(statement, (_edges_copy(RelType.TRANSFERRED),))

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
