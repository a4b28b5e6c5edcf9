"""Users and workspaces from a YAML roster (`curate argilla users apply`).

    workspaces: [codecurate]
    users:
      - username: alice
        role: annotator            # owner | admin | annotator
        workspaces: [codecurate]
        password_env: ALICE_PASSWORD   # where the password is; never in the file

A user whose password variable is unset gets a generated password, written (with nothing
else) to a file only its owner can read. API keys are never printed.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

import argilla as rg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curation.errors import ConfigError

T = TypeVar("T")


class RosterUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=r"^[a-z0-9_-]+$")
    role: Literal["owner", "admin", "annotator"] = "annotator"
    workspaces: list[str] = Field(default_factory=list)
    password_env: str | None = None
    first_name: str | None = None


class Roster(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workspaces: list[str] = Field(default_factory=list)
    users: list[RosterUser] = Field(default_factory=list)


def load_roster(path: Path) -> Roster:
    try:
        return Roster.model_validate(yaml.safe_load(path.read_text()) or {})
    except (ValidationError, yaml.YAMLError, OSError) as e:
        raise ConfigError(f"roster {path}: {e}") from None


def apply_roster(client: rg.Argilla, roster: Roster, passwords_dir: Path) -> list[str]:
    """Create missing workspaces and users and add users to their workspaces; what changed."""
    changes = []
    workspaces = {}
    for name in sorted({*roster.workspaces, *(w for u in roster.users for w in u.workspaces)}):
        workspaces[name] = quietly(client.workspaces, name)
        if workspaces[name] is None:
            workspaces[name] = rg.Workspace(name=name, client=client).create()
            changes.append(f"workspace {name} created")
    for entry in roster.users:
        user = quietly(client.users, entry.username)
        if user is None:
            user = rg.User(
                username=entry.username, password=_password(entry, passwords_dir),
                role=entry.role, first_name=entry.first_name or entry.username, client=client,
            ).create()  # fmt: skip
            changes.append(f"user {entry.username} ({entry.role}) created")
        for name in entry.workspaces:
            if entry.username not in {member.username for member in workspaces[name].users}:
                user.add_to_workspace(workspaces[name])
                changes.append(f"user {entry.username} added to {name}")
    return changes


def quietly(lookup: Callable[[str], T], name: str) -> T:
    """An SDK lookup by name without the warning it prints when there is none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return lookup(name)


def _password(entry: RosterUser, passwords_dir: Path) -> str:
    if entry.password_env and os.environ.get(entry.password_env):
        return os.environ[entry.password_env]
    password = secrets.token_urlsafe(12)
    passwords_dir.mkdir(parents=True, exist_ok=True)
    path = passwords_dir / f"{entry.username}.password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password
