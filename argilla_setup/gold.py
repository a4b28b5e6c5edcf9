"""Gold records: pairs whose right answer the annotation lead knows, hidden among the
others in the review dataset to score each annotator (`[review].gold`, JSON Lines):

    {"code": "def add(a, b):\\n    return a + b\\n", "instruction": "Write add.",
     "expected": "good", "language": "python", "source": "gold", "path": "add.py"}

They look like any other record to reviewers: an id of the same form, metadata copied from
a real record (annotator, task, cost), pushed in id order among the others. They never
enter the pipeline's records, so they are never exported. Like every record, each is seen
by `min_submitted` reviewers (Argilla 2.8 distributes per dataset, not per record).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from curation.errors import ConfigError
from curation.schema import record_id, to_records

COPIED: tuple[str, ...] = ("annotator", "task", "cost_usd", "prompt_tokens", "completion_tokens")


class GoldRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    instruction: str
    expected: Literal["good", "needs_fix", "reject"]
    language: str = "python"
    source: str = "gold"
    path: str = "gold.py"

    @property
    def id(self) -> str:
        return record_id(f"gold:{self.source}", self.path, f"{self.instruction}\n{self.code}")


def load_gold(path: Path) -> list[GoldRecord]:
    """The gold records of a JSON Lines file; a bad line is an error naming it."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"[review].gold {path}: {e.strerror}") from None
    gold = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            gold.append(GoldRecord.model_validate(json.loads(line)))
        except ValidationError as e:
            error = e.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ConfigError(f"[review].gold {path}:{number}: {where}: {error['msg']}") from None
        except ValueError as e:  # not JSON
            raise ConfigError(f"[review].gold {path}:{number}: {e}") from None
    return gold


def expected(gold: list[GoldRecord]) -> dict[str, str]:
    """Each gold record's id and expected quality."""
    return {g.id: g.expected for g in gold}


def gold_records(gold: list[GoldRecord], like: pl.DataFrame) -> pl.DataFrame:
    """The gold records as pipeline records to push, with the metadata of the first record
    of `like` (by id) so that nothing but their content sets them apart."""
    template = like.sort("id").head(1).select(c for c in COPIED if c in like.columns).to_dicts()
    copied = template[0] if template else {}
    return to_records(
        {"id": g.id, "kind": "code", "source": g.source, "path": g.path, "language": g.language,
         "content": g.code, "content_clean": g.code, "size_bytes": len(g.code.encode()),
         "num_lines": g.code.count("\n") + 1, "instruction": g.instruction,
         "quality_flags": [], **copied}
        for g in gold
    )  # fmt: skip
