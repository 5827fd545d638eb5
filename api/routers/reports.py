"""The bank-wide large-exposure report, as JSON or CSV."""

from __future__ import annotations

import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import ParamsDep, RiskIndexDep, StoreDep
from api.routers.groups import limit_public
from api.schemas import LargeExposurePublic, LargeExposureReportPublic
from risk.reports import large_exposure_report, write_large_exposures_csv

router = APIRouter(prefix="/v1", tags=["reports"])


@router.get(
    "/reports/large-exposures",
    response_model=LargeExposureReportPublic,
    responses={200: {"content": {"text/csv": {}}}},
)
def get_large_exposures(
    store: StoreDep,
    params: ParamsDep,
    index: RiskIndexDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> LargeExposureReportPublic | Response:
    """Every client and connected group at or above the large-exposure threshold, largest
    first, with the utilisation of each applicable limit."""
    rows = large_exposure_report(store, params, index)
    if format == "csv":
        out = io.StringIO()
        write_large_exposures_csv(rows, out)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
    return LargeExposureReportPublic(
        profile=params.profile,
        threshold=params.large_exposure_threshold,
        rows=[
            LargeExposurePublic(
                kind=r.kind,
                id=r.id,
                name=r.name,
                members=r.members,
                exposure=r.exposure,
                pct_of_tier1=round(r.pct_of_tier1, 6),
                guarantees_given=r.guarantees_given,
                interbank=r.interbank,
                limits=[limit_public(u) for u in r.limits],
                breached=r.breached,
            )
            for r in rows
        ],
    )
