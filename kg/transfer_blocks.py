"""TRANSFERRED edges of the SQLite store as compressed blocks (schema 6).

TRANSFERRED is derived data: one edge per account pair, aggregated from every stored
transaction and rebuilt as a whole by `rebuild_transfers`, never upserted row by row. Ten
million pairs as B-tree rows, with an index on `dst`, were the largest part of a bulk load; as
blocks they are a few thousand SQLite rows.

The edges are kept twice: sorted by (src, dst) for `out` reads and whole-table streams, and by
(dst, src) for `in` reads. A block holds the edges of a run of nids of its sorted end, and all
edges of one nid live in one block, so the block of a nid is the last one starting at or
before it. A block's body is one LZ4-compressed Arrow IPC stream of `COLUMNS` (`key` is always
empty for an aggregate and is not stored).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pyarrow as pa

OUT, IN = 0, 1
# Target rows of a block: a point read decodes one block. A nid with more edges than this gets
# a block of its own; otherwise a block holds fewer than twice this.
BLOCK_ROWS = 4096
COLUMNS = ("src", "dst", "count", "total_amount", "first_ts", "last_ts")
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def block_starts(keys: npt.NDArray[np.int64], block_rows: int) -> npt.NDArray[np.intp]:
    """Row positions where blocks begin, for sorted `keys`: the first row of the first key
    that starts in each window of `block_rows` rows (a key never spans two blocks)."""
    if keys.size == 0:
        return np.empty(0, np.intp)
    runs = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return runs[np.unique(runs // block_rows, return_index=True)[1]]


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode(body: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    """A block's table, with only `columns` decoded (all of `COLUMNS` when None)."""
    options = None
    if columns is not None:
        options = pa.ipc.IpcReadOptions(included_fields=sorted(COLUMNS.index(c) for c in columns))
    with pa.ipc.open_stream(pa.py_buffer(body), options=options) as reader:
        table = reader.read_all()
    return table if columns is None else table.select(list(columns))


def blocks(edges: pa.Table) -> Iterator[tuple[int, int, int, bytes]]:
    """(direction, first nid, rows, body) of every block of `edges`: the `COLUMNS` of the
    aggregated transfers, sorted by (src, dst); `out` blocks first, then `in` blocks."""
    edges = edges.select(list(COLUMNS))
    src = edges.column("src").to_numpy()
    for start, stop in _spans(block_starts(src, BLOCK_ROWS), src.size):
        yield OUT, int(src[start]), stop - start, encode(edges.slice(start, stop - start))
    dst = edges.column("dst").to_numpy()
    order = np.lexsort((src, dst))
    by_dst = dst[order]
    for start, stop in _spans(block_starts(by_dst, BLOCK_ROWS), src.size):
        part = edges.take(pa.array(order[start:stop]))
        yield IN, int(by_dst[start]), stop - start, encode(part)


def _spans(starts: npt.NDArray[np.intp], total: int) -> Iterator[tuple[int, int]]:
    return pairwise([*starts.tolist(), total])


def rows_of(block: pa.Table, direction: int, nid: int) -> pa.Table:
    """The edges of `nid` in a decoded block of `direction` (empty when it has none)."""
    keys = block.column("src" if direction == OUT else "dst").to_numpy()
    lo, hi = np.searchsorted(keys, [nid, nid + 1])
    return block.slice(int(lo), int(hi - lo))
