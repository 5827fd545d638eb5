"""Pydantic schemas of the public API, named for their use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kg.model import Node


class ProvenancePublic(BaseModel):
    source: str
    line: int
    job_id: str


class EntityPublic(BaseModel):
    id: str
    label: str
    name: str | None = None
    aliases: list[str] = Field(default_factory=list)
    properties: dict[str, Any] = Field(default_factory=dict)
    provenance: ProvenancePublic | None = None

    @classmethod
    def from_node(cls, node: Node, aliases: list[str] | None = None) -> EntityPublic:
        provenance = (
            ProvenancePublic(
                source=node.provenance.source,
                line=node.provenance.line,
                job_id=node.provenance.job_id,
            )
            if node.provenance
            else None
        )
        return cls(
            id=node.id,
            label=node.label.value,
            name=node.name,
            aliases=aliases or [],
            properties=node.props,
            provenance=provenance,
        )


class SearchResultPublic(BaseModel):
    query: str
    results: list[EntityPublic]
