"""Finetune: reviewed splits released as verified, versioned datasets (`release/`),
QLoRA/LoRA SFT (`train.py`), base vs adapter evaluation (`evaluate.py`), models that install
offline (`models.py`)."""
