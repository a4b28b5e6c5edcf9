"""The local engine against the Ray engine on the same data: throughput and memory per worker.

Corpus: Python files of this interpreter's stdlib (2-30 KB), plus a near-copy (a few lines
changed) of every fourth one, so dedup has clusters to find. Each configuration runs the
PII stage and the dedup stage exactly as the pipeline does (the stage reads the previous
stage's Parquet file through the engine), and every configuration must produce the same
output as the first, which the script checks.

Configurations: local with 1 process (the baseline), local with 2 processes, Ray with 1
CPU and Ray with 2 CPUs (a fresh local Ray each). Each runs a 40-record warm-up (one-off
imports), a corpus, and one twice its size: end-to-end throughput on the large one, and
the marginal throughput of the extra half, where fixed costs (starting Ray and actors,
loading spaCy per worker) cancel out.
Memory: peak resident set of each worker process (local pool processes, or Ray's worker
processes), sampled every 50 ms, and of the driver.

    .venv/bin/python benchmarks/engines.py [--files 600]
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


def marginal(small: dict, large: dict, mb: tuple[float, float], step: str) -> float:
    """MB/s of the extra data in the large run: what is left once fixed costs (Ray and
    actor start, spaCy loads) cancel out."""
    return (mb[1] - mb[0]) / max(large[f"{step}_s"] - small[f"{step}_s"], 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=600)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    large = corpus(2 * args.files)
    small = large.head(large.height // 2)
    mb = (small["size_bytes"].sum() / 1e6, large["size_bytes"].sum() / 1e6)
    print(f"corpus: {small.height} and {large.height} records ({mb[0]:.1f} and {mb[1]:.1f} MB); "
          f"{os.cpu_count()} cores on this machine")  # fmt: skip
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sources = []
        for name, records in (("warm", large.head(40)), ("small", small), ("large", large)):
            sources.append(Path(tmp) / f"{name}.parquet")
            records.write_parquet(sources[-1])
        for label, kind, workers in (("local, 1 process", "local", 1),
                                     ("local, 2 processes", "local", 2),
                                     ("ray, 1 CPU", "ray", 1),
                                     ("ray, 2 CPUs", "ray", 2)):  # fmt: skip
            if kind == "ray":
                import ray

                from curation.engines.ray_engine import RayEngine

                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
                engine: Engine = RayEngine(workers=workers)
                watch = is_ray_worker
            else:
                engine, watch = LocalEngine(workers=workers), is_local_worker
            runs = []
            with PeakMemory(watch) as memory:
                for source in sources:
                    workdir = Path(tmp) / f"{kind}{workers}-{source.stem}"
                    workdir.mkdir()
                    runs.append(run_stages(engine, workdir, source, workers))
            if kind == "ray":
                ray.shutdown()
            # The first run pays one-off imports (Presidio, spaCy) that later runs do not.
            results[label] = {"small": runs[1], "large": runs[2],
                              "worker_mb": max(memory.workers.values(), default=0) / 1e6,
                              "driver_mb": memory.driver / 1e6}  # fmt: skip
    report(results, mb)


def report(results: dict[str, dict], mb: tuple[float, float]) -> None:
    base = results["local, 1 process"]
    print(f"\nend to end on {mb[1]:.1f} MB, and marginal (the extra {mb[1] - mb[0]:.1f} MB of the "
          "large run over the small one); ratios against local, 1 process")  # fmt: skip
    print(f"{'engine':<20}{'PII MB/s':>9}{'ratio':>7}{'marginal':>10}{'ratio':>7}"
          f"{'dedup MB/s':>11}{'ratio':>7}{'marginal':>10}{'ratio':>7}"
          f"{'MB/worker':>11}{'driver MB':>11}  same output")  # fmt: skip
    for label, r in results.items():
        row = f"{label:<20}"
        for step in ("pii", "dedup"):
            whole = mb[1] / r["large"][f"{step}_s"]
            base_whole = mb[1] / base["large"][f"{step}_s"]
            extra = marginal(r["small"], r["large"], mb, step)
            base_extra = marginal(base["small"], base["large"], mb, step)
            row += (
                f"{whole:>9.2f}{whole / base_whole:>6.2f}x{extra:>10.2f}{extra / base_extra:>6.2f}x"
            )
            row += " " if step == "pii" else ""
        same = all(r[size][f"{step}_digest"] == base[size][f"{step}_digest"]
                   for size in ("small", "large") for step in ("pii", "dedup"))  # fmt: skip
        print(f"{row}{r['worker_mb']:>10.0f}{r['driver_mb']:>11.0f}  {same}")
    print(f"clusters with near-copies in the large run: {base['large']['clusters']}")


if __name__ == "__main__":
    main()
