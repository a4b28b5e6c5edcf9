"""Base model vs adapter on a dataset version's test split.

Per model: loss and perplexity on the completion tokens; greedy generations scored by
exact match and chrF (sacrebleu) against the reviewed completion; for Python, the share of
generations that parse; for SQL and Cypher with a fixture, execution accuracy (the generated
query returns what the reference returns). The base numbers come from the same weights with
the adapter switched off, so the comparison isolates what training changed.
"""

from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from curation.errors import CurateError
from finetune.release.pull import load_version

_FENCE = re.compile(r"```[\w+-]*\n(.*?)(?:```|$)", re.DOTALL)
_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_INNERMOST_PARENS = re.compile(r"\([^()]*\)")
_ORDER_BY = re.compile(r"\bORDER\s+BY\b", re.IGNORECASE)
_LAST_RETURN = re.compile(r".*\bRETURN\b", re.IGNORECASE | re.DOTALL)
# Not computed: codebleu 0.7.0 (the PyPI package) requires tree-sitter<0.23, and the verify
# stage's grammars (tree-sitter-language-pack 0.13) need tree-sitter 0.26; they cannot share
# an environment.
CODEBLEU_SKIPPED = "codebleu 0.7.0 requires tree-sitter<0.23; the [verify] extra pins 0.26"


class QueryExecutor(Protocol):
    """Runs a query against the fixture of its language: its rows, or None when it fails
    (codecurate builds one from `[verify]`: finetune does not import the verify stage)."""

    languages: frozenset[str]

    def __call__(self, language: str, query: str) -> list[list[Any]] | None: ...


def orders_rows(query: str, language: str) -> bool:
    """Whether the query's result has a defined row order: an ORDER BY in its outermost
    query (SQL; not one inside a subquery or a string) or after its last RETURN (Cypher)."""
    text = _STRING.sub("''", query)
    while _INNERMOST_PARENS.search(text):
        text = _INNERMOST_PARENS.sub(" ", text)
    if language == "cypher":
        text = _LAST_RETURN.sub("", text)
    return bool(_ORDER_BY.search(text))


def _canonical(row: Sequence[Any]) -> str:
    """A row as a comparable key; floats rounded, so that summation order does not count."""

    def plain(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return json.dumps(plain(list(row)), sort_keys=True, default=str)


def same_results(reference: Sequence[Sequence[Any]], generated: Sequence[Sequence[Any]],
                 ordered: bool) -> bool:  # fmt: skip
    """Equal as lists when the reference orders its rows, else as multisets (duplicates
    count: `[1, 1, 2]` is not `[1, 2]`)."""
    ref, gen = [_canonical(r) for r in reference], [_canonical(r) for r in generated]
    return ref == gen if ordered else Counter(ref) == Counter(gen)


def executes_alike(reference: str, generated: str, language: str,
                   execute: QueryExecutor) -> bool | None:  # fmt: skip
    """Whether the generated query returns the reference's result; None when the reference
    itself does not run (the pair cannot judge the model)."""
    expected = execute(language, reference)
    if expected is None:
        return None
    found = execute(language, generated)
    return found is not None and same_results(expected, found, orders_rows(reference, language))


def code_of(text: str) -> str:
    """The code in a generation: its first fenced block, or all of it."""
    match = _FENCE.search(text)
    return (match.group(1) if match else text).strip()


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def doctests_pass(code: str, timeout_s: float = 10) -> bool | None:
    """Run the code's doctests in a separate interpreter; None when it has none."""
    if ">>>" not in code or not parses(code):
        return None
    script = (  # the generated text becomes a module whose doctests testmod runs
        "import doctest, sys, types\nmod = types.ModuleType('generated')\n"
        "exec(compile(sys.stdin.read(), 'generated', 'exec'), mod.__dict__)\n"
        "sys.exit(1 if doctest.testmod(mod).failed else 0)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-I", "-c", script], input=code, text=True,
                              capture_output=True, timeout=timeout_s)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def completion_loss(model: Any, tokenizer: Any, row: dict[str, Any]) -> tuple[float, int]:
    """Summed negative log-likelihood of the completion tokens, and how many there are."""
    import torch

    prompt = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=True, return_dict=False,
                                           add_generation_prompt=True)  # fmt: skip
    full = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=False)
    ids = torch.tensor([full], device=model.device)
    labels = ids.clone()
    labels[0, : len(prompt)] = -100
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss.item()
    count = len(full) - len(prompt)
    return loss * count, count


def generate(model: Any, tokenizer: Any, row: dict[str, Any], max_new_tokens: int) -> str:
    import torch

    prompt = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=True, return_dict=False,
                                           add_generation_prompt=True)  # fmt: skip
    ids = torch.tensor([prompt], device=model.device)
    with torch.no_grad():
        pad = tokenizer.pad_token_id or tokenizer.eos_token_id
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )
    return tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True)


def score(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_new_tokens: int,
    execute: QueryExecutor | None = None,
) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """Loss, perplexity, exact match, chrF, Python parse and doctest rates, and execution
    accuracy over `rows`, and the generations."""
    from sacrebleu.metrics import CHRF

    nll, tokens = 0.0, 0
    generations, references, python_ok, python_total = [], [], 0, 0
    raw: list[str] = []
    doctests: list[bool] = []
    executed: list[bool] = []
    for row in rows:
        loss, count = completion_loss(model, tokenizer, row)
        nll, tokens = nll + loss, tokens + count
        reference = row["messages"][-1]["content"]
        generated = generate(model, tokenizer, row, max_new_tokens)
        raw.append(generated)
        generations.append(code_of(generated))
        references.append(code_of(reference))
        if row.get("language") == "python":
            python_total += 1
            python_ok += parses(code_of(generated))
            result = doctests_pass(code_of(generated))
            if result is not None:
                doctests.append(result)
        language = row.get("language")
        if execute is not None and language in execute.languages:
            alike = executes_alike(code_of(reference), code_of(generated), language, execute)
            if alike is not None:
                executed.append(alike)
    mean = nll / tokens if tokens else float("nan")
    exact = sum(g == r for g, r in zip(generations, references, strict=True))
    scores = {
        "loss": round(mean, 4),
        "perplexity": round(math.exp(mean), 2) if tokens else None,
        "exact_match": round(exact / len(rows), 4) if rows else None,
        "chrf": round(CHRF().corpus_score(generations, [references]).score, 2) if rows else None,
        "python_parse_rate": round(python_ok / python_total, 4) if python_total else None,
        # of the generations that carry doctests: how many pass (None: none had any)
        "doctest_pass_rate": round(sum(doctests) / len(doctests), 4) if doctests else None,
        # of the SQL/Cypher pairs whose reference runs on the fixture: results that match
        "execution_accuracy": round(sum(executed) / len(executed), 4) if executed else None,
        "execution_judged": len(executed),
    }
    return scores, raw


def evaluate(
    dataset_folder: Path, adapter: Path, out: Path | None = None, max_new_tokens: int = 128,
    limit: int | None = None, execute: QueryExecutor | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Scores of the base model and of the adapter on the test split, written to `out`
    (default: <adapter>/eval_metrics.json); the generations, for reading or for a judge, to
    <adapter>/generations.jsonl. `execute` runs SQL/Cypher for execution accuracy."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((adapter / "adapter_config.json").read_text())
    base_path = config["base_model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(base_path)
    model = PeftModel.from_pretrained(base, adapter).eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    splits = load_version(dataset_folder)
    if "test" not in splits:
        raise CurateError(f"{dataset_folder} has no test split to evaluate on")
    rows = list(splits["test"])[:limit]
    with model.disable_adapter():
        base_scores, base_texts = score(model, tokenizer, rows, max_new_tokens, execute)
    adapter_scores, adapter_texts = score(model, tokenizer, rows, max_new_tokens, execute)
    with (adapter / "generations.jsonl").open("w") as f:
        for row, base_text, adapter_text in zip(rows, base_texts, adapter_texts, strict=True):
            f.write(json.dumps({"id": row["id"], "instruction": row["messages"][0]["content"],
                                "reference": row["messages"][-1]["content"],
                                "base": base_text, "adapter": adapter_text}) + "\n")  # fmt: skip
    metrics = {"dataset": str(dataset_folder), "adapter_path": str(adapter),
               "base_model": base_path, "records": len(rows), "max_new_tokens": max_new_tokens,
               "base": base_scores, "adapter": adapter_scores,
               "execution_fixtures": sorted(execute.languages) if execute else [],
               "codebleu": {"skipped": CODEBLEU_SKIPPED}}  # fmt: skip
    path = out or adapter / "eval_metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
