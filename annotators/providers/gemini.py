"""Gemini through `google-genai`, the maintained SDK (`google-generativeai` is deprecated)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
from google import genai
from google.genai import errors, types

from annotators.providers.base import (
    Fatal,
    Params,
    Prompt,
    Refused,
    Reply,
    Retryable,
    retry_after_seconds,
    without_secret,
)
from annotators.tasks import load_task

GEMINI_ERRORS = (errors.APIError, httpx2.TransportError, TimeoutError)
_RETRY_DELAY = re.compile(r'"retryDelay":\s*"(\d+(?:\.\d+)?)s"')


def contents_and_system(messages: list[dict[str, str]]) -> tuple[list[types.Content], str | None]:
    """Chat messages as Gemini contents; the system message becomes the system instruction."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    contents = [
        types.Content(role="model" if m["role"] == "assistant" else "user",
                      parts=[types.Part(text=m["content"])])
        for m in messages if m["role"] != "system"
    ]  # fmt: skip
    return contents, system


def generation_config(system: str | None, params: Params, task: str) -> types.GenerateContentConfig:
    """The request's settings, with the answer protocol's schema, JSON mode or stop."""
    form = load_task(task).answer_format(params.protocol)
    return types.GenerateContentConfig(
        system_instruction=system,
        max_output_tokens=params.max_tokens,
        temperature=params.temperature,
        response_mime_type="application/json" if form.json else None,
        response_json_schema=form.schema,
        stop_sequences=list(form.stop) or None,
    )


def reply_of(response: types.GenerateContentResponse) -> Reply:
    usage = response.usage_metadata
    completion = 0
    if usage:
        # thinking tokens are billed as output
        completion = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return Reply(
        text=response.text or "",
        prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
        completion_tokens=completion,
    )


class GeminiProvider:
    name = "gemini"

    def __init__(
        self, model: str, api_key: str | None, base_url: str | None, timeout_s: float
    ) -> None:
        self.model = model
        self._key = api_key
        # No retry_options: the SDK then tries once, and the runner owns retries. v1beta is
        # where the Gemini API serves batch mode as well as generateContent.
        options = types.HttpOptions(
            base_url=base_url, api_version="v1beta", timeout=int(timeout_s * 1000)
        )
        self.client = genai.Client(api_key=api_key or "unused", http_options=options)

    async def complete(self, prompt: Prompt, params: Params) -> Reply:
        contents, system = contents_and_system(prompt.messages)
        try:
            response = await self.client.aio.models.generate_content(
                model=self.model, contents=contents,
                config=generation_config(system, params, prompt.task),
            )  # fmt: skip
        except GEMINI_ERRORS as e:
            raise self.error(e) from None
        return reply_of(response)

    def error(self, e: Exception) -> Retryable | Fatal:
        message = without_secret(str(e), self._key)
        if isinstance(e, httpx2.TimeoutException | TimeoutError):
            return Retryable("timeout", message, charged=True)
        if isinstance(e, httpx2.TransportError):
            return Retryable("connection_error", message)
        assert isinstance(e, errors.APIError)
        wait = _retry_after(e)
        if e.code in (401, 403) or "API_KEY_INVALID" in _detail_values(e, "reason"):
            return Refused("auth_error", f"HTTP {e.code}: {message}")
        # a daily quota will not come back within the run; per-minute ones are waited out
        if e.code == 429 and any("PerDay" in quota for quota in _detail_values(e, "quotaId")):
            return Refused("quota_exceeded", f"HTTP 429: {message}")
        if e.code == 429:
            return Retryable("rate_limited", message, retry_after=wait)
        if e.code >= 500 or e.code == 408:
            return Retryable("server_error", message, retry_after=wait)
        return Fatal(f"HTTP {e.code}: {message}")

    async def aclose(self) -> None:
        await self.client.aio.aclose()


def _retry_after(e: errors.APIError) -> float | None:
    """Gemini says how long to wait in the error's RetryInfo, some proxies in Retry-After."""
    response: Any = getattr(e, "response", None)
    wait = retry_after_seconds(getattr(response, "headers", None))
    if wait is None and (match := _RETRY_DELAY.search(json.dumps(e.details, default=str))):
        wait = float(match.group(1))
    return wait


def _detail_values(e: errors.APIError, key: str) -> list[str]:
    """Every `key` in the error's details (ErrorInfo reasons, QuotaFailure violations' ids)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                if name == key and isinstance(item, str):
                    found.append(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(e.details)
    return found
