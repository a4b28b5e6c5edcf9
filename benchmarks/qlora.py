"""Finetune speed, memory and loss: codecurate's QLoRA path vs plain trl + peft with defaults.

Both train the same base model on the same dataset version's train split for the same number
of steps, in the same process: ours through `finetune.train.train` (on CUDA: 4-bit NF4 with
double quantization, paged AdamW, gradient checkpointing, sequence length from the data,
completion-only loss); the baseline is `SFTTrainer` with default `SFTConfig` and a default
`LoraConfig` on the full-precision model. For each side: tokens/s, peak GPU memory, and the
completion loss on the test split before and after training (the same rows, the same
tokenizer, model in eval mode; "before" is the trained model with its adapter switched off,
which is the base as that side loaded it), with ours as ratios against the baseline.

Meant for a GPU machine; `--model tiny` smoke-tests the script on CPU (a random tiny model):

    .venv/bin/python benchmarks/qlora.py --dataset data/exports/code-instructions/1.0.0 \
        [--model smollm2] [--steps 50]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
# The tiny test model is a test double kept out of the packages, in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def loss_before_and_after(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]]
) -> tuple[float, float]:
    """Mean completion loss per token on `rows` with the adapter off (the base) and on."""
    from finetune.evaluate import completion_loss

    def mean_loss() -> float:
        pairs = [completion_loss(model, tokenizer, row) for row in rows]
        return sum(nll for nll, _ in pairs) / sum(count for _, count in pairs)

    model.eval()
    with model.disable_adapter():
        before = mean_loss()
    return before, mean_loss()


def measured(model: Any, tokenizer: Any, rows: list[dict[str, Any]],
             tokens_per_second: float) -> dict[str, Any]:  # fmt: skip
    """One side's numbers once it has trained: peak memory (read first, so that the loss
    measurement does not count in it), then the test loss before and after."""
    import torch

    peak = torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None
    before, after = loss_before_and_after(model, tokenizer, rows)
    return {"tokens_per_second": tokens_per_second, "peak_gpu_memory_gb": peak,
            "loss_before": before, "loss_after": after}  # fmt: skip


def baseline(folder: Path, model_path: str, steps: int, out: Path, tokenizer: Any,
             rows: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """trl + peft as their docs start: defaults everywhere but the step count."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from finetune.release import load_version

    data = load_version(folder)["train"].select_columns(["messages"])
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model = AutoModelForCausalLM.from_pretrained(model_path)
    args = SFTConfig(output_dir=str(out), max_steps=steps, report_to=[], save_strategy="no",
                     include_num_input_tokens_seen=True, use_cpu=not cuda)  # fmt: skip
    trainer = SFTTrainer(model=model, args=args, train_dataset=data,
                         peft_config=LoraConfig(task_type="CAUSAL_LM"))  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return measured(trainer.model, tokenizer, rows, trainer.state.num_input_tokens_seen / seconds)


def ours(folder: Path, model: str, steps: int, out: Path, tokenizer: Any,
         rows: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    from finetune.train import FinetuneConfig, train

    config = FinetuneConfig(
        model=model, preset="qlora-r64", max_steps=steps, batch_size=8,
        gradient_accumulation=1, logging_steps=10,
    )  # fmt: skip
    trained = train(folder, config, out, str(folder))
    metrics = trained.metrics
    result = measured(trained.model, tokenizer, rows, metrics["tokens_per_second"])
    return result | {"device": metrics["device"], "quantized_4bit": metrics["quantized_4bit"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a version folder")
    parser.add_argument("--model", default="smollm2", help="folder, Hub id, smollm2 or tiny")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from finetune.release import load_version
    from finetune.train import model_path

    splits = load_version(args.dataset)
    if "test" not in splits:
        sys.exit(f"{args.dataset} has no test split to measure the loss on")
    rows = list(splits["test"])
    with tempfile.TemporaryDirectory() as work:
        model = args.model
        if model == "tiny":
            from support.tiny_models import tiny_chat_model

            model = str(tiny_chat_model(Path(work) / "tiny"))
        path = model_path(model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        base = baseline(args.dataset, path, args.steps, Path(work) / "baseline", tokenizer, rows)
        gc.collect()  # the baseline's model must not count in ours' peak memory
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        mine = ours(args.dataset, model, args.steps, Path(work) / "ours", tokenizer, rows)
    print(f"{path}, {args.steps} steps, {mine['device']}, 4-bit: {mine['quantized_4bit']}, "
          f"test loss on {len(rows)} records")  # fmt: skip
    for name, side in (("baseline trl+peft defaults", base), ("codecurate QLoRA path", mine)):
        speed = side["tokens_per_second"] / base["tokens_per_second"]
        loss = side["loss_after"] / base["loss_after"]
        memory = "peak GPU n/a"
        if side["peak_gpu_memory_gb"] is not None:
            ratio = side["peak_gpu_memory_gb"] / base["peak_gpu_memory_gb"]
            memory = f"peak GPU {side['peak_gpu_memory_gb']:.2f} GB ({ratio:.2f}x)"
        print(f"  {name:27} {side['tokens_per_second']:9.0f} tokens/s ({speed:.2f}x)  {memory}"
              f"  test loss {side['loss_before']:.4f} -> {side['loss_after']:.4f}"
              f" ({loss:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
