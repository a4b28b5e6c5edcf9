"""The local Argilla: `launcher.py` starts and stops it from codecurate; `launch.py` and
`codecurate_engine.py` (argilla-server's entry point and the search engine registered with
it) run inside argilla-server's own virtualenv, from `requirements.txt`, never here."""

from argilla_setup.server.launcher import LocalArgilla, ServerState

__all__ = ["LocalArgilla", "ServerState"]
