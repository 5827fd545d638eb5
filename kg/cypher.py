"""Every Cypher text of the Neo4j store, in one place.

The graph shape: every entity is `(:Node:<Label> {id, nid, <properties>, _source, _line,
_job})`, facts are relationships of the `RelType`s with a `key` property, other customer
numbers are `(:Alias {alias})-[:ALIAS_OF]->(:Node)`, inferred facts are
`(:Node)-[:INFERRED {predicate, rule, premises, value}]->(:Node)`, individual transactions are
table-like `(:Txn {txn_id, from_nid, to_nid, amount, ts, channel, ...})` nodes, documents are
`(:Document {collection, key, body})` and one `(:RiskgraphStore)` node keeps the schema
version and the nid counter.

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
SCHEMA_STATEMENTS = (
    "CREATE CONSTRAINT node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT node_nid IF NOT EXISTS FOR (n:Node) REQUIRE n.nid IS UNIQUE",
    "CREATE CONSTRAINT alias_alias IF NOT EXISTS FOR (a:Alias) REQUIRE a.alias IS UNIQUE",
    "CREATE CONSTRAINT txn_id IF NOT EXISTS FOR (t:Txn) REQUIRE t.txn_id IS UNIQUE",
    "CREATE CONSTRAINT document_key IF NOT EXISTS "
    "FOR (d:Document) REQUIRE (d.collection, d.key) IS UNIQUE",
    # CONTAINS and STARTS WITH on names are served by a text index.
    "CREATE TEXT INDEX node_name IF NOT EXISTS FOR (n:Node) ON (n.name)",
    "CREATE INDEX inferred_predicate IF NOT EXISTS FOR ()-[r:INFERRED]-() ON (r.predicate)",
)
PROP_INDEX = "CREATE INDEX IF NOT EXISTS FOR (n:__LABEL__) ON (n.__PROP__)"
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

# --- nodes ----------------------------------------------------------------------------------
EXISTING_NODES = "UNWIND $ids AS id MATCH (n:Node {id: id}) RETURN n.id AS id, labels(n) AS labels"
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
EDGES_UPSERT = (
    "UNWIND $rows AS row "
    "MATCH (a:Node {id: row.src}) "
    "MATCH (b:Node {id: row.dst}) "
    "MERGE (a)-[r:__REL_TYPE__ {key: row.key}]->(b) "
    "SET r += row.props, r._source = coalesce(row._source, r._source), "
    "r._line = coalesce(row._line, r._line), r._job = coalesce(row._job, r._job)"
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
COUNT_TXNS = "MATCH (t:Txn) RETURN count(t) AS count"

# --- streaming pages: keyset pagination on the nid index, so each page costs one page -------
NODE_PAGE = (
    "MATCH (n:Node) USING INDEX n:Node(nid) WHERE n.nid > $after "
    "RETURN n.nid AS nid, n.id AS id, labels(n) AS labels, properties(n) AS props "
    "ORDER BY nid LIMIT $limit"
)
NODE_PAGE_LABEL = (
    "MATCH (n:Node) USING INDEX n:Node(nid) WHERE n.nid > $after AND n:__LABEL__ "
    "RETURN n.nid AS nid, n.id AS id, labels(n) AS labels, properties(n) AS props "
    "ORDER BY nid LIMIT $limit"
)
# Pages follow (src nid, dst nid, key); a page resumes after the last row of the previous one.
EDGE_PAGE = (
    "MATCH (a:Node) USING INDEX a:Node(nid) WHERE a.nid >= $after_src "
    "MATCH (a)-[r:__REL_TYPE__]->(b:Node) "
    "WITH a, r, b WHERE a.nid > $after_src OR b.nid > $after_dst "
    "OR (b.nid = $after_dst AND r.key > $after_key) "
    "RETURN a.nid AS src, b.nid AS dst, r.key AS key, properties(r) AS props "
    "ORDER BY src, dst, key LIMIT $limit"
)
TXN_PAGE = (
    "MATCH (t:Txn) USING INDEX t:Txn(txn_id) WHERE t.txn_id > $after "
    "RETURN t.txn_id AS txn_id, t.from_nid AS from_nid, t.to_nid AS to_nid, "
    "t.amount AS amount, t.ts AS ts, t.channel AS channel, t._source AS _source, "
    "t._line AS _line, t._job AS _job ORDER BY txn_id LIMIT $limit"
)
INFERRED_PAGE = (
    "MATCH (a:Node) USING INDEX a:Node(nid) WHERE a.nid >= $after_src "
    "MATCH (a)-[r:INFERRED]->(b:Node) "
    "WHERE $predicate IS NULL OR r.predicate = $predicate "
    "WITH a, r, b WHERE a.nid > $after_src OR b.nid > $after_dst "
    "OR (b.nid = $after_dst AND r.predicate > $after_predicate) "
    "RETURN r.predicate AS predicate, a.nid AS src, b.nid AS dst, r.rule AS rule, "
    "r.value AS value ORDER BY src, dst, predicate LIMIT $limit"
)

# --- transactions ---------------------------------------------------------------------------
TXN_LOOKUP = render(
    "UNWIND $rows AS row "
    "OPTIONAL MATCH (t:Txn {txn_id: row.txn_id}) "
    "OPTIONAL MATCH (a:Node {id: row.from_account}) WHERE a:__LABEL__ "
    "OPTIONAL MATCH (b:Node {id: row.to_account}) WHERE b:__LABEL__ "
    "RETURN row.txn_id AS txn_id, t IS NOT NULL AS stored, a.nid AS from_nid, b.nid AS to_nid",
    label=Label.ACCOUNT,
)
TXN_INSERT = "UNWIND $rows AS row CREATE (t:Txn) SET t = row"
TRANSFERS_CLEAR = render(
    "MATCH (:Node)-[r:__REL_TYPE__]->(:Node) DELETE r", rel_type=RelType.TRANSFERRED
)
TRANSFERS_REBUILD = render(
    "MATCH (t:Txn) "
    "WITH t.from_nid AS src, t.to_nid AS dst, count(t) AS count, sum(t.amount) AS total, "
    "min(t.ts) AS first_ts, max(t.ts) AS last_ts "
    "MATCH (a:Node {nid: src}) "
    "MATCH (b:Node {nid: dst}) "
    "CREATE (a)-[:__REL_TYPE__ {key: '', count: count, total_amount: total, "
    "first_ts: first_ts, last_ts: last_ts, _source: 'transactions'}]->(b) "
    "RETURN count(*) AS pairs",
    rel_type=RelType.TRANSFERRED,
)

# --- inferred facts -------------------------------------------------------------------------
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
