"""The entity risk report (HTML and PDF) over the hand-worked scenario bank
(tests/risk_banks.py): tier-1 capital 100,000,000 CNY, so the connected-group limit (20%)
is 20,000,000; P1's group {P1, P2, C1, C2, C3} owes 8 + 5 + 1 + 4 = 18,000,000."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from risk_banks import write_scenario_bank

from api.app import create_app
from api.routers import entity_reports
from ingest.pipeline import ingest_directory
from kg.sqlite_store import SQLiteStore
from kg.store import GraphStore
from reasoning.materialise import materialise
from risk.limits import BankParameters, load_bank_parameters
from risk.report_entity import UnknownEntity, gather_entity_report, render_entity_report


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GraphStore, BankParameters]]:
    root: Path = tmp_path_factory.mktemp("report")
    directory = write_scenario_bank(root / "bank")
    store = SQLiteStore(root / "kg.db")
    ingest_directory(store, directory)
    materialise(store)
    yield store, load_bank_parameters(directory / "bank.toml", env={})
    store.close()


def html_of(bank: tuple[GraphStore, BankParameters], entity: str) -> str:
    store, params = bank
    return render_entity_report(store, entity, "html", params=params).decode("utf-8")


def pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_report_names_the_entity_asked_for_by_alias(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    html = html_of(bank, "P1B")
    assert "风险报告: 张伟" in html and "Person P1" in html


def test_report_shows_group_exposure_against_the_group_limit(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    html = html_of(bank, "P1")
    assert '<b id="group-exposure">¥18,000,000</b>' in html
    assert "<td class=num>¥20,000,000</td><td class=num>90.0%</td>" in html


def test_report_lists_every_group_member(bank: tuple[GraphStore, BankParameters]) -> None:
    store, params = bank
    data = gather_entity_report(store, "P1", params)
    assert {m.id for m in data.group.members} == {"P1", "P2", "C1", "C2", "C3"}


def test_pdf_text_carries_the_entity_name_and_the_key_figures(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    pytest.importorskip("weasyprint", reason="PDF reports need WeasyPrint")
    store, params = bank
    pdf = render_entity_report(store, "P1", "pdf", params=params)
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert "张伟" in text
    assert "¥18,000,000" in text and "¥20,000,000" in text


def test_report_draws_the_guarantee_circle_with_its_total(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    html = html_of(bank, "C7")
    # C6 → C7 → C8 → C6: 1,000,000 + 2,000,000 + 3,000,000.
    assert "Circle 1: 3 parties, ¥6,000,000" in html
    assert "<svg class=circle" in html
    assert "Guarantee circle of 3 parties" in html  # also an alert


def test_report_gives_the_chain_through_an_entity_outside_circles(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    html = html_of(bank, "C12")
    # C11 → C12 → C13 → C14: 100,000 + 200,000 + 300,000.
    assert "Chain of 3 guarantees, ¥600,000" in html


def test_report_explains_aggregated_control_down_to_source_rows(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    html = html_of(bank, "C2")
    start = html.index("<h3>controls: 张伟")
    explanation = html[start : html.index("</div>", start)]
    assert "shareholdings.csv:" in explanation
    assert "HOLDS_SHARES(C1, C2)" in explanation


def test_limit_breach_is_raised_as_an_alert(bank: tuple[GraphStore, BankParameters]) -> None:
    store, _ = bank
    tight = BankParameters(tier1_capital=50_000_000.0, net_capital=60_000_000.0)
    data = gather_entity_report(store, "P1", tight)
    # 18,000,000 against 20% of 50,000,000 = 10,000,000.
    assert any(a.startswith("Limit breached: connected_group") for a in data.alerts)


def test_as_of_report_leaves_out_holdings_recorded_later(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    store, params = bank
    now = gather_entity_report(store, "C2", params)
    before = gather_entity_report(store, "C2", params, as_of="2024-03-01")
    assert "P1" in {r.controller for r in now.controllers}
    # P1's own 25% of C2 was recorded on 2024-06-01; C1's 30% alone is no control.
    assert "P1" not in {r.controller for r in before.controllers}


def test_report_says_ring_involvement_is_not_available_before_ring_detection(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    assert "ring detection has not run on this store" in html_of(bank, "P1")


def test_an_unknown_entity_is_refused(bank: tuple[GraphStore, BankParameters]) -> None:
    store, params = bank
    with pytest.raises(UnknownEntity):
        render_entity_report(store, "NOPE", "html", params=params)


def test_the_api_serves_the_report_as_html_and_pdf(
    bank: tuple[GraphStore, BankParameters],
) -> None:
    pytest.importorskip("weasyprint", reason="PDF reports need WeasyPrint")
    store, params = bank
    app = create_app(store, params, preload_index=False)
    if not any(getattr(r, "path", "").startswith("/v1/reports/entity/") for r in app.routes):
        app.include_router(entity_reports.router)  # until create_app includes it
    with TestClient(app) as http:
        html = http.get("/v1/reports/entity/P1.html")
        pdf = http.get("/v1/reports/entity/P1.pdf")
        missing = http.get("/v1/reports/entity/NOPE.pdf")
    assert html.headers["content-type"].startswith("text/html") and "张伟" in html.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    assert missing.status_code == 404 and missing.json()["code"] == "entity_not_found"
