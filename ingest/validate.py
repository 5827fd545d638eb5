"""Row validation against the contract, vectorised with Arrow compute.

A bad value rejects its row with (file, line, column, reason); the rest of the batch goes on.
Identifier checksums run once per distinct value, not once per row.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import Column, ContractFile
from ingest.identifiers import (
    normalise_addresses,
    normalise_phones,
    valid_region_code,
    valid_resident_ids,
    valid_usccs,
)

_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}


@dataclass(frozen=True, slots=True)
class Reject:
    file: str
    line: int
    column: str
    reason: str
    value: str | None = None


@dataclass(slots=True)
class Validated:
    """A batch after validation: typed clean rows (with `_line`) and the rejects."""

    table: pa.Table
    rejects: list[Reject]


class RejectCollector:
    """Marks rows bad and remembers why, for one batch."""

    def __init__(self, file: str, lines: np.ndarray, column_names: dict[str, str]) -> None:
        self.file = file
        self.lines = lines
        self.bad = np.zeros(len(lines), dtype=bool)
        self.rejects: list[Reject] = []
        self._column_names = column_names

    def add(self, mask: np.ndarray, column: str, reason: str, values: pa.Array | None) -> None:
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return
        self.bad[rows] = True
        shown = self._column_names.get(column, column)
        picked = (
            values.take(pa.array(rows)).to_pylist() if values is not None else [None] * len(rows)
        )
        for row, value in zip(rows.tolist(), picked, strict=True):
            self.rejects.append(
                Reject(
                    self.file,
                    int(self.lines[row]),
                    shown,
                    reason,
                    None if value is None else str(value),
                )
            )

    def merge(self, other: RejectCollector) -> None:
        """Take the bad rows and rejects of another collector of the same batch."""
        self.bad |= other.bad
        self.rejects.extend(other.rejects)


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _real_day(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where a YYYY-MM-DD string is a calendar day (strptime alone rolls 02-30 over).

    Checked once per distinct value: a column of millions of dates holds a few thousand days.
    """
    distinct = pc.unique(values)
    parsed = pc.strptime(distinct, format="%Y-%m-%d", unit="s", error_is_null=True)
    real = distinct.filter(_mask(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), distinct)))
    return _mask(pc.is_in(values, value_set=real))


def _per_distinct(values: pa.ChunkedArray, check: Callable[[str], bool]) -> np.ndarray:
    """Apply a Python predicate once per distinct non-null value; True where it fails."""
    distinct = pc.unique(values.drop_null()).to_pylist()
    failing = [v for v in distinct if not check(v)]
    if not failing:
        return np.zeros(len(values), dtype=bool)
    return _mask(pc.is_in(values, value_set=pa.array(failing, pa.string())))


def _parse_number(values: pa.ChunkedArray, column: Column, collector: RejectCollector) -> pa.Array:
    present = _mask(pc.is_valid(values))
    numeric = _mask(pc.match_substring_regex(values, _NUMBER))
    collector.add(present & ~numeric, column.name, "not a number", values)
    cleaned = pc.if_else(pa.array(numeric), values, pa.scalar(None, pa.string()))
    return pc.cast(cleaned, pa.float64())


def validate_batch(
    spec: ContractFile,
    table: pa.Table,
    *,
    file: str,
    first_line: int,
    column_names: dict[str, str] | None = None,
    threads: int = 1,
) -> Validated:
    """Validate one batch of a contract file; returns typed clean rows and rejects.

    `column_names` maps contract column names to the names the source used (for mappings),
    so that reject reports name the column the bank knows. `threads` > 1 checks columns
    side by side, for a caller with idle cores (the result is the same).
    """
    if "_line" in table.column_names:  # set by a mapping that filtered rows
        lines = table.column("_line").to_numpy()
        table = table.drop_columns(["_line"])
    else:
        lines = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
    collector = RejectCollector(file, lines, column_names or {})

    def check(name: str) -> tuple[dict[str, pa.Array | pa.ChunkedArray], RejectCollector]:
        """One column's typed values (and its normalised form) and rejects."""
        own = RejectCollector(file, lines, column_names or {})
        raw = table.column(name)
        trimmed = pc.utf8_trim_whitespace(raw)
        values = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        values = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
        try:
            column = spec.column(name)
        except KeyError:
            return {name: values}, own  # unknown columns are kept as properties
        if column.required:
            own.add(_mask(pc.is_null(values)), name, "required value missing", None)
        typed = {name: _validate_column(column, values, own)}
        if column.kind == "address":
            typed["address_norm"] = normalise_addresses(values)
        return typed, own

    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    if threads > 1:
        # Columns are checked on several threads (Arrow compute releases the GIL); their
        # rejects stay in column order, as one thread lists them.
        with ThreadPoolExecutor(threads, thread_name_prefix="riskgraph-validate") as pool:
            checked = list(pool.map(check, table.column_names))
    else:
        checked = [check(name) for name in table.column_names]
    for typed, own in checked:
        out.update(typed)
        collector.merge(own)
    if spec.name == "shareholdings" and "voting_pct" not in out and "share_pct" in out:
        out["voting_pct"] = out["share_pct"]
    elif spec.name == "shareholdings" and "share_pct" in out:
        out["voting_pct"] = pc.coalesce(out["voting_pct"], out["share_pct"])
    out["_line"] = pa.array(lines)
    typed = pa.table(out)
    return Validated(kept(typed, ~collector.bad), collector.rejects)


_Rows = TypeVar("_Rows", pa.Table, pa.Array)


def kept(rows: _Rows, keep: np.ndarray) -> _Rows:
    """The rows where `keep` holds; the same object when it holds everywhere (a filter
    copies every column, a million rows at a time)."""
    return rows if keep.all() else rows.filter(pa.array(keep))


def _validate_column(
    column: Column, values: pa.ChunkedArray, collector: RejectCollector
) -> pa.Array | pa.ChunkedArray:
    name = column.name
    present = _mask(pc.is_valid(values))
    match column.kind:
        case "id" | "text":
            return values
        case "amount":
            numbers = _parse_number(values, column, collector)
            negative = _mask(pc.less(numbers, 0.0))
            collector.add(negative, name, "negative amount", values)
            if not column.allow_zero:
                collector.add(
                    _mask(pc.equal(numbers, 0.0)), name, "amount must be positive", values
                )
            return numbers
        case "pct":
            numbers = _parse_number(values, column, collector)
            low_ok = (
                pc.greater(numbers, 0.0) if name == "share_pct" else pc.greater_equal(numbers, 0.0)
            )
            in_range = pc.and_(low_ok, pc.less_equal(numbers, 100.0))
            bad = present & ~_mask(pc.is_null(numbers)) & ~_mask(in_range)
            bound = "0 < pct <= 100" if name == "share_pct" else "0 <= pct <= 100"
            collector.add(bad, name, f"percentage out of range ({bound})", values)
            return numbers
        case "date":
            shaped = _mask(pc.match_substring_regex(values, _DATE))
            ok = shaped & _real_day(values)
            collector.add(present & ~ok, name, "unparseable date (expected YYYY-MM-DD)", values)
            return values
        case "timestamp":
            shaped = _mask(pc.match_substring_regex(values, _TIMESTAMP))
            ok = shaped & _real_day(pc.utf8_slice_codeunits(values, 0, 10))
            collector.add(present & ~ok, name, "unparseable timestamp (expected ISO 8601)", values)
            return values
        case "bool":
            lowered = pc.utf8_lower(values)
            truthy = _mask(pc.is_in(lowered, value_set=pa.array(sorted(_TRUE))))
            falsy = _mask(pc.is_in(lowered, value_set=pa.array(sorted(_FALSE))))
            collector.add(present & ~truthy & ~falsy, name, "not a boolean", values)
            flags: list[bool | None] = [
                True if t else False if f else None for t, f in zip(truthy, falsy, strict=True)
            ]
            return pa.array(flags, pa.bool_())
        case "enum":
            allowed = _mask(pc.is_in(values, value_set=pa.array(sorted(column.values))))
            reason = "not one of " + ", ".join(sorted(column.values))
            collector.add(present & ~allowed, name, reason, values)
            return values
        case "resident_id":
            upper = pc.utf8_upper(values)
            bad = present & ~valid_resident_ids(upper)
            collector.add(bad, name, "invalid resident id (GB 11643 check digit)", values)
            return upper
        case "uscc":
            upper = pc.utf8_upper(values)
            bad = present & ~valid_usccs(upper)
            collector.add(bad, name, "invalid USCC (GB 32100 check character)", values)
            return upper
        case "phone":
            return normalise_phones(values)
        case "address":
            return values
        case "region_code":
            bad = _per_distinct(values, valid_region_code)
            collector.add(bad, name, "invalid region code (GB/T 2260)", values)
            return values
    raise AssertionError(f"unhandled column kind {column.kind}")
