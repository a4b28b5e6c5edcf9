"""The pipeline at 1x, 4x and 16x of generated code: driver memory, throughput per core.

Corpus: Python modules generated from a fixed seed (imports, constants, functions and
classes with docstrings and comments, identifiers drawn from a vocabulary, now and then an
author line with a name and an e-mail address), 0.3-4 KB each, one file each in folders
of 1,000; 3% are near-copies of an earlier module (a few lines changed) so that dedup has
clusters to find. `--records` sets the 1x size (16x of 62,500 is one million).

Each size runs ingest -> filters -> pii -> dedup (-> the offline annotator, with
`--annotate`) through the Runner, as `curate run` does, with `--workers` processes, and
reports per stage the driver's peak resident memory (sampled every 20 ms), its wall and CPU
seconds (this process and every process under it) and records per CPU second, and the
driver's peak against the 1x run (target: 16x within 1.2x of 1x).

`--engine local` (the default) runs each part and partition task in the driver's own
process, so its peak includes the largest task's. `--engine ray` starts Ray here with
`--workers` CPUs: tasks and batch actors run in Ray's worker processes, and the driver's
peak is what a cluster's driver holds (the runner, the plans, the listing).

    .venv/bin/python benchmarks/scale.py [--records 62500] [--workers 2] [--scales 1,4,16]
                                         [--engine local|ray] [--annotate]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from annotators.config import AnnotateConfig
from annotators.stage import AnnotateStage
from curation import FilterConfig, FilterStage, IngestConfig, IngestStage, Runner
from curation.dedup import DedupConfig, DedupStage
from curation.engines import Engine, LocalEngine
from curation.engines.ray_engine import RayEngine
from curation.pii import PIIConfig, PIIStage

NOUNS = (
    "user", "order", "invoice", "session", "token", "record", "item", "account", "cache",
    "queue", "job", "file", "path", "buffer", "config", "request", "response", "event",
    "node", "edge", "graph", "matrix", "row", "column", "table", "report", "metric",
)  # fmt: skip
VERBS = (
    "load", "save", "parse", "render", "fetch", "build", "merge", "split", "update",
    "compute", "validate", "encode", "decode", "sync", "flush", "resolve", "filter",
)  # fmt: skip
WORDS = (
    "the", "a", "each", "given", "current", "new", "cached", "remote", "local", "first",
    "last", "valid", "empty", "sorted", "unique", "pending", "failed", "default",
)  # fmt: skip
PEOPLE = ("Maria Schneider", "Jonas Weber", "Aiko Tanaka", "Priya Raman", "Tomasz Nowak",
          "Lucia Fernandez", "Omar Haddad", "Grace Okafor")  # fmt: skip


def name(rng: random.Random) -> str:
    return f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"


def sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(WORDS + NOUNS + VERBS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def function(rng: random.Random, indent: str = "") -> str:
    args = rng.sample(NOUNS, rng.randint(1, 3))
    body = [f'{indent}def {name(rng)}({", ".join(args)}):',
            f'{indent}    """{sentence(rng, rng.randint(5, 12))}"""']  # fmt: skip
    for _ in range(rng.randint(2, 9)):
        target, source = rng.choice(NOUNS), rng.choice(args)
        kind = rng.randrange(5)
        if kind == 0:
            body.append(f"{indent}    # {sentence(rng, rng.randint(4, 10))}")
        elif kind == 1:
            body.append(
                f"{indent}    if {source} is None:\n{indent}        return {rng.randint(0, 99)}"
            )
        elif kind == 2:
            body.append(f"{indent}    {target} = [x for x in {source} if x.{rng.choice(NOUNS)}]")
        elif kind == 3:
            body.append(
                f'{indent}    {target} = {source}.get("{rng.choice(NOUNS)}", {rng.randint(0, 9)})'
            )
        else:
            body.append(f"{indent}    {target} = {name(rng)}({source}, {rng.randint(1, 500)})")
    body.append(f"{indent}    return {rng.choice(args)}")
    return "\n".join(body)


def module(rng: random.Random) -> str:
    parts = []
    if rng.random() < 0.08:
        person = rng.choice(PEOPLE)
        mail = person.lower().replace(" ", ".") + "@" + rng.choice(("acme.io", "corp.net"))
        parts.append(f"# Author: {person} <{mail}>")
    parts.append(f'"""{sentence(rng, rng.randint(6, 16))}"""')
    imports = rng.sample(("os", "re", "json", "time", "logging", "pathlib"), 2)
    parts.append("\n".join(f"import {m}" for m in imports))
    parts.append(f"{rng.choice(NOUNS).upper()}_LIMIT = {rng.randint(10, 10_000)}")
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.3:
            methods = "\n\n".join(function(rng, "    ") for _ in range(rng.randint(1, 3)))
            parts.append(f"class {rng.choice(NOUNS).title()}{rng.choice(VERBS).title()}er:\n"
                         f'    """{sentence(rng, 8)}"""\n\n{methods}')  # fmt: skip
        else:
            parts.append(function(rng))
    return "\n\n\n".join(parts) + "\n"


def write_corpus(root: Path, records: int, seed: int = 0) -> int:
    """`records` generated modules under `root`; returns their bytes."""
    rng = random.Random(seed)
    written, total = [], 0
    for i in range(records):
        if written and rng.random() < 0.03:
            lines = rng.choice(written).split("\n")
            for _ in range(2):
                lines[rng.randrange(len(lines))] = f"    changed = {rng.randint(0, 99)}"
            text = "\n".join(lines)
        else:
            text = module(rng)
            if len(written) < 2_000:
                written.append(text)
            else:
                written[rng.randrange(2_000)] = text
        path = root / f"pkg{i // 1000:04d}" / f"mod{i:07d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        total += len(text)
    return total


class CpuSeconds:
    """CPU time of this process and of every process seen under it (a stage's pool workers,
    Ray's raylet and workers), each as last sampled, so a process that has ended still
    counts (a Ray worker's time reaches no parent's children times); a process's last
    tenth of a second before it ends is missed."""

    def __init__(self) -> None:
        self._seen: dict[int, float] = {}

    def sample(self) -> float:
        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            self._seen[process.pid] = times.user + times.system
        return sum(self._seen.values())


class DriverPeak:
    """Peak RSS of this process, sampled in a thread, and the peak and CPU seconds of each
    stage, noted at its end."""

    def __init__(self) -> None:
        self.peak = 0
        self.per_stage: dict[str, int] = {}
        self.cpu: dict[str, float] = {}
        self._since = 0
        self._cpu = CpuSeconds()
        self._cpu_mark = self._cpu.sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        samples = 0
        while not self._stop.wait(0.02):
            rss = me.memory_info().rss
            self.peak, self._since = max(self.peak, rss), max(self._since, rss)
            samples += 1
            if samples % 5 == 0:
                self._cpu.sample()

    def stage_done(self, manifest) -> None:
        self.per_stage[manifest.tag] = self._since
        self._since = 0
        now = self._cpu.sample()
        self.cpu[manifest.tag], self._cpu_mark = now - self._cpu_mark, now

    def __enter__(self) -> DriverPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def new_engine(engine: str, workers: int) -> Engine:
    if engine == "ray":
        return RayEngine(num_cpus=workers)
    return LocalEngine(workers=workers)


def run(
    repo: Path, workdir: Path, workers: int, part_rows: int, engine: str, annotate: bool
) -> tuple[list, DriverPeak]:
    stages = [
        IngestStage(IngestConfig(sources=[{"type": "dir", "path": repo}], languages=["python"]),
                    clone_root=workdir / "clones"),
        FilterStage(FilterConfig()),
        PIIStage(PIIConfig(workers=workers)),
        DedupStage(DedupConfig()),  # partitions by size, as `curate run` does
    ]  # fmt: skip
    if annotate:
        stages.append(AnnotateStage(AnnotateConfig(tasks=["instruction_for_code"]), workdir))
    with new_engine(engine, workers) as chosen, DriverPeak() as peak:
        runner = Runner(workdir, engine=chosen, part_rows=part_rows,
                        on_stage_done=peak.stage_done)  # fmt: skip
        manifests = runner.run(stages)
    return manifests, peak


def run_here(
    repo: Path, workdir: Path, workers: int, part_rows: int, engine: str, annotate: bool
) -> None:
    """One pipeline run in this (fresh) process; one JSON line per stage on stdout."""
    manifests, peak = run(repo, workdir, workers, part_rows, engine, annotate)
    for m in manifests:
        stage = {"tag": m.tag, "rows_in": m.rows_in, "rows_out": m.rows_out,
                 "seconds": m.seconds, "cpu": peak.cpu.get(m.tag, 0.0),
                 "peak": peak.per_stage.get(m.tag, 0), "run_peak": peak.peak}  # fmt: skip
        print(json.dumps(stage))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=62_500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-rows", type=int, default=10_000)
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--annotate", action="store_true", help="add the offline annotator")
    parser.add_argument("--run-here", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.run_here:
        run_here(*args.run_here, args.workers, args.part_rows, args.engine, args.annotate)
        return
    base_peak = None
    for scale in (int(s) for s in args.scales.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            records = scale * args.records
            started = time.perf_counter()
            size = write_corpus(Path(tmp) / "repo", records)
            print(f"\n{scale}x: {records:,} modules, {size / 1e6:,.0f} MB "
                  f"(written in {time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
            # each size in a fresh process, as each `curate run` is: a process's resident
            # memory does not shrink back after a run, so sizes run in one would add up
            done = subprocess.run(
                [sys.executable, __file__, "--run-here", str(Path(tmp) / "repo"),
                 str(Path(tmp) / "work"), "--workers", str(args.workers),
                 "--part-rows", str(args.part_rows), "--engine", args.engine,
                 *(["--annotate"] if args.annotate else [])],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                sys.exit(f"the {scale}x run failed:\n{done.stderr[-4000:]}")
        stages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        run_peak = stages[-1]["run_peak"]
        base_peak = base_peak or run_peak
        for m in stages:
            print(f"  {m['tag']:<11}{m['rows_in']:>10,} in {m['rows_out']:>10,} out "
                  f"{m['seconds']:>8.1f} s {m['cpu']:>8.1f} CPU-s "
                  f"{m['rows_in'] / max(m['cpu'], 1e-9):>8,.0f} rec/CPU-s "
                  f"driver peak {m['peak'] / 2**20:>7,.0f} MB")  # fmt: skip
        print(f"  driver peak {run_peak / 2**20:,.0f} MB = {run_peak / base_peak:.2f}x of "
              f"the first size", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
