"""The origination check: what a new loan would do to the borrower's exposures.

Answers from the precomputed `RiskIndex` only (dict lookups), so it is fast enough to sit in
a loan-origination workflow. Every flag says what is wrong and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from risk.index import CircleEntry, RingEntry, RiskIndex
from risk.limits import BankParameters, LimitScope, LimitUse, limit_uses


@dataclass(frozen=True, slots=True)
class Flag:
    code: str
    severity: str  # "block" (a limit would be breached), "review", "info"
    message: str
    entities: tuple[str, ...] = ()


@dataclass(slots=True)
class LimitCheck:
    name: str
    scope: str
    description: str
    limit: float
    exposure_before: float
    exposure_after: float

    @property
    def utilisation_after(self) -> float:
        return self.exposure_after / self.limit if self.limit > 0 else 0.0

    @property
    def breached(self) -> bool:
        return self.exposure_after > self.limit


@dataclass(slots=True)
class OriginationResult:
    borrower_id: str
    amount: float
    group_id: str
    group_members: list[str]
    client_exposure_before: float
    client_exposure_after: float
    group_exposure_before: float
    group_exposure_after: float
    large_exposure_threshold: float
    flags: list[Flag] = field(default_factory=list)
    limits: list[LimitCheck] = field(default_factory=list)
    circles: list[CircleEntry] = field(default_factory=list)
    rings: list[RingEntry] = field(default_factory=list)
    related_parties: dict[str, list[str]] = field(default_factory=dict)


def _money(value: float) -> str:
    return f"{value:,.0f} CNY"


def _checks(
    scope: LimitScope, uses_before: list[LimitUse], uses_after: list[LimitUse]
) -> list[LimitCheck]:
    return [
        LimitCheck(a.name, scope.value, a.description, a.limit, b.exposure, a.exposure)
        for b, a in zip(uses_before, uses_after, strict=True)
    ]


def check_origination(
    index: RiskIndex,
    params: BankParameters,
    borrower_id: str,
    amount: float,
    guarantor_ids: list[str],
    related_of_borrower: dict[str, list[str]] | None = None,
) -> OriginationResult:
    """Exposure of the borrower and its group before and after a new loan, the limits it
    would breach, and the guarantee circles, rings and related parties involved.

    Args:
        index: the precomputed risk index (ids must be canonical).
        params: bank capital and limit profile.
        borrower_id: the borrower's canonical id.
        amount: the new loan, CNY.
        guarantor_ids: canonical ids of the proposed guarantors.
        related_of_borrower: when the bank's own entity is not configured, the guarantors
            that are insiders of the borrower (or their close relatives), with reasons.
    """

    def n(i: str) -> str:
        name = index.names.get(i)
        return f"{name} ({i})" if name else i

    group = index.group(borrower_id)
    client_before = index.balance.get(borrower_id, 0.0)
    interbank_client = index.client_interbank(borrower_id)
    result = OriginationResult(
        borrower_id=borrower_id,
        amount=amount,
        group_id=group.group_id,
        group_members=group.members,
        client_exposure_before=client_before,
        client_exposure_after=client_before + amount,
        group_exposure_before=group.exposure,
        group_exposure_after=group.exposure + amount,
        large_exposure_threshold=params.large_exposure_threshold,
    )
    result.limits += _checks(
        LimitScope.CLIENT,
        limit_uses(params, LimitScope.CLIENT, interbank_client, client_before),
        limit_uses(params, LimitScope.CLIENT, interbank_client, client_before + amount),
    )
    if len(group.members) > 1:
        result.limits += _checks(
            LimitScope.GROUP,
            limit_uses(params, LimitScope.GROUP, group.interbank, group.exposure),
            limit_uses(params, LimitScope.GROUP, group.interbank, group.exposure + amount),
        )

    # related parties of the bank among the borrower's group
    related_in_group = {m: index.related[m] for m in group.members if m in index.related}
    if borrower_id in index.related:
        result.limits += _checks(
            LimitScope.RELATED_PARTY,
            limit_uses(params, LimitScope.RELATED_PARTY, interbank_client, client_before),
            limit_uses(params, LimitScope.RELATED_PARTY, interbank_client, client_before + amount),
        )
    if any(index.labels.get(m) == "Company" for m in related_in_group):
        result.limits += _checks(
            LimitScope.RELATED_GROUP,
            limit_uses(params, LimitScope.RELATED_GROUP, group.interbank, group.exposure),
            limit_uses(params, LimitScope.RELATED_GROUP, group.interbank, group.exposure + amount),
        )
    if borrower_id in index.related:
        total = index.related_total
        result.limits += _checks(
            LimitScope.RELATED_TOTAL,
            limit_uses(params, LimitScope.RELATED_TOTAL, False, total),
            limit_uses(params, LimitScope.RELATED_TOTAL, False, total + amount),
        )
    for check in result.limits:
        if check.breached:
            headroom = max(check.limit - check.exposure_before, 0.0)
            whose = "the borrower's group" if "group" in check.scope else "the borrower"
            result.flags.append(
                Flag(
                    f"limit_breach:{check.name}",
                    "block",
                    f"the loan would take {whose}'s exposure to {_money(check.exposure_after)},"
                    f" above the {check.name} limit of {_money(check.limit)} "
                    f"({check.description}); at most {_money(headroom)} can be lent within "
                    "the limit",
                    (borrower_id,),
                )
            )
    if (
        group.exposure < params.large_exposure_threshold <= group.exposure + amount
        or client_before < params.large_exposure_threshold <= client_before + amount
    ):
        result.flags.append(
            Flag(
                "large_exposure",
                "info",
                f"the exposure reaches the large-exposure threshold of "
                f"{_money(params.large_exposure_threshold)}; it must be reported",
                (borrower_id,),
            )
        )

    # guarantors
    borrower_circle = index.circle_of.get(borrower_id)
    circle_ids: dict[str, None] = {}
    if borrower_circle is not None:
        circle_ids[borrower_circle] = None
    members = set(group.members)
    for guarantor in guarantor_ids:
        if guarantor == borrower_id:
            result.flags.append(
                Flag(
                    "self_guarantee",
                    "block",
                    f"{n(guarantor)} cannot guarantee its own loan",
                    (guarantor,),
                )
            )
            continue
        circle = index.circle_of.get(guarantor)
        if circle is not None:
            circle_ids[circle] = None
            if circle == borrower_circle:
                result.flags.append(
                    Flag(
                        "guarantor_in_circle_with_borrower",
                        "review",
                        f"guarantor {n(guarantor)} and borrower {n(borrower_id)} guarantee each "
                        f"other through guarantee circle {circle} "
                        f"({len(index.circles[circle].members)} members): the guarantee is "
                        "circular and gives no independent support; ask for collateral or a "
                        "guarantor outside the circle",
                        (guarantor, borrower_id),
                    )
                )
            else:
                result.flags.append(
                    Flag(
                        "guarantor_in_circle",
                        "review",
                        f"guarantor {n(guarantor)} is in guarantee circle {circle}: its capacity"
                        " is already pledged within the circle; check its contingent liabilities",
                        (guarantor,),
                    )
                )
        if guarantor in members:
            controller = group.controlled_by.get(guarantor)
            how = f", controlled by {n(controller)}" if controller else ""
            result.flags.append(
                Flag(
                    "guarantor_in_borrower_group",
                    "review",
                    f"guarantor {n(guarantor)} is in the borrower's connected-client group "
                    f"{group.group_id}{how}: its guarantee is not independent of the borrower; "
                    "count it as no credit mitigation",
                    (guarantor,),
                )
            )
        if related_of_borrower and guarantor in related_of_borrower:
            result.flags.append(
                Flag(
                    "guarantor_related_to_borrower",
                    "review",
                    f"guarantor {n(guarantor)} is an insider of the borrower ("
                    + "; ".join(related_of_borrower[guarantor])
                    + ")",
                    (guarantor,),
                )
            )
    if borrower_circle is not None:
        result.flags.append(
            Flag(
                "borrower_in_circle",
                "review",
                f"borrower {n(borrower_id)} is in guarantee circle {borrower_circle}: a default "
                "in the circle can spread to it",
                (borrower_id,),
            )
        )
    result.circles = [index.circles[c] for c in circle_ids]

    ring_ids: dict[str, None] = {}
    for party in [borrower_id, *guarantor_ids]:
        for ring in index.rings_of.get(party, []):
            ring_ids[ring] = None
            result.flags.append(
                Flag(
                    "fraud_ring_member",
                    "review",
                    f"{n(party)} is a member of suspected fraud ring {ring}; refer to the fraud "
                    "team before approval",
                    (party,),
                )
            )
    result.rings = [index.rings[r] for r in ring_ids]

    related = dict(related_in_group)
    for party in [borrower_id, *guarantor_ids]:
        if party in index.related:
            related[party] = index.related[party]
    if related_of_borrower:
        related.update({g: r for g, r in related_of_borrower.items() if g in guarantor_ids})
    result.related_parties = related
    if borrower_id in index.related:
        result.flags.append(
            Flag(
                "related_party_borrower",
                "review",
                f"borrower {n(borrower_id)} is a related party of the bank ("
                + "; ".join(index.related[borrower_id])
                + "): the loan needs related-party approval and terms no better than others'",
                (borrower_id,),
            )
        )
    return result
