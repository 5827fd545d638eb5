"""The nightly ring-detection job: detect, keep ring ids stable, diff, alert, store atomically.

`run_ring_detection` reads the store (streams; the API keeps serving), builds the fraud
graph, detects and scores rings, matches the flagged rings to the previous run's so that a
ring keeps its id, diffs the two runs and writes everything in one `store.transaction()`:

* collection "ring_runs": one document per run (metadata, stage timings, peak memory, the
  flagged rings, the diff) and the pointer document "latest";
* collection "rings": the current state of every ring ever flagged, by stable id, with its
  history across runs. A dissolved ring keeps its last members under `last_members` and an
  empty `members` list, so readers of current rings (the risk index) skip it;
* collection "alerts": one alert per new and per grown ring.

A crash before the commit leaves the store as it was; running again just computes again.
The fraud graph is saved next to the SQLite file (when `artefact_dir` is given) so the API
answers local ring queries without rebuilding it.
"""

from __future__ import annotations

import resource
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kg.store import GraphStore
from risk.rings.detect import DetectionParams, Ring, candidate_communities, detect_rings
from risk.rings.fraud_graph import FraudGraph, build_fraud_graph

RUNS_COLLECTION = "ring_runs"
RINGS_COLLECTION = "rings"
ALERTS_COLLECTION = "alerts"
LATEST_KEY = "latest"
MATCH_JACCARD = 0.5
ARTEFACT_PREFIX = "fraud-graph-"

# progress(stage, done, total): `total` is 0 while a stage's size is unknown.
ProgressCallback = Callable[[str, int, int], None]

STAGES: tuple[str, ...] = ("fraud graph", "clustering", "scoring", "matching", "writing")


@dataclass(slots=True)
class RingChange:
    """How one ring changed since the previous run."""

    ring_id: str
    change: str  # "new" | "grown" | "shrunk" | "unchanged" | "dissolved"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RingRun:
    """What one run found and wrote."""

    run_id: str
    previous_run_id: str | None
    started_at: str
    finished_at: str
    rings: list[dict[str, Any]]
    changes: list[RingChange]
    alerts: list[dict[str, Any]]
    candidates: int
    stage_seconds: dict[str, float]
    peak_rss_mib: float
    artefact: str | None
    graph: FraudGraph | None = None

    def summary(self) -> dict[str, Any]:
        """What a job record or a log line needs: counts, the diff, timings."""
        return {
            "run_id": self.run_id,
            "previous_run_id": self.previous_run_id,
            "candidates": self.candidates,
            "flagged": len(self.rings),
            "diff": {kind: len(ids) for kind, ids in self.diff.items()},
            "alerts": len(self.alerts),
            "stage_seconds": self.stage_seconds,
            "peak_rss_mib": round(self.peak_rss_mib, 1),
        }

    @property
    def diff(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {k: [] for k in ("new", "grown", "shrunk", "dissolved")}
        for change in self.changes:
            if change.change in out:
                out[change.change].append(change.ring_id)
        return out


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident set so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def match_rings(
    previous: dict[str, set[str]], current: list[set[str]], min_jaccard: float = MATCH_JACCARD
) -> dict[int, str]:
    """Match current rings to previous ring ids by member overlap.

    Pairs with Jaccard ≥ `min_jaccard` are taken greedily, best overlap first (ties: the
    lower current index, then the lower previous id); each ring is matched at most once.

    Example:
        >>> match_rings({"R1": {"a", "b", "c"}}, [{"x", "y"}, {"a", "b", "c", "d"}])
        {1: 'R1'}
    """
    by_member: dict[str, list[str]] = {}
    for ring_id, members in previous.items():
        for m in members:
            by_member.setdefault(m, []).append(ring_id)
    pairs: list[tuple[float, int, str]] = []
    for k, members in enumerate(current):
        for ring_id in sorted({r for m in members for r in by_member.get(m, [])}):
            old = previous[ring_id]
            jaccard = len(members & old) / len(members | old)
            if jaccard >= min_jaccard:
                pairs.append((-jaccard, k, ring_id))
    pairs.sort()
    matched: dict[int, str] = {}
    taken: set[str] = set()
    for _, k, ring_id in pairs:
        if k not in matched and ring_id not in taken:
            matched[k] = ring_id
            taken.add(ring_id)
    return matched


def _new_ring_id(run_id: str, k: int) -> str:
    return f"ring-{run_id[-8:]}-{k:04d}"


def run_ring_detection(
    store: GraphStore,
    *,
    progress: ProgressCallback | None = None,
    params: DetectionParams | None = None,
    artefact_dir: Path | None = None,
    graph: FraudGraph | None = None,
) -> RingRun:
    """Detect rings on the store's current data and store the results as one run.

    Args:
        store: the graph store (read while the API keeps serving; written once at the end).
        progress: called with (stage, done, total) as the job advances; stages are `STAGES`.
        params: detection settings.
        artefact_dir: directory to save the fraud graph in (`fraud-graph-<run id>.npz`;
            older artefacts there are removed after the commit). None keeps it in memory
            only (`RingRun.graph`).
        graph: a fraud graph already built from this store (skips the build).

    Returns:
        The run: flagged rings with stable ids, the diff, alerts, timings, peak memory.

    Example:
        >>> run = run_ring_detection(store, artefact_dir=Path("."))  # doctest: +SKIP
        >>> run.diff["new"][:1]
        ['ring-3f2a9c1b-0000']
    """
    params = params or DetectionParams()
    started_at = datetime.now(UTC)
    run_id = started_at.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    timings: dict[str, float] = {}
    memory: dict[str, float] = {}

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    def finish(stage: str, since: float) -> None:
        timings[stage] = round(time.perf_counter() - since, 3)
        memory[stage] = round(_peak_rss_mib(), 1)
        report(stage, 1, 1)

    mark = time.perf_counter()
    report("fraud graph", 0, 0)
    if graph is None:
        graph = build_fraud_graph(
            store, params.graph, progress=lambda name: report("fraud graph", 0, 0)
        )
    finish("fraud graph", mark)

    mark = time.perf_counter()
    report("clustering", 0, 0)
    labels = candidate_communities(graph, params)
    finish("clustering", mark)

    mark = time.perf_counter()
    rings = detect_rings(
        graph, params, labels=labels, progress=lambda d, t: report("scoring", d, t)
    )
    flagged = [r for r in rings if r.flagged]
    finish("scoring", mark)

    mark = time.perf_counter()
    report("matching", 0, 0)
    latest = store.get_document(RUNS_COLLECTION, LATEST_KEY)
    previous_run_id = str(latest["run_id"]) if latest else None
    stored = {key: body for key, body in store.list_documents(RINGS_COLLECTION)}
    active = {
        key: set(body.get("members", []))
        for key, body in stored.items()
        if body.get("status") == "active"
    }
    member_sets = [{str(graph.ids[i]) for i in r.members.tolist()} for r in flagged]
    matched = match_rings(active, member_sets)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ring_docs: list[dict[str, Any]] = []
    changes: list[RingChange] = []
    alerts: list[dict[str, Any]] = []
    fresh = 0
    for k, (ring, members) in enumerate(zip(flagged, member_sets, strict=True)):
        if k in matched:
            ring_id = matched[k]
            old = active[ring_id]
            added, removed = sorted(members - old), sorted(old - members)
            kind = "grown" if added else "shrunk" if removed else "unchanged"
        else:
            ring_id = _new_ring_id(run_id, fresh)
            fresh += 1
            added, removed, kind = sorted(members), [], "new"
        changes.append(RingChange(ring_id, kind, added, removed))
        ring_docs.append(_ring_summary(graph, ring, ring_id, k + 1, kind, added, removed))
        if kind in ("new", "grown"):
            alerts.append(
                {
                    "alert_id": f"{run_id}-{ring_id}",
                    "run_id": run_id,
                    "ring_id": ring_id,
                    "kind": f"ring_{kind}",
                    "created_at": now,
                    "score": ring_docs[-1]["score"],
                    "region": ring_docs[-1]["region"],
                    "size": ring.size,
                    "added_members": added,
                    "message": (
                        f"new suspected fraud ring of {ring.size} customers"
                        if kind == "new"
                        else f"fraud ring {ring_id} grew by {len(added)} to {ring.size}"
                    ),
                }
            )
    for ring_id in sorted(set(active) - set(matched.values())):
        changes.append(RingChange(ring_id, "dissolved", [], sorted(active[ring_id])))
    finish("matching", mark)

    mark = time.perf_counter()
    report("writing", 0, 0)
    artefact: Path | None = None
    if artefact_dir is not None:
        artefact = artefact_dir / f"{ARTEFACT_PREFIX}{run_id}.npz"
        graph.save(artefact)
    finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    # The run document can only hold what happened before its own commit: the artefact
    # save and the preparation. The returned `RingRun` has the full writing time.
    timings["writing"] = round(time.perf_counter() - mark, 3)
    memory["writing"] = round(_peak_rss_mib(), 1)
    run_doc: dict[str, Any] = {
        "run_id": run_id,
        "previous_run_id": previous_run_id,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at,
        "params": params.as_document(),
        "customers": graph.num_customers,
        "edges": int(graph.adjacency.nnz // 2),
        "candidates": len(rings),
        "flagged": len(flagged),
        "rings": ring_docs,
        "diff": {
            kind: [c.ring_id for c in changes if c.change == kind]
            for kind in ("new", "grown", "shrunk", "unchanged", "dissolved")
        },
        "alerts": [a["alert_id"] for a in alerts],
        "stage_seconds": dict(timings),
        "graph_stage_seconds": {k: round(v, 3) for k, v in graph.stage_seconds.items()},
        "peak_rss_mib": dict(memory),
        "artefact": str(artefact) if artefact is not None else None,
    }
    with store.transaction():
        for doc, change in zip(ring_docs, changes[: len(ring_docs)], strict=True):
            body = stored.get(doc["ring_id"], {})
            history = list(body.get("history", []))
            history.append(
                {
                    "run_id": run_id,
                    "change": change.change,
                    "size": doc["size"],
                    "score": doc["score"],
                    "added": change.added,
                    "removed": change.removed,
                }
            )
            store.put_document(
                RINGS_COLLECTION,
                doc["ring_id"],
                {
                    **doc,
                    "status": "active",
                    "first_run_id": body.get("first_run_id", run_id),
                    "last_run_id": run_id,
                    "history": history,
                },
            )
        for change in changes:
            if change.change != "dissolved":
                continue
            body = dict(stored[change.ring_id])
            history = list(body.get("history", []))
            history.append(
                {"run_id": run_id, "change": "dissolved", "size": 0, "score": None,
                 "added": [], "removed": change.removed}
            )  # fmt: skip
            body.update(
                status="dissolved",
                last_members=body.get("members", []),
                members=[],
                history=history,
                last_run_id=run_id,
            )
            store.put_document(RINGS_COLLECTION, change.ring_id, body)
        for alert in alerts:
            store.put_document(ALERTS_COLLECTION, alert["alert_id"], alert)
        store.put_document(RUNS_COLLECTION, run_id, run_doc)
        store.put_document(RUNS_COLLECTION, LATEST_KEY, {"run_id": run_id})
    if artefact_dir is not None:
        for stale in artefact_dir.glob(f"{ARTEFACT_PREFIX}*.npz"):
            if stale != artefact:
                stale.unlink(missing_ok=True)
    timings["writing"] = round(time.perf_counter() - mark, 3)
    memory["writing"] = round(_peak_rss_mib(), 1)
    report("writing", 1, 1)
    return RingRun(
        run_id=run_id,
        previous_run_id=previous_run_id,
        started_at=run_doc["started_at"],
        finished_at=finished_at,
        rings=ring_docs,
        changes=changes,
        alerts=alerts,
        candidates=len(rings),
        stage_seconds=timings,
        peak_rss_mib=max(memory.values()),
        artefact=run_doc["artefact"],
        graph=graph,
    )


def _ring_summary(
    graph: FraudGraph,
    ring: Ring,
    ring_id: str,
    rank: int,
    change: str,
    added: list[str],
    removed: list[str],
) -> dict[str, Any]:
    evidence = ring.evidence.to_document(graph.ids)
    return {
        "ring_id": ring_id,
        "rank": rank,
        "members": sorted(str(graph.ids[i]) for i in ring.members.tolist()),
        "size": ring.size,
        "score": ring.score,
        "region": evidence["region"],
        "region_share": evidence["region_share"],
        "evidence": evidence,
        "change": change,
        "added": added,
        "removed": removed,
    }


def latest_run(store: GraphStore) -> dict[str, Any] | None:
    """The latest run document, or None before the first run."""
    pointer = store.get_document(RUNS_COLLECTION, LATEST_KEY)
    if pointer is None:
        return None
    return store.get_document(RUNS_COLLECTION, str(pointer["run_id"]))
