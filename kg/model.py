"""The graph model: node labels, relationship types and their property schema.

Everything that stores, reads or projects the graph takes its vocabulary from here, so the
SQLite and Neo4j stores, the ingest mappings and the reasoner agree on names and types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

PropType = Literal["str", "float", "int", "bool", "date", "timestamp"]


class Label(StrEnum):
    PERSON = "Person"
    COMPANY = "Company"
    ACCOUNT = "Account"
    LOAN = "Loan"
    DEVICE = "Device"


class RelType(StrEnum):
    HOLDS_SHARES = "HOLDS_SHARES"
    HOLDS_POSITION = "HOLDS_POSITION"
    RELATIVE_OF = "RELATIVE_OF"
    GUARANTEES = "GUARANTEES"
    BORROWED = "BORROWED"
    OWNS_ACCOUNT = "OWNS_ACCOUNT"
    TRANSFERRED = "TRANSFERRED"
    USES_DEVICE = "USES_DEVICE"


class Direction(StrEnum):
    OUT = "out"
    IN = "in"
    BOTH = "both"


# Labels of the parties a bank lends to; relationship ends that must be one of these.
PARTY_LABELS: frozenset[Label] = frozenset({Label.PERSON, Label.COMPANY})


@dataclass(frozen=True, slots=True)
class NodeSchema:
    label: Label
    props: dict[str, PropType]


@dataclass(frozen=True, slots=True)
class RelSchema:
    """A relationship type: its end labels, typed properties and what makes one edge unique.

    `key_prop` names the property that tells parallel edges between the same two nodes apart
    (a guarantee id, a position's role); edges without one are unique per (src, dst).
    """

    type: RelType
    src_labels: frozenset[Label]
    dst_labels: frozenset[Label]
    props: dict[str, PropType]
    key_prop: str | None = None


NODE_SCHEMAS: dict[Label, NodeSchema] = {
    Label.PERSON: NodeSchema(
        Label.PERSON,
        {
            "name": "str",
            "id_number": "str",
            "phone": "str",
            "address": "str",
            "address_norm": "str",
            "region_code": "str",
            "birth_date": "date",
        },
    ),
    Label.COMPANY: NodeSchema(
        Label.COMPANY,
        {
            "name": "str",
            "uscc": "str",
            "region_code": "str",
            "industry": "str",
            "registered_capital": "float",
            "established_date": "date",
            "phone": "str",
            "address": "str",
            "address_norm": "str",
            "is_financial": "bool",
        },
    ),
    Label.ACCOUNT: NodeSchema(Label.ACCOUNT, {"branch": "str", "opened_date": "date"}),
    Label.LOAN: NodeSchema(
        Label.LOAN,
        {
            "amount": "float",
            "balance": "float",
            "start_date": "date",
            "maturity_date": "date",
            "classification": "str",
            "branch": "str",
            "currency": "str",
        },
    ),
    Label.DEVICE: NodeSchema(Label.DEVICE, {}),
}

_PARTY = frozenset({Label.PERSON, Label.COMPANY})

REL_SCHEMAS: dict[RelType, RelSchema] = {
    RelType.HOLDS_SHARES: RelSchema(
        RelType.HOLDS_SHARES,
        _PARTY,
        frozenset({Label.COMPANY}),
        {"share_pct": "float", "voting_pct": "float", "as_of": "date"},
    ),
    RelType.HOLDS_POSITION: RelSchema(
        RelType.HOLDS_POSITION,
        frozenset({Label.PERSON}),
        frozenset({Label.COMPANY}),
        {"role": "str"},
        key_prop="role",
    ),
    RelType.RELATIVE_OF: RelSchema(
        RelType.RELATIVE_OF,
        frozenset({Label.PERSON}),
        frozenset({Label.PERSON}),
        {"relation": "str"},
    ),
    RelType.GUARANTEES: RelSchema(
        RelType.GUARANTEES,
        _PARTY,
        _PARTY,
        {
            "guarantee_id": "str",
            "loan_id": "str",
            "amount": "float",
            "start_date": "date",
            "end_date": "date",
            "kind": "str",
            "currency": "str",
        },
        key_prop="guarantee_id",
    ),
    RelType.BORROWED: RelSchema(RelType.BORROWED, _PARTY, frozenset({Label.LOAN}), {}),
    RelType.OWNS_ACCOUNT: RelSchema(RelType.OWNS_ACCOUNT, _PARTY, frozenset({Label.ACCOUNT}), {}),
    RelType.TRANSFERRED: RelSchema(
        RelType.TRANSFERRED,
        frozenset({Label.ACCOUNT}),
        frozenset({Label.ACCOUNT}),
        {"count": "int", "total_amount": "float", "first_ts": "timestamp", "last_ts": "timestamp"},
    ),
    RelType.USES_DEVICE: RelSchema(
        RelType.USES_DEVICE, _PARTY, frozenset({Label.DEVICE}), {"first_seen": "date"}
    ),
}

# Columns every written row carries besides its properties: where the fact came from.
PROVENANCE_COLUMNS: tuple[str, str, str] = ("_source", "_line", "_job")

POSITION_ROLES: frozenset[str] = frozenset(
    {
        "legal_representative",
        "director",
        "supervisor",
        "executive",
        "financial_controller",
        "actual_controller",
    }
)
KINSHIP_RELATIONS: frozenset[str] = frozenset({"spouse", "parent", "child", "sibling"})
GUARANTEE_KINDS: frozenset[str] = frozenset({"guarantee", "mortgage", "pledge"})
LOAN_CLASSIFICATIONS: tuple[str, ...] = (
    "normal",
    "special_mention",
    "substandard",
    "doubtful",
    "loss",
)
# The three lower classes are non-performing under the five-category loan classification.
NON_PERFORMING: frozenset[str] = frozenset({"substandard", "doubtful", "loss"})


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a stored fact came from: the source file, its 1-based line and the ingest job."""

    source: str
    line: int
    job_id: str


@dataclass(slots=True)
class Node:
    nid: int
    id: str
    label: Label
    props: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None

    @property
    def name(self) -> str | None:
        value = self.props.get("name")
        return str(value) if value is not None else None


@dataclass(slots=True)
class Edge:
    type: RelType
    src: str
    dst: str
    key: str = ""
    props: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None


@dataclass(frozen=True, slots=True)
class InferredFact:
    """One inferred edge and one derivation of it.

    `premises` lists the facts the rule used, each as a dict
    `{"kind": "edge"|"inferred"|"node", ...}` that `reasoning` knows how to expand.
    """

    predicate: str
    src: str
    dst: str
    rule: str
    premises: tuple[dict[str, Any], ...] = ()
    value: float | None = None
