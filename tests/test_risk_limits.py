"""Bank parameters and limit profiles: values from data-contract.md, worked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from risk.limits import (
    BankParameters,
    BankParametersError,
    LimitScope,
    limit_uses,
    load_bank_parameters,
)

TIER1 = 100_000_000.0
NET = 120_000_000.0


def params(**kwargs: object) -> BankParameters:
    return BankParameters(tier1_capital=TIER1, net_capital=NET, **kwargs)  # type: ignore[arg-type]


def test_china_profile_limits_for_a_non_interbank_client() -> None:
    uses = {u.name: u.limit for u in limit_uses(params(), LimitScope.CLIENT, False, 0.0)}
    assert uses == {"single_client": 15_000_000.0, "single_borrower_loans": 12_000_000.0}


def test_china_profile_limits_for_an_interbank_group() -> None:
    uses = {u.name: u.limit for u in limit_uses(params(), LimitScope.GROUP, True, 0.0)}
    assert uses == {"interbank_group": 25_000_000.0}


def test_china_large_exposure_threshold_is_two_and_a_half_percent_of_tier1() -> None:
    assert params().large_exposure_threshold == 2_500_000.0


def test_basel_profile_uses_a_quarter_of_tier1_and_reports_from_ten_percent() -> None:
    basel = params(profile="basel")
    uses = {u.name: u.limit for u in limit_uses(basel, LimitScope.GROUP, False, 0.0)}
    assert uses == {"connected_group": 25_000_000.0}
    assert basel.large_exposure_threshold == 10_000_000.0


def test_related_party_limits_are_measured_against_net_capital() -> None:
    p = params()
    assert [u.limit for u in limit_uses(p, LimitScope.RELATED_PARTY, False, 0)] == [12e6]
    assert [u.limit for u in limit_uses(p, LimitScope.RELATED_GROUP, False, 0)] == [18e6]
    assert [u.limit for u in limit_uses(p, LimitScope.RELATED_TOTAL, False, 0)] == [60e6]


def test_utilisation_and_breach_of_a_limit() -> None:
    (use,) = limit_uses(params(), LimitScope.GROUP, False, 21_000_000.0)
    assert use.utilisation == pytest.approx(1.05)
    assert use.breached


def test_exposure_equal_to_the_limit_is_not_a_breach() -> None:
    (use,) = limit_uses(params(), LimitScope.GROUP, False, 20_000_000.0)
    assert not use.breached


def test_bank_toml_is_read_and_limits_can_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "bank.toml"
    path.write_text(
        'tier1_capital = 1e9\nnet_capital = 1.2e9\nbank_entity_id = "B"\n'
        "[limits]\nconnected_group = 18\n",
        encoding="utf-8",
    )
    loaded = load_bank_parameters(path, env={})
    assert loaded.bank_entity_id == "B"
    assert loaded.limit_amount(loaded.rule("connected_group")) == 180_000_000.0


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bank.toml"
    path.write_text("tier1_capital = 1e9\nnet_capital = 1.2e9\n", encoding="utf-8")
    loaded = load_bank_parameters(path, env={"RISKGRAPH_LIMIT_PROFILE": "basel"})
    assert loaded.profile == "basel"


def test_missing_capital_is_a_clear_error() -> None:
    with pytest.raises(BankParametersError, match="tier1_capital"):
        load_bank_parameters(None, env={"RISKGRAPH_NET_CAPITAL": "1"})


def test_override_of_an_unknown_limit_is_rejected() -> None:
    with pytest.raises(BankParametersError, match="no_such_limit"):
        _ = params(limit_pct={"no_such_limit": 1.0}).limit_profile
