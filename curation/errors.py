"""One error family for every stage; the CLI turns these into one-line messages."""


class CurateError(Exception):
    """Base of every error codecurate raises on purpose."""

    exit_code = 2  # what the CLI exits with


class ConfigError(CurateError):
    """A config value is missing or wrong; the message names the key."""


class SchemaError(CurateError):
    """A frame does not match the record schema; the message names the column."""


class SourceError(CurateError):
    """An input (repo, file, API) could not be read."""


class StageError(CurateError):
    """A stage failed; the message names the stage and how to resume."""


class MissingDependency(CurateError):
    """An optional extra is not installed; the message gives the pip command."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs '{package}', which is not installed. "
            f"Install it with: pip install 'codecurate[{extra}]'"
        )


class WorkdirError(CurateError):
    """The workdir cannot be used: it cannot be written, or another run holds it."""


ERROR_MESSAGE_LIMIT = 300  # characters of an exception's message kept in one-line reports


def describe_error(error: BaseException) -> tuple[str, str]:
    """An exception as (type name, the first line of its message, cut to a few hundred
    characters): what a quarantine row or a failed stage shows of it."""
    lines = str(error).strip().splitlines()
    return type(error).__name__, (lines[0] if lines else "")[:ERROR_MESSAGE_LIMIT]
