"""Export: reviewed records as versioned, immutable, byte-reproducible HF datasets whose
splits hold still from version to version and whose card says who reviewed them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from curation import CurateError
from curation.sources.common import finish_records
from finetune.release import ExportConfig, bump, export, open_version
from finetune.release.splits import assign_splits
from finetune.release.versions import read_rows

RUN = {"annotators": ["offline:docstring"], "machine_reviewers": ["auto-review"]}
SPLITS = ("train", "validation", "test")


def reviewed(n: int = 60, cluster_size: int = 3, start: int = 0) -> pl.DataFrame:
    """n annotated records in clusters of `cluster_size`, every tenth rejected and every
    tenth (shifted by one) corrected; ids are stable for the same i."""
    languages = ["python", "c", "go"]
    index = range(start, start + n)
    rows = [{"kind": "code", "source": "repo", "path": f"src/f{i}.x", "language": languages[i % 3],
             "content": f"def f{i}(x):\n    return x * {i}\n"} for i in index]  # fmt: skip
    i = pl.int_range(start, start + n)
    frame = finish_records(rows)
    return frame.with_columns(
        content_clean=pl.col("content"),
        instruction=pl.format("Write f{} that scales x.", i),
        task=pl.lit("instruction_for_code"),
        annotator=pl.lit("offline:docstring"),
        cost_usd=pl.lit(0.001),
        cluster_id=pl.format("c{}", i // cluster_size),
        cluster_size=pl.lit(cluster_size),
        reviewers=pl.lit(["demo"]),
        review_status=pl.when(i % 10 == 9).then(pl.lit("rejected"))
        .when(i % 10 == 8).then(pl.lit("corrected")).otherwise(pl.lit("accepted")),
    ).with_columns(
        final_instruction=pl.when(pl.col("review_status") == "corrected")
        .then(pl.col("instruction") + " (fixed)")
        .when(pl.col("review_status") == "accepted").then("instruction"),
    )  # fmt: skip


def config(root: Path, **settings: object) -> ExportConfig:
    return ExportConfig(root=root, **settings)


def splits_of(folder: Path) -> dict[str, str]:
    return dict(read_rows(folder, ["id"]).iter_rows())


def reject(frame: pl.DataFrame, paths: list[str]) -> pl.DataFrame:
    return frame.with_columns(
        review_status=pl.when(pl.col("path").is_in(paths)).then(pl.lit("rejected"))
        .otherwise("review_status")
    )  # fmt: skip


def test_no_cluster_straddles_two_splits_and_strata_are_split():
    frame = reviewed(90)
    splits = frame.with_columns(split=assign_splits(frame, ExportConfig().splits, 7, {}))
    per_cluster = splits.group_by("cluster_id").agg(pl.col("split").n_unique())
    assert per_cluster["split"].max() == 1
    for language in ("python", "c", "go"):
        assert set(splits.filter(pl.col("language") == language)["split"]) == set(SPLITS)
    assert dict(splits["split"].value_counts().iter_rows()) == {
        "train": 72, "validation": 9, "test": 9}  # fmt: skip


def test_an_export_whose_records_all_keep_their_remembered_splits_moves_none():
    frame = reviewed(90)  # 72/9/9: each split holds exactly its share, none lacks any
    first = assign_splits(frame, ExportConfig().splits, 7, {})
    remembered = dict(zip(frame["id"], first, strict=True))
    assert assign_splits(frame, ExportConfig().splits, 7, remembered).equals(first)


def test_the_same_input_and_seed_give_byte_identical_exports(tmp_path):
    frame = reviewed()
    first = export(frame, config(tmp_path / "a"), RUN)
    second = export(frame.sample(fraction=1.0, shuffle=True, seed=3), config(tmp_path / "b"), RUN)
    files = sorted(p.relative_to(first.folder) for p in first.folder.rglob("*") if p.is_file())
    assert [p.as_posix() for p in files] == ["README.md", "checksums.sha256",
        "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet", "lineage.json"]  # fmt: skip
    for path in files:
        assert (first.folder / path).read_bytes() == (second.folder / path).read_bytes(), path
    other_seed = export(frame, config(tmp_path / "c", seed=1), RUN)
    assert other_seed.content_hash != first.content_hash


def test_versions_bump_never_overwrite_and_diff_against_their_parent(tmp_path):
    frame = reviewed()
    first = export(frame, config(tmp_path), RUN)
    assert first.version == "1.0.0" and first.created
    again = export(frame, config(tmp_path), RUN)
    assert (again.version, again.created) == ("1.0.0", False)  # nothing new to version
    changed = frame.with_columns(
        final_instruction=pl.when(pl.col("path") == "src/f0.x")
        .then(pl.lit("Write f0, returning zero."))
        .otherwise("final_instruction")
    ).filter(pl.col("path") != "src/f1.x")
    second = export(changed, config(tmp_path), RUN)
    assert second.version == "1.1.0"
    diff = json.loads((second.folder / "lineage.json").read_text())["diff"]
    removed_id = frame.filter(pl.col("path") == "src/f1.x")["id"][0]
    changed_id = frame.filter(pl.col("path") == "src/f0.x")["id"][0]
    assert (diff["added"], diff["removed"], diff["changed"]) == (0, 1, 1)
    assert diff["removed_ids"] == [removed_id] and diff["changed_ids"] == [changed_id]
    assert diff["changed_fields"]["instruction"] == 1 and diff["changed_fields"]["split"] == 0
    with pytest.raises(CurateError, match="immutable"):
        export(changed.head(20), config(tmp_path), RUN, version="1.0.0")
    assert open_version(tmp_path, "code-instructions").folder == second.folder
    assert open_version(tmp_path, "code-instructions@1.0.0").folder == first.folder
    assert bump("1.1.0", "major") == "2.0.0" and bump("1.1.0", "patch") == "1.1.1"


def test_two_rejections_move_no_other_record_between_splits(tmp_path):
    frame = reviewed(90)
    first = export(frame, config(tmp_path), RUN)
    second = export(reject(frame, ["src/f0.x", "src/f4.x"]), config(tmp_path), RUN)
    before, after = splits_of(first.folder), splits_of(second.folder)
    assert len(before) - len(after) == 2
    assert {i: before[i] for i in after} == after


def test_three_versions_with_additions_removals_and_corrections_never_move_a_record(tmp_path):
    base = reviewed(90)
    v1 = base
    # v2: four records rejected, a cluster and a half of new records (one joins cluster c0),
    # and three instructions corrected
    joined = reviewed(1, start=500).with_columns(cluster_id=pl.lit("c0"), language=pl.lit("python"))
    added = pl.concat([reviewed(12, start=200), joined])
    corrected = ["src/f3.x", "src/f10.x", "src/f20.x"]
    v2 = pl.concat([reject(v1, ["src/f1.x", "src/f2.x", "src/f30.x", "src/f31.x"]), added])
    v2 = v2.with_columns(
        review_status=pl.when(pl.col("path").is_in(corrected)).then(pl.lit("corrected"))
        .otherwise("review_status"),
        final_instruction=pl.when(pl.col("path").is_in(corrected))
        .then(pl.col("instruction") + " Say what it returns.").otherwise("final_instruction"),
    )  # fmt: skip
    # v3: two of v2's rejections come back, more new records, other records rejected
    v3 = pl.concat([
        reject(v2, ["src/f40.x", "src/f41.x", "src/f205.x"]).with_columns(
            review_status=pl.when(pl.col("path").is_in(["src/f1.x", "src/f30.x"]))
            .then(pl.lit("accepted")).otherwise("review_status"),
            final_instruction=pl.when(pl.col("path").is_in(["src/f1.x", "src/f30.x"]))
            .then("instruction").otherwise("final_instruction"),
        ),
        reviewed(30, start=300),
    ])  # fmt: skip
    folders = [export(v, config(tmp_path), RUN).folder for v in (v1, v2, v3)]
    assert [f.name for f in folders] == ["1.0.0", "1.1.0", "1.2.0"]
    seen: dict[str, str] = {}
    for folder in folders:
        rows = read_rows(folder, ["id", "cluster_id"])
        assert rows.group_by("cluster_id").agg(pl.col("split").n_unique())["split"].max() == 1
        assert set(rows["split"]) == set(SPLITS)
        for record_id, split in rows.select("id", "split").iter_rows():
            assert seen.setdefault(record_id, split) == split, f"{record_id} moved in {folder}"
    joined_id = joined["id"][0]
    c0 = read_rows(folders[0], ["id", "cluster_id"]).filter(pl.col("cluster_id") == "c0")
    assert seen[joined_id] == c0["split"][0]  # a new member goes where its cluster is
    returned = v1.filter(pl.col("path") == "src/f1.x")["id"][0]
    assert returned in splits_of(folders[0]) and returned in splits_of(folders[2])
    shares = read_rows(folders[2], ["id"])["split"].value_counts(normalize=True)
    assert dict(shares.iter_rows())["train"] == pytest.approx(0.8, abs=0.06)


def test_a_small_export_says_how_to_go_on_and_fewer_splits_work(tmp_path):
    small = reviewed(6, cluster_size=3).with_columns(review_status=pl.lit("accepted"),
                                                      final_instruction="instruction")  # fmt: skip
    with pytest.raises(CurateError) as error:
        export(small, config(tmp_path), RUN)
    message = str(error.value)
    assert message.startswith("2 near-duplicate clusters (6 records) cannot give train, "
                              "validation, test at least 1 cluster(s) each")  # fmt: skip
    assert "splits = {train = 1.0}" in message and "--min-clusters 0" in message
    only_train = export(small, config(tmp_path / "a", splits={"train": 1.0}), RUN)
    assert only_train.counts == {"train": 6}
    empty_allowed = export(small, config(tmp_path / "b", min_clusters=0), RUN)
    assert sum(empty_allowed.counts.values()) == 6 and len(empty_allowed.counts) < 3
    missing = [s for s in SPLITS if s not in empty_allowed.counts]
    assert (
        f"No record fell in {', '.join(missing)}"
        in (empty_allowed.folder / "README.md").read_text()
    )
    assert not any((empty_allowed.folder / "data").glob(f"{missing[0]}-*"))
    with pytest.raises(CurateError, match=r"export\.splits"):
        ExportConfig(splits={"train": 0.9, "dev": 0.1})


def test_dropping_a_split_that_holds_records_of_earlier_versions_is_refused(tmp_path):
    export(reviewed(), config(tmp_path), RUN)
    with pytest.raises(CurateError, match=r"\[export\]\.splits has no validation, where 6 of"):
        export(reviewed(), config(tmp_path, splits={"train": 0.9, "test": 0.1}), RUN)


def test_card_and_lineage_say_what_is_in_the_version(tmp_path):
    result = export(reviewed(), config(tmp_path), RUN)
    lineage = json.loads((result.folder / "lineage.json").read_text())
    assert lineage["counts"] == result.counts and sum(result.counts.values()) == 54
    assert lineage["review"]["statuses"] == {"accepted": 48, "corrected": 6, "rejected": 6}
    assert lineage["annotation_cost_usd"] == pytest.approx(0.054)
    assert lineage["sources"] == [{"source": "repo", "records": 54, "commits": []}]
    assert lineage["parent"] is None and len(lineage["record_splits"]) == 54
    card = (result.folder / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and "path: data/train-" in card
    assert "code-instructions 1.0.0" in card and "| train |" in card
    assert "reviewed by people in Argilla" in card  # everyone here is `demo`, a person


def test_the_card_counts_machine_and_human_reviews_apart(tmp_path):
    frame = reviewed(40).with_columns(
        reviewers=pl.when(pl.int_range(40) < 2).then(pl.lit(["auto-review", "demo"]))
        .otherwise(pl.lit(["auto-review"]))
    )  # fmt: skip
    result = export(frame, config(tmp_path), RUN)
    review = json.loads((result.folder / "lineage.json").read_text())["review"]
    assert review["records"] == 36
    assert (review["by_people_and_machine"], review["by_machine_only"]) == (2, 34)
    assert (review["by_people_only"], review["by_no_one_recorded"]) == (0, 0)
    assert (review["reviews_by_people"], review["reviews_by_machines"]) == (2, 36)
    assert review["people"] == 1 and review["machine_reviewers"] == ["auto-review"]
    assert review["reviewers_per_record"] == {"1": 34, "2": 2}
    card = (result.folder / "README.md").read_text()
    assert "reviewed in Argilla: 2 of 36 records by people, 34 by a machine reviewer only " \
           "(auto-review)" in card  # fmt: skip
    assert "reviewed by people in Argilla" not in card
    assert "| a machine only | 34 |" in card and "36 by machine reviewers" in card
    humans = read_rows(result.folder, ["path", "human_reviews"])
    assert humans.filter(pl.col("path") == "src/f0.x")["human_reviews"].to_list() == [1]
    assert humans.filter(pl.col("path") == "src/f5.x")["human_reviews"].to_list() == [0]


def test_a_machine_only_review_is_never_called_a_human_one(tmp_path):
    frame = reviewed(30).with_columns(reviewers=pl.lit(["auto-review"]))
    card = (export(frame, config(tmp_path), RUN).folder / "README.md").read_text()
    assert "by a machine reviewer only (auto-review): no person has reviewed" in card
    assert "by people" not in card.split("## Splits")[0]


def test_a_separate_process_loads_the_export_with_plain_datasets(tmp_path):
    result = export(reviewed(), config(tmp_path), RUN)
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
        export(reviewed().with_columns(review_status=pl.lit("pending")), config(tmp_path), RUN)


def test_pushing_to_the_hub_needs_a_token_and_says_so(tmp_path):
    from finetune.release import push_to_hub

    result = export(reviewed(), config(tmp_path), RUN)
    with pytest.raises(CurateError, match="HF_TOKEN"):
        push_to_hub(result.folder, "org/code-instructions", None)
