"""Annotators: LLM-written instructions with cost known before, capped during and accounted
after. The stage is `stage.AnnotateStage`; providers in `providers/`, the runner (budget,
rate limits, retries, cache, batch APIs) in `runner.py`, the ledger in `ledger.py`, cost
estimates in `estimate.py`, reports in `report.py`. Kept light here: the providers import
this package's config."""

from annotators.tokens import count_tokens, encoding_for_model, install_encodings

__all__ = ["count_tokens", "encoding_for_model", "install_encodings"]
