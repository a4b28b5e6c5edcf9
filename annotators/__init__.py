"""Annotators: LLM-written instructions with cost known before, capped during and accounted
after. Landed so far: exact prompt token counts with tiktoken, offline (`tokens.py`)."""

from annotators.tokens import count_tokens, encoding_for_model, install_encodings

__all__ = ["count_tokens", "encoding_for_model", "install_encodings"]
