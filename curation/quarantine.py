"""The quarantine: inputs a stage could not process, each with its reason, gathered in
`<workdir>/quarantine.parquet`.

Raw text and details can hold what the pii stage removes everywhere else (a token in a
malformed JSON line, a name in an exception message), so they are written only after the
run's redactor (the pii stage's own redaction), or as `sha256:<hex> (<n> chars)` where the
run has none (no pii stage configured).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

STAGE_ERROR = "stage_error"  # the reason of a record whose processing raised inside a stage
QUARANTINE_SCHEMA = pl.Schema(
    {
        "stage": pl.String,
        "source": pl.String,
        "path": pl.String,
        "id": pl.String,
        "reason": pl.String,
        "detail": pl.String,
        "size_bytes": pl.Int64,
        # the raw input where it is text (a malformed JSON line), cut to RAW_LIMIT characters
        "raw": pl.String,
    }
)
RAW_LIMIT = 65_536
# Texts in, the same texts with PII replaced out (one call for a stage's whole quarantine).
Redactor = Callable[[list[str]], list[str]]
# Where a token ends: raw text is cut at one, never inside a secret or an address.
_TOKEN_END = re.compile(r"[\s,;\"'(){}\[\]<>][^\s,;\"'(){}\[\]<>]*\Z")


def digest(text: str) -> str:
    """What is kept of a text that cannot be redacted: its hash and length."""
    value = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{value} ({len(text):,} chars)"


def cut(text: str, limit: int = RAW_LIMIT) -> str:
    """At most `limit` characters, ending where a token ends: half an e-mail address or of
    a key is no longer recognised by the redactor, and would be kept as it is."""
    if len(text) <= limit:
        return text
    end = _TOKEN_END.search(text[:limit])
    return text[: end.start()] if end else ""


@dataclass(frozen=True)
class Entry:
    """One quarantined input as a stage reported it, before redaction."""

    stage: str
    reason: str
    source: str | None
    path: str | None
    id: str | None
    size_bytes: int | None
    detail: str | None
    raw: str | None  # cut to RAW_LIMIT
    raw_digest: str | None  # of the whole raw text, kept where it cannot be redacted
    error_type: str | None = None  # stage_error: the exception's type, which is not data

    @classmethod
    def of(
        cls, stage: str, reason: str, *, source: str | None = None, path: str | None = None,
        record_id: str | None = None, size_bytes: int | None = None, detail: str | None = None,
        raw: str | None = None, error_type: str | None = None,
    ) -> Entry:  # fmt: skip
        return cls(
            stage, reason, source, path, record_id, size_bytes, detail,
            raw=None if raw is None else cut(raw),
            raw_digest=None if raw is None else digest(raw),
            error_type=error_type,
        )  # fmt: skip

    def row(self, detail: str | None, raw: str | None) -> dict[str, object]:
        """The entry as a quarantine row, with the detail and raw text given."""
        return {
            "stage": self.stage, "source": self.source, "path": self.path, "id": self.id,
            "reason": self.reason, "detail": _with_type(self.error_type, detail),
            "size_bytes": self.size_bytes, "raw": raw,
        }  # fmt: skip


def _with_type(error_type: str | None, message: str | None) -> str | None:
    if error_type is None:
        return message
    return f"{error_type}: {message}" if message else error_type


def frame(entries: Sequence[Entry], redact: Redactor | None) -> pl.DataFrame:
    """The entries as quarantine rows, raw and detail redacted (or hashed without `redact`)."""
    texts = [e.raw for e in entries] + [e.detail for e in entries]
    fallbacks = [e.raw_digest for e in entries] + [e.detail and digest(e.detail) for e in entries]
    if redact is None:
        # Only texts that may hold data are hashed: raw input and exception messages. A
        # source's own detail names a field and a type, never a value, and stays readable
        # ("body: Input should be a valid string").
        fallbacks[len(entries) :] = [
            e.detail and (digest(e.detail) if e.error_type else e.detail) for e in entries
        ]
    cleaned = redact_texts(texts, fallbacks, redact)
    n = len(entries)
    rows = [entry.row(cleaned[n + i], cleaned[i]) for i, entry in enumerate(entries)]
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA)


def redact_texts(
    texts: list[str | None], fallbacks: list[str | None], redact: Redactor | None
) -> list[str | None]:
    """Each text through `redact`; its fallback (a digest) where there is no redactor or
    the redactor raises on that text. None and empty texts stay as they are."""
    todo = [i for i, text in enumerate(texts) if text]
    if redact is None:
        cleaned = [fallbacks[i] for i in todo]
    else:
        given: list[str] = [texts[i] for i in todo]  # type: ignore[misc]
        try:
            cleaned = redact(given) if given else []
        except Exception:  # one text the redactor cannot take must not cost the others theirs
            cleaned = [_redact_one(given[k], fallbacks[i], redact) for k, i in enumerate(todo)]
    out = list(texts)
    for i, text in zip(todo, cleaned, strict=True):
        out[i] = text
    return out


def _redact_one(text: str, fallback: str | None, redact: Redactor) -> str | None:
    try:
        return redact([text])[0]
    except Exception:  # kept as its digest: never as it is
        return fallback


def write(workdir: Path, tag: str, rows: pl.DataFrame) -> None:
    """Keep one part per stage (its rows, already through `frame`), and rebuild the single
    quarantine.parquet users read."""
    parts = workdir / "quarantine"
    parts.mkdir(exist_ok=True)
    rows.write_parquet(parts / f"{tag}.parquet")
    combined = pl.concat([pl.read_parquet(p) for p in sorted(parts.glob("*.parquet"))])
    tmp = workdir / "quarantine.parquet.tmp"
    combined.write_parquet(tmp)
    os.replace(tmp, workdir / "quarantine.parquet")
