"""Annotation speed: the runner's throughput at concurrency 1 vs N, and the dry-run cost
estimate on 100k records against a per-record tiktoken loop.

Throughput: the annotate stage through the real `openai` client against the local
protocol-faithful server answering after `--latency` seconds (a model's time to answer);
concurrency 1 is the baseline. With latency 0 the numbers are the runner's own overhead
(budget, rate limiter, SQLite ledger commit per request, client).

Dry run: records are ~2 KB chunks of this interpreter's stdlib and installed packages.
Baseline, in the same run: each record's chat messages encoded one by one with
`Encoding.encode_ordinary` in a Python loop; ours is `annotators.estimate.estimate`
(repeated messages encoded once, the rest batched on a thread per core). Both must give the
same prompt-token total.

    .venv/bin/python benchmarks/annotate.py [--records 100000] [--requests 200]
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import polars as pl

from annotators.config import AnnotateConfig
from annotators.estimate import estimate
from annotators.stage import AnnotateStage
from annotators.tasks import load_task
from annotators.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, encoding_for_model
from curation.runner import StageContext
from curation.sources.common import finish_records

# the protocol-faithful test server lives with the tests, out of the wheel
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.llm_server import LocalLLMServer


def build(count: int) -> pl.DataFrame:
    texts = []
    roots = [Path(sysconfig.get_paths()[key]) for key in ("stdlib", "purelib")]
    for path in sorted(p for root in roots for p in root.rglob("*.py")):
        text = path.read_text(errors="replace")
        texts.extend(text[i : i + 2000] for i in range(0, len(text), 2000))
        if len(texts) >= count:
            break
    rows = [
        {"kind": "code", "source": "stdlib", "path": f"{i}.py", "content": t, "language": "python"}
        for i, t in enumerate(texts[:count])
    ]
    return finish_records(rows).with_columns(content_clean=pl.col("content"))


def baseline(frame: pl.DataFrame, model: str) -> int:
    encoding, _ = encoding_for_model(model)
    task = load_task("instruction_for_code")
    total = 0
    for record in frame.iter_rows(named=True):
        messages = task.messages(record, "json_schema")
        total += sum(
            len(encoding.encode_ordinary(m["role"])) + len(encoding.encode_ordinary(m["content"]))
            + TOKENS_PER_MESSAGE
            for m in messages
        )  # fmt: skip
        total += TOKENS_PER_REPLY
    return total


def annotate_seconds(frame: pl.DataFrame, server: LocalLLMServer, concurrency: int) -> float:
    config = AnnotateConfig(
        provider="openai", model="gpt-4o-mini", base_url=server.openai_url,
        tasks=["instruction_for_code"], concurrency=concurrency, rpm=1_000_000,
        tpm=1_000_000_000, budget_usd=100.0,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as workdir:
        ctx = StageContext(Path(workdir), "05_annotate")
        start = time.perf_counter()
        AnnotateStage(config, Path(workdir)).run(frame.lazy(), ctx)
        seconds = time.perf_counter() - start
    assert ctx.extra["statuses"] == {"ok": frame.height}, ctx.extra["statuses"]
    return seconds


def throughput(frame: pl.DataFrame, latencies: list[float], levels: list[int]) -> None:
    print(f"annotate stage, {frame.height} records, openai client -> local server")
    for latency in latencies:
        with LocalLLMServer(latency_s=latency) as server:
            annotate_seconds(frame.head(8), server, 8)  # warm: encoding, client, server threads
            base = annotate_seconds(frame, server, levels[0])
            print(f"  answer latency {latency * 1000:4.0f} ms")
            print(
                f"    concurrency {levels[0]:3d}: {frame.height / base:8.1f} records/s  (baseline)"
            )
            for level in levels[1:]:
                seconds = annotate_seconds(frame, server, level)
                print(f"    concurrency {level:3d}: {frame.height / seconds:8.1f} records/s"
                      f"  {base / seconds:5.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    frame = build(args.records)
    throughput(frame.head(args.requests), args.latency, args.concurrency)
    mb = frame["content"].str.len_bytes().sum() / 1e6
    config = AnnotateConfig(model="gpt-4o-mini", tasks=["instruction_for_code"])
    estimate(frame.head(100).lazy(), config)  # warm: installs and loads the encoding
    start = time.perf_counter()
    result = estimate(frame.lazy(), config)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    expected = baseline(frame, config.model)
    base = time.perf_counter() - start
    assert int(result["prompt_tokens"][0]) == expected, "the two counts disagree"
    print(f"{frame.height:,} records, {mb:.0f} MB, {expected:,} prompt tokens (identical in both)")
    print(f"   per-record encode loop: {base:6.1f} s  {frame.height / base:9,.0f} records/s")
    print(f"   estimate (batched):     {ours:6.1f} s  {frame.height / ours:9,.0f} records/s"
          f"   {base / ours:.1f}x the loop")  # fmt: skip


if __name__ == "__main__":
    main()
