"""The node id index: look-ups against a dictionary oracle, and remembered look-ups."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kg.id_index as id_index
from kg.fingerprints import FingerprintTable
from kg.id_index import LABELS, UNKNOWN, NodeIdIndex
from kg.model import Label
from kg.sqlite_store import SQLiteStore

_IDS = st.sampled_from([f"n{i}" for i in range(12)] + [None])
_STEPS = st.lists(
    st.one_of(
        # ("add", label, ids) or ("lookup", labels, values, chunk size)
        st.tuples(st.just("add"), st.sampled_from(LABELS), st.lists(_IDS, max_size=5)),
        st.tuples(
            st.just("lookup"),
            st.frozensets(st.sampled_from(LABELS), min_size=1),
            st.lists(_IDS, max_size=8),
            st.integers(1, 4),
        ),
    ),
    max_size=25,
)


def _clashing(ids: pa.Array) -> np.ndarray:
    """Fingerprints by length alone: most ids of a look-up share one with another id."""
    return np.asarray(pc.fill_null(pc.utf8_length(ids), 0).to_numpy(), np.int64)


_FINGERPRINTS = {"real": id_index._fingerprints, "clashing": _clashing}


@settings(max_examples=300, deadline=None)
@given(_STEPS, st.sampled_from([0, 1, 4]), st.sampled_from(sorted(_FINGERPRINTS)))
def test_lookups_equal_a_dictionary_of_the_first_entry_of_each_id(
    steps: list[tuple], remembered: int, fingerprints: str
) -> None:
    """Repeated look-ups (remembered) and look-ups after adds (forgotten where the added
    label counts) find what a dictionary of the first entry per (label, id) finds, also when
    ids share fingerprints (compared as strings, the clashes looked up by a hash join)."""
    with mock.patch.object(id_index, "_fingerprints", _FINGERPRINTS[fingerprints]):
        check_against_dictionary(steps, remembered)


def check_against_dictionary(steps: list[tuple], remembered: int) -> None:
    index = NodeIdIndex(remembered=remembered)
    first: dict[tuple[Label, str], int] = {}
    next_nid = 0
    for step in steps:
        if step[0] == "add":
            _, label, ids = step
            kept = [i for i in ids if i is not None]
            nids = np.arange(next_nid, next_nid + len(kept))
            next_nid += len(kept)
            index.add(label, pa.array(kept, pa.string()), nids)
            for i, nid in zip(kept, nids.tolist(), strict=True):
                first.setdefault((label, i), nid)
            continue
        _, labels, values, size = step
        chunks = [pa.array(values[k : k + size], pa.string()) for k in range(0, len(values), size)]
        column = pa.chunked_array(chunks, pa.string())
        expected_codes, expected_nids = [], []
        for value in values:
            # the first label (in LABELS order) among `labels` that has the id
            hit = next((lb for lb in LABELS if lb in labels and (lb, value) in first), None)
            expected_codes.append(UNKNOWN if hit is None else LABELS.index(hit))
            expected_nids.append(UNKNOWN if hit is None else first[(hit, value)])
        for _ in range(2):  # the second time from what was remembered
            codes, nids = index.lookup(column, labels)
            assert codes.tolist() == expected_codes
            assert nids.tolist() == expected_nids
            nids[:] = -7  # a caller may write into what it got


def test_a_remembered_look_up_is_forgotten_when_one_of_its_labels_grows() -> None:
    index = NodeIdIndex(remembered=4)
    index.add(Label.PERSON, pa.array(["p1"]), np.array([1]))
    people, accounts = frozenset({Label.PERSON}), frozenset({Label.ACCOUNT})
    column = pa.array(["p1", "p2", "a1"])
    assert index.lookup(column, people)[1].tolist() == [1, UNKNOWN, UNKNOWN]
    assert index.lookup(column, accounts)[1].tolist() == [UNKNOWN] * 3
    index.add(Label.PERSON, pa.array(["p2"]), np.array([2]))
    assert index.lookup(column, people)[1].tolist() == [1, 2, UNKNOWN]
    index.add(Label.COMPANY, pa.array(["a1"]), np.array([3]))  # not a label of either
    assert index.lookup(column, accounts)[1].tolist() == [UNKNOWN] * 3


def test_a_column_the_job_checked_is_not_looked_up_again_when_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest job checks a transaction batch's accounts in the index the store lends;
    the store writing that batch finds the look-up done. A batch with other accounts is
    looked up afresh (nothing stale is reused)."""
    store = SQLiteStore(tmp_path / "kg.db")
    rows = pa.table(
        {
            "txn_id": ["t1", "t2"],
            "from_account": ["A1", "A2"],
            "to_account": ["A2", "A3"],
            "amount": [1.0, 2.0],
            "ts": ["2024-01-01T10:00:00", "2024-01-02T10:00:00"],
        }
    )
    with store.transaction(), store.bulk_load():
        store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2", "A3"]}))
        index = store.bulk_node_index()
        assert index is not None
        checked = pa.chunked_array(
            [rows.column("from_account").chunk(0), rows.column("to_account").chunk(0)]
        )
        codes, _ = index.lookup(checked, frozenset({Label.ACCOUNT}))
        assert codes.tolist() == [LABELS.index(Label.ACCOUNT)] * 4

        def no_look_up(*args: object, **kwargs: object) -> pa.Array:
            raise AssertionError("looked up again")

        monkeypatch.setattr(id_index, "_find", no_look_up)
        assert store.insert_transactions(rows) == 2
        other = rows.set_column(1, "from_account", pa.array(["A3", "A1"]))
        with pytest.raises(AssertionError, match="looked up again"):
            store.insert_transactions(other.set_column(0, "txn_id", pa.array(["t3", "t4"])))
        monkeypatch.undo()
    assert store.count_transactions() == 2
    stored = pa.concat_tables(store.transaction_batches())
    assert pc.sum(stored.column("amount")).as_py() == 3.0
    assert store.bulk_node_index() is None  # lent only while the bulk load runs


def test_nodes_just_written_are_found_without_a_look_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's edges name the nodes it has just written (an account's owner edge): the
    store knows their nids and does not look them up; a node known before keeps its nid."""
    store = SQLiteStore(tmp_path / "kg.db")
    store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A2"]}))
    with store.transaction(), store.bulk_load():
        store.upsert_nodes(Label.ACCOUNT, pa.table({"id": ["A1", "A2", "A3", "A1"]}))
        index = store.bulk_node_index()
        assert index is not None

        def no_look_up(*args: object, **kwargs: object) -> pa.Array:
            raise AssertionError("looked up again")

        monkeypatch.setattr(id_index, "_find", no_look_up)
        codes, nids = index.lookup(pa.array(["A1", "A2", "A3", "A1"]), frozenset({Label.ACCOUNT}))
        monkeypatch.undo()
    assert codes.tolist() == [LABELS.index(Label.ACCOUNT)] * 4
    stored = {i: store.get_node(i).nid for i in ("A1", "A2", "A3")}  # type: ignore[union-attr]
    assert nids.tolist() == [stored["A1"], stored["A2"], stored["A3"], stored["A1"]]
    assert stored["A2"] < stored["A1"] < stored["A3"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.integers(-40, 40), st.integers(-(2**63), 2**63 - 1)), max_size=60),
        max_size=12,
    )
)
def test_the_fingerprint_table_equals_a_dictionary_of_first_positions(
    batches: list[list[int]],
) -> None:
    """Batches added one after the other (the table grows from 1,024 slots, and small
    fingerprints crowd neighbouring slots) are found where a dictionary of first positions
    finds them; fingerprints never added are not found."""
    table, first, position = FingerprintTable(), {}, 0
    for batch in batches:
        prints = np.array(batch, np.int64)
        table.add(prints, np.arange(position, position + len(batch)))
        for value in batch:
            first.setdefault(value, position)
            position += 1
        probe = np.array([*first, *batch, 41, -41, 2**62], np.int64)
        expected = [first.get(int(v), -1) for v in probe]
        assert table.find(probe).tolist() == expected
    assert len(table) == len(first)


def test_the_fingerprint_table_grows_past_its_first_size_and_keeps_every_position() -> None:
    prints = np.random.default_rng(5).integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64)
    table = FingerprintTable()
    for start in range(0, 5000, 700):
        table.add(prints[start : start + 700], np.arange(start, min(start + 700, 5000)))
    assert table.find(prints).tolist() == list(range(5000))
    assert len(table) == 5000
