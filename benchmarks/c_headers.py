"""C or C++ for `.h` headers: our content rule against the baselines, on real headers.

Sets: Apache Arrow's C++ headers as pyarrow ships them (pyarrow/include), and the C
headers of OpenSSL and CPython under /usr/include. Truth: a C++ library's headers are C++
and a C library's are C, except the hand-labelled headers in benchmarks/labels/c_headers.csv
(Arrow's C headers, and `neutral` ones that hold only preprocessor lines, right either way).

Methods, measured in the same run: the extension alone (`.h` is C: what ingest did
before), Pygments' `guess_lexer_for_filename` (the library a user would reach for), the
C++ patterns searched in the raw text (no comments or `__cplusplus` guards removed), and
ours (`curation.languages.header_language`).

    .venv/bin/python benchmarks/c_headers.py [--show 10]
"""

from __future__ import annotations

import argparse
import csv
import sysconfig
from collections.abc import Callable
from pathlib import Path

from pygments.lexers import guess_lexer_for_filename

from curation.languages import CPP_SYNTAX, header_language

LABELS = Path(__file__).with_name("labels") / "c_headers.csv"
SETS = {  # name -> (root, the language of its headers unless labelled otherwise)
    "arrow": (Path(sysconfig.get_paths()["purelib"]) / "pyarrow" / "include", "cpp"),
    "openssl": (Path("/usr/include/openssl"), "c"),
    "python": (Path("/usr/include/python3.11"), "c"),
}


def pygments_guess(path: Path, text: str) -> str:
    name = guess_lexer_for_filename(path.name, text).name
    return "cpp" if name == "C++" else "c"


METHODS: dict[str, Callable[[Path, str], str]] = {
    "extension": lambda path, text: "c",
    "pygments": pygments_guess,
    "raw patterns": lambda path, text: "cpp" if CPP_SYNTAX.search(text) else "c",
    "ours": lambda path, text: header_language(text),
}


def read_labels() -> dict[tuple[str, str], str]:
    rows = csv.DictReader(line for line in LABELS.open() if not line.startswith("#"))
    return {(row["set"], row["path"]): row["label"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show", type=int, default=10, help="misclassified headers to list")
    args = parser.parse_args()
    labels = read_labels()
    for name, (root, default) in SETS.items():
        files = sorted(root.rglob("*.h"))
        if not files:
            print(f"{name}: no headers under {root}, skipped")
            continue
        truth = {f: labels.get((name, f.relative_to(root).as_posix()), default) for f in files}
        texts = {f: f.read_text(encoding="utf-8", errors="replace") for f in files}
        neutral = sum(label == "neutral" for label in truth.values())
        print(f"\n{name}: {len(files)} headers ({neutral} neutral), {root}")
        errors = {}
        for method, decide in METHODS.items():
            said = {f: decide(f, texts[f]) for f in files}
            wrong = [f for f in files if truth[f] not in ("neutral", said[f])]
            errors[method] = wrong
            cpp = sum(label == "cpp" for label in said.values())
            accuracy = 1 - len(wrong) / (len(files) - neutral)
            print(f"  {method:13} C++ {cpp:4}  C {len(files) - cpp:4}  wrong {len(wrong):4}  "
                  f"accuracy {accuracy:.3f}")  # fmt: skip
        baselines = {m: len(w) for m, w in errors.items() if m != "ours"}
        best = min(baselines, key=lambda m: baselines[m])
        print(f"  errors, ours / best baseline ({best}): {len(errors['ours'])} / {baselines[best]}")
        for f in errors["ours"][: args.show]:
            print(f"    wrong: {f.relative_to(root)} (labelled {truth[f]})")


if __name__ == "__main__":
    main()
