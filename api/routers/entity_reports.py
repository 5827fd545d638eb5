"""The risk report of one entity and its group, as a self-contained HTML page or a PDF."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import AsOfDep, ParamsDep, RiskIndexDep, StoreDep
from api.errors import ApiError, NotFound
from risk.report_entity import ReportFormat, UnknownEntity, render_entity_report

router = APIRouter(prefix="/v1", tags=["reports"])

MEDIA_TYPES: dict[ReportFormat, str] = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}


def _report(
    entity_id: str,
    fmt: ReportFormat,
    store: StoreDep,
    params: ParamsDep,
    index: RiskIndexDep,
    as_of: AsOfDep,
) -> Response:
    try:
        body = render_entity_report(store, entity_id, fmt, params=params, index=index, as_of=as_of)
    except UnknownEntity as exc:
        raise NotFound("entity", entity_id) from exc
    except RuntimeError as exc:
        # The PDF renderer (WeasyPrint, pango) is not installed on this server.
        raise ApiError(503, "pdf_unavailable", str(exc)) from exc
    disposition = "inline" if fmt == "html" else "attachment"
    return Response(
        body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'{disposition}; filename="riskgraph-{entity_id}.{fmt}"'},
    )


@router.get(
    "/reports/entity/{entity_id}.html",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}},
)
def get_entity_report_html(
    entity_id: str, store: StoreDep, params: ParamsDep, index: RiskIndexDep, as_of: AsOfDep
) -> Response:
    """The entity's risk report: control and UBOs, group exposure against every limit,
    guarantee circles and chains, ring involvement, alerts, and the derivation of every
    inferred link, with charts as inline SVG."""
    return _report(entity_id, "html", store, params, index, as_of)


@router.get(
    "/reports/entity/{entity_id}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def get_entity_report_pdf(
    entity_id: str, store: StoreDep, params: ParamsDep, index: RiskIndexDep, as_of: AsOfDep
) -> Response:
    """The same report as a PDF (A4)."""
    return _report(entity_id, "pdf", store, params, index, as_of)
