"""The local engine against the Ray engine on the same data: throughput and memory per worker.

Corpus: Python files of this interpreter's stdlib (2-30 KB), plus a near-copy (a few lines
changed) of every fourth one, so dedup has clusters to find. Each configuration runs the
PII stage and the dedup stage exactly as the pipeline does (the stage reads the previous
stage's Parquet file through the engine), and every configuration must produce the same
output as the first, which the script checks.

Configurations: local with 1 process (the baseline), local with 2 processes, Ray with 1
CPU and Ray with 2 CPUs (a fresh local Ray each). Memory: peak resident set of each worker
process (local pool processes, or Ray's worker processes), sampled every 50 ms, and of
the driver.

    .venv/bin/python benchmarks/scale.py [--files 600]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import psutil

from curation import StageContext
from curation.dedup import DedupConfig, DedupStage
from curation.engines import Engine, LocalEngine
from curation.pii import PIIConfig, PIIStage
from curation.sources.common import finish_records


def corpus(files: int) -> pl.DataFrame:
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if 2_000 <= p.stat().st_size <= 30_000)
    rng = random.Random(0)
    rows = []
    for path in rng.sample(paths, min(files, len(paths))):
        text = path.read_text(errors="replace")
        rows.append({"kind": "code", "source": "stdlib", "path": str(path.relative_to(root)),
                     "language": "python", "content": text})  # fmt: skip
        if len(rows) % 4 == 0:
            lines = text.split("\n")
            for _ in range(3):
                lines[rng.randrange(len(lines))] = "    changed = True"
            rows.append(
                {**rows[-1], "path": rows[-1]["path"] + ".copy", "content": "\n".join(lines)}
            )
    return finish_records(rows)


class PeakMemory:
    """Peak RSS per worker process and of this process, sampled in a thread."""

    def __init__(self, is_worker: Callable[[psutil.Process], bool]) -> None:
        self.is_worker = is_worker
        self.workers: dict[int, int] = {}
        self.driver = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            self.driver = max(self.driver, me.memory_info().rss)
            for process in psutil.process_iter(["pid"]):
                try:
                    if self.is_worker(process):
                        rss = process.memory_info().rss
                        self.workers[process.pid] = max(self.workers.get(process.pid, 0), rss)
                except psutil.Error:
                    continue

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def is_local_worker(process: psutil.Process) -> bool:
    return process.ppid() == os.getpid()


def is_ray_worker(process: psutil.Process) -> bool:
    return process.name().startswith("ray::") and "IDLE" not in process.name()


def run_stages(engine: Engine, workdir: Path, source: Path, workers: int) -> dict[str, object]:
    """PII then dedup on `engine`, each reading the previous stage file; timings and digests."""
    out: dict[str, object] = {}
    pii_file = workdir / "pii.parquet"
    ctx = StageContext(workdir, "03_pii", engine=engine, input_path=source, run_key="pii")
    start = time.perf_counter()
    pii = PIIStage(PIIConfig(workers=workers, batch_size=32))
    frames = list(pii.run(pl.scan_parquet(source), ctx))
    out["pii_s"] = time.perf_counter() - start
    pl.concat(frames).write_parquet(pii_file)
    out["pii_digest"] = digest(pl.read_parquet(pii_file, columns=["id", "content_clean"]))
    ctx = StageContext(workdir, "04_dedup", engine=engine, input_path=pii_file, run_key="dedup")
    start = time.perf_counter()
    dedup = DedupStage(DedupConfig(partitions=4, batch_size=200))
    clusters = pl.concat(dedup.run(pl.scan_parquet(pii_file), ctx))
    out["dedup_s"] = time.perf_counter() - start
    out["dedup_digest"] = digest(clusters.select("id", "cluster_id", "filter_reason").sort("id"))
    out["clusters"] = int((clusters["cluster_size"] > 1).sum())
    return out


def digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_ipc(None).getvalue()).hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=600)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    records = corpus(args.files)
    mb = records["size_bytes"].sum() / 1e6
    print(f"corpus: {records.height} records, {mb:.1f} MB; {os.cpu_count()} cores on this machine")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "02_filters.parquet"
        records.write_parquet(source)
        for label, kind, workers in (("local, 1 process", "local", 1),
                                     ("local, 2 processes", "local", 2),
                                     ("ray, 1 CPU", "ray", 1),
                                     ("ray, 2 CPUs", "ray", 2)):  # fmt: skip
            workdir = Path(tmp) / label.replace(" ", "").replace(",", "_")
            workdir.mkdir()
            if kind == "ray":
                import ray

                from curation.engines.ray_engine import RayEngine

                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                engine: Engine = RayEngine(workers=workers)
                watch = is_ray_worker
            else:
                engine, watch = LocalEngine(workers=workers), is_local_worker
            with PeakMemory(watch) as memory:
                results[label] = run_stages(engine, workdir, source, workers)
            if kind == "ray":
                ray.shutdown()
            results[label]["worker_mb"] = max(memory.workers.values(), default=0) / 1e6
            results[label]["driver_mb"] = memory.driver / 1e6
    base = results["local, 1 process"]
    print(f"\n{'engine':<20}{'PII MB/s':>10}{'vs base':>9}{'dedup MB/s':>12}{'vs base':>9}"
          f"{'peak MB/worker':>16}{'driver MB':>11}  same output")  # fmt: skip
    for label, r in results.items():
        same = r["pii_digest"] == base["pii_digest"] and r["dedup_digest"] == base["dedup_digest"]
        print(f"{label:<20}{mb / r['pii_s']:>10.2f}{base['pii_s'] / r['pii_s']:>8.2f}x"
              f"{mb / r['dedup_s']:>12.2f}{base['dedup_s'] / r['dedup_s']:>8.2f}x"
              f"{r['worker_mb']:>16.0f}{r['driver_mb']:>11.0f}  {same}")  # fmt: skip
    print(f"clusters with near-copies: {base['clusters']}")


if __name__ == "__main__":
    main()
