"""Large connected-client groups are rendered when the risk index loads, not on a request."""

from __future__ import annotations

from pathlib import Path

from api.deps import RiskIndexHolder
from api.routers import groups
from kg.sqlite_store import SQLiteStore
from risk.index import GroupEntry, RiskIndex, build_risk_index
from risk.limits import BankParameters


def _index() -> RiskIndex:
    big = GroupEntry(
        group_id="G-big",
        members=["C1", "C2", "P1"],
        exposure=300.0,
        guarantees_given=0.0,
        interbank=False,
        controlled_by={"C1": "P1", "C2": "P1"},
        reasons={"C1": [["controlled_by", "P1", "control_majority"]]},
    )
    small = GroupEntry("G-small", ["C3", "P2"], 50.0, 0.0, False, {"C3": "P2"}, {})
    return RiskIndex(
        built_at="2026-11-30T00:00:00Z",
        seconds=0.0,
        names={"C1": "甲公司", "C2": "乙公司", "P1": "张三", "C3": "丙公司", "P2": "李四"},
        labels={
            m: ("Person" if m.startswith("P") else "Company")
            for m in ["C1", "C2", "C3", "P1", "P2"]
        },
        balance={"C1": 100.0, "C2": 200.0, "C3": 50.0},
        guarantees_given={},
        financial=set(),
        group_of={"C1": "G-big", "C2": "G-big", "P1": "G-big", "C3": "G-small", "P2": "G-small"},
        groups={"G-big": big, "G-small": small},
        circle_of={},
        circles={},
        rings_of={},
        rings={},
        related_to=None,
        related={},
        aliases={"C1": ["C1-OLD"]},
    )


def test_groups_at_the_threshold_are_rendered_once_and_served_as_rendered() -> None:
    index = _index()
    assert groups.prerender_large_groups(index, min_members=3) == 1
    served = groups._indexed_members(index, "G-big")
    assert served is groups._indexed_members(index, "G-big")
    # the same answer a request renders when nothing was prepared
    assert served == groups._members_of(index, ["C1", "C2", "P1"])
    assert [m.id for m in served] == ["C1", "C2", "P1"]
    c1 = served[0]
    assert (c1.name, c1.aliases, c1.exposure) == ("甲公司", ["C1-OLD"], 100.0)
    assert [(r.kind, r.other_id, r.rule) for r in c1.reasons] == [
        ("controlled_by", "P1", "control_majority")
    ]
    # a group under the threshold is left to the request
    assert (index.built_at, "G-small") not in groups._PRERENDERED


def test_a_newer_index_replaces_what_was_rendered_for_the_older_one() -> None:
    old = _index()
    groups.prerender_large_groups(old, min_members=2)
    new = _index()
    new.built_at = "2026-12-01T00:00:00Z"
    assert groups.prerender_large_groups(new, min_members=3) == 1
    assert set(groups._PRERENDERED) == {(new.built_at, "G-big")}


def test_the_holder_runs_on_load_for_each_index_it_loads(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kg.db")
    params = BankParameters(net_capital=1e9, tier1_capital=1e9)
    build_risk_index(store, params)
    loaded: list[str] = []
    holder = RiskIndexHolder(store, params, on_load=lambda index: loaded.append(index.built_at))
    first = holder.get()
    assert holder.get() is first
    assert loaded == [first.built_at]
    store.close()
