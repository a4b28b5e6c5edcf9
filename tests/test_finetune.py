"""LoRA and 4-bit QLoRA on CPU with a tiny model built offline; evaluation against the base.
The CUDA branch builds its settings in `device_setup` (test_finetune_device.py checks them);
`benchmarks/qlora.py` runs the whole path on a GPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from support.tiny_models import tiny_chat_model

from curation.sources.common import finish_records
from finetune.release import ExportConfig, export
from finetune.train import FinetuneConfig, choose_max_length, train

pytestmark = pytest.mark.slow
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n = 40
    rows = [{"kind": "code", "source": "repo", "path": f"m{i}.py", "language": "python",
             "content": f"def add_{i}(x):\n    return x + {i}\n"} for i in range(n)]  # fmt: skip
    number = pl.int_range(n)
    records = finish_records(rows).with_columns(
        content_clean=pl.col("content"), task=pl.lit("instruction_for_code"),
        instruction=pl.format("Write add_{}(x), which adds {} to x.", number, number),
        annotator=pl.lit("offline:docstring"), cost_usd=pl.lit(0.0),
        review_status=pl.lit("accepted"),
    ).with_columns(final_instruction=pl.col("instruction"))  # fmt: skip
    root = tmp_path_factory.mktemp("exports")
    return export(records, ExportConfig(root=root), {"sources": []}).folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_chat_model(tmp_path_factory.mktemp("models") / "tiny")


def settings(tiny: Path, **overrides: object) -> FinetuneConfig:
    base = {"model": str(tiny), "preset": None, "r": 8, "alpha": 16, "max_steps": 24,
            "learning_rate": 1e-2, "batch_size": 4, "gradient_accumulation": 1,
            "gradient_checkpointing": False, "logging_steps": 4,
            "target": "attention+mlp"}  # fmt: skip
    return FinetuneConfig(**(base | overrides))


def test_lora_loss_falls_and_the_adapter_reloads_with_identical_logits(version, tiny, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trained = train(version, settings(tiny), tmp_path, "code-instructions@1.0.0")
    losses = trained.metrics["loss_history"]
    assert len(losses) >= 4 and losses[-1] < losses[0]
    written = {p.name for p in tmp_path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md",
            "training_config.json", "train_metrics.json"} <= written  # fmt: skip
    assert trained.metrics["tokens_per_second"] > 0 and trained.metrics["max_length"] == 64
    ids = torch.tensor([[1, 42, 99, 7, 300]])
    trained.model.eval()
    with torch.no_grad():
        before = trained.model(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), tmp_path)
        after = reloaded.eval()(input_ids=ids).logits
    assert torch.allclose(before, after, atol=1e-5)


def test_qlora_trains_4bit_nf4_on_cpu(version, tiny, tmp_path):
    trained = train(version, settings(tiny, quantize="4bit", max_steps=8), tmp_path, "v@1.0.0")
    assert trained.metrics["quantized_4bit"] is True
    weight = trained.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    assert type(weight).__name__ == "Params4bit" and weight.quant_type == "nf4"
    assert all(loss == loss for loss in trained.metrics["loss_history"])  # no NaN
    assert (tmp_path / "adapter_model.safetensors").exists()


def test_evaluation_writes_base_and_adapter_metrics(version, tiny, tmp_path):
    from finetune.evaluate import evaluate

    train(version, settings(tiny, merge=True), tmp_path, "code-instructions@1.0.0")
    assert (tmp_path / "merged" / "model.safetensors").exists()  # the base with the adapter in
    metrics = evaluate(version, tmp_path, max_new_tokens=16)
    written = json.loads((tmp_path / "eval_metrics.json").read_text())
    assert written == metrics and metrics["records"] >= 1
    for scores in (metrics["base"], metrics["adapter"]):
        assert set(scores) == {"loss", "perplexity", "exact_match", "chrf", "python_parse_rate",
                               "doctest_pass_rate", "execution_accuracy",
                               "execution_judged"}  # fmt: skip
    # training on this data lowers the loss on its held-out split
    assert metrics["adapter"]["loss"] < metrics["base"]["loss"]


def test_sequence_length_follows_the_token_lengths():
    config = FinetuneConfig()
    assert choose_max_length([10] * 95 + [5000] * 5, config) == 64
    assert choose_max_length([300] * 100, config) == 320
    assert choose_max_length([9000] * 100, config) == 2048
    assert choose_max_length([9000], FinetuneConfig(max_length=128)) == 128
    assert FinetuneConfig(preset="qlora-r64").resolved().r == 64
    assert FinetuneConfig(preset="qlora-r64", r=8).resolved().r == 8


def test_doctests_of_generated_code_are_run_in_a_separate_interpreter():
    from finetune.evaluate import doctests_pass

    good = 'def add(a, b):\n    """\n    >>> add(2, 3)\n    5\n    """\n    return a + b\n'
    assert doctests_pass(good) is True
    assert doctests_pass(good.replace("a + b", "a - b")) is False
    assert doctests_pass("def f():\n    return 1\n") is None
    assert doctests_pass("while True:\n    pass\n>>> 1\n") is None  # does not parse
