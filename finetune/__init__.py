"""Finetune: export reviewed splits as versioned datasets, QLoRA SFT, evaluation.
Landed so far: small chat models that install offline (`models.py`)."""
