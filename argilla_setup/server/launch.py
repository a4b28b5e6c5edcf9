"""Start argilla-server with codecurate's search engine registered: migrate the database,
make sure the owner account exists, then serve. Runs in the server's own virtual
environment (created by `curate argilla up`), never in codecurate's.

    python launch.py --host 127.0.0.1 --port 6900

Settings come from the environment: ARGILLA_HOME_PATH, ARGILLA_DATABASE_URL,
ARGILLA_REDIS_URL, ARGILLA_SEARCH_ENGINE, and the owner's CODECURATE_OWNER_API_KEY and
CODECURATE_OWNER_PASSWORD (read here, never passed on a command line).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

import codecurate_engine  # noqa: F401 - registers the engine before the app starts


def build_settings_adapters_once() -> None:
    """argilla-server 2.8 builds a pydantic TypeAdapter for each metadata property and
    question of every record it validates: 80% of a bulk upsert's time (py-spy), 48 records/s
    on SQLite. The adapters depend on nothing per record, so each is built once."""
    from argilla_server.models import database
    from pydantic import TypeAdapter

    metadata = TypeAdapter(database.MetadataPropertySettings)
    question = TypeAdapter(database.QuestionSettings)
    database.MetadataProperty.parsed_settings = property(
        lambda self: metadata.validate_python(self.settings)
    )
    database.Question.parsed_settings = property(
        lambda self: question.validate_python(self.settings)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6900)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "argilla_server", "database", "migrate"], check=True)

    from argilla_server.cli.database.users.create_default import _create_default

    asyncio.run(
        _create_default(
            os.environ["CODECURATE_OWNER_API_KEY"],
            os.environ["CODECURATE_OWNER_PASSWORD"],
            quiet=True,
        )
    )
    import uvicorn

    build_settings_adapters_once()
    uvicorn.run("argilla_server:app", host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
