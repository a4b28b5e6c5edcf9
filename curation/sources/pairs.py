"""Instruction/answer pair datasets (`kind = "pair"`): JSONL, CSV, Parquet, Excel or a saved
Hugging Face dataset, mapped onto the record schema by column name.

A pair record holds the answer (the code) in `content` and the given instruction in
`instruction`; an Alpaca-style `input` is appended to the instruction, as Alpaca's own
prompt does. `path` is `<file>:<row>`, the row a user finds the pair at: the line of a
JSONL file, the spreadsheet row of a CSV or Excel file (the header is row 1), the 1-based
row of a Parquet file or dataset. `meta` keeps the original columns with `file` and `row`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from curation.errors import MissingDependency, SourceError
from curation.languages import ALIASES, LANGUAGES, canonical_language
from curation.runner import StageContext
from curation.schema import record_id
from curation.sources.common import batched, fingerprint_files, finish_records

PAIR_COLUMNS: Final = ("instruction", "input", "output", "language", "id")
# Column names that well-known pair sets use (Alpaca, Glaive code Q&A, text-to-SQL/Cypher
# sheets), tried in this order where `columns` maps nothing.
DEFAULT_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "instruction": ("instruction", "question", "prompt", "query_text", "text"),
    "input": ("input", "context"),
    "output": ("output", "code", "answer", "response", "completion", "cypher", "sql", "query"),
    "language": ("language", "lang"),
    "id": ("id",),
}
FORMATS: Final[dict[str, str]] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
    ".parquet": "parquet", ".xlsx": "excel", ".xls": "excel", ".xlsm": "excel", ".ods": "excel",
}  # fmt: skip
# Signatures of a language in a short snippet, tried in order (Cypher before SQL: both
# have WHERE and ORDER BY, only Cypher has MATCH (...) patterns). A fenced block's tag wins.
SIGNATURES: Final = (
    ("cypher", re.compile(r"(?im)^\s*(OPTIONAL\s+)?MATCH\s*\(|\bMERGE\s*\(|-\[:?\w*\]->|\)<?-\[")),
    ("sql", re.compile(r"(?is)\bSELECT\b.+\bFROM\b|\bINSERT\s+INTO\b|\bCREATE\s+TABLE\b")),
    ("python", re.compile(r"(?m)^\s*(def \w+\(.*\):|import \w+|from [\w.]+ import |class \w+)")),
    ("javascript", re.compile(r"\bfunction\s+\w+\s*\(|\bconst \w+ = |=> \{|console\.log\(")),
    ("java", re.compile(r"\bpublic (static )?(class|void|int|String)\b")),
    ("go", re.compile(r"(?m)^package \w+|\bfunc \w+\(")),
    ("rust", re.compile(r"\bfn \w+\(|\blet mut\b")),
    ("cpp", re.compile(r"#include\s*<\w+>|\bstd::")),
    ("shell", re.compile(r"(?m)^#!/bin/(ba)?sh|^\s*\$ \w+")),
)
_FENCE: Final = re.compile(r"```([\w+#-]+)")


class PairSourceConfig(BaseModel):
    """A pair dataset; `columns` maps instruction/input/output/language/id to its columns."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["pair"] = "pair"
    path: Path  # a file, or a saved HF dataset folder
    format: Literal["jsonl", "csv", "parquet", "excel", "hf"] | None = None  # default: suffix
    sheet: str | None = None  # Excel: which sheet (default: the first)
    split: str | None = None  # a saved DatasetDict: which split
    name: str | None = None  # `source` of the records (default: the file or folder name)
    language: str | None = None  # the language of every pair where no column gives one
    columns: dict[Literal[*PAIR_COLUMNS], str] = Field(default_factory=dict)  # type: ignore[valid-type]

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return None if value is None else canonical_language(value)

    @property
    def source_name(self) -> str:
        return self.name or self.path.name

    def file_format(self) -> str:
        """The configured format, else the one the path's suffix or folder says."""
        if self.format is not None:
            return self.format
        if self.path.is_dir():
            return "hf"
        found = FORMATS.get(self.path.suffix.lower())
        if found is None:
            raise SourceError(
                f"{str(self.path)!r}: cannot tell the pair format from its suffix; set "
                f"format to one of jsonl, csv, parquet, excel, hf"
            )
        return found


def detect_language(code: str) -> str | None:
    """The language of a snippet: a fenced block's tag, else the first matching signature."""
    fence = _FENCE.search(code)
    if fence is not None:
        tag = fence.group(1).lower()
        tag = ALIASES.get(tag, tag)
        if tag in LANGUAGES:
            return tag
    return next((name for name, pattern in SIGNATURES if pattern.search(code)), None)


def fingerprint_pairs(config: PairSourceConfig) -> str:
    if not config.path.exists():
        raise SourceError(f"pair dataset {str(config.path)!r} does not exist")
    is_folder = config.path.is_dir()
    files = sorted(p for p in config.path.rglob("*") if p.is_file()) if is_folder else [config.path]
    return fingerprint_files(Path(), files, salt=f"{config.sheet}/{config.split}")


def _read_jsonl(path: Path, ctx: StageContext, source: str) -> tuple[list[dict], list[int]]:
    """Objects and their line numbers. Line by line rather than `pl.read_ndjson`: one bad
    line must be quarantined with its number, not fail the whole file."""
    rows, numbers = [], []
    with path.open(encoding="utf-8", errors="surrogateescape") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                ctx.quarantine(
                    "malformed_pair",
                    source=source,
                    path=f"{path.name}:{number}",
                    detail=f"not JSON: {e.msg} at column {e.colno}",
                    raw=line,
                )
                continue
            if not isinstance(row, dict):
                ctx.quarantine(
                    "malformed_pair",
                    source=source,
                    path=f"{path.name}:{number}",
                    detail=f"a JSON {type(row).__name__}, not an object",
                    raw=line,
                )
                continue
            rows.append(row)
            numbers.append(number)
    return rows, numbers


def _read_table(config: PairSourceConfig, fmt: str) -> tuple[pl.DataFrame, int]:
    """The file as a frame, and the row number of its first data row."""
    path = str(config.path)
    try:
        if fmt == "csv":
            # strings only: an id such as 007 or a query that looks numeric stays as written
            return pl.read_csv(path, infer_schema=False), 2
        if fmt == "parquet":
            return pl.read_parquet(path), 1
        if fmt == "excel":
            return _read_excel(config), 2
    except (pl.exceptions.PolarsError, OSError, ValueError) as e:
        raise SourceError(f"cannot read {path!r} as {fmt}: {e}") from e
    return _read_saved_dataset(config), 1


def _read_excel(config: PairSourceConfig) -> pl.DataFrame:
    # fastexcel (calamine) is Polars' default Excel engine: a Rust reader, no Excel needed.
    try:
        import fastexcel  # noqa: F401
    except ImportError as e:
        raise MissingDependency("fastexcel", "pairs", "Reading Excel pair sets") from e
    sheet = {"sheet_name": config.sheet} if config.sheet else {"sheet_id": 1}
    return pl.read_excel(config.path, **sheet, infer_schema_length=0)  # type: ignore[call-overload]


def _read_saved_dataset(config: PairSourceConfig) -> pl.DataFrame:
    try:
        import datasets
    except ImportError as e:
        raise MissingDependency("datasets", "hf", "Reading a saved HF pair dataset") from e
    try:
        loaded = datasets.load_from_disk(str(config.path))
    except (FileNotFoundError, ValueError) as e:
        raise SourceError(f"{str(config.path)!r} is not a saved HF dataset: {e}") from e
    if isinstance(loaded, datasets.DatasetDict):
        if config.split not in loaded:
            raise SourceError(
                f"{str(config.path)!r} holds splits {sorted(loaded)}; set 'split' to one"
            )
        loaded = loaded[config.split]
    frame = pl.from_arrow(loaded.data.table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def mapped_columns(config: PairSourceConfig, available: list[str]) -> dict[str, str]:
    """pair column -> dataset column: `columns` first, then the well-known names."""
    mapping = dict(config.columns)
    for name, candidates in DEFAULT_NAMES.items():
        if name not in mapping:
            found = next((c for c in candidates if c in available), None)
            if found is not None and found not in mapping.values():
                mapping[name] = found
    for name, column in config.columns.items():
        if column not in available:
            raise SourceError(
                f"{str(config.path)!r} has no column {column!r} (mapped to "
                f"'{name}'); its columns: {', '.join(available)}"
            )
    if "output" not in mapping:
        raise SourceError(
            f"{str(config.path)!r} has no answer column; map one with "
            f'columns = {{output = "..."}} (its columns: {", ".join(available)})'
        )
    return mapping


def _text(value: Any) -> str | None:
    """A cell as text; empty cells are None. Lists and objects are malformed, not text."""
    if value is None:
        return None
    if isinstance(value, list | dict):
        raise ValueError(f"a {type(value).__name__}, not text")
    text = str(value)
    return text if text.strip() else None


def pair_record(
    row: dict[str, Any], mapping: dict[str, str], config: PairSourceConfig, file: str, number: int
) -> dict[str, Any]:
    """One raw row as a record; raises ValueError saying what is wrong with it."""
    values = {name: _text(row.get(column)) for name, column in mapping.items()}
    output = values.get("output")
    if output is None:
        raise ValueError(f"no answer in column {mapping['output']!r}")
    instruction = values.get("instruction")
    if values.get("input"):
        instruction = f"{instruction or ''}\n\n{values['input']}".strip()
    given = values.get("language")
    language = (
        ALIASES.get(given.strip().lower(), given.strip().lower()) if given else config.language
    ) or detect_language(output)
    path = f"{file}:{number}"
    source = config.source_name
    original_id = values.get("id")
    # the columns that did not become record fields, and where the others came from: the
    # mapped text lives once, in the record, where the pii stage redacts it
    extra = {k: v for k, v in row.items() if k not in mapping.values()}
    meta = {"file": file, "row": number, "mapped": mapping, "columns": extra}
    record = {
        "kind": "pair",
        "source": source,
        "path": path,
        "language": language,
        "content": output,
        "instruction": instruction,
        "meta": json.dumps(meta, default=str, ensure_ascii=False, sort_keys=True),
    }
    if original_id is not None:
        # the set's own id, hashed with the source: two sets that both number from 1 never clash
        record["id"] = record_id(source, f"id:{original_id}", "")
    return record


def read_pairs(
    config: PairSourceConfig, ctx: StageContext, batch_size: int
) -> Iterator[pl.DataFrame]:
    """Records of a pair dataset; a malformed row is quarantined with its file and row."""
    if not config.path.exists():
        raise SourceError(f"pair dataset {str(config.path)!r} does not exist")
    fmt = config.file_format()
    source, file = config.source_name, config.path.name
    if fmt == "jsonl":
        rows, numbers = _read_jsonl(config.path, ctx, source)
        available = sorted({key for row in rows for key in row})
    else:
        frame, first = _read_table(config, fmt)
        rows, numbers = frame.to_dicts(), list(range(first, first + frame.height))
        available = frame.columns
    mapping = mapped_columns(config, available)
    seen: set[str] = set()
    for batch in batched(zip(rows, numbers, strict=True), batch_size):
        records = []
        for row, number in batch:
            try:
                record = pair_record(row, mapping, config, file, number)
            except ValueError as e:
                ctx.quarantine(
                    "malformed_pair",
                    source=source,
                    path=f"{file}:{number}",
                    detail=str(e),
                    raw=json.dumps(row, default=str),
                )
                continue
            if "id" in record:
                if record["id"] in seen:
                    ctx.quarantine(
                        "duplicate_pair_id",
                        source=source,
                        path=record["path"],
                        detail=f"id {row.get(mapping['id'])!r} is used by an earlier row",
                    )
                    continue
                seen.add(record["id"])
            records.append(record)
        if records:
            yield finish_records(records)
