"""Synthetic bank generator: canonical CSV files of the data contract plus ground truth.

`generate_bank` writes a Zhejiang bank's customers (persons and companies with valid resident
ids and unified social credit codes), families, ownership trees with cross-holdings, positions,
guarantee networks, loans, accounts, transactions and login devices, and plants the structures
the risk engine must find: aggregated and family control, guarantee circles and chains, fraud
rings, duplicate customer records and (optionally) malformed rows. What was planted is written
to `out_dir/truth/*.json` so tests and benchmarks can score the engine against it.

Conventions of the generated data:
- `customers` counts distinct real customers (80% persons, 20% companies); duplicate records
  (aliases) come on top of it and only own an account each, so merging them changes no
  relationship count.
- kinships are stored once per pair; `relation` says what `relative_id` is to `person_id`.
- guarantees in truth files are directed guarantor -> borrower; a circle's `members[i]`
  guarantees `members[i + 1]` and the last guarantees the first.
- random guarantees only run from a higher to a lower random rank, and members of planted
  circles guarantee nobody outside their circle, so the non-trivial strongly connected
  components of the guarantee graph are exactly the planted circles (unions of them in rings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from ingest.identifiers import (
    normalise_address,
    normalise_phone,
    resident_id_check_bytes,
    resident_id_check_char,
    uscc_check_bytes,
)

IntArr = NDArray[np.int64]
FloatArr = NDArray[np.float64]
# pyarrow-stubs make Array generic; the runtime class is not subscriptable.
Column: TypeAlias = "pa.Array[Any]"

CSV_FILES: tuple[str, ...] = (
    "persons.csv",
    "companies.csv",
    "shareholdings.csv",
    "positions.csv",
    "kinships.csv",
    "guarantees.csv",
    "loans.csv",
    "accounts.csv",
    "transactions.csv",
    "devices.csv",
)

# ---------------------------------------------------------------------------------------------
# Reference data

# (city code, city name, share of population, telephone area code, branch prefix)
_CITIES: tuple[tuple[str, str, float, str, str], ...] = (
    ("330100", "杭州市", 12.4, "0571", "HZ"),
    ("330200", "宁波市", 9.7, "0574", "NB"),
    ("330300", "温州市", 9.7, "0577", "WZ"),
    ("330400", "嘉兴市", 5.6, "0573", "JX"),
    ("330500", "湖州市", 3.4, "0572", "HU"),
    ("330600", "绍兴市", 5.3, "0575", "SX"),
    ("330700", "金华市", 7.1, "0579", "JH"),
    ("330800", "衢州市", 2.3, "0570", "QZ"),
    ("330900", "舟山市", 1.2, "0580", "ZS"),
    ("331000", "台州市", 6.6, "0576", "TZ"),
    ("331100", "丽水市", 2.5, "0578", "LS"),
)
# GB/T 2260 county-level divisions of Zhejiang: (code, name).
_COUNTIES: tuple[tuple[str, str], ...] = (
    ("330102", "上城区"), ("330105", "拱墅区"), ("330106", "西湖区"), ("330108", "滨江区"),
    ("330109", "萧山区"), ("330110", "余杭区"), ("330111", "富阳区"), ("330112", "临安区"),
    ("330113", "临平区"), ("330114", "钱塘区"), ("330122", "桐庐县"), ("330127", "淳安县"),
    ("330182", "建德市"),
    ("330203", "海曙区"), ("330205", "江北区"), ("330206", "北仑区"), ("330211", "镇海区"),
    ("330212", "鄞州区"), ("330213", "奉化区"), ("330225", "象山县"), ("330226", "宁海县"),
    ("330281", "余姚市"), ("330282", "慈溪市"),
    ("330302", "鹿城区"), ("330303", "龙湾区"), ("330304", "瓯海区"), ("330305", "洞头区"),
    ("330324", "永嘉县"), ("330326", "平阳县"), ("330327", "苍南县"), ("330328", "文成县"),
    ("330329", "泰顺县"), ("330381", "瑞安市"), ("330382", "乐清市"), ("330383", "龙港市"),
    ("330402", "南湖区"), ("330411", "秀洲区"), ("330421", "嘉善县"), ("330424", "海盐县"),
    ("330481", "海宁市"), ("330482", "平湖市"), ("330483", "桐乡市"),
    ("330502", "吴兴区"), ("330503", "南浔区"), ("330521", "德清县"), ("330522", "长兴县"),
    ("330523", "安吉县"),
    ("330602", "越城区"), ("330603", "柯桥区"), ("330604", "上虞区"), ("330624", "新昌县"),
    ("330681", "诸暨市"), ("330683", "嵊州市"),
    ("330702", "婺城区"), ("330703", "金东区"), ("330723", "武义县"), ("330726", "浦江县"),
    ("330727", "磐安县"), ("330781", "兰溪市"), ("330782", "义乌市"), ("330783", "东阳市"),
    ("330784", "永康市"),
    ("330802", "柯城区"), ("330803", "衢江区"), ("330822", "常山县"), ("330824", "开化县"),
    ("330825", "龙游县"), ("330881", "江山市"),
    ("330902", "定海区"), ("330903", "普陀区"), ("330921", "岱山县"), ("330922", "嵊泗县"),
    ("331002", "椒江区"), ("331003", "黄岩区"), ("331004", "路桥区"), ("331022", "三门县"),
    ("331023", "天台县"), ("331024", "仙居县"), ("331081", "温岭市"), ("331082", "临海市"),
    ("331083", "玉环市"),
    ("331102", "莲都区"), ("331121", "青田县"), ("331122", "缙云县"), ("331123", "遂昌县"),
    ("331124", "松阳县"), ("331125", "云和县"), ("331126", "庆元县"), ("331127", "景宁畲族自治县"),
    ("331181", "龙泉市"),
)  # fmt: skip
# Birthplaces of migrant workers: resident ids issued outside Zhejiang.
_MIGRANT_REGIONS = ("340102", "360102", "410102", "510104", "520102", "430102", "420102", "320102")

_SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.6), ("刘", 5.4), ("陈", 4.5), ("杨", 3.1), ("黄", 2.2),
    ("赵", 2.0), ("吴", 2.0), ("周", 1.9), ("徐", 1.6), ("孙", 1.5), ("马", 1.3), ("朱", 1.2),
    ("胡", 1.1), ("郭", 1.1), ("何", 1.0), ("高", 1.0), ("林", 1.0), ("罗", 0.9), ("郑", 0.8),
    ("梁", 0.8), ("谢", 0.7), ("宋", 0.7), ("唐", 0.7), ("许", 0.6), ("韩", 0.6), ("冯", 0.6),
    ("邓", 0.6), ("曹", 0.5), ("彭", 0.5), ("曾", 0.5), ("肖", 0.5), ("田", 0.4), ("董", 0.4),
    ("袁", 0.4), ("潘", 0.4), ("于", 0.4), ("蒋", 0.4), ("蔡", 0.4), ("余", 0.4), ("杜", 0.4),
    ("叶", 0.4), ("程", 0.4), ("苏", 0.3), ("魏", 0.3), ("吕", 0.3), ("丁", 0.3), ("任", 0.3),
    ("沈", 0.3), ("姚", 0.3), ("卢", 0.3), ("姜", 0.3), ("崔", 0.3), ("钟", 0.3), ("谭", 0.3),
    ("陆", 0.3), ("汪", 0.3), ("范", 0.3), ("金", 0.3), ("石", 0.3), ("廖", 0.3), ("贾", 0.3),
    ("夏", 0.3), ("方", 0.2), ("俞", 0.2), ("应", 0.2), ("楼", 0.1), ("欧阳", 0.05),
    ("诸葛", 0.02),
)  # fmt: skip
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆旭宁龙峰建国文海东亮成志新"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞燕玲婷雪慧莹倩颖琳晶欣怡佳梅红兰萍洁琴云秀英丹"
_GIVEN_ANY = "子一嘉思雨晨欣梓博文俊佳天小立家明玉春秋海"

_ROADS = (
    "解放路", "人民路", "中山路", "建设路", "文三路", "文一西路", "延安路", "凤起路", "庆春路",
    "学院路", "新华路", "江南大道", "滨江路", "望江路", "钱江路", "天目山路", "莫干山路",
    "沿江路", "五一路", "光明路", "胜利路", "和平路", "青年路", "东风路", "朝阳路", "开元路",
    "兴业路", "迎宾大道", "世纪大道", "振兴路", "工业路", "科技路", "创业路", "府前路",
    "城东路", "城西路", "江滨路", "湖滨路", "环城北路", "体育场路",
)  # fmt: skip
_ESTATES = tuple(
    a + b
    for a in ("金色", "阳光", "绿城", "翠苑", "桂花", "锦绣", "江南", "碧水", "紫金", "香樟",
              "丽景", "和美", "春晓", "明珠", "东方", "星河", "御景", "海棠", "枫林", "天鹅")
    for b in ("花园", "小区", "新村", "家园", "公寓", "苑", "府", "华庭")
)  # fmt: skip
_PARKS = (
    "科技园",
    "工业园区",
    "经济开发区",
    "创业大厦",
    "商务中心",
    "国际大厦",
    "智慧产业园",
    "总部大楼",
)
_BRAND_CHARS = (
    "恒华鑫永宏金天瑞博中伟正新东海国荣宝佳万明富德信长泰盛源达远诚成丰安业力润通辉春利顺昌隆兴"
)
# (GB/T 4754-2017 class, name stem, share of companies)
_INDUSTRIES: tuple[tuple[str, str, float], ...] = (
    ("C1711", "纺织", 8.0), ("C1951", "鞋业", 6.0), ("C3311", "五金制品", 9.0),
    ("C3831", "电线电缆", 3.0), ("C2614", "化工", 3.0), ("C3670", "汽车零部件", 5.0),
    ("E4710", "建设工程", 7.0), ("F5181", "贸易", 16.0), ("G5430", "物流", 6.0),
    ("I6510", "软件科技", 8.0), ("K7010", "房地产开发", 4.0), ("L7212", "投资管理", 5.0),
    ("M7452", "检测技术", 3.0), ("C2438", "饰品", 3.0), ("H6210", "餐饮管理", 6.0),
    ("A0141", "农业开发", 3.0),
)  # fmt: skip
_MOBILE_PREFIXES = np.array(
    [130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158,
     159, 166, 170, 173, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191,
     198, 199],
    dtype=np.int64,
)  # fmt: skip
_CHANNELS = ("mobile", "online", "counter", "atm", "pos")
_CHANNEL_P = (0.55, 0.2, 0.1, 0.05, 0.1)
_CLASSES = ("normal", "special_mention", "substandard", "doubtful", "loss")
_CLASS_P_NORMAL = (0.95, 0.025, 0.012, 0.008, 0.005)
_CLASS_P_RING = (0.5, 0.15, 0.15, 0.12, 0.08)

_EPOCH = np.datetime64("1970-01-01", "D")


def _day(iso: str) -> int:
    return int((np.datetime64(iso, "D") - _EPOCH).astype(np.int64))


_TXN_START = _day("2023-01-01")
_TXN_DAYS = 731
_SECONDS_PER_DAY = 86_400
_TXN_CHUNK = 1_000_000
_WRITE_BATCH = 500_000

# ---------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    """What `generate_bank` wrote.

    Attributes:
        out_dir: the directory holding the CSV files and `bank.toml`.
        files: file name -> path of every CSV file and `bank.toml`.
        truth_files: truth file name -> path (under `out_dir/truth`).
        rows: data rows written per CSV file (header excluded, bad rows included).
        customers: distinct real customers (persons + companies, aliases excluded).
        seconds: wall-clock time of the generation.
    """

    out_dir: Path
    files: dict[str, Path]
    truth_files: dict[str, Path]
    rows: dict[str, int]
    customers: int
    seconds: float


def generate_bank(
    out_dir: Path,
    customers: int,
    seed: int,
    bad_rows: bool = False,
    progress: bool = True,
) -> GenerationSummary:
    """Write a synthetic bank in the canonical CSV format, with ground truth.

    Args:
        out_dir: directory to write to (created if missing; existing files are overwritten).
        customers: distinct customers, about 80% persons and 20% companies (at least 100).
        seed: the same seed gives byte-identical files.
        bad_rows: also plant a documented handful of malformed rows (see truth/bad_rows.json).
        progress: show a progress bar on the terminal.

    Returns:
        A summary with paths, row counts and the elapsed time.

    Example:
        >>> summary = generate_bank(Path("/tmp/bank"), customers=1000, seed=7, progress=False)
        >>> summary.rows["persons.csv"] > 800
        True
    """
    if customers < 100:
        raise ValueError("customers must be at least 100")
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "truth").mkdir(exist_ok=True)
    builder = _BankBuilder(out_dir, customers, seed, bad_rows)
    steps = builder.steps()
    if progress:
        from rich.progress import Progress

        with Progress(transient=False) as bar:
            task = bar.add_task("generating", total=len(steps))
            for name, step in steps:
                bar.update(task, description=f"generating {name}")
                step()
                bar.advance(task)
    else:
        for _, step in steps:
            step()
    return GenerationSummary(
        out_dir=out_dir,
        files={name: out_dir / name for name in (*CSV_FILES, "bank.toml")},
        truth_files={p.name: p for p in sorted((out_dir / "truth").glob("*.json"))},
        rows=dict(builder.rows),
        customers=customers,
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------
# Column helpers


def _ids(prefix: str, numbers: IntArr, width: int) -> Column:
    """Ids such as P00000042: `prefix` and the zero-padded number."""
    text = pc.utf8_lpad(
        pc.cast(pa.array(numbers, pa.int64()), pa.string()), width=width, padding="0"
    )
    result: Column = pc.utf8_replace_slice(text, start=0, stop=0, replacement=prefix)
    return result


def _dates(days: IntArr) -> Column:
    result: Column = pc.strftime(pa.array(days.astype("datetime64[D]")), format="%Y-%m-%d")
    return result


def _timestamps(seconds: IntArr) -> Column:
    stamps = pa.array(seconds.astype("datetime64[s]"))
    result: Column = pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%S")
    return result


def _money(values: NDArray[np.floating[Any]]) -> Column:
    cents = pc.cast(pa.array(np.round(values, 2)), pa.decimal128(18, 2))
    result: Column = pc.cast(cents, pa.string())
    return result


def _ascii_rows(matrix: NDArray[np.uint8]) -> Column:
    width = matrix.shape[1]
    rows = np.ascontiguousarray(matrix).view(f"S{width}").ravel()
    result: Column = pa.array(rows).cast(pa.string())
    return result


def _unique_draw(rng: np.random.Generator, prefix: IntArr, high: int) -> IntArr:
    """Draw one value in [0, high) per row so that (prefix, value) pairs are all distinct."""
    rest = rng.integers(0, high, len(prefix))
    while True:
        _, first = np.unique(prefix * high + rest, return_index=True)
        if len(first) == len(rest):
            return rest
        again = np.ones(len(rest), dtype=bool)
        again[first] = False
        rest[again] = rng.integers(0, high, int(again.sum()))


def _rank_in_groups(counts: IntArr) -> IntArr:
    """Position of every element within its group, for groups of `counts` laid end to end."""
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum()), dtype=np.int64) - offsets


def _fullwidth_digits(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "0" <= ch <= "9" else ch for ch in text)


def _address_variant(text: str, kind: int) -> str:
    """A spelling of `text` that normalises to the same string (what clerks really type)."""
    if kind == 1:
        return _fullwidth_digits(text)
    if kind == 2:
        return " " + text.replace("市", "市 ", 1) + "  "
    if kind == 3:
        return text.replace("区", "区\u3000", 1)
    return text


def _phone_variant(mobile: str, kind: int) -> str:
    if kind == 1:
        return f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}"
    if kind == 2:
        return f"0086{mobile}"
    if kind == 3:
        return f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
    return mobile


@dataclass(slots=True)
class _Table:
    """Columns of one CSV file; rows are appended in batches and written in order."""

    columns: tuple[str, ...]
    batches: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **cols: Any) -> None:
        self.batches.append(cols)

    def to_arrow(self) -> pa.Table:
        parts = []
        for batch in self.batches:
            arrays = {}
            for name in self.columns:
                value = batch.get(name)
                arrays[name] = _as_string_array(value, _batch_len(batch))
            parts.append(pa.table(arrays))
        if not parts:
            return pa.table({name: pa.array([], pa.string()) for name in self.columns})
        return pa.concat_tables(parts)


def _batch_len(batch: dict[str, Any]) -> int:
    for value in batch.values():
        if value is not None and not isinstance(value, str):
            return len(value)
    raise ValueError("batch without an array column")


def _as_string_array(value: Any, length: int) -> Column:
    if value is None:
        return pa.nulls(length, pa.string())
    if isinstance(value, str):
        return pa.array([value] * length, pa.string())
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if isinstance(value, pa.Array):
        return value if value.type == pa.string() else pc.cast(value, pa.string())
    return pa.array(value, pa.string())


# ---------------------------------------------------------------------------------------------
# The builder


class _BankBuilder:
    """Builds the bank stage by stage in integer index space and writes it out.

    Global customer index: persons 0..P-1, companies P..P+C-1, then alias person records,
    then alias company records. Planted structures draw their members from per-kind pools so
    they never overlap.
    """

    def __init__(self, out_dir: Path, customers: int, seed: int, bad_rows: bool) -> None:
        self.out = out_dir
        self.truth = out_dir / "truth"
        self.want_bad_rows = bad_rows
        streams = np.random.SeedSequence(seed).spawn(16)
        self.rng = {
            name: np.random.default_rng(s)
            for name, s in zip(
                (
                    "persons", "families", "companies", "ownership", "positions", "rings",
                    "control", "guarantees", "loans", "accounts", "transactions", "devices",
                    "aliases", "shared", "bad", "pools",
                ),
                streams,
                strict=True,
            )
        }  # fmt: skip
        self.n_companies = max(20, round(customers * 0.2))
        self.n_persons = customers - self.n_companies
        self.n = customers
        self.rows: dict[str, int] = {}
        self.valid_rows: dict[str, int] = {}
        self.bad: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        self.tables: dict[str, _Table] = {
            "shareholdings.csv": _Table(
                ("holder_id", "company_id", "share_pct", "voting_pct", "as_of")
            ),
            "positions.csv": _Table(("person_id", "company_id", "role")),
            "kinships.csv": _Table(("person_id", "relative_id", "relation")),
            "guarantees.csv": _Table(
                ("guarantee_id", "guarantor_id", "borrower_id", "loan_id", "amount",
                 "start_date", "end_date", "kind")
            ),
            "loans.csv": _Table(
                ("loan_id", "borrower_id", "amount", "balance", "start_date", "maturity_date",
                 "classification", "branch")
            ),
            "accounts.csv": _Table(("account_id", "owner_id", "branch", "opened_date")),
            "devices.csv": _Table(("owner_id", "device_id", "first_seen")),
        }  # fmt: skip
        self.truth_data: dict[str, Any] = {}
        pools = self.rng["pools"]
        self._person_pool = list(pools.permutation(self.n_persons)[::-1])
        self._company_pool = list((pools.permutation(self.n_companies) + self.n_persons)[::-1])
        self._loan_seq = 0
        self.total_balance = 0.0
        self._guarantee_seq = 0
        self.no_out_guarantees = np.zeros(self.n, dtype=bool)
        self.in_ring = np.zeros(self.n, dtype=bool)
        self.planted_companies: set[int] = set()

    # -- helpers ---------------------------------------------------------------------------

    def steps(self) -> list[tuple[str, Any]]:
        return [
            ("persons", self.build_persons),
            ("families", self.build_families),
            ("rings", self.choose_rings),
            ("identifiers", self.build_identifiers),
            ("companies", self.build_companies),
            ("shared identifiers", self.build_shared),
            ("control cases", self.build_control_cases),
            ("aliases", self.build_aliases),
            ("ownership", self.build_ownership),
            ("positions", self.build_positions),
            ("loans", self.build_loans),
            ("guarantees", self.build_guarantees),
            ("accounts", self.build_accounts),
            ("devices", self.build_devices),
            ("bad rows", self.plan_bad_rows),
            ("entity files", self.write_entities),
            ("relationship files", self.write_relationships),
            ("transactions", self.write_transactions),
            ("truth", self.write_truth),
        ]

    def take_persons(self, k: int) -> list[int]:
        if len(self._person_pool) < k:
            raise ValueError("too few customers for the planted structures; raise `customers`")
        return [int(self._person_pool.pop()) for _ in range(k)]

    def take_companies(self, k: int) -> list[int]:
        if len(self._company_pool) < k:
            raise ValueError("too few customers for the planted structures; raise `customers`")
        return [int(self._company_pool.pop()) for _ in range(k)]

    def take_customers(self, k: int, rng: np.random.Generator) -> list[int]:
        n_comp = int(rng.binomial(k, 0.6))
        members = self.take_companies(n_comp) + self.take_persons(k - n_comp)
        return [int(m) for m in rng.permutation(np.array(members, dtype=np.int64))]

    def id_of(self, index: int) -> str:
        return str(self.cust_ids[index].as_py())

    def ids_of(self, indices: Sequence[int] | IntArr) -> list[str]:
        return [self.id_of(int(i)) for i in indices]

    def new_loan_ids(self, k: int) -> IntArr:
        out = np.arange(self._loan_seq, self._loan_seq + k, dtype=np.int64) + 1
        self._loan_seq += k
        return out

    def new_guarantee_ids(self, k: int) -> IntArr:
        out = np.arange(self._guarantee_seq, self._guarantee_seq + k, dtype=np.int64) + 1
        self._guarantee_seq += k
        return out

    # -- persons ---------------------------------------------------------------------------

    def build_persons(self) -> None:
        rng = self.rng["persons"]
        n = self.n_persons
        county_city = np.array([_city_of(code) for code, _ in _COUNTIES])
        city_weight = np.array([c[2] for c in _CITIES])
        county_w = city_weight[county_city] / np.bincount(county_city)[county_city]
        self.county_p = county_w / county_w.sum()
        self.county_city = county_city
        self.p_county = rng.choice(len(_COUNTIES), n, p=self.county_p)
        self.p_male = rng.random(n) < 0.5
        self.p_birth = rng.integers(_day("1950-01-01"), _day("2004-12-31"), n)
        surname_w = np.array([w for _, w in _SURNAMES])
        self.p_surname = rng.choice(len(_SURNAMES), n, p=surname_w / surname_w.sum())
        self.p_given1 = rng.integers(0, 1 << 30, n)
        self.p_given2 = rng.integers(0, 1 << 30, n)
        self.p_two_chars = rng.random(n) < 0.7
        self.p_migrant = rng.random(n) < 0.12
        self.p_has_phone = rng.random(n) < 0.95
        self.p_phone_fmt = rng.choice(4, n, p=(0.9, 0.04, 0.02, 0.04))

    def build_families(self) -> None:
        rng = self.rng["families"]
        n = self.n_persons
        sizes = rng.choice(np.arange(1, 6), n, p=(0.3, 0.25, 0.25, 0.15, 0.05))
        ends = np.cumsum(sizes)
        cut = int(np.searchsorted(ends, n)) + 1
        sizes = sizes[:cut]
        sizes[-1] -= int(ends[cut - 1]) - n
        sizes = sizes[sizes > 0]
        starts = np.cumsum(sizes) - sizes
        order = rng.permutation(n)
        hh = np.repeat(np.arange(len(sizes)), sizes)
        pos = np.arange(n) - np.repeat(starts, sizes)
        person = order  # person at slot s is order[s]
        self.household = np.empty(n, dtype=np.int64)
        self.household[person] = hh
        self.n_households = len(sizes)
        size_of_slot = np.repeat(sizes, sizes)
        rel_src: list[IntArr] = []
        rel_dst: list[IntArr] = []
        rel_kind: list[NDArray[np.str_]] = []
        # Couples: slot 0 husband, slot 1 wife.
        couple = (pos == 0) & (size_of_slot >= 2)
        husbands, wives = person[couple], person[np.flatnonzero(couple) + 1]
        self.p_male[husbands] = True
        self.p_male[wives] = False
        with_children = size_of_slot >= 3
        parents_slot = couple & with_children[np.arange(n)]
        self.p_birth[person[parents_slot]] = rng.integers(
            _day("1945-01-01"), _day("1980-12-31"), int(parents_slot.sum())
        )
        self.p_birth[wives] = np.clip(
            self.p_birth[husbands] + rng.normal(-700, 1000, len(wives)).astype(np.int64),
            _day("1940-01-01"),
            _day("2004-12-31"),
        )
        self.spouses = np.stack([husbands, wives], axis=1)
        rel_src.append(husbands)
        rel_dst.append(wives)
        rel_kind.append(np.full(len(husbands), "spouse"))
        # Children take the father's surname and are born 22-36 years after the older parent.
        child_slots = np.flatnonzero(pos >= 2)
        father = person[np.repeat(starts, sizes)[child_slots]]
        mother = person[np.repeat(starts, sizes)[child_slots] + 1]
        children = person[child_slots]
        self.p_surname[children] = self.p_surname[father]
        older = np.minimum(self.p_birth[father], self.p_birth[mother])
        self.p_birth[children] = np.minimum(
            older + rng.integers(22 * 365, 36 * 365, len(children)), _day("2006-06-30")
        )
        for parent in (father, mother):
            # Store each parent/child pair once, half of them from the parent's side.
            from_child = rng.random(len(children)) < 0.5
            rel_src.append(np.where(from_child, children, parent))
            rel_dst.append(np.where(from_child, parent, children))
            rel_kind.append(np.where(from_child, "parent", "child"))
        for a in (2, 3):
            for b in range(a + 1, 5):
                both = (pos == a) & (size_of_slot > b)
                rel_src.append(person[both])
                rel_dst.append(person[np.flatnonzero(both) + (b - a)])
                rel_kind.append(np.full(int(both.sum()), "sibling"))
        # The household lives in one county.
        head_county = self.p_county[person[starts]]
        self.p_county[person] = head_county[hh]
        self.kin_src = np.concatenate(rel_src)
        self.kin_dst = np.concatenate(rel_dst)
        self.kin_rel = np.concatenate(rel_kind)

    # -- rings -----------------------------------------------------------------------------

    def choose_rings(self) -> None:
        rng = self.rng["rings"]
        n_rings = max(1, self.n // 3000)
        max_size = max(5, min(30, self.n // 40))
        self.rings: list[dict[str, Any]] = []
        self.hh_county_override = np.full(self.n_households, -1, dtype=np.int64)
        for r in range(n_rings):
            size = int(rng.integers(5, max_size + 1))
            n_comp = max(1, int(rng.binomial(size, 0.15)))
            drawn = self.take_persons(size - n_comp) + self.take_companies(n_comp)
            members = [int(m) for m in rng.permutation(np.array(drawn, dtype=np.int64))]
            county = int(rng.choice(len(_COUNTIES), p=self.county_p))
            persons = [m for m in members if m < self.n_persons]
            # The whole family lives in the ring's county.
            self.hh_county_override[self.household[persons]] = county
            self.in_ring[members] = True
            self.no_out_guarantees[members] = True
            self.rings.append({"ring_id": f"R{r + 1:04d}", "members": members, "county": county})
        moved = self.hh_county_override[self.household]
        self.p_county = np.where(moved >= 0, moved, self.p_county)
        for ring in self.rings:
            persons = [m for m in ring["members"] if m < self.n_persons]
            self.p_county[persons] = ring["county"]

    # -- identifiers -----------------------------------------------------------------------

    def build_identifiers(self) -> None:
        rng = self.rng["persons"]
        n = self.n_persons
        county_codes = np.array([int(code) for code, _ in _COUNTIES], dtype=np.int64)
        region = county_codes[self.p_county]
        birth_region = np.where(
            self.p_migrant,
            np.array([int(c) for c in _MIGRANT_REGIONS])[rng.integers(0, len(_MIGRANT_REGIONS), n)],
            region,
        )
        birth = self.p_birth.astype("datetime64[D]")
        ymd = np.char.replace(np.datetime_as_string(birth, unit="D"), "-", "").astype(np.int64)
        # Sequence: odd for men, even for women (GB 11643 order code).
        seq_prefix = (birth_region * 100_000_000 + ymd) * 2 + self.p_male.astype(np.int64)
        half = _unique_draw(rng, seq_prefix, 500)
        seq = half * 2 + self.p_male.astype(np.int64)
        first17 = birth_region * 10**11 + ymd * 1000 + seq
        digits = (first17[:, None] // (10 ** np.arange(16, -1, -1, dtype=np.int64))) % 10
        ascii17 = (digits + ord("0")).astype(np.uint8)
        check = resident_id_check_bytes(ascii17)
        self.p_id_number = _ascii_rows(np.concatenate([ascii17, check[:, None]], axis=1))
        self.p_region = region
        # Mobiles: unique per person; extra ones are handed to rings.
        extra = 4 * len(self.rings) + 8
        prefix = _MOBILE_PREFIXES[rng.integers(0, len(_MOBILE_PREFIXES), n + extra)]
        number = _unique_draw(rng, prefix, 10**8)
        mobiles = [f"{p}{x:08d}" for p, x in zip(prefix.tolist(), number.tolist(), strict=True)]
        self.spare_mobiles = mobiles[n:]
        self.p_phone: list[str | None] = [
            _phone_variant(m, int(k)) if has else None
            for m, k, has in zip(
                mobiles[:n], self.p_phone_fmt.tolist(), self.p_has_phone.tolist(), strict=True
            )
        ]
        self.p_mobile_norm = mobiles[:n]
        # One residential address per household, unique across households and ring flats.
        hh_head_county = np.zeros(self.n_households, dtype=np.int64)
        hh_head_county[self.household] = self.p_county
        # Four flats per ring in the ring's county: its shared addresses.
        ring_counties = np.repeat([r["county"] for r in self.rings], 4)
        addr_county = np.concatenate([hh_head_county, ring_counties])
        high = len(_ROADS) * 999 * len(_ESTATES) * 40 * 6 * 120
        rest = _unique_draw(rng, addr_county, high)
        addresses = _residential_addresses(addr_county, rest)
        self.hh_address = addresses[: self.n_households]
        self.spare_addresses = addresses[self.n_households :]
        self.p_address: list[str | None] = [self.hh_address[h] for h in self.household.tolist()]
        names = []
        for s, g1, g2, two, male in zip(
            self.p_surname.tolist(), self.p_given1.tolist(), self.p_given2.tolist(),
            self.p_two_chars.tolist(), self.p_male.tolist(), strict=True,
        ):  # fmt: skip
            pool = _GIVEN_MALE if male else _GIVEN_FEMALE
            first = (_GIVEN_ANY + pool)[g1 % (len(_GIVEN_ANY) + len(pool))] if two else ""
            names.append(_SURNAMES[s][0] + first + pool[g2 % len(pool)])
        self.p_name = names

    # -- companies -------------------------------------------------------------------------

    def build_companies(self) -> None:
        rng = self.rng["companies"]
        c = self.n_companies
        self.c_county = rng.choice(len(_COUNTIES), c, p=self.county_p)
        for ring in self.rings:
            for m in ring["members"]:
                if m >= self.n_persons:
                    self.c_county[m - self.n_persons] = ring["county"]
        county_codes = np.array([int(code) for code, _ in _COUNTIES], dtype=np.int64)
        self.c_region = county_codes[self.c_county]
        ind_w = np.array([w for _, _, w in _INDUSTRIES])
        self.c_industry = rng.choice(len(_INDUSTRIES), c, p=ind_w / ind_w.sum())
        self.c_financial = rng.random(c) < 0.005
        self.c_capital = np.round(np.exp(rng.normal(np.log(2e6), 1.3, c)) / 1e4) * 1e4 + 1e5
        self.c_established = rng.integers(_day("1995-01-01"), _day("2023-12-31"), c)
        # USCC: 9 (industry and commerce) 1 (enterprise) + county + 9-char organisation code.
        org = _unique_draw(rng, np.zeros(c + 8, dtype=np.int64), 31**9)
        org_chars = (org[:, None] // (31 ** np.arange(8, -1, -1, dtype=np.int64))) % 31
        charset = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", dtype=np.uint8)
        region = np.concatenate([self.c_region, np.full(8, 330100)])
        head = np.stack(
            [np.full(c + 8, ord("9")), np.full(c + 8, ord("1"))]
            + [(region // 10**k) % 10 + ord("0") for k in range(5, -1, -1)],
            axis=1,
        ).astype(np.uint8)
        ascii17 = np.concatenate([head, charset[org_chars]], axis=1)
        check = uscc_check_bytes(ascii17)
        usccs = _ascii_rows(np.concatenate([ascii17, check[:, None]], axis=1))
        self.c_uscc = usccs[:c]
        self.spare_usccs = usccs[c:]
        # Landlines: unique 8-digit numbers behind the city's area code.
        city = self.county_city[self.c_county]
        line = _unique_draw(rng, city.astype(np.int64), 10**7) + 8 * 10**7
        self.c_phone: list[str | None] = [
            f"{_CITIES[ct][3]}-{x}" for ct, x in zip(city.tolist(), line.tolist(), strict=True)
        ]
        high = len(_ROADS) * 999 * len(_PARKS) * 30 * 20
        rest = _unique_draw(rng, self.c_county.astype(np.int64), high)
        self.c_address = _office_addresses(self.c_county, rest)
        names = []
        b1 = rng.integers(0, len(_BRAND_CHARS), c).tolist()
        b2 = rng.integers(0, len(_BRAND_CHARS), c).tolist()
        joint_stock = (rng.random(c) < 0.15).tolist()
        for i in range(c):
            city_name = _CITIES[int(city[i])][1].removesuffix("市")
            brand = _BRAND_CHARS[b1[i]] + _BRAND_CHARS[b2[i]]
            if self.c_financial[i]:
                names.append(f"{city_name}{brand}小额贷款股份有限公司")
                continue
            suffix = "股份有限公司" if joint_stock[i] else "有限公司"
            names.append(f"{city_name}{brand}{_INDUSTRIES[int(self.c_industry[i])][1]}{suffix}")
        self.c_name = names
        self.cust_ids = pa.concat_arrays(
            [
                _ids("P", np.arange(1, self.n_persons + 1), 8),
                _ids("C", np.arange(1, c + 1), 8),
            ]
        )
        # Ring members share phones and addresses; not all of them, and never all kinds.
        rr = self.rng["rings"]
        for r_index, ring in enumerate(self.rings):
            members = ring["members"]
            k = len(members)
            phones = [self.spare_mobiles.pop() for _ in range(1 + k // 10)]
            flats = self.spare_addresses[4 * r_index : 4 * r_index + 1 + k // 8]
            ring["phones"], ring["addresses"] = phones, flats
            ring["phone_users"], ring["address_users"] = [], []
            # The last member never shares an identifier: it is tied by guarantees and flows.
            for j, m in enumerate(members[:-1]):
                if rr.random() < 0.55 or j < 2:
                    ph = phones[int(rr.integers(0, len(phones)))] if j >= 2 else phones[0]
                    self.set_phone(m, _phone_variant(ph, int(rr.integers(0, 4))))
                    ring["phone_users"].append((m, ph))
                if rr.random() < 0.5 or 2 <= j < 4:
                    ad = flats[int(rr.integers(0, len(flats)))] if j >= 4 else flats[0]
                    self.set_address(m, _address_variant(ad, int(rr.integers(0, 4))))
                    ring["address_users"].append((m, ad))

    def set_phone(self, index: int, phone: str | None) -> None:
        if index < self.n_persons:
            self.p_phone[index] = phone
        else:
            self.c_phone[index - self.n_persons] = phone

    def set_address(self, index: int, address: str | None) -> None:
        if index < self.n_persons:
            self.p_address[index] = address
        else:
            self.c_address[index - self.n_persons] = address

    # -- legitimately shared identifiers ---------------------------------------------------

    def build_shared(self) -> None:
        rng = self.rng["shared"]
        n_each = max(1, self.n // 20_000)
        cap = max(6, min(80, self.n // 30))
        self.legit: list[dict[str, Any]] = []
        for _ in range(n_each):
            (company,) = self.take_companies(1)
            staff = self.take_persons(int(rng.integers(5, cap + 1)))
            phone = self.c_phone[company - self.n_persons]
            assert phone is not None
            for p in staff:
                self.p_phone[p] = phone
            self.legit.append(
                {
                    "kind": "switchboard_phone",
                    "value": phone,
                    "normalised": normalise_phone(phone),
                    "owner_id": self.id_of(company),
                    "customers": self.ids_of([company, *staff]),
                }
            )
        for b in range(n_each):
            county = int(rng.choice(len(_COUNTIES), p=self.county_p))
            city = _CITIES[int(self.county_city[county])][1]
            road = _ROADS[int(rng.integers(0, len(_ROADS)))]
            park = _PARKS[b % len(_PARKS)]
            building = f"浙江省{city}{_COUNTIES[county][1]}{road}{100 + b}号{park}集中办公区"
            k = int(rng.integers(5, cap + 1))
            n_comp = max(2, k // 2)
            tenants = self.take_companies(n_comp) + self.take_persons(k - n_comp)
            for t in tenants:
                self.set_address(t, building)
            self.legit.append(
                {
                    "kind": "office_address",
                    "value": building,
                    "normalised": normalise_address(building),
                    "owner_id": None,
                    "customers": self.ids_of(tenants),
                }
            )

    # -- control ---------------------------------------------------------------------------

    def build_control_cases(self) -> None:
        rng = self.rng["control"]
        k = max(2, self.n // 10_000)
        self.control: list[dict[str, Any]] = []
        self.sh_rows: list[tuple[int, int, float, float | None]] = []
        self.pos_rows: list[tuple[int, int, str]] = []
        for _ in range(k):
            # Aggregated: x holds 25-35% of c directly and controls s, which holds the rest
            # of a majority; other holders each stay far below 50%.
            x, o1, o2, o3, o4 = self.take_persons(5)
            s, c = self.take_companies(2)
            direct = float(rng.integers(25, 36))
            via = float(rng.integers(56 - int(direct), 46))
            rest = 100.0 - direct - via
            self.sh_rows += [
                (x, s, 60.0, None), (o1, s, 40.0, None),
                (x, c, direct, None), (s, c, via, None),
                (o2, c, round(rest * 0.5, 2), None), (o3, c, round(rest * 0.3, 2), None),
                (o4, c, round(rest * 0.2, 2), None),
            ]  # fmt: skip
            self.pos_rows += [(x, s, "legal_representative"), (o2, c, "legal_representative")]
            self.control.append(
                {
                    "controllers": self.ids_of([x]),
                    "company": self.id_of(c),
                    "kind": "aggregated",
                    "via": self.ids_of([s]),
                }
            )
            self.control.append(
                {
                    "controllers": self.ids_of([x]),
                    "company": self.id_of(s),
                    "kind": "majority",
                    "via": [],
                }
            )
            self.planted_companies.update((s, c))
        used_couples = rng.choice(len(self.spouses), min(k, len(self.spouses)), replace=False)
        for row in used_couples.tolist():
            # Family: husband and wife each below 50%, together above.
            h, w = (int(v) for v in self.spouses[row])
            o1, o2 = self.take_persons(2)
            (c,) = self.take_companies(1)
            a = float(rng.integers(26, 40))
            b = float(rng.integers(52 - int(a), 36))
            rest = 100.0 - a - b
            self.sh_rows += [
                (h, c, a, None),
                (w, c, b, None),
                (o1, c, round(rest * 0.6, 2), None),
                (o2, c, round(rest * 0.4, 2), None),
            ]
            self.pos_rows += [(h, c, "legal_representative")]
            self.control.append(
                {
                    "controllers": self.ids_of([h, w]),
                    "company": self.id_of(c),
                    "kind": "family",
                    "via": [],
                }
            )
            self.planted_companies.add(c)
        for _ in range(k):
            # Actual controller by agreement: holds nothing or little, no majority anywhere.
            y, o1, o2, o3 = self.take_persons(4)
            (c,) = self.take_companies(1)
            self.sh_rows += [
                (o1, c, 40.0, None),
                (o2, c, 35.0, None),
                (o3, c, 20.0, None),
                (y, c, 5.0, None),
            ]
            self.pos_rows += [(y, c, "actual_controller"), (o1, c, "legal_representative")]
            self.control.append(
                {
                    "controllers": self.ids_of([y]),
                    "company": self.id_of(c),
                    "kind": "actual_controller",
                    "via": [],
                }
            )
            self.planted_companies.add(c)
        for _ in range(k):
            # Voting rights differ from shares: 40% of the shares carry 60% of the votes.
            v, o1, o2 = self.take_persons(3)
            (c,) = self.take_companies(1)
            self.sh_rows += [(v, c, 40.0, 60.0), (o1, c, 35.0, 15.0), (o2, c, 25.0, 25.0)]
            self.pos_rows += [(v, c, "legal_representative")]
            self.control.append(
                {
                    "controllers": self.ids_of([v]),
                    "company": self.id_of(c),
                    "kind": "voting_rights",
                    "via": [],
                }
            )
            self.planted_companies.add(c)

    def build_ownership(self) -> None:
        rng = self.rng["ownership"]
        p, c = self.n_persons, self.n_companies
        planted = np.zeros(p + c, dtype=bool)
        planted[list(self.planted_companies)] = True
        targets = np.array([i for i in range(p, p + c) if not planted[i]], dtype=np.int64)
        rng.shuffle(targets)
        # Cross-holdings: pairs of companies holding minority stakes in each other.
        n_cross = max(1, c // 500)
        cross = targets[: 2 * n_cross].reshape(-1, 2)
        self.cross = cross
        k = rng.choice(np.arange(1, 5), len(targets), p=(0.3, 0.35, 0.2, 0.15))
        k[: 2 * n_cross] = np.maximum(k[: 2 * n_cross], 2)
        company = np.repeat(targets, k)
        slot = _rank_in_groups(k)
        weight = rng.gamma(1.0, size=len(company))
        group_sum = np.repeat(np.add.reduceat(weight, np.cumsum(k) - k), k)
        share = np.floor((1.0 + (100.0 - np.repeat(k, k)) * weight / group_sum) * 100) / 100
        # Entrepreneurs: a minority of adults holds most stakes, a few of them very many.
        entrepreneurs = rng.choice(p, max(10, p // 8), replace=False)
        pick = (len(entrepreneurs) * rng.random(len(company)) ** 2.5).astype(np.int64)
        holder = entrepreneurs[pick]
        # The first holder is a parent company in 30% of cases: one with a lower index, so
        # the random ownership graph stays acyclic apart from the planted cross-holdings.
        first = slot == 0
        by_company = rng.random(len(company)) < 0.3
        parent_pos = (rng.random(len(company)) * (company - p)).astype(np.int64) + p
        holder = np.where(first & by_company & (company > p), parent_pos, holder)
        cross_rows = np.flatnonzero(first[: int(k[: 2 * n_cross].sum())])
        partner = cross[:, ::-1].ravel()
        holder[cross_rows] = partner
        # No holder twice in the same company and no company holding itself.
        while True:
            dup = np.ones(len(holder), dtype=bool)
            dup[_first_of_pairs(company, holder)] = False
            dup |= holder == company
            if not dup.any():
                break
            holder[dup] = entrepreneurs[rng.integers(0, len(entrepreneurs), int(dup.sum()))]
        voting = share.copy()
        differs = np.zeros(len(company), dtype=bool)
        agreement = (rng.random(len(targets)) < 0.05) & (k >= 2)
        starts = np.cumsum(k) - k
        a_rows = starts[agreement]
        shift = np.minimum(10.0, np.floor(share[a_rows + 1] * 50) / 100)
        voting[a_rows] += shift
        voting[a_rows + 1] -= shift
        differs[a_rows] = differs[a_rows + 1] = True
        self.holdings = (holder, company, share)
        self.table_add_holdings(holder, company, share, np.where(differs, voting, np.nan))
        if self.sh_rows:
            h, cc, s, v = zip(*self.sh_rows, strict=True)
            vv = np.array([np.nan if x is None else x for x in v])
            self.table_add_holdings(np.array(h), np.array(cc), np.array(s, dtype=np.float64), vv)

    def table_add_holdings(
        self, holder: IntArr, company: IntArr, share: FloatArr, voting: FloatArr
    ) -> None:
        rng = self.rng["ownership"]
        as_of = rng.integers(_day("2023-06-30"), _day("2024-12-31"), len(holder))
        voting_col = pa.array(np.round(voting, 2), mask=np.isnan(voting))
        self.tables["shareholdings.csv"].add(
            holder_id=self.cust_ids.take(holder),
            company_id=self.cust_ids.take(company),
            share_pct=_money(share),
            voting_pct=pc.cast(pc.cast(voting_col, pa.decimal128(18, 2)), pa.string()),
            as_of=_dates(as_of),
        )

    def build_positions(self) -> None:
        rng = self.rng["positions"]
        p, c = self.n_persons, self.n_companies
        holder, company, _ = self.holdings
        is_person = holder < p
        # Legal representative: the first natural-person holder, else a random adult.
        legal = rng.integers(0, p, c)
        first_person = np.full(c, -1, dtype=np.int64)
        rows = np.flatnonzero(is_person)[::-1]
        first_person[company[rows] - p] = holder[rows]
        legal = np.where(first_person >= 0, first_person, legal)
        general = np.ones(c, dtype=bool)
        general[[x - p for x in self.planted_companies]] = False
        comp_idx = np.arange(p, p + c)[general]
        src: list[IntArr] = [legal[general]]
        dst: list[IntArr] = [comp_idx]
        role: list[NDArray[np.str_]] = [np.full(len(comp_idx), "legal_representative")]
        for name, mean in (
            ("director", 1.5),
            ("supervisor", 0.8),
            ("executive", 0.7),
            ("financial_controller", 0.5),
        ):
            count = rng.poisson(mean, c)
            src.append(rng.integers(0, p, int(count.sum())))
            dst.append(np.repeat(np.arange(p, p + c), count))
            role.append(np.full(int(count.sum()), name))
        if self.pos_rows:
            a, b, r = zip(*self.pos_rows, strict=True)
            src.append(np.array(a, dtype=np.int64))
            dst.append(np.array(b, dtype=np.int64))
            role.append(np.array(r))
        s, d, r_all = np.concatenate(src), np.concatenate(dst), np.concatenate(role)
        codes = np.unique(r_all, return_inverse=True)[1]
        _, keep = np.unique((s * (p + c) + d) * 8 + codes, return_index=True)
        keep.sort()
        self.tables["positions.csv"].add(
            person_id=self.cust_ids.take(s[keep]),
            company_id=self.cust_ids.take(d[keep]),
            role=pa.array(r_all[keep].astype(object), pa.string()),
        )

    # -- loans and guarantees ----------------------------------------------------------------

    def add_loans(
        self, borrower: IntArr, ring: bool, rng: np.random.Generator
    ) -> tuple[IntArr, FloatArr, IntArr, IntArr]:
        k = len(borrower)
        ids = self.new_loan_ids(k)
        company = borrower >= self.n_persons
        amount = (
            np.round(
                np.where(
                    company,
                    np.exp(rng.normal(np.log(3e6), 1.1, k)),
                    np.exp(rng.normal(np.log(3e5), 0.8, k)),
                )
                / 1000
            )
            * 1000
            + 10_000
        )
        balance = amount * rng.uniform(0.1, 1.0, k)
        start = rng.integers(_day("2019-01-01"), _day("2024-12-31"), k)
        maturity = start + rng.choice(
            [365, 730, 1095, 1826, 3652, 7305], k, p=(0.35, 0.2, 0.2, 0.1, 0.1, 0.05)
        )
        cls = rng.choice(len(_CLASSES), k, p=_CLASS_P_RING if ring else _CLASS_P_NORMAL)
        self.total_balance += float(balance.sum())
        self.tables["loans.csv"].add(
            loan_id=_ids("L", ids, 9),
            borrower_id=self.cust_ids.take(borrower),
            amount=_money(amount),
            balance=_money(balance),
            start_date=_dates(start),
            maturity_date=_dates(maturity),
            classification=pa.array(np.array(_CLASSES)[cls].astype(object), pa.string()),
            branch=self.branches(borrower, rng),
        )
        return ids, amount, start, maturity

    def build_loans(self) -> None:
        rng = self.rng["loans"]
        p, c = self.n_persons, self.n_companies
        n_loans = np.concatenate(
            [(rng.random(p) < 0.2).astype(np.int64), rng.choice(4, c, p=(0.3, 0.4, 0.2, 0.1))]
        )
        n_loans[self.in_ring] = 0
        borrower = np.repeat(np.arange(p + c), n_loans)
        self.loans = (borrower, *self.add_loans(borrower, False, rng))
        ring_borrowers = np.array(
            [
                m
                for r in self.rings
                for m in r["members"]
                for _ in range(1 + int(rng.random() < 0.4))
            ],
            dtype=np.int64,
        )
        self.add_loans(ring_borrowers, True, rng)

    def add_guarantees(
        self,
        guarantor: IntArr,
        borrower: IntArr,
        loan: IntArr,
        loan_amount: FloatArr,
        start: IntArr,
        end: IntArr,
        rng: np.random.Generator,
    ) -> IntArr:
        k = len(guarantor)
        ids = self.new_guarantee_ids(k)
        kind = rng.choice(3, k, p=(0.7, 0.2, 0.1))
        self.tables["guarantees.csv"].add(
            guarantee_id=_ids("G", ids, 9),
            guarantor_id=self.cust_ids.take(guarantor),
            borrower_id=self.cust_ids.take(borrower),
            loan_id=_ids("L", loan, 9),
            amount=_money(np.round(loan_amount * rng.uniform(0.3, 1.0, k), -2)),
            start_date=_dates(start),
            end_date=_dates(end),
            kind=pa.array(
                np.array(["guarantee", "mortgage", "pledge"])[kind].astype(object), pa.string()
            ),
        )
        return ids

    def planted_guarantees(
        self, edges: list[tuple[int, int]], ring: bool, rng: np.random.Generator
    ) -> tuple[list[str], float]:
        g = np.array([e[0] for e in edges], dtype=np.int64)
        b = np.array([e[1] for e in edges], dtype=np.int64)
        loan, amount, start, maturity = self.add_loans(b, ring, rng)
        ids = self.add_guarantees(g, b, loan, amount, start, maturity, rng)
        text = _ids("G", ids, 9).to_pylist()
        table = self.tables["guarantees.csv"].batches[-1]
        total = float(sum(float(x) for x in table["amount"].to_pylist()))
        return [str(t) for t in text], total

    def build_guarantees(self) -> None:
        rng = self.rng["guarantees"]
        n = self.n
        self.circles: list[dict[str, Any]] = []
        self.chains: list[dict[str, Any]] = []
        k = max(2, n // 5000)
        for _ in range(k):
            size = int(rng.integers(3, 7))
            members = self.take_customers(size, rng)
            self.no_out_guarantees[members] = True
            ids, _ = self.planted_guarantees(
                [(members[j], members[(j + 1) % size]) for j in range(size)], False, rng
            )
            self.circles.append(
                {
                    "circle_id": f"GC{len(self.circles) + 1:05d}",
                    "kind": "cycle",
                    "members": self.ids_of(members),
                    "guarantee_ids": ids,
                    "ring_id": None,
                }
            )
        for _ in range(k):
            a, b = self.take_customers(2, rng)
            self.no_out_guarantees[[a, b]] = True
            ids, _ = self.planted_guarantees([(a, b), (b, a)], False, rng)
            self.circles.append(
                {
                    "circle_id": f"GC{len(self.circles) + 1:05d}",
                    "kind": "mutual_pair",
                    "members": self.ids_of([a, b]),
                    "guarantee_ids": ids,
                    "ring_id": None,
                }
            )
        rank = rng.permutation(n)
        order = np.argsort(rank)
        for i in range(max(2, n // 10_000)):
            length = int(rng.integers(5, 9))
            members = self.take_customers(length + 1, rng)
            members.sort(key=lambda m: -int(rank[m]))
            ids, total = self.planted_guarantees(
                [(members[j], members[j + 1]) for j in range(length)], False, rng
            )
            self.chains.append(
                {
                    "chain_id": f"CH{i + 1:05d}",
                    "members": self.ids_of(members),
                    "length": length,
                    "total_amount": round(total, 2),
                    "guarantee_ids": ids,
                }
            )
        for ring in self.rings:
            members = ring["members"]
            m = len(members)
            ring["circle_ids"] = []
            size = min(m, int(rng.integers(3, 7)))
            # The member without shared identifiers is always in the circle.
            cyc = [
                members[-1],
                *[int(x) for x in rng.choice(members[:-1], size - 1, replace=False)],
            ]
            edges = [(cyc[j], cyc[(j + 1) % size]) for j in range(size)]
            ids, _ = self.planted_guarantees(edges, True, rng)
            cid = f"GC{len(self.circles) + 1:05d}"
            self.circles.append(
                {
                    "circle_id": cid,
                    "kind": "cycle",
                    "members": self.ids_of(cyc),
                    "guarantee_ids": ids,
                    "ring_id": ring["ring_id"],
                }
            )
            ring["circle_ids"].append(cid)
            for _ in range(m // 5):
                a, b = (int(x) for x in rng.choice(members, 2, replace=False))
                ids, _ = self.planted_guarantees([(a, b), (b, a)], True, rng)
                cid = f"GC{len(self.circles) + 1:05d}"
                self.circles.append(
                    {
                        "circle_id": cid,
                        "kind": "mutual_pair",
                        "members": self.ids_of([a, b]),
                        "guarantee_ids": ids,
                        "ring_id": ring["ring_id"],
                    }
                )
                ring["circle_ids"].append(cid)
        # Random guarantees on existing loans, always from a higher to a lower rank.
        borrower, loan, amount, start, maturity = self.loans
        pick = rng.random(len(borrower)) < 0.45
        pick &= rank[borrower] < n - 1
        guaranteed = borrower[pick]
        above = n - 1 - rank[guaranteed]
        jump = (rng.random(len(guaranteed)) * above).astype(np.int64)
        g = order[rank[guaranteed] + 1 + jump]
        ok = ~self.no_out_guarantees[g]
        sel = np.flatnonzero(pick)[ok]
        self.add_guarantees(
            g[ok], borrower[sel], loan[sel], amount[sel], start[sel], maturity[sel], rng
        )

    # -- aliases, accounts, devices ----------------------------------------------------------

    def build_aliases(self) -> None:
        rng = self.rng["aliases"]
        self.alias_persons = np.array(
            self.take_persons(max(2, self.n_persons // 200)), dtype=np.int64
        )
        self.alias_companies = np.array(
            self.take_companies(max(1, self.n_companies // 300)), dtype=np.int64
        )
        kp, kc = len(self.alias_persons), len(self.alias_companies)
        self.cust_ids = pa.concat_arrays(
            [
                self.cust_ids,
                _ids("P", np.arange(self.n_persons + 1, self.n_persons + kp + 1), 8),
                _ids("C", np.arange(self.n_companies + 1, self.n_companies + kc + 1), 8),
            ]
        )
        self.alias_canonical = np.concatenate([self.alias_persons, self.alias_companies])
        self.alias_phone_kind = rng.choice(5, kp + kc, p=(0.5, 0.15, 0.15, 0.1, 0.1))
        self.alias_address_kind = rng.choice(5, kp + kc, p=(0.4, 0.15, 0.15, 0.15, 0.15))

    def build_accounts(self) -> None:
        rng = self.rng["accounts"]
        p, c = self.n_persons, self.n_companies
        per = np.concatenate(
            [
                rng.choice([1, 2, 3], p, p=(0.6, 0.3, 0.1)),
                rng.choice([1, 2, 3], c, p=(0.4, 0.4, 0.2)),
            ]
        )
        owner = np.concatenate(
            [
                np.repeat(np.arange(p + c), per),
                np.arange(self.n, self.n + len(self.alias_canonical)),
            ]
        )
        self.first_account = np.cumsum(per) - per
        self.n_accounts = len(owner)
        opened = rng.integers(_day("2005-01-01"), _day("2022-12-31"), len(owner))
        self.tables["accounts.csv"].add(
            account_id=_ids("A", np.arange(1, len(owner) + 1), 10),
            owner_id=self.cust_ids.take(owner),
            branch=self.branches(owner, rng),
            opened_date=_dates(opened),
        )

    def branches(self, owner: IntArr, rng: np.random.Generator) -> Column:
        canonical = owner.copy()
        alias = owner >= self.n
        canonical[alias] = self.alias_canonical[owner[alias] - self.n]
        is_company = canonical >= self.n_persons
        county = np.where(
            is_company,
            self.c_county[np.clip(canonical - self.n_persons, 0, None)],
            self.p_county[np.minimum(canonical, self.n_persons - 1)],
        )
        city = self.county_city[county]
        number = rng.integers(1, 30, len(owner))
        return pa.array(
            [
                f"{_CITIES[ct][4]}{b:03d}"
                for ct, b in zip(city.tolist(), number.tolist(), strict=True)
            ],
            pa.string(),
        )

    def build_devices(self) -> None:
        rng = self.rng["devices"]
        p, c = self.n_persons, self.n_companies
        per = np.concatenate(
            [rng.choice([1, 2, 3], p, p=(0.7, 0.25, 0.05)), rng.choice([0, 1], c, p=(0.5, 0.5))]
        )
        owner = np.repeat(np.arange(p + c), per)
        extra = sum(1 + len(r["members"]) // 6 for r in self.rings)
        dev = _unique_draw(rng, np.zeros(len(owner) + extra, dtype=np.int64), 1 << 62)
        own_dev = dev[: len(owner)]
        spare = dev[len(owner) :].tolist()
        # A tablet shared by a couple: legitimate sharing inside 10% of families.
        first_dev = np.full(p + c, -1, dtype=np.int64)
        first_dev[owner[::-1]] = own_dev[::-1]
        couples = self.spouses[rng.random(len(self.spouses)) < 0.1]
        couples = couples[first_dev[couples[:, 0]] >= 0]
        owners = [owner, couples[:, 1]]
        devices = [own_dev, first_dev[couples[:, 0]]]
        for ring in self.rings:
            shared = [spare.pop() for _ in range(1 + len(ring["members"]) // 6)]
            ring["devices"] = [f"{d:016x}" for d in shared]
            users: list[tuple[int, int]] = []
            for j, m in enumerate(ring["members"][:-1]):
                if j in (0, 4) or rng.random() < 0.6:
                    users.append(
                        (m, shared[0] if j == 0 else shared[int(rng.integers(0, len(shared)))])
                    )
            ring["device_users"] = [(m, f"{d:016x}") for m, d in users]
            owners.append(np.array([m for m, _ in users], dtype=np.int64))
            devices.append(np.array([d for _, d in users], dtype=np.int64))
        o, d = np.concatenate(owners), np.concatenate(devices)
        keep = _first_of_pairs(o, d)
        o, d = o[keep], d[keep]
        first_seen = rng.integers(_day("2018-01-01"), _day("2024-12-31"), len(o))
        self.tables["devices.csv"].add(
            owner_id=self.cust_ids.take(o),
            device_id=pa.array([f"{x:016x}" for x in d.tolist()], pa.string()),
            first_seen=_dates(first_seen),
        )
        self.n_devices = len(np.unique(d))

    # -- bad rows ------------------------------------------------------------------------------

    def plan_bad_rows(self) -> None:
        """Malformed rows, each a fresh record nothing else refers to."""
        if not self.want_bad_rows:
            return
        rng = self.rng["bad"]
        person = self.id_of(int(rng.integers(0, self.n_persons)))
        other = self.id_of(int(rng.integers(0, self.n_persons)))
        company = self.id_of(self.n_persons + int(rng.integers(0, self.n_companies)))
        first17 = "33010619800505123"
        good = resident_id_check_char(first17)
        wrong_rid = first17 + ("0" if good != "0" else "1")
        uscc = str(self.spare_usccs[0].as_py())
        wrong_uscc = uscc[:17] + ("0" if uscc[17] != "0" else "1")
        next_p = f"P{self.n_persons + len(self.alias_persons) + 1:08d}"
        next_c = f"C{self.n_companies + len(self.alias_companies) + 1:08d}"
        unknown_p, unknown_c = "P900000001", "C900000001"
        plan: list[tuple[str, str, str, dict[str, str]]] = [
            ("persons.csv", "id_number", "bad_checksum",
             {"person_id": next_p, "name": "王小明", "id_number": wrong_rid,
              "region_code": "330106",
              "birth_date": "1980-05-05"}),
            ("companies.csv", "uscc", "bad_checksum",
             {"company_id": next_c, "name": "杭州错码贸易有限公司", "uscc": wrong_uscc,
              "region_code": "330106", "industry": "F5181"}),
            ("shareholdings.csv", "holder_id", "unknown_id",
             {"holder_id": unknown_p, "company_id": company, "share_pct": "10.00",
              "as_of": "2024-06-30"}),
            ("shareholdings.csv", "share_pct", "pct_out_of_range",
             {"holder_id": person, "company_id": company, "share_pct": "120.00",
              "as_of": "2024-06-30"}),
            ("kinships.csv", "relation", "bad_relation",
             {"person_id": person, "relative_id": other, "relation": "cousin"}),
            ("kinships.csv", "relative_id", "unknown_id",
             {"person_id": person, "relative_id": unknown_p, "relation": "sibling"}),
            ("guarantees.csv", "amount", "negative_amount",
             {"guarantee_id": "G900000001", "guarantor_id": company, "borrower_id": person,
              "amount": "-50000.00", "start_date": "2024-01-15", "end_date": "2025-01-15",
              "kind": "guarantee"}),
            ("guarantees.csv", "borrower_id", "unknown_id",
             {"guarantee_id": "G900000002", "guarantor_id": person, "borrower_id": unknown_c,
              "amount": "80000.00", "start_date": "2024-01-15", "end_date": "2025-01-15",
              "kind": "pledge"}),
            ("loans.csv", "amount", "negative_amount",
             {"loan_id": "L900000001", "borrower_id": company, "amount": "-1200000.00",
              "balance": "600000.00", "start_date": "2023-03-01", "maturity_date": "2026-03-01",
              "classification": "normal", "branch": "HZ001"}),
            ("loans.csv", "start_date", "unparseable_date",
             {"loan_id": "L900000002", "borrower_id": person, "amount": "300000.00",
              "balance": "250000.00", "start_date": "2023-02-30", "maturity_date": "2026-03-01",
              "classification": "normal", "branch": "HZ001"}),
            ("accounts.csv", "opened_date", "unparseable_date",
             {"account_id": "A9000000001", "owner_id": person, "branch": "HZ001",
              "opened_date": "15/03/2021"}),
            ("transactions.csv", "amount", "negative_amount",
             {"txn_id": "T90000000001", "from_account": "A0000000001", "to_account": "A0000000002",
              "amount": "-880.00", "ts": "2024-03-01T10:00:00", "channel": "mobile"}),
            ("transactions.csv", "to_account", "unknown_id",
             {"txn_id": "T90000000002", "from_account": "A0000000001", "to_account": "A9999999999",
              "amount": "880.00", "ts": "2024-03-01T10:05:00", "channel": "online"}),
            ("devices.csv", "owner_id", "unknown_id",
             {"owner_id": unknown_p, "device_id": "ffffffffffffffff", "first_seen": "2024-01-01"}),
        ]  # fmt: skip
        for file, column, reason, row in plan:
            self.bad.setdefault(file, []).append((column, reason, row))

    # -- writing ---------------------------------------------------------------------------

    def write_csv(self, name: str, parts: Iterator[pa.Table] | pa.Table) -> None:
        """Write `parts` to `name`, slipping this file's bad rows in at random places.

        Bad rows land in the first part; their physical line (header = 1) is recorded.
        """
        rng = self.rng["bad"]
        bad = self.bad.get(name, [])
        chunks = iter([parts]) if isinstance(parts, pa.Table) else parts
        path = self.out / name
        total = 0
        good = 0
        options = pacsv.WriteOptions(quoting_style="needed", batch_size=_WRITE_BATCH)
        writer: pacsv.CSVWriter | None = None
        for i, chunk in enumerate(chunks):
            table = chunk
            if writer is None:
                writer = pacsv.CSVWriter(path, table.schema, write_options=options)
            if i == 0 and bad:
                n_rows = table.num_rows + len(bad)
                where = np.sort(rng.choice(n_rows, len(bad), replace=False))
                cursor = 0
                for j, (pos, (column, reason, row)) in enumerate(
                    zip(where.tolist(), bad, strict=True)
                ):
                    upto = pos - j
                    writer.write_table(table.slice(cursor, upto - cursor))
                    cursor = upto
                    full = {col: [row.get(col)] for col in table.column_names}
                    writer.write_table(pa.table(full, schema=table.schema))
                    self.bad_rows_truth.append(
                        {
                            "file": name,
                            "line": total + pos + 2,
                            "column": column,
                            "reason_kind": reason,
                        }
                    )
                writer.write_table(table.slice(cursor))
                total += n_rows
            else:
                writer.write_table(table)
                total += table.num_rows
            good += table.num_rows
        assert writer is not None
        writer.close()
        self.rows[name] = total
        self.valid_rows[name] = good

    def write_entities(self) -> None:
        self.bad_rows_truth: list[dict[str, Any]] = []
        p = self.n_persons
        kp = len(self.alias_persons)
        ap = self.alias_persons
        alias_phone = [
            _phone_variant(self.p_mobile_norm[i], int(k)) if k < 4 else None
            for i, k in zip(ap.tolist(), self.alias_phone_kind[:kp].tolist(), strict=True)
        ]
        alias_address = [
            _address_variant(a, int(k)) if (a := self.p_address[i]) is not None and k < 4 else None
            for i, k in zip(ap.tolist(), self.alias_address_kind[:kp].tolist(), strict=True)
        ]
        birth = np.concatenate([self.p_birth, self.p_birth[ap]])
        persons = pa.table(
            {
                "person_id": pa.concat_arrays(
                    [self.cust_ids.slice(0, p), self.cust_ids.slice(self.n, kp)]
                ),
                "name": pa.array(self.p_name + [self.p_name[i] for i in ap.tolist()], pa.string()),
                "id_number": pa.concat_arrays([self.p_id_number, self.p_id_number.take(ap)]),
                "phone": pa.array(self.p_phone + alias_phone, pa.string()),
                "address": pa.array(self.p_address + alias_address, pa.string()),
                "region_code": pa.array(np.concatenate([self.p_region, self.p_region[ap]])).cast(
                    pa.string()
                ),
                "birth_date": _dates(birth),
            }
        )
        self.write_csv("persons.csv", persons.take(self.alias_order(p, ap)))
        c = self.n_companies
        kc = len(self.alias_companies)
        ac = self.alias_companies - p
        alias_cphone = [
            self.c_phone[i] if k < 2 else None
            for i, k in zip(ac.tolist(), self.alias_phone_kind[kp:].tolist(), strict=True)
        ]
        alias_caddr = [
            _address_variant(a, int(k)) if (a := self.c_address[i]) is not None and k < 4 else None
            for i, k in zip(ac.tolist(), self.alias_address_kind[kp:].tolist(), strict=True)
        ]
        both = np.concatenate([np.arange(c), ac])
        companies = pa.table(
            {
                "company_id": pa.concat_arrays(
                    [self.cust_ids.slice(p, c), self.cust_ids.slice(self.n + kp, kc)]
                ),
                "name": pa.array([self.c_name[i] for i in both.tolist()], pa.string()),
                "uscc": self.c_uscc.take(both),
                "region_code": pa.array(self.c_region[both]).cast(pa.string()),
                "industry": pa.array(
                    [
                        _INDUSTRIES[int(x)][0] if not self.c_financial[i] else "J6637"
                        for i, x in zip(both.tolist(), self.c_industry[both].tolist(), strict=True)
                    ],
                    pa.string(),
                ),
                "registered_capital": _money(self.c_capital[both]),
                "established_date": _dates(self.c_established[both]),
                "phone": pa.array(list(self.c_phone) + alias_cphone, pa.string()),
                "address": pa.array(list(self.c_address) + alias_caddr, pa.string()),
                "is_financial": pa.array(
                    np.where(self.c_financial[both], "true", "false").astype(object), pa.string()
                ),
            }
        )
        self.write_csv("companies.csv", companies.take(self.alias_order(c, ac)))

    def alias_order(self, n: int, canonical: IntArr) -> IntArr:
        """Row order putting every alias record somewhere after its canonical record."""
        rng = self.rng["aliases"]
        key = np.concatenate(
            [
                np.arange(n, dtype=np.float64),
                canonical + 0.5 + rng.random(len(canonical)) * (n - 1 - canonical),
            ]
        )
        return np.argsort(key, kind="stable").astype(np.int64)

    def write_relationships(self) -> None:
        self.tables["kinships.csv"].add(
            person_id=self.cust_ids.take(self.kin_src),
            relative_id=self.cust_ids.take(self.kin_dst),
            relation=pa.array(self.kin_rel.astype(object), pa.string()),
        )
        for name, table in self.tables.items():
            self.write_csv(name, table.to_arrow())
            table.batches.clear()

    def ring_flows(self, rng: np.random.Generator) -> tuple[IntArr, IntArr, FloatArr, IntArr]:
        frm: list[int] = []
        to: list[int] = []
        amount: list[float] = []
        ts: list[int] = []
        for ring in self.rings:
            members = ring["members"]
            ring["flow_cycles"] = []
            for f in range(max(1, len(members) // 4)):
                size = int(rng.integers(3, min(6, len(members)) + 1))
                cyc = [int(x) for x in rng.choice(members[:-1], size - 1, replace=False)]
                if f == 0:
                    cyc.insert(int(rng.integers(0, size)), members[-1])
                else:
                    cyc.append(
                        int(rng.choice([m for m in members[:-1] if m not in cyc]))
                        if len(members) > size
                        else members[-1]
                    )
                accounts = [int(self.first_account[m]) for m in cyc]
                ring["flow_cycles"].append([f"A{a + 1:010d}" for a in accounts])
                base = float(rng.integers(50, 500)) * 1000
                t0 = (_TXN_START + int(rng.integers(0, _TXN_DAYS - 30))) * _SECONDS_PER_DAY
                for rep in range(int(rng.integers(1, 4))):
                    t = t0 + rep * 7 * _SECONDS_PER_DAY
                    for hop in range(len(accounts)):
                        frm.append(accounts[hop])
                        to.append(accounts[(hop + 1) % len(accounts)])
                        amount.append(round(base * (1 - 0.003 * hop), 2))
                        t += int(rng.integers(1800, 6 * 3600))
                        ts.append(t)
        return (
            np.array(frm, dtype=np.int64),
            np.array(to, dtype=np.int64),
            np.array(amount, dtype=np.float64),
            np.array(ts, dtype=np.int64),
        )

    def transaction_chunks(self) -> Iterator[pa.Table]:
        rng = self.rng["transactions"]
        ring = self.ring_flows(rng)
        total = 10 * self.n
        a = self.n_accounts
        seq = 0
        for start in range(0, total, _TXN_CHUNK):
            m = min(_TXN_CHUNK, total - start)
            frm = rng.integers(0, a, m)
            to = rng.integers(0, a - 1, m)
            to += to >= frm
            amount = np.round(np.exp(rng.normal(np.log(2000), 1.4, m)), 2) + 1.0
            ts = _TXN_START * _SECONDS_PER_DAY + rng.integers(0, _TXN_DAYS * _SECONDS_PER_DAY, m)
            channel = rng.choice(len(_CHANNELS), m, p=_CHANNEL_P)
            if start == 0:
                k = len(ring[0])
                frm, to = np.concatenate([frm, ring[0]]), np.concatenate([to, ring[1]])
                amount, ts = np.concatenate([amount, ring[2]]), np.concatenate([ts, ring[3]])
                channel = np.concatenate([channel, np.ones(k, dtype=np.int64)])
                perm = rng.permutation(len(frm))
                frm, to, amount, ts, channel = (
                    frm[perm],
                    to[perm],
                    amount[perm],
                    ts[perm],
                    channel[perm],
                )
            n_rows = len(frm)
            yield pa.table(
                {
                    "txn_id": _ids("T", np.arange(seq + 1, seq + n_rows + 1), 11),
                    "from_account": _ids("A", frm + 1, 10),
                    "to_account": _ids("A", to + 1, 10),
                    "amount": _money(amount),
                    "ts": _timestamps(ts),
                    "channel": pa.array(np.array(_CHANNELS)[channel].astype(object), pa.string()),
                }
            )
            seq += n_rows

    def write_transactions(self) -> None:
        self.write_csv("transactions.csv", self.transaction_chunks())

    def write_truth(self) -> None:
        tier1 = round(self.total_balance * 0.1, -6)
        (self.out / "bank.toml").write_text(
            f"tier1_capital = {tier1:.0f}\nnet_capital = {tier1 * 1.25:.0f}\n", encoding="utf-8"
        )
        kp = len(self.alias_persons)
        aliases = {
            self.id_of(self.n + j): self.id_of(int(canon))
            for j, canon in enumerate(self.alias_canonical.tolist())
        }
        county_codes = [code for code, _ in _COUNTIES]
        rings = [
            {
                "ring_id": r["ring_id"],
                "members": self.ids_of(r["members"]),
                "region_code": county_codes[r["county"]],
                "shared_phones": sorted({ph for _, ph in r["phone_users"]}),
                "shared_addresses": sorted(
                    {str(normalise_address(a)) for _, a in r["address_users"]}
                ),
                "shared_devices": sorted({d for _, d in r["device_users"]}),
                "guarantee_circle_ids": r["circle_ids"],
                "flow_cycles": r["flow_cycles"],
            }
            for r in self.rings
        ]
        relationship_files = [f for f in CSV_FILES if f not in ("persons.csv", "companies.csv")]
        counts = {
            "rows": self.rows,
            "valid_rows": self.valid_rows,
            "entities": {
                "persons": self.n_persons,
                "companies": self.n_companies,
                "accounts": self.valid_rows["accounts.csv"],
                "loans": self.valid_rows["loans.csv"],
                "devices": self.n_devices,
            },
            "relationships": {
                f.removesuffix(".csv"): self.valid_rows[f] for f in relationship_files
            },
            "aliases": {"persons": kp, "companies": len(self.alias_companies)},
        }
        cross = [
            {"company_a": self.id_of(int(a)), "company_b": self.id_of(int(b))}
            for a, b in self.cross.tolist()
        ]
        files: dict[str, Any] = {
            "counts.json": counts,
            "aliases.json": aliases,
            "rings.json": rings,
            "guarantee_circles.json": self.circles,
            "guarantee_chains.json": self.chains,
            "control.json": self.control,
            "legit_shared.json": self.legit,
            "cross_holdings.json": cross,
            "bad_rows.json": sorted(self.bad_rows_truth, key=lambda b: (b["file"], b["line"])),
        }
        for name, data in files.items():
            (self.truth / name).write_text(
                json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8"
            )


def _first_of_pairs(a: IntArr, b: IntArr) -> IntArr:
    """Indices of the first occurrence of every distinct (a, b) pair, in original order."""
    order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    return np.sort(order[new])


def _city_of(county_code: str) -> int:
    for i, city in enumerate(_CITIES):
        if city[0][:4] == county_code[:4]:
            return i
    raise ValueError(county_code)


def _residential_addresses(county: IntArr, rest: IntArr) -> list[str]:
    rest, room = np.divmod(rest, 120)
    rest, unit = np.divmod(rest, 6)
    rest, building = np.divmod(rest, 40)
    rest, estate = np.divmod(rest, len(_ESTATES))
    road, number = np.divmod(rest, 999)
    out = []
    for ct, r, nb, e, b, u, rm in zip(
        county.tolist(), road.tolist(), number.tolist(), estate.tolist(), building.tolist(),
        unit.tolist(), room.tolist(), strict=True,
    ):  # fmt: skip
        _, district = _COUNTIES[ct]
        city = _CITIES[_CITY_OF_COUNTY[ct]][1]
        out.append(
            f"浙江省{city}{district}{_ROADS[r]}{nb + 1}号{_ESTATES[e]}{b + 1}幢{u + 1}单元"
            f"{rm // 4 + 1}{rm % 4 + 1:02d}室"
        )
    return out


def _office_addresses(county: IntArr, rest: IntArr) -> list[str | None]:
    rest, room = np.divmod(rest, 20)
    rest, floor = np.divmod(rest, 30)
    rest, park = np.divmod(rest, len(_PARKS))
    road, number = np.divmod(rest, 999)
    out: list[str | None] = []
    for ct, r, nb, pk, fl, rm in zip(
        county.tolist(), road.tolist(), number.tolist(), park.tolist(), floor.tolist(),
        room.tolist(), strict=True,
    ):  # fmt: skip
        _, district = _COUNTIES[ct]
        city = _CITIES[_CITY_OF_COUNTY[ct]][1]
        out.append(
            f"浙江省{city}{district}{_ROADS[r]}{nb + 1}号{_PARKS[pk]}"
            f"{fl + 1}楼{fl + 1}{rm + 1:02d}室"
        )
    return out


_CITY_OF_COUNTY = tuple(_city_of(code) for code, _ in _COUNTIES)
