"""Push speed to the local Argilla: records/s for 10k annotated records.

Starts the real argilla-server (its own virtualenv, SQLite, Redis, codecurate's search
engine) in a temporary home. Baseline, in the same run: the SDK's own
`dataset.records.log` of the same records in one call (its default batches of 256) into a
second dataset; ours is `argilla_setup.push_pull.push`, which also saves what it pushed after
every batch so that a killed push resumes. Then a re-push of the unchanged records (which
sends nothing) and of 1% changed ones.

    .venv/bin/python benchmarks/argilla_push.py [--records 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import argilla as rg
import polars as pl

from argilla_setup.push_pull import push, to_argilla
from argilla_setup.server import LocalArgilla
from argilla_setup.settings import ensure_dataset
from curation.sources.common import finish_records


def records(count: int) -> pl.DataFrame:
    rows = [{"kind": "code", "source": "bench", "path": f"pkg/m{i}.py", "language": "python",
             "content": f'"""Module {i}."""\n\ndef f{i}(x):\n    return x * {i} + {i % 7}\n'}
            for i in range(count)]  # fmt: skip
    return finish_records(rows).with_columns(
        content_clean=pl.col("content"),
        instruction=pl.format("Write a function f{} that scales its input.", pl.int_range(count)),
        task=pl.lit("instruction_for_code"),
        annotator=pl.lit("openai:gpt-4o-mini"),
        quality_flags=pl.lit([], dtype=pl.List(pl.String)),
        cost_usd=pl.lit(0.0002),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    frame = records(args.records)
    with tempfile.TemporaryDirectory() as home:
        server = LocalArgilla(Path(home))  # on 6900, or a free port when that is taken
        state = server.up()
        try:
            client = rg.Argilla(api_url=state.url, api_key=server.owner_credentials()["api_key"])
            baseline_ds = ensure_dataset(client, "baseline", "bench", 1)
            ours_ds = ensure_dataset(client, "ours", "bench", 1)
            start = time.perf_counter()
            baseline_ds.records.log([to_argilla(r) for r in frame.iter_rows(named=True)])
            base = time.perf_counter() - start
            pushed = Path(home) / "pushed.json"
            start = time.perf_counter()
            result = push(ours_ds, frame, pushed)
            ours = time.perf_counter() - start
            start = time.perf_counter()
            again = push(ours_ds, frame, pushed)
            repush = time.perf_counter() - start
            changed = frame.with_columns(
                instruction=pl.when(pl.int_range(pl.len()) % 100 == 0)
                .then(pl.col("instruction") + " Keep it pure.")
                .otherwise("instruction")
            )
            start = time.perf_counter()
            delta = push(ours_ds, changed, pushed)
            partial = time.perf_counter() - start
        finally:
            server.down()
    n = frame.height
    assert result.sent == n and again.sent == 0 and delta.sent == n // 100
    print(f"{n:,} records to the local argilla-server (SQLite, codecurate-sql engine)")
    print(f"  SDK records.log, one call:   {base:6.1f} s  {n / base:7.0f} records/s  (baseline)")
    print(f"  push (resumable, batches):   {ours:6.1f} s  {n / ours:7.0f} records/s"
          f"  {base / ours:.2f}x")  # fmt: skip
    print(f"  re-push, nothing changed:    {repush:6.2f} s  (sent {again.sent})")
    print(f"  re-push, 1% changed:         {partial:6.2f} s  (sent {delta.sent})")


if __name__ == "__main__":
    main()
