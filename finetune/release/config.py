"""`[export]`: which dataset, how it is split, where its versions are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curation.errors import ConfigError
from curation.schema import SPLITS

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ExportConfig(BaseModel):
    """`[export]`: the dataset's name, its splits, the seed, where versions are kept."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="code-instructions", pattern=NAME_PATTERN)
    root: Path = Path("data/exports")
    seed: int = 42
    # Some of train, validation, test; a small corpus can export fewer splits.
    splits: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1}
    )
    min_clusters: int = Field(default=1, ge=0)  # per split; 0 lets a split come out empty
    # No topic of the instructions (finetune.release.topics) above this share of an export;
    # none: every topic as it comes (the card shows the breakdown either way).
    max_topic_share: float | None = Field(default=None, gt=0, le=1)
    license: str | None = None  # the card's licence; default: the records' own, if one
    hub_repo: str | None = None  # push_to_hub target (HF_TOKEN from the environment)

    @model_validator(mode="after")
    def _check(self) -> ExportConfig:
        fractions = self.splits.values()
        if (
            not self.splits
            or not set(self.splits) <= set(SPLITS)
            or min(fractions) <= 0
            or abs(sum(fractions) - 1) > 1e-9
        ):
            raise ConfigError(
                "export.splits: fractions above 0 of some of train, validation and test, "
                "summing to 1, e.g. {train = 0.8, validation = 0.1, test = 0.1} or {train = 1.0}"
            )
        return self

    @property
    def split_names(self) -> tuple[str, ...]:
        """The configured splits in their canonical order."""
        return tuple(s for s in SPLITS if s in self.splits)
