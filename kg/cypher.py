"""Every Cypher text of the Neo4j store, in one place.

The graph shape: every entity is `(:Node:<Label> {id, nid, <properties>, _source, _line,
_job})`, facts are relationships of the `RelType`s with a `key` property, other customer
numbers are `(:Alias {alias})-[:ALIAS_OF]->(:Node)`, inferred facts are
`(:Node)-[:INFERRED {predicate, rule, premises, value}]->(:Node)`, individual transactions are
kept in segments, `(:TxnSegment {seq, rows, txn_id: [...], from_nid: [...], ...})`, one array
property per column (as the SQLite store keeps Arrow segments: ten million transactions are a
few hundred nodes, not ten million), documents are `(:Document {collection, key, body})` and
one `(:RiskgraphStore)` node keeps the schema version and the nid counter.

Values are always bound parameters. Labels, relationship types and schema property names
cannot be parameters in Cypher, so templates carry `__LABEL__`, `__REL_TYPE__` and `__PROP__`
placeholders that only `render` fills, and only with names from `kg.model`; constants that
name a model label or type are rendered from the enums too.
"""

from __future__ import annotations

from kg.model import NODE_SCHEMAS, Label, RelType

# Properties the store itself sets on nodes and relationships; never taken as user props.
NODE_INTERNAL_PROPS = frozenset({"id", "nid", "_source", "_line", "_job"})
EDGE_INTERNAL_PROPS = frozenset({"key", "_source", "_line", "_job"})
# Identifier properties that entity resolution and search look up; each gets an index.
INDEXED_NODE_PROPS = ("id_number", "uscc", "phone", "address_norm")
_PLACEHOLDERS = ("__LABEL__", "__REL_TYPE__", "__PROP__")


def render(
    template: str,
    *,
    label: Label | None = None,
    rel_type: RelType | None = None,
    prop: str | None = None,
) -> str:
    """Fill a template's placeholders with names from the graph model, never with input.

    Raises:
        ValueError: `label` or `rel_type` is not in the model, or `prop` is not a property
            of `label`.
    """
    names: dict[str, str] = {}
    if label is not None:
        names["__LABEL__"] = Label(label).value
    if rel_type is not None:
        names["__REL_TYPE__"] = RelType(rel_type).value
    if prop is not None:
        if label is None or prop not in NODE_SCHEMAS[Label(label)].props:
            raise ValueError(f"__LABEL__ has no property {prop!r}")
        names["__PROP__"] = prop
    for placeholder, name in names.items():
        if placeholder not in template:
            raise ValueError(f"the template has no {placeholder}: {template}")
        template = template.replace(placeholder, name)
    if any(p in template for p in _PLACEHOLDERS):
        raise ValueError(f"the template needs more names: {template}")
    return template


# --- schema: created on first use -----------------------------------------------------------
# The constraints on Node.id and Node.nid stay at all times: every write finds nodes through
# the first, and paging queries name the second in an index hint.
SCHEMA_STATEMENTS = (
    "CREATE CONSTRAINT node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT node_nid IF NOT EXISTS FOR (n:Node) REQUIRE n.nid IS UNIQUE",
    "CREATE CONSTRAINT alias_alias IF NOT EXISTS FOR (a:Alias) REQUIRE a.alias IS UNIQUE",
    "CREATE CONSTRAINT document_key IF NOT EXISTS "
    "FOR (d:Document) REQUIRE (d.collection, d.key) IS UNIQUE",
)
# Indexes that a bulk load into an empty store drops and builds once at the end (building an
# index from a full store is far cheaper than maintaining it through millions of inserts):
# (name, statement); statements take the name as `$name`.
INFERRED_PREDICATE_INDEX = "inferred_predicate"
DEFERRABLE_SCHEMA = (
    # CONTAINS and STARTS WITH on names are served by a text index.
    ("node_name", "CREATE TEXT INDEX $name IF NOT EXISTS FOR (n:Node) ON (n.name)"),
    (
        INFERRED_PREDICATE_INDEX,
        "CREATE INDEX $name IF NOT EXISTS FOR ()-[r:INFERRED]-() ON (r.predicate)",
    ),
)
DROP_INDEX = "DROP INDEX $name IF EXISTS"
# Identifier indexes (deferrable too), one per label and property, named `<label>_<prop>`.
PROP_INDEX = "CREATE INDEX $name IF NOT EXISTS FOR (n:__LABEL__) ON (n.__PROP__)"
AWAIT_INDEXES = "CALL db.awaitIndexes($seconds)"
STORE_INIT = (
    "MERGE (s:RiskgraphStore {singleton: true}) "
    "ON CREATE SET s.schema_version = $version, s.next_nid = 1 "
    "RETURN s.schema_version AS version"
)
SCHEMA_VERSION = "MATCH (s:RiskgraphStore {singleton: true}) RETURN s.schema_version AS version"
# Taking the counter's write lock also serialises concurrent jobs' nid ranges.
RESERVE_NIDS = (
    "MATCH (s:RiskgraphStore {singleton: true}) SET s.next_nid = s.next_nid + $count "
    "RETURN s.next_nid - $count AS first"
)
WIPE = "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
# Undo of a bulk load that committed batch by batch (see `Neo4jStore.bulk_load`): the nodes
# it numbered (with their relationships), its transaction segments, aliases left pointing
# nowhere, then the counter, unless another job reserved nids since.
UNDO_BULK_NODES = (
    "MATCH (n:Node) WHERE n.nid >= $first_nid "
    "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
)
UNDO_BULK_SEGMENTS = (
    "MATCH (s:TxnSegment) WHERE s.seq > $after_seq "
    "CALL (s) { DELETE s } IN TRANSACTIONS OF 100 ROWS"
)
UNDO_BULK_ALIASES = (
    "MATCH (a:Alias) WHERE NOT (a)-[:ALIAS_OF]->() "
    "CALL (a) { DELETE a } IN TRANSACTIONS OF 10000 ROWS"
)
UNDO_BULK_COUNTER = (
    "MATCH (s:RiskgraphStore {singleton: true}) "
    "SET s.next_nid = CASE WHEN s.next_nid = $end_nid THEN $first_nid ELSE s.next_nid END"
)
STORE_EMPTY = "RETURN COUNT { (:Node) } = 0 AND COUNT { (:TxnSegment) } = 0 AS empty"
NEXT_NID = "MATCH (s:RiskgraphStore {singleton: true}) RETURN s.next_nid AS next_nid"
# Undo of inferred facts that committed batch by batch into a store that had none.
UNDO_INFERRED = (
    "MATCH (:Node)-[r:INFERRED]->(:Node) CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS"
)

# --- nodes ----------------------------------------------------------------------------------
EXISTING_NODES = "UNWIND $ids AS id MATCH (n:Node {id: id}) RETURN n.id AS id, labels(n) AS labels"
# Nodes known to be new (looked up first): CREATE skips MERGE's lookup and locking.
NODES_CREATE = (
    "UNWIND $rows AS row "
    "CREATE (n:Node:__LABEL__ {id: row.id, nid: row.nid}) "
    "SET n += row.props, n._source = row._source, n._line = row._line, n._job = row._job"
)
NODES_UPSERT = (
    "UNWIND $rows AS row "
    "MERGE (n:Node {id: row.id}) "
    "ON CREATE SET n:__LABEL__, n.nid = row.nid, n._source = row._source, n._line = row._line, "
    "n._job = row._job "
    # Null values were dropped from row.props, so existing values survive a partial update.
    "SET n += row.props"
)

# --- edges ----------------------------------------------------------------------------------
DANGLING_EDGES = (
    "UNWIND $rows AS row "
    "OPTIONAL MATCH (a:Node {id: row.src}) "
    "OPTIONAL MATCH (b:Node {id: row.dst}) "
    "WITH row, a, b WHERE a IS NULL OR b IS NULL "
    "RETURN row.src AS src, row.dst AS dst, row._source AS source, row._line AS line LIMIT 5"
)
# Both ends are looked up once; a batch with a dangling end writes nothing and returns 0
# (then DANGLING_EDGES names the rows), so a batch is all or nothing even when it commits alone.
EDGES_UPSERT = (
    "UNWIND $rows AS row "
    "OPTIONAL MATCH (a:Node {id: row.src}) "
    "OPTIONAL MATCH (b:Node {id: row.dst}) "
    "WITH collect({row: row, a: a, b: b}) AS ends "
    "WHERE none(e IN ends WHERE e.a IS NULL OR e.b IS NULL) "
    "UNWIND ends AS e "
    "WITH e.row AS row, e.a AS a, e.b AS b "
    "MERGE (a)-[r:__REL_TYPE__ {key: row.key}]->(b) "
    "SET r += row.props, r._source = coalesce(row._source, r._source), "
    "r._line = coalesce(row._line, r._line), r._job = coalesce(row._job, r._job) "
    "RETURN count(*) AS written"
)
NEIGHBOURS_OUT = (
    "MATCH (n:Node {id: $id})-[r:__REL_TYPE__]->(m:Node) "
    "RETURN n.id AS src, m.id AS dst, r.key AS key, properties(r) AS props "
    "ORDER BY m.nid, r.key"
)
NEIGHBOURS_IN = (
    "MATCH (n:Node {id: $id})<-[r:__REL_TYPE__]-(m:Node) "
    "RETURN m.id AS src, n.id AS dst, r.key AS key, properties(r) AS props "
    "ORDER BY m.nid, r.key"
)

# --- aliases --------------------------------------------------------------------------------
ALIASES_UPSERT = (
    "UNWIND $rows AS row "
    "MATCH (n:Node {id: row.id}) "
    "MERGE (a:Alias {alias: row.alias}) "
    "WITH a, n "
    "OPTIONAL MATCH (a)-[old:ALIAS_OF]->(other:Node) WHERE other <> n "
    "DELETE old "
    "MERGE (a)-[:ALIAS_OF]->(n)"
)
RESOLVE = (
    "OPTIONAL MATCH (n:Node {id: $id}) "
    "OPTIONAL MATCH (:Alias {alias: $id})-[:ALIAS_OF]->(m:Node) "
    "RETURN coalesce(n.id, m.id) AS id"
)
ALIASES_OF = "MATCH (a:Alias)-[:ALIAS_OF]->(:Node {id: $id}) RETURN a.alias AS alias ORDER BY alias"
ALIASES_OF_MANY = (
    "UNWIND $ids AS id MATCH (a:Alias)-[:ALIAS_OF]->(:Node {id: id}) "
    "RETURN id, a.alias AS alias ORDER BY id, alias"
)

# --- point reads ----------------------------------------------------------------------------
NODE_BY_ID = (
    "MATCH (n:Node {id: $id}) RETURN n.nid AS nid, n.id AS id, labels(n) AS labels, "
    "properties(n) AS props"
)
NODES_BY_NID = (
    "UNWIND $nids AS nid MATCH (n:Node {nid: nid}) "
    "RETURN n.nid AS nid, n.id AS id, labels(n) AS labels, properties(n) AS props"
)
FIND_NODES = (
    "UNWIND $values AS value "
    "CALL (value) { "
    "MATCH (n:__LABEL__) WHERE n.__PROP__ = value "
    "RETURN n.id AS id ORDER BY n.nid LIMIT 1 } "
    "RETURN value, id"
)
_SEARCH_BY_PROP = "UNION MATCH (n:__LABEL__) WHERE n.__PROP__ = $query RETURN n "
SEARCH_EXACT = (
    "CALL () { "
    "MATCH (n:Node {id: $query}) RETURN n "
    "UNION MATCH (:Alias {alias: $query})-[:ALIAS_OF]->(n:Node) RETURN n "
    + render(_SEARCH_BY_PROP, label=Label.PERSON, prop="id_number")
    + render(_SEARCH_BY_PROP, label=Label.COMPANY, prop="uscc")
    + "} RETURN n.nid AS nid ORDER BY nid LIMIT $limit"
)
SEARCH_NAME_PREFIX = (
    "MATCH (n:Node) WHERE n.name STARTS WITH $query "
    "RETURN n.nid AS nid ORDER BY n.name, nid LIMIT $limit"
)
SEARCH_NAME_SUBSTRING = (
    "MATCH (n:Node) WHERE n.name CONTAINS $query RETURN n.nid AS nid ORDER BY nid LIMIT $limit"
)

# --- counts (served by the count store) -----------------------------------------------------
COUNT_NODES = "MATCH (n:Node) RETURN count(n) AS count"
COUNT_NODES_LABEL = "MATCH (n:__LABEL__) RETURN count(n) AS count"
COUNT_EDGES = "MATCH ()-[r:__REL_TYPE__]->() RETURN count(r) AS count"
COUNT_TXNS = "MATCH (s:TxnSegment) RETURN coalesce(sum(s.rows), 0) AS count"

# --- streaming pages: keyset pagination on the nid index, so each page costs one page; a label
# or type that fits one page is read from its scan, one predicate's facts from its index ----
# Pages come back as one record whose `rows` list holds each row as a list (one Bolt message a
# page, not one a row; a list keeps nulls, which `collect` of a bare value would drop).
NODE_PAGE = (
    "MATCH (n:Node) USING INDEX n:Node(nid) WHERE n.nid > $after "
    "WITH n ORDER BY n.nid LIMIT $limit "
    "RETURN collect([n.nid, n.id, labels(n), properties(n)]) AS rows"
)
NODE_PAGE_LABEL = (
    "MATCH (n:Node) USING INDEX n:Node(nid) WHERE n.nid > $after AND n:__LABEL__ "
    "WITH n ORDER BY n.nid LIMIT $limit "
    "RETURN collect([n.nid, n.id, labels(n), properties(n)]) AS rows"
)
# The nodes of a label with no more nodes than a page holds, from the label's scan.
NODE_PAGE_SCAN = (
    "MATCH (n:__LABEL__) USING SCAN n:__LABEL__ WHERE n:Node "
    "WITH n ORDER BY n.nid "
    "RETURN collect([n.nid, n.id, labels(n), properties(n)]) AS rows"
)
# Pages follow (src nid, dst nid, key); a page resumes after the last row of the previous one.
EDGE_PAGE = (
    "MATCH (a:Node) USING INDEX a:Node(nid) WHERE a.nid >= $after_src "
    "MATCH (a)-[r:__REL_TYPE__]->(b:Node) "
    "WITH a, r, b WHERE a.nid > $after_src OR b.nid > $after_dst "
    "OR (b.nid = $after_dst AND r.key > $after_key) "
    "WITH a.nid AS src, b.nid AS dst, r.key AS key, properties(r) AS props "
    "ORDER BY src, dst, key LIMIT $limit "
    "RETURN collect([src, dst, key, props]) AS rows"
)
# All the edges of a small type in one page, from the type's scan (the planner would start
# from the nid range and expand every node): for types with no more edges than a page holds.
EDGE_PAGE_SCAN = (
    "MATCH (a:Node)-[r:__REL_TYPE__]->(b:Node) USING SCAN r:__REL_TYPE__ "
    "WITH a.nid AS src, b.nid AS dst, r.key AS key, properties(r) AS props "
    "ORDER BY src, dst, key "
    "RETURN collect([src, dst, key, props]) AS rows"
)
INFERRED_PAGE = (
    "MATCH (a:Node) USING INDEX a:Node(nid) WHERE a.nid >= $after_src "
    "MATCH (a)-[r:INFERRED]->(b:Node) "
    "WHERE $predicate IS NULL OR r.predicate = $predicate "
    "WITH a, r, b WHERE a.nid > $after_src OR b.nid > $after_dst "
    "OR (b.nid = $after_dst AND r.predicate > $after_predicate) "
    "WITH r.predicate AS predicate, a.nid AS src, b.nid AS dst, r.rule AS rule, "
    "r.value AS value ORDER BY src, dst, predicate LIMIT $limit "
    "RETURN collect([predicate, src, dst, rule, value]) AS rows"
)
# The facts of one predicate, found through its index (the planner would start from the nid
# range and read every inferred fact); pages follow (src nid, dst nid), and each page reads
# the predicate's facts again to pick its slice, so a predicate with many pages is cheaper
# through INFERRED_PAGE (every inferred fact read once over all pages).
INFERRED_PAGE_PREDICATE = (
    "MATCH (a:Node)-[r:INFERRED]->(b:Node) USING INDEX r:INFERRED(predicate) "
    "WHERE r.predicate = $predicate "
    "WITH a, r, b WHERE a.nid > $after_src OR (a.nid = $after_src AND b.nid > $after_dst) "
    "WITH r.predicate AS predicate, a.nid AS src, b.nid AS dst, r.rule AS rule, "
    "r.value AS value ORDER BY src, dst LIMIT $limit "
    "RETURN collect([predicate, src, dst, rule, value]) AS rows"
)

# --- transactions ---------------------------------------------------------------------------
# A segment's columns are one array property each; an array cannot hold nulls, so the row
# positions of absent values are listed in `<column>__nulls`.
TXN_SEGMENT_CREATE = (
    "OPTIONAL MATCH (o:TxnSegment) "
    "WITH coalesce(max(o.seq), 0) + 1 AS seq "
    "CREATE (s:TxnSegment {seq: seq, rows: $rows}) SET s += $columns"
)
TXN_SEGMENT_LAST = "MATCH (s:TxnSegment) RETURN coalesce(max(s.seq), 0) AS seq"
TXN_SEGMENTS = "MATCH (s:TxnSegment) RETURN elementId(s) AS segment ORDER BY s.seq"
TXN_SEGMENT_READ = (
    "MATCH (s:TxnSegment) WHERE elementId(s) = $segment RETURN properties(s) AS columns"
)
ACCOUNT_NIDS = render("MATCH (n:__LABEL__) RETURN n.id AS id, n.nid AS nid", label=Label.ACCOUNT)
ACCOUNT_NIDS_OF = render(
    "UNWIND $ids AS id MATCH (n:Node {id: id}) WHERE n:__LABEL__ RETURN n.id AS id, n.nid AS nid",
    label=Label.ACCOUNT,
)
TRANSFERS_CLEAR = render(
    "MATCH (:Node)-[r:__REL_TYPE__]->(:Node) DELETE r", rel_type=RelType.TRANSFERRED
)
# The aggregation per account pair is done in Arrow from the segments; this writes the pairs.
TRANSFERS_CREATE = render(
    "UNWIND $rows AS row "
    "MATCH (a:Node {nid: row.src}) "
    "MATCH (b:Node {nid: row.dst}) "
    "CREATE (a)-[:__REL_TYPE__ {key: '', count: row.count, total_amount: row.total, "
    "first_ts: row.first_ts, last_ts: row.last_ts, _source: 'transactions'}]->(b)",
    rel_type=RelType.TRANSFERRED,
)

# --- inferred facts -------------------------------------------------------------------------
ANY_INFERRED = "RETURN EXISTS { ()-[:INFERRED]->() } AS any"
INFERRED_CLEAR_ALL = "MATCH (:Node)-[r:INFERRED]->(:Node) DELETE r"
INFERRED_CLEAR_PREDICATES = (
    "MATCH (:Node)-[r:INFERRED]->(:Node) WHERE r.predicate IN $predicates DELETE r"
)
INFERRED_UPSERT = (
    "UNWIND $rows AS row "
    "MATCH (a:Node {id: row.src}) "
    "MATCH (b:Node {id: row.dst}) "
    "MERGE (a)-[r:INFERRED {predicate: row.predicate}]->(b) "
    "SET r.rule = row.rule, r.premises = row.premises, r.value = row.value"
)
# Into a store that had no inferred facts when the job began (rows deduplicated first).
INFERRED_CREATE = (
    "UNWIND $rows AS row "
    "MATCH (a:Node {id: row.src}) "
    "MATCH (b:Node {id: row.dst}) "
    "CREATE (a)-[:INFERRED {predicate: row.predicate, rule: row.rule, premises: row.premises, "
    "value: row.value}]->(b)"
)
INFERRED_DELETE = (
    "UNWIND $rows AS row "
    "MATCH (:Node {id: row.src})-[r:INFERRED {predicate: row.predicate}]->(:Node {id: row.dst}) "
    "DELETE r"
)
INFERRED_GET = (
    "MATCH (a:Node {id: $src})-[r:INFERRED]->(b:Node) "
    "WHERE ($predicate IS NULL OR r.predicate = $predicate) AND ($dst IS NULL OR b.id = $dst) "
    "RETURN r.predicate AS predicate, a.id AS src, b.id AS dst, r.rule AS rule, "
    "r.premises AS premises, r.value AS value ORDER BY predicate, dst"
)
COUNT_INFERRED_ALL = "MATCH (:Node)-[r:INFERRED]->(:Node) RETURN count(r) AS count"
# From the count store, without reading a relationship: chooses how to page one predicate.
COUNT_INFERRED_RELATIONSHIPS = "MATCH ()-[r:INFERRED]->() RETURN count(r) AS count"
COUNT_INFERRED_PREDICATE = (
    "MATCH (:Node)-[r:INFERRED]->(:Node) WHERE r.predicate = $predicate RETURN count(r) AS count"
)

# --- documents ------------------------------------------------------------------------------
DOC_PUT = (
    "MERGE (d:Document {collection: $collection, key: $key}) "
    "SET d.body = $body, d.updated_at = datetime()"
)
DOC_GET = "MATCH (d:Document {collection: $collection, key: $key}) RETURN d.body AS body"
DOC_LIST = (
    "MATCH (d:Document {collection: $collection}) RETURN d.key AS key, d.body AS body ORDER BY key"
)
DOC_DELETE_ALL = "MATCH (d:Document {collection: $collection}) DELETE d RETURN count(d) AS deleted"
DOC_DELETE_KEYS = (
    "UNWIND $keys AS key MATCH (d:Document {collection: $collection, key: key}) "
    "DELETE d RETURN count(d) AS deleted"
)
