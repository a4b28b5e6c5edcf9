"""OpenAI and any server that speaks its chat API (vLLM, llama.cpp, Ollama, transformers
serve), through the official `openai` client."""

from __future__ import annotations

import openai

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


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, model: str, api_key: str | None, base_url: str | None, timeout_s: float
    ) -> None:
        self.model = model
        self._key = api_key
        self._official = base_url is None
        # Local servers accept any key; the client insists on one.
        # max_retries=0: the runner retries, so each attempt passes the budget and the ledger.
        self.client = openai.AsyncOpenAI(
            api_key=api_key or "unused", base_url=base_url, timeout=timeout_s, max_retries=0
        )

    def body(self, messages: list[dict[str, str]], params: Params) -> dict[str, object]:
        """The chat-completions request body, as sent online and in batch files."""
        body: dict[str, object] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
        }
        # OpenAI's reasoning models reject max_tokens; compatible servers may not know the new name.
        body["max_completion_tokens" if self._official else "max_tokens"] = params.max_tokens
        if params.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    async def complete(self, prompt: Prompt, params: Params) -> Reply:
        try:
            response = await self.client.chat.completions.create(
                **self.body(prompt.messages, params)  # type: ignore[arg-type]
            )
        except openai.APIError as e:
            raise self.error(e) from None
        if not response.choices:
            raise Retryable("empty_reply", "the server returned no choices")
        usage = response.usage
        return Reply(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def error(self, e: openai.APIError) -> Retryable | Fatal:
        """The client's exception as one the runner acts on, with the key cut out."""
        message = without_secret(str(e), self._key)
        if isinstance(e, openai.APITimeoutError):
            return Retryable("timeout", message, charged=True)
        if isinstance(e, openai.APIConnectionError):
            return Retryable("connection_error", message)
        if isinstance(e, openai.APIStatusError):
            wait = retry_after_seconds(e.response.headers)
            if e.status_code in (401, 403):
                return Refused("auth_error", f"HTTP {e.status_code}: {message}")
            # a spent quota is a 429 too, but waiting does not bring it back
            if e.status_code == 429 and "insufficient_quota" in (e.code, e.type):
                return Refused("quota_exceeded", f"HTTP 429: {message}")
            if e.status_code == 429:
                return Retryable("rate_limited", message, retry_after=wait)
            if e.status_code >= 500 or e.status_code == 408:
                return Retryable("server_error", message, retry_after=wait)
            return Fatal(f"HTTP {e.status_code}: {message}")
        return Fatal(message)

    async def aclose(self) -> None:
        await self.client.close()
