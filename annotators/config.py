"""`[annotate]` in curate.toml, and the dated price table it points to."""

from __future__ import annotations

import tomllib
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from annotators.tasks import PROTOCOLS, TASK_KINDS
from curation.errors import ConfigError

PROVIDERS = ("offline", "openai", "gemini")
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    batch_discount: float = Field(default=0.0, ge=0, lt=1)
    context_tokens: int | None = Field(default=None, ge=1)  # prompt + completion the model takes

    def cost(self, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float:
        """USD for one request."""
        usd = (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6
        return usd * (1 - self.batch_discount) if batch else usd


FREE = ModelPrice(input_per_mtok=0, output_per_mtok=0)


class PriceTable(BaseModel):
    """A dated table of prices per million tokens."""

    model_config = ConfigDict(extra="forbid")
    as_of: date
    currency: str = "USD"
    models: dict[str, ModelPrice]

    def price(self, model: str) -> ModelPrice:
        if model not in self.models:
            raise ConfigError(
                f"no price for model {model!r} in the price table ({', '.join(self.models)}); "
                "add it to your copy of the table and set [annotate].prices"
            )
        return self.models[model]


def load_prices(path: Path | None = None) -> PriceTable:
    """The price table at `path`, or the one shipped with codecurate."""
    text = path.read_text() if path else files("annotators").joinpath("prices.toml").read_text()
    try:
        return PriceTable.model_validate(tomllib.loads(text))
    except (ValidationError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"price table {path or 'prices.toml'}: {e}") from None


class AnnotateConfig(BaseModel):
    """`[annotate]`: which tasks run where, how fast, and how much they may spend."""

    model_config = ConfigDict(extra="forbid")
    # where: "offline" writes instructions from docstrings and needs no network
    provider: Literal[*PROVIDERS] = "offline"  # type: ignore[valid-type]
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # any OpenAI-compatible server: vLLM, llama.cpp, Ollama...
    api_key_env: str | None = None  # the variable holding the key; default per provider
    tasks: list[str] = Field(default=["instruction_for_code", "qa_from_issue"])
    limit: int | None = Field(default=None, ge=1)  # annotate at most this many (a sample run)
    # the request
    max_tokens: int = Field(default=512, ge=1)
    # longer prompts are skipped with a reason; default: the model's context_tokens (from the
    # price table) less max_tokens
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.2, ge=0, le=2)
    # how answers are asked for: "json_schema" (the server enforces the fields), "json_object"
    # (JSON mode), "text" (plain text any model keeps), or "auto": what the server supports
    protocol: Literal["auto", *PROTOCOLS] = "auto"  # type: ignore[valid-type]
    timeout_s: float = Field(default=60.0, gt=0)
    # how fast
    concurrency: int = Field(default=8, ge=1)
    rpm: int = Field(default=500, ge=1)
    tpm: int = Field(default=200_000, ge=1)
    max_retries: int = Field(default=5, ge=0)
    retry_base_s: float = Field(default=1.0, gt=0)  # backoff: up to base * 2^attempt, jittered
    # how much: hard caps in the price table's currency
    budget_usd: float = Field(default=5.0, ge=0)  # per run
    dataset: str = "default"  # the name whose spend over all runs dataset_budget_usd caps
    dataset_budget_usd: float = Field(default=50.0, ge=0)
    ledger: Path | None = None  # SQLite ledger and cache; default <workdir>/annotations.sqlite
    # the estimate
    completion_ratio: float = Field(default=0.1, gt=0)  # completion tokens per prompt token
    completion_range: tuple[float, float] = (0.03, 0.4)
    reask_rate: float = Field(default=0.05, ge=0, le=1)  # answers malformed, so asked again
    reask_range: tuple[float, float] = (0.0, 0.5)
    prices: Path | None = None
    # an LLM judge scores each instruction against its code (1-5), under the same budget;
    # below judge_min_score the annotation is flagged judge_rejects
    judge: bool = False
    judge_min_score: int = Field(default=3, ge=1, le=5)
    # the provider's batch API, at its discount
    batch: bool = False
    batch_size: int = Field(default=1000, ge=1)
    batch_poll_s: float = Field(default=30.0, gt=0)
    batch_max_wait_s: float = Field(default=86_400.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "json_mode" in data:
            raise ConfigError(
                "annotate.json_mode was replaced by annotate.protocol: "
                "'auto' (the default), 'json_schema', 'json_object' or 'text'"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> AnnotateConfig:
        unknown = [t for t in self.tasks if t not in TASK_KINDS]
        if unknown:
            raise ConfigError(
                f"annotate.tasks: unknown task {unknown[0]!r}; tasks: {', '.join(TASK_KINDS)}"
            )
        low, high = self.completion_range
        if not low <= self.completion_ratio <= high:
            raise ConfigError("annotate.completion_range must contain annotate.completion_ratio")
        low, high = self.reask_range
        if not 0 <= low <= self.reask_rate <= high <= 1:
            raise ConfigError(
                "annotate.reask_range must lie within [0, 1] and contain annotate.reask_rate"
            )
        if self.provider == "offline" and self.batch:
            raise ConfigError("annotate.batch: the offline provider has no batch API")
        if self.provider == "offline" and self.judge:
            raise ConfigError("annotate.judge: the offline annotator cannot judge; set a provider")
        return self

    @property
    def annotator(self) -> str:
        """provider:model, as recorded with each annotation."""
        if self.provider == "offline":
            return "offline:docstring"
        return f"{self.provider}:{self.model}"

    def key_variable(self) -> str | None:
        """Name of the environment variable that holds the API key."""
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.provider)
