"""Precomputed risk indexes for the hot path (`POST /v1/origination/check`).

`build_risk_index(store)` runs after reasoning, in one streaming pass over the store: the
connected-client group of every client (components of `connectedClient`), each group's
exposure and guarantees given, the balance of every borrower, guarantee-circle membership,
fraud-ring membership (from the documents collection "rings" when ring detection has run)
and, when the bank's own entity is known, its related parties. The result is stored as one
document, so an API process loads it once and answers a check with a handful of dict
lookups.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from kg.model import Label, RelType
from kg.store import GraphStore
from risk.groups import group_id_of, is_interbank
from risk.guarantees import GuaranteeGraph, strong_components
from risk.limits import BankParameters
from risk.related import INSIDER_SHARE_PCT, OFFICER_ROLES, related_parties

INDEX_COLLECTION = "risk_index"
INDEX_KEY = "current"
INDEX_META_KEY = "meta"
RINGS_COLLECTION = "rings"
INDEX_VERSION = 3
MAX_INDEXED_REASONS = 6
# connectedClient rules that make a family-party link
_FAMILY_RULES = pa.array(["connected_family_control", "connected_family_controller"])

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class GroupEntry:
    group_id: str
    members: list[str]
    exposure: float
    guarantees_given: float
    interbank: bool
    # member -> a controller of it inside the group (the short reason it is in)
    controlled_by: dict[str, str] = field(default_factory=dict)
    # member -> [kind, other member, rule] links that put it in the group
    reasons: dict[str, list[list[str]]] = field(default_factory=dict)


@dataclass(slots=True)
class CircleEntry:
    circle_id: str
    members: list[str]
    total_amount: float
    mutual_pairs: list[list[str]]


@dataclass(slots=True)
class RingEntry:
    ring_id: str
    members: list[str]
    score: float | None
    region: str | None


@dataclass(slots=True)
class RiskIndex:
    built_at: str
    seconds: float
    names: dict[str, str]
    labels: dict[str, str]
    balance: dict[str, float]
    guarantees_given: dict[str, float]
    financial: set[str]
    group_of: dict[str, str]
    groups: dict[str, GroupEntry]
    circle_of: dict[str, str]
    circles: dict[str, CircleEntry]
    rings_of: dict[str, list[str]]
    rings: dict[str, RingEntry]
    related_to: str | None
    related: dict[str, list[str]]
    # company -> {insider: how}: "holds <pct>%", "<role>", or "relative of <insider>"
    insiders: dict[str, dict[str, str]] = field(default_factory=dict)
    # aliases (other customer numbers) of group members
    aliases: dict[str, list[str]] = field(default_factory=dict)

    # --- lookups ----------------------------------------------------------------------------
    def knows(self, entity_id: str) -> bool:
        return entity_id in self.labels

    def group(self, entity_id: str) -> GroupEntry:
        """The entity's group; a client connected to nobody is a group of one."""
        gid = self.group_of.get(entity_id)
        if gid is not None:
            return self.groups[gid]
        return GroupEntry(
            group_id_of([entity_id]),
            [entity_id],
            self.balance.get(entity_id, 0.0),
            self.guarantees_given.get(entity_id, 0.0),
            is_interbank([self.labels.get(entity_id, "")], [entity_id in self.financial]),
        )

    def client_interbank(self, entity_id: str) -> bool:
        return self.labels.get(entity_id) == Label.COMPANY and entity_id in self.financial

    @property
    def related_total(self) -> float:
        return sum(self.balance.get(p, 0.0) for p in self.related)

    # --- persistence ------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        body = asdict(self)
        body["financial"] = sorted(self.financial)
        body["version"] = INDEX_VERSION
        return body

    @classmethod
    def from_document(cls, body: dict[str, Any]) -> RiskIndex:
        return cls(
            built_at=body["built_at"],
            seconds=body["seconds"],
            names=body["names"],
            labels=body["labels"],
            balance=body["balance"],
            guarantees_given=body["guarantees_given"],
            financial=set(body["financial"]),
            group_of=body["group_of"],
            groups={k: GroupEntry(**v) for k, v in body["groups"].items()},
            circle_of=body["circle_of"],
            circles={k: CircleEntry(**v) for k, v in body["circles"].items()},
            rings_of=body["rings_of"],
            rings={k: RingEntry(**v) for k, v in body["rings"].items()},
            related_to=body["related_to"],
            related=body["related"],
            insiders=body["insiders"],
            aliases=body["aliases"],
        )


def _sum_by(
    index: IntArray, weights: npt.NDArray[np.float64], size: int
) -> npt.NDArray[np.float64]:
    return np.bincount(index, weights=weights, minlength=size)[:size].astype(np.float64)


def _positions(nids: IntArray, all_nids: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    pos = np.searchsorted(all_nids, nids)
    pos = np.clip(pos, 0, max(all_nids.size - 1, 0))
    ok = all_nids[pos] == nids if all_nids.size else np.zeros(nids.size, bool)
    return pos.astype(np.int64), ok


def build_risk_index(
    store: GraphStore, params: BankParameters | None = None, *, save: bool = True
) -> RiskIndex:
    """Build (and by default store) the risk indexes from the store's current facts.

    Run it after `reasoning.materialise.materialise(store)`; `riskgraph reason` does.

    Args:
        store: the graph store.
        params: bank parameters; with a `bank_entity_id` the bank's related parties are
            indexed too.
        save: write the index to the documents collection "risk_index".
    """
    started = time.perf_counter()
    nid_parts: list[IntArray] = []
    ids: list[str] = []
    labels: list[str] = []
    names: list[str | None] = []
    financial: set[str] = set()
    for label in (Label.PERSON, Label.COMPANY):
        for batch in store.node_batches(label):
            nid_parts.append(np.asarray(batch.column("nid").to_numpy(), np.int64))
            batch_ids = batch.column("id").to_pylist()
            ids.extend(batch_ids)
            labels.extend([label.value] * batch.num_rows)
            names.extend(batch.column("name").to_pylist())
            if label == Label.COMPANY and "is_financial" in batch.column_names:
                flags = batch.column("is_financial").to_pylist()
                financial.update(i for i, f in zip(batch_ids, flags, strict=True) if f)
    nids = np.concatenate(nid_parts) if nid_parts else np.empty(0, np.int64)
    order = np.argsort(nids)
    nids = nids[order]
    id_arr = np.asarray(ids, dtype=object)[order]
    label_arr = np.asarray(labels, dtype=object)[order]
    name_arr = np.asarray(names, dtype=object)[order]
    n = int(nids.size)

    # loan balances: Loan nodes, then BORROWED edges party -> loan
    loan_nids, loan_balance = [], []
    for batch in store.node_batches(Label.LOAN):
        loan_nids.append(np.asarray(batch.column("nid").to_numpy(), np.int64))
        bal = batch.column("balance").to_numpy(zero_copy_only=False)
        loan_balance.append(np.nan_to_num(np.asarray(bal, np.float64)))
    l_nids = np.concatenate(loan_nids) if loan_nids else np.empty(0, np.int64)
    l_bal = np.concatenate(loan_balance) if loan_balance else np.empty(0)
    l_order = np.argsort(l_nids)
    l_nids, l_bal = l_nids[l_order], l_bal[l_order]
    balance = np.zeros(n)
    for batch in store.edge_batches(RelType.BORROWED):
        src = np.asarray(batch.column("src").to_numpy(), np.int64)
        dst = np.asarray(batch.column("dst").to_numpy(), np.int64)
        lp, lok = _positions(dst, l_nids)
        pp, pok = _positions(src, nids)
        ok = lok & pok
        balance += _sum_by(pp[ok], l_bal[lp[ok]], n)

    # guarantees: given per guarantor, and the graph for circles
    g_src, g_dst, g_amt = [], [], []
    for batch in store.edge_batches(RelType.GUARANTEES):
        g_src.append(np.asarray(batch.column("src").to_numpy(), np.int64))
        g_dst.append(np.asarray(batch.column("dst").to_numpy(), np.int64))
        amt = batch.column("amount").to_numpy(zero_copy_only=False)
        g_amt.append(np.nan_to_num(np.asarray(amt, np.float64)))
    gs = np.concatenate(g_src) if g_src else np.empty(0, np.int64)
    gd = np.concatenate(g_dst) if g_dst else np.empty(0, np.int64)
    ga = np.concatenate(g_amt) if g_amt else np.empty(0)
    gp, gok = _positions(gs, nids)
    given = _sum_by(gp[gok], ga[gok], n)

    # connected-client groups: components of connectedClient; the family-party links among
    # them (the reasoner records those only as connectedClient facts) are kept for later
    c_src, c_dst = [], []
    family_links: list[tuple[IntArray, IntArray, npt.NDArray[np.object_]]] = []
    for batch in store.inferred_batches("connectedClient"):
        src_nids = np.asarray(batch.column("src").to_numpy(), np.int64)
        dst_nids = np.asarray(batch.column("dst").to_numpy(), np.int64)
        c_src.append(src_nids)
        c_dst.append(dst_nids)
        family = np.asarray(pc.is_in(batch.column("rule"), value_set=_FAMILY_RULES), bool)
        if family.any():
            rules = batch.column("rule").filter(pa.array(family)).to_pylist()
            family_links.append((src_nids[family], dst_nids[family], np.asarray(rules, object)))
    cs, csok = _positions(np.concatenate(c_src) if c_src else np.empty(0, np.int64), nids)
    cd, cdok = _positions(np.concatenate(c_dst) if c_dst else np.empty(0, np.int64), nids)
    ok = csok & cdok
    adjacency = sp.coo_matrix((np.ones(int(ok.sum())), (cs[ok], cd[ok])), shape=(n, n))
    _, component = connected_components(adjacency.tocsr(), directed=False)
    sizes = np.bincount(component, minlength=n)
    grouped = np.flatnonzero(sizes[component] >= 2)
    group_members: dict[int, list[int]] = {}
    for pos in grouped.tolist():
        group_members.setdefault(int(component[pos]), []).append(pos)

    controller_in_group: dict[int, int] = {}
    links: dict[int, list[list[str]]] = {}

    def link(member: int, kind: str, other: int, rule: str) -> None:
        entries = links.setdefault(member, [])
        known = any(e[1] == id_arr[other] for e in entries)
        if len(entries) < MAX_INDEXED_REASONS and not known:
            entries.append([kind, str(id_arr[other]), rule])

    for batch in store.inferred_batches("controls"):
        src, sok = _positions(np.asarray(batch.column("src").to_numpy(), np.int64), nids)
        dst, dok = _positions(np.asarray(batch.column("dst").to_numpy(), np.int64), nids)
        rules = batch.column("rule").to_pylist()
        keep = sok & dok
        for a, b, rule in zip(
            src[keep].tolist(), dst[keep].tolist(), np.asarray(rules, object)[keep], strict=True
        ):
            if component[a] == component[b] and sizes[component[a]] >= 2:
                controller_in_group.setdefault(b, a)
                link(b, "controlled_by", a, str(rule))
                link(a, "controls", b, str(rule))
    for family_src, family_dst, family_rules in family_links:
        src, sok = _positions(family_src, nids)
        dst, dok = _positions(family_dst, nids)
        keep = sok & dok
        for a, b, rule in zip(
            src[keep].tolist(), dst[keep].tolist(), family_rules[keep], strict=True
        ):
            if rule == "connected_family_control":
                link(a, "family_party", b, str(rule))
                link(b, "family_controlled", a, str(rule))
            elif a not in links:
                link(a, "common_family_controller", b, str(rule))

    groups: dict[str, GroupEntry] = {}
    group_of: dict[str, str] = {}
    for positions in group_members.values():
        member_ids = [str(id_arr[p]) for p in positions]
        gid = group_id_of(member_ids)
        groups[gid] = GroupEntry(
            gid,
            sorted(member_ids),
            float(balance[positions].sum()),
            float(given[positions].sum()),
            is_interbank(
                [str(label_arr[p]) for p in positions], [m in financial for m in member_ids]
            ),
            {
                str(id_arr[p]): str(id_arr[controller_in_group[p]])
                for p in positions
                if p in controller_in_group
            },
            {str(id_arr[p]): links[p] for p in positions if p in links},
        )
        for m in member_ids:
            group_of[m] = gid

    graph = GuaranteeGraph.from_edges(gs, gd, ga)
    circles: dict[str, CircleEntry] = {}
    circle_of: dict[str, str] = {}
    between = graph.amount_between()
    g_pos, g_ok = _positions(graph.nids, nids)
    circle_ids = [
        str(id_arr[p]) if ok_ else str(nid)
        for p, ok_, nid in zip(g_pos.tolist(), g_ok.tolist(), graph.nids.tolist(), strict=True)
    ]
    for members in strong_components(graph):
        inside = set(members)
        member_ids = sorted(circle_ids[m] for m in members)
        cid = f"circle:{member_ids[0]}"
        total = sum(v for (a, b), v in between.items() if a in inside and b in inside)
        mutual = sorted(
            sorted([circle_ids[a], circle_ids[b]])
            for (a, b) in between
            if a < b and a in inside and b in inside and (b, a) in between
        )
        circles[cid] = CircleEntry(cid, member_ids, float(total), mutual)
        for m in member_ids:
            circle_of[m] = cid

    rings, rings_of = _load_rings(store)
    bank = params.bank_entity_id if params is not None else None
    related: dict[str, list[str]] = {}
    if bank is not None and store.resolve(bank) is not None:
        related = {p.id: p.reasons for p in related_parties(store, bank)}

    insider_map = _insiders(store, nids, id_arr)
    aliases = store.aliases_of_many(list(group_of))

    # names and labels of every party: origination checks of any client answer from here
    index = RiskIndex(
        built_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        seconds=0.0,
        names={str(i): str(nm) for i, nm in zip(id_arr, name_arr, strict=True) if nm},
        labels={str(i): str(lb) for i, lb in zip(id_arr, label_arr, strict=True)},
        balance={str(id_arr[p]): float(balance[p]) for p in np.flatnonzero(balance).tolist()},
        guarantees_given={str(id_arr[p]): float(given[p]) for p in np.flatnonzero(given).tolist()},
        financial=financial,
        group_of=group_of,
        groups=groups,
        circle_of=circle_of,
        circles=circles,
        rings_of=rings_of,
        rings=rings,
        related_to=bank,
        related=related,
        insiders=insider_map,
        aliases=aliases,
    )
    index.seconds = round(time.perf_counter() - started, 3)
    if save:
        store.put_document(INDEX_COLLECTION, INDEX_KEY, index.to_document())
        store.put_document(INDEX_COLLECTION, INDEX_META_KEY, {"built_at": index.built_at})
    return index


def _insiders(
    store: GraphStore, nids: IntArray, id_arr: npt.NDArray[np.object_]
) -> dict[str, dict[str, str]]:
    """Insiders of every company: holders of ≥ 5%, directors, supervisors, executives, and
    the close relatives (`familyOf`) of those who are persons."""
    out: dict[str, dict[str, str]] = {}
    for batch in store.edge_batches(RelType.HOLDS_SHARES):
        share = np.nan_to_num(
            np.asarray(batch.column("share_pct").to_numpy(zero_copy_only=False), np.float64)
        )
        keep = share >= INSIDER_SHARE_PCT
        src, sok = _positions(np.asarray(batch.column("src").to_numpy(), np.int64)[keep], nids)
        dst, dok = _positions(np.asarray(batch.column("dst").to_numpy(), np.int64)[keep], nids)
        ok = sok & dok
        for a, b, pct in zip(
            src[ok].tolist(), dst[ok].tolist(), share[keep][ok].tolist(), strict=True
        ):
            out.setdefault(str(id_arr[b]), {})[str(id_arr[a])] = f"holds {pct:g}%"
    for batch in store.edge_batches(RelType.HOLDS_POSITION):
        roles = np.asarray(batch.column("key").to_pylist(), object)
        keep = np.isin(roles, sorted(OFFICER_ROLES))
        src, sok = _positions(np.asarray(batch.column("src").to_numpy(), np.int64)[keep], nids)
        dst, dok = _positions(np.asarray(batch.column("dst").to_numpy(), np.int64)[keep], nids)
        ok = sok & dok
        for a, b, role in zip(src[ok].tolist(), dst[ok].tolist(), roles[keep][ok], strict=True):
            out.setdefault(str(id_arr[b]), {}).setdefault(str(id_arr[a]), str(role))
    relatives: dict[str, list[str]] = {}
    for batch in store.inferred_batches("familyOf"):
        src, sok = _positions(np.asarray(batch.column("src").to_numpy(), np.int64), nids)
        dst, dok = _positions(np.asarray(batch.column("dst").to_numpy(), np.int64), nids)
        ok = sok & dok
        for a, b in zip(src[ok].tolist(), dst[ok].tolist(), strict=True):
            relatives.setdefault(str(id_arr[a]), []).append(str(id_arr[b]))
    for company, found in out.items():
        for insider in list(found):
            for relative in relatives.get(insider, []):
                if relative != company:
                    found.setdefault(relative, f"relative of {insider}")
    return out


def _load_rings(store: GraphStore) -> tuple[dict[str, RingEntry], dict[str, list[str]]]:
    """Rings written by ring detection: documents with `members` (ids) and optional
    `score` and `region`, or one document holding a `rings` list of those."""
    rings: dict[str, RingEntry] = {}
    for key, body in store.list_documents(RINGS_COLLECTION):
        nested = body.get("rings")
        entries: list[Any] = nested if isinstance(nested, list) else [body]
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("members"), list):
                continue
            ring_id = str(entry.get("ring_id") or (key if len(entries) == 1 else f"{key}:{k}"))
            score = entry.get("score")
            region = entry.get("region")
            rings[ring_id] = RingEntry(
                ring_id,
                [str(m) for m in entry["members"]],
                float(score) if isinstance(score, int | float) else None,
                str(region) if region is not None else None,
            )
    rings_of: dict[str, list[str]] = {}
    for ring in rings.values():
        for m in ring.members:
            rings_of.setdefault(m, []).append(ring.ring_id)
    return rings, rings_of


def load_risk_index(store: GraphStore) -> RiskIndex | None:
    """The stored index, or None when `build_risk_index` has not run on this store."""
    body = store.get_document(INDEX_COLLECTION, INDEX_KEY)
    if body is None or body.get("version") != INDEX_VERSION:
        return None
    return RiskIndex.from_document(body)
