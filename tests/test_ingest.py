"""Ingest of the canonical contract: loads, rejects, resolves entities, stays idempotent."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.contract import CONTRACT_BY_NAME
from ingest.identifiers import resident_id_check_char, uscc_check_char
from ingest.pipeline import IngestError, _Resolver, ingest_directory
from ingest.validate import validate_batch
from kg.model import Direction, Label, RelType
from kg.sqlite_store import SQLiteStore

ID_ZHANG = "33010219800101123" + resident_id_check_char("33010219800101123")
ID_WANG = "33010219820202234" + resident_id_check_char("33010219820202234")
USCC_A = "91330100MA2B00001" + uscc_check_char("91330100MA2B00001")
USCC_B = "91330200MA2B00002" + uscc_check_char("91330200MA2B00002")


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text.strip() + "\n", encoding="utf-8")


@pytest.fixture()
def bank(tmp_path: Path) -> Path:
    """A small hand-written bank: 3 person records (2 of one person), 2 companies."""
    directory = tmp_path / "bank"
    directory.mkdir()
    write(
        directory,
        "persons.csv",
        f"""
person_id,name,id_number,phone,address,region_code,birth_date
P1,张伟,{ID_ZHANG},+86 138-0000-0001,杭州市西湖区文三路１２号,330106,1980-01-01
P2,王芳,{ID_WANG},13800000002,宁波市鄞州区,330212,1982-02-02
P1B,张伟,{ID_ZHANG},,,330106,1980-01-01
""",
    )
    write(
        directory,
        "companies.csv",
        f"""
company_id,name,uscc,region_code,registered_capital,is_financial
C1,杭州西湖科技有限公司,{USCC_A},330106,5000000,false
C2,宁波港口物流有限公司,{USCC_B},330212,8000000,false
""",
    )
    write(
        directory,
        "shareholdings.csv",
        """
holder_id,company_id,share_pct,voting_pct,as_of
P1,C1,60,,2024-01-01
P1B,C2,10,,2024-01-01
C1,C2,45,50,2024-01-01
""",
    )
    write(directory, "positions.csv", "person_id,company_id,role\nP2,C1,director\n")
    write(directory, "kinships.csv", "person_id,relative_id,relation\nP1,P2,spouse\n")
    write(
        directory,
        "loans.csv",
        """
loan_id,borrower_id,amount,balance,start_date,maturity_date,classification,branch
L1,C1,1000000,800000,2024-01-01,2026-01-01,normal,杭州分行
L2,P1B,200000,150000,2024-03-01,2025-03-01,substandard,杭州分行
""",
    )
    write(
        directory,
        "guarantees.csv",
        """
guarantee_id,guarantor_id,borrower_id,loan_id,amount,start_date,end_date,kind
G1,C2,C1,L1,500000,2024-01-01,2026-01-01,guarantee
G2,C1,C2,,300000,2024-01-01,2026-01-01,guarantee
""",
    )
    write(
        directory,
        "accounts.csv",
        "account_id,owner_id,branch,opened_date\nA1,P1,杭州,2020-01-01\nA2,C1,杭州,2020-01-01\n",
    )
    write(
        directory,
        "transactions.csv",
        """
txn_id,from_account,to_account,amount,ts,channel
T1,A1,A2,100,2024-01-01T10:00:00,mobile
T2,A1,A2,50.5,2024-01-02T10:00:00,mobile
T3,A2,A1,70,2024-01-03T10:00:00,counter
""",
    )
    write(
        directory,
        "devices.csv",
        "owner_id,device_id,first_seen\nP1,D1,2024-01-01\nP2,D1,2024-02-01\n",
    )
    return directory


@pytest.fixture()
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "kg.db")


def counts(store: SQLiteStore) -> dict[str, int]:
    result = {label.value: store.count_nodes(label) for label in Label}
    result.update({t.value: store.count_edges(t) for t in RelType})
    result["transactions"] = store.count_transactions()
    return result


def test_every_file_loads_into_nodes_and_edges(bank: Path, store: SQLiteStore) -> None:
    report = ingest_directory(store, bank)
    assert report.rejected == 0
    assert counts(store) == {
        "Person": 2,
        "Company": 2,
        "Account": 2,
        "Loan": 2,
        "Device": 1,
        "HOLDS_SHARES": 3,
        "HOLDS_POSITION": 1,
        "RELATIVE_OF": 1,
        "GUARANTEES": 2,
        "BORROWED": 2,
        "OWNS_ACCOUNT": 2,
        "TRANSFERRED": 2,
        "USES_DEVICE": 2,
        "transactions": 3,
    }


def test_duplicate_customer_records_become_one_entity_with_an_alias(
    bank: Path, store: SQLiteStore
) -> None:
    report = ingest_directory(store, bank)
    assert report.aliases == 1
    assert store.resolve("P1B") == "P1"
    node = store.get_node("P1B")
    assert node is not None and node.id == "P1"
    # Relationships recorded against the duplicate number land on the one entity.
    holdings = store.neighbours("P1", RelType.HOLDS_SHARES, Direction.OUT)
    assert sorted(e.dst for e in holdings) == ["C1", "C2"]
    [loan] = store.neighbours("P1", RelType.BORROWED, Direction.OUT)
    assert loan.dst == "L2"


def test_identifiers_are_normalised(bank: Path, store: SQLiteStore) -> None:
    ingest_directory(store, bank)
    node = store.get_node("P1")
    assert node is not None
    assert node.props["phone"] == "13800000001"
    assert node.props["address_norm"] == "杭州市西湖区文三路12号"


def test_voting_pct_defaults_to_share_pct(bank: Path, store: SQLiteStore) -> None:
    ingest_directory(store, bank)
    by_dst = {e.dst: e.props for e in store.neighbours("P1", RelType.HOLDS_SHARES, Direction.OUT)}
    assert by_dst["C1"]["voting_pct"] == 60.0
    [c1_in_c2] = store.neighbours("C1", RelType.HOLDS_SHARES, Direction.OUT)
    assert (c1_in_c2.props["share_pct"], c1_in_c2.props["voting_pct"]) == (45.0, 50.0)


def test_provenance_points_at_the_source_line(bank: Path, store: SQLiteStore) -> None:
    report = ingest_directory(store, bank)
    [edge] = store.neighbours("C1", RelType.HOLDS_SHARES, Direction.OUT)
    assert edge.provenance is not None
    assert (edge.provenance.source, edge.provenance.line) == ("shareholdings.csv", 4)
    assert edge.provenance.job_id == report.job_id


def test_second_ingest_of_the_same_files_changes_nothing(bank: Path, store: SQLiteStore) -> None:
    ingest_directory(store, bank)
    before = counts(store)
    report = ingest_directory(store, bank)
    assert counts(store) == before
    assert report.rejected == 0
    assert store.resolve("P1B") == "P1"


def test_bad_rows_are_rejected_with_reasons_and_good_rows_load(
    bank: Path, store: SQLiteStore
) -> None:
    bad_id = ID_WANG[:17] + ("0" if ID_WANG[17] != "0" else "1")
    write(
        bank,
        "persons.csv",
        f"""
person_id,name,id_number,phone,address,region_code,birth_date
P1,张伟,{ID_ZHANG},13800000001,,330106,1980-01-01
P2,王芳,{bad_id},,,330212,1982-02-02
P3,李娜,,,,330212,1982-13-45
P4,赵强,,,,330212,
P5,钱多,,,,330212,1990-02-30
""",
    )
    write(
        bank,
        "shareholdings.csv",
        """
holder_id,company_id,share_pct,voting_pct,as_of
P1,C1,60,,2024-01-01
P4,C1,130,,2024-01-01
NOBODY,C1,5,,2024-01-01
C1,P1,5,,2024-01-01
""",
    )
    write(bank, "positions.csv", "person_id,company_id,role\nP4,C1,chairman\n")
    write(bank, "kinships.csv", "person_id,relative_id,relation\nP1,P4,spouse\n")
    write(
        bank,
        "loans.csv",
        """
loan_id,borrower_id,amount,balance,start_date,maturity_date,classification,branch
L1,C1,-5,0,2024-01-01,2026-01-01,normal,x
L2,P1,200000,150000,2024-03-01,2025-03-01,substandard,x
""",
    )
    write(
        bank,
        "guarantees.csv",
        """
guarantee_id,guarantor_id,borrower_id,loan_id,amount,start_date,end_date,kind
G1,C2,C1,,500000,2024-01-01,2026-01-01,guarantee
""",
    )
    report = ingest_directory(store, bank)
    found = {(r.file, r.line, r.column, r.reason) for r in report.rejects}
    assert found == {
        ("persons.csv", 3, "id_number", "invalid resident id (GB 11643 check digit)"),
        ("persons.csv", 4, "birth_date", "unparseable date (expected YYYY-MM-DD)"),
        ("persons.csv", 6, "birth_date", "unparseable date (expected YYYY-MM-DD)"),
        ("shareholdings.csv", 3, "share_pct", "percentage out of range (0 < pct <= 100)"),
        ("shareholdings.csv", 4, "holder_id", "unknown company/person id"),
        ("shareholdings.csv", 5, "company_id", "id is a Person, expected company"),
        (
            "positions.csv",
            2,
            "role",
            "not one of actual_controller, director, executive, financial_controller, "
            "legal_representative, supervisor",
        ),
        ("loans.csv", 2, "amount", "negative amount"),
        # P2 was rejected above, so the device row that names it points nowhere.
        ("devices.csv", 3, "owner_id", "unknown company/person id"),
    }
    assert store.count_nodes(Label.PERSON) == 2
    assert store.count_edges(RelType.HOLDS_SHARES) == 1
    assert store.count_edges(RelType.RELATIVE_OF) == 1
    assert store.count_nodes(Label.LOAN) == 1
    job = store.get_document("ingest_jobs", report.job_id)
    assert job is not None and job["rejected"] == 9


def test_missing_required_column_fails_the_job_and_changes_nothing(
    bank: Path, store: SQLiteStore
) -> None:
    ingest_directory(store, bank)
    before = counts(store)
    write(bank, "shareholdings.csv", "holder_id,company_id,as_of\nP2,C1,2024-01-01\n")
    write(bank, "persons.csv", "person_id,name\nP9,新客户\n")
    with pytest.raises(
        IngestError, match=r"shareholdings\.csv: missing required column\(s\) share_pct"
    ):
        ingest_directory(store, bank)
    assert counts(store) == before
    assert store.get_node("P9") is None


def test_a_file_that_is_not_utf8_csv_fails_the_job_and_changes_nothing(
    bank: Path, store: SQLiteStore
) -> None:
    (bank / "devices.csv").write_bytes(b"owner_id,device_id\nP1,\xff\xfe\xfa\n")
    with pytest.raises(IngestError, match=r"devices\.csv"):
        ingest_directory(store, bank)
    assert store.count_nodes() == 0
    # The thread that reads ahead stopped with the job.
    assert not [t for t in threading.enumerate() if t.name.startswith("riskgraph-read")]


def test_missing_entity_file_fails_the_job(bank: Path, store: SQLiteStore) -> None:
    (bank / "companies.csv").unlink()
    with pytest.raises(IngestError, match=r"companies\.csv"):
        ingest_directory(store, bank)
    assert store.count_nodes() == 0


def test_parquet_files_load_like_csv(bank: Path, tmp_path: Path) -> None:
    parquet_dir = tmp_path / "parquet"
    shutil.copytree(bank, parquet_dir)
    for name in ("shareholdings", "loans"):
        csv_path = parquet_dir / f"{name}.csv"
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(csv_path)
        pq.write_table(table, parquet_dir / f"{name}.parquet")
        csv_path.unlink()
    from_csv = SQLiteStore(tmp_path / "csv.db")
    from_parquet = SQLiteStore(tmp_path / "parquet.db")
    ingest_directory(from_csv, bank)
    ingest_directory(from_parquet, parquet_dir)
    assert counts(from_parquet) == counts(from_csv)
    [l1] = [e for e in from_parquet.neighbours("C1", RelType.BORROWED, Direction.OUT)]
    loan = from_parquet.get_node(l1.dst)
    assert loan is not None and loan.props["balance"] == 800000.0
    assert pa is not None


def test_utf8_bom_is_accepted(bank: Path, store: SQLiteStore) -> None:
    text = (bank / "companies.csv").read_text(encoding="utf-8")
    (bank / "companies.csv").write_text("\ufeff" + text, encoding="utf-8")
    report = ingest_directory(store, bank)
    assert report.rejected == 0
    assert store.count_nodes(Label.COMPANY) == 2


def test_bank_parameters_beside_the_data_are_kept_in_the_store(
    bank: Path, store: SQLiteStore
) -> None:
    write(bank, "bank.toml", "tier1_capital = 5e9\nnet_capital = 6e9\n")
    ingest_directory(store, bank)
    assert store.get_document("bank", "parameters") == {"tier1_capital": 5e9, "net_capital": 6e9}


def test_invalid_bank_parameters_fail_the_job(bank: Path, store: SQLiteStore) -> None:
    write(bank, "bank.toml", "tier1_capital = -1\n")
    with pytest.raises(IngestError, match="tier1_capital"):
        ingest_directory(store, bank)
    assert store.count_nodes() == 0


def test_a_device_points_at_the_first_row_that_names_it(bank: Path, store: SQLiteStore) -> None:
    ingest_directory(store, bank)
    device = store.get_node("D1")
    assert device is not None and device.provenance is not None
    assert (device.provenance.source, device.provenance.line) == ("devices.csv", 2)


def test_a_bulk_load_into_an_empty_store_rebuilds_every_index(
    bank: Path, store: SQLiteStore, tmp_path: Path
) -> None:
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    fresh = SQLiteStore(tmp_path / "fresh.db")
    ingest_directory(store, bank)
    assert store._conn.execute(query).fetchall() == fresh._conn.execute(query).fetchall()


def test_a_record_reusing_another_entitys_id_is_rejected(bank: Path, store: SQLiteStore) -> None:
    write(
        bank,
        "accounts.csv",
        "account_id,owner_id,branch,opened_date\nA1,P1,杭州,2020-01-01\nP2,C1,杭州,2020-01-01\n",
    )
    report = ingest_directory(store, bank)
    found = {(r.file, r.line, r.column, r.reason) for r in report.rejects}
    assert ("accounts.csv", 3, "account_id", "id already used by a Person") in found
    node = store.get_node("P2")
    assert node is not None and node.label == Label.PERSON


def test_a_rejected_record_does_not_claim_its_identifier(bank: Path, store: SQLiteStore) -> None:
    """The first record of an id number reuses a company's id and is rejected; the next
    record of that id number is the person (before, it became an alias of the company id
    and the whole job failed)."""
    ingest_directory(store, bank)
    id_li = "33010219900303345" + resident_id_check_char("33010219900303345")
    for name in ("shareholdings", "positions", "kinships", "loans", "guarantees", "devices"):
        (bank / f"{name}.csv").unlink()
    (bank / "accounts.csv").unlink()
    (bank / "transactions.csv").unlink()
    write(
        bank,
        "persons.csv",
        "person_id,name,id_number,phone,address,region_code,birth_date\n"
        f"C1,李四,{id_li},,,330106,1990-03-03\n"
        f"P7,李四,{id_li},,,330106,1990-03-03\n",
    )
    report = ingest_directory(store, bank)
    assert [(r.line, r.column, r.reason) for r in report.rejects] == [
        (2, "person_id", "id already used by a Company")
    ]
    person = store.get_node("P7")
    assert person is not None and person.label == Label.PERSON
    assert person.props["id_number"] == id_li
    company = store.get_node("C1")
    assert company is not None and company.label == Label.COMPANY


def test_columns_checked_side_by_side_reject_what_one_thread_rejects() -> None:
    """The job's first batch is validated on two threads: same rows kept, and the same
    rejects in the same order (by column, then line) as one thread lists them."""
    spec = CONTRACT_BY_NAME["persons"]
    table = pa.table(
        {
            "person_id": ["P1", "P2", None, "P4"],
            "name": ["甲", "乙", "丙", "丁"],
            "id_number": [ID_ZHANG, "330102198001011239", ID_WANG, "bad"],
            "phone": ["138 0000 0001", None, "13800000003", "x"],
            "address": ["杭州市　文三路", None, None, "宁波市"],
            "region_code": ["330106", "999999", "330106", "330212"],
            "birth_date": ["1980-01-01", "1980-02-30", "1982-02-02", "1990-01-01"],
        }
    )
    one = validate_batch(spec, table, file="persons.csv", first_line=2)
    two = validate_batch(spec, table, file="persons.csv", first_line=2, threads=2)
    assert two.table.equals(one.table)
    assert two.rejects == one.rejects
    columns = [r.column for r in one.rejects]
    assert columns == sorted(columns, key=list(table.column_names).index)
    assert {(r.line, r.column) for r in one.rejects} == {
        (4, "person_id"),
        (3, "id_number"),
        (5, "id_number"),
        (3, "region_code"),
        (3, "birth_date"),
    }
    assert one.table.column("person_id").to_pylist() == ["P1"]


_REF_IDS = st.sampled_from(["P1", "P2", "C1", "A1", "X1", "X2", "X3"])


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(_REF_IDS, _REF_IDS, max_size=4),
    st.lists(st.one_of(_REF_IDS, st.none()), max_size=12),
    st.sampled_from([frozenset({Label.PERSON}), frozenset({Label.PERSON, Label.COMPANY})]),
)
def test_references_resolve_as_if_every_alias_were_replaced_first(
    tmp_path_factory: pytest.TempPathFactory,
    canonical: dict[str, str],
    values: list[str | None],
    allowed: frozenset[Label],
) -> None:
    """Ids are looked up as they are and only the misses (and ids that are both a node and
    an alias) are canonicalised: the same ids and labels as replacing every alias first,
    the plain way (the oracle), including aliases that name a node id."""
    resolver = _Resolver(SQLiteStore(tmp_path_factory.mktemp("refs") / "kg.db"))
    resolver.add(pa.array(["P1", "P2"]), Label.PERSON)
    resolver.add(pa.array(["C1"]), Label.COMPANY)
    resolver.add(pa.array(["A1"]), Label.ACCOUNT)
    resolver.canonical.update(canonical)
    column = pa.chunked_array([pa.array(values, pa.string())])
    expected_ids = resolver.canonicalise(column)
    expected_codes = resolver.reference_labels(expected_ids, allowed)
    ids, codes = resolver.resolve_references(column, allowed)
    assert ids.to_pylist() == expected_ids.to_pylist()
    assert codes.tolist() == expected_codes.tolist()
    if not set(canonical) & {v for v in values if v is not None}:
        assert ids is column  # nothing to replace: the column goes on uncopied
