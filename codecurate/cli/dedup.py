"""`curate dedup`: look for near-duplicates in files without running the pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from codecurate.cli.common import (
    ConfigOption,
    LanguageOption,
    PathsArgument,
    console,
    friendly_errors,
    load_config,
)

dedup_app = typer.Typer(
    help="Look for near-duplicates without running the pipeline.", no_args_is_help=True
)


@dedup_app.command("scan")
@friendly_errors
def dedup_scan(
    paths: PathsArgument,
    threshold: Annotated[
        float | None,
        typer.Option(help="Jaccard similarity of near-duplicates (default: the stage's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print clusters as JSON.")] = False,
    strip_comments: Annotated[
        bool, typer.Option(help="Compare code without its comments (licence headers, notes).")
    ] = False,
    language: LanguageOption = None,
) -> None:
    """List near-duplicate clusters among files, compared as the dedup stage compares them
    (its defaults: leading licence headers ignored): each member with its Jaccard to the first.

    Example: curate dedup scan src/ vendor/ --threshold 0.85
    """
    from curation.dedup import DedupConfig, check_dependencies
    from curation.sources.paths import read_inputs

    check_dependencies()
    from curation.dedup.minhash import scan_clusters

    names, texts, languages = [], [], []
    for name, text, text_language in read_inputs(paths, language):
        names.append(name)
        texts.append(text)
        languages.append(text_language)
    overrides = {} if threshold is None else {"threshold": threshold}
    config = DedupConfig(strip_comments=strip_comments, **overrides)
    clusters = scan_clusters(names, texts, config, languages)
    if as_json:
        typer.echo(json.dumps(clusters, indent=2))
        return
    if not clusters:
        console.print(
            f"no near-duplicates among {len(texts)} files at threshold {config.threshold}"
        )
    for number, cluster in enumerate(clusters, start=1):
        console.print(f"cluster {number} ({len(cluster)} files)")
        for member in cluster:
            console.print(f"  {member['jaccard']:.2f}  {member['path']}", highlight=False)


@dedup_app.command("index-benchmark")
@friendly_errors
def dedup_index_benchmark(
    names: Annotated[list[str], typer.Argument(help="Benchmarks to index (humaneval).")],
    out: Annotated[Path, typer.Option(help="Folder for <name>.parquet.")] = Path("indexes"),
    config: ConfigOption = Path("curate.toml"),
) -> None:
    """Write signature indexes of public benchmarks under [dedup]'s settings; list them in
    [dedup].against to drop near-copies as near_duplicate_of:<name> (decontamination).

    Example: curate dedup index-benchmark humaneval --out data/indexes
    """
    from curation.dedup import check_dependencies
    from curation.dedup.benchmarks import build_benchmark_index

    check_dependencies()
    settings = load_config(config).dedup
    for name in names:
        console.print(f"written: {build_benchmark_index(name, out, settings)}")
