"""Pydantic schemas of the public API, named for their use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


# --- control and ownership -----------------------------------------------------------------
class HoldingStepPublic(BaseModel):
    holder: str
    company: str
    voting_pct: float


class VoteContributionPublic(BaseModel):
    holder: str
    voting_pct: float
    chain: list[HoldingStepPublic] = Field(
        default_factory=list, description="holdings from the controller down to the holder"
    )


class ControlRelationPublic(BaseModel):
    controller: str
    company: str
    basis: str = Field(
        description="majority_voting | actual_controller | aggregated_voting | family_party"
    )
    direct: bool
    rule: str
    total_voting_pct: float
    votes: list[VoteContributionPublic]
    family: list[str] = Field(default_factory=list)
    explanation: str


class ControlListPublic(BaseModel):
    entity_id: str
    as_of: str | None = None
    relations: list[ControlRelationPublic]


class BeneficialOwnerPublic(BaseModel):
    person: str
    name: str | None = None
    effective_share_pct: float
    controls: bool
    reasons: list[str]


class BeneficialOwnersPublic(BaseModel):
    entity_id: str
    as_of: str | None = None
    owners: list[BeneficialOwnerPublic]


# --- groups, limits, related parties -------------------------------------------------------
class LimitUsePublic(BaseModel):
    name: str
    description: str
    limit: float
    exposure: float
    utilisation: float
    breached: bool


class MemberReasonPublic(BaseModel):
    kind: str = Field(description="controlled_by | controls | family_party | connected | self")
    other_id: str | None = None
    text: str
    rule: str | None = None


class GroupMemberPublic(BaseModel):
    id: str
    name: str | None = None
    label: str
    aliases: list[str] = Field(default_factory=list)
    exposure: float
    guarantees_given: float
    reasons: list[MemberReasonPublic]


class GroupExposurePublic(BaseModel):
    entity_id: str
    group_id: str
    as_of: str | None = None
    members: list[GroupMemberPublic]
    exposure: float = Field(description="sum of the members' loan balances, CNY")
    guarantees_given: float = Field(description="guarantees given by members, CNY")
    interbank: bool
    large_exposure: bool
    limits: list[LimitUsePublic]


class RelatedPartyPublic(BaseModel):
    id: str
    name: str | None = None
    label: str
    reasons: list[str]


class RelatedPartiesPublic(BaseModel):
    entity_id: str
    relative_to: str = Field(description="the institution the parties are related to")
    entity_is_related: bool | None = Field(
        default=None, description="with a configured bank: is the entity a related party"
    )
    reasons: list[str] = Field(default_factory=list)
    related_parties: list[RelatedPartyPublic]
    limits: list[LimitUsePublic] = Field(default_factory=list)


# --- guarantees ----------------------------------------------------------------------------
class GuaranteeCirclePublic(BaseModel):
    members: list[str]
    cycles: list[list[str]]
    cycles_truncated: bool
    mutual_pairs: list[list[str]]
    total_amount: float


class GuaranteeChainPublic(BaseModel):
    path: list[str] = Field(description="path[i] guarantees path[i+1]")
    amounts: list[float]
    length: int
    total_amount: float


class GuaranteesPublic(BaseModel):
    entity_id: str
    as_of: str | None = None
    circles: list[GuaranteeCirclePublic]
    chains: list[GuaranteeChainPublic]


# --- reports -------------------------------------------------------------------------------
class LargeExposurePublic(BaseModel):
    kind: str
    id: str
    name: str | None = None
    members: int
    exposure: float
    pct_of_tier1: float
    guarantees_given: float
    interbank: bool
    limits: list[LimitUsePublic]
    breached: list[str]


class LargeExposureReportPublic(BaseModel):
    profile: str
    threshold: float
    rows: list[LargeExposurePublic]


# --- origination ---------------------------------------------------------------------------
class OriginationCheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    borrower_id: str = Field(min_length=1, max_length=200)
    amount: float = Field(gt=0, lt=1e15, description="the new loan, CNY")
    guarantor_ids: list[str] = Field(default_factory=list, max_length=100)


class DecisionFlagPublic(BaseModel):
    code: str
    severity: str = Field(description="block | review | info")
    message: str
    entities: list[str]


class LimitCheckPublic(BaseModel):
    name: str
    scope: str
    description: str
    limit: float
    exposure_before: float
    exposure_after: float
    utilisation_after: float
    breached: bool


class CircleSummaryPublic(BaseModel):
    circle_id: str
    members: list[str]
    total_amount: float
    mutual_pairs: list[list[str]]


class RingSummaryPublic(BaseModel):
    ring_id: str
    members: list[str]
    score: float | None = None
    region: str | None = None


class RelatedPartyFlagPublic(BaseModel):
    id: str
    reasons: list[str]


class OriginationCheckPublic(BaseModel):
    borrower_id: str
    amount: float
    group_id: str
    group_members: list[str]
    decision_flags: list[DecisionFlagPublic]
    client_exposure_before: float
    client_exposure_after: float
    group_exposure_before: float
    group_exposure_after: float
    large_exposure_threshold: float
    limits: list[LimitCheckPublic]
    circles: list[CircleSummaryPublic]
    rings: list[RingSummaryPublic]
    related_parties: list[RelatedPartyFlagPublic]
