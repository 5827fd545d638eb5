"""TRANSFERRED edges of the SQLite store as compressed blocks (schema 6).

TRANSFERRED is derived data: one edge per account pair, aggregated from every stored
transaction and rebuilt as a whole by `rebuild_transfers`, never upserted row by row. Ten
million pairs as B-tree rows, with an index on `dst`, were the largest part of a bulk load; as
blocks they are a few thousand SQLite rows.

Each edge is kept once, in the `out` blocks: sorted by (src, dst), they serve `out` reads and
whole-table streams. The `in` blocks are an index: the (dst, src) pairs sorted by dst, so an
`in` read finds the sources of a node and reads each edge from its source's `out` block. A
block holds the rows of a run of nids of its sorted end, and all rows of one nid live in one
block, so the block of a nid is the last one starting at or before it. A block is stored as
LZ4-compressed Arrow IPC streams: an `out` block as `NUMBER_COLUMNS` (`body`) and
`TIME_COLUMNS` (`times`) apart, so a projection, which reads counts and amounts, never reads
the timestamp text that makes up most of the bytes; an `in` block as (dst, src). `key` is
always empty for an aggregate and is not stored, nor is the last timestamp of a pair of one
transaction (it is the first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

OUT, IN = 0, 1
# Target rows of a block: a point read decodes one block. A nid with more edges than this gets
# a block of its own; otherwise a block holds fewer than twice this.
BLOCK_ROWS = 4096
NUMBER_COLUMNS = ("src", "dst", "count", "total_amount")
TIME_COLUMNS = ("first_ts", "last_ts")
COLUMNS = NUMBER_COLUMNS + TIME_COLUMNS
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
# Blocks compressed ahead of the one being written.
_AHEAD = 8


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


def decode(body: bytes, times: bytes | None = None) -> pa.Table:
    """A block's table: its `body` columns, then the `TIME_COLUMNS` when `times` is given."""
    table = _read(body)
    if times is not None:
        first, last = _read(times).columns
        last = pc.if_else(pc.greater(table.column("count"), 1), last, first)
        table = table.append_column("first_ts", first).append_column("last_ts", last)
    return table


def _read(stream: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(stream)) as reader:
        return reader.read_all()


def blocks(edges: pa.Table) -> Iterator[tuple[int, int, int, bytes, bytes | None]]:
    """(direction, first nid, rows, body, times) of every block of `edges`: the `COLUMNS` of
    the aggregated transfers, sorted by (src, dst); `out` blocks first, then `in` blocks
    (which have no times).

    Blocks are compressed on two threads (LZ4 releases the GIL), a few ahead of the caller,
    and the `in` order is sorted beside the `out` blocks.
    """
    numbers = edges.select(list(NUMBER_COLUMNS))
    several = pc.greater(edges.column("count"), 1)
    last = edges.column("last_ts")
    times = pa.table(
        {
            "first_ts": edges.column("first_ts"),
            "last_ts": pc.if_else(several, last, pa.scalar(None, last.type)),
        }
    )
    src = edges.column("src").to_numpy()
    dst = edges.column("dst").to_numpy()

    def out_block(span: tuple[int, int]) -> tuple[int, int, int, bytes, bytes | None]:
        start, rows = span[0], span[1] - span[0]
        body, text = encode(numbers.slice(start, rows)), encode(times.slice(start, rows))
        return OUT, int(src[start]), rows, body, text

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="riskgraph-blocks") as pool:
        in_order = pool.submit(pair_order, dst, src, stable=False)  # one edge per pair
        yield from _ahead(pool, out_block, _spans(block_starts(src, BLOCK_ROWS), src.size))
        order = in_order.result()
        by_dst, by_src = dst[order], src[order]

        def in_block(span: tuple[int, int]) -> tuple[int, int, int, bytes, bytes | None]:
            start, stop = span
            part = pa.table({"dst": by_dst[start:stop], "src": by_src[start:stop]})
            return IN, int(by_dst[start]), stop - start, encode(part), None

        yield from _ahead(pool, in_block, _spans(block_starts(by_dst, BLOCK_ROWS), src.size))


_T = TypeVar("_T")
_R = TypeVar("_R")


def _ahead(pool: ThreadPoolExecutor, work: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
    """`work` of each item, in order, computed on the pool at most `_AHEAD` items ahead of
    the caller (so the blocks waiting to be written stay few)."""
    pending: deque[Future[_R]] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) >= _AHEAD:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def pair_order(
    major: npt.NDArray[np.int64], minor: npt.NDArray[np.int64], *, stable: bool = True
) -> npt.NDArray[np.intp]:
    """The order of rows by (major, minor): one int64 key when both fit in 31 bits (several
    times faster than `np.lexsort`). Rows of one pair keep their order when `stable`; a
    caller whose pairs are distinct passes False (twice as fast)."""
    if major.size == 0 or min(major.min(), minor.min()) < 0:
        return np.lexsort((minor, major))
    if max(int(major.max()), int(minor.max())) >= 2**31:
        return np.lexsort((minor, major))
    return _argsort((major << 32) | minor, "stable" if stable else "quicksort")


# Keys sorted in two halves on two threads from this many on (numpy sorts without the GIL).
_PARALLEL_SORT = 1 << 20


def _argsort(keys: npt.NDArray[np.int64], kind: Any) -> npt.NDArray[np.intp]:
    """`np.argsort(keys, kind=kind)`; a large array is split at a sampled median key and
    the rows below it and the rest are sorted on two threads (each half keeps its rows'
    order, so a stable sort stays stable)."""
    if keys.size < _PARALLEL_SORT:
        return np.argsort(keys, kind=kind)
    sample = np.sort(keys[:: max(1, keys.size // 4096)])
    low = keys < sample[sample.size // 2]
    halves = [np.flatnonzero(low), np.flatnonzero(~low)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        sorted_halves = pool.map(lambda rows: rows[np.argsort(keys[rows], kind=kind)], halves)
        return np.concatenate(list(sorted_halves))


def _spans(starts: npt.NDArray[np.intp], total: int) -> Iterator[tuple[int, int]]:
    return pairwise([*starts.tolist(), total])


def rows_of(block: pa.Table, direction: int, nid: int) -> pa.Table:
    """The rows of `nid` in a decoded block of `direction` (empty when it has none): its
    edges in an `out` block, its (dst, src) pairs in an `in` block."""
    keys = block.column("src" if direction == OUT else "dst").to_numpy()
    lo, hi = np.searchsorted(keys, [nid, nid + 1])
    return block.slice(int(lo), int(hi - lo))
