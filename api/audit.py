"""The audit trail: who asked what, when, and what they were told — append-only and chained.

Records live in their own SQLite file beside the store (`<db>.audit.sqlite`), not in the
store: an ingest job holds the store's write lock for its whole transaction, and a credit
decision must not wait minutes for it. One background thread writes; requests hand it
records through a bounded number of slots, so a full queue is noticed (the request fails
with 503) and nothing is dropped silently.

Each record carries its sequence number and the hash of the record before it; its own hash
is SHA-256 over that previous hash and the record's stored text. `verify_audit` walks the
chain and finds a modified, deleted or reordered record. Deleting records at the end leaves
a valid shorter chain; the writer logs the head (sequence, hash) regularly so the log
pipeline holds an anchor to check it against (`expect_head`).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore

logger = logging.getLogger("riskgraph.audit")

GENESIS_HASH = "0" * 64
AUDIT_SUFFIX = ".audit.sqlite"
# Records written in one transaction at most (group commit).
MAX_BATCH = 512
# The head is logged after this many records or seconds, whichever comes first.
HEAD_LOG_EVERY_RECORDS = 1000
HEAD_LOG_EVERY_SECONDS = 60.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit ("
    " seq INTEGER PRIMARY KEY, record TEXT NOT NULL, hash TEXT NOT NULL)",
    # Guards against a mistaken UPDATE or DELETE; the hash chain guards against the rest.
    "CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END",
)
_HEAD = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
_INSERT = "INSERT INTO audit (seq, record, hash) VALUES (?, ?, ?)"
_SINCE = "SELECT seq, record, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
_ALL = "SELECT seq, record, hash FROM audit ORDER BY seq"


class AuditUnavailable(RuntimeError):
    """The audit trail cannot take a record now (queue full, writer failed or stopped)."""


def audit_path_for(store: GraphStore) -> Path | None:
    """`<db>.audit.sqlite` beside an SQLite store file; None for other stores."""
    if isinstance(store, SQLiteStore) and store.path != ":memory:":
        return Path(store.path + AUDIT_SUFFIX)
    return None


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous: str, record_text: str) -> str:
    return hashlib.sha256(f"{previous}\n{record_text}".encode()).hexdigest()


def rules_version() -> dict[str, str]:
    """The riskgraph version and a SHA-256 over the rule files and the ontology: what
    produced the answers a record describes."""
    try:
        version = importlib.metadata.version("riskgraph")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256()
    for package, pattern in (("reasoning", "rules/*.dl"), ("kg", "*.ttl")):
        spec = importlib.util.find_spec(package)
        roots = list(spec.submodule_search_locations or []) if spec else []
        for path in sorted(p for root in roots for p in Path(root).glob(pattern)):
            digest.update(f"{package}/{path.name}\n".encode())
            digest.update(path.read_bytes())
    return {"riskgraph": version, "rules_sha256": digest.hexdigest()}


def _connect(path: Path | str, *, read_only: bool) -> sqlite3.Connection:
    if str(path) == ":memory:":
        raise ValueError("an in-memory audit trail has no file to read")
    uri = f"file:{Path(path).resolve()}?mode={'ro' if read_only else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@dataclass(slots=True)
class _Pending:
    entry: dict[str, Any]
    done: Callable[[BaseException | None], None] | None


_STOP = object()


class AuditLog:
    """The append-only audit trail and its writer thread.

    Example:
        >>> log = AuditLog(":memory:")
        >>> log.reserve_nowait()
        True
        >>> log.submit({"route": "/v1/search"})
        >>> log.close()
    """

    def __init__(
        self, path: Path | str, *, capacity: int = 10_000, synchronous: str = "NORMAL"
    ) -> None:
        self.path = str(path)
        self._slots = threading.BoundedSemaphore(capacity)
        self.capacity = capacity
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._conn = sqlite3.connect(
            ":memory:" if self.path == ":memory:" else f"file:{Path(path).resolve()}?mode=rwc",
            uri=self.path != ":memory:",
            isolation_level=None,
            check_same_thread=False,
        )
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a crash of the process; FULL also a power cut.
        self._conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        self._conn.execute("PRAGMA busy_timeout=10000")
        for statement in _SCHEMA:
            self._conn.execute(statement)
        self.written = 0
        self.last_error: str | None = None
        self._closed = False
        self._last_head_log = time.monotonic()
        self._since_head_log = 0
        self._thread = threading.Thread(target=self._run, name="riskgraph-audit", daemon=True)
        self._thread.start()

    # --- the request side ------------------------------------------------------------------
    def reserve_nowait(self) -> bool:
        """Take a slot for one record; False when the queue is full or the log is closed."""
        return not self._closed and self._slots.acquire(blocking=False)

    async def reserve(self, wait_seconds: float) -> None:
        """Take a slot, waiting up to `wait_seconds` for the writer to free one."""
        deadline = time.monotonic() + wait_seconds
        while not self.reserve_nowait():
            if self._closed or time.monotonic() >= deadline:
                raise AuditUnavailable("the audit trail is not accepting records")
            await asyncio.sleep(0.002)

    def release(self) -> None:
        """Give back a slot taken for a record that will not be submitted."""
        self._slots.release()

    def submit(
        self, entry: dict[str, Any], done: Callable[[BaseException | None], None] | None = None
    ) -> None:
        """Queue a record for a reserved slot; `done` is called from the writer thread."""
        self._queue.put(_Pending(entry, done))

    async def append(self, entry: dict[str, Any]) -> None:
        """Queue a record (slot reserved) and wait until it is committed."""
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[BaseException | None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_resolve, committed, error)

        self.submit(entry, done)
        error = await committed
        if error is not None:
            raise AuditUnavailable(f"the audit record was not written: {error}") from error

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def healthy(self) -> bool:
        return not self._closed and self._thread.is_alive() and self.last_error is None

    # --- the writer ------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            pending = [p for p in batch if isinstance(p, _Pending)]
            if pending:
                self._write_batch(pending)
            for marker in batch:
                if isinstance(marker, threading.Event):
                    marker.set()

    def _write_batch(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            head = self._append_rows([p.entry for p in batch])
        except (sqlite3.Error, OSError) as exc:
            error = exc
            self.last_error = f"{type(exc).__name__}: {exc}"
            # The records still reach the log: an audit trail that cannot write must not lose
            # what it was given without a trace.
            for p in batch:
                logger.error(
                    "audit_write_failed",
                    extra={"audit_record": p.entry, "error": self.last_error},
                )
        else:
            self.last_error = None
            self.written += len(batch)
            self._log_head(head, len(batch))
        for p in batch:
            self._slots.release()
            if p.done is not None:
                p.done(error)

    def _append_rows(self, entries: list[dict[str, Any]]) -> tuple[int, str]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read the head inside the write transaction: another process may append too.
            row = conn.execute(_HEAD).fetchone()
            seq, previous = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)
            for entry in entries:
                seq += 1
                text = canonical_json({**entry, "seq": seq, "prev_hash": previous})
                previous = chain_hash(previous, text)
                conn.execute(_INSERT, (seq, text, previous))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return seq, previous

    def _log_head(self, head: tuple[int, str], count: int) -> None:
        self._since_head_log += count
        now = time.monotonic()
        if (
            self._since_head_log >= HEAD_LOG_EVERY_RECORDS
            or now - self._last_head_log >= HEAD_LOG_EVERY_SECONDS
        ):
            logger.info("audit_head", extra={"audit_seq": head[0], "audit_hash": head[1]})
            self._since_head_log = 0
            self._last_head_log = now

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued so far is written (or failed); False on timeout."""
        if self._closed:
            return True
        written = threading.Event()
        self._queue.put(written)
        return written.wait(timeout)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._conn.close()

    # --- reads -----------------------------------------------------------------------------
    def read(self, since: int, limit: int) -> list[dict[str, Any]]:
        """Records with a sequence number above `since`, oldest first."""
        if self.path == ":memory:":
            raise AuditUnavailable("this audit trail is in memory (no store file)")
        with closing(_connect(self.path, read_only=True)) as conn:
            rows = conn.execute(_SINCE, (since, limit)).fetchall()
        return [{**json.loads(text), "hash": digest} for _, text, digest in rows]

    def head(self) -> tuple[int, str]:
        if self.path == ":memory:":
            raise AuditUnavailable("this audit trail is in memory (no store file)")
        with closing(_connect(self.path, read_only=True)) as conn:
            row = conn.execute(_HEAD).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


def _resolve(future: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)


@dataclass(slots=True)
class VerifyResult:
    """The outcome of walking the chain: `ok`, how far it got, and what is wrong."""

    ok: bool
    records: int
    head_seq: int
    head_hash: str
    problems: list[str] = field(default_factory=list)


# Problems listed in full at most; a broken chain usually breaks once and cascades.
MAX_PROBLEMS = 20


def _rows(path: Path) -> Iterator[tuple[int, str, str]]:
    with closing(_connect(path, read_only=True)) as conn:
        yield from conn.execute(_ALL)


def verify_audit(path: Path, expect_head: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the audit chain of `path`: every record must follow the one before it
    (sequence without gaps, `prev_hash` equal to the previous record's hash) and hash to the
    stored value. With `expect_head`, a (sequence, hash) anchor logged earlier, records
    removed from the end are found too.

    Example:
        >>> verify_audit(Path("riskgraph.db.audit.sqlite")).ok  # doctest: +SKIP
        True
    """
    if not path.exists():
        return VerifyResult(False, 0, 0, GENESIS_HASH, [f"no audit trail at {path}"])
    problems: list[str] = []
    expected_seq, previous, count = 1, GENESIS_HASH, 0
    anchor_seen = expect_head is None
    try:
        for seq, text, stored_hash in _rows(path):
            count += 1
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                record = {}
                problems.append(f"record {seq}: not valid JSON")
            if seq != expected_seq:
                problems.append(f"record {seq}: expected sequence {expected_seq} (gap or reorder)")
            if record.get("seq") != seq:
                problems.append(f"record {seq}: carries sequence {record.get('seq')!r}")
            if record.get("prev_hash") != previous:
                problems.append(f"record {seq}: previous hash does not match record {seq - 1}")
            if chain_hash(previous, text) != stored_hash:
                problems.append(f"record {seq}: content does not match its hash (modified)")
            if expect_head is not None and seq == expect_head[0]:
                anchor_seen = True
                if stored_hash != expect_head[1]:
                    problems.append(f"record {seq}: hash differs from the expected head")
            expected_seq, previous = seq + 1, stored_hash
            if len(problems) >= MAX_PROBLEMS:
                break
    except sqlite3.DatabaseError as exc:
        problems.append(f"cannot read the audit trail: {exc}")
    if not anchor_seen and expect_head is not None:
        problems.append(
            f"the expected head {expect_head[0]} is missing: records were removed from the end"
        )
    return VerifyResult(not problems, count, expected_seq - 1, previous, problems)
