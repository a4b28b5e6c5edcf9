"""Human review in Argilla.

- `stage.py`: the review stage (push, machine review, pull, send back, numbers);
- `settings.py`: the review dataset's fields, questions and guidelines;
- `push_pull.py`: records to and from Argilla, and undecided records back to the queue;
- `votes.py`: the vote rule (what a record becomes from its votes), no SDK needed;
- `agreement.py`: agreement per round and numbers per annotator; `gold.py`: gold records;
- `auto_review.py`: the demo's machine reviewer; `users.py`: users and workspaces;
- `server/`: the local argilla-server that `curate argilla up` starts, and its search engine.

The Argilla SDK (the `[review]` extra) is imported only when a client is made or the stage
runs, so the pipeline and the CLI work without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from argilla_setup.config import ReviewConfig
from argilla_setup.server import LocalArgilla
from curation.errors import CurateError, MissingDependency

if TYPE_CHECKING:  # the SDK is imported when a client is made: it is an optional extra
    import argilla as rg

__all__ = ["LocalArgilla", "ReviewConfig", "connect", "local_server"]


def local_server(config: ReviewConfig, workdir: Path) -> LocalArgilla:
    """The local server whose data lives in <workdir>/argilla."""
    return LocalArgilla(workdir / "argilla", port=config.port, venv_dir=config.server_venv)


def connect(config: ReviewConfig, workdir: Path) -> rg.Argilla:
    """A client for ARGILLA_API_URL/ARGILLA_API_KEY, or for the running local server."""
    try:
        import argilla
    except ImportError as e:
        raise MissingDependency("argilla", "review", "reviewing in Argilla") from e
    url, key = os.environ.get("ARGILLA_API_URL"), os.environ.get("ARGILLA_API_KEY")
    if url:
        if not key:
            raise CurateError("ARGILLA_API_URL is set but ARGILLA_API_KEY is not")
        return argilla.Argilla(api_url=url, api_key=key)
    server = local_server(config, workdir)
    state = server.state()
    if state is None:
        raise CurateError("no Argilla server: start the local one with `curate argilla up`, "
                          "or set ARGILLA_API_URL and ARGILLA_API_KEY")  # fmt: skip
    return argilla.Argilla(api_url=state.url, api_key=server.owner_credentials()["api_key"])
