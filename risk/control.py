"""Control and beneficial ownership, read from the facts the reasoner materialised.

Who controls whom comes from the inferred predicates `controls` / `controlledBy` (majority
voting, actual controller, votes aggregated through controlled companies) and, for the family
party, from `familyVotingPower` (votes of a person, their spouse, parents, children and
siblings and of the companies any of them controls) and `familyOf`. This module adds what an
analyst needs to check the answer: the holdings that carried the votes, the chain of
holdings from the controller to each of them, and the total that decided it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from kg.model import Direction, Label, RelType
from kg.store import GraphStore
from reasoning.ownership import UBO_THRESHOLD, effective_ownership

CONTROL_THRESHOLD = 50.0
# Bounds the upward walk of the holding graph for family control and ownership (a bank's
# ownership trees are a few levels deep; the bound keeps a malformed giant tree cheap).
MAX_ANCESTORS = 5_000


@dataclass(frozen=True, slots=True)
class HoldingStep:
    holder: str
    company: str
    voting_pct: float


@dataclass(frozen=True, slots=True)
class VoteContribution:
    """Votes in the company held by `holder`, which the controller commands through `chain`
    (holdings from the controller, or from a family member, down to `holder`)."""

    holder: str
    voting_pct: float
    chain: tuple[HoldingStep, ...]


@dataclass(slots=True)
class ControlRelation:
    """`controller` controls `company`; `basis` says how.

    basis: `majority_voting` (own votes > 50%), `actual_controller` (the position),
    `aggregated_voting` (own votes plus those of controlled companies > 50%),
    `family_party` (together with close relatives and what they control).
    """

    controller: str
    company: str
    basis: str
    direct: bool
    rule: str
    total_voting_pct: float
    votes: list[VoteContribution] = field(default_factory=list)
    family: list[str] = field(default_factory=list)

    def describe(self, names: dict[str, str | None] | None = None) -> str:
        def n(i: str) -> str:
            name = (names or {}).get(i)
            return f"{name} ({i})" if name else i

        if self.basis == "actual_controller":
            return f"{n(self.controller)} is the actual controller of {n(self.company)}"
        if self.basis == "family_party" and self.rule == "family_control_member_position":
            return (
                f"{n(self.controller)}'s close relative {n(self.family[0])} is the actual "
                f"controller of {n(self.company)}; the family party counts as one controller"
            )
        parts = []
        for v in self.votes:
            if v.holder == self.controller:
                parts.append(f"{v.voting_pct:g}% held directly")
            else:
                if v.chain:
                    path = [v.chain[0].holder, *(s.company for s in v.chain)]
                    via = f" (through {' → '.join(n(p) for p in path)})"
                else:
                    via = " (family member)" if self.basis == "family_party" else ""
                parts.append(f"{v.voting_pct:g}% held by {n(v.holder)}{via}")
        held = "; ".join(parts) if parts else "no recorded votes"
        who = n(self.controller)
        if self.basis == "family_party":
            family = ", ".join(n(f) for f in self.family)
            who = f"{who} with the family party ({family})"
        return (
            f"{who} commands {self.total_voting_pct:g}% of the votes of {n(self.company)} "
            f"({held}) > {CONTROL_THRESHOLD:g}%"
        )


def _holders(store: GraphStore, company: str) -> list[tuple[str, float]]:
    """(holder, voting pct) of a company; voting_pct defaults to share_pct."""
    out = []
    for edge in store.neighbours(company, RelType.HOLDS_SHARES, Direction.IN):
        pct = edge.props.get("voting_pct")
        if pct is None:
            pct = edge.props.get("share_pct")
        out.append((edge.src, float(pct or 0.0)))
    return out


ControlCache = dict[str, set[str]]


def controlled_ids(store: GraphStore, entity: str, cache: ControlCache | None = None) -> set[str]:
    # Explaining a big group asks for the same controller's companies once per member.
    if cache is not None and entity in cache:
        return cache[entity]
    found = {f.dst for f in store.get_inferred(entity, "controls")}
    if cache is not None:
        cache[entity] = found
    return found


def _family_of(store: GraphStore, person: str) -> list[str]:
    return sorted({f.dst for f in store.get_inferred(person, "familyOf")} - {person})


def _holding_chain(
    store: GraphStore, start: str, target: str, commanded: set[str]
) -> tuple[HoldingStep, ...]:
    """Shortest chain of holdings start → … → target through companies in `commanded`.

    Searched upwards from the target (a company has few holders; a controller can sit on
    top of a large tree), so the cost is the depth of the chain, not the size of the tree.
    """
    if start == target:
        return ()
    child: dict[str, HoldingStep] = {}
    queue = deque([target])
    seen = {target}
    while queue:
        node = queue.popleft()
        for edge in store.neighbours(node, RelType.HOLDS_SHARES, Direction.IN):
            holder = edge.src
            if holder in seen or (holder not in commanded and holder != start):
                continue
            pct = edge.props.get("voting_pct", edge.props.get("share_pct"))
            child[holder] = HoldingStep(holder, node, float(pct or 0.0))
            if holder == start:
                steps = []
                while holder != target:
                    step = child[holder]
                    steps.append(step)
                    holder = step.company
                return tuple(steps)
            seen.add(holder)
            queue.append(holder)
    return ()


def explain_control(
    store: GraphStore, controller: str, company: str, cache: ControlCache | None = None
) -> ControlRelation | None:
    """Why `controller` controls `company`, or None when it does not (per the stored facts).

    Example:
        >>> explain_control(store, "P1", "C2").describe()  # doctest: +SKIP
        'P1 commands 55% of the votes of C2 (25% held directly; 30% held by C1 …) > 50%'
    """
    facts = store.get_inferred(controller, "controls", company)
    holders = _holders(store, company)
    if facts:
        rule = facts[0].rule
        direct = bool(store.get_inferred(controller, "directlyControls", company))
        commanded = controlled_ids(store, controller, cache) | {controller}
        votes = [
            VoteContribution(h, pct, _holding_chain(store, controller, h, commanded))
            for h, pct in holders
            if h in commanded
        ]
        total = sum(v.voting_pct for v in votes)
        if direct and total <= CONTROL_THRESHOLD:
            basis = "actual_controller"
        elif direct:
            basis = "majority_voting"
        else:
            basis = "aggregated_voting"
        return ControlRelation(controller, company, basis, direct, rule, total, votes)
    return _family_control(store, controller, company, holders, cache)


def _family_control(
    store: GraphStore,
    person: str,
    company: str,
    holders: list[tuple[str, float]],
    cache: ControlCache | None = None,
) -> ControlRelation | None:
    family = _family_of(store, person)
    if not family and not store.get_inferred(person, "familyVotingPower", company):
        return None
    party = [person, *family]
    for member in family:
        # A relative who controls the company alone makes the whole family party control it.
        if store.get_inferred(member, "controls", company):
            inner = explain_control(store, member, company, cache)
            if inner is not None:
                rule = (
                    "family_control_member_position"
                    if inner.basis == "actual_controller"
                    else "family_control_member"
                )
                relatives = [member, *(f for f in family if f != member)]
                return ControlRelation(
                    person,
                    company,
                    "family_party",
                    False,
                    rule,
                    inner.total_voting_pct,
                    inner.votes,
                    relatives,
                )
    power = store.get_inferred(person, "familyVotingPower", company)
    total = float(power[0].value or 0.0) if power else 0.0
    if total <= CONTROL_THRESHOLD:
        return None
    commanded: dict[str, str] = {}
    for member in party:
        for c in controlled_ids(store, member, cache) | {member}:
            commanded.setdefault(c, member)
    votes = []
    for h, pct in holders:
        if h in commanded:
            origin = commanded[h]
            chain = _holding_chain(store, origin, h, set(commanded))
            votes.append(VoteContribution(h, pct, chain))
    return ControlRelation(
        person, company, "family_party", False, "family_control_votes", total, votes, family
    )


def _ancestors(store: GraphStore, company: str) -> list[str]:
    """Every holder above a company (breadth first, bounded by MAX_ANCESTORS)."""
    seen = {company}
    order: list[str] = []
    queue = deque([company])
    while queue and len(order) < MAX_ANCESTORS:
        node = queue.popleft()
        for edge in store.neighbours(node, RelType.HOLDS_SHARES, Direction.IN):
            if edge.src not in seen:
                seen.add(edge.src)
                order.append(edge.src)
                queue.append(edge.src)
    return order


def controllers(store: GraphStore, entity_id: str) -> list[ControlRelation]:
    """Everyone who controls an entity, directly or inferred, each with the evidence.

    Family-party controllers are the persons whose family party commands more than half of
    the votes (or one of whose close relatives controls the entity alone).
    """
    found: dict[str, ControlRelation] = {}
    for fact in store.get_inferred(entity_id, "controlledBy"):
        relation = explain_control(store, fact.dst, entity_id)
        if relation is not None:
            found[fact.dst] = relation
    positions = [e.src for e in store.neighbours(entity_id, RelType.HOLDS_POSITION, Direction.IN)]
    candidates = [*_ancestors(store, entity_id), *positions, *found]
    persons = set()
    for cand in candidates:
        node = store.get_node(cand)
        if node is not None and node.label == Label.PERSON:
            persons.add(cand)
            persons.update(_family_of(store, cand))
    for person in sorted(persons - set(found)):
        relation = _family_control(store, person, entity_id, _holders(store, entity_id))
        if relation is not None:
            found[person] = relation
    return sorted(found.values(), key=lambda r: (not r.direct, r.basis, r.controller))


def controlled_companies(store: GraphStore, entity_id: str) -> list[ControlRelation]:
    """Every company an entity controls, alone or with its family party, with the evidence."""
    found: dict[str, ControlRelation] = {}
    for fact in store.get_inferred(entity_id, "controls"):
        relation = explain_control(store, entity_id, fact.dst)
        if relation is not None:
            found[fact.dst] = relation
    node = store.get_node(entity_id)
    if node is not None and node.label == Label.PERSON:
        candidates = {f.dst for f in store.get_inferred(entity_id, "familyVotingPower")}
        for member in _family_of(store, entity_id):
            candidates |= controlled_ids(store, member)
        for company in sorted(candidates - set(found) - {entity_id}):
            relation = _family_control(store, entity_id, company, _holders(store, company))
            if relation is not None:
                found[company] = relation
    return sorted(found.values(), key=lambda r: (not r.direct, r.basis, r.company))


@dataclass(frozen=True, slots=True)
class BeneficialOwner:
    person: str
    effective_share_pct: float
    controls: bool
    reasons: tuple[str, ...]


def beneficial_owners(store: GraphStore, company_id: str) -> list[BeneficialOwner]:
    """Natural persons with an effective share ≥ 25% (products along ownership paths,
    summed over paths, cross-holdings solved as a linear system) or who control the company.
    """
    ancestors = _ancestors(store, company_id)
    nodes = [company_id, *ancestors]
    index = {n: i for i, n in enumerate(nodes)}
    holder, held, fraction = [], [], []
    persons = []
    for n in nodes:
        for edge in store.neighbours(n, RelType.HOLDS_SHARES, Direction.IN):
            if edge.src not in index:
                continue
            holder.append(index[edge.src])
            held.append(index[n])
            fraction.append(float(edge.props.get("share_pct") or 0.0) / 100.0)
    for n in ancestors:
        node = store.get_node(n)
        if node is not None and node.label == Label.PERSON:
            persons.append(index[n])
    shares: dict[str, float] = {}
    if holder and persons:
        eff = effective_ownership(
            np.asarray(holder), np.asarray(held), np.asarray(fraction), np.asarray(persons)
        )
        for p, c, s in zip(
            eff.person.tolist(), eff.company.tolist(), eff.share.tolist(), strict=True
        ):
            if c == 0:
                shares[nodes[p]] = float(s) * 100.0
    controlling = {
        r.controller: r
        for r in controllers(store, company_id)
        if (node := store.get_node(r.controller)) is not None and node.label == Label.PERSON
    }
    owners = []
    for person in sorted(set(shares) | set(controlling)):
        share = shares.get(person, 0.0)
        reasons = []
        if share >= UBO_THRESHOLD * 100.0 - 1e-9:
            reasons.append(f"effective share {share:.2f}% ≥ {UBO_THRESHOLD * 100:g}%")
        if person in controlling:
            reasons.append(controlling[person].describe())
        if reasons:
            owners.append(BeneficialOwner(person, share, person in controlling, tuple(reasons)))
    return sorted(owners, key=lambda o: (-o.effective_share_pct, o.person))
