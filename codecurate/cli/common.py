"""What every command group shares: the consoles, the one-line error wrapper, common options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from curation.errors import CurateError

if TYPE_CHECKING:
    from codecurate.config import PipelineConfig

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline config file.", show_default=True)
]


def friendly_errors(command: F) -> F:
    """Turn codecurate's own errors into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CurateError as e:
            # one line however narrow the terminal; the message is text, not markup
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False,
                              soft_wrap=True)  # fmt: skip
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


PathsArgument = Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")]


def load_config(path: Path) -> PipelineConfig:
    """Read and validate `curate.toml` (codecurate.config.load_config, imported when a command
    runs: it loads every stage's settings, which `curate --help` does not need)."""
    from codecurate.config import load_config as load

    return load(path)
