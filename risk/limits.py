"""Bank parameters and the exposure limits that apply to clients, groups and related parties.

Limit profiles are data: each limit names what it applies to, the capital it is measured
against and its percentage. The China profile follows 商业银行大额风险暴露管理办法 (2018) for
large exposures and the related-party rules (银行保险机构关联交易管理办法) for 关联方 credit;
the Basel profile replaces the large-exposure part with the Basel LEX standard (25% of tier-1
for a counterparty or a connected group, large from 10%). Related-party limits are domestic
law and stay in both profiles.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

ProfileName = Literal["china", "basel"]
CapitalBase = Literal["tier1_capital", "net_capital"]


class LimitScope(StrEnum):
    """What an exposure is measured for."""

    CLIENT = "client"  # one client's own exposure
    GROUP = "group"  # the connected-client group's exposure
    RELATED_PARTY = "related_party"  # one related party of the bank
    RELATED_GROUP = "related_group"  # the group of a related legal person
    RELATED_TOTAL = "related_total"  # every related party of the bank together


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One limit: `pct` percent of the bank's `base` capital for exposures of `scope`.

    `interbank` restricts the rule to interbank (True) or non-interbank (False) counterparties;
    None applies it to both.
    """

    name: str
    scope: LimitScope
    base: CapitalBase
    pct: float
    interbank: bool | None
    description: str


@dataclass(frozen=True, slots=True)
class LimitProfile:
    name: ProfileName
    rules: tuple[LimitRule, ...]
    # An exposure at or above this share of tier-1 capital is a large exposure and is reported.
    large_exposure_pct: float


_RELATED_PARTY_RULES = (
    LimitRule(
        "related_party",
        LimitScope.RELATED_PARTY,
        "net_capital",
        10.0,
        None,
        "credit to one related party ≤ 10% of net capital",
    ),
    LimitRule(
        "related_group",
        LimitScope.RELATED_GROUP,
        "net_capital",
        15.0,
        None,
        "credit to the group of a related legal person ≤ 15% of net capital",
    ),
    LimitRule(
        "related_total",
        LimitScope.RELATED_TOTAL,
        "net_capital",
        50.0,
        None,
        "credit to all related parties together ≤ 50% of net capital",
    ),
)

PROFILES: dict[ProfileName, LimitProfile] = {
    "china": LimitProfile(
        "china",
        (
            LimitRule(
                "single_client",
                LimitScope.CLIENT,
                "tier1_capital",
                15.0,
                False,
                "exposure to one non-interbank client ≤ 15% of tier-1 capital",
            ),
            LimitRule(
                "single_borrower_loans",
                LimitScope.CLIENT,
                "net_capital",
                10.0,
                False,
                "loans to one non-interbank borrower ≤ 10% of net capital",
            ),
            LimitRule(
                "connected_group",
                LimitScope.GROUP,
                "tier1_capital",
                20.0,
                False,
                "exposure to a group of connected non-interbank clients ≤ 20% of tier-1 capital",
            ),
            LimitRule(
                "interbank_client",
                LimitScope.CLIENT,
                "tier1_capital",
                25.0,
                True,
                "exposure to one interbank client ≤ 25% of tier-1 capital",
            ),
            LimitRule(
                "interbank_group",
                LimitScope.GROUP,
                "tier1_capital",
                25.0,
                True,
                "exposure to a group of connected interbank clients ≤ 25% of tier-1 capital",
            ),
            *_RELATED_PARTY_RULES,
        ),
        large_exposure_pct=2.5,
    ),
    "basel": LimitProfile(
        "basel",
        (
            LimitRule(
                "counterparty",
                LimitScope.CLIENT,
                "tier1_capital",
                25.0,
                None,
                "exposure to one counterparty ≤ 25% of tier-1 capital (Basel LEX)",
            ),
            LimitRule(
                "connected_group",
                LimitScope.GROUP,
                "tier1_capital",
                25.0,
                None,
                "exposure to a group of connected counterparties ≤ 25% of tier-1 capital",
            ),
            *_RELATED_PARTY_RULES,
        ),
        large_exposure_pct=10.0,
    ),
}


class BankParametersError(ValueError):
    """The bank parameters are missing or invalid; the message says which and where."""


class BankParameters(BaseModel):
    """The bank's capital and the limit profile its exposures are measured against.

    `limit_pct` overrides the percentage of named limits of the profile (configurable
    limits); `large_exposure_pct` overrides the reporting threshold.

    Example:
        >>> params = BankParameters(tier1_capital=1e9, net_capital=1.2e9)
        >>> params.limit_amount(params.rule("connected_group"))
        200000000.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier1_capital: float = Field(gt=0, description="tier-1 net capital, CNY")
    net_capital: float = Field(gt=0, description="net capital, CNY")
    profile: ProfileName = "china"
    bank_entity_id: str | None = Field(
        default=None, description="the bank's own entity id, for related parties (关联方)"
    )
    limit_pct: dict[str, float] = Field(default_factory=dict)
    large_exposure_pct: float | None = Field(default=None, gt=0, le=100)

    _profile: LimitProfile | None = PrivateAttr(default=None)

    @property
    def limit_profile(self) -> LimitProfile:
        # Resolved once: the origination hot path asks for it several times per request.
        if self._profile is None:
            self._profile = self._resolve_profile()
        return self._profile

    def _resolve_profile(self) -> LimitProfile:
        profile = PROFILES[self.profile]
        unknown = set(self.limit_pct) - {r.name for r in profile.rules}
        if unknown:
            raise BankParametersError(
                f"limit_pct names limits the {self.profile} profile does not have: "
                f"{', '.join(sorted(unknown))}"
            )
        rules = tuple(
            replace(r, pct=self.limit_pct[r.name]) if r.name in self.limit_pct else r
            for r in profile.rules
        )
        large = self.large_exposure_pct or profile.large_exposure_pct
        return LimitProfile(profile.name, rules, large)

    def rule(self, name: str) -> LimitRule:
        for rule in self.limit_profile.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def rules_for(self, scope: LimitScope, interbank: bool) -> list[LimitRule]:
        """The limits of `scope` that apply to an interbank or a non-interbank counterparty."""
        return [
            r
            for r in self.limit_profile.rules
            if r.scope == scope and (r.interbank is None or r.interbank == interbank)
        ]

    def limit_amount(self, rule: LimitRule) -> float:
        capital = self.tier1_capital if rule.base == "tier1_capital" else self.net_capital
        return capital * rule.pct / 100.0

    @property
    def large_exposure_threshold(self) -> float:
        return self.tier1_capital * self.limit_profile.large_exposure_pct / 100.0


@dataclass(frozen=True, slots=True)
class LimitUse:
    """How much of one limit an exposure uses."""

    name: str
    description: str
    limit: float
    exposure: float

    @property
    def utilisation(self) -> float:
        return self.exposure / self.limit if self.limit > 0 else 0.0

    @property
    def breached(self) -> bool:
        return self.exposure > self.limit


def limit_uses(
    params: BankParameters, scope: LimitScope, interbank: bool, exposure: float
) -> list[LimitUse]:
    """The utilisation of every limit of `scope` that applies to this counterparty."""
    return [
        LimitUse(r.name, r.description, params.limit_amount(r), exposure)
        for r in params.rules_for(scope, interbank)
    ]


_ENV = {
    "tier1_capital": "RISKGRAPH_TIER1_CAPITAL",
    "net_capital": "RISKGRAPH_NET_CAPITAL",
    "profile": "RISKGRAPH_LIMIT_PROFILE",
    "bank_entity_id": "RISKGRAPH_BANK_ENTITY_ID",
}


def load_bank_parameters(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    stored: Mapping[str, Any] | None = None,
) -> BankParameters:
    """Read `bank.toml` (if given and present), then let environment variables override it.

    `stored` are the parameters kept in the store by the ingest of a directory that had a
    `bank.toml`; a file and the environment override them.

    Environment: RISKGRAPH_TIER1_CAPITAL, RISKGRAPH_NET_CAPITAL, RISKGRAPH_LIMIT_PROFILE
    (china|basel), RISKGRAPH_BANK_ENTITY_ID.

    Example:
        >>> load_bank_parameters(env={"RISKGRAPH_TIER1_CAPITAL": "1e9",
        ...                           "RISKGRAPH_NET_CAPITAL": "1.1e9"}).profile
        'china'
    """
    values: dict[str, Any] = dict(stored or {})
    source = "the store" if stored else "environment"
    if isinstance(values.get("limits"), dict):
        values["limit_pct"] = values.pop("limits")
    if path is not None and Path(path).exists():
        source = str(path)
        try:
            with Path(path).open("rb") as handle:
                data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise BankParametersError(f"{path}: not valid TOML: {exc}") from exc
        # Accept the parameters at the top level or under a [bank] table.
        values.update(data.get("bank", {}) if isinstance(data.get("bank"), dict) else {})
        values.update({k: v for k, v in data.items() if k != "bank"})
        if isinstance(values.get("limits"), dict):
            values["limit_pct"] = values.pop("limits")
    environment = os.environ if env is None else env
    for field_name, variable in _ENV.items():
        if environment.get(variable):
            values[field_name] = environment[variable]
    known = set(BankParameters.model_fields)
    try:
        return BankParameters(**{k: v for k, v in values.items() if k in known})
    except ValidationError as exc:
        raise BankParametersError(f"bank parameters from {source} are invalid: {exc}") from exc
