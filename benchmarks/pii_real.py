"""The PII stage on real code nobody here wrote: precision per entity type against labels
kept in the repo, recall on the labelled sets, and speed per core against a baseline.

The corpus is what every machine with the project has: packages installed in the venv
(pinned by pyproject.toml), the interpreter's standard library, OpenSSL's and Python's C
headers in /usr/include and Arrow's headers bundled with pyarrow. Each finding is keyed
by (file, line, type, sha256 of the span) and scored against
`benchmarks/labels/pii_real.jsonl` (verdict `pii` or `not_pii`, who labelled it). Findings
without a label are counted and can be printed to label more (`--sample`).

    .venv/bin/python benchmarks/pii_real.py                 # precision, recall, speed
    .venv/bin/python benchmarks/pii_real.py --sample 20     # unlabelled findings to label
    .venv/bin/python benchmarks/pii_real.py --baseline main # speed of another revision too

Precision counts labelled findings only; "recall on real code" is the share of the spans
labelled `pii` (from any run, this engine's or an earlier one's) that this run finds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "benchmarks" / "labels" / "pii_real.jsonl"
SITE = Path(sysconfig.get_paths()["purelib"])
PACKAGES = ("requests", "rich", "click", "fastapi", "starlette", "networkx", "markdown",
            "jinja2", "uvicorn")  # fmt: skip
MAX_BYTES = 1_000_000


def corpus_roots() -> dict[str, Path]:
    """Corpus label -> folder. Labels carry the package version, so a label file written
    against one version does not silently score another."""
    roots = {f"{name}=={version(name)}": SITE / name for name in PACKAGES}
    roots[f"arrow-headers=={version('pyarrow')}"] = SITE / "pyarrow" / "include" / "arrow"
    roots["usr-include/openssl"] = Path("/usr/include/openssl")
    roots["usr-include/python3.11"] = Path("/usr/include/python3.11")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    roots[f"stdlib=={sys.version.split()[0]}"] = stdlib
    return {label: path for label, path in roots.items() if path.is_dir()}


def corpus() -> list[tuple[str, str, str]]:
    """(file key, text, language) of every source file of a known language."""
    from curation.languages import language_from_name

    files = []
    for label, root in corpus_roots().items():
        for path in sorted(root.rglob("*")):
            skip = {"site-packages", "test", "tests", "idlelib", "__pycache__"}
            if label.startswith("stdlib") and skip & set(path.relative_to(root).parts):
                continue
            language = language_from_name(path.name)
            if language is None or not path.is_file() or path.stat().st_size > MAX_BYTES:
                continue
            text = path.read_bytes().decode("utf-8", errors="replace")
            files.append((f"{label}/{path.relative_to(root).as_posix()}", text, language))
    return files


def span_key(file: str, text: str, start: int, end: int, kind: str) -> tuple:
    line = text.count("\n", 0, start) + 1
    digest = hashlib.sha256(text[start:end].encode()).hexdigest()[:16]
    return file, line, kind, digest


def analyze(files: list[tuple[str, str, str]], batch: int = 64) -> tuple[list, float]:
    """Every finding as (key, start, end, text index), and the CPU seconds it took (per
    core, and steady when other processes share the machine, unlike wall time)."""
    from curation.pii import PIIConfig, load_engine

    engine = load_engine(PIIConfig(workers=1))
    engine.analyze([files[0][1]], [files[0][2]])  # warm: the first call compiles patterns
    found = []
    started = time.process_time()
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        results = engine.analyze([t for _, t, _ in chunk], [lang for _, _, lang in chunk])
        for offset, (file_findings, (name, text, _)) in enumerate(zip(results, chunk, strict=True)):
            for f in file_findings:
                found.append((span_key(name, text, f.start, f.end, f.type), f.start, f.end,
                              i + offset))  # fmt: skip
    return found, time.process_time() - started


def read_labels() -> dict[tuple, dict]:
    if not LABELS.exists():
        return {}
    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    return {(r["file"], r["line"], r["type"], r["span_sha256"]): r for r in rows}


def precision_table(found: list, labels: dict[tuple, dict]) -> None:
    by_type: dict[str, Counter] = defaultdict(Counter)
    for key, *_ in found:
        label = labels.get(key)
        by_type[key[2]]["found"] += 1
        if label is None:
            by_type[key[2]]["unlabelled"] += 1
        else:
            by_type[key[2]][label["verdict"]] += 1
    found_keys = {key for key, *_ in found}
    true_labels = Counter(k[2] for k, r in labels.items() if r["verdict"] == "pii")
    true_found = Counter(k[2] for k, r in labels.items()
                         if r["verdict"] == "pii" and k in found_keys)  # fmt: skip
    print(f"\nreal code: precision per type (labels: {LABELS.relative_to(ROOT)}, {len(labels)})")
    print(f"{'type':<15}{'found':>7}{'labelled':>10}{'pii':>6}{'not':>6}{'precision':>11}"
          f"{'recall*':>9}")  # fmt: skip
    for kind in sorted(set(by_type) | set(true_labels)):
        c = by_type[kind]
        labelled = c["pii"] + c["not_pii"]
        precision = f"{c['pii'] / labelled:.3f}" if labelled else "-"
        recall = f"{true_found[kind] / true_labels[kind]:.3f}" if true_labels[kind] else "-"
        print(f"{kind:<15}{c['found']:>7}{labelled:>10}{c['pii']:>6}{c['not_pii']:>6}"
              f"{precision:>11}{recall:>9}")  # fmt: skip
    print("* share of the spans labelled pii (by any run) that this run finds")


def print_sample(found: list, files: list, labels: dict, n: int, seed: int) -> None:
    """Unlabelled findings with their line, n per type, for a person to label."""
    pending: dict[str, list] = defaultdict(list)
    for item in found:
        if item[0] not in labels:
            pending[item[0][2]].append(item)
    rng = random.Random(seed)
    for kind, items in sorted(pending.items()):
        print(f"\n== {kind}: {len(items)} unlabelled")
        for key, start, end, index in rng.sample(items, min(n, len(items))):
            text = files[index][1]
            line_start = text.rfind("\n", 0, start) + 1
            line_end = text.find("\n", end)
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            print(json.dumps({"file": key[0], "line": key[1], "type": kind,
                              "span_sha256": key[3], "value": text[start:end],
                              "context": line.strip()[:200]}, ensure_ascii=False))  # fmt: skip


def speed_here(files: list, repeats: int) -> dict[str, list[float]]:
    """MB per CPU second of one process over the corpus, per repetition: of the engine's
    analysis alone, and of the stage's batch function (analysis, redaction, paths, the
    Polars columns), which is what each worker of the stage runs."""
    megabytes = sum(len(t.encode()) for _, t, _ in files) / 1e6
    return {
        "engine": [megabytes / analyze(files)[1] for _ in range(repeats)],
        "stage": [megabytes / stage_seconds(files) for _ in range(repeats)],
    }


def stage_seconds(files: list, batch: int = 64) -> float:
    """CPU seconds of the pii stage's batch function over the corpus as code records."""
    import polars as pl

    from curation.pii import PIIConfig
    from curation.pii.stage import RedactBatch

    records = pl.DataFrame(
        {"kind": "code", "path": [name for name, _, _ in files],
         "language": [lang for _, _, lang in files], "content": [t for _, t, _ in files],
         "instruction": pl.Series([None] * len(files), dtype=pl.String)}
    )  # fmt: skip
    redact = RedactBatch(PIIConfig(workers=1))
    redact.setup()
    redact(records.head(1))  # warm, as in `analyze`
    started = time.process_time()
    for offset in range(0, records.height, batch):
        redact(records.slice(offset, batch))
    return time.process_time() - started


def speed_of_revision(revision: str, repeats: int) -> dict[str, list[float]]:
    """The same measurement with the `curation` package of another git revision."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "curation"],
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        done = subprocess.run(
            [sys.executable, __file__, "--speed-only", "--repeats", str(repeats)],
            env=env, check=True, capture_output=True, text=True, cwd=tmp,
        )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def labelled_sets(eval_dir: Path) -> None:
    """Recall on the labelled prose set and the secrets set (benchmarks/pii.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import pii as labelled  # benchmarks/pii.py

    from curation.pii import PIIConfig, load_engine

    ours = load_engine(PIIConfig(workers=1))
    labelled.labelled_pii(eval_dir, ours, labelled.default_presidio())
    labelled.secrets(eval_dir, ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=0, help="print N unlabelled per type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision whose speed to measure too")
    parser.add_argument("--eval", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--speed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    files = corpus()
    if args.speed_only:
        print(json.dumps(speed_here(files, args.repeats)))
        return
    megabytes = sum(len(t.encode()) for _, t, _ in files) / 1e6
    print(f"corpus: {len(files)} files, {megabytes:.1f} MB from {', '.join(corpus_roots())}")
    found, _ = analyze(files)
    labels = read_labels()
    precision_table(found, labels)
    if args.sample:
        print_sample(found, files, labels, args.sample, args.seed)
        return
    if args.eval.is_dir():
        labelled_sets(args.eval)
    ours = speed_here(files, args.repeats)
    base = speed_of_revision(args.baseline, args.repeats) if args.baseline else None
    print(f"\nspeed per core, {args.repeats} repetitions (MB per CPU second, median [runs])")
    for part, speeds in ours.items():
        line = f"  {part:<7} {statistics.median(speeds):6.2f}  {[round(s, 2) for s in speeds]}"
        if base is not None:
            ratio = statistics.median(speeds) / statistics.median(base[part])
            runs = [round(s, 2) for s in base[part]]
            line += (f"   baseline {args.baseline}: {statistics.median(base[part]):.2f} {runs}, "
                     f"ours / baseline = {ratio:.2f}x")  # fmt: skip
        print(line)


if __name__ == "__main__":
    main()
