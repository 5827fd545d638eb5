"""The graph neighbourhood of an entity, for the analyst workbench's graph view.

Depth counts hops between parties (persons and companies). Loans, accounts and devices are
attributes of a party, so a money flow (party → account → account → party) or a shared
device (party → device ← party) is one hop, the same as a holding or a guarantee.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from rdflib import OWL, RDF, URIRef

from api.deps import AsOfDep, StoreDep, canonical_id
from kg.model import PARTY_LABELS, Direction, Edge, Node, RelType
from kg.store import GraphStore
from reasoning.owl import load_ontology, local_name
from risk.dated import ownership_view
from risk.report_entity import inferred_links

router = APIRouter(prefix="/v1", tags=["graph"])

# Relationships between two parties, walked from every party reached.
PARTY_RELATIONS = (
    RelType.HOLDS_SHARES,
    RelType.HOLDS_POSITION,
    RelType.RELATIVE_OF,
    RelType.GUARANTEES,
)


class GraphNodePublic(BaseModel):
    id: str
    label: str
    name: str | None = None
    depth: int = Field(description="party hops from the entity asked about")
    properties: dict[str, Any] = Field(default_factory=dict)


class GraphEdgePublic(BaseModel):
    id: str
    type: str = Field(description="a relationship type, or an inferred predicate")
    source: str
    target: str
    key: str = ""
    inferred: bool
    rule: str | None = Field(default=None, description="the rule that inferred the edge")
    symmetric: bool = Field(default=False, description="holds in both directions")
    value: float | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class NeighbourhoodPublic(BaseModel):
    entity_id: str
    depth: int
    as_of: str | None = None
    truncated: bool = Field(description="more nodes were reachable than `max_nodes`")
    nodes: list[GraphNodePublic]
    edges: list[GraphEdgePublic]


@lru_cache(maxsize=1)
def symmetric_predicates() -> frozenset[str]:
    """Inferred predicates the ontology declares symmetric (drawn once, not twice)."""
    graph = load_ontology()
    return frozenset(
        local_name(s)
        for s in graph.subjects(RDF.type, OWL.SymmetricProperty)
        if isinstance(s, URIRef)
    )


def _in_force(edge: Edge, as_of: str | None) -> bool:
    """Holdings recorded by `as_of`, guarantees in force on that day; the rest always."""
    if as_of is None:
        return True
    if edge.type == RelType.HOLDS_SHARES:
        recorded = edge.props.get("as_of")
        return recorded is None or str(recorded) <= as_of
    if edge.type == RelType.GUARANTEES:
        start, end = edge.props.get("start_date"), edge.props.get("end_date")
        return (start is None or str(start) <= as_of) and (end is None or str(end) >= as_of)
    return True


class _Walk:
    """Breadth-first collection of nodes and base edges, bounded by `max_nodes`."""

    def __init__(self, store: GraphStore, as_of: str | None, max_nodes: int) -> None:
        self.store = store
        self.as_of = as_of
        self.max_nodes = max_nodes
        self.nodes: dict[str, Node] = {}
        self.depth: dict[str, int] = {}
        self.edges: dict[tuple[str, str, str, str], Edge] = {}
        self.truncated = False

    def admit(self, entity_id: str, depth: int) -> bool:
        if entity_id in self.nodes:
            return True
        if len(self.nodes) >= self.max_nodes:
            self.truncated = True
            return False
        node = self.store.get_node(entity_id)
        if node is None:
            return False
        self.nodes[node.id] = node
        self.depth[node.id] = depth
        return True

    def link(self, edge: Edge) -> None:
        if edge.src in self.nodes and edge.dst in self.nodes:
            self.edges[(edge.type.value, edge.src, edge.dst, edge.key)] = edge

    def reach(self, edge: Edge, other: str, depth: int) -> bool:
        """Admit the far end of an edge and keep the edge; True if the far end is new."""
        if not _in_force(edge, self.as_of):
            return False
        known = other in self.nodes
        if not self.admit(other, depth):
            return False
        self.link(edge)
        return not known

    def expand(self, party: str, depth: int) -> list[str]:
        """Everything one party hop from `party`; returns the parties newly reached."""
        store, found = self.store, []
        for rel_type in PARTY_RELATIONS:
            for edge in store.neighbours(party, rel_type, Direction.BOTH):
                other = edge.dst if edge.src == party else edge.src
                if self.reach(edge, other, depth):
                    found.append(other)
        for edge in store.neighbours(party, RelType.BORROWED, Direction.OUT):
            self.reach(edge, edge.dst, depth - 1)
        for edge in store.neighbours(party, RelType.USES_DEVICE, Direction.OUT):
            self.reach(edge, edge.dst, depth - 1)
            for use in store.neighbours(edge.dst, RelType.USES_DEVICE, Direction.IN):
                if self.reach(use, use.src, depth):
                    found.append(use.src)
        for edge in store.neighbours(party, RelType.OWNS_ACCOUNT, Direction.OUT):
            self.reach(edge, edge.dst, depth - 1)
            for flow in store.neighbours(edge.dst, RelType.TRANSFERRED, Direction.BOTH):
                account = flow.dst if flow.src == edge.dst else flow.src
                self.reach(flow, account, depth)
                for owner in store.neighbours(account, RelType.OWNS_ACCOUNT, Direction.IN):
                    if self.reach(owner, owner.src, depth):
                        found.append(owner.src)
        return found


def _is_party(node: Node) -> bool:
    return node.label in PARTY_LABELS


def neighbourhood(
    store: GraphStore,
    entity_id: str,
    depth: int,
    as_of: str | None,
    max_nodes: int,
    all_inferred: bool = False,
) -> NeighbourhoodPublic:
    """Nodes within `depth` party hops of the entity, the base edges between them, and the
    inferred facts from the entity and between the nodes reached."""
    dated = ownership_view(store, as_of, [entity_id]) if as_of else None
    try:
        return _neighbourhood(store, dated, entity_id, depth, as_of, max_nodes, all_inferred)
    finally:
        if dated is not None:
            dated.close()


def _neighbourhood(
    store: GraphStore,
    dated: GraphStore | None,
    entity_id: str,
    depth: int,
    as_of: str | None,
    max_nodes: int,
    all_inferred: bool,
) -> NeighbourhoodPublic:
    walk = _Walk(store, as_of, max_nodes)
    walk.admit(entity_id, 0)
    queue = deque([(entity_id, 0)])
    while queue:
        party, d = queue.popleft()
        if d >= depth:
            continue
        for other in walk.expand(party, d + 1):
            if _is_party(walk.nodes[other]):
                queue.append((other, d + 1))
    # Inferred links of the entity itself may reach parties no base edge leads to (a
    # common controller, a connected client); other nodes only add links within the view.
    inferred: list[GraphEdgePublic] = []
    seen: set[tuple[str, str, str]] = set()
    symmetric = symmetric_predicates()
    for node_id in list(walk.nodes):
        if not _is_party(walk.nodes[node_id]):
            continue
        for fact in inferred_links(store, node_id, dated, keep_restating=all_inferred):
            if node_id == entity_id:
                walk.admit(fact.dst, 1)
            if fact.dst not in walk.nodes or fact.src == fact.dst:
                continue
            is_symmetric = fact.predicate in symmetric
            if is_symmetric and (fact.predicate, fact.dst, fact.src) in seen:
                continue
            seen.add((fact.predicate, fact.src, fact.dst))
            ends = sorted((fact.src, fact.dst)) if is_symmetric else [fact.src, fact.dst]
            inferred.append(
                GraphEdgePublic(
                    # One id per link whichever end asked, so views can merge neighbourhoods.
                    id=f"inferred:{fact.predicate}:{':'.join(ends)}",
                    type=fact.predicate,
                    source=fact.src,
                    target=fact.dst,
                    inferred=True,
                    rule=fact.rule,
                    symmetric=is_symmetric,
                    value=fact.value,
                )
            )
    base = [
        GraphEdgePublic(
            id=f"{e.type.value}:{e.src}:{e.dst}:{e.key}",
            type=e.type.value,
            source=e.src,
            target=e.dst,
            key=e.key,
            inferred=False,
            symmetric=e.type == RelType.RELATIVE_OF,
            properties=e.props,
        )
        for e in walk.edges.values()
    ]
    return NeighbourhoodPublic(
        entity_id=entity_id,
        depth=depth,
        as_of=as_of,
        truncated=walk.truncated,
        nodes=[
            GraphNodePublic(
                id=n.id,
                label=n.label.value,
                name=n.name,
                depth=walk.depth[n.id],
                properties=n.props,
            )
            for n in walk.nodes.values()
        ],
        edges=base + inferred,
    )


@router.get("/entities/{entity_id}/neighbourhood", response_model=NeighbourhoodPublic)
def get_neighbourhood(
    entity_id: str,
    store: StoreDep,
    as_of: AsOfDep,
    depth: Annotated[int, Query(ge=1, le=3, description="party hops")] = 1,
    max_nodes: Annotated[int, Query(ge=10, le=2000)] = 300,
    all_inferred: Annotated[
        bool, Query(description="also inferred links that restate drawn ones (inverses, …)")
    ] = False,
) -> NeighbourhoodPublic:
    """The entity's graph neighbourhood: holdings (with percentages), positions, kinships,
    guarantees, loans, shared devices and money flows between accounts, each edge marked
    base or inferred (control, common controllers, shared identifiers, circles …)."""
    canonical = canonical_id(store, entity_id)
    return neighbourhood(store, canonical, depth, as_of, max_nodes, all_inferred)
