"""The automated risk report of one entity and its connected-client group, as HTML or PDF.

The report is built from the same functions the API answers with (control and beneficial
owners, the connected group and its limits, guarantee circles and chains, the risk index's
ring membership, the reasoner's derivations) so that a report and the workbench never
disagree. Charts are inline SVG drawn here, so the HTML is one self-contained file and the
PDF needs nothing but WeasyPrint and a CJK font.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Literal

from kg.model import InferredFact, Label, Node
from kg.store import GraphStore
from reasoning import DerivationTree, explain
from risk.control import ControlRelation, beneficial_owners, controlled_companies, controllers
from risk.dated import ownership_view
from risk.groups import ConnectedGroup, client_exposure, connected_group, group_limit_uses
from risk.guarantees import (
    GuaranteeGraph,
    chain_index,
    chain_through,
    guarantee_circles,
    strong_components,
)
from risk.index import RiskIndex, build_risk_index, load_risk_index
from risk.limits import BankParameters, LimitScope, LimitUse, limit_uses, load_bank_parameters
from risk.rings.nightly import ALERTS_COLLECTION, latest_run

ReportFormat = Literal["html", "pdf"]

# Inferred predicates that restate a link already shown (an inverse, a super-property, the
# kinship rows themselves, the vote aggregates behind `controls`): views leave them out.
RESTATING_PREDICATES = frozenset(
    {
        "controlledBy",
        "directlyControls",
        "relativeOf",
        "spouseOf",
        "parentOf",
        "childOf",
        "siblingOf",
        "familyOf",
        "sharesIdentifier",
        "votingPower",
        "familyVotingPower",
    }
)
# Shared identifiers carry no date, so an as-of view keeps the store's identity links
# (sharesPhone, sharesAddress, …) beside the ownership facts reasoned as of that date.
UNDATED_PREDICATE_PREFIX = "shares"
# Derivations printed in full; a report on a hub entity would otherwise run to hundreds of pages.
MAX_EXPLANATIONS = 40


class UnknownEntity(LookupError):
    """No entity has this id or alias."""


@dataclass(slots=True)
class CircleFacts:
    members: list[str]
    cycles: list[list[str]]
    mutual_pairs: list[tuple[str, str]]
    total_amount: float


@dataclass(slots=True)
class ChainFacts:
    path: list[str]
    amounts: list[float]
    total_amount: float


@dataclass(slots=True)
class EntityReportData:
    """Everything the report shows, gathered before any rendering."""

    entity: Node
    aliases: list[str]
    as_of: str | None
    generated_at: str
    controllers: list[ControlRelation]
    controlled: list[ControlRelation]
    owners: list[tuple[str, float, bool, tuple[str, ...]]]
    group: ConnectedGroup
    limits: list[LimitUse]
    large_exposure_threshold: float
    circles: list[CircleFacts]
    chains: list[ChainFacts]
    rings: list[tuple[str, list[str], float | None, str | None]]
    rings_available: bool
    ring_alerts: list[str]
    explanations: list[tuple[str, str, str, DerivationTree | None]]
    explanations_total: int
    names: dict[str, str | None] = field(default_factory=dict)

    @property
    def alerts(self) -> list[str]:
        """What needs an analyst's attention, most severe first."""
        out = [
            f"Limit breached: {u.name} — exposure {_money(u.exposure)} over limit "
            f"{_money(u.limit)} ({u.utilisation:.1%})"
            for u in self.limits
            if u.breached
        ]
        if self.group.exposure >= self.large_exposure_threshold > 0:
            out.append(
                f"Large exposure: group exposure {_money(self.group.exposure)} ≥ threshold "
                f"{_money(self.large_exposure_threshold)}"
            )
        out += [
            f"Guarantee circle of {len(c.members)} parties, {_money(c.total_amount)} in total"
            for c in self.circles
        ]
        out += [f"Member of fraud ring {r[0]} ({len(r[1])} members)" for r in self.rings]
        return out + self.ring_alerts


def inferred_links(
    store: GraphStore,
    entity_id: str,
    dated: GraphStore | None = None,
    *,
    dst: str | None = None,
    keep_restating: bool = False,
) -> list[InferredFact]:
    """Inferred facts from an entity, leaving out those that restate a shown link.

    Args:
        store: the full, reasoned store.
        entity_id: canonical id of the subject.
        dated: an as-of ownership view (`risk.dated.ownership_view`): ownership, control
            and family facts come from it, identity links from `store`, and facts that
            rest on undated-in-the-view relationships (guarantees) are left out.
        dst: only facts towards this entity.
        keep_restating: also the facts in `RESTATING_PREDICATES`.
    """
    if dated is None:
        facts = store.get_inferred(entity_id, None, dst)
    else:
        facts = [
            f
            for f in store.get_inferred(entity_id, None, dst)
            if f.predicate.startswith(UNDATED_PREDICATE_PREFIX)
        ]
        facts += dated.get_inferred(entity_id, None, dst)
    hidden = frozenset() if keep_restating else RESTATING_PREDICATES
    return [f for f in facts if f.predicate not in hidden and f.src != f.dst]


def _names(store: GraphStore, ids: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for i in ids:
        node = store.get_node(i)
        out[i] = node.name if node is not None else None
    return out


def _guarantee_facts(
    store: GraphStore, member_ids: Sequence[str], as_of: str | None
) -> tuple[list[CircleFacts], list[ChainFacts]]:
    """Circles any group member is in; the chain through the entity when it is in none."""
    graph = GuaranteeGraph.from_store(store, as_of)
    positions = {}
    for member in member_ids:
        node = store.get_node(member)
        position = graph.position_of_nid(node.nid) if node is not None else None
        if position is not None:
            positions[member] = position
    if not positions:
        return [], []
    components = strong_components(graph)
    wanted = set(positions.values())
    mine = [c for c in components if wanted & set(c)]
    involved = {p for c in mine for p in c}

    def ids(ps: Iterable[int]) -> dict[int, str]:
        ps = list(ps)
        nodes = store.get_nodes_by_nid([int(graph.nids[p]) for p in ps])
        by_nid = {n.nid: n.id for n in nodes}
        return {p: by_nid.get(int(graph.nids[p]), str(graph.nids[p])) for p in ps}

    circles = []
    for circle in guarantee_circles(graph, components=mine):
        m = ids(circle.members)
        circles.append(
            CircleFacts(
                [m[p] for p in circle.members],
                [[m[p] for p in cycle] for cycle in circle.cycles],
                [(m[a], m[b]) for a, b in circle.mutual_pairs],
                circle.total_amount,
            )
        )
    chains = []
    entity_position = positions.get(member_ids[0])
    if entity_position is not None and entity_position not in involved:
        in_circles = {p for c in components for p in c}
        chain = chain_through(chain_index(graph, in_circles), entity_position)
        if chain is not None:
            m = ids(chain.path)
            chains.append(ChainFacts([m[p] for p in chain.path], chain.amounts, chain.total_amount))
    return circles, chains


def _explanations(
    store: GraphStore, dated: GraphStore | None, entity_id: str, linked: Iterable[str]
) -> tuple[list[tuple[str, str, str, DerivationTree | None]], int]:
    """Derivations of the entity's inferred links, and of those pointing at it from the
    controllers and owners named in the report."""
    facts = inferred_links(store, entity_id, dated)
    for other in linked:
        facts += inferred_links(store, other, dated, dst=entity_id)
    unique = list(dict.fromkeys((f.src, f.predicate, f.dst) for f in facts))
    shown = unique[:MAX_EXPLANATIONS]
    dated_predicates = {f.predicate for f in facts} - {
        f.predicate for f in facts if f.predicate.startswith(UNDATED_PREDICATE_PREFIX)
    }

    def tree(s: str, p: str, o: str) -> DerivationTree | None:
        source = dated if dated is not None and p in dated_predicates else store
        return explain(source, s, p, o)

    return [(s, p, o, tree(s, p, o)) for s, p, o in shown], len(unique)


def _ring_alerts(store: GraphStore, ring_ids: set[str]) -> list[str]:
    """The nightly ring runs' alerts (new and grown rings) about these rings, newest first."""
    alerts = [
        body
        for _, body in store.list_documents(ALERTS_COLLECTION)
        if body.get("ring_id") in ring_ids
    ]
    alerts.sort(key=lambda a: str(a.get("created_at", "")), reverse=True)
    return [f"{a.get('created_at', '')[:10]} {a.get('message', a.get('kind', ''))}" for a in alerts]


def _rings(
    index: RiskIndex, member_ids: Sequence[str]
) -> list[tuple[str, list[str], float | None, str | None]]:
    ring_ids = dict.fromkeys(r for m in member_ids for r in index.rings_of.get(m, []))
    return [
        (r, index.rings[r].members, index.rings[r].score, index.rings[r].region)
        for r in ring_ids
        if r in index.rings
    ]


def gather_entity_report(
    store: GraphStore,
    entity_id: str,
    params: BankParameters,
    *,
    index: RiskIndex | None = None,
    as_of: str | None = None,
) -> EntityReportData:
    """Collect the report's facts about an entity (id or alias) and its group.

    Raises:
        UnknownEntity: no entity has this id or alias.
    """
    canonical = store.resolve(entity_id)
    node = store.get_node(canonical) if canonical is not None else None
    if canonical is None or node is None:
        raise UnknownEntity(entity_id)
    dated = ownership_view(store, as_of, [canonical]) if as_of else None
    source = dated if dated is not None else store
    try:
        up = controllers(source, canonical)
        down = controlled_companies(source, canonical)
        owners = (
            [
                (o.person, o.effective_share_pct, o.controls, o.reasons)
                for o in beneficial_owners(source, canonical)
            ]
            if node.label == Label.COMPANY
            else []
        )
        group = connected_group(source, canonical, exposure_store=store, as_of=as_of)
        linked = {r.controller for r in up} | {o[0] for o in owners}
        explanations, total = _explanations(store, dated, canonical, sorted(linked))
    finally:
        if dated is not None:
            dated.close()
    limits = group_limit_uses(group, params) if len(group.members) > 1 else []
    limits += limit_uses(
        params,
        LimitScope.CLIENT,
        node.label == Label.COMPANY and bool(node.props.get("is_financial")),
        client_exposure(store, canonical, as_of).loans,
    )
    member_ids = [canonical, *(m.id for m in group.members if m.id != canonical)]
    circles, chains = _guarantee_facts(store, member_ids, as_of)
    if index is None:
        index = load_risk_index(store) or build_risk_index(store, params, save=False)
    rings = _rings(index, member_ids)
    ids: set[str] = {canonical, *member_ids, *linked, *(r.company for r in down)}
    for r in [*up, *down]:
        ids |= {*r.family, *(v.holder for v in r.votes)}
        ids |= {s.holder for v in r.votes for s in v.chain}
    ids |= {m for c in circles for m in c.members} | {m for c in chains for m in c.path}
    ids |= {s for s, _, o, _ in explanations} | {o for _, _, o, _ in explanations}
    return EntityReportData(
        entity=node,
        aliases=store.aliases_of(canonical),
        as_of=as_of,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        controllers=up,
        controlled=down,
        owners=owners,
        group=group,
        limits=limits,
        large_exposure_threshold=params.large_exposure_threshold,
        circles=circles,
        chains=chains,
        rings=rings,
        rings_available=bool(index.rings) or latest_run(store) is not None,
        ring_alerts=_ring_alerts(store, {r[0] for r in rings}),
        explanations=explanations,
        explanations_total=total,
        names=_names(store, ids),
    )


# --- rendering --------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"¥{value:,.0f}"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _who(data: EntityReportData, entity_id: str) -> str:
    name = data.names.get(entity_id)
    return f"{_e(name)} <span class=id>{_e(entity_id)}</span>" if name else _e(entity_id)


def limit_chart(limits: Sequence[LimitUse], width: int = 640) -> str:
    """Horizontal bars: each limit's utilisation, the 100% line, breaches in red."""
    if not limits:
        return "<p class=muted>No limit applies.</p>"
    row, label_w, bar_w = 34, 200, width - 200 - 130
    scale = max(1.0, max(u.utilisation for u in limits))
    height = row * len(limits) + 12
    parts = [
        f'<svg class=chart xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="limit utilisation">'
    ]
    for i, u in enumerate(limits):
        y = 6 + i * row
        fill = "#c0392b" if u.breached else "#4a90d9"
        w = bar_w * min(u.utilisation, scale) / scale
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="11">{_e(u.name)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="14" fill="#edf0f3"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="14" fill="{fill}"/>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 15}" font-size="11">'
            f"{u.utilisation:.1%}{' BREACH' if u.breached else ''}</text>"
        )
    x100 = label_w + bar_w / scale
    parts.append(
        f'<line x1="{x100:.1f}" y1="2" x2="{x100:.1f}" y2="{height - 2}" stroke="#333" '
        f'stroke-dasharray="3,2"/></svg>'
    )
    return "".join(parts)


def exposure_chart(data: EntityReportData, width: int = 640) -> str:
    """Horizontal bars: each group member's loan balance."""
    members = sorted(data.group.members, key=lambda m: -m.exposure.loans)
    top = max((m.exposure.loans for m in members), default=0.0)
    if top <= 0:
        return "<p class=muted>No member has an outstanding loan.</p>"
    row, label_w, bar_w = 22, 230, width - 230 - 110
    height = row * len(members) + 6
    parts = [
        f'<svg class=chart xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="exposure by member">'
    ]
    for i, m in enumerate(members):
        y = 3 + i * row
        w = bar_w * m.exposure.loans / top
        label = f"{m.name or ''} {m.id}".strip()
        parts.append(
            f'<text x="0" y="{y + 13}" font-size="10">{_e(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="12" fill="#2f8f5b"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="10">'
            f"{_e(_money(m.exposure.loans))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def circle_diagram(data: EntityReportData, circle: CircleFacts, size: int = 300) -> str:
    """The circle's members on a ring, with an arrow for every guarantee of its cycles."""
    members = circle.members
    n = len(members)
    radius, centre = size / 2 - 60, size / 2
    at = {
        m: (
            centre + radius * math.cos(2 * math.pi * i / n - math.pi / 2),
            centre + radius * math.sin(2 * math.pi * i / n - math.pi / 2),
        )
        for i, m in enumerate(members)
    }
    pairs = {(c[i], c[(i + 1) % len(c)]) for c in circle.cycles for i in range(len(c))}
    pairs |= {(a, b) for a, b in circle.mutual_pairs} | {(b, a) for a, b in circle.mutual_pairs}
    parts = [
        f'<svg class=circle xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="guarantee circle">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/>'
        "</marker></defs>"
    ]
    for a, b in sorted(pairs):
        (x1, y1), (x2, y2) = at[a], at[b]
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        dx, dy = (x2 - x1) / length * 12, (y2 - y1) / length * 12
        parts.append(
            f'<line x1="{x1 + dx:.1f}" y1="{y1 + dy:.1f}" x2="{x2 - dx:.1f}" y2="{y2 - dy:.1f}" '
            f'stroke="#c0392b" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for m, (x, y) in at.items():
        fill = "#111" if m == data.entity.id else "#2f6fb3"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="{fill}"/>'
            f'<text x="{x:.1f}" y="{y + 20:.1f}" font-size="9" text-anchor="middle">'
            f"{_e(m)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _tree_html(tree: DerivationTree) -> str:
    value = f" = {tree.value:g}" if tree.value is not None else ""
    fact = f"{tree.predicate}({', '.join(str(a) for a in tree.args)}){value}"
    meta = ""
    if tree.rule and tree.rule != "source":
        meta += f" <span class=rule>rule {_e(tree.rule)}</span>"
    if tree.source is not None:
        meta += f" <span class=src>{_e(tree.source)}:{_e(tree.line)}</span>"
    children = "".join(_tree_html(c) for c in tree.children)
    return f"<li><code>{_e(fact)}</code>{meta}" + (f"<ul>{children}</ul>" if children else "")


_CSS = """
@page { size: A4; margin: 16mm 14mm; @bottom-right { content: counter(page) " / " counter(pages);
  font-size: 9px; color: #777; } }
body { font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Droid Sans Fallback", sans-serif;
  color: #1d2733; font-size: 11px; line-height: 1.45; max-width: 900px; margin: 0 auto; }
h1 { font-size: 20px; margin: 0 0 2px; }
h2 { font-size: 14px; margin: 18px 0 6px; border-bottom: 2px solid #14263a; padding-bottom: 2px; }
h3 { font-size: 12px; margin: 10px 0 4px; }
.id { color: #6b7785; font-size: 10px; } .muted { color: #6b7785; }
table { border-collapse: collapse; width: 100%; margin: 4px 0; }
th, td { border-bottom: 1px solid #d9dee4; padding: 3px 5px; text-align: left;
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.kpi { display: inline-block; border: 1px solid #d9dee4; padding: 4px 10px; margin: 2px 6px 2px 0; }
.kpi b { display: block; font-size: 14px; }
.alert { color: #c0392b; } .breach { color: #c0392b; font-weight: bold; }
ul.tree, ul.tree ul { list-style: none; padding-left: 12px; margin: 1px 0;
  border-left: 2px solid #e6cfcc; }
code { font-size: 10px; background: #f4f1f0; } .rule { color: #c0392b; font-size: 9px; }
.src { color: #6b7785; font-size: 9px; } .explanation { page-break-inside: avoid; margin: 6px 0; }
svg { max-width: 100%; }
"""


def render_html(data: EntityReportData) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    node, group = data.entity, data.group
    shown_props = [
        (k, node.props[k])
        for k in ("id_number", "uscc", "region_code", "industry", "registered_capital", "address")
        if node.props.get(k) is not None
    ]
    out: list[str] = [
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>",
        f"<title>Risk report {_e(node.id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Risk report · 风险报告: {_e(node.name or node.id)}</h1>",
        f"<p class=muted>{_e(node.label.value)} {_e(node.id)}",
        f" · aliases {_e(', '.join(data.aliases))}" if data.aliases else "",
        f" · as of {_e(data.as_of)}" if data.as_of else " · current state",
        f" · generated {_e(data.generated_at)}</p>",
        "<table>",
        *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in shown_props),
        "</table>",
        '<div class=kpis><span class=kpi>Group exposure<b id="group-exposure">'
        f"{_e(_money(group.exposure))}</b></span>",
        f"<span class=kpi>Guarantees given by the group<b>{_e(_money(group.guarantees_given))}"
        "</b></span>",
        f"<span class=kpi>Group members<b>{len(group.members)}</b></span>",
        f"<span class=kpi>Large-exposure threshold<b>{_e(_money(data.large_exposure_threshold))}"
        "</b></span></div>",
        "<h2>Alerts · 预警</h2>",
    ]
    alerts = data.alerts
    out.append(
        "<ul>" + "".join(f"<li class=alert>{_e(a)}</li>" for a in alerts) + "</ul>"
        if alerts
        else "<p class=muted>No limit breach, circle or ring involvement.</p>"
    )
    out.append("<h2>Control structure and beneficial owners · 控制关系与受益所有人</h2>")
    for title, relations, side in (
        ("Controlled by", data.controllers, "controller"),
        ("Controls", data.controlled, "company"),
    ):
        out.append(f"<h3>{title}</h3>")
        if not relations:
            out.append("<p class=muted>None.</p>")
            continue
        out.append("<table><tr><th>Party</th><th>Basis</th><th>Evidence</th></tr>")
        for r in relations:
            party = r.controller if side == "controller" else r.company
            out.append(
                f"<tr><td>{_who(data, party)}</td><td>{_e(r.basis)}</td>"
                f"<td>{_e(r.describe(data.names))}</td></tr>"
            )
        out.append("</table>")
    if node.label == Label.COMPANY:
        out.append("<h3>Beneficial owners (≥ 25% effective share, or control)</h3>")
        if data.owners:
            out.append(
                "<table><tr><th>Person</th><th class=num>Effective share</th><th>Reasons</th></tr>"
            )
            for person, share, _controls, reasons in data.owners:
                out.append(
                    f"<tr><td>{_who(data, person)}</td><td class=num>{share:.2f}%</td>"
                    f"<td>{_e('; '.join(reasons))}</td></tr>"
                )
            out.append("</table>")
        else:
            out.append("<p class=muted>No natural person reaches the threshold.</p>")
    out += [
        "<h2>Connected-client group and limits · 关联客户集团与限额</h2>",
        f"<p>Group {_e(group.group_id)}: exposure <b>{_e(_money(group.exposure))}</b>"
        f"{' (interbank)' if group.interbank else ''}.</p>",
        limit_chart(data.limits),
        "<table><tr><th>Limit</th><th class=num>Exposure</th><th class=num>Limit</th>"
        "<th class=num>Utilisation</th><th></th></tr>",
        *(
            f"<tr><td>{_e(u.name)}<div class=muted>{_e(u.description)}</div></td>"
            f"<td class=num>{_e(_money(u.exposure))}</td><td class=num>{_e(_money(u.limit))}</td>"
            f"<td class=num>{u.utilisation:.1%}</td>"
            f"<td>{'<span class=breach>BREACHED</span>' if u.breached else ''}</td></tr>"
            for u in data.limits
        ),
        "</table><h3>Members</h3>",
        exposure_chart(data),
        "<table><tr><th>Member</th><th class=num>Loans</th><th class=num>Guarantees given</th>"
        "<th>Why in the group</th></tr>",
        *(
            f"<tr><td>{_who(data, m.id)}</td><td class=num>{_e(_money(m.exposure.loans))}</td>"
            f"<td class=num>{_e(_money(m.exposure.guarantees_given))}</td>"
            f"<td>{_e('; '.join(r.text for r in m.reasons))}</td></tr>"
            for m in group.members
        ),
        "</table>",
        "<h2>Guarantee circles and chains · 担保圈与担保链</h2>",
    ]
    if not data.circles and not data.chains:
        out.append("<p class=muted>Neither the entity nor its group is in a circle or chain.</p>")
    for i, c in enumerate(data.circles, 1):
        out.append(
            f"<h3>Circle {i}: {len(c.members)} parties, {_e(_money(c.total_amount))}</h3>"
            + circle_diagram(data, c)
            + "<p>"
            + " → ".join(_who(data, m) for m in c.members)
            + "</p>"
        )
        if c.mutual_pairs:
            pairs = ", ".join(f"{_e(a)} ⇄ {_e(b)}" for a, b in c.mutual_pairs)
            out.append(f"<p>Mutual guarantees: {pairs}</p>")
    for chain in data.chains:
        steps = " → ".join(_who(data, m) for m in chain.path)
        out.append(
            f"<h3>Chain of {len(chain.path) - 1} guarantees, {_e(_money(chain.total_amount))}</h3>"
            f"<p>{steps}</p>"
        )
    out.append("<h2>Fraud-ring involvement · 团伙关联</h2>")
    if not data.rings_available:
        out.append(
            "<p class=muted>Not available: ring detection has not run on this store, so ring "
            "involvement cannot be reported yet.</p>"
        )
    elif not data.rings:
        out.append("<p>Neither the entity nor its group is in a detected ring.</p>")
    else:
        out.append(
            "<table><tr><th>Ring</th><th>Region</th><th class=num>Score</th><th>Members</th></tr>"
        )
        for ring_id, members, score, region in data.rings:
            out.append(
                f"<tr><td>{_e(ring_id)}</td><td>{_e(region or '')}</td>"
                f"<td class=num>{'' if score is None else f'{score:.3f}'}</td>"
                f"<td>{_e(', '.join(members))}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>Why: the derivation of every inferred link · 推理依据</h2>")
    if not data.explanations:
        out.append("<p class=muted>No inferred link involves this entity.</p>")
    for s, p, o, tree in data.explanations:
        out.append(f"<div class=explanation><h3>{_e(p)}: {_who(data, s)} → {_who(data, o)}</h3>")
        out.append(
            f"<ul class=tree>{_tree_html(tree)}</ul></div>"
            if tree is not None
            else "<p class=muted>No stored derivation.</p></div>"
        )
    if data.explanations_total > len(data.explanations):
        out.append(
            f"<p class=muted>{data.explanations_total - len(data.explanations)} more inferred "
            "links are not printed; ask GET /v1/explain for each.</p>"
        )
    out.append("</body></html>")
    return "".join(out)


def html_to_pdf(html: str) -> bytes:
    """Render report HTML to PDF with WeasyPrint (needs pango and a CJK font installed)."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: the pango library is missing
        raise RuntimeError(
            "PDF reports need WeasyPrint (`pip install weasyprint`) and pango "
            "(`apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-wqy-zenhei`)"
        ) from exc
    pdf: bytes = HTML(string=html).write_pdf()
    return pdf


def render_entity_report(
    store: GraphStore,
    entity_id: str,
    fmt: ReportFormat = "html",
    *,
    params: BankParameters | None = None,
    index: RiskIndex | None = None,
    as_of: str | None = None,
) -> bytes:
    """The risk report of an entity and its connected-client group.

    Args:
        store: the graph store (reasoned: inferred facts present).
        entity_id: id or alias of the entity.
        fmt: "html" (UTF-8, self-contained) or "pdf".
        params: bank capital and limits; default: `bank.toml` and RISKGRAPH_* variables.
        index: the risk index (ring membership); default: the stored one, else built.
        as_of: ISO date for holdings and guarantees.

    Raises:
        UnknownEntity: no entity has this id or alias.

    Example:
        >>> pdf = render_entity_report(store, "C00000042", "pdf")  # doctest: +SKIP
        >>> pdf[:5]
        b'%PDF-'
    """
    if params is None:
        params = load_bank_parameters("bank.toml")
    data = gather_entity_report(store, entity_id, params, index=index, as_of=as_of)
    html = render_html(data)
    return html_to_pdf(html) if fmt == "pdf" else html.encode("utf-8")
