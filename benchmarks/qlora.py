"""Finetune speed and memory: codecurate's QLoRA path vs plain trl + peft with defaults.

Both train the same base model on the same dataset version for the same number of steps,
in the same process: ours through `finetune.train.train` (on CUDA: 4-bit NF4 with double
quantization, paged AdamW, gradient checkpointing, sequence length from the data,
completion-only loss); the baseline is `SFTTrainer` with default `SFTConfig` and a default
`LoraConfig` on the full-precision model. Reported: tokens/s, peak GPU memory, and the test
split's completion loss before and after (ours), as ratios against the baseline.

Meant for a GPU machine; `--model tiny` runs a smoke test of the script on CPU.

    .venv/bin/python benchmarks/qlora.py --dataset data/exports/code-instructions/1.0.0 \
        [--model smollm2] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# The tiny test model is a test double kept out of the packages, in tests/support/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def baseline(folder: Path, model_path: str, steps: int, out: Path) -> dict[str, float | None]:
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
    return {
        "tokens_per_second": trainer.state.num_input_tokens_seen / seconds,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a version folder")
    parser.add_argument("--model", default="smollm2", help="folder, Hub id, smollm2 or tiny")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    from support.tiny_models import tiny_chat_model

    from finetune.evaluate import evaluate
    from finetune.train import FinetuneConfig, model_path, train

    with tempfile.TemporaryDirectory() as work:
        model = args.model
        if model == "tiny":
            model = str(tiny_chat_model(Path(work) / "tiny"))
        path = model_path(model)
        base = baseline(args.dataset, path, args.steps, Path(work) / "baseline")
        config = FinetuneConfig(
            model=model, preset="qlora-r64", max_steps=args.steps, batch_size=8,
            gradient_accumulation=1, logging_steps=10,
        )  # fmt: skip
        ours = train(args.dataset, config, Path(work) / "ours", str(args.dataset)).metrics
        scores = evaluate(args.dataset, Path(work) / "ours", max_new_tokens=64)
    print(f"{path}, {args.steps} steps, {ours['device']}, 4-bit: {ours['quantized_4bit']}")
    print(f"  baseline trl+peft defaults: {base['tokens_per_second']:9.0f} tokens/s"
          f"  peak GPU {base['peak_gpu_memory_gb'] or 0:.2f} GB")  # fmt: skip
    ratio = ours["tokens_per_second"] / base["tokens_per_second"]
    memory = (ours["peak_gpu_memory_gb"] or 0) / (base["peak_gpu_memory_gb"] or 1)
    print(f"  codecurate QLoRA path:      {ours['tokens_per_second']:9.0f} tokens/s ({ratio:.2f}x)"
          f"  peak GPU {ours['peak_gpu_memory_gb'] or 0:.2f} GB ({memory:.2f}x)")  # fmt: skip
    print(f"  test completion loss: base {scores['base']['loss']} -> adapter "
          f"{scores['adapter']['loss']}")  # fmt: skip


if __name__ == "__main__":
    main()
