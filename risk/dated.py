"""As-of views: the ownership graph as it stood on a date, reasoned over with the same rules.

The reasoner materialises the current state only. For a question "as of D" the holdings
recorded on or before D (and every position and kinship) around the entities asked about
are copied into an in-memory store and `reasoning.materialise.materialise` runs on that copy,
so dated answers follow exactly the same control semantics as current ones. Only the
ownership neighbourhood of the entities is copied (see `ownership_view`): a bank's whole
ownership graph is one giant component once kinships join the families.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from kg.model import REL_SCHEMAS, Label, RelType
from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore
from reasoning.materialise import materialise

OWNERSHIP_TYPES = (RelType.HOLDS_SHARES, RelType.HOLDS_POSITION, RelType.RELATIVE_OF)


def _dated(rel_type: RelType, batch: pa.Table, as_of: str) -> pa.Table:
    if rel_type != RelType.HOLDS_SHARES:
        return batch
    keep = pc.fill_null(pc.less_equal(batch.column("as_of"), pa.scalar(as_of)), True)
    return batch.filter(keep)


def _closure(matrix: sp.csr_matrix, start: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Every node reachable from `start` along `matrix` (row → column), start included."""
    reached = start.copy()
    frontier = start.copy()
    while frontier.any():
        step = (matrix.T @ frontier.astype(np.float64)) > 0
        frontier = step & ~reached
        reached |= frontier
    return reached


def _step(matrix: sp.csr_matrix, start: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    return np.asarray((matrix.T @ start.astype(np.float64)) > 0)


def ownership_view(store: GraphStore, as_of: str, entity_ids: Sequence[str]) -> SQLiteStore:
    """An in-memory store with the dated ownership neighbourhood of `entity_ids`, reasoned.

    The neighbourhood: every holder and position holder above the entities (transitively)
    and their close relatives; everything those hold, down the whole tree; and the direct
    holders of all of that with their close relatives (their votes decide control). A group
    that reaches further, through an unrelated second controller of a member, is cut there.

    Args:
        store: the full store.
        as_of: ISO date; holdings with a later `as_of` are left out.
        entity_ids: canonical ids the question is about (all must exist).
    """
    seeds = []
    for entity in entity_ids:
        node = store.get_node(entity)
        if node is None:
            raise KeyError(entity)
        seeds.append(node.nid)
    batches: dict[RelType, list[pa.Table]] = {t: [] for t in OWNERSHIP_TYPES}
    for rel_type in OWNERSHIP_TYPES:
        for batch in store.edge_batches(rel_type):
            batches[rel_type].append(_dated(rel_type, batch, as_of))

    def ends(rel_type: RelType) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        tables = batches[rel_type]
        src = [np.asarray(b.column("src").to_numpy(), np.int64) for b in tables]
        dst = [np.asarray(b.column("dst").to_numpy(), np.int64) for b in tables]
        empty = np.empty(0, np.int64)
        return (np.concatenate(src) if src else empty, np.concatenate(dst) if dst else empty)

    pairs = {t: ends(t) for t in OWNERSHIP_TYPES}
    size = 1 + max([max(seeds), *(int(a.max(initial=0)) for p in pairs.values() for a in p)])

    def matrix(src: npt.NDArray[np.int64], dst: npt.NDArray[np.int64]) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(size, size))

    h_src, h_dst = pairs[RelType.HOLDS_SHARES]
    p_src, p_dst = pairs[RelType.HOLDS_POSITION]
    k_src, k_dst = pairs[RelType.RELATIVE_OF]
    upward = matrix(np.concatenate([h_dst, p_dst]), np.concatenate([h_src, p_src]))
    downward = matrix(h_src, h_dst)
    kin = matrix(np.concatenate([k_src, k_dst]), np.concatenate([k_dst, k_src]))
    start = np.zeros(size, bool)
    start[np.asarray(seeds)] = True
    above = _closure(upward, start)
    above |= _step(kin, above)
    below = _closure(downward, above)
    holders = _step(upward, below)
    holders |= _step(kin, holders)
    component = np.flatnonzero(above | below | holders)
    return _reasoned_copy(store, batches, component)


def _reasoned_copy(
    store: GraphStore, batches: dict[RelType, list[pa.Table]], component: npt.NDArray[np.int64]
) -> SQLiteStore:
    view = SQLiteStore(":memory:")
    nodes = store.get_nodes_by_nid(component.tolist())
    id_of = {n.nid: n.id for n in nodes}
    with view.transaction():
        for label in (Label.PERSON, Label.COMPANY):
            rows = [n for n in nodes if n.label == label]
            if rows:
                view.upsert_nodes(
                    label,
                    pa.table(
                        {
                            "id": [n.id for n in rows],
                            "name": [n.name for n in rows],
                        }
                    ),
                )
        for rel_type, tables in batches.items():
            for batch in tables:
                src = np.asarray(batch.column("src").to_numpy(), np.int64)
                dst = np.asarray(batch.column("dst").to_numpy(), np.int64)
                keep = np.isin(src, component) & np.isin(dst, component)
                part = batch.filter(pa.array(keep))
                if part.num_rows == 0:
                    continue
                columns = {
                    "src": [id_of[int(v)] for v in part.column("src").to_numpy()],
                    "dst": [id_of[int(v)] for v in part.column("dst").to_numpy()],
                    "key": part.column("key"),
                }
                for prop in REL_SCHEMAS[rel_type].props:
                    columns[prop] = part.column(prop)
                view.upsert_edges(rel_type, pa.table(columns))
    materialise(view, ownership=False)
    return view
