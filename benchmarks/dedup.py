"""Near-dedup on real code, measured in one run: accuracy against datasketch, precision of
the drops against hand labels, speed against datasketch's bulk API, peak memory.

1. Accuracy, on a pinned corpus (`benchmarks/dedup_corpus.txt`: package==version and path
   of 1,000 installed Python files; the run stops if any is missing): the first 300 are
   given 1-2 variants by realistic edits (identifier renames, re-indentation, changed
   lines, deleted lines, a licence header added), the rest are unrelated files. A pair is
   a true duplicate when the exact Jaccard of its char 5-gram sets (whitespace-normalized
   text without the licence header planted here, plain Python sets) reaches the threshold;
   F1 is also scored against the truth that counts that header. Every method predicts the
   pairs inside its clusters and gets the same verification: datasketch's MinHashLSH
   (insert + query, with our bands and rows) -> exact Jaccard -> connected components.
   Family recall is the share of generated (base, variant) pairs put in one cluster, the
   same pairs for every method whatever their Jaccard.
2. Precision on real code: the filters stage, then the dedup stage, over installed code
   nobody here wrote (`REAL_ROOTS`); each drop (dropped file, its cluster's representative)
   is looked up in `benchmarks/labels/dedup_real.jsonl`. Verdicts, from the members' diffs:
   `duplicate`: the dropped file is the kept one after edits that leave its statements in
   place (version drift, renamed identifiers, changed literals or values, reformatting,
   comments, a few statements added or removed); `distinct`: it has statements or
   declarations of its own and shares with the kept one only boilerplate or a skeleton
   (licence, include guards, imports, namespaces). Drops with no label are listed;
   `--unlabelled FILE` writes them as label lines to fill in.
3. Speed, end to end from text, one process, same texts and repetitions: datasketch's
   `MinHash.bulk` + insertion session + query + the same exact verification and
   components, against ours (its default config).
4. Memory: peak RSS of the dedup stage over `--memory-docs` records.

    .venv/bin/python benchmarks/dedup.py [--skip speed,memory] [--roots requests,openssl]
    .venv/bin/python benchmarks/dedup.py --pin   # rewrite the pinned corpus from this venv
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import polars as pl
from datasketch import MinHash, MinHashLSH

from curation.dedup import DedupConfig, DedupStage
from curation.dedup.minhash import near_duplicate_clusters
from curation.filters import FilterConfig, FilterStage
from curation.languages import language_from_name
from curation.runner import StageContext
from curation.sources.common import finish_records

HERE = Path(__file__).parent
PINNED = HERE / "dedup_corpus.txt"
LABELS = HERE / "labels" / "dedup_real.jsonl"


@dataclass(frozen=True)
class Root:
    """A folder of installed code named `<name>==<version>`; ids are relative to `folder`."""

    name: str
    version: str | None  # None: not installed on this machine
    folder: Path
    under: str = "."
    suffixes: tuple[str, ...] = (".py",)

    def id(self, path: Path) -> str:
        return f"{self.name}=={self.version}:{path.relative_to(self.folder).as_posix()}"


def package_root(name: str, under: str = ".", suffixes: tuple[str, ...] = (".py",)) -> Root:
    """An installed Python package, named after its distribution and version."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return Root(name, None, Path(name))
    folder = Path(spec.submodule_search_locations[0])
    return Root(name, importlib.metadata.version(name), folder, under, suffixes)


def header_root(name: str, folder: str, version_file: str, pattern: str) -> Root:
    """A folder of system headers, versioned by a #define in one of them."""
    path = Path(folder) / version_file
    found = re.search(pattern, path.read_text()) if path.is_file() else None
    return Root(name, found.group(1) if found else None, Path(folder), suffixes=(".h",))


# The real-code corpus: the packages of issue #15's report, typer (which vendors click),
# pip with its _vendor copies and the packages it vendors, OpenSSL, Python and Arrow headers.
PACKAGES = ("requests", "rich", "click", "fastapi", "starlette", "networkx", "markdown",
            "jinja2", "uvicorn", "typer", "pip", "pygments", "urllib3", "idna", "certifi",
            "packaging")  # fmt: skip


def real_roots() -> list[Root]:
    return [
        *(package_root(name) for name in PACKAGES),
        header_root("openssl", "/usr/include/openssl", "opensslv.h",
                    r'OPENSSL_VERSION_STR\s+"([^"]+)"'),
        header_root("python-headers", "/usr/include/python3.11", "patchlevel.h",
                    r'PY_VERSION\s+"([^"]+)"'),
        package_root("pyarrow", under="include", suffixes=(".h", ".hpp")),
    ]  # fmt: skip


def root_files(root: Root) -> Iterator[tuple[str, str]]:
    """(id, text) of each UTF-8 source file under the root."""
    for path in sorted((root.folder / root.under).rglob("*")):
        if path.suffix in root.suffixes and path.is_file():
            try:
                yield root.id(path), path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


# --- 1. accuracy on the pinned corpus ---------------------------------------------------

F1_PACKAGES = ("requests", "rich", "click", "fastapi", "starlette", "networkx", "numpy",
               "pygments", "jinja2", "markdown")  # fmt: skip
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


def pin(count: int = 1000, seed: int = 0) -> None:
    """Write the pinned corpus: `count` files of 2-30 KB from F1_PACKAGES, in a seeded order."""
    candidates = []
    for root in map(package_root, F1_PACKAGES):
        for path in sorted(root.folder.rglob("*.py")):
            if 2_000 <= path.stat().st_size <= 30_000:
                candidates.append(root.id(path))
    random.Random(seed).shuffle(candidates)
    header = "# benchmarks/dedup.py's accuracy corpus: <package>==<version>:<path in the package>\n"
    PINNED.write_text(header + "\n".join(candidates[:count]) + "\n")
    print(f"pinned {min(count, len(candidates))} of {len(candidates)} files in {PINNED}")


def pinned_texts() -> list[tuple[str, str]]:
    """(id, text) of the pinned corpus, or exit naming what this machine lacks."""
    roots = {f"{r.name}=={r.version}": r for r in map(package_root, F1_PACKAGES)}
    ids = [line for line in PINNED.read_text().splitlines() if not line.startswith("#")]
    out, missing = [], []
    for file_id in ids:
        package, path = file_id.split(":", 1)
        root = roots.get(package)
        file = root.folder / path if root else None
        if file is None or not file.is_file():
            missing.append(file_id)
            continue
        out.append((file_id, file.read_text(encoding="utf-8")))
    if missing:
        installed = ", ".join(sorted(roots))
        examples = ", ".join(missing[:3])
        sys.exit(f"{len(missing)} pinned files are missing (installed here: {installed}), e.g. "
                 f"{examples}; install the pinned versions or rerun --pin")  # fmt: skip
    return out


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


def build(files: list[tuple[str, str]], bases: int,
          seed: int = 0) -> tuple[list[str], list[tuple[int, int, str]]]:  # fmt: skip
    """Texts, and (base, variant, edit kind) for every generated variant."""
    rng = random.Random(seed)
    texts, variants = [], []
    for _, text in files[:bases]:
        base = len(texts)
        texts.append(text)
        for kind in rng.sample(EDITS, k=rng.randint(1, 2)):
            variants.append((base, len(texts), kind))
            texts.append(edit(text, kind, rng))
    texts.extend(text for _, text in files[bases:])
    return texts, variants


def shingle_set(text: str, n: int = 5) -> set[bytes]:
    """The truth's shingles: char n-grams of the whitespace-normalized text, as bytes."""
    data = " ".join(text.split()).encode()
    return {data[i : i + n] for i in range(max(1, len(data) - n + 1))}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b)


def cluster_pairs(labels: list[int]) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = {}
    for doc, label in enumerate(labels):
        members.setdefault(int(label), []).append(doc)
    return {pair for docs in members.values() for pair in combinations(sorted(docs), 2)}


def components(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """Union-find labels (the smallest doc of each component)."""
    parent = list(range(count))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(count)]


def datasketch_clusters(texts: list[str], config: DedupConfig) -> list[int]:
    """datasketch's documented path with our bands and rows (its strongest setting here):
    MinHash.bulk, an insertion session, a query per doc; then exact Jaccard of the same
    shingle sets and connected components, as ours does after its LSH."""
    shingles = [shingle_set(t, config.ngram) for t in texts]
    minhashes = MinHash.bulk([list(s) for s in shingles], num_perm=config.num_perm,
                             seed=config.seed, scheme="affine32")  # fmt: skip
    weights = (1 - config.false_negative_weight, config.false_negative_weight)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, weights=weights)
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m)
    candidates = {tuple(sorted((i, j))) for i, m in enumerate(minhashes)
                  for j in lsh.query(m) if i != j}  # fmt: skip
    verified = [(i, j) for i, j in candidates
                if jaccard(shingles[i], shingles[j]) >= config.threshold]  # fmt: skip
    return components(len(texts), verified)


def ours_clusters(texts: list[str], config: DedupConfig) -> list[int]:
    return near_duplicate_clusters(texts, config, ["python"] * len(texts)).labels.tolist()


OURS = {  # label -> config changes from DedupConfig's defaults
    "ours, whole text (licence counted)": {"strip_license_header": False},
    "ours, default (licence header ignored)": {},
    "ours, default, verify = estimate": {"verify": "estimate"},
    "ours, without comments": {"strip_comments": True},
}


def scores(predicted: set[tuple[int, int]], positives: set[tuple[int, int]]) -> tuple[float, ...]:
    """Precision, recall and F1."""
    tp = len(predicted & positives)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(positives) if positives else 0.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def accuracy(texts: list[str], variants: list[tuple[int, int, str]], threshold: float) -> None:
    config = DedupConfig(threshold=threshold)
    predicted = {"datasketch LSH + exact verify + components": cluster_pairs(
        datasketch_clusters(texts, config))}  # fmt: skip
    for label, changes in OURS.items():
        predicted[label] = cluster_pairs(ours_clusters(texts, config.model_copy(update=changes)))
    families: dict[int, list[int]] = {}
    for base, variant, _ in variants:
        families.setdefault(base, [base]).append(variant)
    kinds = {(b, v): k for b, v, k in variants}
    universe = {p for fam in families.values() for p in combinations(sorted(fam), 2)}
    universe = universe.union(*predicted.values())
    # The truth ignores the licence header this benchmark planted (it is no part of the
    # copied code); the second truth counts it, as the benchmark did before.
    blind = [shingle_set(t.removeprefix(LICENCE)) for t in texts]
    counted = [shingle_set(t) for t in texts]
    positives = {p for p in universe if jaccard(blind[p[0]], blind[p[1]]) >= threshold}
    counting = {p for p in universe if jaccard(counted[p[0]], counted[p[1]]) >= threshold}
    print(f"\naccuracy at threshold {threshold}: {len(texts)} docs, {len(positives)} true pairs "
          f"({len(counting)} when the planted licence counts); bands x rows "
          f"{config.lsh()[0]} x {config.lsh()[1]}")  # fmt: skip
    print(f"{'method':<44}{'precision':>10}{'recall':>7}{'F1':>7}{'F1 licence counted':>20}"
          "   family recall: " + " ".join(f"{k[:8]:>8}" for k in EDITS))  # fmt: skip
    for label, pairs in predicted.items():
        p, r, f1 = scores(pairs, positives)
        found = {k: [pair in pairs for pair, kind in kinds.items() if kind == k] for k in EDITS}
        per_kind = " ".join(f"{sum(v) / len(v):>8.3f}" for v in found.values())
        print(f"{label:<44}{p:>10.3f}{r:>7.3f}{f1:>7.3f}{scores(pairs, counting)[2]:>20.3f}"
              f"                  {per_kind}")  # fmt: skip


# --- 2. precision of the drops on real code ---------------------------------------------

REAL_CONFIGS = {  # label -> config changes from DedupConfig's defaults
    "default (licence header ignored)": {},
    "whole text (licence counted, before)": {"strip_license_header": False},
    "without comments": {"strip_comments": True},
}


def real_records(roots: list[Root]) -> pl.DataFrame:
    """The roots' files as records that passed the filters stage's defaults."""
    rows = [{"kind": "code", "source": "real", "path": file_id, "content": text,
             "language": language_from_name(file_id)}
            for root in roots for file_id, text in root_files(root)]  # fmt: skip
    batches = FilterStage(FilterConfig()).run(finish_records(rows).lazy(), StageContext(None, "f"))
    return pl.concat(batches).filter(pl.col("filter_reason").is_null())


def drops(records: pl.DataFrame, config: DedupConfig) -> list[tuple[str, str]]:
    """(dropped path, kept path) of each near_duplicate drop of the dedup stage."""
    out = pl.concat(DedupStage(config).run(records.lazy(), StageContext(None, "d")))
    kept = out.filter(pl.col("is_cluster_rep")).select("cluster_id", kept="path")
    dropped = out.filter(pl.col("filter_reason") == "near_duplicate")
    return dropped.join(kept, on="cluster_id").select("path", "kept").sort("path").rows()


def read_labels() -> dict[frozenset[str], dict]:
    labels = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    return {frozenset((label["kept"], label["dropped"])): label for label in labels}


def real_precision(roots: list[Root], unlabelled_out: Path | None) -> None:
    missing = [root.name for root in roots if root.version is None]
    roots = [root for root in roots if root.version is not None]
    records = real_records(roots)
    labels = read_labels()
    print(f"\nprecision on real code: {records.height} files after filters from "
          f"{len(roots)} roots ({', '.join(f'{r.name}=={r.version}' for r in roots)})"
          + (f"; not installed here: {', '.join(missing)}" if missing else ""))  # fmt: skip
    print(f"judged against {LABELS.relative_to(HERE.parent)} ({len(labels)} labelled pairs)")
    print(f"{'configuration':<40}{'drops':>7}{'true':>6}{'false':>7}{'unlabelled':>12}"
          f"{'share true':>12}")  # fmt: skip
    unlabelled: dict[frozenset[str], tuple[str, str]] = {}
    false_drops: dict[str, list[str]] = {}
    for name, changes in REAL_CONFIGS.items():
        pairs = drops(records, DedupConfig().model_copy(update=changes))
        verdicts = [labels.get(frozenset(pair), {}).get("verdict") for pair in pairs]
        true, false = verdicts.count("duplicate"), verdicts.count("distinct")
        for pair, verdict in zip(pairs, verdicts, strict=True):
            if verdict is None:
                unlabelled[frozenset(pair)] = pair
            elif verdict == "distinct":
                false_drops.setdefault(name, []).append(f"{pair[0]}  (kept {pair[1]})")
        share = f"{true / (true + false):.3f}" if true + false else "-"
        print(f"{name:<40}{len(pairs):>7}{true:>6}{false:>7}{len(pairs) - true - false:>12}"
              f"{share:>12}")  # fmt: skip
    for name, lines in false_drops.items():
        print(f"false drops, {name}: {len(lines)}")
        for line in lines[:8]:
            print(f"   {line}")
        if len(lines) > 8:
            print(f"   ... and {len(lines) - 8} more")
    if unlabelled:
        print(f"{len(unlabelled)} drops have no label (label them: --unlabelled FILE):")
        for dropped, kept in list(unlabelled.values())[:10]:
            print(f"   {dropped}  (kept {kept})")
    if unlabelled_out is not None:
        lines = [json.dumps({"kept": kept, "dropped": dropped, "verdict": None, "note": "",
                             "labelled_by": ""})
                 for dropped, kept in unlabelled.values()]  # fmt: skip
        unlabelled_out.write_text("".join(line + "\n" for line in lines))
        print(f"wrote {len(lines)} label lines to fill in to {unlabelled_out}")


# --- 3. speed, 4. memory ----------------------------------------------------------------


def speed(texts: list[str], repeat: int) -> None:
    """Median seconds of `repeat` runs each, same texts, baseline first."""
    config = DedupConfig()
    methods = {
        "datasketch bulk + LSH + exact verify + components": lambda: datasketch_clusters(
            texts, config
        ),
        "ours (default config)": lambda: ours_clusters(texts, config),
    }
    seconds = {}
    for label, run in methods.items():
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        seconds[label] = statistics.median(times)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    baseline = next(iter(seconds.values()))
    print(f"\nspeed, end to end from text, one process: {len(texts)} docs, {mb:.1f} MB, "
          f"median of {repeat} runs each")  # fmt: skip
    for label, s in seconds.items():
        print(f"   {label:<52}{len(texts) / s:>7.0f} docs/s {mb / s:>6.2f} MB/s"
              f"   {baseline / s:>5.2f}x the baseline")  # fmt: skip


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


def memory(texts: list[str], docs: int) -> None:
    """Peak RSS of the dedup stage over `docs` records (<= 4 KB each, cut from `texts`)."""
    root = str(HERE.parent)
    rows = [{"kind": "code", "source": "bench", "path": f"{i}.py", "language": "python",
             "content": texts[i % len(texts)][:4000] + f"\n# copy {i // len(texts)}"}
            for i in range(docs)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "records.parquet")
        # row groups of 1,000 rows, as the runner writes stage files batch by batch
        finish_records(rows).write_parquet(path, row_group_size=1000)
        del rows
        size_mb = Path(path).stat().st_size / 1e6
        out = subprocess.run([sys.executable, "-c", MEMORY_STAGE.format(root=root, path=path)],
                             capture_output=True, text=True, check=True)  # fmt: skip
    peak, before, seconds = (float(x) for x in out.stdout.split())
    print(f"\nmemory: dedup stage over {docs:,} records (<= 4 KB each, {size_mb:.0f} MB Parquet): "
          f"peak RSS {peak:.0f} MB, {before:.0f} MB of it imports; {seconds:.0f} s, "
          f"{docs / seconds:.0f} docs/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pin", action="store_true", help="rewrite the pinned corpus and stop")
    parser.add_argument("--bases", type=int, default=300)
    parser.add_argument("--skip", default="", help="comma-separated: accuracy,real,speed,memory")
    parser.add_argument("--roots", default="", help="real-code roots to use (default: all)")
    parser.add_argument("--unlabelled", type=Path, help="write unlabelled drops here")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-docs", type=int, default=100_000)
    args = parser.parse_args()
    if args.pin:
        pin()
        return
    skip = set(filter(None, args.skip.split(",")))
    texts, variants = build(pinned_texts(), args.bases)
    if "accuracy" not in skip:
        for threshold in (0.7, 0.85):
            accuracy(texts, variants, threshold)
    if "real" not in skip:
        wanted = set(filter(None, args.roots.split(",")))
        roots = [root for root in real_roots() if not wanted or root.name in wanted]
        real_precision(roots, args.unlabelled)
    if "speed" not in skip:
        speed(texts, args.repeat)
    if "memory" not in skip:
        memory(texts, args.memory_docs)


if __name__ == "__main__":
    main()
