"""What the trainer is told to do on each device, checked without one: the CUDA branch
(QLoRA) is the one a CPU-only test run would otherwise never build."""

from __future__ import annotations

import pytest

from finetune.train import FinetuneConfig, device_setup

torch = pytest.importorskip("torch")


def test_cuda_loads_nf4_with_double_quant_on_gpu_0_and_trains_with_paged_adamw():
    setup = device_setup(FinetuneConfig(), "cuda", bf16=True)
    quantization = setup.quantization
    assert quantization.load_in_4bit and not quantization.load_in_8bit
    assert quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_use_double_quant is True
    assert quantization.bnb_4bit_compute_dtype == torch.bfloat16
    assert setup.dtype == torch.bfloat16 and setup.bf16 is True
    assert setup.device_map == {"": 0}
    assert setup.optim == "paged_adamw_8bit"
    assert setup.gradient_checkpointing is True


def test_a_gpu_without_bfloat16_computes_in_float32():
    setup = device_setup(FinetuneConfig(), "cuda", bf16=False)
    assert setup.quantization.bnb_4bit_compute_dtype == torch.float32
    assert setup.dtype == torch.float32 and setup.bf16 is False


def test_cuda_without_quantization_loads_full_precision_with_plain_adamw():
    setup = device_setup(FinetuneConfig(quantize="none", gradient_checkpointing=False), "cuda",
                         bf16=True)  # fmt: skip
    assert setup.quantization is None and setup.device_map is None
    assert setup.optim == "adamw_torch" and setup.dtype == torch.bfloat16
    assert setup.gradient_checkpointing is False


def test_cpu_by_default_trains_float32_lora_without_quantization():
    setup = device_setup(FinetuneConfig(), "cpu", bf16=True)
    assert setup.quantization is None and setup.device_map is None
    assert setup.dtype == torch.float32 and setup.bf16 is False
    assert setup.optim == "adamw_torch"


def test_cpu_asked_for_4bit_quantizes_nf4_onto_the_cpu():
    setup = device_setup(FinetuneConfig(quantize="4bit"), "cpu", bf16=False)
    assert setup.quantization.bnb_4bit_quant_type == "nf4"
    assert setup.quantization.bnb_4bit_compute_dtype == torch.float32
    assert setup.device_map == {"": "cpu"}
    assert setup.optim == "adamw_torch"  # paged 8-bit AdamW needs CUDA
