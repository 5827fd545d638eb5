"""Connected-client groups (large-exposure rules) and their exposure against the limits.

Two clients are connected when one controls the other or both are controlled by the same
party, persons tied by spouse/parent/child/sibling counting as one controlling party. The
reasoner materialises that relation as `connectedClient`; a group is a connected component
of it, so every client is in exactly one group (a client connected to nobody is a group of
one). The group's exposure is the sum of its members' loan balances; the guarantees its
members gave are reported beside it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from kg.model import Direction, Label, RelType
from kg.store import GraphStore
from risk.control import CONTROL_THRESHOLD, ControlCache, controlled_ids, explain_control
from risk.limits import BankParameters, LimitScope, LimitUse, limit_uses

# A group larger than this is cut off (and says so); real groups have tens of members.
MAX_GROUP_SIZE = 10_000
MAX_REASONS_PER_MEMBER = 6


def group_id_of(members: set[str] | list[str]) -> str:
    """A stable id for a group: its smallest member id."""
    return f"group:{min(members)}"


@dataclass(frozen=True, slots=True)
class Exposure:
    """Loan balances of a client and the guarantees it gave (CNY)."""

    loans: float
    guarantees_given: float


def client_exposure(store: GraphStore, entity_id: str, as_of: str | None = None) -> Exposure:
    """Sum of loan balances of a client (loans started on or before `as_of`) and of the
    guarantees it gave (in force on `as_of`)."""
    loans = 0.0
    for edge in store.neighbours(entity_id, RelType.BORROWED, Direction.OUT):
        loan = store.get_node(edge.dst)
        if loan is None:
            continue
        start = loan.props.get("start_date")
        if as_of is not None and start is not None and str(start) > as_of:
            continue
        loans += float(loan.props.get("balance") or 0.0)
    given = 0.0
    for edge in store.neighbours(entity_id, RelType.GUARANTEES, Direction.OUT):
        if as_of is not None and not _in_force(edge.props, as_of):
            continue
        given += float(edge.props.get("amount") or 0.0)
    return Exposure(loans, given)


def _in_force(props: dict[str, object], as_of: str) -> bool:
    start, end = props.get("start_date"), props.get("end_date")
    return (start is None or str(start) <= as_of) and (end is None or str(end) >= as_of)


def group_members(store: GraphStore, entity_id: str) -> set[str]:
    """The connected component of `connectedClient` that holds the entity."""
    members = {entity_id}
    queue = deque([entity_id])
    while queue and len(members) < MAX_GROUP_SIZE:
        node = queue.popleft()
        for fact in store.get_inferred(node, "connectedClient"):
            if fact.dst not in members:
                members.add(fact.dst)
                queue.append(fact.dst)
    return members


@dataclass(frozen=True, slots=True)
class MemberReason:
    """Why a member is in the group, in words, with the relation and the other party."""

    kind: str  # controlled_by | controls | family_party | connected | self
    other: str | None
    text: str
    rule: str | None = None


@dataclass(slots=True)
class GroupMember:
    id: str
    name: str | None
    label: str
    aliases: list[str]
    is_financial: bool
    exposure: Exposure
    reasons: list[MemberReason] = field(default_factory=list)


@dataclass(slots=True)
class ConnectedGroup:
    group_id: str
    members: list[GroupMember]

    @property
    def exposure(self) -> float:
        return sum(m.exposure.loans for m in self.members)

    @property
    def guarantees_given(self) -> float:
        return sum(m.exposure.guarantees_given for m in self.members)

    @property
    def interbank(self) -> bool:
        return is_interbank([m.label for m in self.members], [m.is_financial for m in self.members])


def is_interbank(labels: list[str], financial: list[bool]) -> bool:
    """Interbank when every company in it is a financial institution (and there is one).

    Natural persons do not make a group non-interbank: they are controllers, not lenders.
    """
    companies = [f for label, f in zip(labels, financial, strict=True) if label == Label.COMPANY]
    return bool(companies) and all(companies)


def _member_reasons(
    store: GraphStore,
    member: str,
    ids: set[str],
    names: dict[str, str | None],
    labels: dict[str, str],
    cache: ControlCache,
) -> list[MemberReason]:
    """The links that put a member in the group, from its own stored facts: who controls it
    (with the votes), what it controls, and family-party control."""

    def n(i: str) -> str:
        return f"{names[i]} ({i})" if names.get(i) else i

    reasons: list[MemberReason] = []
    covered: set[str] = set()
    for fact in store.get_inferred(member, "controlledBy"):
        if fact.dst in ids and fact.dst not in covered:
            relation = explain_control(store, fact.dst, member, cache)
            if relation is not None:
                reasons.append(
                    MemberReason("controlled_by", fact.dst, relation.describe(names), relation.rule)
                )
                covered.add(fact.dst)
    for fact in store.get_inferred(member, "controls"):
        if fact.dst in ids and fact.dst not in covered:
            reasons.append(MemberReason("controls", fact.dst, f"controls {n(fact.dst)}", fact.rule))
            covered.add(fact.dst)
    node_label = labels.get(member)
    if node_label == Label.PERSON:
        # family party: companies the person's family commands together, or that a close
        # relative controls alone
        family_targets = [
            f.dst
            for f in store.get_inferred(member, "familyVotingPower")
            if f.value is not None and f.value > CONTROL_THRESHOLD
        ]
        for relative in store.get_inferred(member, "familyOf"):
            family_targets += sorted(controlled_ids(store, relative.dst, cache) & ids)
        for company in family_targets:
            if company in ids and company not in covered:
                relation = explain_control(store, member, company, cache)
                if relation is not None:
                    reasons.append(
                        MemberReason(
                            "family_party", company, relation.describe(names), relation.rule
                        )
                    )
                    covered.add(company)
    elif not reasons:
        for person in sorted(i for i in ids if labels.get(i) == Label.PERSON):
            relation = explain_control(store, person, member, cache)
            if relation is not None:
                reasons.append(
                    MemberReason("family_party", person, relation.describe(names), relation.rule)
                )
                break
    if not reasons:
        # Connected without a control relation of its own, e.g. through a common family
        # controller: name the link the reasoner recorded.
        for fact in store.get_inferred(member, "connectedClient"):
            if fact.dst in ids and fact.dst not in covered:
                via = _controller_in_premises(fact.premises)
                text = (
                    f"shares the controlling party {n(via)} with {n(fact.dst)}"
                    if via
                    else f"connected client of {n(fact.dst)} ({fact.rule})"
                )
                reasons.append(MemberReason("connected", fact.dst, text, fact.rule))
    return reasons[:MAX_REASONS_PER_MEMBER]


def _controller_in_premises(premises: tuple[dict[str, object], ...]) -> str | None:
    for premise in premises:
        args = premise.get("args")
        if premise.get("predicate") == "familyControls" and isinstance(args, list) and args:
            return str(args[0])
        if premise.get("predicate") == "controlledBy" and premise.get("dst"):
            return str(premise["dst"])
    return None


def connected_group(
    store: GraphStore,
    entity_id: str,
    *,
    exposure_store: GraphStore | None = None,
    as_of: str | None = None,
    members: list[str] | None = None,
) -> ConnectedGroup:
    """The connected-client group of an entity, every member with the reason it is in.

    Args:
        store: where the `connectedClient`/`controls` facts are read.
        entity_id: any member (canonical id).
        exposure_store: where loans and guarantees are read (default: `store`); an as-of
            view keeps only the ownership graph and reads exposures from the full store.
        as_of: count loans started and guarantees in force on this date.
        members: the group's members when already known (the risk index); found from the
            `connectedClient` facts otherwise.
    """
    ids = set(members) if members is not None else group_members(store, entity_id)
    loans_from = exposure_store or store
    nodes = {i: store.get_node(i) for i in ids}
    names = {i: (node.name if node else None) for i, node in nodes.items()}
    cache: ControlCache = {}
    labels = {i: (node.label.value if node else "") for i, node in nodes.items()}
    aliases = loans_from.aliases_of_many(sorted(ids))
    rows = []
    for member in sorted(ids):
        node = nodes[member]
        reasons = _member_reasons(store, member, ids, names, labels, cache) if len(ids) > 1 else []
        if member == entity_id and not reasons:
            reasons = [MemberReason("self", None, "the client asked about")]
        rows.append(
            GroupMember(
                member,
                names[member],
                node.label.value if node else "",
                aliases.get(member, []),
                bool(node.props.get("is_financial")) if node else False,
                client_exposure(loans_from, member, as_of),
                reasons,
            )
        )
    return ConnectedGroup(group_id_of(ids), rows)


def group_limit_uses(
    group: ConnectedGroup, params: BankParameters, extra: float = 0.0
) -> list[LimitUse]:
    """Utilisation of the group limits (and the large-exposure threshold is separate)."""
    return limit_uses(params, LimitScope.GROUP, group.interbank, group.exposure + extra)


_RULE_WORDS = {
    "control_majority": "holds more than 50% of the votes",
    "control_aggregated": "votes held directly and through controlled companies exceed 50%",
    "rdfs:subPropertyOf(directlyControls,controls)": "majority of the votes or actual controller",
    "rdfs:subPropertyOf(actualControllerOf,directlyControls)": "actual controller",
}


def describe_link(kind: str, other: str, rule: str, names: dict[str, str]) -> str:
    """An indexed group link in words (see `risk.index.GroupEntry.reasons`)."""
    who = f"{names[other]} ({other})" if names.get(other) else other
    how = _RULE_WORDS.get(rule)
    suffix = f": {how}" if how else ""
    if kind == "controlled_by":
        return f"controlled by {who}{suffix}"
    if kind == "controls":
        return f"controls {who}{suffix}"
    if kind == "family_party":
        return f"with the family party (spouse, parents, children, siblings) controls {who}"
    if kind == "family_controlled":
        return f"controlled by the family party of {who}"
    return f"has a controlling family party in common with {who}"
