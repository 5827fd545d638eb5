"""Related parties (关联方) and the related-party credit limits.

The related parties of an institution E are: holders of ≥ 5% of E, its directors,
supervisors and executives, the parties that control it, the close relatives (spouse,
parents, children, siblings) of those persons, and every entity any of them controls, alone
or with their family party. For the bank's limits E is the bank itself
(`BankParameters.bank_entity_id`); without it, the related parties of an entity are computed
relative to that entity (its own insiders), which is what an analyst reviewing the entity's
governance needs.

The reasoner derives the same relation (`relatedParty` in `reasoning/rules/banking.dl`) but
does not store it, so it is assembled here from the stored holdings and positions and the
materialised `controls`, `familyOf` and `familyVotingPower` facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kg.model import Direction, Label, RelType
from kg.store import GraphStore
from risk.control import controlled_companies, controllers

INSIDER_SHARE_PCT = 5.0
OFFICER_ROLES: frozenset[str] = frozenset({"director", "supervisor", "executive"})
_ROLE_WORDS = {"director": "a director", "supervisor": "a supervisor", "executive": "an executive"}


@dataclass(slots=True)
class RelatedParty:
    id: str
    name: str | None
    label: str
    reasons: list[str] = field(default_factory=list)


def insiders(store: GraphStore, institution_id: str) -> dict[str, list[str]]:
    """The insiders of an institution and their close relatives, with reasons: ≥ 5% holders,
    directors, supervisors and executives, and the relatives of those who are persons.

    A cheap subset of `related_parties` (no control queries), for the origination check.
    """
    reasons: dict[str, list[str]] = {}
    for edge in store.neighbours(institution_id, RelType.HOLDS_SHARES, Direction.IN):
        share = float(edge.props.get("share_pct") or 0.0)
        if share >= INSIDER_SHARE_PCT:
            reasons.setdefault(edge.src, []).append(f"holds {share:g}% of {institution_id}")
    for edge in store.neighbours(institution_id, RelType.HOLDS_POSITION, Direction.IN):
        role = str(edge.props.get("role") or edge.key)
        if role in OFFICER_ROLES:
            reasons.setdefault(edge.src, []).append(f"is {_ROLE_WORDS[role]} of {institution_id}")
    for insider in list(reasons):
        for fact in store.get_inferred(insider, "familyOf"):
            if fact.dst != institution_id:
                reasons.setdefault(fact.dst, []).append(f"close relative of {insider}, an insider")
    return reasons


def related_parties(store: GraphStore, institution_id: str) -> list[RelatedParty]:
    """Every related party of an institution, each with the reasons it is one.

    Example:
        >>> [p.id for p in related_parties(store, "BANK")]  # doctest: +SKIP
        ['C15', 'P4', 'P5', 'P6']
    """
    reasons: dict[str, list[str]] = {}
    inst = store.get_node(institution_id)
    inst_name = inst.name if inst and inst.name else institution_id

    def add(entity: str, reason: str) -> None:
        if entity != institution_id:
            reasons.setdefault(entity, [])
            if reason not in reasons[entity]:
                reasons[entity].append(reason)

    for edge in store.neighbours(institution_id, RelType.HOLDS_SHARES, Direction.IN):
        share = float(edge.props.get("share_pct") or 0.0)
        if share >= INSIDER_SHARE_PCT:
            add(edge.src, f"holds {share:g}% of {inst_name} (≥ {INSIDER_SHARE_PCT:g}%)")
    for edge in store.neighbours(institution_id, RelType.HOLDS_POSITION, Direction.IN):
        role = str(edge.props.get("role") or edge.key)
        if role in OFFICER_ROLES:
            add(edge.src, f"is {_ROLE_WORDS[role]} of {inst_name}")
    for relation in controllers(store, institution_id):
        add(relation.controller, f"controls {inst_name}")
    insiders = list(reasons)
    labels = {i: store.get_node(i) for i in insiders}
    for insider in insiders:
        node = labels[insider]
        if node is not None and node.label == Label.PERSON:
            for fact in store.get_inferred(insider, "familyOf"):
                add(fact.dst, f"close relative of {_name(store, insider)}, an insider")
    for party in list(reasons):
        for relation in controlled_companies(store, party):
            add(relation.company, f"controlled by {_name(store, party)}, a related party")
    out = []
    for entity, why in sorted(reasons.items()):
        node = store.get_node(entity)
        out.append(
            RelatedParty(entity, node.name if node else None, node.label.value if node else "", why)
        )
    return out


def _name(store: GraphStore, entity: str) -> str:
    node = store.get_node(entity)
    return f"{node.name} ({entity})" if node is not None and node.name else entity
