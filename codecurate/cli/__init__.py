"""The `curate` command line: thin wrappers over library calls, one module per
command group."""

from __future__ import annotations

import typer

from codecurate.cli import annotate, argilla, datasets, dedup, finetune, pii, pipeline
from codecurate.cli.common import console, err_console

app = typer.Typer(
    help="Curate code datasets for LLMs: ingest, filter, strip PII, dedup, annotate, review, "
    "export.\n\nExample: curate init && curate run",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
for commands in (pipeline.app, annotate.app, datasets.app, finetune.app):
    app.add_typer(commands)
app.add_typer(pipeline.github_app, name="github")
app.add_typer(dedup.dedup_app, name="dedup")
app.add_typer(annotate.cost_app, name="cost")
app.add_typer(argilla.argilla_app, name="argilla")
app.add_typer(datasets.datasets_app, name="datasets")
app.add_typer(pii.pii_app, name="pii")

__all__ = ["app", "console", "err_console", "main"]


def main() -> None:
    app()
