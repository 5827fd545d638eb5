"""Declarative source mappings: any layout onto the canonical contract, without code.

A mapping file (YAML) lists source files, the contract file each feeds, and for every
contract column the source column it comes from with optional transforms:

```yaml
name: cn-enterprise-registry
files:
  - source: 企业基本信息.csv
    target: companies
    columns:
      company_id: 统一社会信用代码
      registered_capital: {from: 注册资本（万元）, scale: 10000}
      established_date: {from: 成立日期, date_format: "%Y年%m月%d日"}
  - source: 主要人员.csv
    target: positions
    where: {人员类型: 自然人}
    columns:
      role: {from: 职务, values: {法定代表人: legal_representative, 董事: director}}
```

Transforms run in this order: `strip` (characters removed), `values` (code-list
translation; an unlisted code passes through so validation rejects it with a reason),
`scale` (unit conversion of a number), `date_format` (strptime format to ISO date),
`default` (for empty values). `constant` sets a column without a source. Line numbers in
reject reports are the source file's, and columns are named as the source names them.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.contract import CONTRACT_BY_NAME, LOAD_ORDER
from ingest.readers import (
    Batch,
    InputFormatError,
    SourceFile,
    count_rows,
    iter_batches,
    read_header,
)

MAPPINGS_DIR = Path(__file__).parent / "mappings"


class MappingError(ValueError):
    """A mapping file is malformed or does not fit the sources."""


class ColumnRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str | None = Field(default=None, alias="from")
    strip: str | None = None
    values: dict[str, str] | None = None
    scale: float | None = None
    date_format: str | None = None
    default: str | None = None
    constant: str | None = None

    @field_validator("values", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value


class FileMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    where: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, str | ColumnRule]

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in CONTRACT_BY_NAME:
            raise ValueError(f"unknown contract file {value!r}; one of {', '.join(LOAD_ORDER)}")
        return value

    def rules(self) -> dict[str, ColumnRule]:
        return {
            name: ColumnRule.model_validate({"from": rule}) if isinstance(rule, str) else rule
            for name, rule in self.columns.items()
        }


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    files: list[FileMapping]


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; a bundled mapping can be named without its path."""
    if not path.exists() and (MAPPINGS_DIR / f"{path}.yaml").exists():
        path = MAPPINGS_DIR / f"{path}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        mapping = Mapping.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read mapping ({exc})") from exc
    except ValidationError as exc:
        raise MappingError(f"{path}: invalid mapping: {exc}") from exc
    for file in mapping.files:
        contract = CONTRACT_BY_NAME[file.target]
        known = {c.name for c in contract.columns}
        unknown = [c for c in file.columns if c not in known]
        if unknown:
            raise MappingError(
                f"{path}: {file.source} -> {file.target}: unknown contract column(s) "
                + ", ".join(unknown)
            )
    return mapping


def _transform(values: pa.ChunkedArray, rule: ColumnRule, name: str) -> pa.ChunkedArray:
    if rule.strip:
        for char in rule.strip:
            values = pc.replace_substring(values, char, "")
    if rule.values:
        codes = rule.values
        distinct = pc.unique(values.drop_null())
        translated = pa.array([codes.get(v, v) for v in distinct.to_pylist()], pa.string())
        values = pa.chunked_array([pc.take(translated, pc.index_in(values, value_set=distinct))])
    if rule.scale is not None:
        trimmed = pc.utf8_trim_whitespace(values)
        numeric = pc.match_substring_regex(trimmed, r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
        numbers = pc.cast(pc.if_else(numeric, trimmed, pa.scalar(None, pa.string())), pa.float64())
        scaled = pc.cast(pc.multiply(numbers, rule.scale), pa.string())
        # Values that are not numbers pass through untouched, for validation to reject.
        values = pc.if_else(pc.fill_null(numeric, False), scaled, values)
    if rule.date_format:
        parsed = pc.strptime(values, format=rule.date_format, unit="s", error_is_null=True)
        iso = pc.strftime(parsed, format="%Y-%m-%d")
        values = pc.if_else(pc.is_valid(parsed), iso, values)
    if rule.default is not None:
        values = pc.fill_null(values, rule.default)
    if not isinstance(values, pa.ChunkedArray):
        values = pa.chunked_array([values])
    return values


def _mapped_batches(path: Path, file: FileMapping) -> Iterator[Batch]:
    rules = file.rules()
    for batch in iter_batches(path):
        table = batch.table
        lines = np.arange(batch.first_line, batch.first_line + table.num_rows, dtype=np.int64)
        keep = np.ones(table.num_rows, dtype=bool)
        for column, wanted in file.where.items():
            keep &= np.asarray(
                pc.fill_null(pc.equal(table.column(column), wanted), False), dtype=bool
            )
        columns: dict[str, pa.ChunkedArray | pa.Array] = {}
        for name, rule in rules.items():
            if rule.constant is not None:
                columns[name] = pa.array([rule.constant] * table.num_rows, pa.string())
            else:
                assert rule.source is not None
                columns[name] = _transform(table.column(rule.source), rule, name)
        columns["_line"] = pa.array(lines)
        mapped = pa.table(columns).filter(pa.array(keep))
        yield Batch(mapped, batch.first_line)


def mapped_sources(mapping: Mapping, directory: Path) -> list[SourceFile]:
    """The contract files a mapping produces from the source files in `directory`."""
    sources = []
    for file in mapping.files:
        path = directory / file.source
        if not path.exists():
            continue
        header = read_header(path)
        rules = file.rules()
        needed = {r.source for r in rules.values() if r.source} | set(file.where)
        missing = sorted(c for c in needed if c not in header)
        if missing:
            raise InputFormatError(
                f"{file.source}: missing column(s) {', '.join(missing)} named by mapping "
                f"{mapping.name}"
            )
        sources.append(
            SourceFile(
                contract=CONTRACT_BY_NAME[file.target],
                display_name=file.source,
                batches=partial(_mapped_batches, path, file),
                header=list(rules),
                rows=count_rows(path),
                column_names={
                    name: rule.source for name, rule in rules.items() if rule.source is not None
                },
            )
        )
    if not sources:
        raise MappingError(f"mapping {mapping.name}: none of its source files is in {directory}")
    sources.sort(key=lambda s: LOAD_ORDER.index(s.contract.name))
    return sources
