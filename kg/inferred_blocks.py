"""Inferred facts of the SQLite store as compressed column blocks (schema 4).

A block holds the facts of one predicate for a run of `src` node ids, sorted by (src, dst);
every fact of one src lives in one block, so the block of a src is the last one starting at
or before it. A block is two zstd-compressed blobs: `keys` (src, dst, rule code, value) that
`inferred_batches` reads alone, and `premises` (the `Premises` records of its facts) that only
`get_inferred` decodes; beside them `srcs`, its distinct srcs as raw int32, tells a point read
whether to decompress anything. Twenty million facts are thus a few tens of thousands of
SQLite rows, and a full materialisation never builds premises JSON: premises become dicts
when read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from kg.store import PremiseKind, Premises, StoreError

IntArray = npt.NDArray[np.int64]
TEXT = pa.large_string()
# Target size of a block: reading one fact decodes its block, so blocks stay small; a src
# with more facts than this gets a block of its own.
BLOCK_ROWS = 1024
BLOCK_RECORDS = 16_384
_CODEC = pa.Codec("zstd", compression_level=1)
# Node ids are stored as int32 (the reasoner's ids are below 2**31 too): a quarter less to
# compress than int64.
_KEY_DTYPES = ("<i4", "<i4", "<i4", "<f8")
_NID_LIMIT = 2**31
_EMPTY_TEXT = pa.array([], TEXT)


@dataclass(slots=True)
class Facts:
    """Rows of one predicate in store codes: sorted by (src, dst) unless said otherwise."""

    src: IntArray
    dst: IntArray
    rule: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    premises: Premises

    def __len__(self) -> int:
        return len(self.src)

    def take(self, rows: IntArray) -> Facts:
        return Facts(
            self.src[rows],
            self.dst[rows],
            self.rule[rows],
            self.value[rows],
            take_premises(self.premises, rows),
        )

    def slice(self, start: int, stop: int) -> Facts:
        """Rows [start, stop) without copying."""
        p = self.premises
        lo, hi = int(p.offsets[start]), int(p.offsets[stop])
        premises = Premises(
            p.offsets[start : stop + 1] - lo,
            p.kind[lo:hi],
            p.name[lo:hi],
            p.rule[lo:hi],
            p.a[lo:hi],
            p.b[lo:hi],
            p.size[lo:hi],
            p.text.slice(lo, hi - lo),
        )
        return Facts(
            self.src[start:stop],
            self.dst[start:stop],
            self.rule[start:stop],
            self.value[start:stop],
            premises,
        )


def empty_premises() -> Premises:
    return Premises(
        np.zeros(1, np.int64),
        np.empty(0, np.int8),
        np.empty(0, np.int32),
        np.empty(0, np.int32),
        np.empty(0, np.int32),
        np.empty(0, np.int32),
        np.empty(0, np.int32),
        _EMPTY_TEXT,
    )


def json_list_premises(texts: pa.Array) -> Premises:
    """One JSON_LIST record per fact: premises handed over as JSON text."""
    n = len(texts)
    return Premises(
        np.arange(n + 1, dtype=np.int64),
        np.full(n, PremiseKind.JSON_LIST, np.int8),
        np.full(n, -1, np.int32),
        np.full(n, -1, np.int32),
        np.zeros(n, np.int32),
        np.zeros(n, np.int32),
        np.ones(n, np.int32),
        texts.cast(TEXT),
    )


def ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """The concatenation of `arange(s, s + n)` for each start and length."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(starts - (ends - lengths), lengths)
    out: IntArray = np.arange(total, dtype=np.int64) + shift
    return out


def take_records(p: Premises, index: IntArray, offsets: IntArray) -> Premises:
    """Records `index` of `p` under new fact `offsets`."""
    text = p.text.take(pa.array(index)) if len(index) else _EMPTY_TEXT
    return Premises(
        offsets,
        p.kind[index],
        p.name[index],
        p.rule[index],
        p.a[index],
        p.b[index],
        p.size[index],
        text,
    )


def take_premises(p: Premises, rows: IntArray) -> Premises:
    """The premises of the given facts, in that order."""
    starts = p.offsets[rows]
    lengths = p.offsets[rows + 1] - starts
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return take_records(p, ranges(starts, lengths), offsets)


def concat_premises(parts: Sequence[Premises]) -> Premises:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return empty_premises()
    counts = np.concatenate([np.diff(p.offsets) for p in parts])
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    texts = [p.text.cast(TEXT) for p in parts if len(p.text)]
    return Premises(
        offsets,
        np.concatenate([p.kind for p in parts]),
        np.concatenate([p.name for p in parts]),
        np.concatenate([p.rule for p in parts]),
        np.concatenate([p.a for p in parts]),
        np.concatenate([p.b for p in parts]),
        np.concatenate([p.size for p in parts]),
        pa.concat_arrays(texts) if texts else _EMPTY_TEXT,
    )


def concat_facts(parts: Sequence[Facts]) -> Facts:
    if len(parts) == 1:
        return parts[0]
    return Facts(
        np.concatenate([f.src for f in parts]),
        np.concatenate([f.dst for f in parts]),
        np.concatenate([f.rule for f in parts]),
        np.concatenate([f.value for f in parts]),
        concat_premises([f.premises for f in parts]),
    )


def packed_keys(src: IntArray, dst: IntArray) -> IntArray:
    """One int64 per (src, dst), in the same order (node ids are below 2**31)."""
    return (src.astype(np.int64) << np.int64(32)) | dst.astype(np.int64)


def last_of_equal_keys(facts: Facts) -> Facts:
    """Sorted facts with only the last of each run of equal keys."""
    n = len(facts)
    if n < 2:
        return facts
    last = np.ones(n, bool)
    last[:-1] = (facts.src[1:] != facts.src[:-1]) | (facts.dst[1:] != facts.dst[:-1])
    return facts if last.all() else facts.take(np.flatnonzero(last))


def is_sorted(facts: Facts) -> bool:
    s, d = facts.src, facts.dst
    return bool(np.all((s[1:] > s[:-1]) | ((s[1:] == s[:-1]) & (d[1:] >= d[:-1]))))


def block_cuts(facts: Facts) -> IntArray:
    """Row positions where blocks start (always 0 first): at src boundaries, about every
    `BLOCK_ROWS` facts or `BLOCK_RECORDS` premise records."""
    n = len(facts)
    if n == 0:
        return np.zeros(0, np.int64)
    runs = np.flatnonzero(np.concatenate([[True], facts.src[1:] != facts.src[:-1]]))
    records = np.diff(facts.premises.offsets)
    weight = 1.0 / BLOCK_ROWS + records / BLOCK_RECORDS
    before = np.concatenate([[0.0], np.cumsum(weight)])[runs]
    bucket = np.floor(before).astype(np.int64)
    keep = np.concatenate([[True], bucket[1:] != bucket[:-1]])
    cuts: IntArray = runs[keep].astype(np.int64)
    return cuts


# --- encoding -------------------------------------------------------------------------------
def _pack(body: bytes) -> bytes:
    packed: bytes = _CODEC.compress(body, asbytes=True)
    return len(body).to_bytes(8, "little") + packed


def _unpack(blob: bytes) -> bytes:
    size = int.from_bytes(blob[:8], "little")
    out: bytes = _CODEC.decompress(blob[8:], size, asbytes=True)
    return out


def _nids(values: IntArray) -> IntArray:
    if len(values) and (int(values.min()) < 0 or int(values.max()) >= _NID_LIMIT):
        raise StoreError("inferred facts: node ids must lie in [0, 2**31)")
    return values


def encode_keys(facts: Facts) -> bytes:
    columns = (_nids(facts.src), _nids(facts.dst), facts.rule, facts.value)
    body = b"".join(
        np.ascontiguousarray(c, t).tobytes() for c, t in zip(columns, _KEY_DTYPES, strict=True)
    )
    return _pack(body)


def decode_keys(blob: bytes, rows: int) -> tuple[IntArray, IntArray, Any, Any]:
    raw = _unpack(blob)
    out = []
    at = 0
    for dtype in _KEY_DTYPES:
        out.append(np.frombuffer(raw, dtype, count=rows, offset=at))
        at += rows * np.dtype(dtype).itemsize
    return out[0].astype(np.int64), out[1].astype(np.int64), out[2], out[3]


def encode_premises(p: Premises) -> bytes:
    n, m = len(p.offsets) - 1, len(p.kind)
    text = p.text.cast(TEXT)
    if m:
        text_offsets = np.frombuffer(
            text.buffers()[1], np.int64, count=m + 1, offset=text.offset * 8
        )
        data = text.buffers()[2]
        lo, hi = int(text_offsets[0]), int(text_offsets[-1])
        text_bytes = b"" if data is None else data.slice(lo, hi - lo).to_pybytes()
        text_offsets = text_offsets - text_offsets[0]
    else:
        text_offsets, text_bytes = np.zeros(1, np.int64), b""
    parts = [
        np.array([n, m, len(text_bytes)], "<i8").tobytes(),
        np.ascontiguousarray(p.a, "<i4").tobytes(),
        np.ascontiguousarray(p.b, "<i4").tobytes(),
        np.ascontiguousarray(p.offsets - p.offsets[0], "<i4").tobytes(),
        np.ascontiguousarray(p.name, "<i4").tobytes(),
        np.ascontiguousarray(p.rule, "<i4").tobytes(),
        np.ascontiguousarray(p.size, "<i4").tobytes(),
        np.ascontiguousarray(text_offsets, "<i4").tobytes(),
        np.ascontiguousarray(p.kind, "i1").tobytes(),
        text_bytes,
    ]
    return _pack(b"".join(parts))


def decode_premises(blob: bytes) -> Premises:
    raw = _unpack(blob)
    n, m, text_size = (int(v) for v in np.frombuffer(raw, "<i8", count=3))
    at = 24

    def take(dtype: str, count: int) -> Any:
        nonlocal at
        arr = np.frombuffer(raw, dtype, count=count, offset=at)
        at += count * np.dtype(dtype).itemsize
        return arr

    a, b = take("<i4", m), take("<i4", m)
    offsets = take("<i4", n + 1).astype(np.int64)
    name, rule, size = take("<i4", m), take("<i4", m), take("<i4", m)
    text_offsets = take("<i4", m + 1).astype(np.int64)
    kind = take("i1", m)
    data = pa.py_buffer(raw[at : at + text_size])
    text = pa.Array.from_buffers(TEXT, m, [None, pa.py_buffer(text_offsets.tobytes()), data])
    return Premises(offsets, kind, name, rule, a, b, size, text)


def encode_block(facts: Facts) -> tuple[int, int, int, bytes, bytes, bytes]:
    """(first_src, last_src, rows, srcs, keys blob, premises blob) of one block; `srcs`, the
    distinct srcs as raw int32, tells a reader whether a src has facts in the block
    without decompressing anything."""
    return (
        int(facts.src[0]),
        int(facts.src[-1]),
        len(facts),
        distinct_sorted(facts.src).astype("<i4").tobytes(),
        encode_keys(facts),
        encode_premises(facts.premises),
    )


def distinct_sorted(values: IntArray) -> IntArray:
    """The distinct values of a sorted array."""
    if not len(values):
        return values
    out: IntArray = values[np.concatenate([[True], values[1:] != values[:-1]])]
    return out


def holds_src(srcs: bytes, src: int) -> bool:
    """Whether a block's `srcs` include `src`."""
    distinct = np.frombuffer(srcs, "<i4")
    at = int(np.searchsorted(distinct, src))
    return at < len(distinct) and int(distinct[at]) == src


def decode_block(rows: int, keys: bytes, premises: bytes) -> Facts:
    src, dst, rule, value = decode_keys(keys, rows)
    return Facts(src, dst, rule, value, decode_premises(premises))


def encode_blocks(facts: Facts) -> Iterator[tuple[int, int, int, bytes, bytes, bytes]]:
    """Sorted facts of one predicate (equal keys already collapsed) as blocks."""
    cuts = block_cuts(facts)
    for start, stop in zip(cuts.tolist(), [*cuts[1:].tolist(), len(facts)], strict=True):
        yield encode_block(facts.slice(start, stop))


# --- reading ----------------------------------------------------------------------------------
def premise_nids(p: Premises, rows: IntArray) -> IntArray:
    """Node ids the premises of the given facts name."""
    index = ranges(p.offsets[rows], p.offsets[rows + 1] - p.offsets[rows])
    kind = p.kind[index]
    ends = (kind == PremiseKind.EDGE) | (kind == PremiseKind.INFERRED)
    return np.concatenate([p.a[index[ends | (kind == PremiseKind.NODE)]], p.b[index[ends]]])


def render_premises(
    p: Premises, row: int, name_of: Mapping[int, str], id_of: Callable[[int], Any]
) -> list[dict[str, Any]]:
    """The premises of fact `row` as the dicts of `InferredFact.premises`."""
    out: list[dict[str, Any]] = []
    j, end = int(p.offsets[row]), int(p.offsets[row + 1])
    while j < end:
        if p.kind[j] == PremiseKind.JSON_LIST:
            out.extend(json.loads(p.text[j].as_py()))
        else:
            out.append(_render(p, j, name_of, id_of))
        j += int(p.size[j])
    return out


def _render(
    p: Premises, j: int, name_of: Mapping[int, str], id_of: Callable[[int], Any]
) -> dict[str, Any]:
    kind = int(p.kind[j])
    name = name_of.get(int(p.name[j])) if p.name[j] >= 0 else None
    if kind == PremiseKind.EDGE:
        return {
            "kind": "edge",
            "type": name,
            "src": id_of(int(p.a[j])),
            "dst": id_of(int(p.b[j])),
            "key": p.text[j].as_py(),
        }
    if kind == PremiseKind.NODE:
        node: dict[str, Any] = {"kind": "node", "id": id_of(int(p.a[j]))}
        if name is not None:
            node["prop"] = name
        return node
    if kind == PremiseKind.INFERRED:
        return {
            "kind": "inferred",
            "predicate": name,
            "src": id_of(int(p.a[j])),
            "dst": id_of(int(p.b[j])),
        }
    if kind in (PremiseKind.DERIVED, PremiseKind.DERIVED_LEAF):
        derived: dict[str, Any] = {
            "kind": "derived",
            "predicate": name,
            "args": json.loads(p.text[j].as_py()),
            "rule": name_of.get(int(p.rule[j])) if p.rule[j] >= 0 else None,
        }
        if kind == PremiseKind.DERIVED:
            children = []
            k, end = j + 1, j + int(p.size[j])
            while k < end:
                children.append(_render(p, k, name_of, id_of))
                k += int(p.size[k])
            derived["premises"] = children
        return derived
    loaded: dict[str, Any] = json.loads(p.text[j].as_py())
    return loaded
