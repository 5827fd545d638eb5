"""The in-memory projection: integer node positions and CSR arrays per relationship type.

Analytics never run row by row against a store. Like a Neo4j GDS projection, this streams
the nodes and the chosen relationship types once, maps store nids to dense positions
0..n-1, and keeps one compressed-sparse-row structure per type (with the chosen edge
properties as arrays aligned with `indices`). `igraph()` and `csr_matrix()` give views for
library algorithms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import igraph as ig
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from numpy.typing import NDArray

from kg.model import REL_SCHEMAS, Label, RelType
from kg.store import GraphStore, edge_columns, node_columns

LABEL_CODES: dict[Label, int] = {label: code for code, label in enumerate(Label)}


@dataclass(slots=True)
class RelationCSR:
    """Edges of one type by source position.

    The targets of node i are `indices[indptr[i]:indptr[i+1]]`.
    """

    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    props: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    @property
    def num_edges(self) -> int:
        return int(self.indices.size)

    def sources(self) -> NDArray[np.int64]:
        """The source position of every edge, aligned with `indices`."""
        counts = np.diff(self.indptr)
        return np.repeat(np.arange(counts.size, dtype=np.int64), counts)

    def neighbours(self, position: int) -> NDArray[np.int64]:
        return self.indices[self.indptr[position] : self.indptr[position + 1]]


@dataclass(slots=True)
class Projection:
    nids: NDArray[np.int64]
    ids: NDArray[np.object_]
    labels: NDArray[np.int8]
    relations: dict[str, RelationCSR]
    build_seconds: float = 0.0
    _position_by_id: dict[str, int] | None = None
    _position_by_nid: NDArray[np.int64] | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.nids.size)

    @property
    def num_edges(self) -> int:
        return sum(r.num_edges for r in self.relations.values())

    def positions_of_nids(self, nids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Dense positions of store nids (all must be in the projection)."""
        if nids.size == 0:
            return np.empty(0, np.int64)
        lookup = self._nid_lookup()
        if lookup is None:  # nids too sparse for a direct table: binary search
            positions = np.searchsorted(self.nids, nids)
            if positions.max(initial=0) >= self.nids.size or not np.array_equal(
                self.nids[positions], nids
            ):
                raise KeyError("nid not in projection")
            return positions.astype(np.int64)
        if nids.min() < 0 or nids.max() >= lookup.size:
            raise KeyError("nid not in projection")
        positions = lookup[nids]
        if positions.min() < 0:
            raise KeyError("nid not in projection")
        return positions

    def _nid_lookup(self) -> NDArray[np.int64] | None:
        """Position by nid as a direct table (one gather per edge, no search), when the nids
        are dense enough for it to stay within a few times the node count."""
        if self._position_by_nid is None and self.nids.size:
            top = int(self.nids[-1])
            if int(self.nids[0]) >= 0 and top < 4 * self.nids.size + 1024:
                lookup = np.full(top + 1, -1, np.int64)
                lookup[self.nids] = np.arange(self.nids.size, dtype=np.int64)
                self._position_by_nid = lookup
        return self._position_by_nid

    def position(self, entity_id: str) -> int | None:
        if self._position_by_id is None:
            self._position_by_id = {str(v): i for i, v in enumerate(self.ids)}
        return self._position_by_id.get(entity_id)

    def label_mask(self, label: Label) -> NDArray[np.bool_]:
        mask: NDArray[np.bool_] = self.labels == LABEL_CODES[label]
        return mask

    def csr_matrix(
        self, relations: Sequence[str], weight: str | None = None, symmetric: bool = False
    ) -> sp.csr_matrix:
        """An n×n sparse matrix of the given relations (summed), optionally symmetrised."""
        rows, cols, vals = [], [], []
        for name in relations:
            rel = self.relations[name]
            rows.append(rel.sources())
            cols.append(rel.indices)
            if weight is not None and weight in rel.props:
                vals.append(np.nan_to_num(rel.props[weight]))
            else:
                vals.append(np.ones(rel.num_edges))
        n = self.num_nodes
        row = np.concatenate(rows) if rows else np.empty(0, np.int64)
        col = np.concatenate(cols) if cols else np.empty(0, np.int64)
        val = np.concatenate(vals) if vals else np.empty(0)
        matrix = sp.csr_matrix((val, (row, col)), shape=(n, n))
        if symmetric:
            matrix = (matrix + matrix.T).tocsr()
        return matrix

    def igraph(
        self, relations: Sequence[str], *, directed: bool = True, weight: str | None = None
    ) -> ig.Graph:
        """An igraph view on all projected nodes and the given relations."""
        sources, targets, weights = [], [], []
        for name in relations:
            rel = self.relations[name]
            sources.append(rel.sources())
            targets.append(rel.indices)
            if weight is not None:
                weights.append(np.nan_to_num(rel.props.get(weight, np.ones(rel.num_edges))))
        src = np.concatenate(sources) if sources else np.empty(0, np.int64)
        dst = np.concatenate(targets) if targets else np.empty(0, np.int64)
        graph = ig.Graph(n=self.num_nodes, edges=np.column_stack([src, dst]), directed=directed)
        if weight is not None:
            graph.es["weight"] = np.concatenate(weights) if weights else []
        return graph

    @classmethod
    def from_store(
        cls,
        store: GraphStore,
        rel_types: Iterable[RelType] | None = None,
        *,
        inferred: Iterable[str] = (),
        props: dict[RelType, Sequence[str]] | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> Projection:
        """Stream nodes and edges of the chosen types from a store, once.

        Args:
            store: any `GraphStore`.
            rel_types: relationship types to project (all when None).
            inferred: inferred predicates to project as relations named after the predicate
                (their `value` column becomes the `value` property).
            props: numeric edge properties to keep per type (default: all float/int ones).
            progress: called with (what, rows) after each batch.
        """
        started = time.perf_counter()
        nodes = node_columns(store)
        nids = nodes.column("nid").to_numpy().astype(np.int64, copy=False)
        ids = nodes.column("id").to_numpy(zero_copy_only=False)
        labels = _label_codes(nodes.column("label"))
        if nids.size > 1 and not bool((nids[1:] > nids[:-1]).all()):
            order = np.argsort(nids, kind="stable")
            nids, ids, labels = nids[order], ids[order], labels[order]
        projection = cls(nids, ids.astype(object, copy=False), labels, {})
        if progress is not None:
            progress("nodes", projection.num_nodes)

        for rel_type in list(RelType) if rel_types is None else list(rel_types):
            rel_type = RelType(rel_type)
            numeric = [
                name
                for name, kind in REL_SCHEMAS[rel_type].props.items()
                if kind in ("float", "int")
            ]
            wanted = list(props.get(rel_type, numeric)) if props else numeric
            edges = edge_columns(store, rel_type, wanted)
            projection.relations[rel_type.value] = projection._csr(
                projection._column_positions(edges.column("src")),
                projection._column_positions(edges.column("dst")),
                {p: _float_column(edges.column(p)) for p in wanted},
            )
            if progress is not None:
                progress(rel_type.value, edges.num_rows)
        for predicate in inferred:
            batches = store.inferred_batches(predicate)
            projection.relations[predicate] = projection._build(
                batches, ["value"], predicate, progress
            )
        projection.build_seconds = time.perf_counter() - started
        return projection

    def _build(
        self,
        batches: Iterable[pa.Table],
        wanted: list[str],
        name: str,
        progress: Callable[[str, int], None] | None,
    ) -> RelationCSR:
        src_parts, dst_parts = [], []
        prop_parts: dict[str, list[NDArray[np.float64]]] = {p: [] for p in wanted}
        for batch in batches:
            src_parts.append(batch.column("src").to_numpy())
            dst_parts.append(batch.column("dst").to_numpy())
            for p in wanted:
                prop_parts[p].append(_float_column(batch.column(p)))
            if progress is not None:
                progress(name, batch.num_rows)
        return self._csr(
            self.positions_of_nids(
                np.concatenate(src_parts) if src_parts else np.empty(0, np.int64)
            ),
            self.positions_of_nids(
                np.concatenate(dst_parts) if dst_parts else np.empty(0, np.int64)
            ),
            {p: np.concatenate(parts) if parts else np.empty(0) for p, parts in prop_parts.items()},
        )

    def _column_positions(self, column: pa.ChunkedArray) -> NDArray[np.int64]:
        """Positions of a column of nids, chunk by chunk into one array (no concatenated
        copy of the nids)."""
        out = np.empty(len(column), np.int64)
        offset = 0
        for chunk in column.chunks:
            out[offset : offset + len(chunk)] = self.positions_of_nids(chunk.to_numpy())
            offset += len(chunk)
        return out

    def _csr(
        self,
        src: NDArray[np.int64],
        dst: NDArray[np.int64],
        props: dict[str, NDArray[np.float64]],
    ) -> RelationCSR:
        """CSR of edges given by node positions, with vectorised numpy only (no Python per
        edge)."""
        counts = np.bincount(src, minlength=self.num_nodes)
        indptr = np.zeros(self.num_nodes + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        # Stores stream edges by source nid, and positions follow nid order, so the sort is
        # usually already done; the stable sort keeps edge order within a source otherwise.
        if src.size > 1 and not bool((src[1:] >= src[:-1]).all()):
            order = np.argsort(src, kind="stable")
            dst = dst[order]
            props = {p: values[order] for p, values in props.items()}
        return RelationCSR(indptr, dst, props)


def _float_column(column: pa.ChunkedArray | pa.Array) -> NDArray[np.float64]:
    """A numeric column as float64 with NaN for nulls, chunk by chunk into one array."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    values = np.empty(len(column), np.float64)
    offset = 0
    for chunk in chunks:
        part = chunk.cast(pa.float64()).to_numpy(zero_copy_only=False)
        values[offset : offset + len(part)] = part
        offset += len(part)
    return values


def _label_codes(column: pa.ChunkedArray) -> NDArray[np.int8]:
    """`LABEL_CODES` of a label column (strings or dictionary), decoded once per distinct
    label instead of once per node."""
    parts = [np.empty(0, np.int8)]
    for chunk in column.chunks:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        codes = np.array(
            [LABEL_CODES[Label(v)] for v in encoded.dictionary.to_pylist()], dtype=np.int8
        )
        parts.append(codes[encoded.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(parts)
