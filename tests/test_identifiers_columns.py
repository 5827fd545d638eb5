"""The column-at-once identifier checks agree with the one-value reference functions."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.identifiers import (
    normalise_address,
    normalise_addresses,
    normalise_phone,
    normalise_phones,
    resident_id_check_char,
    uscc_check_char,
    valid_resident_id,
    valid_resident_ids,
    valid_uscc,
    valid_usccs,
)

DIGITS = "0123456789"
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    region = draw(st.text(DIGITS, min_size=6, max_size=6))
    year = draw(st.integers(1880, 2030))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 32))
    serial = draw(st.text(DIGITS, min_size=3, max_size=3))
    first17 = f"{region}{year:04d}{month:02d}{day:02d}{serial}"
    check = resident_id_check_char(first17)
    if draw(st.booleans()):
        check = draw(st.sampled_from("0123456789X"))
    return first17 + check


@st.composite
def usccs(draw: st.DrawFn) -> str:
    first17 = draw(st.text(USCC_CHARS, min_size=17, max_size=17))
    check = uscc_check_char(first17)
    if draw(st.booleans()):
        check = draw(st.sampled_from(USCC_CHARS + "IOZ"))
    return first17 + check


noise = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(resident_ids(), noise, st.none()), max_size=40))
def test_resident_id_column_check_matches_the_reference(values: list[str | None]) -> None:
    expected = [v is not None and valid_resident_id(v) for v in values]
    assert valid_resident_ids(pa.array(values, pa.string())).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(usccs(), noise, st.none()), max_size=40))
def test_uscc_column_check_matches_the_reference(values: list[str | None]) -> None:
    expected = [v is not None and valid_uscc(v) for v in values]
    assert valid_usccs(pa.array(values, pa.string())).tolist() == expected


phones = st.one_of(
    st.text("0123456789+- ()（）＋０１２３４５６７８９", max_size=18),
    st.builds(
        lambda p, n: p + n,
        st.sampled_from(["", "+86 ", "0086", "86"]),
        st.text(DIGITS, min_size=11, max_size=11),
    ),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(phones, st.none()), max_size=30))
def test_phone_column_normalisation_matches_the_reference(values: list[str | None]) -> None:
    expected = [normalise_phone(v) for v in values]
    assert normalise_phones(pa.array(values, pa.string())).to_pylist() == expected


addresses = st.text(alphabet="杭州市西湖区文三路号 　\t１２ＡaBb-", max_size=25)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(addresses, st.none()), max_size=30))
def test_address_column_normalisation_matches_the_reference(values: list[str | None]) -> None:
    expected = [normalise_address(v) for v in values]
    assert normalise_addresses(pa.array(values, pa.string())).to_pylist() == expected
