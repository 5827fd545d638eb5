"""Node ids by label, looked up a whole column at a time.

The SQLite store keeps one during a bulk load to turn edge ends into nids without a B-tree
probe per row, and lends it to the ingest job, which checks every reference against it before
the store writes the reference (so the store's look-up of the same column is remembered, not
done again). An ingest job into a store that keeps none keeps its own.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from kg.fingerprints import FingerprintTable, string_fingerprints
from kg.model import Label

LABELS: tuple[Label, ...] = tuple(Label)
ALL_LABELS: frozenset[Label] = frozenset(LABELS)
UNKNOWN = -1
_LABEL_NAMES = pa.array([label.value for label in LABELS], pa.string())

_Joined = tuple[pa.Array, npt.NDArray[np.int64], npt.NDArray[np.int8]]
# A look-up: its labels and values, then the codes and payloads found.
_Remembered = tuple[frozenset[Label], pa.ChunkedArray, npt.NDArray[np.int8], npt.NDArray[np.int64]]


class NodeIdIndex:
    """Node ids as Arrow chunks per label, each id with an integer payload (a store's nid,
    or -1 when the holder needs none).

    Each label keeps a hash table of its ids' fingerprints (`FingerprintTable`) for as long as
    the index lives, and a column is probed against the tables of the labels it may name, a
    label at a time, in `LABELS` order, with the strings of every hit compared. A hash join
    (`pc.index_in`) would hash every id of those labels again on each look-up: at a million
    customers, 1.56M accounts for each batch of a million transactions. Chunks are only ever
    appended (never rebuilt). An index shared by two users (a store's, lent to the ingest
    job) remembers its last `remembered` look-ups.

    Example:
        >>> index = NodeIdIndex()
        >>> index.add(Label.PERSON, pa.array(["p1", "p2"]), np.array([7, 8]))
        >>> codes, nids = index.lookup(pa.array(["p2", "x"]), frozenset({Label.PERSON}))
        >>> codes.tolist(), nids.tolist()
        ([0, -1], [8, -1])
    """

    def __init__(self, *, remembered: int = 0) -> None:
        self._ids: dict[Label, list[pa.Array]] = {label: [] for label in LABELS}
        self._nids: dict[Label, list[npt.NDArray[np.int64]]] = {label: [] for label in LABELS}
        self._joined: dict[frozenset[Label], _Joined] = {}
        self._tables: dict[Label, FingerprintTable] = {}
        self._recent: deque[_Remembered] = deque(maxlen=remembered)

    @classmethod
    def of(cls, nodes: pa.Table, *, remembered: int = 0) -> NodeIdIndex:
        """From columns `nid`, `id`, `label` (plain or dictionary-encoded)."""
        index = cls(remembered=remembered)
        labels = nodes.column("label").cast(pa.string())
        for label in LABELS:
            part = nodes.filter(pc.equal(labels, label.value))
            ids = part.column("id").combine_chunks().cast(pa.string())
            index.add(label, ids, part.column("nid").to_numpy())
        return index

    def add(self, label: Label, ids: pa.Array, nids: npt.NDArray[np.int64] | None = None) -> None:
        """Ids now known as nodes of `label`. An id added twice is harmless: a look-up finds
        its first entry."""
        if len(ids):
            table = self._tables.get(label)
            if table is not None:
                start = sum(len(chunk) for chunk in self._ids[label])
                table.add(_fingerprints(ids), np.arange(start, start + len(ids)))
            self._ids[label].append(ids)
            self._nids[label].append(
                np.full(len(ids), UNKNOWN, np.int64) if nids is None else np.asarray(nids, np.int64)
            )
            self._joined = {k: v for k, v in self._joined.items() if label not in k}
            kept = (r for r in self._recent if label not in r[0])
            self._recent = deque(kept, self._recent.maxlen)

    def remember(
        self,
        labels: frozenset[Label],
        values: pa.Array | pa.ChunkedArray,
        codes: npt.NDArray[np.int8],
        payloads: npt.NDArray[np.int64],
    ) -> None:
        """Take `codes` and `payloads` as the look-up of `values` among `labels`, from a
        caller that knows them (a store that has just written those nodes)."""
        if self._recent.maxlen:
            chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
            self._recent.append((labels, chunked, codes.copy(), payloads.copy()))

    def forget(self) -> None:
        """Drop the remembered look-ups (and the columns they keep alive) and the hash tables
        (built again by the next look-up)."""
        self._recent.clear()
        self._tables.clear()
        self._joined.clear()

    def _join(self, labels: frozenset[Label]) -> _Joined:
        if labels not in self._joined:
            chosen = [label for label in LABELS if label in labels]
            ids = [a for label in chosen for a in self._ids[label]]
            nids = [a for label in chosen for a in self._nids[label]]
            codes = [
                np.full(len(a), LABELS.index(label), np.int8)
                for label in chosen
                for a in self._ids[label]
            ]
            self._joined[labels] = (
                pa.concat_arrays(ids) if ids else pa.array([], pa.string()),
                np.concatenate(nids) if nids else np.empty(0, np.int64),
                np.concatenate(codes) if codes else np.empty(0, np.int8),
            )
        return self._joined[labels]

    def lookup(
        self, values: pa.Array | pa.ChunkedArray, labels: frozenset[Label] = ALL_LABELS
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        """The label code (index in `LABELS`) and payload of each value among the ids of
        `labels`; UNKNOWN for both where it is none of them.

        With `remembered` look-ups kept, a column looked up again with the same values (an
        ingest job checks a column, then the store looks it up to write it) costs a
        comparison, not another hash join.
        """
        chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
        for labels_then, values_then, codes_then, nids_then in self._recent:
            same = labels_then == labels and len(values_then) == len(chunked)
            if same and values_then.type == chunked.type and values_then.equals(chunked):
                return codes_then.copy(), nids_then.copy()
        flat = chunked.combine_chunks().cast(pa.string())
        prints = _fingerprints(flat)
        result = (np.full(len(flat), UNKNOWN, np.int8), np.full(len(flat), UNKNOWN, np.int64))
        # The rows not found yet: None for all of them (most look-ups find most values in
        # their first label, and whole arrays cost no gather).
        todo = None
        if flat.null_count:
            todo = np.flatnonzero(np.asarray(flat.is_valid().to_numpy(zero_copy_only=False)))
        for code, label in enumerate(LABELS):
            if label not in labels or not self._ids[label]:
                continue
            ids, nids, _ = self._join(frozenset({label}))
            rows = np.arange(len(flat)) if todo is None else todo
            at = _find(
                self._table(label), prints if todo is None else prints[todo], flat, rows, ids
            )
            hit = at != UNKNOWN
            if todo is None:
                result = (
                    np.where(hit, code, UNKNOWN).astype(np.int8),
                    np.where(hit, nids[at], UNKNOWN),
                )
            else:
                result[0][todo[hit]] = code
                result[1][todo[hit]] = nids[at[hit]]
            todo = rows[~hit]
            if not todo.size:
                break
        if not self._recent.maxlen:
            return result
        self._recent.append((labels, chunked, *result))
        return result[0].copy(), result[1].copy()

    def _table(self, label: Label) -> FingerprintTable:
        table = self._tables.get(label)
        if table is None:
            ids = self._join(frozenset({label}))[0]
            table = self._tables[label] = FingerprintTable()
            table.add(_fingerprints(ids), np.arange(len(ids)))
        return table

    def table(self) -> pa.Table:
        """Columns `nid` (ascending), `id`, `label` of every id."""
        ids, nids, codes = self._join(ALL_LABELS)
        order = pa.array(np.argsort(nids, kind="stable"))
        return pa.table(
            {
                "nid": pa.array(nids).take(order),
                "id": ids.take(order),
                "label": _LABEL_NAMES.take(pa.array(codes).take(order)),
            }
        )


def _fingerprints(ids: pa.Array) -> npt.NDArray[np.int64]:
    return string_fingerprints(ids.cast(pa.string()))


def _find(
    table: FingerprintTable,
    prints: npt.NDArray[np.int64],
    values: pa.Array,
    rows: npt.NDArray[np.int64],
    ids: pa.Array,
) -> npt.NDArray[np.int64]:
    """The position in `ids` of `values` at `rows` (their fingerprints `prints`), or UNKNOWN:
    a fingerprint's hit counts once the strings are equal; a value whose fingerprint belongs
    to another id (a clash, about one in 2^64 pairs) is looked for with a hash join."""
    at = table.find(prints)
    hit = np.flatnonzero(at != UNKNOWN)
    if not hit.size:
        return at
    wanted = values if hit.size == len(values) else values.take(pa.array(rows[hit]))
    same = pc.equal(wanted, ids.take(pa.array(at[hit])))
    clashed = hit[~np.asarray(same.to_numpy(zero_copy_only=False), bool)]
    if clashed.size:
        found = pc.index_in(values.take(pa.array(rows[clashed])), value_set=ids)
        at[clashed] = np.asarray(pc.fill_null(found, UNKNOWN).to_numpy(zero_copy_only=False))
    return at
