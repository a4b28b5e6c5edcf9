"""Export: reviewed records as versioned, immutable, byte-reproducible HF datasets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from curation import CurateError
from curation.sources.common import finish_records
from finetune.export import ExportConfig, assign_splits, bump, export, resolve

LINEAGE = {
    "sources": [{"source": "repo", "commits": ["abc123"]}],
    "annotators": ["offline:docstring"],
}


def reviewed(n: int = 60, cluster_size: int = 3) -> pl.DataFrame:
    languages = ["python", "c", "go"]
    rows = [{"kind": "code", "source": "repo", "path": f"src/f{i}.x", "language": languages[i % 3],
             "content": f"def f{i}(x):\n    return x * {i}\n"} for i in range(n)]  # fmt: skip
    frame = finish_records(rows)
    return frame.with_columns(
        content_clean=pl.col("content"),
        instruction=pl.format("Write f{} that scales x.", pl.int_range(n)),
        task=pl.lit("instruction_for_code"),
        annotator=pl.lit("offline:docstring"),
        cost_usd=pl.lit(0.001),
        cluster_id=pl.format("c{}", pl.int_range(n) // cluster_size),
        cluster_size=pl.lit(cluster_size),
        review_status=pl.when(pl.int_range(n) % 10 == 9).then(pl.lit("rejected"))
        .when(pl.int_range(n) % 10 == 8).then(pl.lit("corrected")).otherwise(pl.lit("accepted")),
    ).with_columns(
        final_instruction=pl.when(pl.col("review_status") == "corrected")
        .then(pl.col("instruction") + " (fixed)")
        .when(pl.col("review_status") == "accepted").then("instruction"),
    )  # fmt: skip


def config(root: Path, **settings: object) -> ExportConfig:
    return ExportConfig(root=root, **settings)


def test_no_cluster_straddles_two_splits_and_strata_are_split():
    frame = reviewed(90)
    splits = frame.with_columns(split=assign_splits(frame, ExportConfig().splits, seed=7))
    per_cluster = splits.group_by("cluster_id").agg(pl.col("split").n_unique())
    assert per_cluster["split"].max() == 1
    for language in ("python", "c", "go"):
        assert set(splits.filter(pl.col("language") == language)["split"]) == {
            "train",
            "validation",
            "test",
        }
    counts = splits["split"].value_counts()
    assert dict(counts.iter_rows())["train"] == pytest.approx(72, abs=6)


def test_the_same_input_and_seed_give_byte_identical_exports(tmp_path):
    frame = reviewed()
    first = export(frame, config(tmp_path / "a"), LINEAGE)
    second = export(
        frame.sample(fraction=1.0, shuffle=True, seed=3), config(tmp_path / "b"), LINEAGE
    )
    files = sorted(p.relative_to(first.folder) for p in first.folder.rglob("*") if p.is_file())
    assert [p.as_posix() for p in files] == ["README.md", "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet",
        "lineage.json"]  # fmt: skip
    for path in files:
        assert (first.folder / path).read_bytes() == (second.folder / path).read_bytes(), path
    other_seed = export(frame, config(tmp_path / "c", seed=1), LINEAGE)
    assert other_seed.content_hash != first.content_hash


def test_versions_bump_never_overwrite_and_diff_against_their_parent(tmp_path):
    frame = reviewed()
    first = export(frame, config(tmp_path), LINEAGE)
    assert first.version == "1.0.0" and first.created
    again = export(frame, config(tmp_path), LINEAGE)
    assert (again.version, again.created) == ("1.0.0", False)  # nothing new to version
    changed = frame.with_columns(
        final_instruction=pl.when(pl.col("path") == "src/f0.x")
        .then(pl.lit("Write f0, returning zero."))
        .otherwise("final_instruction")
    ).filter(pl.col("path") != "src/f1.x")
    second = export(changed, config(tmp_path), LINEAGE)
    assert second.version == "1.1.0"
    diff = json.loads((second.folder / "lineage.json").read_text())["diff"]
    removed_id = frame.filter(pl.col("path") == "src/f1.x")["id"][0]
    changed_id = frame.filter(pl.col("path") == "src/f0.x")["id"][0]
    assert (diff["added"], diff["removed"], diff["changed"]) == (0, 1, 1)
    assert diff["removed_ids"] == [removed_id] and diff["changed_ids"] == [changed_id]
    with pytest.raises(CurateError, match="immutable"):
        export(changed.head(20), config(tmp_path), LINEAGE, version="1.0.0")
    assert resolve(tmp_path, "code-instructions") == second.folder
    assert resolve(tmp_path, "code-instructions@1.0.0") == first.folder
    assert bump("1.1.0", "major") == "2.0.0" and bump("1.1.0", "patch") == "1.1.1"


def test_card_and_lineage_say_what_is_in_the_version(tmp_path):
    result = export(reviewed(), config(tmp_path), LINEAGE)
    lineage = json.loads((result.folder / "lineage.json").read_text())
    assert lineage["counts"] == result.counts and sum(result.counts.values()) == 54
    assert lineage["review"]["statuses"] == {"accepted": 48, "corrected": 6, "rejected": 6}
    assert lineage["annotation_cost_usd"] == pytest.approx(0.054)
    assert lineage["sources"] == LINEAGE["sources"] and lineage["parent"] is None
    card = (result.folder / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and "path: data/train-" in card
    assert "code-instructions 1.0.0" in card and "| train |" in card


def test_a_separate_process_loads_the_export_with_plain_datasets(tmp_path):
    result = export(reviewed(), config(tmp_path), LINEAGE)
    script = (
        "import json, sys\n"
        "from datasets import load_dataset\n"
        "by_card = load_dataset(sys.argv[1])\n"
        "by_parquet = load_dataset('parquet', data_dir=sys.argv[1] + '/data')\n"
        "row = by_card['train'][0]\n"
        "print(json.dumps({'card': {k: len(v) for k, v in by_card.items()},\n"
        "                  'parquet': {k: len(v) for k, v in by_parquet.items()},\n"
        "                  'roles': [m['role'] for m in row['messages']],\n"
        "                  'prompt': row['prompt'] == row['messages'][0]['content']}))\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache"), "PATH": ""}
    done = subprocess.run([sys.executable, "-c", script, str(result.folder)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["card"] == loaded["parquet"] == result.counts
    assert loaded["roles"] == ["user", "assistant"] and loaded["prompt"]


def test_nothing_reviewed_is_a_clear_error(tmp_path):
    with pytest.raises(CurateError, match="review some first"):
        export(reviewed().with_columns(review_status=pl.lit("pending")), config(tmp_path), LINEAGE)


def test_pushing_to_the_hub_needs_a_token_and_says_so(tmp_path):
    from finetune.export import push_to_hub

    result = export(reviewed(), config(tmp_path), LINEAGE)
    with pytest.raises(CurateError, match="HF_TOKEN"):
        push_to_hub(result.folder, "org/code-instructions", None)
