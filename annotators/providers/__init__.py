"""Providers behind one small interface: OpenAI and compatible servers, Gemini, offline."""

from __future__ import annotations

import os

from annotators.config import AnnotateConfig
from annotators.providers.base import (
    Fatal,
    Params,
    Prompt,
    Provider,
    ProviderError,
    Refused,
    Reply,
    Retryable,
    Unanswerable,
)
from curation.errors import ConfigError, MissingDependency

__all__ = [
    "Fatal", "Params", "Prompt", "Provider", "ProviderError", "Refused", "Reply", "Retryable",
    "Unanswerable", "api_key", "make_provider", "resolve_protocol",
]  # fmt: skip


def api_key(config: AnnotateConfig) -> str | None:
    """The key from the environment variable the config names; local servers need none."""
    variable = config.key_variable()
    key = os.environ.get(variable) if variable else None
    if not key and config.provider != "offline" and config.base_url is None:
        raise ConfigError(
            f"annotate.provider = {config.provider!r} needs an API key: set {variable} "
            "(or set annotate.base_url for a local server)"
        )
    return key or None


def make_provider(config: AnnotateConfig) -> Provider:
    """The provider the config names, its key read from the environment."""
    if config.provider == "offline":
        from annotators.providers.offline import OfflineProvider

        return OfflineProvider()
    key = api_key(config)
    try:
        if config.provider == "openai":
            from annotators.providers.openai_compat import OpenAIProvider

            return OpenAIProvider(config.model, key, config.base_url, config.timeout_s)
        from annotators.providers.gemini import GeminiProvider

        return GeminiProvider(config.model, key, config.base_url, config.timeout_s)
    except ImportError as e:
        package = "openai" if config.provider == "openai" else "google-genai"
        raise MissingDependency(package, "annotate", f"the {config.provider} provider") from e


def resolve_protocol(config: AnnotateConfig) -> AnnotateConfig:
    """The config with `protocol = "auto"` replaced by what the provider enforces: a JSON
    schema for OpenAI and Gemini and for compatible servers that say they have guided
    decoding, plain text for the others. The offline annotator answers JSON objects."""
    if config.protocol != "auto":
        return config
    if config.provider == "offline":
        protocol = "json_object"
    elif config.provider == "gemini" or config.base_url is None:
        protocol = "json_schema"
    else:
        from annotators.providers.openai_compat import server_protocol

        protocol = server_protocol(config.base_url, os.environ.get(config.key_variable() or ""))
    return config.model_copy(update={"protocol": protocol})
