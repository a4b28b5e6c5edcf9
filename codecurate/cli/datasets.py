"""Dataset versions: `curate export`, `curate pull` and `curate datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codecurate.cli.common import ConfigOption, console, friendly_errors, load_config
from curation.errors import CurateError

app = typer.Typer()
datasets_app = typer.Typer(help="Exported dataset versions.", no_args_is_help=True)


@app.command("export")
@friendly_errors
def export_dataset(
    config: ConfigOption = Path("curate.toml"),
    bump: Annotated[str, typer.Option(help="Which part of the version to bump.")] = "minor",
    version: Annotated[
        str | None, typer.Option(help="This exact version instead of a bump.")
    ] = None,
    min_clusters: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Clusters each split needs at least ([export].min_clusters; "
            "0 lets a small export leave a split empty).",
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option(help="Also upload it to [export].hub_repo, tagged v<version>.")
    ] = False,
) -> None:
    """Export the accepted and corrected records as the next version of the dataset:
    train/validation/test split by near-duplicate cluster (a record keeps its split in every
    later version), Parquet, a dataset card, the lineage and every file's sha256. The latest
    version is verified first; an export identical to it writes nothing.

    Example: curate export -c curate.toml --bump minor
    """

    from codecurate.lineage import lineage
    from codecurate.summary import read_manifests
    from curation import stage_frame
    from curation.story import StoryContext, counts_text
    from finetune.release import export

    if bump not in ("major", "minor", "patch"):
        raise CurateError(f"--bump {bump!r}: one of major, minor, patch")
    pipeline = load_config(config)
    settings = pipeline.export
    if min_clusters is not None:
        settings = settings.model_copy(update={"min_clusters": min_clusters})
    manifests = read_manifests(pipeline.workdir)
    if not manifests or manifests[-1].stage not in ("review", "annotate"):
        raise CurateError(f"nothing reviewed in {pipeline.workdir}: run the pipeline through "
                          "review (curate argilla sync) first")  # fmt: skip
    records = stage_frame(pipeline.workdir / manifests[-1].tag).collect()
    run = lineage(records, manifests, StoryContext(pipeline.workdir, config.resolve().parent))
    result = export(records, settings, run, version, bump)  # type: ignore[arg-type]
    state = "exported" if result.created else "unchanged since"
    counts = counts_text(result.counts)
    console.print(f"{state} {result.name}@{result.version}: {counts}\n  {result.folder}")
    if push:
        import os

        from finetune.release import push_to_hub

        if pipeline.export.hub_repo is None:
            raise CurateError("--push needs [export].hub_repo")
        url = push_to_hub(result.folder, pipeline.export.hub_repo, os.environ.get("HF_TOKEN"))
        console.print(f"pushed: {url}")


@app.command()
@friendly_errors
def pull(
    ref: Annotated[str, typer.Argument(help="name@version, or name for the latest.")],
    config: ConfigOption = Path("curate.toml"),
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also save it here for datasets.load_from_disk, with its card and lineage."
        ),
    ] = None,
) -> None:
    """Find a dataset version and verify every file against its sha256 (and copy it for
    load_from_disk with --out); prints how to load it with plain `datasets`.

    Example: curate pull code-instructions@1.1.0 --out /data/ci-1.1.0
    """
    from finetune.release import open_version

    version = open_version(load_config(config).export.root, ref)
    if out is not None:
        from finetune.release import pull as pull_version

        pull_version(version, out)
        console.print(f"saved to {out}: datasets.load_from_disk({str(out)!r})")
    console.print(f"{version.ref} verified: {version.folder}\n"
                  f"  datasets.load_dataset({str(version.folder)!r})")  # fmt: skip


@datasets_app.command("list")
@friendly_errors
def datasets_list(config: ConfigOption = Path("curate.toml")) -> None:
    """Every exported dataset with its versions, counts and dates.

    Example: curate datasets list -c curate.toml
    """
    from curation.story import counts_text
    from finetune.release import dataset_names, read_registry

    root = load_config(config).export.root
    names = dataset_names(root)
    if not names:
        console.print(f"no datasets under {root}; create one with: curate export")
    for name in names:
        for entry in read_registry(root, name):
            counts = counts_text(entry["counts"])
            digest = (entry["content_hash"] or "unknown")[:12]
            console.print(f"{name}@{entry['version']}  {entry['created_at']}  {counts}  "
                          f"sha256 {digest}", highlight=False)  # fmt: skip


@datasets_app.command("show")
@friendly_errors
def datasets_show(
    ref: Annotated[str, typer.Argument(help="name@version, or name for the latest.")],
    config: ConfigOption = Path("curate.toml"),
) -> None:
    """A verified version's counts, parent, diff, review (people and machines), sources and
    settings (its lineage).

    Example: curate datasets show code-instructions@1.0.0
    """
    from finetune.release import describe_version, open_version

    version = open_version(load_config(config).export.root, ref)
    console.print(f"{version.ref}  ({version.folder})", highlight=False)
    for label, value in describe_version(version):
        console.print(f"  {label:16} {value}", highlight=False, markup=False, soft_wrap=True)


@datasets_app.command("diff")
@friendly_errors
def datasets_diff(
    old: Annotated[str, typer.Argument(help="name@version")],
    new: Annotated[str, typer.Argument(help="name@version")],
    config: ConfigOption = Path("curate.toml"),
) -> None:
    """Record by record, what changed between two verified versions: added and removed
    records, instructions before and after, status and split changes, and a summary.

    Example: curate datasets diff code-instructions@1.0.0 code-instructions@1.1.0
    """
    from finetune.release import diff_versions, open_version, render_diff

    root = load_config(config).export.root
    diff = diff_versions(open_version(root, old), open_version(root, new))
    for line in render_diff(diff):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
