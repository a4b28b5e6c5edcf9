"""The verify stage: each code and pair record's code, checked by running it."""

from __future__ import annotations

import importlib.util
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import polars as pl

from curation.errors import MissingDependency
from curation.parts import record_batches
from curation.runner import Stage, StageContext, package_version
from curation.verify.checks import code_to_verify, read_fixtures, verify_code
from curation.verify.config import VerifyConfig
from curation.verify.sandbox import Outcome, Sandbox

VERDICT_SCHEMA = {"id": pl.String, "_verified": pl.Boolean, "_verify_reason": pl.String}
NOT_VERIFIED = "not_verified"
ROW_COLUMNS = ("id", "kind", "language", "content", "content_clean", "response", "source",
               "path", "size_bytes")  # fmt: skip


class _Tally:
    """Reasons (their first word) for failed and for unchecked records, and records and
    seconds per language, for the manifest: counts and sums, which add up across parts."""

    def __init__(self) -> None:
        self.failed: Counter[str] = Counter()
        self.unchecked: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.counts: Counter[str] = Counter()

    def add(self, language: str | None, outcome: Outcome | None, seconds: float) -> None:
        self.seconds[language or "none"] += seconds
        self.counts[language or "none"] += 1
        if outcome is not None and outcome.ok is not True:
            counter = self.failed if outcome.ok is False else self.unchecked
            counter[(outcome.reason or "unknown").split(":")[0]] += 1

    def summary(self) -> dict[str, Any]:
        seconds = {name: round(spent, 3) for name, spent in sorted(self.seconds.items())}
        return {"failure_reasons": dict(sorted(self.failed.items())),
                "unchecked_reasons": dict(sorted(self.unchecked.items())),
                "records_by_language": dict(sorted(self.counts.items())),
                "seconds_by_language": seconds}  # fmt: skip


def check_dependencies(config: VerifyConfig) -> None:
    """Fail early, with the install command, when the `[verify]` extra is missing."""
    needed = ["tree_sitter_language_pack"]
    if config.sql_fixture is not None and config.sql_engine == "duckdb":
        needed.append("duckdb")
    if config.cypher_fixture is not None:
        needed.append("ladybug")
    for module in needed:
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(module.replace("_", "-"), "verify", "The verify stage")


class VerifyStage(Stage):
    """Marks `verified` (null when no check applies) and `verify_reason` on every kept code
    and pair record; each record runs in its own sandbox (`curation.verify.sandbox`)."""

    name: ClassVar[str] = "verify"
    per_part: ClassVar[bool] = True  # each record runs alone, in its own sandbox
    code: ClassVar[tuple[str, ...]] = ("curation.verify",)

    def __init__(self, config: VerifyConfig) -> None:
        check_dependencies(config)
        self.config = config
        self.fixtures = read_fixtures(config)

    def versions(self) -> dict[str, str]:
        names = ("tree-sitter", "tree-sitter-language-pack", "duckdb", "ladybug")
        return {name: package_version(name) for name in names}

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> Iterator[pl.DataFrame]:
        assert records is not None, "verify reads the records of the stage before"
        sandbox = Sandbox(self.config)
        tally = _Tally()
        ctx.extra.update(network_isolation=sandbox.network, limits=sandbox.limits,
                         fixtures=sorted(self.fixtures))  # fmt: skip
        with ThreadPoolExecutor(self.config.workers) as pool:
            for batch in record_batches(records, self.config.batch_size, ctx.input_path):
                rows = batch.select(*ROW_COLUMNS).to_dicts()
                results = pool.map(lambda row: self._verify(row, sandbox), rows)
                verdicts = []
                for row, result in zip(rows, results, strict=True):
                    if isinstance(result, Exception):
                        ctx.quarantine_error(result, source=row["source"], path=row["path"],
                                             record_id=row["id"],
                                             size_bytes=row["size_bytes"])  # fmt: skip
                        continue
                    tally.add(row["language"], *result)
                    verdicts.append(self._verdict(row["id"], result[0]))
                yield self._with_verdicts(batch, verdicts)
        ctx.extra.update(tally.summary())

    def _verify(
        self, row: dict[str, Any], sandbox: Sandbox
    ) -> tuple[Outcome | None, float] | Exception:
        """One record's outcome and the seconds it took; the error it raised instead."""
        start = time.perf_counter()
        try:
            code = code_to_verify(row)
            outcome = None
            if code is not None:
                standalone = row["kind"] != "code"  # a pair's answer must run by itself
                outcome = verify_code(code, row["language"], sandbox, self.fixtures,
                                      self.config.sql_engine, standalone)  # fmt: skip
        except Exception as e:  # quarantined by the caller as stage_error
            return e
        return outcome, time.perf_counter() - start

    def _verdict(self, record_id: str, outcome: Outcome | None) -> dict[str, Any]:
        if outcome is None:
            return {"id": record_id, "_verified": None, "_verify_reason": None}
        return {"id": record_id, "_verified": outcome.ok, "_verify_reason": outcome.reason}

    def _with_verdicts(self, batch: pl.DataFrame, verdicts: list[dict[str, Any]]) -> pl.DataFrame:
        frame = pl.DataFrame(verdicts, schema=VERDICT_SCHEMA)
        failed = pl.col("_verified").not_() & pl.lit(self.config.drop_failed)
        return (
            batch.join(frame, on="id", how="left", maintain_order="left")
            .with_columns(
                verified=pl.col("_verified"),
                verify_reason=pl.col("_verify_reason"),
                filter_reason=pl.when(failed)
                .then(pl.lit(NOT_VERIFIED))
                .otherwise(pl.col("filter_reason")),
            )
            .drop("_verified", "_verify_reason")
        )
