"""The dataset card (README.md): what is in a version, who reviewed it, where it came from.

It says what the lineage says, in words: human and machine reviews are counted apart (a
machine reviewer is named by the review stage, never assumed to be a person).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from curation.schema import SPLITS
from finetune.release.config import ExportConfig
from finetune.release.registry import Version
from finetune.release.versions import CHECKSUMS, shard_path

_SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


def human_reviews(machine_reviewers: Iterable[str]) -> pl.Expr:
    """How many people (reviewers that are not machines) reviewed each record."""
    machines = sorted(machine_reviewers)
    return (
        pl.col("reviewers")
        .list.eval(pl.element().filter(~pl.element().is_in(machines)))
        .list.len()
        .fill_null(0)
    )


def review_summary(chosen: pl.DataFrame, machine_reviewers: Iterable[str]) -> dict[str, Any]:
    """Who reviewed the exported records: people and machines counted apart."""
    machines = sorted(machine_reviewers)
    per_record = chosen.select(
        people=human_reviews(machines),
        total=pl.col("reviewers").list.len().fill_null(0),
        names=pl.col("reviewers").fill_null(pl.lit([], dtype=pl.List(pl.String))),
    ).with_columns(machines=pl.col("total") - pl.col("people"))
    people, machine, total = per_record["people"], per_record["machines"], per_record["total"]
    names = per_record["names"].explode().drop_nulls().unique()
    return {
        "records": chosen.height,
        "exported_statuses": dict(sorted(chosen["review_status"].value_counts().iter_rows())),
        "by_people_only": int(((people > 0) & (machine == 0)).sum()),
        "by_people_and_machine": int(((people > 0) & (machine > 0)).sum()),
        "by_machine_only": int(((people == 0) & (machine > 0)).sum()),
        "by_no_one_recorded": int((total == 0).sum()),
        "reviews_by_people": int(people.sum()),
        "reviews_by_machines": int(machine.sum()),
        "people": int((~names.is_in(machines)).sum()),
        "machine_reviewers": sorted(set(names.to_list()) & set(machines)),
        "reviewers_per_record": {str(k): v for k, v in sorted(total.value_counts().iter_rows())},
    }


def dataset_card(
    config: ExportConfig, version: str, frames: dict[str, pl.DataFrame], lineage: dict[str, Any]
) -> str:
    """README.md with the YAML the Hub and `datasets` read (configs, features, licence)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    every = pl.concat(frames.values())
    languages = sorted(set(every["language"].drop_nulls().to_list()))
    licenses = sorted(set(every["license"].drop_nulls().to_list()))
    license = config.license or (licenses[0].lower() if len(licenses) == 1 else "other")
    data = DatasetCardData(
        pretty_name=f"{config.name} {version}",
        language=["en"],
        license=license,
        task_categories=["text-generation"],
        tags=["code", "instruction-tuning", "codecurate", *languages],
        size_categories=[next((c for n, c in _SIZES if every.height < n), "n>10M")],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": shard_path(s)} for s in frames],
            }
        ],
    )
    review = lineage["review"]
    sections = [
        _intro(config.name, version, lineage.get("annotators", []), review),
        _splits(config, frames, lineage),
        _review(review, lineage.get("review_agreement")),
        _topics(lineage.get("topics")),
        _sources(lineage.get("sources", []), lineage.get("inputs", [])),
        _processing(lineage.get("settings", [])),
        _history(lineage),
        _columns(languages, licenses),
        _load(config.name, version, lineage["content_hash"]),
    ]
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(sections)))


def _intro(name: str, version: str, annotators: list[str], review: dict[str, Any]) -> str:
    people = review["by_people_only"] + review["by_people_and_machine"]
    machine_only, records = review["by_machine_only"], review["records"]
    machines = ", ".join(review["machine_reviewers"]) or "a machine reviewer"
    if people == 0 and machine_only:
        who = (
            f"reviewed in Argilla by a machine reviewer only ({machines}): no person has "
            "reviewed these records"
        )
    elif machine_only:
        who = (
            f"reviewed in Argilla: {people:,} of {records:,} records by people, "
            f"{machine_only:,} by a machine reviewer only ({machines})"
        )
    elif review["by_no_one_recorded"] == records:
        return (
            f"\n# {name} {version}\n\nInstruction/code pairs from pair datasets, curated by "
            "codecurate: ingested, filtered, stripped of PII and near-deduplicated. No review "
            "is recorded: the instructions are as the source datasets gave them.\n"
        )
    else:
        who = "reviewed by people in Argilla"
    annotated = ", ".join(annotators) or "an LLM"
    return (
        f"\n# {name} {version}\n\nInstruction/code pairs curated by codecurate: ingested, "
        f"filtered, stripped of PII, near-deduplicated, annotated by {annotated} and {who}. "
        "Only accepted or corrected pairs are here.\n"
    )


def _splits(config: ExportConfig, frames: dict[str, pl.DataFrame], lineage: dict[str, Any]) -> str:
    rows = "".join(f"| {s} | {frames[s].height:,} |\n" for s in frames)
    empty = [s for s in config.split_names if s not in frames]
    note = (
        f" No record fell in {', '.join(empty)}, so it is not part of this version."
        if empty
        else ""
    )
    return (
        "## Splits\n\n| split | records |\n|---|---|\n"
        + rows
        + f"\nNo near-duplicate cluster is in two splits. A record keeps its split in every "
        f"later version of {config.name}; clusters new to the dataset are placed by a seeded "
        f"hash of their id (seed {config.seed}), stratified by language and task, with at least "
        f"{lineage['min_clusters']} cluster(s) per split.{note}\n"
    )


def _review(review: dict[str, Any], agreement: dict[str, Any] | None) -> str:
    machines = ", ".join(review["machine_reviewers"]) or "none"
    table = "".join(
        f"| {label} | {review[key]:,} |\n"
        for label, key in (
            ("people only", "by_people_only"),
            ("people and a machine", "by_people_and_machine"),
            ("a machine only", "by_machine_only"),
            ("no reviewer recorded", "by_no_one_recorded"),
        )
    )
    per_record = ", ".join(f"{n}: {c:,}" for n, c in review["reviewers_per_record"].items())
    statuses = ", ".join(f"{s} {n:,}" for s, n in review["exported_statuses"].items())
    return (
        "## Review\n\n| reviewed by | records |\n|---|---|\n"
        + table
        + f"\nReviews: {review['reviews_by_people']:,} by {_people(review['people'])}, "
        f"{review['reviews_by_machines']:,} by machine reviewers ({machines}). Reviewers per "
        f"record (reviewers: records): {per_record or 'none'}. Statuses: {statuses}. "
        f"{_agreement(agreement)} Each record's `reviewers` column names who reviewed it and "
        "`human_reviews` counts the people among them.\n"
    )


def _topics(topics: dict[str, Any] | None) -> str:
    if not topics or not topics["topics"]:
        return ""
    rows = "".join(
        f"| {t['label']} | {t['records']:,} | {t['exported']:,} | {t['share']:.1%} |\n"
        for t in topics["topics"]
    )
    cap = (
        f"No topic holds more than {topics['max_share']:.0%} of this version "
        "(`[export] max_topic_share`); the records a topic lost are the ones with the largest ids."
        if topics["max_share"]
        else "No cap on a topic's share was set (`[export] max_topic_share`)."
    )
    return (
        "## Topics\n\nTopics of the instructions (TF-IDF and k-means, each named by its top "
        "terms):\n\n| topic | records | exported | share |\n|---|---|---|---|\n"
        + rows
        + f"\n{cap}\n"
    )


def _agreement(agreement: dict[str, Any] | None) -> str:
    if not agreement:
        return "The review stage recorded no agreement."
    if not agreement.get("records_with_two_or_more"):
        return "No record had two reviewers, so there is no agreement to report."
    return (
        f"Agreement over the review stage's records with two or more reviewers: "
        f"{agreement['unanimous']:,} of {agreement['records_with_two_or_more']:,} got the "
        f"same verdict from all (rate {agreement['rate']})."
    )


def _sources(sources: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"| {s['source']} | {s['records']:,} | {', '.join(s['commits']) or 'none recorded'} |\n"
        for s in sources
    )
    read = "".join(
        f"- {i['type']}: `{i['location']}`" + (f" at {i['ref']}" if i.get("ref") else "") + "\n"
        for i in inputs
    )
    return (
        "## Sources\n\n| source | records | commits |\n|---|---|---|\n"
        + rows
        + ("\nRead from:\n\n" + read if read else "")
    )


def _processing(settings: list[dict[str, str]]) -> str:
    if not settings:
        return "## Processing\n\nNo stage settings were recorded.\n"
    return "## Processing\n\n" + "".join(f"- **{s['stage']}**: {s['text']}\n" for s in settings)


def _history(lineage: dict[str, Any]) -> str:
    diff = lineage["diff"]
    parent = lineage["parent"]
    change = (
        f"against {parent}: {diff['added']:,} added, {diff['removed']:,} removed, "
        f"{diff['changed']:,} changed"
        if parent
        else "the first version"
    )
    return (
        f"## History\n\nThis is {change}. Annotation cost: "
        f"{lineage['annotation_cost_usd']} USD. Stage config hashes, prompt hashes and "
        "every setting are in `lineage.json`.\n"
    )


def _columns(languages: list[str], licenses: list[str]) -> str:
    return (
        "## Columns\n\n`messages` (chat), `prompt`/`completion`, the record's origin (`source`, "
        "`path`, `license`, `commit_sha`, `cluster_id`), `annotator`, `review_status`, "
        f"`reviewers`, `human_reviews`, `quality_flags`. Programming languages: "
        f"{', '.join(languages) or 'none'}. Licences of the sources: "
        f"{', '.join(licenses) or 'unknown'}.\n"
    )


def _load(name: str, version: str, content_hash: str) -> str:
    return f"""## Load and verify

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_dir="{name}/{version}/data")
```

`{CHECKSUMS}` lists the sha256 of every file (`sha256sum -c {CHECKSUMS}`); `curate pull`
checks it before it hands the version over. Content hash `{content_hash[:16]}`.
"""


def describe_version(version: Version) -> list[tuple[str, str]]:
    """What `curate datasets show` prints: (label, value) pairs read from the lineage."""
    lineage = version.lineage
    review, diff = lineage["review"], lineage["diff"]
    people = review["by_people_only"] + review["by_people_and_machine"]
    machines = ", ".join(review["machine_reviewers"]) or "none"
    sources = ", ".join(f"{s['source']} ({s['records']:,})" for s in lineage["sources"])
    described = [
        (
            "splits",
            ", ".join(f"{s} {lineage['counts'][s]:,}" for s in SPLITS if s in lineage["counts"]),
        ),
        ("parent", lineage["parent"] or "none"),
        ("diff", f"+{diff['added']} -{diff['removed']} ~{diff['changed']}"),
        ("annotators", ", ".join(lineage.get("annotators", [])) or "none"),
        (
            "reviewed",
            f"{people:,} of {review['records']:,} records by people, "
            f"{review['by_machine_only']:,} by a machine only ({machines})",
        ),
        (
            "reviews",
            f"{review['reviews_by_people']:,} by {_people(review['people'])}, "
            f"{review['reviews_by_machines']:,} by machines",
        ),
        ("agreement", _agreement(lineage.get("review_agreement"))),
        ("annotation cost", f"{lineage['annotation_cost_usd']} USD"),
        ("sources", sources),
        *[("read from", f"{i['type']} {i['location']}") for i in lineage.get("inputs", [])],
        *[(s["stage"], s["text"]) for s in lineage.get("settings", [])],
        ("content hash", lineage["content_hash"]),
        ("verified", f"every file matches {CHECKSUMS}"),
    ]
    return described


def _people(count: int) -> str:
    return "1 person" if count == 1 else f"{count:,} people"
