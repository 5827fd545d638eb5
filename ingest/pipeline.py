"""The ingest job: read, validate, resolve entities and references, write in one transaction.

All-or-nothing per job: a file that is not its declared format, or that misses a required
column, fails the job and the store is left as it was. A malformed row is rejected with its
file, line, column and reason; the rest loads. Re-running the same ingest writes the same
nodes and edges again (upserts), so nothing is duplicated.
"""

from __future__ import annotations

import csv
import time
import tomllib
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import CONTRACT, CONTRACT_BY_NAME, LOAD_ORDER, ContractFile
from ingest.mapping import load_mapping, mapped_sources
from ingest.readers import (
    Batch,
    InputFormatError,
    SourceFile,
    count_rows,
    find_source,
    iter_batches,
    read_header,
)
from ingest.validate import Reject, Validated, kept, validate_batch
from kg.id_index import ALL_LABELS, LABELS, UNKNOWN, NodeIdIndex
from kg.model import Label
from kg.store import GraphStore, LentNodeIndex

# Where the bank parameters from `bank.toml` are kept in the store.
BANK_COLLECTION = "bank"
BANK_PARAMETERS_KEY = "parameters"

# Rejects kept in the job record; the full list always goes to the CSV report.
MAX_REJECTS_IN_RECORD = 1000


class IngestError(RuntimeError):
    """The job failed as a whole; nothing was written."""


@dataclass(slots=True)
class FileReport:
    file: str
    rows: int = 0
    loaded: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class IngestReport:
    job_id: str
    source: str
    files: list[FileReport] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    aliases: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "rejected": self.rejected,
            "aliases": self.aliases,
            "files": [
                {
                    "file": f.file,
                    "rows": f.rows,
                    "loaded": f.loaded,
                    "rejected": f.rejected,
                    "seconds": round(f.seconds, 3),
                }
                for f in self.files
            ],
            "rejects": [
                {
                    "file": r.file,
                    "line": r.line,
                    "column": r.column,
                    "reason": r.reason,
                    "value": r.value,
                }
                for r in self.rejects[:MAX_REJECTS_IN_RECORD]
            ],
        }

    def write_rejects_csv(self, path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "line", "column", "reason", "value"])
            for r in self.rejects:
                writer.writerow([r.file, r.line, r.column, r.reason, r.value or ""])


ProgressHook = Callable[[str, int, int], None]


def canonical_sources(directory: Path) -> list[SourceFile]:
    """The contract files present in a directory (CSV or Parquet), in load order."""
    sources = []
    for name in LOAD_ORDER:
        path = find_source(directory, name)
        if path is None:
            continue
        sources.append(
            SourceFile(
                contract=CONTRACT_BY_NAME[name],
                display_name=path.name,
                batches=partial(iter_batches, path),
                header=read_header(path),
                rows=count_rows(path),
            )
        )
    return sources


class _Resolver:
    """Maps every id the job may reference to its canonical id and label.

    The known ids are a `NodeIdIndex` (a column is looked up with one hash join against the
    labels it may point at): the store's own when it lends one during the bulk load, which
    holds every node stored or written so far (the store adds what it writes, and the
    store's look-up of a column the job checked is remembered); else one the job keeps. The
    Python dict serves the per-record decisions of entity resolution.
    """

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.canonical: dict[str, str] = {}
        self._store_empty = store.count_nodes() == 0
        lent = store.bulk_node_index() if isinstance(store, LentNodeIndex) else None
        self._lent = lent is not None
        self._known = NodeIdIndex() if lent is None else lent
        if lent is None and not self._store_empty:
            for batch in store.node_batches():
                labels = batch.column("label")
                for label in LABELS:
                    self.add(batch.column("id").filter(pc.equal(labels, label.value)), label)

    def add(self, ids: pa.Array | pa.ChunkedArray, label: Label) -> None:
        """Ids now stored (or about to be, in this batch) as nodes of `label`."""
        if self._lent:
            return  # the store adds the nodes it writes to the index it lends
        distinct = pc.unique(ids.drop_null())
        if isinstance(distinct, pa.ChunkedArray):
            distinct = distinct.combine_chunks()
        self._known.add(label, distinct)

    def resolve_references(
        self, values: pa.ChunkedArray, allowed: frozenset[Label]
    ) -> tuple[pa.ChunkedArray, np.ndarray]:
        """Referenced ids with aliases replaced by their canonical ids, and the label code
        of each (`reference_labels`).

        The ids are looked up as they are first: an alias is not a node id, so only the
        misses (and ids that are both a node's id and an alias, which a conflicting record
        can make) can be aliases, and a column without any goes on uncopied.
        """
        codes = self.reference_labels(values, allowed)
        if not self.canonical and self._store_empty:
            return values, codes
        maybe = (codes == UNKNOWN) & _present(values)
        shadowed = self._node_ids_that_are_aliases()
        if len(shadowed):
            maybe |= np.asarray(pc.is_in(values, value_set=shadowed), bool)
        rows = np.flatnonzero(maybe)
        if not rows.size:
            return values, codes
        before = values.take(pa.array(rows))
        after = self.canonicalise(before)
        changed = ~np.asarray(pc.fill_null(pc.equal(before, after), True), bool)
        if not changed.any():
            return values, codes
        rows, after = rows[changed], after.filter(pa.array(changed))
        codes[rows] = self.reference_labels(after, allowed)
        mask = np.zeros(len(values), bool)
        mask[rows] = True
        replaced = pc.replace_with_mask(
            values.combine_chunks(), pa.array(mask), after.combine_chunks()
        )
        return pa.chunked_array([replaced]), codes

    def _node_ids_that_are_aliases(self) -> pa.Array:
        keys = self._alias_keys()
        return keys.filter(pa.array(self.known_labels(pa.chunked_array([keys])) != UNKNOWN))

    def _alias_keys(self) -> pa.Array:
        return pa.array(list(self.canonical), pa.string())

    def canonicalise(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        """Aliases replaced by the canonical ids they stand for."""
        if not self._store_empty:
            self._learn_stored_aliases(values)
        if self.canonical:
            keys = self._alias_keys()
            hit = pc.index_in(values, value_set=keys)
            if hit.null_count < len(hit):  # else the column goes on as it is, uncopied
                targets = pa.array(list(self.canonical.values()), pa.string())
                values = pc.if_else(pc.is_valid(hit), pc.take(targets, hit), values)
        return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])

    def _learn_stored_aliases(self, values: pa.ChunkedArray) -> None:
        """Ids unknown to this job may be aliases recorded by an earlier one."""
        unknown = (self.known_labels(values) == UNKNOWN) & _present(values)
        for raw in pc.unique(pc.filter(values, pa.array(unknown))).to_pylist():
            if raw in self.canonical:
                continue
            stored = self.store.resolve(raw)
            if stored is not None and stored != raw:
                self.canonical[raw] = stored

    def known_labels(
        self, values: pa.ChunkedArray, labels: frozenset[Label] = ALL_LABELS
    ) -> np.ndarray:
        """The label code of each value among the known ids of `labels` (UNKNOWN elsewhere;
        no alias resolution)."""
        return self._known.lookup(values, labels)[0]

    def reference_labels(self, values: pa.ChunkedArray, allowed: frozenset[Label]) -> np.ndarray:
        """Label codes of referenced ids: looked up among the allowed labels, and only the
        misses among all the others (to tell an unknown id from one of the wrong kind).
        A reference points at a node written before it (an earlier file or batch)."""
        codes = self.known_labels(values, allowed)
        missing = np.flatnonzero((codes == UNKNOWN) & _present(values))
        others = ALL_LABELS - allowed
        if missing.size and others:
            codes[missing] = self.known_labels(values.take(pa.array(missing)), others)
        return codes

    def known_by_identifier(self, label: Label, prop: str, values: list[str]) -> dict[str, str]:
        if self._store_empty or not values:
            return {}
        return self.store.find_nodes(label, prop, values)


def _present(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)


def _reject_rows(
    table: pa.Table,
    mask: np.ndarray,
    column: str,
    reasons: list[str],
    file: str,
    shown: dict[str, str],
) -> list[Reject]:
    lines = table.column("_line").to_numpy()
    values = table.column(column).to_pylist()
    return [
        Reject(file, int(lines[i]), shown.get(column, column), reason, values[i])
        for i, reason in zip(np.flatnonzero(mask).tolist(), reasons, strict=True)
    ]


def _with_provenance(table: pa.Table, source: str, job_id: str) -> pa.Table:
    n = table.num_rows
    table = table.append_column("_source", pa.repeat(pa.scalar(source, pa.string()), n))
    return table.append_column("_job", pa.repeat(pa.scalar(job_id, pa.string()), n))


def _resolve_entities(
    table: pa.Table,
    spec: ContractFile,
    resolver: _Resolver,
    seen: dict[str, str],
    report: IngestReport,
    source: str,
    shown: dict[str, str],
) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Records with the same valid identifier become one entity: the first record's id."""
    assert spec.node is not None and spec.resolve_by is not None
    label, id_col = spec.node
    ids: list[str] = table.column(id_col).to_pylist()
    keys: list[str | None] = (
        table.column(spec.resolve_by).to_pylist()
        if spec.resolve_by in table.column_names
        else [None] * len(ids)
    )
    unseen = [k for k in dict.fromkeys(keys) if k is not None and k not in seen]
    seen.update(resolver.known_by_identifier(label, spec.resolve_by, unseen))
    canonical: list[str] = []
    aliases: list[tuple[str, str]] = []
    bad = np.zeros(len(ids), dtype=bool)
    reasons: list[str] = []
    # Ids of another kind; the records of this batch join the known ids only after it.
    others = resolver.known_labels(table.column(id_col), ALL_LABELS - {label}).tolist()
    for i, (entity_id, key) in enumerate(zip(ids, keys, strict=True)):
        target = entity_id
        if key is not None:
            target = seen[key] if key in seen else resolver.canonical.get(entity_id, entity_id)
        if others[i] != UNKNOWN and entity_id == target:
            # Rejected, so it stands for no one: a later record with its identifier is the
            # entity (not an alias of an id of another kind).
            bad[i] = True
            reasons.append(f"id already used by a {LABELS[others[i]].value}")
            canonical.append(target)
            continue
        if key is not None:
            seen.setdefault(key, target)
        canonical.append(target)
        if target != entity_id:
            aliases.append((entity_id, target))
            resolver.canonical[entity_id] = target
    canonical_ids = pa.array(canonical, pa.string())
    resolver.add(kept(canonical_ids, ~bad), label)
    if bad.any():
        report.rejects.extend(_reject_rows(table, bad, id_col, reasons, source, shown))
    table = table.set_column(table.column_names.index(id_col), id_col, canonical_ids)
    table = table.rename_columns(["id" if c == id_col else c for c in table.column_names])
    return kept(table, ~bad), aliases


def _check_references(
    table: pa.Table,
    spec: ContractFile,
    resolver: _Resolver,
    report: IngestReport,
    source: str,
    shown: dict[str, str],
) -> pa.Table:
    """Resolve every reference column to canonical ids; reject rows pointing nowhere."""
    bad = np.zeros(table.num_rows, dtype=bool)
    columns = [c for c in spec.columns if c.refers_to and c.name in table.column_names]
    resolved: dict[str, pa.ChunkedArray] = {}
    # Columns that may point at the same labels are looked up together: one look-up.
    codes_of: dict[str, np.ndarray] = {}
    for labels in dict.fromkeys(c.refers_to for c in columns):
        names = [c.name for c in columns if c.refers_to == labels]
        joined = pa.chunked_array(
            [chunk for name in names for chunk in table.column(name).chunks], pa.string()
        )
        joined, codes = resolver.resolve_references(joined, labels)
        for k, name in enumerate(names):
            part = slice(k * table.num_rows, (k + 1) * table.num_rows)
            codes_of[name] = codes[part]
            resolved[name] = joined.slice(part.start, table.num_rows)
    for column in columns:
        codes = codes_of[column.name]
        present = _present(table.column(column.name))
        allowed = np.isin(codes, [LABELS.index(label) for label in column.refers_to])
        unknown = present & (codes == UNKNOWN)
        wrong = present & ~unknown & ~allowed
        wanted = "/".join(sorted(label.value.lower() for label in column.refers_to))
        if (unknown & ~bad).any():
            mask = unknown & ~bad
            reasons = [f"unknown {wanted} id"] * int(mask.sum())
            report.rejects.extend(_reject_rows(table, mask, column.name, reasons, source, shown))
        if (wrong & ~bad).any():
            mask = wrong & ~bad
            reasons = [f"id is a {LABELS[c].value}, expected {wanted}" for c in codes[mask]]
            report.rejects.extend(_reject_rows(table, mask, column.name, reasons, source, shown))
        bad |= unknown | wrong
        table = table.set_column(
            table.column_names.index(column.name), column.name, resolved[column.name]
        )
    return kept(table, ~bad)


def _self_reference(
    table: pa.Table,
    src: str,
    dst: str,
    report: IngestReport,
    source: str,
    shown: dict[str, str],
) -> pa.Table:
    same = np.asarray(pc.fill_null(pc.equal(table.column(src), table.column(dst)), False))
    if same.any():
        reasons = [f"{src} and {dst} are the same entity"] * int(same.sum())
        report.rejects.extend(_reject_rows(table, same, dst, reasons, source, shown))
    return kept(table, ~same)


def _edge_table(table: pa.Table, src: str, dst: str, key: str | None, drop: set[str]) -> pa.Table:
    keep = [c for c in table.column_names if c not in drop | {src, dst}]
    columns = {"src": table.column(src), "dst": table.column(dst)}
    columns["key"] = (
        pc.fill_null(table.column(key), "") if key is not None else pa.array([""] * table.num_rows)
    )
    for name in keep:
        if name not in columns:
            columns[name] = table.column(name)
    return pa.table(columns)


def run_ingest(
    store: GraphStore,
    sources: list[SourceFile],
    *,
    source_label: str,
    progress: ProgressHook | None = None,
) -> IngestReport:
    """Load the given contract files into the store as one all-or-nothing job."""
    names = {s.contract.name for s in sources}
    for spec in CONTRACT:
        if spec.required_file and spec.name not in names and store.count_nodes() == 0:
            raise IngestError(f"{source_label}: missing required file {spec.name}.csv")
    for source in sources:
        missing = [c for c in source.contract.required_columns if c not in source.header]
        if missing:
            shown = ", ".join(missing)
            raise IngestError(f"{source.display_name}: missing required column(s) {shown}")

    job_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    report = IngestReport(job_id=job_id, source=source_label)
    started = time.perf_counter()
    try:
        with store.transaction(), store.bulk_load():
            resolver = _Resolver(store)
            with _read_ahead(_validated_batches(sources)) as validated:
                for source in sources:
                    report.files.append(
                        _load_file(store, source, validated, resolver, report, job_id, progress)
                    )
            if any(s.contract.name == "transactions" for s in sources):
                store.rebuild_transfers()
            report.seconds = time.perf_counter() - started
            store.put_document("ingest_jobs", job_id, report.as_dict())
    except InputFormatError as exc:
        raise IngestError(str(exc)) from exc
    return report


_Validated = tuple[Batch, Validated] | None


def _validated_batches(sources: list[SourceFile]) -> Iterator[_Validated]:
    """Each file's batches with their validation, in file order; None ends a file.

    The job's first batch is validated on two threads: the job waits for it with nothing
    else to do. Later batches are validated while the job writes the one before, which
    keeps the other core busy.
    """
    first = True
    for source in sources:
        for batch in source.batches():
            yield (
                batch,
                validate_batch(
                    source.contract,
                    batch.table,
                    file=source.display_name,
                    first_line=batch.first_line,
                    column_names=source.column_names,
                    threads=2 if first else 1,
                ),
            )
            first = False
        yield None


_T = TypeVar("_T")
_DONE: Any = object()


@contextmanager
def _read_ahead(items: Iterator[_T]) -> Iterator[Iterator[_T]]:
    """`items`, each computed on a worker thread while the caller handles the one before.

    Reading and validating a batch is Arrow work that releases the GIL, so the next batch
    (of this file or the next) is ready when the job has written the last one, on the
    machine's second core. At most one item is waiting.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskgraph-read") as pool:

        def ahead() -> Iterator[_T]:
            pending = pool.submit(next, items, _DONE)
            while (item := pending.result()) is not _DONE:
                pending = pool.submit(next, items, _DONE)
                yield item

        try:
            yield ahead()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(items, Generator):
                items.close()


def _load_file(
    store: GraphStore,
    source: SourceFile,
    validated_batches: Iterator[_Validated],
    resolver: _Resolver,
    report: IngestReport,
    job_id: str,
    progress: ProgressHook | None,
) -> FileReport:
    spec = source.contract
    shown = source.column_names
    file_report = FileReport(source.display_name)
    started = time.perf_counter()
    identifiers: dict[str, str] = {}
    while (item := next(validated_batches)) is not None:
        batch, validated = item
        rejects_before = len(report.rejects)
        report.rejects.extend(validated.rejects)
        table = validated.table
        aliases: list[tuple[str, str]] = []
        if spec.resolve_by is not None:
            table, aliases = _resolve_entities(
                table, spec, resolver, identifiers, report, source.display_name, shown
            )
        else:
            table = _check_references(table, spec, resolver, report, source.display_name, shown)
        for _rel_type, src, dst, _key in spec.edges:
            if spec.node is None or dst != spec.node[1]:
                table = _self_reference(table, src, dst, report, source.display_name, shown)
        _write(
            store,
            spec,
            _with_provenance(table, source.display_name, job_id),
            resolver,
            report,
            source.display_name,
            shown,
        )
        if aliases:  # after the write: an alias points at a stored node
            store.add_aliases(
                pa.table({"alias": [a for a, _ in aliases], "id": [c for _, c in aliases]})
            )
            report.aliases += len(aliases)
        file_report.rows += batch.table.num_rows
        rejected_rows = len({r.line for r in report.rejects[rejects_before:]})
        file_report.rejected += rejected_rows
        file_report.loaded += batch.table.num_rows - rejected_rows
        if progress is not None:
            progress(source.display_name, batch.table.num_rows, source.rows)
    file_report.seconds = time.perf_counter() - started
    return file_report


def _write(
    store: GraphStore,
    spec: ContractFile,
    table: pa.Table,
    resolver: _Resolver,
    report: IngestReport,
    source: str,
    shown: dict[str, str],
) -> None:
    if table.num_rows == 0:
        return
    if spec.name == "transactions":
        store.insert_transactions(table)
        return
    edge_columns = {c for _, s, d, _ in spec.edges for c in (s, d)}
    if spec.node is not None and spec.resolve_by is None:
        label, id_col = spec.node
        # Among all labels, as the store looks the ids up to write them (a look-up the
        # store's index then remembers).
        codes = resolver.known_labels(table.column(id_col))
        clash = (codes != UNKNOWN) & (codes != LABELS.index(label))
        if clash.any():
            reasons = [f"id already used by a {LABELS[c].value}" for c in codes[clash]]
            report.rejects.extend(_reject_rows(table, clash, id_col, reasons, source, shown))
            table = table.filter(pa.array(~clash))
        ids = table.column(id_col)
        node_cols = [c for c in table.column_names if c not in edge_columns - {id_col}]
        nodes = table.select(node_cols).rename_columns(
            ["id" if c == id_col else c for c in node_cols]
        )
        store.upsert_nodes(label, nodes)
        resolver.add(ids, label)
    elif spec.node is not None:
        store.upsert_nodes(spec.node[0], table)
        return
    if spec.extra_node is not None:
        label, id_col = spec.extra_node
        # A device's provenance is the first row that names it.
        firsts = table.group_by(id_col, use_threads=False).aggregate([("_line", "min")])
        distinct = firsts.column(id_col)
        store.upsert_nodes(
            label,
            pa.table(
                {
                    "id": distinct,
                    "_source": pa.repeat(pa.scalar(source, pa.string()), len(distinct)),
                    "_line": firsts.column("_line_min"),
                    "_job": pa.repeat(table.column("_job")[0], len(distinct)),
                }
            ),
        )
        resolver.add(distinct, label)
    for rel_type, src, dst, key in spec.edges:
        node_only = set()
        if spec.node is not None:
            # Node properties stay on the node; the edge keeps only provenance.
            node_only = {c for c in table.column_names if c not in ("_source", "_line", "_job")}
        edges = _edge_table(table, src, dst, key, node_only)
        store.upsert_edges(rel_type, edges)


def ingest_directory(
    store: GraphStore,
    directory: Path,
    *,
    mapping: Path | None = None,
    progress: ProgressHook | None = None,
) -> IngestReport:
    """Ingest a directory: canonical files (shared/data-contract.md), or any layout through a
    mapping file.

    Example:
        >>> report = ingest_directory(store, Path("bank/"))  # doctest: +SKIP
        >>> report.rejected
        0
    """
    if not directory.is_dir():
        raise IngestError(f"{directory}: not a directory")
    try:
        if mapping is not None:
            sources = mapped_sources(load_mapping(mapping), directory)
        else:
            sources = canonical_sources(directory)
    except (InputFormatError, ValueError) as exc:
        raise IngestError(str(exc)) from exc
    if not sources:
        raise IngestError(f"{directory}: no contract files (persons.csv, companies.csv, …) found")
    bank = _bank_parameters(directory / "bank.toml")
    report = run_ingest(store, sources, source_label=str(directory), progress=progress)
    if bank is not None:
        store.put_document(BANK_COLLECTION, BANK_PARAMETERS_KEY, bank)
    return report


def _bank_parameters(path: Path) -> dict[str, Any] | None:
    """The bank's capital figures from `bank.toml` beside the data, checked before the job."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IngestError(f"{path.name}: not valid TOML ({exc})") from exc
    for key in ("tier1_capital", "net_capital"):
        value = values.get(key)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise IngestError(f"{path.name}: {key} must be a positive number of CNY")
    return values
