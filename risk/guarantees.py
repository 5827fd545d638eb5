"""Guarantee circles (担保圈) and chains (担保链) on the guarantee graph.

Every member of a non-trivial strongly connected component of the guarantor → borrower
graph is in a circle; a circle is reported with its simple cycles up to a length bound,
its mutual pairs (A guarantees B and B guarantees A) and the total amount guaranteed inside
it. Chains are the longest guarantee paths in the acyclic part: the graph left after taking
out every node that is in a circle.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import igraph as ig
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg.model import RelType
from kg.store import GraphStore

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEFAULT_MAX_CYCLE_LENGTH = 6
# Cycles listed per circle; a dense circle has exponentially many, the analyst needs a few.
DEFAULT_MAX_CYCLES = 200


@dataclass(slots=True)
class GuaranteeGraph:
    """Guarantor → borrower pairs on dense positions 0..n-1; parallel guarantees are summed.

    `nids[i]` is the store nid of position i.
    """

    nids: IntArray
    src: IntArray
    dst: IntArray
    amount: FloatArray
    count: IntArray
    _graph: ig.Graph | None = field(default=None, repr=False)

    @property
    def num_nodes(self) -> int:
        return int(self.nids.size)

    @classmethod
    def from_edges(
        cls, src_nids: npt.ArrayLike, dst_nids: npt.ArrayLike, amounts: npt.ArrayLike
    ) -> GuaranteeGraph:
        src = np.asarray(src_nids, np.int64)
        dst = np.asarray(dst_nids, np.int64)
        amount = np.nan_to_num(np.asarray(amounts, np.float64))
        nids, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
        s, d = inverse[: src.size], inverse[src.size :]
        n = max(int(nids.size), 1)
        pair = s * n + d
        pairs, pair_index = np.unique(pair, return_inverse=True)
        total = np.bincount(pair_index, weights=amount, minlength=pairs.size).astype(np.float64)
        count = np.bincount(pair_index, minlength=pairs.size).astype(np.int64)
        return cls(nids.astype(np.int64), pairs // n, pairs % n, total, count)

    @classmethod
    def from_store(cls, store: GraphStore, as_of: str | None = None) -> GuaranteeGraph:
        """The guarantee graph of a store; with `as_of`, only guarantees in force that day
        (start_date ≤ as_of ≤ end_date; a missing date does not exclude)."""
        src_parts: list[IntArray] = []
        dst_parts: list[IntArray] = []
        amount_parts: list[FloatArray] = []
        for batch in store.edge_batches(RelType.GUARANTEES):
            if as_of is not None:
                batch = batch.filter(in_force(batch, as_of))
            src_parts.append(batch.column("src").to_numpy().astype(np.int64))
            dst_parts.append(batch.column("dst").to_numpy().astype(np.int64))
            amounts = batch.column("amount").cast(pa.float64()).to_numpy(zero_copy_only=False)
            amount_parts.append(np.asarray(amounts, np.float64))
        return cls.from_edges(_cat(src_parts), _cat(dst_parts), _catf(amount_parts))

    def graph(self) -> ig.Graph:
        if self._graph is None:
            self._graph = ig.Graph(
                n=self.num_nodes, edges=np.column_stack([self.src, self.dst]), directed=True
            )
            self._graph.es["amount"] = self.amount.tolist()
        return self._graph

    def position_of_nid(self, nid: int) -> int | None:
        i = int(np.searchsorted(self.nids, nid))
        return i if i < self.nids.size and int(self.nids[i]) == nid else None

    def successors(self) -> list[list[int]]:
        adjacency: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for a, b in zip(self.src.tolist(), self.dst.tolist(), strict=True):
            adjacency[a].append(b)
        return adjacency

    def amount_between(self) -> dict[tuple[int, int], float]:
        return {
            (a, b): v
            for a, b, v in zip(
                self.src.tolist(), self.dst.tolist(), self.amount.tolist(), strict=True
            )
        }


def in_force(batch: pa.Table, as_of: str) -> pa.Array:
    """Rows whose start_date ≤ as_of ≤ end_date (ISO dates compare as text)."""
    start = batch.column("start_date")
    end = batch.column("end_date")
    started = pc.fill_null(pc.less_equal(start, pa.scalar(as_of)), True)
    not_ended = pc.fill_null(pc.greater_equal(end, pa.scalar(as_of)), True)
    return pc.and_(started, not_ended)


def _cat(parts: list[IntArray]) -> IntArray:
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def _catf(parts: list[FloatArray]) -> FloatArray:
    return np.concatenate(parts) if parts else np.empty(0, np.float64)


@dataclass(slots=True)
class Circle:
    """A non-trivial strongly connected component; positions are graph positions."""

    members: list[int]
    cycles: list[list[int]]
    cycles_truncated: bool
    mutual_pairs: list[tuple[int, int]]
    total_amount: float


@dataclass(slots=True)
class Chain:
    """A longest guarantee path: `path[i]` guarantees `path[i+1]`."""

    path: list[int]
    amounts: list[float]

    @property
    def length(self) -> int:
        return len(self.path) - 1

    @property
    def total_amount(self) -> float:
        return float(sum(self.amounts))


def strong_components(graph: GuaranteeGraph) -> list[list[int]]:
    """Non-trivial strongly connected components (two or more members, or a self loop)."""
    membership = np.asarray(graph.graph().connected_components(mode="strong").membership, np.int64)
    sizes = np.bincount(membership, minlength=int(membership.max(initial=-1)) + 1)
    self_loop = np.zeros(sizes.size, bool)
    loops = graph.src == graph.dst
    self_loop[membership[graph.src[loops]]] = True
    keep = (sizes >= 2) | self_loop
    order = np.argsort(membership, kind="stable")
    groups = np.split(order, np.cumsum(sizes)[:-1]) if sizes.size else []
    return [sorted(g.tolist()) for k, g in enumerate(groups) if keep[k]]


def simple_cycles(
    members: list[int],
    successors: list[list[int]],
    max_length: int,
    max_cycles: int | None = None,
) -> Iterator[list[int]]:
    """Simple cycles inside one component, each once, starting at its smallest position.

    Depth-first from each start s through members greater than s only, so every cycle is
    found from its smallest node and never twice; the depth bound keeps the search
    polynomial in the component size for a fixed `max_length`.
    """
    inside = set(members)
    found = 0
    for start in sorted(members):
        path = [start]
        on_path = {start}
        stack: list[Iterator[int]] = [iter(successors[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            if nxt == start:
                yield list(path)
                found += 1
                if max_cycles is not None and found >= max_cycles:
                    return
            elif nxt > start and nxt in inside and nxt not in on_path and len(path) < max_length:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(successors[nxt]))


def guarantee_circles(
    graph: GuaranteeGraph,
    max_cycle_length: int = DEFAULT_MAX_CYCLE_LENGTH,
    max_cycles: int = DEFAULT_MAX_CYCLES,
    components: list[list[int]] | None = None,
) -> list[Circle]:
    """Every guarantee circle with its cycles (up to `max_cycle_length` guarantees each),
    mutual pairs and the total amount of the guarantees between its members.

    Example:
        >>> g = GuaranteeGraph.from_edges([1, 2, 3], [2, 3, 1], [10.0, 20.0, 30.0])
        >>> [(c.members, c.cycles, c.total_amount) for c in guarantee_circles(g)]
        [([0, 1, 2], [[0, 1, 2]], 60.0)]
    """
    successors = graph.successors()
    between = graph.amount_between()
    circles = []
    for members in strong_components(graph) if components is None else components:
        cycles = list(simple_cycles(members, successors, max_cycle_length, max_cycles + 1))
        truncated = len(cycles) > max_cycles
        inside = set(members)
        mutual = sorted((a, b) for (a, b) in between if a < b and b in inside and (b, a) in between)
        total = sum(v for (a, b), v in between.items() if a in inside and b in inside)
        circles.append(Circle(members, cycles[:max_cycles], truncated, mutual, float(total)))
    return circles


@dataclass(slots=True)
class ChainIndex:
    """Longest-path tables on the acyclic part of the guarantee graph.

    `down[v]` is the number of guarantees on the longest path starting at v, `up[v]` on the
    longest path ending at v; `next_[v]`/`prev[v]` the neighbour on it (-1 at the end).
    Ties are broken by the larger total amount.
    """

    down: IntArray
    up: IntArray
    next_: IntArray
    prev: IntArray
    down_amount: FloatArray
    up_amount: FloatArray
    between: dict[tuple[int, int], float]


def chain_index(graph: GuaranteeGraph, circle_members: set[int] | None = None) -> ChainIndex:
    """Longest paths in the graph without the circle members (a DAG)."""
    if circle_members is None:
        circle_members = {m for c in strong_components(graph) for m in c}
    n = graph.num_nodes
    keep = np.ones(n, bool)
    if circle_members:
        keep[np.fromiter(circle_members, np.int64)] = False
    mask = keep[graph.src] & keep[graph.dst] & (graph.src != graph.dst)
    src, dst, amount = graph.src[mask], graph.dst[mask], graph.amount[mask]
    dag = ig.Graph(n=n, edges=np.column_stack([src, dst]), directed=True)
    order = dag.topological_sorting(mode="out")
    out_edges: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    in_edges: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for a, b, v in zip(src.tolist(), dst.tolist(), amount.tolist(), strict=True):
        out_edges[a].append((b, v))
        in_edges[b].append((a, v))
    down = [0] * n
    down_amount = [0.0] * n
    nxt = [-1] * n
    for v in reversed(order):
        for w, amt in out_edges[v]:
            cand = (down[w] + 1, down_amount[w] + amt)
            if cand > (down[v], down_amount[v]):
                down[v], down_amount[v], nxt[v] = cand[0], cand[1], w
    up = [0] * n
    up_amount = [0.0] * n
    prev = [-1] * n
    for v in order:
        for u, amt in in_edges[v]:
            cand = (up[u] + 1, up_amount[u] + amt)
            if cand > (up[v], up_amount[v]):
                up[v], up_amount[v], prev[v] = cand[0], cand[1], u
    return ChainIndex(
        np.asarray(down, np.int64),
        np.asarray(up, np.int64),
        np.asarray(nxt, np.int64),
        np.asarray(prev, np.int64),
        np.asarray(down_amount),
        np.asarray(up_amount),
        {(int(a), int(b)): float(v) for a, b, v in zip(src, dst, amount, strict=True)},
    )


def _chain_from_path(path: list[int], index: ChainIndex) -> Chain:
    amounts = [index.between[(a, b)] for a, b in itertools.pairwise(path)]
    return Chain(path, amounts)


def chain_through(index: ChainIndex, position: int) -> Chain | None:
    """The longest chain through one node (the longest path into it joined to the longest
    path out of it), or None when the node is on no guarantee outside circles."""
    if index.up[position] == 0 and index.down[position] == 0:
        return None
    before = []
    v = int(index.prev[position])
    while v >= 0:
        before.append(v)
        v = int(index.prev[v])
    after = []
    v = int(index.next_[position])
    while v >= 0:
        after.append(v)
        v = int(index.next_[v])
    return _chain_from_path([*reversed(before), position, *after], index)


def longest_chains(index: ChainIndex, min_length: int = 2, limit: int = 100) -> list[Chain]:
    """Longest chains that start at a node no one guarantees, longest first."""
    starts = np.flatnonzero((index.up == 0) & (index.down >= min_length))
    starts = starts[np.lexsort((-index.down_amount[starts], -index.down[starts]))][:limit]
    chains = []
    for s in starts.tolist():
        path = [s]
        v = int(index.next_[s])
        while v >= 0:
            path.append(v)
            v = int(index.next_[v])
        chains.append(_chain_from_path(path, index))
    return chains
