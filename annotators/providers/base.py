"""What every provider speaks: a prompt in, a reply with its usage out, and two kinds of
failure the runner knows how to treat."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Params:
    """Request parameters; they are part of the cache key."""

    max_tokens: int
    temperature: float
    protocol: str  # json_schema | json_object | text (annotators.tasks)


@dataclass(frozen=True)
class Prompt:
    """One request: a record's chat messages, their exact token count, and its cache key."""

    key: str
    record_id: str
    task: str
    messages: list[dict[str, str]]
    prompt_tokens: int  # counted before sending; the budget reserves on it
    record: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int


class ProviderError(Exception):
    """A request that failed; `status` is what the ledger records."""

    status = "error"


class Retryable(ProviderError):
    """429, 5xx, timeouts, dropped connections: worth another try after a wait."""

    def __init__(
        self, status: str, message: str, retry_after: float | None = None, charged: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        # a timed-out request may still have been processed and billed
        self.charged = charged


class Fatal(ProviderError):
    """A request the provider refused (bad request, auth, unknown model): do not repeat it."""

    status = "failed"


class Refused(Fatal):
    """The provider refuses the account rather than the request (a bad key, no permission, no
    quota left): every further request would be refused too, so the runner stops."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status  # auth_error | quota_exceeded


class Unanswerable(ProviderError):
    """The offline annotator has nothing to say about this record (no docstring)."""

    status = "skipped"


class Provider(Protocol):
    name: str

    async def complete(self, prompt: Prompt, params: Params) -> Reply: ...

    async def aclose(self) -> None: ...


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`Retry-After` (seconds or an HTTP date), or OpenAI's `retry-after-ms`."""
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def without_secret(message: str, secret: str | None) -> str:
    """An error message with the API key cut out (servers echo keys in 401 errors)."""
    return message.replace(secret, "[key]") if secret else message
