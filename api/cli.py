"""The `riskgraph` command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.service import ServiceSettings, audit_cli, keys_cli
from api.settings import get_settings
from ingest.pipeline import IngestError, IngestReport, ingest_directory
from kg.open import open_store
from kg.store import GraphStore, StoreError
from risk.limits import BankParameters

app = typer.Typer(
    name="riskgraph",
    help="Related-risk knowledge graph for banks: ingest, reason, find groups, circles and rings.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="RISKGRAPH_DB",
        help="SQLite store file (the embedded default).",
        show_default=True,
    ),
]
DEFAULT_DB = Path("riskgraph.db")


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


@contextmanager
def store_at(db: Path, *, read_only: bool = False) -> Iterator[GraphStore]:
    settings = get_settings()
    try:
        store = open_store(
            settings.store,
            db=db,
            neo4j_uri=settings.neo4j_uri,
            neo4j_user=settings.neo4j_user,
            neo4j_password=settings.neo4j_password.get_secret_value(),
            read_only=read_only,
        )
    except StoreError as exc:
        raise fail(str(exc)) from exc
    try:
        yield store
    finally:
        store.close()


@contextmanager
def progress_bar() -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield progress


@app.command()
def generate(
    directory: Annotated[Path, typer.Argument(help="Where to write the CSV files and truth/.")],
    customers: Annotated[int, typer.Option("--customers", "--size", min=50)] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bank.")] = 7,
    bad_rows: Annotated[bool, typer.Option(help="Plant a few malformed rows.")] = False,
) -> None:
    """Generate a synthetic bank (canonical CSV files) with ground truth in DIR/truth/."""
    from ingest.generator import generate_bank

    summary = generate_bank(directory, customers=customers, seed=seed, bad_rows=bad_rows)
    console.print(f"[green]generated[/] {directory} in {summary.seconds:.1f} s")


def _print_ingest(report: IngestReport) -> None:
    table = Table(title=f"ingest job {report.job_id}")
    for column in ("file", "rows", "loaded", "rejected", "rows/s"):
        table.add_column(column, justify="right" if column != "file" else "left")
    for f in report.files:
        table.add_row(
            f.file, str(f.rows), str(f.loaded), str(f.rejected), f"{f.rows_per_second:,.0f}"
        )
    console.print(table)
    console.print(
        f"{report.rows:,} rows in {report.seconds:.1f} s "
        f"({report.rows / max(report.seconds, 1e-9):,.0f} rows/s), {report.aliases} aliases, "
        f"{report.rejected} rejected"
    )


def run_ingest_command(
    store: GraphStore, directory: Path, mapping: Path | None, rejects: Path | None
) -> IngestReport:
    with progress_bar() as progress:
        tasks: dict[str, TaskID] = {}

        def advance(file: str, rows: int, total: int) -> None:
            if file not in tasks:
                tasks[file] = progress.add_task(file, total=total)
            progress.advance(tasks[file], rows)

        try:
            report = ingest_directory(store, directory, mapping=mapping, progress=advance)
        except (IngestError, StoreError) as exc:
            raise fail(f"{exc} — nothing was written") from exc
    _print_ingest(report)
    if report.rejects:
        path = rejects or Path(f"rejects-{report.job_id}.csv")
        report.write_rejects_csv(path)
        console.print(f"[yellow]{len(report.rejects)} rejected values[/] listed in {path}")
    return report


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="Directory with the contract files.")],
    db: DbOption = DEFAULT_DB,
    mapping: Annotated[
        Path | None,
        typer.Option(help="Mapping file (YAML) for a non-canonical layout, or a bundled name."),
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Reject report CSV (default rejects-<job>.csv).")
    ] = None,
) -> None:
    """Load a directory of customer, ownership, guarantee, loan and transaction files."""
    with store_at(db) as store:
        run_ingest_command(store, directory, mapping, rejects)


@app.command()
def reason(
    db: DbOption = DEFAULT_DB,
    rdf: Annotated[
        Path | None,
        typer.Option(help="Materialise this RDF file (N-Triples or Turtle) instead of the store."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where --rdf writes the closure.")] = None,
) -> None:
    """Infer the links nobody recorded (control, groups, related parties, shared identities)."""
    if rdf is not None:
        from reasoning.rdf import materialise_rdf

        if out is None:
            raise fail("--rdf needs --out for the closure")
        summary = materialise_rdf(rdf, out)
        console.print(f"[green]closure[/] of {rdf} written to {out}: {summary}")
        return
    with store_at(db) as store:
        run_reasoning(store)


def run_reasoning(store: GraphStore) -> None:
    from reasoning.materialise import materialise
    from risk.index import build_risk_index

    summary = materialise(store, progress=True)
    index = build_risk_index(store, bank_parameters(store))
    console.print(f"risk index: {len(index.group_of):,} clients in groups")
    table = Table(
        title=f"reasoning: {summary.inferred:,} inferred facts in {summary.seconds:.1f} s"
    )
    table.add_column("predicate")
    table.add_column("facts", justify="right")
    for predicate, count in sorted(summary.per_predicate.items()):
        table.add_row(predicate, f"{count:,}")
    console.print(table)


@app.command()
def explain(
    subject: Annotated[str, typer.Argument(help="Subject entity id (or alias).")],
    predicate: Annotated[str, typer.Argument(help="Inferred predicate, e.g. controls.")],
    object_: Annotated[str, typer.Argument(metavar="OBJECT", help="Object entity id.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print the derivation of an inferred link, down to the source rows (JSON)."""
    import json

    from reasoning.provenance import explain as explain_fact

    with store_at(db, read_only=True) as store:
        tree = explain_fact(store, subject, predicate, object_)
    if tree is None:
        raise fail(f"no inferred fact {predicate}({subject}, {object_}) in {db}")
    typer.echo(json.dumps(tree.to_dict(), ensure_ascii=False, indent=2))


@app.command()
def export(
    rdf: Annotated[Path, typer.Option(help="N-Triples file to write.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Dump the knowledge graph (with inferred links) as RDF under the riskgraph ontology."""
    from reasoning.rdf import export_rdf

    with store_at(db, read_only=True) as store:
        triples = export_rdf(store, rdf)
    console.print(f"[green]{triples:,} triples[/] written to {rdf}")


@app.command()
def rings(db: DbOption = DEFAULT_DB) -> None:
    """The nightly job: detect fraud rings and raise alerts for new and grown ones.

    Ring ids stay stable across runs. Safe to run while the API serves; a crashed run
    leaves nothing behind.
    """
    with store_at(db) as store:
        run_ring_job(store, db)


def run_ring_job(store: GraphStore, db: Path) -> None:
    from risk.rings.nightly import run_ring_detection

    with progress_bar() as progress:
        tasks: dict[str, TaskID] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total or None)
            progress.update(tasks[stage], completed=done, total=total or None)

        run = run_ring_detection(store, progress=advance, artefact_dir=db.resolve().parent)
    summary = run.summary()
    diff = summary["diff"]
    console.print(
        f"run {summary['run_id']}: {summary['flagged']} rings flagged of "
        f"{summary['candidates']} candidates; new {diff['new']}, grown {diff['grown']}, "
        f"shrunk {diff['shrunk']}, dissolved {diff['dissolved']}; "
        f"{summary['alerts']} alerts; peak {summary['peak_rss_mib']:,.0f} MiB"
    )


app.add_typer(audit_cli, name="audit")
app.add_typer(keys_cli, name="keys")

report_app = typer.Typer(help="Risk reports: large exposures, one entity.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("exposures")
def report_exposures(
    db: DbOption = DEFAULT_DB,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write CSV here.")] = None,
) -> None:
    """The bank's large exposures: every client or group above the reporting threshold."""
    import json

    from risk.reports import large_exposure_report, write_large_exposures_csv

    with store_at(db, read_only=True) as store:
        rows = large_exposure_report(store, bank_parameters(store))
    if csv_out is not None:
        with csv_out.open("w", encoding="utf-8", newline="") as handle:
            write_large_exposures_csv(rows, handle)
        console.print(f"{len(rows)} large exposures written to {csv_out}")
        return
    from dataclasses import asdict

    typer.echo(
        json.dumps(
            [{**asdict(r), "breached": r.breached} for r in rows], ensure_ascii=False, indent=2
        )
    )


@report_app.command("entity")
def report_entity(
    entity_id: Annotated[str, typer.Argument(help="Entity id or alias.")],
    db: DbOption = DEFAULT_DB,
    pdf: Annotated[Path | None, typer.Option(help="Write the PDF report here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
) -> None:
    """A risk report for one entity and its group (HTML and/or PDF)."""
    from risk.report_entity import UnknownEntity, render_entity_report

    if pdf is None and html is None:
        raise fail("give --pdf OUT and/or --html OUT")
    with store_at(db, read_only=True) as store:
        params = bank_parameters(store)
        try:
            if pdf is not None:
                pdf.write_bytes(render_entity_report(store, entity_id, "pdf", params=params))
                console.print(f"[green]PDF report[/] written to {pdf}")
            if html is not None:
                html.write_bytes(render_entity_report(store, entity_id, "html", params=params))
                console.print(f"[green]HTML report[/] written to {html}")
        except UnknownEntity as exc:
            raise fail(f"no entity {entity_id!r} in {db}") from exc


def bank_parameters(store: GraphStore) -> BankParameters:
    """The bank's capital: as ingested with the data, then ./bank.toml and the environment."""
    from ingest.pipeline import BANK_COLLECTION, BANK_PARAMETERS_KEY
    from risk.limits import BankParametersError, load_bank_parameters

    try:
        return load_bank_parameters(
            "bank.toml", stored=store.get_document(BANK_COLLECTION, BANK_PARAMETERS_KEY)
        )
    except BankParametersError as exc:
        raise fail(f"{exc} — put tier1_capital and net_capital in bank.toml") from exc


@app.command()
def serve(
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option(envvar="RISKGRAPH_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="RISKGRAPH_PORT")] = 8000,
) -> None:
    """Serve the REST API and the analyst workbench.

    OpenAPI at /openapi.json, docs at /docs. API keys come from RISKGRAPH_API_KEYS
    (`key=role,…`) or RISKGRAPH_API_KEYS_FILE (`sha256:<hex>=role` lines).
    """
    serve_api(db, host, port, None)


def serve_api(db: Path, host: str, port: int, service: ServiceSettings | None) -> None:
    import uvicorn

    from api.app import create_secured_app

    with store_at(db) as store:
        app_ = create_secured_app(store, bank_parameters(store), service)
        console.print(f"serving {db} on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
        # The service layer writes one JSON access line per request itself.
        uvicorn.run(app_, host=host, port=port, access_log=False)


@app.command()
def demo(
    db: DbOption = Path("riskgraph-demo.db"),
    data: Annotated[Path, typer.Option(help="Where the synthetic bank is written.")] = Path(
        "data/demo-bank"
    ),
    customers: Annotated[int, typer.Option(min=50)] = 20_000,
    seed: int = 7,
    host: str = "127.0.0.1",
    port: int = 8000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Synthetic bank → ingest → reason → rings → API, on the embedded store."""
    from ingest.generator import generate_bank

    console.rule("1/4 generate")
    summary = generate_bank(data, customers=customers, seed=seed)
    console.print(f"{customers:,} customers written to {data} in {summary.seconds:.1f} s")
    if db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    with store_at(db) as store:
        console.rule("2/4 ingest")
        run_ingest_command(store, data, None, None)
        console.rule("3/4 reason")
        run_reasoning(store)
        console.rule("4/4 rings")
        run_ring_job(store, db)
    if serve_after:
        from api.security import generate_api_key

        console.rule("serve")
        key = generate_api_key(demo=True)
        example_id = _example_entity(db)
        base = f"http://{host}:{port}"
        console.print(
            f"Workbench: {base}/  (paste the key below into its API-key box)\n"
            f"API key (admin, this run only): [bold]{key}[/]\n"
            f"Try:\n"
            f"  curl -H 'X-API-Key: {key}' {base}/v1/entities/{example_id}\n"
            f"  curl -H 'X-API-Key: {key}' {base}/v1/entities/{example_id}/group\n"
            f"  curl -H 'X-API-Key: {key}' '{base}/v1/search?q=杭州'\n"
            f"  curl -H 'X-API-Key: {key}' -H 'Content-Type: application/json' "
            f'-d \'{{"borrower_id": "{example_id}", "amount": 1000000, '
            f'"guarantor_ids": []}}\' {base}/v1/origination/check',
            soft_wrap=True,  # copyable commands: never folded at the terminal's width
        )
        serve_api(db, host, port, ServiceSettings(api_keys=SecretStr(f"{key}=admin")))


def _example_entity(db: Path) -> str:
    with store_at(db, read_only=True) as store:
        for batch in store.node_batches():
            return str(batch.column("id")[0].as_py())
    return "P000001"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
