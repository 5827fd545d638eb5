"""The audit trail, for admins: records in sequence order, from a sequence number on."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.audit import AuditLog, AuditUnavailable
from api.errors import ApiError

router = APIRouter(prefix="/v1", tags=["audit"])


class AuditRecordPublic(BaseModel):
    seq: int
    ts: str
    request_id: str
    key_id: str = Field(description="the first 12 hex digits of the key's SHA-256, never the key")
    role: str
    method: str
    route: str = Field(description="the route template")
    path_params: dict[str, Any] = Field(default_factory=dict)
    query: list[list[str]] = Field(default_factory=list)
    body: Any = None
    status: int
    response_sha256: str | None = Field(description="SHA-256 of the response body as sent")
    reason_codes: list[str] | None = Field(
        default=None, description="an origination check's decision flag codes"
    )
    versions: dict[str, str] = Field(description="riskgraph version and rules digest")
    duration_ms: float
    prev_hash: str
    hash: str


class AuditPagePublic(BaseModel):
    records: list[AuditRecordPublic]
    next_since: int | None = Field(description="pass as `since` for the next page; null at the end")
    head_seq: int
    head_hash: str


def _audit_log(request: Request) -> AuditLog:
    log: AuditLog | None = getattr(request.app.state, "audit_log", None)
    if log is None:
        raise ApiError(503, "audit_disabled", "the audit trail is not enabled on this server")
    return log


@router.get("/audit", response_model=AuditPagePublic)
def list_audit_records(
    request: Request,
    since: Annotated[int, Query(ge=0, le=2**62, description="records after this sequence")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPagePublic:
    """Audit records after sequence number `since`, oldest first, with the chain's head."""
    log = _audit_log(request)
    try:
        records = log.read(since, limit)
        head_seq, head_hash = log.head()
    except AuditUnavailable as exc:
        raise ApiError(503, "audit_unavailable", str(exc)) from exc
    next_since = records[-1]["seq"] if len(records) == limit else None
    return AuditPagePublic(
        records=[AuditRecordPublic.model_validate(r) for r in records],
        next_since=next_since,
        head_seq=head_seq,
        head_hash=head_hash,
    )
