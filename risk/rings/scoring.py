"""Evidence and score of a candidate ring.

The evidence is what an investigator checks: the identifiers members share (with how many
members use each), the guarantee circles inside the ring, the circular money flows between
members, the bad-loan ratio of the members' loans, the edges that tie the ring together and
how concentrated it is in one county.

The score in [0, 1] is a weighted mean of five signals, each scaled to [0, 1]:

* identifiers — kinds of identifier shared inside the ring (phone, address, device, id
  number), three or more kinds scoring 1. A switchboard or an office building shares one.
* guarantees — share of members inside a guarantee circle of the ring, saturating at 25%.
* flows — share of members on a circular flow inside the ring, saturating at 25%.
* bad loans — the members' non-performing ratio, smoothed towards the book's typical 5% with
  four pseudo-loans so that one bad loan among two does not look like a ring, saturating at
  30% (six times the typical ratio).
* region — share of members in the most common county, from 0 at half to 1 at all.

A legitimate group scores high on at most two of them (a family: one county, one address);
the generator's planted rings score high on four or five.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from risk.rings.fraud_graph import IDENTIFIER_KINDS, FraudGraph

IntArray = npt.NDArray[np.int64]

# Edges listed as "what ties the ring together", strongest first.
MAX_TIE_EDGES = 200


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """Weights of the five signals in the ring score (normalised to sum to 1)."""

    identifiers: float = 0.25
    guarantees: float = 0.2
    flows: float = 0.2
    bad_loans: float = 0.2
    region: float = 0.15
    # Saturation points and the smoothing prior (see the module docstring).
    identifier_kinds_full: int = 3
    circle_share_full: float = 0.25
    flow_share_full: float = 0.25
    bad_ratio_full: float = 0.3
    bad_ratio_prior: float = 0.05
    prior_loans: float = 4.0


@dataclass(slots=True)
class RingEvidence:
    """Why a group of customers looks like a ring; members are customer indices."""

    shared_identifiers: list[dict[str, Any]]
    guarantee_circles: list[list[int]]
    circular_flows: list[dict[str, Any]]
    loans: int
    bad_loans: int
    bad_loan_ratio: float
    region: str | None
    region_share: float
    ties: list[dict[str, Any]]
    signals: dict[str, float] = field(default_factory=dict)

    def to_document(self, ids: npt.NDArray[np.str_]) -> dict[str, Any]:
        """The evidence with customer ids instead of indices (JSON-ready)."""
        return {
            "shared_identifiers": self.shared_identifiers,
            "guarantee_circles": [sorted(str(ids[m]) for m in c) for c in self.guarantee_circles],
            "circular_flows": [
                {**f, "src": str(ids[f["src"]]), "dst": str(ids[f["dst"]])}
                for f in self.circular_flows
            ],
            "loans": self.loans,
            "bad_loans": self.bad_loans,
            "bad_loan_ratio": round(self.bad_loan_ratio, 4),
            "region": self.region,
            "region_share": round(self.region_share, 4),
            "ties": [{**t, "a": str(ids[t["a"]]), "b": str(ids[t["b"]])} for t in self.ties],
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
        }


def _inside(members: IntArray, n: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros(n, dtype=np.bool_)
    mask[members] = True
    return mask


def ring_evidence(graph: FraudGraph, members: IntArray) -> RingEvidence:
    """Collect the evidence of one candidate ring (customer indices)."""
    members = np.unique(members.astype(np.int64))
    inside = _inside(members, graph.num_customers)

    sub_inc = graph.incidence[members]
    in_ring = np.asarray(sub_inc.sum(axis=0)).ravel().astype(np.int64)
    shared = np.flatnonzero(in_ring >= 2)
    shared = shared[np.lexsort((shared, -in_ring[shared]))]
    identifiers = [
        {
            "kind": IDENTIFIER_KINDS[int(graph.identifier_kind[j])],
            "value": str(graph.identifier_value[j]),
            "members": int(in_ring[j]),
            "customers": int(graph.identifier_degree[j]),
        }
        for j in shared.tolist()
    ]

    g_in = inside[graph.guarantee_src] & inside[graph.guarantee_dst]
    circles: list[list[int]] = []
    if g_in.any():
        gs, gd = graph.guarantee_src[g_in], graph.guarantee_dst[g_in]
        local = {int(m): k for k, m in enumerate(members.tolist())}
        ls = np.array([local[int(x)] for x in gs.tolist()], dtype=np.int64)
        ld = np.array([local[int(x)] for x in gd.tolist()], dtype=np.int64)
        k = members.size
        matrix = sp.csr_matrix((np.ones(ls.size), (ls, ld)), shape=(k, k))
        _, label = connected_components(matrix, directed=True, connection="strong")
        sizes = np.bincount(label, minlength=k)
        for c in np.flatnonzero(sizes >= 2).tolist():
            circles.append(sorted(int(members[i]) for i in np.flatnonzero(label == c)))

    f_in = inside[graph.flow_src] & inside[graph.flow_dst] & graph.flow_circular
    flows = [
        {"src": int(s), "dst": int(d), "amount": round(float(a), 2), "count": int(c)}
        for s, d, a, c in zip(
            graph.flow_src[f_in].tolist(), graph.flow_dst[f_in].tolist(),
            graph.flow_amount[f_in].tolist(), graph.flow_count[f_in].tolist(), strict=True,
        )
    ]  # fmt: skip

    loans = int(graph.loans[members].sum())
    bad = int(graph.bad_loans[members].sum())
    regions, counts = np.unique(graph.region[members], return_counts=True)
    top = int(np.argmax(counts)) if counts.size else -1
    region = str(regions[top]) if top >= 0 and regions[top] != "" else None
    region_share = float(counts[top] / members.size) if region is not None else 0.0

    # Guarantee and heavy-flow channels of the member pairs, from the edges inside the ring.
    pair_channels: dict[tuple[int, int], set[str]] = {}
    for src, dst, circle in zip(
        graph.guarantee_src[g_in].tolist(), graph.guarantee_dst[g_in].tolist(),
        graph.guarantee_in_circle[g_in].tolist(), strict=True,
    ):  # fmt: skip
        key = (min(src, dst), max(src, dst))
        pair_channels.setdefault(key, set()).add("guarantee_circle" if circle else "guarantee")
    f_pair = inside[graph.flow_src] & inside[graph.flow_dst]
    for src, dst, circular in zip(
        graph.flow_src[f_pair].tolist(), graph.flow_dst[f_pair].tolist(),
        graph.flow_circular[f_pair].tolist(), strict=True,
    ):  # fmt: skip
        key = (min(src, dst), max(src, dst))
        pair_channels.setdefault(key, set()).add("circular_flow" if circular else "flow")
    sub = sp.triu(graph.adjacency[members][:, members], k=1, format="coo")
    order = np.argsort(-sub.data, kind="stable")[:MAX_TIE_EDGES]
    ties = []
    for e in order.tolist():
        a, b = int(members[sub.row[e]]), int(members[sub.col[e]])
        channels = _identifier_channels(graph, a, b) + sorted(
            pair_channels.get((min(a, b), max(a, b)), set())
        )
        ties.append({"a": a, "b": b, "weight": round(float(sub.data[e]), 4), "channels": channels})
    return RingEvidence(
        shared_identifiers=identifiers,
        guarantee_circles=circles,
        circular_flows=flows,
        loans=loans,
        bad_loans=bad,
        bad_loan_ratio=bad / loans if loans else 0.0,
        region=region,
        region_share=region_share,
        ties=ties,
    )


def _identifier_channels(graph: FraudGraph, a: int, b: int) -> list[str]:
    inc = graph.incidence
    common = np.intersect1d(
        inc.indices[inc.indptr[a] : inc.indptr[a + 1]],
        inc.indices[inc.indptr[b] : inc.indptr[b + 1]],
    )
    return sorted({IDENTIFIER_KINDS[int(k)] for k in graph.identifier_kind[common]})


def ring_signals(
    evidence: RingEvidence, size: int, weights: ScoreWeights | None = None
) -> dict[str, float]:
    """The five signals of the score, each in [0, 1]."""
    w = weights or ScoreWeights()
    kinds = {item["kind"] for item in evidence.shared_identifiers}
    in_circle = len({m for c in evidence.guarantee_circles for m in c})
    on_flow = len({f[k] for f in evidence.circular_flows for k in ("src", "dst")})
    smoothed = (evidence.bad_loans + w.bad_ratio_prior * w.prior_loans) / (
        evidence.loans + w.prior_loans
    )
    return {
        "identifiers": min(1.0, len(kinds) / w.identifier_kinds_full),
        "guarantees": min(1.0, in_circle / size / w.circle_share_full),
        "flows": min(1.0, on_flow / size / w.flow_share_full),
        "bad_loans": min(1.0, smoothed / w.bad_ratio_full),
        "region": max(0.0, 2.0 * evidence.region_share - 1.0),
    }


def ring_score(signals: dict[str, float], weights: ScoreWeights | None = None) -> float:
    """Weighted mean of the signals, in [0, 1].

    Example:
        >>> ring_score({"identifiers": 1, "guarantees": 1, "flows": 1, "bad_loans": 1,
        ...             "region": 1})
        1.0
    """
    w = weights or ScoreWeights()
    parts = {
        "identifiers": w.identifiers,
        "guarantees": w.guarantees,
        "flows": w.flows,
        "bad_loans": w.bad_loans,
        "region": w.region,
    }
    total = sum(parts.values())
    return round(sum(parts[k] * signals.get(k, 0.0) for k in parts) / total, 6)
