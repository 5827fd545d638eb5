"""Structured logs, Prometheus metrics and readiness.

One JSON line per request (method, route template — never the raw path, which names
customers —, status, duration, key id, request id). Metrics live in a registry per app, so
two apps in one process (tests) do not share counters.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kg.store import GraphStore

ACCESS_LOGGER = "riskgraph.access"

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, event, and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS:
                body[key] = value
        if record.exc_info:
            # Server-side only: the client never sees it.
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send the `riskgraph` loggers to stderr as JSON lines (once; idempotent)."""
    root = logging.getLogger("riskgraph")
    if any(getattr(h, "_riskgraph_json", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._riskgraph_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


# Latency buckets from 1 ms (an origination check) to 30 s (a large report).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class ServiceMetrics:
    """The service's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "riskgraph_http_request_duration_seconds",
            "Request latency by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "riskgraph_http_requests",
            "Requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "riskgraph_http_requests_in_flight", "Requests being served.", registry=self.registry
        )
        self.denied = Counter(
            "riskgraph_http_denied",
            "Requests refused before reaching the endpoint, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.audit_records = Counter(
            "riskgraph_audit_records", "Audit records handed to the writer.", registry=self.registry
        )
        self.audit_unavailable = Counter(
            "riskgraph_audit_unavailable",
            "Requests refused because the audit trail could not take their record.",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route).observe(seconds)
        self.requests.labels(method, route, str(status)).inc()


def _duration(record: dict[str, Any]) -> float | None:
    started, finished = record.get("started_at"), record.get("finished_at")
    if not started or not finished:
        return None
    try:
        delta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    except ValueError:
        return None
    return delta.total_seconds()


class JobCollector(Collector):
    """Job metrics read from the job records at scrape time (the store's "jobs" collection),
    so jobs run by any process are counted without hooking the job runner."""

    def __init__(self, store: GraphStore, collection: str = "jobs") -> None:
        self._store = store
        self._collection = collection

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts: dict[tuple[str, str], int] = {}
        last: dict[str, tuple[str, float]] = {}
        for _, record in self._store.list_documents(self._collection):
            kind, status = str(record.get("kind", "")), str(record.get("status", ""))
            counts[kind, status] = counts.get((kind, status), 0) + 1
            seconds = _duration(record)
            finished = str(record.get("finished_at", ""))
            if seconds is not None and finished >= last.get(kind, ("", 0.0))[0]:
                last[kind] = (finished, seconds)
        jobs = GaugeMetricFamily(
            "riskgraph_jobs", "Job records by kind and status.", labels=["kind", "status"]
        )
        for (kind, status), n in sorted(counts.items()):
            jobs.add_metric([kind, status], n)
        yield jobs
        duration = GaugeMetricFamily(
            "riskgraph_job_last_duration_seconds",
            "Duration of the last finished job of each kind (whole seconds: the job records "
            "keep second precision).",
            labels=["kind"],
        )
        for kind, (_, seconds) in sorted(last.items()):
            duration.add_metric([kind], seconds)
        yield duration
