"""The providers' batch APIs: half the price, answers within hours, partial results when a
job expires. One client per provider; the runner owns budgets, the ledger and retries."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Protocol

import openai
from google.genai import types

from annotators.providers import Params, Prompt, Provider, Reply
from annotators.providers.gemini import (
    GEMINI_ERRORS,
    GeminiProvider,
    contents_and_system,
    generation_config,
    reply_of,
)
from annotators.providers.openai_compat import OpenAIProvider
from curation.errors import ConfigError

FINAL_OPENAI = ("completed", "expired", "cancelled", "failed")
FINAL_GEMINI = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
                "JOB_STATE_EXPIRED")  # fmt: skip


@dataclass
class BatchPoll:
    """A job's state; when `done`, the answers it has (keyed by request key) and why the
    others have none."""

    state: str
    done: bool
    replies: dict[str, Reply] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class BatchClient(Protocol):
    async def submit(self, requests: list[tuple[str, Prompt]], params: Params) -> str: ...

    async def poll(self, job_id: str) -> BatchPoll: ...


class OpenAIBatch:
    """Files + Batches: one JSONL of chat-completion requests, polled until final."""

    def __init__(self, provider: Provider) -> None:
        assert isinstance(provider, OpenAIProvider)
        self.provider = provider
        self.client = provider.client

    async def submit(self, requests: list[tuple[str, Prompt]], params: Params) -> str:
        try:
            return await self._submit(requests, params)
        except openai.APIError as e:
            raise self.provider.error(e) from None

    async def poll(self, job_id: str) -> BatchPoll:
        try:
            return await self._poll(job_id)
        except openai.APIError as e:
            raise self.provider.error(e) from None

    async def _submit(self, requests: list[tuple[str, Prompt]], params: Params) -> str:
        lines = [
            json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                        "body": self.provider.body(prompt, params)})
            for key, prompt in requests
        ]  # fmt: skip
        data = ("\n".join(lines) + "\n").encode()
        uploaded = await self.client.files.create(
            file=("requests.jsonl", io.BytesIO(data)), purpose="batch"
        )
        job = await self.client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        return job.id

    async def _poll(self, job_id: str) -> BatchPoll:
        job = await self.client.batches.retrieve(job_id)
        result = BatchPoll(job.status, job.status in FINAL_OPENAI)
        if not result.done:
            return result
        for file_id in (job.output_file_id, job.error_file_id):
            if file_id:
                content = await self.client.files.content(file_id)
                for line in content.text.splitlines():
                    if line.strip():
                        self._read_line(json.loads(line), result)
        return result

    @staticmethod
    def _read_line(line: dict, result: BatchPoll) -> None:
        key, response = line["custom_id"], line.get("response") or {}
        body = response.get("body") or {}
        if response.get("status_code") == 200 and body.get("choices"):
            usage = body.get("usage") or {}
            result.replies[key] = Reply(
                body["choices"][0]["message"].get("content") or "",
                usage.get("prompt_tokens", 0),
                usage.get("completion_tokens", 0),
            )
        else:
            error = line.get("error") or body.get("error") or {}
            result.errors[key] = f"{error.get('code', 'error')}: {error.get('message', '')}"


class GeminiBatch:
    """Gemini batch mode with inlined requests, each tagged with its key in `metadata`."""

    def __init__(self, provider: Provider) -> None:
        assert isinstance(provider, GeminiProvider)
        self.provider = provider

    async def submit(self, requests: list[tuple[str, Prompt]], params: Params) -> str:
        try:
            return await self._submit(requests, params)
        except GEMINI_ERRORS as e:
            raise self.provider.error(e) from None

    async def poll(self, job_id: str) -> BatchPoll:
        try:
            return await self._poll(job_id)
        except GEMINI_ERRORS as e:
            raise self.provider.error(e) from None

    async def _submit(self, requests: list[tuple[str, Prompt]], params: Params) -> str:
        inlined = []
        for key, prompt in requests:
            contents, system = contents_and_system(prompt.messages)
            inlined.append(types.InlinedRequest(
                contents=contents, config=generation_config(system, params, prompt.task),
                metadata={"key": key},
            ))  # fmt: skip
        job = await self.provider.client.aio.batches.create(model=self.provider.model, src=inlined)
        assert job.name is not None
        return job.name

    async def _poll(self, job_id: str) -> BatchPoll:
        job = await self.provider.client.aio.batches.get(name=job_id)
        state = job.state.name if job.state else "JOB_STATE_UNSPECIFIED"
        result = BatchPoll(state, state in FINAL_GEMINI)
        if result.done and job.dest and job.dest.inlined_responses:
            for item in job.dest.inlined_responses:
                key = (item.metadata or {}).get("key", "")
                if item.response is not None:
                    result.replies[key] = reply_of(item.response)
                else:
                    result.errors[key] = str(item.error or "no response")
        return result


def batch_client(provider: Provider) -> BatchClient:
    """The batch API of a provider that has one."""
    if provider.name == "openai":
        return OpenAIBatch(provider)
    if provider.name == "gemini":
        return GeminiBatch(provider)
    raise ConfigError(f"annotate.batch: the {provider.name} provider has no batch API")
