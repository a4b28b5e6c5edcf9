"""A protocol-faithful stand-in for the OpenAI and Gemini APIs on 127.0.0.1.

It speaks the wire formats the real `openai` and `google-genai` clients use (chat
completions, files and batches; generateContent and batchGenerateContent), counts prompt
tokens the way OpenAI bills them, honours `max_tokens`, `stop` and the answer formats
(`response_format` json_schema, validated as OpenAI does, and json_object; Gemini's
responseMimeType and responseJsonSchema), and plays scripted faults: 429 with `Retry-After`,
500, timeouts, malformed JSON, requests that hang. The tests and `benchmarks/annotate.py`
use it (it is a test double: it lives here, not in the wheel); no real model server has the
batch APIs or fails on demand.

Its answers are deterministic: the task's fields built from the prompt (`answer`), written
as JSON when a format asks for it and as plain text otherwise, like a model following the
prompt. `owned_by` is what /v1/models says serves it (None: an empty list, like
`transformers serve`); `formats=False` ignores answer formats, as `transformers serve` does.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tiktoken

from annotators.tokens import encoding_for_model

# google.rpc status names the Gemini API answers errors with
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}  # fmt: skip
GEMINI_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
_PATH_LINE = re.compile(r"^Path: (.*)$", re.MULTILINE)
_HEADER = re.compile(r"^[A-Z][a-z]+:")


@dataclass
class Batch:
    id: str
    kind: str  # "openai" | "gemini"
    model: str
    lines: list[dict[str, Any]]
    polls: int = 0
    state: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class LocalLLMServer:
    """Start with `with LocalLLMServer() as server:`; point clients at `server.openai_url`
    or `server.gemini_url`.

    `faults` is consumed one entry per request in arrival order (`None` = answer normally);
    `hang_after` makes every request after that many block until `release()`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        latency_s: float = 0.0,
        retry_after_s: float = 0.2,
        timeout_sleep_s: float = 5.0,
        batch_polls_to_finish: int = 2,
        batch_expire_after: int | None = None,
        owned_by: str | None = None,
        formats: bool = True,
    ) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.retry_after_s = retry_after_s
        self.timeout_sleep_s = timeout_sleep_s
        self.batch_polls_to_finish = batch_polls_to_finish
        self.batch_expire_after = batch_expire_after
        self.owned_by = owned_by
        self.formats = formats
        self.faults: list[str | None] = []
        self.hang_after: int | None = None
        self._admitted = 0
        self.answer: Callable[[list[dict[str, str]]], dict[str, str]] = default_answer
        # what happened, for assertions
        self.requests: list[dict[str, Any]] = []  # every generation request, in arrival order
        self.answered: Counter[str] = Counter()  # conversation -> completed (billable) answers
        self.billed_prompt_tokens = 0
        self.billed_completion_tokens = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, Batch] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # lifecycle
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def gemini_url(self) -> str:
        return f"{self.url}/"

    def __enter__(self) -> LocalLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def release(self) -> None:
        """Let hanging requests go (unanswered, as if their client had gone)."""
        self._released.set()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    # generation, shared by the online and batch paths of both protocols
    def generate(
        self,
        model: str,
        messages: list[dict[str, str]],
        max_tokens: int | None,
        as_json: bool = False,
        stop: list[str] | None = None,
    ) -> tuple[str, int, int, str]:
        """(text, prompt tokens, completion tokens, finish reason), billed."""
        encoding = _encoding(model)
        # as OpenAI bills a chat: 3 tokens per message and its role, content and name (a name
        # costs 1 more), and 3 that prime the reply
        prompt = 3 + sum(
            3 + sum(len(encoding.encode_ordinary(value)) for value in m.values()) + ("name" in m)
            for m in messages
        )
        text = written(self.answer(messages), as_json and self.formats)
        finish = "stop"
        for sequence in stop or []:
            text = text.split(sequence, 1)[0]
        tokens = encoding.encode_ordinary(text)
        if max_tokens is not None and len(tokens) > max_tokens:
            tokens, finish = tokens[:max_tokens], "length"
            text = encoding.decode(tokens)
        with self._lock:
            self.answered[json.dumps(messages)] += 1
            self.billed_prompt_tokens += prompt
            self.billed_completion_tokens += len(tokens)
        return text, prompt, len(tokens), finish

    def take_fault(self, body: dict[str, Any]) -> str | None:
        with self._lock:
            self.requests.append(body)
            if self.hang_after is not None and self._admitted >= self.hang_after:
                return "hang"
            self._admitted += 1
            return self.faults.pop(0) if self.faults else None


def default_answer(messages: list[dict[str, str]]) -> dict[str, str]:
    """The fields the system prompt asks for, about the file or thread in the last prompt."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = _record_text(messages)
    path = _PATH_LINE.search(user)
    subject = path.group(1).strip() if path else " ".join(user.split()[:8])
    if "two answers" in system:
        return {"better": "A", "reason": "A does what the request asks."}
    if "Score from 1 to 5" in system:
        return {"score": "4", "reason": "The code does what the request asks."}
    if "question" in system:
        return {"question": f"How do I fix the problem in {subject}?", "answer": "Apply the fix."}
    return {"instruction": f"Write the code that {subject} holds, with its tests."}


def written(answer: dict[str, str], as_json: bool) -> str:
    """An answer as JSON, or as plain text: one field alone, several as `Field: value` lines."""
    if as_json:
        return json.dumps(answer)
    if len(answer) == 1:
        return next(iter(answer.values()))
    return "\n".join(f"{name.capitalize()}: {value}" for name, value in answer.items())


def schema_error(response_format: dict[str, Any], messages: list[dict[str, str]]) -> str | None:
    """Why OpenAI would refuse this `response_format`; None when it is valid."""
    kind = response_format.get("type")
    if kind == "json_object":
        if not any("json" in m["content"].lower() for m in messages):
            return ("'messages' must contain the word 'json' in some form, to use "
                    "'response_format' of type 'json_object'.")  # fmt: skip
        return None
    if kind != "json_schema":
        return None if kind in (None, "text") else f"Invalid response_format type: {kind!r}"
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") or {}
    if not spec.get("name"):
        return "Missing required parameter: 'response_format.json_schema.name'."
    if spec.get("strict"):
        properties = set(schema.get("properties") or {})
        if schema.get("additionalProperties") is not False:
            return "Invalid schema: 'additionalProperties' is required to be supplied and false."
        if set(schema.get("required") or []) != properties:
            return "Invalid schema: 'required' is required to include every key in properties."
    return None


def _record_text(messages: list[dict[str, str]]) -> str:
    """The user message about the record: the last one that opens with a header line such as
    `Language:` or `Repository:` (worked examples come before it, a retry's request after)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return next((u for u in reversed(users) if _HEADER.match(u)), users[-1] if users else "")


def _encoding(model: str) -> tiktoken.Encoding:
    return encoding_for_model(model)[0]


def _gemini_messages(request: dict[str, Any]) -> list[dict[str, str]]:
    messages = []
    system = request.get("systemInstruction") or request.get("system_instruction")
    if system:
        messages.append({"role": "system", "content": _gemini_text(system)})
    for content in request.get("contents", []):
        role = "assistant" if content.get("role") == "model" else "user"
        messages.append({"role": role, "content": _gemini_text(content)})
    return messages


def _gemini_text(content: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in content.get("parts", []))


def _handler(server: LocalLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add 40 ms to every keep-alive request
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read state
            return None

        # plumbing
        def send_json(
            self, status: int, payload: Any, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_bytes(status, data, "application/json", headers)

        def send_bytes(
            self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def error(
            self, status: int, message: str, gemini: bool, details: list[Any] | None = None,
            code: str | None = None, **headers: str,
        ) -> None:  # fmt: skip
            """An error body as each API writes it: Gemini's google.rpc status with its
            `details` (RetryInfo on a 429 unless given), OpenAI's type and `code`."""
            if gemini:
                status_name = GOOGLE_STATUS.get(status, HTTPStatus(status).name)
                payload: dict[str, Any] = {
                    "error": {"code": status, "message": message, "status": status_name}
                }
                if details is None and status == 429:
                    details = [{
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{server.retry_after_s}s",
                    }]  # fmt: skip
                if details is not None:
                    payload["error"]["details"] = details
            else:
                payload = {"error": {"message": message, "type": code or "invalid_request_error",
                                     "param": None, "code": code or str(status)}}  # fmt: skip
            self.send_json(status, payload, headers)

        def authorized(self, gemini: bool) -> bool:
            if server.api_key is None:
                return True
            given = self.headers.get("x-goog-api-key") if gemini else (
                self.headers.get("Authorization", "").removeprefix("Bearer ")
            )  # fmt: skip
            if given == server.api_key:
                return True
            # like the real APIs, the error names the key it was given; Gemini answers a bad
            # key with 400 API_KEY_INVALID, not 401
            if gemini:
                self.error(400, f"API key not valid: {given}", True, details=[{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                }])  # fmt: skip
            else:
                self.error(401, f"Incorrect API key provided: {given}", False)
            return False

        # routes
        def do_POST(self) -> None:
            gemini = self.path.startswith("/v1beta/")
            if not self.authorized(gemini):
                self.body()
                return
            if self.path == "/v1/chat/completions":
                self.chat(json.loads(self.body()))
            elif self.path == "/v1/files":
                self.upload()
            elif self.path == "/v1/batches":
                self.create_batch(json.loads(self.body()))
            elif gemini and self.path.endswith(":generateContent"):
                self.generate_content(self.model_in_path(), json.loads(self.body()))
            elif gemini and self.path.endswith(":batchGenerateContent"):
                self.gemini_batch(self.model_in_path(), json.loads(self.body()))
            else:
                self.body()
                self.error(404, f"no route {self.path}", gemini)

        def do_GET(self) -> None:
            gemini = self.path.startswith("/v1beta/")
            if not self.authorized(gemini):
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts == ["v1", "models"]:
                models = [] if server.owned_by is None else [
                    {"id": "local", "object": "model", "created": 0, "owned_by": server.owned_by}
                ]  # fmt: skip
                self.send_json(200, {"object": "list", "data": models})
            elif parts[:2] == ["v1", "batches"] and len(parts) == 3:
                self.openai_batch_status(parts[2])
            elif parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
                data = server.files.get(parts[2])
                if data is None:
                    self.error(404, f"no file {parts[2]}", False)
                else:
                    self.send_bytes(200, data, "application/octet-stream", None)
            elif parts[:2] == ["v1beta", "batches"] and len(parts) == 3:
                self.gemini_batch_status(parts[2])
            else:
                self.error(404, f"no route {self.path}", gemini)

        def model_in_path(self) -> str:
            return self.path.split("/models/", 1)[1].split(":", 1)[0]

        # faults
        def play_fault(self, fault: str | None, gemini: bool) -> bool:
            """True when the fault answered the request."""
            if fault == "429":
                # Gemini says how long to wait only in the body's RetryInfo
                wait = {} if gemini else {"Retry-After": f"{server.retry_after_s:g}"}
                self.error(429, "Rate limit reached; slow down", gemini, **wait)
                return True
            if fault == "403":
                self.error(403, "The caller does not have permission", gemini)
                return True
            if fault == "quota":  # a spent quota, as OpenAI and Gemini word it
                daily = {"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}
                self.error(429, "You exceeded your current quota, please check your plan and "
                           "billing details.", gemini, code="insufficient_quota", details=[{
                               "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                               "violations": [daily]}])  # fmt: skip
                return True
            if fault == "500":
                self.error(500, "The server had an error processing your request", gemini)
                return True
            if fault == "timeout":
                time.sleep(server.timeout_sleep_s)  # the client gives up first; nothing billed
                self.close_connection = True
                return True
            if fault == "hang":
                # like a real server whose client went away: no answer, nothing billed
                server._released.wait()
                self.close_connection = True
                return True
            return False

        def track(self, delta: int) -> None:
            with server._lock:
                server.in_flight += delta
                server.max_in_flight = max(server.max_in_flight, server.in_flight)

        def generation(
            self, body: dict[str, Any], gemini: bool, respond: Callable[[bool], dict[str, Any]]
        ) -> None:
            """One online generation request: its scripted fault, or `respond(malformed)`
            after the configured latency."""
            self.track(+1)
            try:
                fault = server.take_fault(body)
                if self.play_fault(fault, gemini):
                    return
                time.sleep(server.latency_s)
                self.send_json(200, respond(fault == "malformed"))
            finally:
                self.track(-1)

        # OpenAI
        def chat(self, body: dict[str, Any]) -> None:
            if not body.get("model") or not body.get("messages"):
                self.error(400, "model and messages are required", False)
                return
            refused = server.formats and schema_error(
                body.get("response_format") or {}, body["messages"]
            )
            if refused:
                self.error(400, refused, False)
                return
            self.generation(body, False, lambda bad: self.completion(body, malformed=bad))

        def completion(self, body: dict[str, Any], malformed: bool = False) -> dict[str, Any]:
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
            kind = (body.get("response_format") or {}).get("type")
            as_json = kind in ("json_object", "json_schema")
            stop = body.get("stop")
            text, prompt, completion, finish = server.generate(
                body["model"], body["messages"], max_tokens, as_json,
                [stop] if isinstance(stop, str) else stop,
            )  # fmt: skip
            if malformed:  # broken JSON, or for plain text an empty answer
                text = "Sure! Here is the instruction: " + text[: len(text) // 2] if as_json else ""
            return {
                "id": server.next_id("chatcmpl-"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": finish,
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            }  # fmt: skip

        def upload(self) -> None:
            message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n"
                + self.body()
            )  # fmt: skip
            fields = {part.get_param("name", header="content-disposition"): part
                      for part in message.iter_parts()}  # type: ignore[attr-defined]  # fmt: skip
            data = fields["file"].get_payload(decode=True)
            file_id = server.next_id("file-")
            server.files[file_id] = data
            self.send_json(200, {"id": file_id, "object": "file", "bytes": len(data),
                                 "created_at": int(time.time()), "filename": "batch.jsonl",
                                 "purpose": "batch", "status": "processed"})  # fmt: skip

        def create_batch(self, body: dict[str, Any]) -> None:
            data = server.files.get(body.get("input_file_id", ""))
            if data is None:
                self.error(400, "input_file_id names no uploaded file", False)
                return
            lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
            batch = Batch(server.next_id("batch_"), "openai", "", lines)
            server.batches[batch.id] = batch
            self.send_json(200, self.openai_batch(batch, body["input_file_id"]))

        def openai_batch_status(self, batch_id: str) -> None:
            batch = server.batches.get(batch_id)
            if batch is None:
                self.error(404, f"no batch {batch_id}", False)
                return
            self.advance(batch)
            self.send_json(200, self.openai_batch(batch, None))

        def advance(self, batch: Batch) -> None:
            """Each poll moves a batch on; at the end every line is answered (or expires)."""
            batch.polls += 1
            if batch.state in ("completed", "expired", "succeeded"):
                return
            if batch.polls < server.batch_polls_to_finish:
                batch.state = "in_progress"
                return
            limit = server.batch_expire_after
            done = batch.lines if limit is None else batch.lines[:limit]
            if batch.kind == "openai":
                outputs = [{"id": server.next_id("batch_req_"), "custom_id": line["custom_id"],
                            "response": {"status_code": 200, "request_id": server.next_id("req_"),
                                         "body": self.completion(line["body"])},
                            "error": None} for line in done]  # fmt: skip
                errors = [{"id": server.next_id("batch_req_"), "custom_id": line["custom_id"],
                           "response": None,
                           "error": {"code": "batch_expired",
                                     "message": "This request could not be executed before "
                                                "the completion window expired."}}
                          for line in batch.lines[len(done):]]  # fmt: skip
                batch.output_file_id = server.next_id("file-")
                server.files[batch.output_file_id] = _jsonl(outputs)
                if errors:
                    batch.error_file_id = server.next_id("file-")
                    server.files[batch.error_file_id] = _jsonl(errors)
                batch.state = "completed" if limit is None else "expired"
            else:
                batch.results = [self.gemini_inlined(batch.model, line) for line in done]
                batch.state = "succeeded" if limit is None else "expired"

        def openai_batch(self, batch: Batch, input_file_id: str | None) -> dict[str, Any]:
            done = batch.state in ("completed", "expired")
            total = len(batch.lines)
            completed = total if server.batch_expire_after is None else min(
                server.batch_expire_after, total
            )  # fmt: skip
            return {
                "id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions",
                "input_file_id": input_file_id or "file-input", "completion_window": "24h",
                "status": batch.state, "created_at": int(time.time()),
                "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
                "request_counts": {"total": total, "completed": completed if done else 0,
                                   "failed": total - completed if done else 0},
            }  # fmt: skip

        # Gemini
        def generate_content(self, model: str, request: dict[str, Any]) -> None:
            self.generation(
                request, True, lambda bad: self.gemini_response(model, request, malformed=bad)
            )

        def gemini_response(
            self, model: str, request: dict[str, Any], malformed: bool = False
        ) -> dict[str, Any]:
            config = request.get("generationConfig") or {}
            as_json = config.get("responseMimeType") == "application/json"
            text, prompt, completion, finish = server.generate(
                model, _gemini_messages(request), config.get("maxOutputTokens"), as_json,
                config.get("stopSequences"),
            )  # fmt: skip
            if malformed:
                text = text[: len(text) // 2] if as_json else ""
            return {
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "STOP" if finish == "stop" else "MAX_TOKENS"}],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion,
                                  "totalTokenCount": prompt + completion},
                "modelVersion": model,
            }  # fmt: skip

        def gemini_batch(self, model: str, body: dict[str, Any]) -> None:
            requests = body["batch"]["inputConfig"]["requests"]["requests"]
            batch = Batch(server.next_id("b"), "gemini", model, requests, state="pending")
            server.batches[batch.id] = batch
            self.send_json(200, self.gemini_operation(batch))

        def gemini_inlined(self, model: str, line: dict[str, Any]) -> dict[str, Any]:
            return {"response": self.gemini_response(model, line["request"]),
                    "metadata": line.get("metadata", {})}  # fmt: skip

        def gemini_batch_status(self, batch_id: str) -> None:
            batch = server.batches.get(batch_id)
            if batch is None:
                self.error(404, f"no batch {batch_id}", True)
                return
            self.advance(batch)
            self.send_json(200, self.gemini_operation(batch))

        def gemini_operation(self, batch: Batch) -> dict[str, Any]:
            state = {"validating": "PENDING", "pending": "PENDING", "in_progress": "RUNNING",
                     "succeeded": "SUCCEEDED", "expired": "EXPIRED"}[batch.state]  # fmt: skip
            metadata: dict[str, Any] = {
                "@type": GEMINI_BATCH_TYPE,
                "name": f"batches/{batch.id}", "model": f"models/{batch.model}",
                "state": f"BATCH_STATE_{state}",
            }  # fmt: skip
            if batch.results:
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": batch.results}}
            return {"name": f"batches/{batch.id}", "metadata": metadata,
                    "done": state in ("SUCCEEDED", "EXPIRED")}  # fmt: skip

    return Handler


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()
