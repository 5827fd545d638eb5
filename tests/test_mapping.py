"""A declarative mapping loads a Chinese-header registry export to the same graph as the
canonical files written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest.mapping import MappingError, load_mapping
from ingest.pipeline import IngestError, ingest_directory
from kg.model import Label, RelType
from kg.sqlite_store import SQLiteStore

SAMPLE = Path(__file__).parents[1] / "ingest" / "samples" / "cn-registry"

CANONICAL = {
    "companies.csv": """company_id,name,uscc,region_code,industry,registered_capital,established_date,phone,address
91330106MA2CE1234W,杭州西湖智造科技有限公司,91330106MA2CE1234W,330106,C3911,5000000,2015-03-01,0571-88001234,杭州市西湖区文三路１２号
91330203MA2AH5678W,宁波甬江港口物流有限公司,91330203MA2AH5678W,330203,G5532,12000000,2012-07-18,0574-87112233,宁波市海曙区中山西路88号
91330304MA2J901232,温州瓯海鞋业有限公司,91330304MA2J901232,330304,C1953,3000000,2009-11-05,0577-86223344,温州市瓯海区娄桥工业区
91330106MA2KK4567Q,杭州钱塘投资控股有限公司,91330106MA2KK4567Q,330106,J6930,50000000,2010-01-20,0571-88990000,杭州市西湖区天目山路 200 号
""",
    "persons.csv": """person_id,name,id_number
330106197503151217,陈建华,330106197503151217
330203198007222427,林美玲,330203198007222427
330304196811093534,周志强,330304196811093534
330102199001014646,王晓东,330102199001014646
""",
    "shareholdings.csv": """holder_id,company_id,share_pct,voting_pct,as_of
330106197503151217,91330106MA2KK4567Q,70,,2024-01-01
330203198007222427,91330106MA2KK4567Q,30,,2024-01-01
91330106MA2KK4567Q,91330106MA2CE1234W,55,,2024-01-01
330304196811093534,91330106MA2CE1234W,45,,2024-01-01
91330106MA2KK4567Q,91330203MA2AH5678W,30,40,2024-01-01
91330106MA2CE1234W,91330203MA2AH5678W,25,,2024-01-01
330203198007222427,91330203MA2AH5678W,45,35,2024-01-01
330304196811093534,91330304MA2J901232,100,,2024-01-01
""",
    "positions.csv": """person_id,company_id,role
330106197503151217,91330106MA2KK4567Q,legal_representative
330203198007222427,91330106MA2KK4567Q,supervisor
330304196811093534,91330106MA2CE1234W,executive
330106197503151217,91330106MA2CE1234W,director
330102199001014646,91330203MA2AH5678W,financial_controller
330304196811093534,91330304MA2J901232,actual_controller
""",
}


def graph_dump(store: SQLiteStore) -> tuple[set[Any], set[Any]]:
    """Every node and edge with its properties, without provenance (files differ)."""
    nodes = set()
    for label in Label:
        for batch in store.node_batches(label):
            for row in batch.to_pylist():
                nodes.add(tuple(sorted((k, v) for k, v in row.items() if k != "nid")))
    edges = set()
    for rel_type in RelType:
        for batch in store.edge_batches(rel_type):
            for row in batch.to_pylist():
                edges.add((rel_type.value, *sorted(row.items())))
    return nodes, edges


def test_registry_export_maps_to_the_same_graph_as_canonical_files(tmp_path: Path) -> None:
    canonical_dir = tmp_path / "canonical"
    canonical_dir.mkdir()
    for name, text in CANONICAL.items():
        (canonical_dir / name).write_text(text, encoding="utf-8")
    mapped = SQLiteStore(tmp_path / "mapped.db")
    canonical = SQLiteStore(tmp_path / "canonical.db")
    mapped_report = ingest_directory(mapped, SAMPLE, mapping=Path("cn-registry"))
    canonical_report = ingest_directory(canonical, canonical_dir)
    assert mapped_report.rejected == 0 and canonical_report.rejected == 0
    assert mapped.count_nodes(Label.COMPANY) == 4
    assert mapped.count_nodes(Label.PERSON) == 4
    assert mapped.count_edges(RelType.HOLDS_SHARES) == 8
    assert graph_dump(mapped) == graph_dump(canonical)


def test_rejects_name_the_source_file_line_and_column(tmp_path: Path) -> None:
    source = tmp_path / "export"
    source.mkdir()
    for path in SAMPLE.iterdir():
        (source / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = (source / "主要人员.csv").read_text(encoding="utf-8")
    (source / "主要人员.csv").write_text(
        text + "91330304MA2J901232,周志强,330304196811093534,顾问\n", encoding="utf-8"
    )
    report = ingest_directory(SQLiteStore(tmp_path / "kg.db"), source, mapping=Path("cn-registry"))
    [reject] = report.rejects
    assert (reject.file, reject.line, reject.column, reject.value) == (
        "主要人员.csv",
        8,
        "职务",
        "顾问",
    )
    assert reject.reason.startswith("not one of")


def test_mapping_naming_an_unknown_contract_column_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nfiles:\n  - source: a.csv\n    target: persons\n    columns: {nickname: 昵称}\n",
        encoding="utf-8",
    )
    with pytest.raises(MappingError, match="nickname"):
        load_mapping(bad)


def test_source_missing_a_mapped_column_fails_the_job(tmp_path: Path) -> None:
    source = tmp_path / "export"
    source.mkdir()
    (source / "企业基本信息.csv").write_text(
        "企业名称,统一社会信用代码\n甲,91330106MA2CE1234W\n", encoding="utf-8"
    )
    store = SQLiteStore(tmp_path / "kg.db")
    with pytest.raises(IngestError, match="注册资本"):
        ingest_directory(store, source, mapping=Path("cn-registry"))
    assert store.count_nodes() == 0
