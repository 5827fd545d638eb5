"""The fraud graph: customers tied by shared identifiers, guarantees and money flows.

Nodes are the parties (persons and companies). Edge weights add up three kinds of evidence:

* **shared identifiers** — phone, normalised address, device, id_number. They form a sparse
  customer × identifier incidence matrix ``B``; identifier ``j`` used by ``d_j`` customers
  weighs ``kind_weight / (d_j - 1)``, so every customer draws the same total weight (the kind
  weight) from each identifier it shares, however many share it. A switchboard phone of 40
  staff gives each pair 1/39, a phone shared by three customers 1/2: identifiers shared by
  very many customers are down-weighted without a hand-kept list. The pair weights are
  ``B · diag(w) · Bᵀ`` without the diagonal.
* **guarantees** — a GUARANTEES edge, in either direction; edges inside a guarantee circle
  (a non-trivial strongly connected component of the guarantee graph) weigh more.
* **money flows** — TRANSFERRED edges between accounts, lifted to their owners through
  OWNS_ACCOUNT and summed per ordered owner pair, weighted by amount and count. Circular
  flows (reciprocal pairs and edges inside directed cycles) are found among the heaviest
  flows only (see `FraudGraphWeights.heavy_flows_per_customer`) and weigh more.

Everything is vectorised numpy/scipy; the graph and the evidence tables it keeps are plain
arrays, saved to and loaded from one ``.npz`` file so the API never rebuilds it per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from kg.model import NON_PERFORMING, Label, RelType
from kg.projection import LABEL_CODES, Projection
from kg.store import GraphStore

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

IDENTIFIER_KINDS: tuple[str, ...] = ("phone", "address", "device", "id_number")
ARTEFACT_VERSION = 1


@dataclass(frozen=True, slots=True)
class FraudGraphWeights:
    """Edge weights of the fraud graph.

    Attributes:
        phone: weight a customer draws from one phone it shares.
        address: the same for a normalised address. Lower than a phone or device because a
            household shares its address by design.
        device: the same for a login device.
        id_number: the same for an identity-card number (after entity resolution, two
            customers with one id number are rare and telling).
        max_identifier_degree: identifiers used by more customers give no pair edges. Their
            pair weight would be below ``kind / (cap - 1)`` — negligible next to one ring
            identifier — while their ``d²`` pairs would dominate the cost of ``B·W·Bᵀ``; the
            cap bounds that cost at ``cap`` pairs per incidence.
        guarantee: weight of a guarantee between two customers (either direction).
        guarantee_circle: extra weight of a guarantee inside a guarantee circle.
        flow: weight of a money flow at the amount scale; a flow of amount ``a`` weighs
            ``flow · a / (a + scale)``, doubled at most for repeated transfers
            (``2·count / (count + 1)``).
        flow_amount_scale: the amount scale as a multiple of the median owner-pair flow, so
            everyday payments weigh little whatever the currency.
        circular_flow: extra weight of a flow in a reciprocal pair or a directed cycle.
        heavy_flows_per_customer: circular flows are looked for among the heaviest flows
            only, at most this many per customer. Below one edge per node a random directed
            graph has no giant strongly connected component, so the cycles found there are
            real round trips rather than the giant component everyday traffic forms.
    """

    phone: float = 1.0
    address: float = 0.5
    device: float = 1.0
    id_number: float = 1.0
    max_identifier_degree: int = 64
    guarantee: float = 0.5
    guarantee_circle: float = 1.0
    flow: float = 0.25
    flow_amount_scale: float = 50.0
    circular_flow: float = 1.0
    heavy_flows_per_customer: float = 0.5

    def kind_weights(self) -> FloatArray:
        return np.array([getattr(self, kind) for kind in IDENTIFIER_KINDS], dtype=np.float64)


@dataclass(slots=True)
class FraudGraph:
    """The customer graph ring detection runs on, with the evidence behind its edges.

    Customer ``i`` is the projection's party at store nid ``nids[i]``. Identifier ``j`` has
    kind ``IDENTIFIER_KINDS[identifier_kind[j]]`` and value ``identifier_value[j]``.

    Attributes:
        nids, ids, is_company, region: per customer.
        loans, bad_loans: loans borrowed per customer, and those classified non-performing.
        adjacency: symmetric CSR of the summed edge weights (no self loops).
        incidence: customer × identifier incidence (CSR, 0/1), identifiers with ≥ 2 users.
        identifier_kind, identifier_value, identifier_degree: per identifier.
        guarantee_src, guarantee_dst, guarantee_amount, guarantee_in_circle: per guarantee
            edge between customers (guarantor → borrower).
        flow_src, flow_dst, flow_amount, flow_count, flow_circular: owner-level flows that
            are heavy (see the weights), with the circular ones marked.
        weights: the weights used.
        build_seconds: wall time of the build.
        stage_seconds: time per build stage.
    """

    nids: IntArray
    ids: npt.NDArray[np.str_]
    is_company: BoolArray
    region: npt.NDArray[np.str_]
    loans: IntArray
    bad_loans: IntArray
    adjacency: sp.csr_matrix
    incidence: sp.csr_matrix
    identifier_kind: npt.NDArray[np.int8]
    identifier_value: npt.NDArray[np.str_]
    identifier_degree: IntArray
    guarantee_src: IntArray
    guarantee_dst: IntArray
    guarantee_amount: FloatArray
    guarantee_in_circle: BoolArray
    flow_src: IntArray
    flow_dst: IntArray
    flow_amount: FloatArray
    flow_count: FloatArray
    flow_circular: BoolArray
    weights: FraudGraphWeights = field(default_factory=FraudGraphWeights)
    build_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    _index_by_id: dict[str, int] | None = None

    @property
    def num_customers(self) -> int:
        return int(self.nids.size)

    def index_of(self, customer_id: str) -> int | None:
        """The customer index of a canonical id, or None."""
        if self._index_by_id is None:
            self._index_by_id = {str(v): i for i, v in enumerate(self.ids.tolist())}
        return self._index_by_id.get(customer_id)

    # --- artefact ----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the graph to one ``.npz`` file (atomically: a temporary file is renamed)."""
        arrays: dict[str, Any] = {
            name: getattr(self, name)
            for name in (
                "nids", "ids", "is_company", "region", "loans", "bad_loans",
                "identifier_kind", "identifier_value", "identifier_degree",
                "guarantee_src", "guarantee_dst", "guarantee_amount", "guarantee_in_circle",
                "flow_src", "flow_dst", "flow_amount", "flow_count", "flow_circular",
            )
        }  # fmt: skip
        for name in ("adjacency", "incidence"):
            matrix: sp.csr_matrix = getattr(self, name)
            arrays[f"{name}_data"] = matrix.data
            arrays[f"{name}_indices"] = matrix.indices
            arrays[f"{name}_indptr"] = matrix.indptr
            arrays[f"{name}_shape"] = np.array(matrix.shape, dtype=np.int64)
        weights = asdict(self.weights)
        arrays["weight_names"] = np.array(list(weights), dtype=np.str_)
        arrays["weight_values"] = np.array(list(weights.values()), dtype=np.float64)
        arrays["version"] = np.array([ARTEFACT_VERSION])
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FraudGraph:
        """Read a graph written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            if int(data["version"][0]) != ARTEFACT_VERSION:
                raise ValueError(f"{path}: fraud-graph artefact version {data['version'][0]}")
            matrices = {
                name: sp.csr_matrix(
                    (data[f"{name}_data"], data[f"{name}_indices"], data[f"{name}_indptr"]),
                    shape=tuple(int(x) for x in data[f"{name}_shape"]),
                )
                for name in ("adjacency", "incidence")
            }
            defaults = asdict(FraudGraphWeights())
            stored = dict(
                zip(data["weight_names"].tolist(), data["weight_values"].tolist(), strict=True)
            )
            weights = FraudGraphWeights(
                **{k: type(v)(stored.get(k, v)) for k, v in defaults.items()}
            )
            return cls(
                nids=data["nids"],
                ids=data["ids"],
                is_company=data["is_company"],
                region=data["region"],
                loans=data["loans"],
                bad_loans=data["bad_loans"],
                adjacency=matrices["adjacency"],
                incidence=matrices["incidence"],
                identifier_kind=data["identifier_kind"],
                identifier_value=data["identifier_value"],
                identifier_degree=data["identifier_degree"],
                guarantee_src=data["guarantee_src"],
                guarantee_dst=data["guarantee_dst"],
                guarantee_amount=data["guarantee_amount"],
                guarantee_in_circle=data["guarantee_in_circle"],
                flow_src=data["flow_src"],
                flow_dst=data["flow_dst"],
                flow_amount=data["flow_amount"],
                flow_count=data["flow_count"],
                flow_circular=data["flow_circular"],
                weights=weights,
            )


# --- building blocks (pure functions on arrays; the tests use them on hand-built data) ------


def identifier_weights(degree: IntArray, kind_weight: FloatArray, max_degree: int) -> FloatArray:
    """Pair weight of each identifier: ``kind_weight / (degree - 1)``, zero outside
    ``2 <= degree <= max_degree``.

    Example:
        >>> identifier_weights(np.array([3, 40, 1]), np.array([1.0, 1.0, 1.0]), 64).round(4)
        array([0.5   , 0.0256, 0.    ])
    """
    weight = np.zeros(degree.size, dtype=np.float64)
    shared = (degree >= 2) & (degree <= max_degree)
    weight[shared] = kind_weight[shared] / (degree[shared] - 1)
    return weight


def identifier_pair_weights(incidence: sp.csr_matrix, weight: FloatArray) -> sp.csr_matrix:
    """``B · diag(w) · Bᵀ`` without the diagonal: customer pairs weighted by what they share."""
    keep = np.flatnonzero(weight > 0)
    b = sp.csr_matrix(incidence[:, keep], dtype=np.float64)
    pairs = sp.csr_matrix(b @ sp.diags(weight[keep]) @ b.T)
    pairs.setdiag(0.0)
    pairs.eliminate_zeros()
    return pairs


def strongly_connected_edges(src: IntArray, dst: IntArray, n: int) -> BoolArray:
    """Which directed edges lie on a directed cycle: both ends in one strongly connected
    component of size ≥ 2 (a reciprocal pair is the shortest such cycle)."""
    if src.size == 0:
        return np.zeros(0, dtype=np.bool_)
    graph = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    _, label = connected_components(graph, directed=True, connection="strong")
    size = np.bincount(label, minlength=n)
    inside: BoolArray = (label[src] == label[dst]) & (size[label[src]] >= 2) & (src != dst)
    return inside


def flow_weights(
    amount: FloatArray,
    count: FloatArray,
    circular: BoolArray,
    weights: FraudGraphWeights,
    amount_scale: float,
) -> FloatArray:
    """Weight of each owner-level flow (see `FraudGraphWeights`)."""
    repeat = 2.0 * count / (count + 1.0)
    base = weights.flow * amount / (amount + amount_scale) * repeat
    result: FloatArray = base + weights.circular_flow * circular
    return result


def heavy_flow_threshold(amount: FloatArray, n_customers: int, per_customer: float) -> float:
    """The smallest amount of a heavy flow: at most ``per_customer · n`` flows are heavy."""
    keep = int(per_customer * n_customers)
    if amount.size <= keep:
        return 0.0
    if keep <= 0:
        return float("inf")
    return float(np.partition(amount, amount.size - keep)[amount.size - keep])


def _aggregate_pairs(
    src: IntArray, dst: IntArray, amount: FloatArray, count: FloatArray, n: int
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Sum amount and count per ordered (src, dst) pair."""
    key = src * n + dst
    pairs, inverse = np.unique(key, return_inverse=True)
    summed_amount = np.bincount(inverse, weights=amount, minlength=pairs.size)
    summed_count = np.bincount(inverse, weights=count, minlength=pairs.size)
    pairs = pairs.astype(np.int64)
    return pairs // n, pairs % n, summed_amount.astype(np.float64), summed_count.astype(np.float64)


def _symmetric(src: IntArray, dst: IntArray, weight: FloatArray, n: int) -> sp.csr_matrix:
    keep = src != dst
    src, dst, weight = src[keep], dst[keep], weight[keep]
    matrix = sp.csr_matrix(
        (
            np.concatenate([weight, weight]),
            (np.concatenate([src, dst]), np.concatenate([dst, src])),
        ),
        shape=(n, n),
    )
    matrix.sum_duplicates()
    return matrix


# --- building from a store -----------------------------------------------------------------

_REL_TYPES = (
    RelType.USES_DEVICE,
    RelType.GUARANTEES,
    RelType.OWNS_ACCOUNT,
    RelType.TRANSFERRED,
    RelType.BORROWED,
)
_REL_PROPS: dict[RelType, list[str]] = {
    RelType.USES_DEVICE: [],
    RelType.GUARANTEES: ["amount"],
    RelType.OWNS_ACCOUNT: [],
    RelType.TRANSFERRED: ["count", "total_amount"],
    RelType.BORROWED: [],
}


def _party_table(store: GraphStore, label: Label, columns: Iterable[str]) -> pa.Table:
    wanted = ["nid", *columns]
    parts = [
        batch.select([c for c in wanted if c in batch.column_names])
        for batch in store.node_batches(label)
    ]
    if not parts:
        return pa.table(
            {c: pa.array([], pa.int64() if c == "nid" else pa.string()) for c in wanted}
        )
    table = pa.concat_tables(parts)
    for c in wanted:
        if c not in table.column_names:
            table = table.append_column(c, pa.nulls(table.num_rows, pa.string()))
    return table.select(wanted)


def build_fraud_graph(
    store: GraphStore,
    weights: FraudGraphWeights | None = None,
    *,
    projection: Projection | None = None,
    progress: Callable[[str], None] | None = None,
) -> FraudGraph:
    """Build the fraud graph of every party in the store.

    Args:
        store: any `GraphStore`.
        weights: edge weights; the defaults are documented on `FraudGraphWeights`.
        projection: a projection holding at least USES_DEVICE, GUARANTEES, OWNS_ACCOUNT,
            TRANSFERRED (count, total_amount) and BORROWED; built when None.
        progress: called with the name of each stage as it starts.

    Returns:
        The graph with its evidence tables.

    Example:
        >>> graph = build_fraud_graph(store)  # doctest: +SKIP
        >>> graph.adjacency.shape[0] == store.count_nodes(Label.PERSON) + store.count_nodes(
        ...     Label.COMPANY)
        True
    """
    weights = weights or FraudGraphWeights()
    started = time.perf_counter()
    stages: dict[str, float] = {}

    def stage(name: str) -> None:
        stages[name] = time.perf_counter()
        if progress is not None:
            progress(name)

    stage("projection")
    if projection is None:
        projection = Projection.from_store(store, _REL_TYPES, props=dict(_REL_PROPS))
    party = projection.label_mask(Label.PERSON) | projection.label_mask(Label.COMPANY)
    customer_pos = np.flatnonzero(party).astype(np.int64)
    n = int(customer_pos.size)
    # Projection position -> customer index (-1 for accounts, loans, devices).
    index_of_pos = np.full(projection.num_nodes, -1, dtype=np.int64)
    index_of_pos[customer_pos] = np.arange(n, dtype=np.int64)

    stage("identifiers")
    region = np.full(n, "", dtype=object)
    inc_rows: list[IntArray] = []
    inc_cols: list[IntArray] = []
    id_kind: list[npt.NDArray[np.int8]] = []
    id_value: list[npt.NDArray[np.object_]] = []
    offset = 0
    tables = {
        label: _party_table(store, label, ["region_code", "phone", "address_norm", "id_number"])
        for label in (Label.PERSON, Label.COMPANY)
    }
    properties = pa.concat_tables(list(tables.values()))
    prop_index = index_of_pos[projection.positions_of_nids(properties.column("nid").to_numpy())]
    region[prop_index] = (
        properties.column("region_code").fill_null("").to_numpy(zero_copy_only=False)
    )
    for kind, column in (
        ("phone", "phone"),
        ("address", "address_norm"),
        ("id_number", "id_number"),
    ):
        values = properties.column(column)
        present = pc.invert(pc.or_(pc.is_null(values), pc.equal(values, ""))).fill_null(False)
        present_np = present.to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(values.filter(present)).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        inc_rows.append(prop_index[present_np])
        inc_cols.append(codes + offset)
        dictionary = encoded.dictionary.to_numpy(zero_copy_only=False)
        id_kind.append(np.full(dictionary.size, IDENTIFIER_KINDS.index(kind), dtype=np.int8))
        id_value.append(dictionary.astype(object))
        offset += int(dictionary.size)
    devices = projection.relations[RelType.USES_DEVICE.value]
    dev_owner = index_of_pos[devices.sources()]
    dev_pos = devices.indices
    device_positions, dev_code = np.unique(dev_pos, return_inverse=True)
    inc_rows.append(dev_owner)
    inc_cols.append(dev_code.astype(np.int64) + offset)
    id_kind.append(np.full(device_positions.size, IDENTIFIER_KINDS.index("device"), np.int8))
    id_value.append(projection.ids[device_positions].astype(object))
    offset += int(device_positions.size)

    rows_all = np.concatenate(inc_rows)
    cols_all = np.concatenate(inc_cols)
    valid = rows_all >= 0
    incidence = sp.csr_matrix(
        (np.ones(int(valid.sum())), (rows_all[valid], cols_all[valid])), shape=(n, offset)
    )
    incidence.data[:] = 1.0  # one customer listing an identifier twice uses it once
    degree = np.asarray(incidence.sum(axis=0)).ravel().astype(np.int64)
    kinds = np.concatenate(id_kind)
    shared = np.flatnonzero(degree >= 2)
    incidence = sp.csr_matrix(incidence[:, shared])
    kinds, values, degree = kinds[shared], np.concatenate(id_value)[shared], degree[shared]
    pair_weight = identifier_weights(
        degree, weights.kind_weights()[kinds], weights.max_identifier_degree
    )
    adjacency = identifier_pair_weights(incidence, pair_weight)

    stage("guarantees")
    guar = projection.relations[RelType.GUARANTEES.value]
    g_src = index_of_pos[guar.sources()]
    g_dst = index_of_pos[guar.indices]
    g_amount = np.nan_to_num(guar.props.get("amount", np.zeros(guar.num_edges)))
    ok = (g_src >= 0) & (g_dst >= 0) & (g_src != g_dst)
    g_src, g_dst, g_amount = g_src[ok], g_dst[ok], g_amount[ok]
    g_circle = strongly_connected_edges(g_src, g_dst, n)
    adjacency = adjacency + _symmetric(
        g_src,
        g_dst,
        (weights.guarantee + weights.guarantee_circle * g_circle).astype(np.float64),
        n,
    )

    stage("flows")
    owner_of_pos = np.full(projection.num_nodes, -1, dtype=np.int64)
    owns = projection.relations[RelType.OWNS_ACCOUNT.value]
    owner_of_pos[owns.indices] = index_of_pos[owns.sources()]
    transfers = projection.relations[RelType.TRANSFERRED.value]
    f_src = owner_of_pos[transfers.sources()]
    f_dst = owner_of_pos[transfers.indices]
    ok = (f_src >= 0) & (f_dst >= 0) & (f_src != f_dst)
    amount_col = np.nan_to_num(transfers.props.get("total_amount", np.ones(transfers.num_edges)))
    count_col = np.nan_to_num(transfers.props.get("count", np.ones(transfers.num_edges)))
    fs, fd, fa, fc = _aggregate_pairs(f_src[ok], f_dst[ok], amount_col[ok], count_col[ok], n)
    heavy_min = heavy_flow_threshold(fa, n, weights.heavy_flows_per_customer)
    heavy = fa >= heavy_min if fa.size else np.zeros(0, dtype=np.bool_)
    circular = np.zeros(fa.size, dtype=np.bool_)
    circular[heavy] = strongly_connected_edges(fs[heavy], fd[heavy], n)
    amount_scale = weights.flow_amount_scale * (float(np.median(fa)) if fa.size else 1.0)
    # Only heavy flows become edges: everyday payments would tie every customer to ~20
    # random others, burying the rings in noise and multiplying the edges tenfold.
    adjacency = adjacency + _symmetric(
        fs[heavy],
        fd[heavy],
        flow_weights(fa[heavy], fc[heavy], circular[heavy], weights, amount_scale),
        n,
    )
    adjacency = sp.csr_matrix(adjacency, dtype=np.float64)
    adjacency.setdiag(0.0)
    adjacency.eliminate_zeros()
    adjacency.sort_indices()

    stage("loans")
    loan_nids, loan_class = [], []
    for batch in store.node_batches(Label.LOAN):
        loan_nids.append(batch.column("nid").to_numpy())
        cls = batch.column("classification").fill_null("")
        loan_class.append(
            pc.is_in(cls, pa.array(sorted(NON_PERFORMING))).to_numpy(zero_copy_only=False)
        )
    bad_by_pos = np.zeros(projection.num_nodes, dtype=np.bool_)
    if loan_nids:
        bad_by_pos[projection.positions_of_nids(np.concatenate(loan_nids))] = np.concatenate(
            loan_class
        )
    borrowed = projection.relations[RelType.BORROWED.value]
    borrower = index_of_pos[borrowed.sources()]
    ok = borrower >= 0
    loans = np.bincount(borrower[ok], minlength=n).astype(np.int64)
    bad_loans = np.bincount(
        borrower[ok], weights=bad_by_pos[borrowed.indices[ok]], minlength=n
    ).astype(np.int64)

    stages["done"] = time.perf_counter()
    names = list(stages)
    stage_seconds = {
        names[i]: stages[names[i + 1]] - stages[names[i]] for i in range(len(names) - 1)
    }
    return FraudGraph(
        nids=projection.nids[customer_pos],
        ids=projection.ids[customer_pos].astype(np.str_),
        is_company=projection.labels[customer_pos] == LABEL_CODES[Label.COMPANY],
        region=region.astype(np.str_),
        loans=loans,
        bad_loans=bad_loans,
        adjacency=adjacency,
        incidence=incidence,
        identifier_kind=kinds.astype(np.int8),
        identifier_value=values.astype(np.str_),
        identifier_degree=degree,
        guarantee_src=g_src,
        guarantee_dst=g_dst,
        guarantee_amount=g_amount.astype(np.float64),
        guarantee_in_circle=g_circle,
        flow_src=fs[heavy],
        flow_dst=fd[heavy],
        flow_amount=fa[heavy].astype(np.float64),
        flow_count=fc[heavy].astype(np.float64),
        flow_circular=circular[heavy],
        weights=weights,
        build_seconds=time.perf_counter() - started,
        stage_seconds=stage_seconds,
    )
