"""OpenAI and any server that speaks its chat API (vLLM, llama.cpp, Ollama, transformers
serve), through the official `openai` client."""

from __future__ import annotations

from typing import Final

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
from annotators.tasks import load_task
from curation.errors import ConfigError

# `owned_by` in /v1/models of the servers that enforce `response_format: json_schema` with
# guided decoding (Ollama names its library models' owner "library"). transformers serve
# lists nothing and ignores response_format: such servers get the text protocol.
GUIDED_SERVERS: Final = frozenset({"vllm", "llamacpp", "sglang", "ollama", "library"})


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

    def body(self, prompt: Prompt, params: Params) -> dict[str, object]:
        """The chat-completions request body, as sent online and in batch files."""
        body: dict[str, object] = {
            "model": self.model,
            "messages": prompt.messages,
            "temperature": params.temperature,
        }
        # OpenAI's reasoning models reject max_tokens; compatible servers may not know the new name.
        body["max_completion_tokens" if self._official else "max_tokens"] = params.max_tokens
        form = load_task(prompt.task).answer_format(params.protocol)
        if form.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": prompt.task, "schema": form.schema, "strict": True},
            }
        elif form.json:
            body["response_format"] = {"type": "json_object"}
        if form.stop:
            body["stop"] = list(form.stop)
        return body

    async def complete(self, prompt: Prompt, params: Params) -> Reply:
        try:
            response = await self.client.chat.completions.create(
                **self.body(prompt, params)  # type: ignore[arg-type]
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


def server_protocol(base_url: str, api_key: str | None) -> str:
    """What an OpenAI-compatible server enforces, from who its /v1/models says serves it:
    json_schema for servers with guided decoding, else text."""
    with openai.OpenAI(
        api_key=api_key or "unused", base_url=base_url, timeout=10, max_retries=0
    ) as client:
        try:
            models = client.models.list().data
        except openai.APIStatusError:
            return "text"  # no /v1/models: a server that says nothing of what it supports
        except openai.APIError as e:
            raise ConfigError(
                f"annotate.protocol = 'auto': {base_url} did not answer "
                f"({without_secret(str(e), api_key)}); start the server or set annotate.protocol"
            ) from None
    owners = {str(getattr(model, "owned_by", "")).lower() for model in models}
    return "json_schema" if owners & GUIDED_SERVERS else "text"
