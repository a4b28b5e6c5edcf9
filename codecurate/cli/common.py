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
    """Turn codecurate's own errors into one line on stderr and their exit code (2; 128 plus
    the signal for a run a signal stopped)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CurateError as e:
            # soft_wrap: one line however long, so scripts and logs get it whole
            err_console.print(
                "[bold red]error:[/]", escape(str(e)), highlight=False, soft_wrap=True
            )
            raise typer.Exit(e.exit_code) from None
        except Exception as e:
            from pydantic import ValidationError  # here: `curate --help` needs no pydantic

            if not isinstance(e, ValidationError):
                raise
            for item in e.errors():  # an option its config class refuses (--threshold 2)
                field = ".".join(str(part) for part in item["loc"])
                given = "" if isinstance(item["input"], dict) else f" (got {item['input']!r})"
                message = item["msg"].removeprefix("Value error, ")
                err_console.print(f"error: {field}: {message}{given}", markup=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


PathsArgument = Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")]
LanguageOption = Annotated[
    str | None,
    typer.Option(
        help="Language of every input (python, shell, c, ...; prose for none). "
        "Default: from the file name, the #! line or the content."
    ),
]


def load_config(path: Path) -> PipelineConfig:
    """Read and validate `curate.toml` (codecurate.config.load_config, imported when a command
    runs: it loads every stage's settings, which `curate --help` does not need)."""
    from codecurate.config import load_config as load

    return load(path)
