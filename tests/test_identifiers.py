import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.identifiers import (
    RESIDENT_ID_CHECK_CHARS,
    USCC_CHARSET,
    normalise_address,
    normalise_phone,
    resident_id_check_bytes,
    resident_id_check_char,
    uscc_check_bytes,
    uscc_check_char,
    valid_region_code,
    valid_resident_id,
    valid_uscc,
)

# GB 11643 textbook example 11010519491231002X:
#   digits  1 1  0 1 0 5 1 9 4 9 1 2  3 1 0 0 2
#   weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
#   products 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 mod 11 = 2 -> "10X98765432"[2] = X
# 33010219900101123?:
#   products 21+27+0+5+0+8+2+9+54+0+0+9+0+5+8+8+6 = 162; 162 mod 11 = 8 -> "10X98765432"[8] = 4
#
# USCC 91350100M000100Y43 (values: M = 21, Y = 30):
#   9*1 + 1*3 + 3*9 + 5*27 + 0*19 + 1*26 + 0*16 + 0*17 + 21*20 + 0*29 + 0*25 + 0*13 + 1*8
#   + 0*24 + 0*10 + 30*30 + 4*28 = 1640; 1640 mod 31 = 28; 31 - 28 = 3 -> "3"
# USCC 91110000600037341L:
#   9 + 3 + 9 + 27 + 0 + 0 + 0 + 0 + 6*20 + 0 + 0 + 0 + 3*8 + 7*24 + 3*10 + 4*30 + 1*28 = 538;
#   538 mod 31 = 11; 31 - 11 = 20 -> USCC_CHARSET[20] = "L"

TEXTBOOK_RESIDENT_ID = "11010519491231002X"
HANGZHOU_RESIDENT_ID = "330102199001011234"
USCC_EXAMPLES = ("91350100M000100Y43", "91110000600037341L")


def test_textbook_resident_id_is_valid() -> None:
    assert valid_resident_id(TEXTBOOK_RESIDENT_ID)


def test_hand_computed_resident_id_is_valid() -> None:
    assert valid_resident_id(HANGZHOU_RESIDENT_ID)


def test_resident_id_check_char_matches_hand_computation() -> None:
    assert resident_id_check_char("11010519491231002") == "X"
    assert resident_id_check_char("33010219900101123") == "4"


@pytest.mark.parametrize(
    "value",
    [
        "110105194912310021",  # wrong check character
        "11010519491231002x",  # lower-case x is not the GB 11643 check character
        "11010519491231002",  # 17 characters
        "11010519491231002XX",  # 19 characters
        "1101051949123100AX",  # letter among the first 17
        "110105194902300027",  # 30 February
        "110105180001010023",  # born in 1800
        "110105290001010025",  # born in the future
        "",
    ],
)
def test_malformed_resident_id_is_invalid(value: str) -> None:
    assert not valid_resident_id(value)


def test_impossible_dates_are_rejected_even_with_a_correct_check_char() -> None:
    first17 = "11010519490230002"
    assert not valid_resident_id(first17 + resident_id_check_char(first17))


def test_resident_id_check_char_rejects_non_digits() -> None:
    with pytest.raises(ValueError):
        resident_id_check_char("1101051949123100A")


@pytest.mark.parametrize("value", USCC_EXAMPLES)
def test_hand_computed_uscc_is_valid(value: str) -> None:
    assert valid_uscc(value)
    assert uscc_check_char(value[:17]) == value[17]


@pytest.mark.parametrize(
    "value",
    [
        "91350100M000100Y44",  # wrong check character
        "91350100M000100Y4",  # 17 characters
        "91350100I000100Y43",  # I is not in the charset
        "91350100m000100Y43",  # lower case is not in the charset
        "",
    ],
)
def test_malformed_uscc_is_invalid(value: str) -> None:
    assert not valid_uscc(value)


def test_uscc_check_char_of_zero_remainder_is_zero() -> None:
    # 17 zeros weigh 0; 31 - 0 = 31 wraps to 0.
    assert uscc_check_char("0" * 17) == "0"


def test_vectorised_check_chars_agree_with_the_scalar_ones() -> None:
    rid = np.frombuffer(b"1101051949123100233010219900101123", dtype=np.uint8).reshape(2, 17)
    assert resident_id_check_bytes(rid).tobytes() == b"X4"
    uscc = np.frombuffer(b"91350100M000100Y491110000600037341", dtype=np.uint8).reshape(2, 17)
    assert uscc_check_bytes(uscc).tobytes() == b"3L"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("330102", True),
        ("110105", True),
        ("820000", True),
        ("990102", False),  # no province 99
        ("00102", False),
        ("3301020", False),
        ("33010a", False),
    ],
)
def test_region_code_validity(value: str, expected: bool) -> None:
    assert valid_region_code(value) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+86 138-0013-8000", "13800138000"),
        ("0086 13800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("13800138000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),  # full-width digits
        ("0571-8765 4321", "057187654321"),
        ("(0571) 87654321", "057187654321"),
        ("", None),
        (" - ", None),
        (None, None),
    ],
)
def test_phone_normalisation(raw: str | None, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("浙江省杭州市西湖区文三路１２号", "浙江省杭州市西湖区文三路12号"),
        ("  杭州市  西湖区\t文三路 ", "杭州市 西湖区 文三路"),
        ("杭州市　西湖区", "杭州市 西湖区"),  # ideographic space
        ("Ｂ座ROOM 1203", "b座room 1203"),
        ("   ", None),
        (None, None),
    ],
)
def test_address_normalisation(raw: str | None, expected: str | None) -> None:
    assert normalise_address(raw) == expected


_resident_first17 = st.builds(
    lambda region, date, seq: f"{region}{date:%Y%m%d}{seq:03d}",
    st.sampled_from(["110105", "330102", "330302", "440305", "510104"]),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)),
    st.integers(0, 999),
)
_uscc_first17 = st.text(alphabet=USCC_CHARSET, min_size=17, max_size=17)


@given(_resident_first17)
def test_generated_resident_id_check_chars_validate(first17: str) -> None:
    assert valid_resident_id(first17 + resident_id_check_char(first17))


@given(_resident_first17, st.integers(0, 17), st.integers(1, 10))
def test_any_single_character_change_of_a_resident_id_is_detected(
    first17: str, position: int, shift: int
) -> None:
    valid = first17 + resident_id_check_char(first17)
    alphabet = RESIDENT_ID_CHECK_CHARS if position == 17 else "0123456789"
    step = 1 + (shift - 1) % (len(alphabet) - 1)
    replacement = alphabet[(alphabet.index(valid[position]) + step) % len(alphabet)]
    changed = valid[:position] + replacement + valid[position + 1 :]
    assert not valid_resident_id(changed)


@given(_uscc_first17)
def test_generated_uscc_check_chars_validate(first17: str) -> None:
    assert valid_uscc(first17 + uscc_check_char(first17))


@given(_uscc_first17, st.integers(0, 17), st.integers(1, 30))
def test_any_single_character_change_of_a_uscc_is_detected(
    first17: str, position: int, shift: int
) -> None:
    valid = first17 + uscc_check_char(first17)
    replacement = USCC_CHARSET[(USCC_CHARSET.index(valid[position]) + shift) % 31]
    changed = valid[:position] + replacement + valid[position + 1 :]
    assert not valid_uscc(changed)
