"""The language of a text without a name (what stdin gets): our content rule against the
baselines, on real snippets whose language their origin tells.

- python: 8 lines from each `def` of requests, rich, click, jinja2 and markdown (the venv)
- shell: 8 consecutive non-blank lines of the sh/bash scripts in /usr/bin, `#!` line removed
- prose: paragraphs of the package descriptions in the venv's METADATA files (markup,
  lists, tables and code blocks left out)

Methods, measured in the same run: everything is prose (what stdin got before), Pygments'
`guess_lexer`, and ours (`curation.languages.language_from_content`). Reading prose as code
is the costly mistake: the PII stage then looks for names only in comments and strings.

    .venv/bin/python benchmarks/text_language.py [--per-class 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import re
import sysconfig
from collections import Counter
from pathlib import Path

from pygments.lexers import guess_lexer
from pygments.util import ClassNotFound

from curation.languages import language_from_content

SITE = Path(sysconfig.get_paths()["purelib"])
PACKAGES = ("requests", "rich", "click", "jinja2", "markdown")
WINDOW = 8
PYGMENTS = {"Python": "python", "Python 2.x": "python", "Bash": "shell", "Shell Session": "shell",
            "SQL": "sql", "C": "c", "C++": "c", "JavaScript": "c"}  # fmt: skip


def python_snippets() -> list[str]:
    snippets = []
    for package in PACKAGES:
        for file in sorted((SITE / package).rglob("*.py")):
            lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
            for index, line in enumerate(lines):
                if re.match(r"\s*def \w", line):
                    snippets.append("\n".join(lines[index : index + WINDOW]) + "\n")
    return snippets


def shell_snippets() -> list[str]:
    snippets = []
    for file in sorted(Path("/usr/bin").iterdir()):
        try:
            head = file.open("rb").read(64)
        except OSError:
            continue
        if not re.match(rb"#! ?/(usr/)?bin/(env )?(ba)?sh\b", head):
            continue
        lines = [line for line in file.read_text(errors="replace").splitlines()[1:] if line.strip()]
        snippets += ["\n".join(lines[i : i + WINDOW]) + "\n" for i in range(0, len(lines), WINDOW)]
    return snippets


def prose_paragraphs() -> list[str]:
    paragraphs = []
    for metadata in sorted(SITE.glob("*.dist-info/METADATA")):
        description = metadata.read_text(errors="replace").split("\n\n", 1)[-1]
        description = re.sub(r"```.*?```", "", description, flags=re.S)
        for block in description.split("\n\n"):
            text = block.strip("\n")
            if len(text.split()) < 15 or re.match(r"\s|[#*|>`.:=\-\[<!]|\d+\.", text):
                continue
            paragraphs.append(text + "\n")
    return paragraphs


def pygments_guess(text: str) -> str | None:
    try:
        return PYGMENTS.get(guess_lexer(text).name)
    except ClassNotFound:
        return None


METHODS = {
    "all prose": lambda text: None,
    "pygments": pygments_guess,
    "ours": language_from_content,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    classes = {"python": python_snippets(), "shell": shell_snippets(), None: prose_paragraphs()}
    samples = {
        label: rng.sample(texts, min(args.per_class, len(texts)))
        for label, texts in classes.items()
    }
    print(f"{'method':10} " + "  ".join(f"{label or 'prose'!s:>8}" for label in samples)
          + "   prose read as code")  # fmt: skip
    for method, decide in METHODS.items():
        right, prose_as_code = [], 0
        for label, texts in samples.items():
            said = [decide(text) for text in texts]
            right.append(sum(s == label for s in said) / len(texts))
            if label is None:
                prose_as_code = sum(s is not None for s in said)
                wrong = Counter(s for s in said if s is not None)
        print(f"{method:10} " + "  ".join(f"{r:8.3f}" for r in right)
              + f"   {prose_as_code}/{len(samples[None])} {dict(wrong)}")  # fmt: skip


if __name__ == "__main__":
    main()
