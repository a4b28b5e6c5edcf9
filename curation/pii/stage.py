"""The PII stage: `content` -> `content_clean`, with every span recorded in `pii_entities`."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import polars as pl

from curation.engines import BatchFunction
from curation.errors import MissingDependency
from curation.pii.config import PIIConfig
from curation.runner import Stage, StageContext, package_version
from curation.schema import PII_ENTITY

if TYPE_CHECKING:
    from curation.pii.engine import PIIEngine


def check_dependencies(config: PIIConfig) -> None:
    """Fail early, with the install command, when the `[pii]` extra is missing."""
    for module, package in (("presidio_analyzer", "presidio-analyzer"),
                            ("presidio_anonymizer", "presidio-anonymizer"),
                            ("regex", "regex")):  # fmt: skip
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(package, "pii", "The PII stage")
    if config.ner and importlib.util.find_spec(config.spacy_model) is None:
        raise MissingDependency(config.spacy_model, "pii", "PERSON detection (pii.ner = true)")


def load_engine(config: PIIConfig) -> PIIEngine:
    """A ready engine: recognizers built and, with `ner`, the spaCy model loaded."""
    check_dependencies(config)
    from curation.pii.engine import PIIEngine

    return PIIEngine(config)


def redact_many(
    engine: PIIEngine, texts: list[str], languages: list[str | None]
) -> list[tuple[str, list[dict]]]:
    """(clean text, pii_entities) for each text."""
    findings = engine.analyze(texts, languages)
    return [engine.redact(text, found) for text, found in zip(texts, findings, strict=True)]


def prose_language(kind: pl.Expr, language: pl.Expr) -> pl.Expr:
    """The language the engine should assume: None (all prose) for issues and commits."""
    return pl.when(kind.is_in(["code", "pair"])).then(language)


class RedactBatch(BatchFunction):
    """Records with `content_clean`, `pii_entities` and `pii_count`; the Presidio/spaCy
    engine is built once per worker."""

    def __init__(self, config: PIIConfig) -> None:
        self.config = config
        self.engine: PIIEngine | None = None

    def setup(self) -> None:
        if self.engine is None:  # a stage run part by part sets up once, not per part
            self.engine = load_engine(self.config)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "engine": None}  # workers build their own

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        assert self.engine is not None, "RedactBatch used before setup()"
        languages = batch.select(prose_language(pl.col("kind"), pl.col("language")))
        redacted = redact_many(
            self.engine, batch["content"].to_list(), languages.to_series().to_list()
        )
        clean = pl.Series("content_clean", [text for text, _ in redacted], dtype=pl.String)
        entities = pl.Series(
            "pii_entities", [spans for _, spans in redacted], dtype=pl.List(PII_ENTITY)
        )
        paths = pl.Series("path", [self.engine.redact_path(p) for p in batch["path"]])
        batch = batch.with_columns(
            instruction=self._redact_instructions(batch["instruction"]),
            content_clean=clean,
            pii_entities=entities,
            pii_count=entities.list.len().cast(pl.Int64),
            # always: later stages put the path in prompts; 01_ingest keeps the original
            path=paths,
        )
        if not self.config.keep_original:
            batch = batch.with_columns(content=pl.col("content_clean"))
        return batch

    def _redact_instructions(self, instructions: pl.Series) -> pl.Series:
        """Given instructions (pair datasets) as prose; annotations come after this stage."""
        assert self.engine is not None
        given = instructions.drop_nulls().to_list()
        if not given:
            return instructions
        clean = iter(text for text, _ in redact_many(self.engine, given, [None] * len(given)))
        return pl.Series(
            "instruction", [None if t is None else next(clean) for t in instructions], pl.String
        )


class PIIStage(Stage):
    """Strips PII from every kept record and its path; only `content_clean` leaves this
    stage unless `keep_original` is set, so nothing later can send the original to a
    provider."""

    name: ClassVar[str] = "pii"
    per_part: ClassVar[bool] = True

    def __init__(self, config: PIIConfig) -> None:
        check_dependencies(config)
        self.config = config
        self.redact_batch = RedactBatch(config)

    def versions(self) -> dict[str, str]:
        return {
            name: package_version(name)
            for name in (
                "presidio-analyzer",
                "presidio-anonymizer",
                "spacy",
                self.config.spacy_model,
            )
        }

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> Iterator[pl.DataFrame]:
        assert records is not None, "the PII stage reads the records of the stage before"
        total = records.select(pl.len()).collect().item()
        batches = ctx.engine.map_batches(
            records, self.redact_batch, batch_size=self.config.batch_size,
            workers=self.config.workers or None, kept_from=ctx.input_path,
        )  # fmt: skip
        found: Counter[str] = Counter()
        for batch in ctx.track(batches, "pii", total=-(-total // self.config.batch_size)):
            found.update(batch["pii_entities"].explode().struct.field("type").drop_nulls())
            yield batch
        ctx.extra["found"] = dict(found.most_common())  # entity type -> spans, for the summary


class QuarantineRedactor:
    """The pii stage's redaction for the runner's quarantine and failure messages. Its engine
    loads on first use: most runs quarantine no text, and spaCy takes seconds to load."""

    def __init__(self, config: PIIConfig) -> None:
        self.config = config
        self.engine: PIIEngine | None = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "engine": None}  # a worker (a part on Ray) loads its own

    def __call__(self, texts: list[str]) -> list[str]:
        if self.engine is None:
            self.engine = load_engine(self.config)
        # as prose (no language): a quarantined line or message is not a source file
        return [clean for clean, _ in redact_many(self.engine, texts, [None] * len(texts))]
