"""Stage outputs as parts: driver memory as the input grows, and what a grown source costs.

Corpus (pinned): the first N Python files, by sorted path, of packages installed in this
interpreter's site-packages (requests, rich, click, jinja2, pygments, starlette, fastapi,
networkx, markdown), copied into a temporary tree; sizes 1x, 4x and 16x of `--files`.
Each size runs ingest -> filters -> pii -> dedup through the Runner, as `curate run` does,
with the local engine's worker pool, and reports:
- the driver's peak resident memory (sampled every 20 ms; the PII workers are separate
  processes), against the 1x run: the target is 16x within 1.2x of 1x;
- records per second per core over the four stages;
- the increment: 1% more files added to the 16x source and the run repeated in the same
  workdir, against the baseline of a clean run over the grown source (same inputs, the
  same stages: what every run cost before parts), stage by stage, with dedup's phases
  and how many of its input parts' signatures and output parts the rerun kept.

    .venv/bin/python benchmarks/parts.py [--files 150] [--workers 2] [--part-rows 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from curation import FilterConfig, FilterStage, IngestConfig, IngestStage, Runner
from curation.dedup import DedupConfig, DedupStage
from curation.engines import LocalEngine
from curation.pii import PIIConfig, PIIStage

PACKAGES = ("requests", "rich", "click", "jinja2", "pygments", "starlette", "fastapi",
            "networkx", "markdown")  # fmt: skip


def corpus_files() -> list[Path]:
    """Every .py file of the pinned packages, in a fixed order."""
    site = Path(sysconfig.get_paths()["purelib"])
    files = [f for name in PACKAGES for f in sorted((site / name).rglob("*.py"))]
    return [f for f in files if 200 < f.stat().st_size < 40_000]


def copy_tree(files: list[Path], root: Path) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    for file in files:
        target = root / file.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)


def run_measured(repo: Path, workdir: Path, workers: int, part_rows: int) -> dict[str, Any]:
    """One run of ingest -> filters -> pii -> dedup; seconds (in all and per stage), driver
    peak RSS (MB), rows, rows recomputed by pii, dedup's phase seconds and reused parts."""
    me, peak, done = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.02)

    stages = [
        IngestStage(IngestConfig(sources=[{"type": "dir", "path": repo}], languages=["python"]),
                    clone_root=workdir / "clones"),
        FilterStage(FilterConfig()),
        PIIStage(PIIConfig(workers=workers)),
        DedupStage(DedupConfig()),
    ]  # fmt: skip
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    start = time.perf_counter()
    manifests = Runner(workdir, engine=LocalEngine(workers=workers), part_rows=part_rows).run(
        stages
    )
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    pii, dedup = manifests[2], manifests[3]
    recomputed = sum(p["rows"] for p in pii.parts if not p["reused"])
    return {"seconds": seconds, "peak_mb": peak[0] / 2**20, "rows": pii.rows_in,
            "parts": len(pii.parts), "recomputed_rows": recomputed,
            "stages": {m.stage: m.seconds for m in manifests},
            "dedup_phases": {"summaries": dedup.extra["summary_seconds"],
                             **dedup.extra["phase_seconds"]},
            "summaries_reused": dedup.extra["summaries_reused"], "dedup_parts": len(dedup.parts),
            "dedup_parts_reused": sum(p["reused"] for p in dedup.parts)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-rows", type=int, default=500)
    args = parser.parse_args()
    files = corpus_files()
    if len(files) < 16 * args.files * 1.01:
        raise SystemExit(f"only {len(files)} corpus files; pass a smaller --files")
    cores = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for scale in (1, 4, 16):
            repo, work = Path(tmp) / f"repo{scale}", Path(tmp) / f"work{scale}"
            copy_tree(files[: scale * args.files], repo)
            results[scale] = run_measured(repo, work, args.workers, args.part_rows)
            r = results[scale]
            print(f"{scale:>2}x: {r['rows']:>6} records, {r['parts']:>4} pii parts, "
                  f"{r['seconds']:7.1f} s, {r['rows'] / r['seconds'] / cores:6.1f} rec/s/core, "
                  f"driver peak {r['peak_mb']:6.0f} MB "
                  f"({r['peak_mb'] / results[1]['peak_mb']:.2f}x of 1x)")  # fmt: skip
        grown = 16 * args.files
        extra = files[grown : grown + max(1, grown // 100)]
        copy_tree(extra, Path(tmp) / "repo16")
        increment = run_measured(Path(tmp) / "repo16", Path(tmp) / "work16", args.workers,
                                 args.part_rows)  # fmt: skip
        clean = run_measured(Path(tmp) / "repo16", Path(tmp) / "clean", args.workers,
                             args.part_rows)  # fmt: skip
        print(f"+{len(extra)} files on 16x: rerun {increment['seconds']:.1f} s "
              f"({increment['recomputed_rows']} of {increment['rows']} records through pii) "
              f"vs clean run {clean['seconds']:.1f} s: "
              f"{clean['seconds'] / increment['seconds']:.1f}x faster")  # fmt: skip
        for name in increment["stages"]:
            print(f"  {name:<8} rerun {increment['stages'][name]:7.1f} s, "
                  f"clean {clean['stages'][name]:7.1f} s")  # fmt: skip
        for phase, rerun in increment["dedup_phases"].items():
            print(f"    dedup {phase:<10} rerun {rerun:7.2f} s, "
                  f"clean {clean['dedup_phases'].get(phase, 0.0):7.2f} s")  # fmt: skip
        print(f"  dedup: signatures of {increment['summaries_reused']} of "
              f"{increment['dedup_parts']} input parts reused, "
              f"{increment['dedup_parts_reused']} output parts reused")  # fmt: skip
    print(f"cores: {cores} of {os.cpu_count()}")


if __name__ == "__main__":
    main()
