"""Every SQL text of the embedded store, in one place.

Per-label and per-relationship-type tables are generated from the schemas in `kg.model`, so
that a property added to the model gets a typed column without hand-written SQL. Only names
from those schemas are ever formatted into SQL; values are always bound parameters.
"""

from __future__ import annotations

from functools import lru_cache

from kg.model import NODE_SCHEMAS, REL_SCHEMAS, Label, PropType, RelType

_SQL_TYPES: dict[PropType, str] = {
    "str": "TEXT",
    "float": "REAL",
    "int": "INTEGER",
    "bool": "INTEGER",
    "date": "TEXT",
    "timestamp": "TEXT",
}

BUSY_TIMEOUT_MS = 30000
MMAP_BYTES = 1 << 30
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=OFF",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-262144",
    f"PRAGMA mmap_size={MMAP_BYTES}",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    # The sorter of CREATE INDEX (the end of a bulk load) may use a helper thread.
    "PRAGMA threads=2",
)
# A job into an empty store writes its pages straight into the file (see
# `SQLiteStore.transaction`); the rollback journal is durable with FULL.
INTO_EMPTY_STORE = (
    "PRAGMA journal_mode=DELETE",
    "PRAGMA synchronous=FULL",
    "PRAGMA mmap_size=0",
)
BACK_TO_WAL = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA mmap_size={MMAP_BYTES}",
)


def node_table(label: Label) -> str:
    return f"node_{label.value.lower()}"


def rel_table(rel_type: RelType) -> str:
    return f"rel_{rel_type.value.lower()}"


def _node_props(label: Label) -> list[str]:
    return list(NODE_SCHEMAS[label].props)


def _rel_props(rel_type: RelType) -> list[str]:
    return list(REL_SCHEMAS[rel_type].props)


def _create_node_table(label: Label) -> str:
    cols = "".join(
        f", {name} {_SQL_TYPES[kind]}" for name, kind in NODE_SCHEMAS[label].props.items()
    )
    return f"CREATE TABLE {node_table(label)} (nid INTEGER PRIMARY KEY{cols}, extra TEXT)"


def _create_rel_table(rel_type: RelType) -> list[str]:
    table = rel_table(rel_type)
    cols = "".join(
        f", {name} {_SQL_TYPES[kind]}" for name, kind in REL_SCHEMAS[rel_type].props.items()
    )
    return [
        # Clustered on (src, dst, key): one B-tree instead of a rowid table plus an index, and
        # a sorted bulk load appends to it.
        f"CREATE TABLE {table} (src INTEGER NOT NULL, dst INTEGER NOT NULL, key TEXT NOT NULL"
        f"{cols}, extra TEXT, _source TEXT, _line INTEGER, _job TEXT, "
        "PRIMARY KEY (src, dst, key)) WITHOUT ROWID",
        f"CREATE INDEX {table}_dst ON {table}(dst)",
    ]


# The secondary index of the inferred table of schemas 2 and 3.
INFERRED_INDEXES = ("CREATE INDEX inferred_src ON inferred(src, predicate)",)
# Schemas 2 and 3: a premises segment counts the inferred rows that point into it and goes
# with the last one.
INFERRED_TRIGGERS = (
    "CREATE TRIGGER inferred_release_deleted AFTER DELETE ON inferred "
    "WHEN old.segment IS NOT NULL BEGIN "
    "UPDATE inferred_premises SET live = live - 1 WHERE segment = old.segment; "
    "DELETE FROM inferred_premises WHERE segment = old.segment AND live <= 0; END",
)


# The unique index on node ids (schema 6 on).
NODES_ID_INDEX = "nodes_id"


def _schema_v1() -> list[str]:
    statements = [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE nodes (nid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
        "label TEXT NOT NULL, name TEXT, _source TEXT, _line INTEGER, _job TEXT)",
        "CREATE INDEX nodes_name ON nodes(name)",
        "CREATE INDEX nodes_label ON nodes(label)",
        "CREATE TABLE aliases (alias TEXT PRIMARY KEY, nid INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE INDEX aliases_nid ON aliases(nid)",
        # Individual transactions are immutable events kept as compressed Arrow segments:
        # ten million rows move as a hundred blobs instead of ten million row inserts.
        "CREATE TABLE txn_segments (segment INTEGER PRIMARY KEY, rows INTEGER NOT NULL, "
        "job TEXT, body BLOB NOT NULL)",
        "CREATE TABLE inferred (predicate TEXT NOT NULL, src INTEGER NOT NULL, "
        "dst INTEGER NOT NULL, rule TEXT NOT NULL, premises TEXT NOT NULL, value REAL, "
        "PRIMARY KEY (predicate, src, dst)) WITHOUT ROWID",
        "CREATE INDEX inferred_src ON inferred(src, predicate)",
        "CREATE INDEX inferred_dst ON inferred(dst, predicate)",
        "CREATE TABLE documents (collection TEXT NOT NULL, key TEXT NOT NULL, "
        "body TEXT NOT NULL, updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ')), "
        "PRIMARY KEY (collection, key)) WITHOUT ROWID",
    ]
    for label in Label:
        statements.append(_create_node_table(label))
    for name in ("id_number", "uscc", "phone", "address_norm"):
        for label in (Label.PERSON, Label.COMPANY):
            if name in NODE_SCHEMAS[label].props:
                table = node_table(label)
                statements.append(f"CREATE INDEX {table}_{name} ON {table}({name})")
    for rel_type in RelType:
        statements.extend(_create_rel_table(rel_type))
    return statements


def _schema_v2() -> list[str]:
    """Inferred facts with integer predicate and rule codes; their premises move out of the
    row into zstd-compressed segments (`segment`, `item`), so the clustered table stays small.
    Rows carried over keep their premises inline in `premises` (NULL for segment rows)."""
    return [
        "CREATE TABLE inferred_terms (code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        # codes in name order, so the old key order (predicate name, src, dst) is the new one
        "INSERT INTO inferred_terms (name) SELECT name FROM (SELECT predicate AS name FROM "
        "inferred UNION SELECT rule FROM inferred) ORDER BY name",
        # a segment: `items` premises JSON texts, zstd-compressed after an int64 offsets header;
        # `size` is the uncompressed length, `live` the rows still pointing into it
        "CREATE TABLE inferred_premises (segment INTEGER PRIMARY KEY, items INTEGER NOT NULL, "
        "size INTEGER NOT NULL, live INTEGER NOT NULL, body BLOB NOT NULL)",
        "CREATE TABLE inferred_v2 (predicate INTEGER NOT NULL, src INTEGER NOT NULL, "
        "dst INTEGER NOT NULL, rule INTEGER NOT NULL, value REAL, segment INTEGER, "
        "item INTEGER, premises TEXT, PRIMARY KEY (predicate, src, dst)) WITHOUT ROWID",
        "INSERT INTO inferred_v2 (predicate, src, dst, rule, value, premises) "
        # a scan of the old table in its key order appends to the new one (CROSS JOIN keeps
        # the old table outermost): no sort of millions of rows with their premises
        "SELECT p.code, i.src, i.dst, r.code, i.value, i.premises FROM inferred i "
        "CROSS JOIN inferred_terms p ON p.name = i.predicate "
        "CROSS JOIN inferred_terms r ON r.name = i.rule ORDER BY i.predicate, i.src, i.dst",
        "DROP TABLE inferred",
        "ALTER TABLE inferred_v2 RENAME TO inferred",
        *INFERRED_INDEXES,
        *INFERRED_TRIGGERS,
    ]


def _schema_v3() -> list[str]:
    """Documents move to a rowid table with a unique (collection, key) index. In the
    clustered WITHOUT ROWID table every key lookup that passed a large document (the risk
    index is hundreds of megabytes at 1M customers) read all of its overflow pages to compare
    keys, so a look at a small document next to it took half a second."""
    return [
        "CREATE TABLE documents_v3 (collection TEXT NOT NULL, key TEXT NOT NULL, "
        "body TEXT NOT NULL, updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ')), "
        "UNIQUE (collection, key))",
        "INSERT INTO documents_v3 (collection, key, body, updated_at) "
        "SELECT collection, key, body, updated_at FROM documents",
        "DROP TABLE documents",
        "ALTER TABLE documents_v3 RENAME TO documents",
    ]


def _schema_v4() -> list[str]:
    """Inferred facts move from one B-tree row each to compressed column blocks per predicate
    and run of `src` (`kg.inferred_blocks`): writing twenty million rows through `sqlite3`
    and indexing them took minutes. The store carries the old rows over (their premises as
    JSON text) between these statements and `MIGRATION_CLEANUP[4]`."""
    return [
        "CREATE TABLE inferred_blocks (block INTEGER PRIMARY KEY, predicate INTEGER NOT NULL, "
        "first_src INTEGER NOT NULL, last_src INTEGER NOT NULL, rows INTEGER NOT NULL, "
        "srcs BLOB NOT NULL, keys BLOB NOT NULL, premises BLOB NOT NULL)",
        "CREATE UNIQUE INDEX inferred_blocks_start ON inferred_blocks(predicate, first_src)",
        # Small writes (incremental deltas) land here instead of rewriting blocks: a row
        # overrides the block fact of its key, or retracts it (`deleted`); `in_blocks` says
        # whether a block holds the key, so counts stay exact. A full replace empties it.
        "CREATE TABLE inferred_rows (predicate INTEGER NOT NULL, src INTEGER NOT NULL, "
        "dst INTEGER NOT NULL, rule INTEGER NOT NULL, value REAL, premises TEXT NOT NULL, "
        "deleted INTEGER NOT NULL, in_blocks INTEGER NOT NULL, "
        "PRIMARY KEY (predicate, src, dst)) WITHOUT ROWID",
        "CREATE INDEX inferred_rows_src ON inferred_rows(src, predicate)",
    ]


def _schema_v5() -> list[str]:
    """No query reads the phone and address indexes (shared phones and addresses are found
    from the projection), and only persons and companies have names: three nodes in four
    (accounts, devices, loans) no longer get an entry in the name index. Smaller files and a
    shorter end of a bulk load."""
    dropped = [
        f"DROP INDEX IF EXISTS {node_table(label)}_{name}"
        for label in (Label.PERSON, Label.COMPANY)
        for name in ("phone", "address_norm")
    ]
    return [
        *dropped,
        "DROP INDEX nodes_name",
        "CREATE INDEX nodes_name ON nodes(name) WHERE name IS NOT NULL",
    ]


def _schema_v6() -> list[str]:
    """Two changes that make a bulk load cheaper.

    TRANSFERRED edges move from B-tree rows to compressed blocks by direction and run of nids
    (`kg.transfer_blocks`): ten million aggregated pairs and their `dst` index were the
    largest part of a bulk load. The store carries the old rows over between these statements
    and `MIGRATION_CLEANUP[6]`.

    The uniqueness of node ids moves from the column constraint to a named unique index,
    `nodes_id`, which a bulk load into an empty store drops and builds at its end like the
    other indexes (ids in random order, such as device hashes, made every insert a random
    B-tree insert); the load keeps ids unique itself, and the index build checks it.
    """
    return [
        "CREATE TABLE transfer_blocks (dir INTEGER NOT NULL, lo INTEGER NOT NULL, "
        "rows INTEGER NOT NULL, body BLOB NOT NULL, times BLOB, PRIMARY KEY (dir, lo)) "
        "WITHOUT ROWID",
        "CREATE TABLE nodes_v6 (nid INTEGER PRIMARY KEY, id TEXT NOT NULL, "
        "label TEXT NOT NULL, name TEXT, _source TEXT, _line INTEGER, _job TEXT)",
        "INSERT INTO nodes_v6 (nid, id, label, name, _source, _line, _job) "
        "SELECT nid, id, label, name, _source, _line, _job FROM nodes ORDER BY nid",
        "DROP TABLE nodes",
        "ALTER TABLE nodes_v6 RENAME TO nodes",
        f"CREATE UNIQUE INDEX {NODES_ID_INDEX} ON nodes(id)",
        "CREATE INDEX nodes_name ON nodes(name) WHERE name IS NOT NULL",
        "CREATE INDEX nodes_label ON nodes(label)",
    ]


# Migrations by the schema version they produce. A new version appends a list; existing
# lists never change, so an old file is brought forward step by step.
MIGRATIONS: dict[int, list[str]] = {
    1: _schema_v1(),
    2: _schema_v2(),
    3: _schema_v3(),
    4: _schema_v4(),
    5: _schema_v5(),
    6: _schema_v6(),
}
# Statements that finish a migration after the store has moved data in Python.
MIGRATION_CLEANUP: dict[int, list[str]] = {
    4: ["DROP TABLE inferred", "DROP TABLE inferred_premises"],
    6: [f"DROP TABLE {rel_table(RelType.TRANSFERRED)}"],
}

GET_META = "SELECT value FROM meta WHERE key = ?"
SET_META = (
    "INSERT INTO meta(key, value) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)
# Non-unique indexes and the node id index: a bulk load into an empty store drops them and
# builds them at the end.
SECONDARY_INDEXES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
    f"AND (sql NOT LIKE 'CREATE UNIQUE%' OR name = '{NODES_ID_INDEX}')"
)
TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"

# --- writes: rows bound column-wise, nids resolved before the statement ---------------------
# Parameters in one statement stay below 999, the smallest limit SQLite builds have had.
MAX_PARAMETERS = 999


@lru_cache(maxsize=256)
def multi_row(statement: str, rows: int, constants: tuple[bool | None, ...]) -> str:
    """A one-row `INSERT ... VALUES (?, ...)` statement of this module with `rows` value
    groups: one step stores many rows, so the per-row cost of the binding layer is paid once.

    `constants` says per column whether it varies by row (False: a parameter per row), is one
    value for every row (True: one shared parameter, bound first) or is NULL throughout
    (None: the literal). Parameters are numbered: the shared ones, then the rows in order.
    """
    head, rest = statement.split(" VALUES (", 1)
    group, tail = rest.split(")", 1)
    assert [m.strip() for m in group.split(",")] == ["?"] * len(constants), statement
    shared = [k for k, constant in enumerate(constants) if constant]
    varying = [k for k, constant in enumerate(constants) if constant is False]
    groups = []
    for row in range(rows):
        first = len(shared) + row * len(varying) + 1
        marks = []
        for k, constant in enumerate(constants):
            if constant is None:
                marks.append("NULL")
            elif constant:
                marks.append(f"?{shared.index(k) + 1}")
            else:
                marks.append(f"?{first + varying.index(k)}")
        groups.append(f"({', '.join(marks)})")
    return f"{head} VALUES " + ", ".join(groups) + tail


NEXT_NID = "SELECT coalesce(max(nid), 0) + 1 FROM nodes"
# New nodes get their nid from the store's counter, so that edges written in the same job
# can name them without reading anything back.
NODES_INSERT = (
    "INSERT INTO nodes (nid, id, label, name, _source, _line, _job) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# A known node keeps its label and provenance; only a non-null name replaces the old one.
NODE_NAME_MERGE = "UPDATE nodes SET name = COALESCE(?, name) WHERE nid = ?"
# Ids as one JSON array of distinct values, resolved with one indexed join (no Python object
# per row): the matched positions, their nids and labels as three JSON arrays in one order.
NODES_OF_IDS = (
    "SELECT json_group_array(j.key), json_group_array(n.nid), json_group_array(n.label) "
    "FROM json_each(?) j JOIN nodes n ON n.id = j.value"
)


def node_props_upsert(label: Label) -> str:
    """Properties by nid: a new row as given, a known one merged (non-null values win)."""
    props = [*_node_props(label), "extra"]
    marks = ", ".join("?" for _ in range(len(props) + 1))
    updates = ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in props)
    return (
        f"INSERT INTO {node_table(label)} (nid, {', '.join(props)}) VALUES ({marks}) "
        f"ON CONFLICT(nid) DO UPDATE SET {updates}"
    )


def edge_upsert(rel_type: RelType) -> str:
    """One edge by (src nid, dst nid, key): inserted, or merged into the stored one (non-null
    values win, so the latest row's provenance is kept)."""
    props = [*_rel_props(rel_type), "extra", "_source", "_line", "_job"]
    marks = ", ".join("?" for _ in range(len(props) + 3))
    updates = ", ".join(f"{c} = COALESCE(excluded.{c}, {c})" for c in props)
    return (
        f"INSERT INTO {rel_table(rel_type)} (src, dst, key, {', '.join(props)}) "
        f"VALUES ({marks}) ON CONFLICT(src, dst, key) DO UPDATE SET {updates}"
    )


def rel_has_rows(rel_type: RelType) -> str:
    return f"SELECT EXISTS (SELECT 1 FROM {rel_table(rel_type)})"


ALIAS_UPSERT = (
    "INSERT INTO aliases (alias, nid) VALUES (?, ?) "
    "ON CONFLICT(alias) DO UPDATE SET nid = excluded.nid"
)

TXN_SEGMENT_INSERT = "INSERT INTO txn_segments (rows, job, body) VALUES (?, ?, ?)"
TXN_SEGMENTS = "SELECT body FROM txn_segments ORDER BY segment"
ANY_TXN_SEGMENT = "SELECT 1 FROM txn_segments LIMIT 1"
COUNT_TXNS = "SELECT coalesce(sum(rows), 0) FROM txn_segments"

# --- TRANSFERRED edges (schema 6: compressed blocks, see kg.transfer_blocks) ---------------
TRANSFER_BLOCKS_CLEAR = "DELETE FROM transfer_blocks"
TRANSFER_BLOCK_INSERT = (
    "INSERT INTO transfer_blocks (dir, lo, rows, body, times) VALUES (?, ?, ?, ?, ?)"
)
# The block holding a nid's edges in one direction: the last one starting at or before it.
TRANSFER_BLOCK_OF = (
    "SELECT lo, body, times FROM transfer_blocks WHERE dir = ? AND lo <= ? ORDER BY lo DESC LIMIT 1"
)
TRANSFER_BLOCKS = "SELECT body FROM transfer_blocks WHERE dir = ? ORDER BY lo"
TRANSFER_BLOCKS_WITH_TIMES = "SELECT body, times FROM transfer_blocks WHERE dir = ? ORDER BY lo"
COUNT_TRANSFERS = "SELECT coalesce(sum(rows), 0) FROM transfer_blocks WHERE dir = ?"
# Schema 5 rows carried into blocks by the migration to schema 6.
TRANSFERS_V5_ROWS = (
    "SELECT src, dst, count, total_amount, first_ts, last_ts "
    f"FROM {rel_table(RelType.TRANSFERRED)} ORDER BY src, dst, key"
)
COLUMNAR_DROP = (
    "DELETE FROM columnar_segments WHERE name = ?",
    "DELETE FROM columnar_versions WHERE name = ?",
)

# --- columnar copies: each relationship type and the node list as compressed Arrow columns ---
# Not part of the numbered schema: created when missing, so a store file of any version gets
# them on its first read-write open. A copy named `name` is valid only while its `version`
# equals the counter in `columnar_versions`, which every write to its rows bumps inside the
# same transaction (a missing counter row counts as version 0).
COLUMNAR_TABLES = (
    "CREATE TABLE IF NOT EXISTS columnar_versions (name TEXT PRIMARY KEY, "
    "version INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS columnar_segments (name TEXT NOT NULL, col TEXT NOT NULL, "
    "segment INTEGER NOT NULL, version INTEGER NOT NULL, rows INTEGER NOT NULL, "
    "body BLOB NOT NULL, PRIMARY KEY (name, col, segment))",
)
COLUMNAR_BUMP = (
    "INSERT INTO columnar_versions (name, version) VALUES (?, 1) "
    "ON CONFLICT(name) DO UPDATE SET version = version + 1"
)
COLUMNAR_VERSION = "SELECT coalesce(max(version), 0) FROM columnar_versions WHERE name = ?"
COLUMNAR_COLUMNS = (
    "SELECT DISTINCT col FROM columnar_segments WHERE name = ?1 AND version = "
    "(SELECT coalesce(max(version), 0) FROM columnar_versions WHERE name = ?1)"
)
COLUMNAR_SEGMENTS = (
    "SELECT body FROM columnar_segments WHERE name = ? AND col = ? AND version = ? ORDER BY segment"
)
COLUMNAR_CLEAR = "DELETE FROM columnar_segments WHERE name = ?"
COLUMNAR_INSERT = (
    "INSERT INTO columnar_segments (name, col, segment, version, rows, body) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

# --- point reads ------------------------------------------------------------------------
RESOLVE = (
    "SELECT id FROM nodes WHERE id = ?1 "
    "UNION ALL SELECT n.id FROM aliases a JOIN nodes n ON n.nid = a.nid WHERE a.alias = ?1 "
    "LIMIT 1"
)
NODE_BY_ID = "SELECT nid, id, label, name, _source, _line, _job FROM nodes WHERE id = ?"
NODE_BY_NID = "SELECT nid, id, label, name, _source, _line, _job FROM nodes WHERE nid = ?"
NID_BY_ID = "SELECT nid FROM nodes WHERE id = ?"
# Ids of nids given as one JSON array.
IDS_OF_NIDS = "SELECT n.nid, n.id FROM json_each(?) j JOIN nodes n ON n.nid = j.value"
ALIASES_OF = (
    "SELECT a.alias FROM aliases a JOIN nodes n ON n.nid = a.nid WHERE n.id = ? ORDER BY a.alias"
)


# (id, alias) of the aliases of the canonical ids given as one JSON array.
ALIASES_OF_MANY = (
    "SELECT n.id, a.alias FROM json_each(?) j JOIN nodes n ON n.id = j.value "
    "JOIN aliases a ON a.nid = n.nid ORDER BY n.id, a.alias"
)


def node_props_by_nid(label: Label) -> str:
    props = [*_node_props(label), "extra"]
    return f"SELECT {', '.join(props)} FROM {node_table(label)} WHERE nid = ?"


def node_props_columns(label: Label) -> list[str]:
    return [*_node_props(label), "extra"]


def find_nodes_by_prop(label: Label, prop: str) -> str:
    if prop not in NODE_SCHEMAS[label].props:
        raise ValueError(f"{label.value} has no property {prop!r}")
    return (
        f"SELECT p.{prop}, n.id FROM {node_table(label)} p JOIN nodes n ON n.nid = p.nid "
        f"WHERE p.{prop} = ? ORDER BY n.nid LIMIT 1"
    )


def neighbours_out(rel_type: RelType) -> str:
    props = ", ".join(["e.key", *(f"e.{p}" for p in _rel_props(rel_type)), "e.extra"])
    return (
        f"SELECT a.id, b.id, {props}, e._source, e._line, e._job FROM {rel_table(rel_type)} e "
        "JOIN nodes a ON a.nid = e.src JOIN nodes b ON b.nid = e.dst WHERE e.src = ? "
        "ORDER BY e.dst, e.key"
    )


def neighbours_in(rel_type: RelType) -> str:
    props = ", ".join(["e.key", *(f"e.{p}" for p in _rel_props(rel_type)), "e.extra"])
    return (
        f"SELECT a.id, b.id, {props}, e._source, e._line, e._job FROM {rel_table(rel_type)} e "
        "JOIN nodes a ON a.nid = e.src JOIN nodes b ON b.nid = e.dst WHERE e.dst = ? "
        "ORDER BY e.src, e.key"
    )


SEARCH_EXACT = (
    "SELECT nid FROM nodes WHERE id = ?1 "
    "UNION SELECT nid FROM aliases WHERE alias = ?1 "
    "UNION SELECT nid FROM node_person WHERE id_number = ?1 "
    "UNION SELECT nid FROM node_company WHERE uscc = ?1"
)
# Prefix matches come from the name index; substring matches need a scan, bounded by LIMIT.
SEARCH_NAME_PREFIX = (
    "SELECT nid FROM nodes WHERE name >= ?1 AND name < ?1 || char(1114111) ORDER BY name LIMIT ?2"
)
SEARCH_NAME_SUBSTRING = "SELECT nid FROM nodes WHERE instr(name, ?1) > 0 LIMIT ?2"

COUNT_NODES = "SELECT count(*) FROM nodes"
ANY_NODE = "SELECT 1 FROM nodes LIMIT 1"
COUNT_NODES_LABEL = "SELECT count(*) FROM nodes WHERE label = ?"


def count_edges(rel_type: RelType) -> str:
    return f"SELECT count(*) FROM {rel_table(rel_type)}"


NODE_BATCHES_ALL = "SELECT nid, id, label FROM nodes ORDER BY nid"


def node_batches(label: Label) -> str:
    props = ", ".join(f"p.{c}" for c in _node_props(label))
    sep = ", " if props else ""
    return (
        f"SELECT n.nid, n.id, n.label{sep}{props} FROM nodes n "
        f"LEFT JOIN {node_table(label)} p ON p.nid = n.nid WHERE n.label = ? ORDER BY n.nid"
    )


def node_property_columns(label: Label, columns: list[str]) -> str:
    """nid and the given properties (names from the label's schema) of a label's nodes."""
    known = set(_node_props(label))
    assert set(columns) <= known, f"unknown {label.value} properties {set(columns) - known}"
    cols = "".join(f", {c}" for c in columns)
    return f"SELECT nid{cols} FROM {node_table(label)} ORDER BY nid"


def edge_batches(rel_type: RelType) -> str:
    props = "".join(f", {p}" for p in _rel_props(rel_type))
    return f"SELECT src, dst, key{props} FROM {rel_table(rel_type)} ORDER BY src, dst, key"


# --- inferred facts (schema 4: compressed blocks, see kg.inferred_blocks) -------------------
INFERRED_CLEAR_ALL = ("DELETE FROM inferred_blocks", "DELETE FROM inferred_rows")
INFERRED_CLEAR_PREDICATE = tuple(
    f"DELETE FROM {table} WHERE predicate = (SELECT code FROM inferred_terms WHERE name = ?)"
    for table in ("inferred_blocks", "inferred_rows")
)
INFERRED_ROW_UPSERT = (
    "INSERT INTO inferred_rows (predicate, src, dst, rule, value, premises, deleted, in_blocks) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(predicate, src, dst) DO UPDATE SET "
    "rule = excluded.rule, value = excluded.value, premises = excluded.premises, "
    "deleted = excluded.deleted"
)
INFERRED_ROWS_OF_SRC = (
    "SELECT predicate, dst, rule, value, premises, deleted FROM inferred_rows WHERE src = ?1 "
    "AND (?2 IS NULL OR predicate = (SELECT code FROM inferred_terms WHERE name = ?2)) "
    "AND (?3 IS NULL OR dst = ?3)"
)
INFERRED_ROWS_OF_PREDICATE = (
    "SELECT src, dst, rule, value, deleted FROM inferred_rows WHERE predicate = ? ORDER BY src, dst"
)
INFERRED_HAS_ROWS = "SELECT EXISTS (SELECT 1 FROM inferred_rows WHERE predicate = ?)"
# Predicates with blocks or rows, in name order.
INFERRED_PREDICATES = (
    "SELECT name, code FROM inferred_terms t WHERE (?1 IS NULL OR name = ?1) AND "
    "(EXISTS (SELECT 1 FROM inferred_blocks WHERE predicate = t.code) "
    "OR EXISTS (SELECT 1 FROM inferred_rows WHERE predicate = t.code)) ORDER BY name"
)
INFERRED_BLOCK_PREDICATES = "SELECT DISTINCT predicate FROM inferred_blocks"
INFERRED_BLOCK_KEYS = (
    "SELECT rows, keys FROM inferred_blocks WHERE predicate = ? ORDER BY first_src"
)
INFERRED_TERM_ADD = "INSERT OR IGNORE INTO inferred_terms (name) VALUES (?)"
INFERRED_TERMS = "SELECT name, code FROM inferred_terms"
INFERRED_TERM_COUNT = "SELECT count(*) FROM inferred_terms"
INFERRED_BLOCK_INSERT = (
    "INSERT INTO inferred_blocks (predicate, first_src, last_src, rows, srcs, keys, premises) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INFERRED_BLOCK_KEYS = (
    "SELECT rows, keys FROM inferred_blocks WHERE predicate = ? ORDER BY first_src"
)
# Changes when another connection commits (a cache of block contents is stale then).
DATA_VERSION = "PRAGMA data_version"
INFERRED_BLOCK_STARTS = (
    "SELECT block, first_src FROM inferred_blocks WHERE predicate = ? ORDER BY first_src"
)
# The block of a src in each predicate: the last one starting at or before it. The stored
# predicates are found by a skip-scan of the block index (a probe per predicate).
INFERRED_BLOCKS_OF_SRC = (
    "WITH RECURSIVE predicates(code) AS (SELECT min(predicate) FROM inferred_blocks "
    "UNION ALL SELECT (SELECT min(predicate) FROM inferred_blocks WHERE predicate > code) "
    "FROM predicates WHERE code IS NOT NULL) "
    "SELECT b.block, b.predicate, b.rows, b.srcs, b.keys FROM predicates p "
    "JOIN inferred_blocks b ON b.block = (SELECT block FROM inferred_blocks "
    "WHERE predicate = p.code AND first_src <= ?1 ORDER BY first_src DESC LIMIT 1) "
    "WHERE b.last_src >= ?1"
)
INFERRED_BLOCK_OF_SRC_PREDICATE = (
    "SELECT b.block, b.predicate, b.rows, b.srcs, b.keys FROM inferred_blocks b "
    "WHERE b.block = (SELECT block FROM inferred_blocks WHERE predicate = "
    "(SELECT code FROM inferred_terms WHERE name = ?2) AND first_src <= ?1 "
    "ORDER BY first_src DESC LIMIT 1) AND b.last_src >= ?1"
)
INFERRED_BLOCK_PREMISES = "SELECT premises FROM inferred_blocks WHERE block = ?"
# Block facts, plus rows of keys no block holds, minus retractions of keys a block holds.
COUNT_INFERRED_ALL = (
    "SELECT (SELECT coalesce(sum(rows), 0) FROM inferred_blocks) + (SELECT coalesce(sum("
    "CASE WHEN deleted THEN -in_blocks ELSE 1 - in_blocks END), 0) FROM inferred_rows)"
)
COUNT_INFERRED_PREDICATE = (
    "WITH p(code) AS (SELECT code FROM inferred_terms WHERE name = ?) "
    "SELECT (SELECT coalesce(sum(rows), 0) FROM inferred_blocks WHERE predicate = "
    "(SELECT code FROM p)) + (SELECT coalesce(sum(CASE WHEN deleted THEN -in_blocks "
    "ELSE 1 - in_blocks END), 0) FROM inferred_rows WHERE predicate = (SELECT code FROM p))"
)
# Schema 3 rows, read once by the migration to schema 4, in their clustered order.
INFERRED_V3_ROWS = (
    "SELECT predicate, src, dst, rule, value, premises, segment, item FROM inferred "
    "ORDER BY predicate, src, dst"
)
INFERRED_V3_SEGMENT = "SELECT items, size, body FROM inferred_premises WHERE segment = ?"

# --- documents ------------------------------------------------------------------------------
DOC_PUT = (
    "INSERT INTO documents (collection, key, body) VALUES (?, ?, ?) "
    "ON CONFLICT(collection, key) DO UPDATE SET body = excluded.body, "
    "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ')"
)
DOC_GET = "SELECT body FROM documents WHERE collection = ? AND key = ?"
DOC_LIST = "SELECT key, body FROM documents WHERE collection = ? ORDER BY key"
DOC_DELETE_ALL = "DELETE FROM documents WHERE collection = ?"
DOC_DELETE_KEY = "DELETE FROM documents WHERE collection = ? AND key = ?"
