"""Check characters and normalisation of Chinese customer identifiers.

Pure functions: the PRC resident identity number (GB 11643-1999, ISO 7064 MOD 11-2), the
unified social credit code of organisations (GB 32100-2015), administrative division codes
(GB/T 2260), phone numbers and free-text addresses. The `*_bytes` variants compute check
characters for whole numpy arrays at once; the generator and bulk validators use them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

RESIDENT_ID_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Indexed by (weighted sum mod 11).
RESIDENT_ID_CHECK_CHARS = "10X98765432"

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS: tuple[int, ...] = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# Two-digit province-level prefixes of GB/T 2260 (mainland provinces, Taiwan, Hong Kong, Macao).
PROVINCE_CODES: frozenset[str] = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82",
    }
)  # fmt: skip

# Resident ids exist for people born from the late 19th century on; earlier dates are typos.
_EARLIEST_BIRTH = dt.date(1890, 1, 1)

_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_CHARSET)}
_WHITESPACE = re.compile(r"\s+")
_NON_DIGIT = re.compile(r"\D+")

_RID_WEIGHTS_ARR = np.array(RESIDENT_ID_WEIGHTS, dtype=np.int64)
_RID_CHECK_ARR = np.frombuffer(RESIDENT_ID_CHECK_CHARS.encode("ascii"), dtype=np.uint8)
_USCC_WEIGHTS_ARR = np.array(USCC_WEIGHTS, dtype=np.int64)
_USCC_CHARSET_ARR = np.frombuffer(USCC_CHARSET.encode("ascii"), dtype=np.uint8)
# ASCII byte -> USCC character value, -1 for bytes outside the charset.
_USCC_LOOKUP = np.full(256, -1, dtype=np.int64)
_USCC_LOOKUP[_USCC_CHARSET_ARR] = np.arange(len(USCC_CHARSET))


def resident_id_check_char(first17: str) -> str:
    """Return the GB 11643 check character for the first 17 digits of a resident id.

    Example:
        >>> resident_id_check_char("11010519491231002")
        'X'
    """
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError(f"expected 17 ASCII digits, got {first17!r}")
    total = sum(int(d) * w for d, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK_CHARS[total % 11]


def resident_id_check_bytes(first17: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Vectorised `resident_id_check_char`: (n, 17) ASCII digit bytes to (n,) check bytes."""
    digits = first17.astype(np.int64) - ord("0")
    result: NDArray[np.uint8] = _RID_CHECK_ARR[(digits @ _RID_WEIGHTS_ARR) % 11]
    return result


def valid_resident_id(s: str) -> bool:
    """Tell whether `s` is a well-formed 18-character PRC resident identity number.

    Checks the length, that the first 17 characters are digits, that the birth date in
    positions 7-14 is a real date between 1890 and today, and the GB 11643 check character.

    Example:
        >>> valid_resident_id("11010519491231002X")
        True
        >>> valid_resident_id("110105194912310021")
        False
    """
    if len(s) != 18 or not s.isascii():
        return False
    first17 = s[:17]
    if not first17.isdigit():
        return False
    try:
        birth = dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if not _EARLIEST_BIRTH <= birth <= dt.date.today():
        return False
    return resident_id_check_char(first17) == s[17]


def uscc_check_char(first17: str) -> str:
    """Return the GB 32100-2015 check character for the first 17 characters of a USCC.

    Example:
        >>> uscc_check_char("91350100M000100Y4")
        '3'
    """
    if len(first17) != 17 or any(ch not in _USCC_VALUE for ch in first17):
        raise ValueError(f"expected 17 characters of the USCC charset, got {first17!r}")
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def uscc_check_bytes(first17: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Vectorised `uscc_check_char`: (n, 17) ASCII bytes of the charset to (n,) check bytes."""
    values = _USCC_LOOKUP[first17]
    if (values < 0).any():
        raise ValueError("characters outside the USCC charset")
    result: NDArray[np.uint8] = _USCC_CHARSET_ARR[(31 - (values @ _USCC_WEIGHTS_ARR) % 31) % 31]
    return result


def valid_uscc(s: str) -> bool:
    """Tell whether `s` is an 18-character unified social credit code with a correct check.

    Example:
        >>> valid_uscc("91350100M000100Y43")
        True
        >>> valid_uscc("91350100M000100Y44")
        False
    """
    if len(s) != 18 or any(ch not in _USCC_VALUE for ch in s):
        return False
    return uscc_check_char(s[:17]) == s[17]


def valid_region_code(s: str) -> bool:
    """Tell whether `s` is a 6-digit GB/T 2260 code under a known province prefix.

    Example:
        >>> valid_region_code("330102")
        True
        >>> valid_region_code("990102")
        False
    """
    return len(s) == 6 and s.isascii() and s.isdigit() and s[:2] in PROVINCE_CODES


def normalise_phone(s: str | None) -> str | None:
    """Reduce a phone number to digits, dropping the +86/0086/86 prefix of mobile numbers.

    Returns None when no digit is left.

    Example:
        >>> normalise_phone("+86 138-0013-8000")
        '13800138000'
        >>> normalise_phone("0571-8765 4321")
        '057187654321'
    """
    if s is None:
        return None
    digits = _NON_DIGIT.sub("", unicodedata.normalize("NFKC", s))
    if not digits:
        return None
    # Only a prefix followed by a full 11-digit mobile number (1xx...) is a country code;
    # a landline such as 0086... without a mobile behind it is left alone.
    for prefix in ("0086", "86"):
        rest = digits[len(prefix) :]
        if digits.startswith(prefix) and len(rest) == 11 and rest[0] == "1":
            return rest
    return digits


def normalise_address(s: str | None) -> str | None:
    """Normalise an address for matching: NFKC, collapsed whitespace, lower-case latin.

    NFKC folds full-width digits, letters and the ideographic space into their ASCII forms.
    Returns None for an empty or blank address.

    Example:
        >>> normalise_address("  杭州市西湖区 文三路１２号　Ａ座 ")
        '杭州市西湖区 文三路12号 a座'
    """
    if s is None:
        return None
    folded = _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", s)).strip().lower()
    return folded or None


# --- whole columns at once (ingest validates millions of rows) -------------------------------


def _fixed_width(
    values: pa.Array | pa.ChunkedArray, width: int
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """ASCII strings of exactly `width` characters as an (m, width) byte matrix, and the mask
    (over all n values) of those that had that shape."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    shaped = pc.and_(pc.equal(pc.binary_length(array), width), pc.string_is_ascii(array))
    mask = np.asarray(pc.fill_null(shaped, False).to_numpy(zero_copy_only=False), dtype=bool)
    kept = pc.filter(array, pa.array(mask))
    if not isinstance(kept, pa.StringArray):
        kept = kept.cast(pa.string())
    if len(kept) == 0:
        return np.zeros((0, width), dtype=np.uint8), mask
    offsets = np.frombuffer(kept.buffers()[1], dtype=np.int32)[kept.offset : kept.offset + 1]
    start = int(offsets[0])
    data = np.frombuffer(kept.buffers()[2], dtype=np.uint8)[start : start + width * len(kept)]
    return data.reshape(len(kept), width), mask


def valid_resident_ids(values: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    """`valid_resident_id` over a whole column (null counts as not valid)."""
    matrix, shaped = _fixed_width(values, 18)
    ok = np.zeros(shaped.size, dtype=bool)
    if matrix.shape[0] == 0:
        return ok
    first17 = matrix[:, :17]
    digits = ((first17 >= ord("0")) & (first17 <= ord("9"))).all(axis=1)
    check = np.zeros(matrix.shape[0], dtype=bool)
    check[digits] = resident_id_check_bytes(first17[digits]) == matrix[digits, 17]
    births = pa.array(matrix[:, 6:14].copy().view("S8").ravel().astype(str))
    parsed = pc.strptime(births, format="%Y%m%d", unit="s", error_is_null=True)
    # strptime rolls 19800230 over to March; the round trip catches it.
    real_day = pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y%m%d"), births), False)
    earliest = pa.scalar(dt.datetime(_EARLIEST_BIRTH.year, 1, 1), pa.timestamp("s"))
    today = pa.scalar(dt.datetime.combine(dt.date.today(), dt.time()), pa.timestamp("s"))
    in_range = pc.fill_null(
        pc.and_(pc.greater_equal(parsed, earliest), pc.less_equal(parsed, today)), False
    )
    dated = np.asarray(pc.and_(real_day, in_range).to_numpy(zero_copy_only=False), dtype=bool)
    ok[shaped] = digits & check & dated
    return ok


def valid_usccs(values: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    """`valid_uscc` over a whole column (null counts as not valid)."""
    matrix, shaped = _fixed_width(values, 18)
    ok = np.zeros(shaped.size, dtype=bool)
    if matrix.shape[0] == 0:
        return ok
    in_charset = (_USCC_LOOKUP[matrix] >= 0).all(axis=1)
    check = np.zeros(matrix.shape[0], dtype=bool)
    check[in_charset] = uscc_check_bytes(matrix[in_charset, :17]) == matrix[in_charset, 17]
    ok[shaped] = check
    return ok


def normalise_phones(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`normalise_phone` over a whole column."""
    digits = pc.replace_substring_regex(pc.utf8_normalize(values, form="NFKC"), r"\D+", "")
    length = pc.utf8_length(digits)
    for prefix in ("0086", "86"):
        mobile_after = pc.equal(pc.utf8_slice_codeunits(digits, len(prefix), len(prefix) + 1), "1")
        strip = pc.and_(
            pc.and_(pc.starts_with(digits, prefix), pc.equal(length, len(prefix) + 11)),
            mobile_after,
        )
        digits = pc.if_else(strip, pc.utf8_slice_codeunits(digits, len(prefix)), digits)
        length = pc.utf8_length(digits)
    return pc.if_else(pc.equal(digits, ""), pa.scalar(None, pa.string()), digits)


def normalise_addresses(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`normalise_address` over a whole column."""
    folded = pc.replace_substring_regex(
        pc.utf8_normalize(values, form="NFKC"),
        r"[\s\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+",
        " ",
    )
    folded = pc.utf8_lower(pc.utf8_trim_whitespace(folded))
    return pc.if_else(pc.equal(folded, ""), pa.scalar(None, pa.string()), folded)
