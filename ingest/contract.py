"""The canonical input contract (shared/data-contract.md) as data: files, columns, rules.

Validation, the mapping loader and the pipeline all read these definitions, so the contract
is written down once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kg.model import (
    GUARANTEE_KINDS,
    KINSHIP_RELATIONS,
    LOAN_CLASSIFICATIONS,
    POSITION_ROLES,
    Label,
    RelType,
)

ColumnKind = Literal[
    "id",
    "text",
    "amount",
    "pct",
    "date",
    "timestamp",
    "bool",
    "enum",
    "resident_id",
    "uscc",
    "phone",
    "address",
    "region_code",
]

ENTITY = frozenset({Label.PERSON, Label.COMPANY})


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ColumnKind
    required: bool = False
    # For `id` columns that point at another record: the labels it may point at.
    refers_to: frozenset[Label] = frozenset()
    values: frozenset[str] = frozenset()
    # Amount columns: allow zero (balances), never negatives.
    allow_zero: bool = True


@dataclass(frozen=True, slots=True)
class ContractFile:
    """One input file of the contract and the graph it becomes."""

    name: str
    columns: tuple[Column, ...]
    # Nodes this file creates: (label, id column).
    node: tuple[Label, str] | None = None
    # Edges this file creates: (rel type, src column, dst column, key column or None).
    edges: tuple[tuple[RelType, str, str, str | None], ...] = ()
    # Entity resolution: records with the same valid value of this column are one entity.
    resolve_by: str | None = None
    required_file: bool = False
    # Nodes that only exist as the far end of this file's edges (devices).
    extra_node: tuple[Label, str] | None = None

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


_PARTY_REF = ENTITY

CONTRACT: tuple[ContractFile, ...] = (
    ContractFile(
        "persons",
        (
            Column("person_id", "id", required=True),
            Column("name", "text", required=True),
            Column("id_number", "resident_id"),
            Column("phone", "phone"),
            Column("address", "address"),
            Column("region_code", "region_code"),
            Column("birth_date", "date"),
        ),
        node=(Label.PERSON, "person_id"),
        resolve_by="id_number",
        required_file=True,
    ),
    ContractFile(
        "companies",
        (
            Column("company_id", "id", required=True),
            Column("name", "text", required=True),
            Column("uscc", "uscc"),
            Column("region_code", "region_code"),
            Column("industry", "text"),
            Column("registered_capital", "amount"),
            Column("established_date", "date"),
            Column("phone", "phone"),
            Column("address", "address"),
            Column("is_financial", "bool"),
        ),
        node=(Label.COMPANY, "company_id"),
        resolve_by="uscc",
        required_file=True,
    ),
    ContractFile(
        "loans",
        (
            Column("loan_id", "id", required=True),
            Column("borrower_id", "id", required=True, refers_to=_PARTY_REF),
            Column("amount", "amount", required=True, allow_zero=False),
            Column("balance", "amount", required=True),
            Column("start_date", "date"),
            Column("maturity_date", "date"),
            Column("classification", "enum", values=frozenset(LOAN_CLASSIFICATIONS)),
            Column("branch", "text"),
            Column("currency", "text"),
        ),
        node=(Label.LOAN, "loan_id"),
        edges=((RelType.BORROWED, "borrower_id", "loan_id", None),),
    ),
    ContractFile(
        "accounts",
        (
            Column("account_id", "id", required=True),
            Column("owner_id", "id", required=True, refers_to=_PARTY_REF),
            Column("branch", "text"),
            Column("opened_date", "date"),
        ),
        node=(Label.ACCOUNT, "account_id"),
        edges=((RelType.OWNS_ACCOUNT, "owner_id", "account_id", None),),
    ),
    ContractFile(
        "devices",
        (
            Column("owner_id", "id", required=True, refers_to=_PARTY_REF),
            Column("device_id", "id", required=True),
            Column("first_seen", "date"),
        ),
        extra_node=(Label.DEVICE, "device_id"),
        edges=((RelType.USES_DEVICE, "owner_id", "device_id", None),),
    ),
    ContractFile(
        "shareholdings",
        (
            Column("holder_id", "id", required=True, refers_to=_PARTY_REF),
            Column("company_id", "id", required=True, refers_to=frozenset({Label.COMPANY})),
            Column("share_pct", "pct", required=True),
            Column("voting_pct", "pct"),
            Column("as_of", "date"),
        ),
        edges=((RelType.HOLDS_SHARES, "holder_id", "company_id", None),),
    ),
    ContractFile(
        "positions",
        (
            Column("person_id", "id", required=True, refers_to=frozenset({Label.PERSON})),
            Column("company_id", "id", required=True, refers_to=frozenset({Label.COMPANY})),
            Column("role", "enum", required=True, values=POSITION_ROLES),
        ),
        edges=((RelType.HOLDS_POSITION, "person_id", "company_id", "role"),),
    ),
    ContractFile(
        "kinships",
        (
            Column("person_id", "id", required=True, refers_to=frozenset({Label.PERSON})),
            Column("relative_id", "id", required=True, refers_to=frozenset({Label.PERSON})),
            Column("relation", "enum", required=True, values=KINSHIP_RELATIONS),
        ),
        edges=((RelType.RELATIVE_OF, "person_id", "relative_id", None),),
    ),
    ContractFile(
        "guarantees",
        (
            Column("guarantee_id", "id", required=True),
            Column("guarantor_id", "id", required=True, refers_to=_PARTY_REF),
            Column("borrower_id", "id", required=True, refers_to=_PARTY_REF),
            Column("loan_id", "id", refers_to=frozenset({Label.LOAN})),
            Column("amount", "amount", required=True, allow_zero=False),
            Column("start_date", "date"),
            Column("end_date", "date"),
            Column("kind", "enum", values=GUARANTEE_KINDS),
            Column("currency", "text"),
        ),
        edges=((RelType.GUARANTEES, "guarantor_id", "borrower_id", "guarantee_id"),),
    ),
    ContractFile(
        "transactions",
        (
            Column("txn_id", "id", required=True),
            Column("from_account", "id", required=True, refers_to=frozenset({Label.ACCOUNT})),
            Column("to_account", "id", required=True, refers_to=frozenset({Label.ACCOUNT})),
            Column("amount", "amount", required=True, allow_zero=False),
            Column("ts", "timestamp", required=True),
            Column("channel", "text"),
        ),
    ),
)

CONTRACT_BY_NAME: dict[str, ContractFile] = {f.name: f for f in CONTRACT}

# Load order: entities first, then what refers to them.
LOAD_ORDER: tuple[str, ...] = tuple(f.name for f in CONTRACT)
