"""Near-dedup accuracy and speed, ours against datasketch, measured in one run.

Accuracy: base files from this interpreter's stdlib and site-packages, each given 1-2
variants by realistic edits (identifier renames, re-indentation, changed lines, deleted
functions, a licence header), plus unrelated files. A pair is a true duplicate when the
exact Jaccard of its shingle sets (char 5-grams of whitespace-normalized text, as plain
Python sets) reaches the threshold. Ours predicts every pair inside a cluster; the
reference is datasketch's MinHashLSH (insert + query) on the same shingles.

Speed: end to end from text (shingling included), single process, on the same files:
the plain datasketch loop (MinHash + update per shingle + LSH insert/query), datasketch's
batch API (MinHash.bulk + insertion session), and ours.

    .venv/bin/python benchmarks/dedup.py [--bases 300] [--memory-docs 100000]
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from itertools import combinations
from pathlib import Path

from datasketch import MinHash, MinHashLSH

from curation.dedup import DedupConfig, near_duplicate_clusters
from curation.dedup.minhash import normalize

LICENCE = """# Copyright (c) 2024 Example Corp.
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may not use this
# file except in compliance with the License. You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software distributed under
# the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.
"""
EDITS = ("rename", "reformat", "lines_changed", "lines_deleted", "header")


def corpus_files() -> list[Path]:
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    files = sorted({p for root in roots for p in root.rglob("*.py")})
    return [p for p in files if 2_000 <= p.stat().st_size <= 30_000]


def edit(text: str, kind: str, rng: random.Random) -> str:
    lines = text.split("\n")
    if kind == "rename":
        names = sorted(set(re.findall(r"\b(?:def|class)\s+(\w+)|\b(\w+)\s*=", text)) - {("", "")})
        flat = sorted({a or b for a, b in names if len(a or b) > 2})
        for name in rng.sample(flat, k=max(1, int(len(flat) * rng.uniform(0.2, 0.6)))):
            text = re.sub(rf"\b{re.escape(name)}\b", f"{name[:2]}_{rng.randint(10, 99)}", text)
        return text
    if kind == "reformat":
        indent = rng.choice(["\t", "  ", "        "])
        return "\n".join(re.sub(r"^( {4})+", lambda m: indent * (len(m.group()) // 4), line)
                         + (" " * rng.randint(0, 3)) for line in lines)  # fmt: skip
    if kind == "lines_changed":
        for i in rng.sample(range(len(lines)), k=max(1, int(len(lines) * rng.uniform(0.05, 0.3)))):
            lines[i] = re.sub(r"\d+|\b\w{4,}\b", lambda m: m.group()[::-1], lines[i])
        return "\n".join(lines)
    if kind == "lines_deleted":
        size = max(1, int(len(lines) * rng.uniform(0.05, 0.4)))
        start = rng.randint(0, max(0, len(lines) - size))
        return "\n".join(lines[:start] + lines[start + size :])
    return LICENCE + "\n" + "\n".join(line for line in lines if not line.startswith("#"))


def build(
    bases: int, distractors: int, seed: int = 0
) -> tuple[list[str], list[str], list[tuple[int, int, str]]]:
    """Texts, their names, and (base, variant, edit kind) for every generated variant."""
    rng = random.Random(seed)
    files = corpus_files()
    rng.shuffle(files)
    texts, names, variants = [], [], []
    for path in files[:bases]:
        base = len(texts)
        texts.append(path.read_text(errors="replace"))
        names.append(str(path))
        for kind in rng.sample(EDITS, k=rng.randint(1, 2)):
            variants.append((base, len(texts), kind))
            texts.append(edit(texts[base], kind, rng))
            names.append(f"{path}#{kind}")
    for path in files[bases : bases + distractors]:
        texts.append(path.read_text(errors="replace"))
        names.append(str(path))
    return texts, names, variants


def shingle_strings(text: str, config: DedupConfig) -> set[bytes]:
    data = normalize(text, config).encode()
    return {data[i : i + config.ngram] for i in range(max(1, len(data) - config.ngram + 1))}


class TrueJaccard:
    def __init__(self, texts: list[str], config: DedupConfig) -> None:
        self.sets = [shingle_strings(t, config) for t in texts]

    def __call__(self, i: int, j: int) -> float:
        a, b = self.sets[i], self.sets[j]
        return len(a & b) / len(a | b)


def ours_pairs(texts: list[str], config: DedupConfig) -> set[tuple[int, int]]:
    labels = near_duplicate_clusters(texts, config).labels
    members: dict[int, list[int]] = {}
    for doc, label in enumerate(labels):
        members.setdefault(int(label), []).append(doc)
    return {pair for docs in members.values() for pair in combinations(sorted(docs), 2)}


def reference_lsh(texts: list[str], config: DedupConfig) -> set[tuple[int, int]]:
    """datasketch's documented path: one MinHash per doc, MinHashLSH insert then query."""
    shingles = [list(shingle_strings(t, config)) for t in texts]
    minhashes = MinHash.bulk(
        shingles, num_perm=config.num_perm, seed=config.seed, scheme="affine32"
    )
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m)
    return {tuple(sorted((i, j))) for i, m in enumerate(minhashes) for j in lsh.query(m) if i != j}


def accuracy(texts, names, variants, threshold: float) -> None:
    config = DedupConfig(threshold=threshold)
    truth = TrueJaccard(texts, config)
    families: dict[int, list[int]] = {}
    for base, variant, _ in variants:
        families.setdefault(base, [base]).append(variant)
    kinds = {(b, v): k for b, v, k in variants}
    ours = ours_pairs(texts, config)
    estimated = ours_pairs(texts, config.model_copy(update={"verify": "estimate"}))
    reference = reference_lsh(texts, config)
    universe = (
        {p for fam in families.values() for p in combinations(sorted(fam), 2)}
        | ours | estimated | reference
    )  # fmt: skip
    cache = {p: truth(*p) for p in universe}
    positives = {p for p, j in cache.items() if j >= threshold}
    print(f"\naccuracy at threshold {threshold}: {len(texts)} docs, {len(positives)} true pairs "
          f"(bands x rows {config.bands} x {config.rows})")  # fmt: skip
    print(f"{'method':<34}{'precision':>10}{'recall':>9}{'F1':>8}")
    for label, predicted in (("ours (clusters, exact verify)", ours),
                             ("ours (clusters, estimate verify)", estimated),
                             ("datasketch MinHashLSH query", reference)):  # fmt: skip
        tp = len(predicted & positives)
        p = tp / len(predicted) if predicted else 0.0
        r = tp / len(positives) if positives else 0.0
        print(f"{label:<34}{p:>10.3f}{r:>9.3f}{2 * p * r / (p + r) if p + r else 0:>8.3f}")
    print("recall per edit kind (base-variant pairs that are true duplicates), ours:")
    for kind in EDITS:
        pairs = [p for p, k in kinds.items() if k == kind and p in positives]
        found = sum(p in ours for p in pairs)
        median = sorted(cache[p] for p, k in kinds.items() if k == kind)
        middle = median[len(median) // 2] if median else float("nan")
        print(
            f"   {kind:<14} {found:>4}/{len(pairs):<4} median Jaccard of all its pairs {middle:.2f}"
        )


def speed(texts: list[str], loop_docs: int) -> None:
    config = DedupConfig()
    mb = sum(len(t.encode()) for t in texts) / 1e6

    def loop(sample):
        lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
        for i, text in enumerate(sample):
            m = MinHash(num_perm=config.num_perm, seed=config.seed, scheme="affine32")
            for shingle in shingle_strings(text, config):
                m.update(shingle)
            lsh.query(m)
            lsh.insert(i, m)

    timings = {}
    start = time.perf_counter()
    loop(texts[:loop_docs])
    timings["datasketch loop (update per shingle)"] = (time.perf_counter() - start) / loop_docs
    start = time.perf_counter()
    reference_lsh(texts, config)
    timings["datasketch bulk + insertion session"] = (time.perf_counter() - start) / len(texts)
    start = time.perf_counter()
    near_duplicate_clusters(texts, config)
    timings["ours"] = (time.perf_counter() - start) / len(texts)
    per_doc_mb = mb / len(texts)
    print(f"\nspeed, end to end from text, one process: {len(texts)} docs, {mb:.1f} MB "
          f"(the loop on the first {loop_docs})")  # fmt: skip
    ours = timings["ours"]
    for label, seconds in timings.items():
        print(f"   {label:<38}{1 / seconds:>9.0f} docs/s {per_doc_mb / seconds:>7.2f} MB/s"
              f"   ours is {seconds / ours:>5.1f}x faster")  # fmt: skip


MEMORY_INPUT = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from benchmarks.dedup import corpus_files
from curation.sources.common import finish_records
texts = [p.read_text(errors="replace")[:4000] for p in corpus_files()]
def content(i):
    return texts[i % len(texts)] + f"\\n# copy {{i // len(texts)}}"
rows = [{{"kind": "code", "source": "bench", "path": f"{{i}}.py", "content": content(i)}}
        for i in range({docs})]
# row groups of 1,000 rows, as the runner writes stage files batch by batch
finish_records(rows).write_parquet({path!r}, row_group_size=1000)
"""

# Peak RSS from VmHWM: ru_maxrss survives fork + exec on Linux, so a child started from a
# big parent would report the parent's peak.
MEMORY_STAGE = """
import re, sys, time
import polars as pl
sys.path.insert(0, {root!r})
from curation.dedup import DedupConfig, DedupStage
from curation.runner import StageContext
def peak_kb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
before = peak_kb()
start = time.perf_counter()
out = DedupStage(DedupConfig()).run(pl.scan_parquet({path!r}), StageContext(None, "m"))
rows = sum(batch.height for batch in out)
seconds = time.perf_counter() - start
print(peak_kb() / 1024, before / 1024, seconds)
"""


def memory(docs: int) -> None:
    """Peak RSS of the dedup stage over `docs` records, in a process that only runs it."""
    root = str(Path(__file__).parents[1])
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "records.parquet")
        subprocess.run([sys.executable, "-c", MEMORY_INPUT.format(root=root, docs=docs, path=path)],
                       check=True)  # fmt: skip
        size_mb = Path(path).stat().st_size / 1e6
        out = subprocess.run([sys.executable, "-c", MEMORY_STAGE.format(root=root, path=path)],
                             capture_output=True, text=True, check=True)  # fmt: skip
    peak, before, seconds = (float(x) for x in out.stdout.split())
    print(f"\nmemory: dedup stage over {docs:,} records (<= 4 KB each, {size_mb:.0f} MB Parquet): "
          f"peak RSS {peak:.0f} MB, {before:.0f} MB of it imports; {seconds:.0f} s, "
          f"{docs / seconds:.0f} docs/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, default=300)
    parser.add_argument("--distractors", type=int, default=700)
    parser.add_argument("--loop-docs", type=int, default=200)
    parser.add_argument("--memory-docs", type=int, default=100_000)
    args = parser.parse_args()
    texts, names, variants = build(args.bases, args.distractors)
    for threshold in (0.7, 0.85):
        accuracy(texts, names, variants, threshold)
    speed(texts, args.loop_docs)
    if args.memory_docs:
        memory(args.memory_docs)


if __name__ == "__main__":
    main()
