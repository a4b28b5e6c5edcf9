"""`curate pii`: look for PII in files without running the pipeline."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from codecurate.cli.common import LanguageOption, PathsArgument, console, friendly_errors

pii_app = typer.Typer(
    help="Look for PII in files without running the pipeline.", no_args_is_help=True
)
ModeOption = Annotated[str, typer.Option(help="placeholder (<EMAIL>) or pseudonym (<EMAIL_1>).")]
NerOption = Annotated[bool, typer.Option(help="Find PERSON names with spaCy NER.")]


def _pii_engine(mode: str, ner: bool) -> Any:
    from curation.pii import PIIConfig, load_engine

    return load_engine(PIIConfig(mode=mode, ner=ner, workers=1))


@pii_app.command("scan")
@friendly_errors
def pii_scan(paths: PathsArgument, ner: NerOption = True, language: LanguageOption = None) -> None:
    """List the PII found in files: type, line and a masked preview, never the value.

    Example: curate pii scan src/ notes.md
    """
    from rich.table import Table

    from curation.pii.scan import line_number, mask
    from curation.sources.paths import read_inputs

    inputs = read_inputs(paths, language)
    engine = _pii_engine("placeholder", ner)  # scanning shows no replacements
    table = Table(title="PII found")
    for column in ("file", "line", "type", "preview", "recognizer"):
        table.add_column(column)
    for name, text, text_language in inputs:
        for f in engine.analyze([text], [text_language])[0]:
            value = text[f.start : f.end]
            table.add_row(name, str(line_number(text, f.start)), f.type, mask(value), f.recognizer)
    console.print(table if table.row_count else "no PII found")


@pii_app.command("redact")
@friendly_errors
def pii_redact(
    paths: PathsArgument,
    mode: ModeOption = "placeholder",
    ner: NerOption = True,
    language: LanguageOption = None,
) -> None:
    """Print files with their PII replaced, as the pii stage would write them.

    Example: cat issue.md | curate pii redact - --mode pseudonym
    """
    from curation.sources.paths import read_inputs

    inputs = list(read_inputs(paths, language))
    engine = _pii_engine(mode, ner)
    for name, text, text_language in inputs:
        clean, _ = engine.redact(text, engine.analyze([text], [text_language])[0])
        if len(inputs) > 1:
            typer.echo(f"==> {name} <==")
        typer.echo(clean, nl=not clean.endswith("\n"))
