"""The PII stage: `content` -> `content_clean`, with every span recorded in `pii_entities`."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, ClassVar

import polars as pl

from curation.errors import MissingDependency
from curation.pii.config import PIIConfig
from curation.runner import Stage, StageContext, package_version
from curation.schema import PII_ENTITY

if TYPE_CHECKING:
    from curation.pii.engine import PIIEngine

_WORKER_ENGINE: PIIEngine | None = None


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


def _start_worker(config: dict) -> None:
    global _WORKER_ENGINE
    _WORKER_ENGINE = load_engine(PIIConfig.model_validate(config))


def _redact_in_worker(texts: list[str], languages: list[str | None]) -> list[tuple[str, list]]:
    assert _WORKER_ENGINE is not None, "worker started without an engine"
    return redact_many(_WORKER_ENGINE, texts, languages)


def redact_many(
    engine: PIIEngine, texts: list[str], languages: list[str | None]
) -> list[tuple[str, list[dict]]]:
    """(clean text, pii_entities) for each text."""
    findings = engine.analyze(texts, languages)
    return [engine.redact(text, found) for text, found in zip(texts, findings, strict=True)]


def prose_language(kind: pl.Expr, language: pl.Expr) -> pl.Expr:
    """The language the engine should assume: None (all prose) for issues and commits."""
    return pl.when(kind == "code").then(language)


class PIIStage(Stage):
    """Strips PII from every kept record; only `content_clean` leaves this stage unless
    `keep_original` is set, so nothing later can send the original to a provider."""

    name: ClassVar[str] = "pii"
    code: ClassVar[tuple[str, ...]] = ("curation.pii", "curation.code_regions")

    def __init__(self, config: PIIConfig) -> None:
        check_dependencies(config)
        self.config = config

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

    def workers(self) -> int:
        return self.config.workers or os.cpu_count() or 1

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> Iterator[pl.DataFrame]:
        assert records is not None, "the PII stage reads the records of the stage before"
        total = records.select(pl.len()).collect().item()
        if total == 0:
            return  # nothing to read: skip loading spaCy
        batches = records.with_columns(
            _language=prose_language(pl.col("kind"), pl.col("language"))
        ).collect_batches(chunk_size=self.config.batch_size)
        # Each worker loads spaCy (a second or two): not worth it for a batch or less.
        if self.workers() == 1 or total <= self.config.batch_size:
            engine = load_engine(self.config)
            pairs = ((b, redact_many(engine, *self._inputs(b))) for b in batches)
            yield from self._with_results(pairs, ctx, total)
            return
        # spawn, not fork: forking a process that runs Polars' thread pool can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            self.workers(), mp_context=context, initializer=_start_worker,
            initargs=(self.config.model_dump(),),
        ) as pool:  # fmt: skip
            yield from self._with_results(self._in_order(pool, batches), ctx, total)

    def _in_order(
        self, pool: ProcessPoolExecutor, batches: Iterable[pl.DataFrame]
    ) -> Iterator[tuple[pl.DataFrame, list]]:
        """(batch, result) in input order, with two batches per worker in flight at most,
        so memory holds a few batches, not the whole input."""
        pending: deque[tuple[pl.DataFrame, Future]] = deque()
        for batch in batches:
            pending.append((batch, pool.submit(_redact_in_worker, *self._inputs(batch))))
            if len(pending) >= 2 * self.workers():
                batch, future = pending.popleft()
                yield batch, future.result()
        while pending:
            batch, future = pending.popleft()
            yield batch, future.result()

    @staticmethod
    def _inputs(batch: pl.DataFrame) -> tuple[list[str], list[str | None]]:
        return batch["content"].to_list(), batch["_language"].to_list()

    def _with_results(self, pairs: Iterator[tuple[pl.DataFrame, list]], ctx: StageContext,
                      total: int) -> Iterator[pl.DataFrame]:  # fmt: skip
        found: Counter[str] = Counter()
        for batch, redacted in ctx.track(pairs, "pii", total=-(-total // self.config.batch_size)):
            clean = pl.Series("content_clean", [text for text, _ in redacted], dtype=pl.String)
            entities = pl.Series(
                "pii_entities", [spans for _, spans in redacted], dtype=pl.List(PII_ENTITY)
            )
            batch = batch.drop("_language").with_columns(
                content_clean=clean,
                pii_entities=entities,
                pii_count=entities.list.len().cast(pl.Int64),
            )
            found.update(span["type"] for _, spans in redacted for span in spans)
            if not self.config.keep_original:
                batch = batch.with_columns(content=pl.col("content_clean"))
            yield batch
        ctx.extra["found"] = dict(found.most_common())  # entity type -> spans, for the summary
