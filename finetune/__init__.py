"""Finetune: reviewed splits as versioned datasets (`export.py`), QLoRA/LoRA SFT
(`train.py`), base vs adapter evaluation (`evaluate.py`), models that install offline
(`models.py`)."""
