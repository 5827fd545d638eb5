"""Readers: CSV (UTF-8, header row, optional BOM) and Parquet, streamed as string batches.

Every column is read as text so that validation sees exactly what the bank sent and can say
which value on which line was wrong. Line numbers count physical lines with the header as
line 1 (quoted values must not contain line breaks).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest.contract import ContractFile

BATCH_ROWS = 1_000_000


class InputFormatError(ValueError):
    """A file is not the format it claims, or misses a required column: the job fails."""


@dataclass(frozen=True, slots=True)
class Batch:
    table: pa.Table
    # Line of the batch's first row in the source file (header is line 1).
    first_line: int


def find_source(directory: Path, stem: str) -> Path | None:
    """The contract file `stem` in `directory` as CSV or Parquet, if present."""
    for suffix in (".csv", ".parquet"):
        path = directory / f"{stem}{suffix}"
        if path.exists():
            return path
    return None


def read_header(path: Path) -> list[str]:
    """Column names of a CSV or Parquet file."""
    if path.suffix == ".parquet":
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputFormatError(f"{path.name}: not a readable Parquet file ({exc})") from exc
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(io.StringIO(handle.readline())), None)
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    if not header or not any(h.strip() for h in header):
        raise InputFormatError(f"{path.name}: empty file or missing header row")
    return [h.strip() for h in header]


def count_rows(path: Path) -> int:
    """Data rows in a file (for progress bars); cheap line count for CSV."""
    if path.suffix == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 24), b""))
    return max(lines - 1, 0)


def iter_batches(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """Stream a file as tables of string columns with their first line numbers."""
    header = read_header(path)
    if path.suffix == ".parquet":
        yield from _parquet_batches(path, header, batch_rows)
        return
    read_options = pacsv.ReadOptions(
        column_names=header, skip_rows=1, block_size=1 << 24, encoding="utf8"
    )
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    parse_options = pacsv.ParseOptions(newlines_in_values=False)
    try:
        reader = pacsv.open_csv(
            path,
            read_options=read_options,
            convert_options=convert_options,
            parse_options=parse_options,
        )
        next_line = 2
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for record_batch in reader:
            pending.append(record_batch)
            pending_rows += record_batch.num_rows
            if pending_rows >= batch_rows:
                yield Batch(pa.Table.from_batches(pending), next_line)
                next_line += pending_rows
                pending, pending_rows = [], 0
        if pending:
            yield Batch(pa.Table.from_batches(pending), next_line)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InputFormatError(f"{path.name}: not a valid UTF-8 CSV file ({exc})") from exc


def _parquet_batches(path: Path, header: list[str], batch_rows: int) -> Iterator[Batch]:
    try:
        parquet = pq.ParquetFile(path)
        next_line = 2
        for record_batch in parquet.iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([record_batch])
            columns = []
            for name in header:
                column = table.column(name)
                if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
                    column = pa.array(
                        [None if v is None else v.isoformat() for v in column.to_pylist()],
                        pa.string(),
                    )
                columns.append(column.cast(pa.string()))
            yield Batch(pa.Table.from_arrays(columns, names=header), next_line)
            next_line += table.num_rows
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InputFormatError(f"{path.name}: not a readable Parquet file ({exc})") from exc


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A contract file to load: where its batches come from and what its columns were called."""

    contract: ContractFile
    display_name: str
    batches: Callable[[], Iterator[Batch]]
    # Contract column names the batches will carry.
    header: list[str]
    rows: int
    # Contract column name -> the source's column name, for files read through a mapping.
    column_names: dict[str, str] = field(default_factory=dict)
