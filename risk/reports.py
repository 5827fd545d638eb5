"""The large-exposure report: every client and connected group at or above the reporting
threshold, largest first, with the utilisation of each applicable limit."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import TextIO

from kg.store import GraphStore
from risk.index import RiskIndex, build_risk_index, load_risk_index
from risk.limits import BankParameters, LimitScope, LimitUse, limit_uses


@dataclass(frozen=True, slots=True)
class LargeExposure:
    kind: str  # "client" or "group"
    id: str
    name: str | None
    members: int
    exposure: float
    pct_of_tier1: float
    guarantees_given: float
    interbank: bool
    limits: tuple[LimitUse, ...]

    @property
    def breached(self) -> list[str]:
        return [u.name for u in self.limits if u.breached]


def large_exposure_report(
    store: GraphStore, params: BankParameters, index: RiskIndex | None = None
) -> list[LargeExposure]:
    """Every client and every connected group (two or more members) whose exposure is at
    or above the large-exposure threshold, sorted by exposure, largest first.

    Example:
        >>> rows = large_exposure_report(store, params)  # doctest: +SKIP
        >>> rows[0].kind, rows[0].breached  # doctest: +SKIP
        ('group', [])
    """
    if index is None:
        index = load_risk_index(store) or build_risk_index(store, params, save=False)
    threshold = params.large_exposure_threshold
    rows = []
    for client, balance in index.balance.items():
        if balance >= threshold:
            interbank = index.client_interbank(client)
            rows.append(
                LargeExposure(
                    "client",
                    client,
                    index.names.get(client),
                    1,
                    balance,
                    100.0 * balance / params.tier1_capital,
                    index.guarantees_given.get(client, 0.0),
                    interbank,
                    tuple(limit_uses(params, LimitScope.CLIENT, interbank, balance)),
                )
            )
    for group in index.groups.values():
        if group.exposure >= threshold:
            rows.append(
                LargeExposure(
                    "group",
                    group.group_id,
                    None,
                    len(group.members),
                    group.exposure,
                    100.0 * group.exposure / params.tier1_capital,
                    group.guarantees_given,
                    group.interbank,
                    tuple(limit_uses(params, LimitScope.GROUP, group.interbank, group.exposure)),
                )
            )
    return sorted(rows, key=lambda r: (-r.exposure, r.kind, r.id))


CSV_COLUMNS = (
    "kind",
    "id",
    "name",
    "members",
    "exposure",
    "pct_of_tier1",
    "guarantees_given",
    "interbank",
    "max_utilisation",
    "breached",
)


def write_large_exposures_csv(rows: list[LargeExposure], out: TextIO) -> None:
    """The report as CSV, one row per client or group (limits summarised)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.kind,
                r.id,
                r.name or "",
                r.members,
                f"{r.exposure:.2f}",
                f"{r.pct_of_tier1:.4f}",
                f"{r.guarantees_given:.2f}",
                str(r.interbank).lower(),
                f"{max((u.utilisation for u in r.limits), default=0.0):.4f}",
                ";".join(r.breached),
            ]
        )
