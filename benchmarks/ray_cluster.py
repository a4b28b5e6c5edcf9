"""A two-node Ray cluster on this machine against the local engine: the same outputs.

`ray start --head` and a second `ray start --address` (one CPU each: two raylets, so two
nodes as Ray schedules them, on one host that shares the work folder, as a cluster would
share its storage). ingest -> filters -> pii -> dedup -> annotate (offline) run through
the Runner on the pinned corpus of benchmarks/parts.py, once on the cluster and once on
the local engine; every stage's output must read the same (rows sorted by id, all
columns). The Ray worker
processes are sampled every 50 ms to show which raylet (node) each ran under.

    .venv/bin/python benchmarks/ray_cluster.py [--files 200] [--part-rows 50]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from parts import copy_tree, corpus_files  # benchmarks/parts.py: the same pinned corpus

from annotators.config import AnnotateConfig
from annotators.stage import AnnotateStage
from curation import FilterConfig, FilterStage, IngestConfig, IngestStage, Runner
from curation.dedup import DedupConfig, DedupStage
from curation.engines import Engine, LocalEngine
from curation.parts import stage_frame
from curation.pii import PIIConfig, PIIStage

RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6390


def start_cluster() -> str:
    """A head node and a second node, one CPU each, and this process as the driver, all with
    a token made for the run, as a cluster's nodes share one (a token that an earlier Ray
    left in ~/.ray kept the second node out); returns the head's address."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    address = f"127.0.0.1:{PORT}"
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = [RAY, "start", "--head", f"--port={PORT}", "--include-dashboard=false", *common]
    subprocess.run(head, check=True, capture_output=True)
    subprocess.run([RAY, "start", f"--address={address}", *common], check=True,
                   capture_output=True)  # fmt: skip
    return address


def stop_cluster() -> None:
    subprocess.run([RAY, "stop", "--force"], check=False, capture_output=True)


class WorkersPerNode:
    """Ray worker processes seen busy, by the raylet (node) that started them."""

    def __init__(self) -> None:
        self.busy: dict[int, set[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for process in psutil.process_iter(["pid", "name", "ppid"]):
                name = process.info["name"] or ""
                if name.startswith("ray::") and "IDLE" not in name:
                    self.busy.setdefault(process.info["ppid"], set()).add(process.info["pid"])

    def __enter__(self) -> WorkersPerNode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_pipeline(repo: Path, workdir: Path, engine: Engine, part_rows: int) -> list[str]:
    stages = [
        IngestStage(IngestConfig(sources=[{"type": "dir", "path": repo}], languages=["python"]),
                    clone_root=workdir / "clones"),
        FilterStage(FilterConfig()),
        PIIStage(PIIConfig(workers=2, batch_size=16)),
        DedupStage(DedupConfig(partitions=4, batch_size=50)),
        AnnotateStage(AnnotateConfig(tasks=["instruction_for_code"]), workdir),
    ]  # fmt: skip
    manifests = Runner(workdir, engine=engine, part_rows=part_rows).run(stages)
    return [m.tag for m in manifests]


def digest(folder: Path) -> str:
    """The stage's rows, sorted by id, as bytes: parts may be cut alike or not."""
    frame = stage_frame(folder).collect().sort("id")
    return hashlib.sha256(frame.write_ipc(None).getvalue()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--part-rows", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        copy_tree(corpus_files()[: args.files], repo)
        start = time.perf_counter()
        tags = run_pipeline(repo, Path(tmp) / "local", LocalEngine(workers=2), args.part_rows)
        local_s = time.perf_counter() - start
        stop_cluster()
        address = start_cluster()
        try:
            import ray

            from curation.engines.ray_engine import RayEngine

            ray.init(address=address, include_dashboard=False, log_to_driver=False)
            nodes = [n for n in ray.nodes() if n["Alive"]]
            print(f"cluster: {len(nodes)} nodes, "
                  f"{int(ray.cluster_resources().get('CPU', 0))} CPUs")  # fmt: skip
            start = time.perf_counter()
            with WorkersPerNode() as seen:
                run_pipeline(repo, Path(tmp) / "ray", RayEngine(address=address), args.part_rows)
            ray_s = time.perf_counter() - start
            ray.shutdown()
        finally:
            stop_cluster()
        print(f"local engine (2 processes): {local_s:.1f} s; two-node Ray: {ray_s:.1f} s")
        print(f"busy Ray workers per node (raylet pid: workers): "
              f"{ {parent: len(pids) for parent, pids in seen.busy.items()} }")  # fmt: skip
        same = True
        for tag in tags:
            local, clustered = digest(Path(tmp) / "local" / tag), digest(Path(tmp) / "ray" / tag)
            rows = stage_frame(Path(tmp) / "local" / tag).select(pl.len()).collect().item()
            same &= local == clustered
            print(f"  {tag:<12}{rows:>6} rows  local {local}  ray {clustered}  "
                  f"{'same' if local == clustered else 'DIFFERENT'}")  # fmt: skip
        print("outputs identical" if same else "OUTPUTS DIFFER")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
