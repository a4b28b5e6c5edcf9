"""What the lineage and card say about the run: where records were read from (dir sources
too), each stage's settings in words, and which reviewers are machines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel
from test_export import reviewed

from codecurate.lineage import lineage
from curation import FilterConfig, IngestConfig, Manifest
from curation.dedup.config import DedupConfig
from curation.pii.config import PIIConfig
from curation.story import StoryContext
from finetune.release import ExportConfig, export


def manifest(stage: str, config: BaseModel | dict[str, Any], **extra: Any) -> Manifest:
    settings = config if isinstance(config, dict) else config.model_dump(mode="json")
    return Manifest(stage=stage, tag=f"0_{stage}", config=settings, config_hash=f"{stage}-hash",
                    input_hash="in", output_hash="out", rows_in=1, rows_out=1, dropped={},
                    quarantined={}, skipped={}, started_at="2026-01-01T00:00:00+00:00",
                    seconds=0.1, versions={"codecurate": "0.1.0"}, extra=extra)  # fmt: skip


def here(base: Path) -> StoryContext:
    return StoryContext(workdir=base / "work", base=base)


# what every review manifest holds besides its agreement and machine reviewers
REVIEW_NUMBERS = {"dataset": "code-instructions", "workspace": "codecurate",
                  "url": "http://127.0.0.1:6900", "pushed": 30, "unchanged": 0,
                  "review_statuses": {"accepted": 30}}  # fmt: skip


def run_manifests(base: Path, **review_extra: Any) -> list[Manifest]:
    ingest = IngestConfig.model_validate({"sources": [
        {"type": "dir", "path": str(base / "repos" / "acme")},
        {"type": "git", "url": "https://example.org/lib.git", "ref": "v2"},
    ]})  # fmt: skip
    review = {"dataset": "code-instructions", "workspace": "codecurate", "min_submitted": 2}
    return [
        manifest("ingest", ingest),
        manifest("filters", FilterConfig(min_chars=30, disable=["too_long"])),
        manifest("pii", PIIConfig(), found={"EMAIL_ADDRESS": 3}),
        manifest("dedup", DedupConfig(threshold=0.8), clusters_with_duplicates=2),
        manifest("review", review, auto_reviewed=5, **REVIEW_NUMBERS, **review_extra,
                 agreement={"records_with_two_or_more": 2, "unanimous": 1, "rate": 0.5}),
    ]  # fmt: skip


def test_lineage_gives_dir_source_paths_and_every_setting_in_words(tmp_path):
    records = reviewed(30)
    run = lineage(records, run_manifests(tmp_path), here(tmp_path))
    words = {s["stage"]: s["text"] for s in run["settings"]}
    assert list(words) == ["ingest", "filters", "pii", "dedup", "review"]  # pipeline order
    assert run["inputs"] == [
        {"type": "dir", "location": "repos/acme"},
        {"type": "git", "location": "https://example.org/lib.git", "ref": "v2"},
    ]
    assert words["filters"] == (
        "records dropped under 30 or over 500,000 characters, with a line over 1,000 "
        "characters, a mean line over 100 characters, or under 25% letters and digits; "
        "filters off: too_long"
    )
    assert words["pii"].startswith("EMAIL_ADDRESS, IP_ADDRESS")
    assert "replaced by a placeholder such as <EMAIL_ADDRESS>" in words["pii"]
    assert words["pii"].endswith("found: EMAIL_ADDRESS 3")
    assert words["dedup"].startswith("near-duplicates at Jaccard similarity 0.8 or more")
    assert run["stages"]["0_filters"]["config"]["min_chars"] == 30
    assert run["stages"]["0_pii"]["config_hash"] == "pii-hash"
    assert run["machine_reviewers"] == ["auto-review"]  # the review stage's demo reviewer

    card = (
        export(records, ExportConfig(root=tmp_path / "x"), run).folder / "README.md"
    ).read_text()
    assert "- dir: `repos/acme`\n- git: `https://example.org/lib.git` at v2\n" in card
    assert f"- **filters**: {words['filters']}\n" in card
    assert "1 of 2 got the same verdict from all (rate 0.5)" in card


def test_the_review_manifest_names_the_machine_reviewers_when_it_can(tmp_path):
    manifests = run_manifests(tmp_path, machine_reviewers=["triage-bot", "auto-review"])
    run = lineage(reviewed(30), manifests, here(tmp_path))
    assert run["machine_reviewers"] == ["auto-review", "triage-bot"]
    assert "machine_reviewers" not in lineage(reviewed(30), manifests[:-1], here(tmp_path))


def test_a_stage_without_a_sentence_still_gives_its_settings_by_name(tmp_path):
    manifests = [manifest("annotate", {"provider": "offline", "tasks": ["x"]})]  # no model key
    unannotated = reviewed(30).with_columns(annotator=pl.lit(None, pl.String))
    run = lineage(unannotated, manifests, here(tmp_path))
    assert run["settings"] == [{"stage": "annotate", "text": "provider = offline, tasks = ['x']"}]
    assert run["annotators"] == []


def test_the_card_names_the_benchmarks_dedup_checked_against_and_the_verify_sandbox(tmp_path):
    from curation.verify import VerifyConfig

    dedup = DedupConfig(against=[tmp_path / "humaneval.parquet"])
    manifests = [manifest("dedup", dedup, clusters_with_duplicates=0),
                 manifest("verify", VerifyConfig(), network_isolation="netns", fixtures=["sql"],
                          failure_reasons={"sql_error": 2})]  # fmt: skip
    texts = [s["text"] for s in lineage(reviewed(30), manifests, here(tmp_path))["settings"]]
    assert texts[0].endswith(
        "; checked against humaneval (near-copies dropped as near_duplicate_of:<name>)"
    )
    assert texts[1] == (
        "code run in a sandbox (5 s CPU, 1024 MB, network isolation netns); "
        "fixtures: sql; failed records kept, flagged not_verified: sql_error 2"
    )
