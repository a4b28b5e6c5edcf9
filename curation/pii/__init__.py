"""PII stage: Presidio made fit for code and issues.

Cheap pattern recognizers (emails, IPs that are not versions, cards, secrets, home-dir
logins) run over whole files; NER, phones, SSNs and @mentions only over comments,
docstrings, strings and issue prose. The engine needs the `[pii]` extra; the config
and the stage class import without it and say so when the stage is built.
"""

from curation.pii.config import ENTITIES, LABELS, PIIConfig
from curation.pii.stage import PIIStage, load_engine

__all__ = ["ENTITIES", "LABELS", "PIIConfig", "PIIStage", "load_engine"]
