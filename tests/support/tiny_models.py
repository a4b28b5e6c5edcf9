"""A tiny model for tests and smoke runs: a test double, so it lives outside the packages
and never ships in the wheel. Benchmarks import it by putting tests/ on sys.path."""

from __future__ import annotations

from pathlib import Path

from finetune.models import smollm2_folder


def tiny_chat_model(folder: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised Llama of ~3M parameters with SmolLM2's tokenizer and chat
    template: for tests and smoke runs of the training path on CPU, built offline."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
