"""What a dataset version is made of, read from the workdir's manifests: where the
records were read from, each stage's settings in words and its config hash, the
annotators and prompts, and who reviewed (which reviewers are machines)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from curation import Manifest


def lineage(records: pl.DataFrame, manifests: list[Manifest], base: Path) -> dict[str, Any]:
    """The run's part of a version's lineage; paths under `base` (the config's folder) are
    given relative to it, so a card does not carry a machine's home directory."""
    by_stage = {m.stage: m for m in manifests}
    ingest, annotate, review = (by_stage.get(s) for s in ("ingest", "annotate", "review"))
    return {
        "inputs": [_input(s, base) for s in ingest.config.get("sources", [])] if ingest else [],
        "stages": {
            m.tag: {
                "config_hash": m.config_hash,
                "input_hash": m.input_hash,
                "codecurate": m.versions.get("codecurate"),
            }
            for m in manifests
        },
        # a list, in pipeline order (lineage.json sorts the keys of objects)
        "settings": [{"stage": m.stage, "text": _in_words(m)} for m in manifests],
        "filters": by_stage["filters"].config if "filters" in by_stage else None,
        "pii": by_stage["pii"].config if "pii" in by_stage else None,
        "dedup": by_stage["dedup"].config if "dedup" in by_stage else None,
        "annotators": sorted(records["annotator"].drop_nulls().unique().to_list()),
        "prompt_hashes": annotate.extra.get("prompt_hashes", {}) if annotate else {},
        "machine_reviewers": machine_reviewers(review),
        "review_progress": review.extra.get("review_statuses", {}) if review else {},
        "review_agreement": review.extra.get("agreement") if review else None,
    }


def machine_reviewers(review: Manifest | None) -> list[str]:
    """The reviewers that are programs: as the review stage's manifest names them, else its
    demo reviewer (`curate run --auto-review`), the one machine reviewer it has."""
    if review is None:
        return []
    if "machine_reviewers" in review.extra:
        return sorted(review.extra["machine_reviewers"])
    from argilla_setup.votes import AUTO_REVIEWER  # the review stage ran: its extra is here

    return [AUTO_REVIEWER]


def _input(source: dict[str, Any], base: Path) -> dict[str, Any]:
    """A configured source: its type, where it was read from, and its other settings."""
    location = source.get("path") or source.get("url") or ""
    if Path(location).is_absolute() and Path(location).is_relative_to(base):
        location = Path(location).relative_to(base).as_posix()
    others = {k: v for k, v in source.items() if k not in ("type", "path", "url") and v is not None}
    return {"type": source.get("type"), "location": str(location), **others}


def _in_words(manifest: Manifest) -> str:
    """A stage's settings as a sentence; `key = value` pairs for a stage without one (or
    whose settings changed shape), so nothing is only a hash."""
    describe = _SENTENCES.get(manifest.stage)
    try:
        if describe is not None:
            return describe(manifest.config, manifest.extra)
    except (KeyError, TypeError, ValueError):
        pass
    return ", ".join(f"{key} = {value}" for key, value in sorted(manifest.config.items()))


def _ingest(c: dict[str, Any], extra: dict[str, Any]) -> str:
    return (
        f"languages {', '.join(c['languages'])}; files over {c['max_file_bytes']:,} bytes "
        f"quarantined; folders named {', '.join(c['exclude_dirs'])} skipped as vendored; "
        f"{len(c['generated_files'])} patterns of generated files skipped"
    )


def _filters(c: dict[str, Any], extra: dict[str, Any]) -> str:
    off = f"; filters off: {', '.join(c['disable'])}" if c["disable"] else ""
    return (
        f"records dropped under {c['min_chars']:,} or over {c['max_chars']:,} characters, with a "
        f"line over {c['max_line_length']:,} characters, a mean line over "
        f"{c['max_mean_line_length']:g} characters, or under {c['min_alphanum_fraction']:.0%} "
        f"letters and digits{off}"
    )


def _pii(c: dict[str, Any], extra: dict[str, Any]) -> str:
    how = ("a placeholder such as <EMAIL_ADDRESS>" if c["mode"] == "placeholder"
           else "a pseudonym consistent within a file, such as <NAME_1>")  # fmt: skip
    ner = (f"names found by spaCy NER ({c['spacy_model']}) in comments, strings and prose"
           if c["ner"] else "no NER")  # fmt: skip
    ips = "private IPs included" if c["include_private_ips"] else "private IPs left as they are"
    found = ", ".join(f"{k} {v:,}" for k, v in sorted(extra.get("found", {}).items())) or "none"
    return (
        f"{', '.join(c['entities'])} replaced by {how}; {ner}; {ips}; findings scored under "
        f"{c['score_threshold']} ignored; found: {found}"
    )


def _dedup(c: dict[str, Any], extra: dict[str, Any]) -> str:
    others = "dropped" if c["drop_duplicates"] else "kept, marked"
    return (
        f"near-duplicates at Jaccard similarity {c['threshold']} or more over {c['shingle']} "
        f"{c['ngram']}-grams (MinHash {c['num_perm']} permutations, {extra.get('bands')} bands "
        f"of {extra.get('rows')} rows, verified {c['verify']}); one record per cluster kept "
        f"({c['representative']}), the others {others}; "
        f"{extra.get('clusters_with_duplicates', 0):,} clusters had duplicates"
        + _checked_against(c.get("against") or [])
    )


def _checked_against(indexes: list[str]) -> str:
    """The held-out indexes (benchmarks, earlier exports) near-copies of which were dropped."""
    if not indexes:
        return ""
    names = ", ".join(Path(index).name.removesuffix(".parquet") for index in indexes)
    return f"; checked against {names} (near-copies dropped as near_duplicate_of:<name>)"


def _verify(c: dict[str, Any], extra: dict[str, Any]) -> str:
    fixtures = ", ".join(extra.get("fixtures", [])) or "none"
    failed = ", ".join(f"{k} {v:,}" for k, v in extra.get("failure_reasons", {}).items())
    return (
        f"code run in a sandbox ({c['cpu_seconds']} s CPU, {c['memory_mb']} MB, network "
        f"isolation {extra.get('network_isolation', '?')}); fixtures: {fixtures}; failed "
        f"records {'dropped' if c['drop_failed'] else 'kept, flagged not_verified'}: "
        f"{failed or 'none'}"
    )


def _annotate(c: dict[str, Any], extra: dict[str, Any]) -> str:
    return (
        f"{extra.get('annotator', c['provider'])} (provider {c['provider']}, model "
        f"{c['model']}), tasks {', '.join(c['tasks'])}; spent {extra.get('spent_usd', 0)} USD "
        f"of a {c['budget_usd']} USD budget"
    )


def _review(c: dict[str, Any], extra: dict[str, Any]) -> str:
    machine = extra.get("auto_reviewed", 0)
    return (
        f"Argilla dataset {c['dataset']} (workspace {c['workspace']}), {c['min_submitted']} "
        f"reviewer(s) asked per record; {machine:,} records answered by the machine reviewer "
        "in its last run"
    )


_SENTENCES: dict[str, Callable[[dict[str, Any], dict[str, Any]], str]] = {
    "ingest": _ingest,
    "filters": _filters,
    "pii": _pii,
    "dedup": _dedup,
    "verify": _verify,
    "annotate": _annotate,
    "review": _review,
}
