"""Stage outputs as parts: how they are cut, how they read, and that a grown source or a
crash mid-stage recomputes only the parts that need it (real ingest, filters and PII)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import polars as pl
from conftest import write_tree

from annotators.config import AnnotateConfig
from annotators.stage import AnnotateStage
from curation import FilterConfig, FilterStage, IngestConfig, IngestStage, Runner, stage_frame
from curation.dedup import DedupConfig, DedupStage
from curation.parts import PARTS_DIR, content_cuts, kept, merge_extra, record_batches
from curation.pii import PIIConfig, PIIStage
from curation.runner import Manifest
from curation.sources.common import finish_records

ROOT = Path(__file__).resolve().parents[1]


def program(i: int) -> str:
    return f'def handler_{i}(value):\n    """Handle case {i} for the service."""\n' + (
        f"    return value * {i} + {i * 7}\n"
    )


class CountingPII(PIIStage):
    """The real PII stage, noting the paths of every input part it is run on; with
    KILL_ON_PART set it kills its own process on that part (the crash test's child runs this
    same class, so that the resumed run has the same code hash)."""

    seen: ClassVar[list[list[str]]] = []

    def run(self, records, ctx):
        CountingPII.seen.append(sorted(records.select("path").collect()["path"]))
        if os.environ.get("KILL_ON_PART") == str(len(CountingPII.seen)):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(records, ctx)


def stages(repo: Path, workdir: Path) -> list:
    return [
        IngestStage(IngestConfig.model_validate({"sources": [{"type": "dir", "path": str(repo)}]}),
                    clone_root=workdir / "clones"),
        FilterStage(FilterConfig()),
        CountingPII(PIIConfig(workers=1)),
    ]  # fmt: skip


def run(repo: Path, workdir: Path, part_rows: int = 3):
    CountingPII.seen = []
    return Runner(workdir, part_rows=part_rows).run(stages(repo, workdir))


def same_output(one: Path, two: Path) -> bool:
    return stage_frame(one / "03_pii").collect().equals(stage_frame(two / "03_pii").collect())


def same_records(one: Path, two: Path) -> bool:
    """The same rows, whatever parts (and so order) they came in."""

    def rows(workdir: Path, tag: str) -> pl.DataFrame:
        return stage_frame(workdir / tag).collect().sort("id")

    tags = ("01_ingest", "02_filters", "03_pii")
    return all(rows(one, tag).equals(rows(two, tag)) for tag in tags)


def test_content_cuts_fall_before_ids_that_are_multiples_of_the_target():
    ids = ["00", "11", "03", "20", "05", "0f"]  # as hex: 0, 17, 3, 32, 5, 15 (target 4)
    frame = pl.DataFrame({"id": ids})
    parts = [pl.concat(group)["id"].to_list() for group in content_cuts([frame[:3], frame[3:]], 4)]
    assert parts == [["00", "11", "03"], ["20", "05", "0f"]]


def test_a_run_of_ids_without_a_cut_still_ends_a_part_at_four_times_the_target():
    frame = pl.DataFrame({"id": ["01"] * 9})
    assert [pl.concat(g).height for g in content_cuts([frame], 2)] == [8, 1]


def test_extra_counts_of_parts_are_summed_and_other_values_kept_from_the_first():
    merged = merge_extra([{"found": {"EMAIL": 1}, "model": "a"}, {"found": {"EMAIL": 2, "IP": 5}}])
    assert merged == {"found": {"IP": 5, "EMAIL": 3}, "model": "a"}


def test_a_stage_output_is_a_folder_of_parts_listed_in_its_manifest(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i}.py": program(i) for i in range(12)})
    _, filters, pii = run(repo, tmp_path / "work")
    folder = tmp_path / "work" / "03_pii"
    assert [p["file"] for p in pii.parts] == sorted(p.name for p in folder.glob("*.parquet"))
    assert len(pii.parts) == len(filters.parts) > 1  # pii keeps its input's partitioning
    assert sum(p["rows"] for p in pii.parts) == pii.rows_out == 12
    # plain Polars reads the folder as the stage, in order
    assert pl.scan_parquet(folder / "*.parquet").collect().equals(stage_frame(folder).collect())


def test_a_source_that_gained_files_recomputes_only_the_parts_that_hold_them(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(30)})
    work = tmp_path / "work"
    first = run(repo, work, part_rows=10)
    assert len(first[2].parts) > 2
    write_tree(repo, {"m07b.py": program(107), "m21b.py": program(121)})

    grown = run(repo, work, part_rows=10)
    seen = CountingPII.seen
    run(repo, tmp_path / "clean", part_rows=10)

    assert same_records(work, tmp_path / "clean")
    # the filters and PII run per part of ingest's content cuts: a new file changes the
    # part it lands in and no other
    assert all("m07b.py" in paths or "m21b.py" in paths for paths in seen)
    assert sorted(path for paths in seen for path in paths if path.endswith("b.py")) == [
        "m07b.py", "m21b.py",
    ]  # fmt: skip
    recomputed = [p for p in grown[2].parts if not p["reused"]]
    assert len(recomputed) == len(seen) <= 2
    assert sum(p["rows"] for p in recomputed) < grown[2].rows_out
    unchanged = {p["key"] for p in grown[2].parts if p["reused"]}
    assert unchanged and unchanged <= {p["key"] for p in first[2].parts}


def test_an_exact_duplicate_in_another_part_is_dropped_and_its_first_copy_kept(tmp_path):
    files = {f"m{i:02d}.py": program(i) for i in range(12)} | {"z_copy.py": program(0)}
    _, filters, _ = run(write_tree(tmp_path / "repo", files), tmp_path / "work")
    rows = stage_frame(tmp_path / "work" / "02_filters").collect()
    dropped = rows.filter(pl.col("filter_reason") == "exact_duplicate")["path"].to_list()
    assert len(filters.parts) > 1 and dropped == ["z_copy.py"]


def test_a_new_file_that_copies_a_later_one_recomputes_the_part_whose_copy_it_drops(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(30)})
    work = tmp_path / "work"
    run(repo, work, part_rows=10)
    write_tree(repo, {"a_first.py": program(25)})  # sorts first: m25.py is now the copy

    grown = run(repo, work, part_rows=10)
    run(repo, tmp_path / "clean", part_rows=10)

    assert same_records(work, tmp_path / "clean")
    rows = stage_frame(work / "02_filters").collect()
    assert rows.filter(pl.col("filter_reason") == "exact_duplicate")["path"].to_list() == ["m25.py"]
    assert grown[1].dropped == {"exact_duplicate": 1}


class CountingIngest(IngestStage):
    """The real ingest, noting the paths of every unit it reads."""

    read: ClassVar[list[list[str]]] = []

    def read_unit(self, unit, ctx):
        CountingIngest.read.append(list(unit.what.paths))
        return super().read_unit(unit, ctx)


def test_a_grown_source_reads_only_the_units_its_new_files_fall_in(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(60)})
    config = IngestConfig.model_validate({"sources": [{"type": "dir", "path": str(repo)}]})

    def ingest(work: Path):
        CountingIngest.read = []
        return Runner(work, part_rows=10).run([CountingIngest(config, work / "clones")])[0]

    first = ingest(tmp_path / "work")
    assert len(CountingIngest.read) == len(first.parts) > 3
    write_tree(repo, {"m07b.py": program(107), "m41b.py": program(141)})
    grown = ingest(tmp_path / "work")
    read = CountingIngest.read
    clean = ingest(tmp_path / "clean")

    assert 1 <= len(read) <= 2 and all("m07b.py" in paths or "m41b.py" in paths for paths in read)
    assert [p["reused"] for p in grown.parts].count(False) == len(read)
    assert [p["key"] for p in grown.parts] == [p["key"] for p in clean.parts]
    assert (
        stage_frame(tmp_path / "work" / "01_ingest")
        .collect()
        .equals(stage_frame(tmp_path / "clean" / "01_ingest").collect())
    )


def test_a_record_that_two_sources_both_give_is_kept_once_from_the_first(tmp_path):
    repo = write_tree(tmp_path / "lib", {"a.py": program(1), "b.py": program(2)})
    pl.DataFrame({"path": ["a.py", "c.py"], "content": [program(1), program(3)]}).write_parquet(
        tmp_path / "rows.parquet"
    )
    config = IngestConfig.model_validate({"sources": [
        {"type": "dir", "path": str(repo)},
        {"type": "hf", "path": str(tmp_path / "rows.parquet"), "name": "lib"},
    ]})  # fmt: skip
    [manifest] = Runner(tmp_path / "work").run([IngestStage(config, tmp_path / "clones")])
    rows = stage_frame(tmp_path / "work" / "01_ingest").collect()
    assert rows.select("source", "path").rows() == [
        ("lib", "a.py"),
        ("lib", "b.py"),
        ("lib", "c.py"),
    ]
    assert manifest.skipped == {"duplicate_record": 1}
    assert manifest.rows_in == manifest.rows_out == 3


def part_holding(path: str, manifest: Manifest, workdir: Path) -> int:
    """The index of the part of the stage `manifest` ran that holds the file `path`."""
    for index, listed in enumerate(manifest.parts):
        if path in pl.read_parquet(workdir / manifest.tag / listed["file"])["path"].to_list():
            return index
    raise AssertionError(path)


def dedup_tree(repo: Path, work: Path, **config) -> list[Manifest]:
    """Ingest a folder in parts of about 10 files and dedup it."""
    ingest = IngestConfig.model_validate({"sources": [{"type": "dir", "path": str(repo)}]})
    stages = [IngestStage(ingest, clone_root=work / "clones"), DedupStage(DedupConfig(**config))]
    return Runner(work, part_rows=10).run(stages)


def test_a_grown_source_signs_and_joins_only_its_changed_parts_in_dedup(tmp_path):
    files = {f"m{i:02d}.py": program(i) for i in range(40)} | {"m05_copy.py": program(5) + "#\n"}
    repo = write_tree(tmp_path / "repo", files)
    first = dedup_tree(repo, tmp_path / "work")[1]
    assert first.extra["summaries_reused"] == 0
    write_tree(repo, {"m31b.py": program(131)})  # near-duplicate of nothing
    ingest, grown = dedup_tree(repo, tmp_path / "work")
    clean = dedup_tree(repo, tmp_path / "clean")[1]

    unchanged = sum(p["reused"] for p in ingest.parts)
    assert 0 < unchanged == grown.extra["summaries_reused"] < len(ingest.parts)
    assert grown.extra["parts_summarized"] == len(ingest.parts) - unchanged
    assert sum(p["reused"] for p in grown.parts) == unchanged  # their clusters are the same
    assert grown.dropped == clean.dropped and grown.dropped["near_duplicate"] >= 1
    # the same rows; the grown run keeps its last run's parts, so their order may differ
    rows = [
        stage_frame(work / "02_dedup").collect().sort("id")
        for work in (tmp_path / "work", tmp_path / "clean")
    ]
    assert rows[0].equals(rows[1])


def test_a_new_near_copy_rewrites_the_unchanged_part_whose_cluster_it_joins(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(40)})
    dedup_tree(repo, tmp_path / "work")
    write_tree(repo, {"z_copy.py": program(5) + "# a longer copy\n"})  # the new representative
    ingest, grown = dedup_tree(repo, tmp_path / "work")

    old = part_holding("m05.py", ingest, tmp_path / "work")
    new = part_holding("z_copy.py", ingest, tmp_path / "work")
    assert old != new and ingest.parts[old]["reused"]  # its input part is unchanged...
    assert not grown.parts[old]["reused"]  # ...but its clusters are not
    out = stage_frame(tmp_path / "work" / "02_dedup").collect()
    assert out.filter(pl.col("path") == "m05.py")["filter_reason"].to_list() == ["near_duplicate"]
    dedup_tree(repo, tmp_path / "clean")
    clean = stage_frame(tmp_path / "clean" / "02_dedup").collect()
    assert out.sort("id").equals(clean.sort("id"))


def test_a_new_dedup_threshold_clusters_again_from_the_signatures_it_kept(tmp_path):
    files = {f"m{i:02d}.py": program(i) for i in range(20)} | {"m05_copy.py": program(5) + "#\n"}
    repo = write_tree(tmp_path / "repo", files)
    assert dedup_tree(repo, tmp_path / "work")[1].dropped == {"near_duplicate": 1}
    stricter = dedup_tree(repo, tmp_path / "work", threshold=0.99)[1]
    assert stricter.extra["parts_summarized"] == 0 < stricter.extra["summaries_reused"]
    assert "near_duplicate" not in stricter.dropped  # the copy differs by one line
    assert dedup_tree(repo, tmp_path / "clean", threshold=0.99)[1].dropped == stricter.dropped


class CountingFilters(FilterStage):
    """The real filters, noting the input parts they summarize for their plan."""

    summarized: ClassVar[list[str]] = []

    def summarize(self, records, source, engine):
        CountingFilters.summarized.append(source.name)
        return super().summarize(records, source, engine)


def annotate_tree(repo: Path, work: Path, **config) -> list[Manifest]:
    """Ingest a folder in parts of about 10 files, strip PII and annotate it offline."""
    ingest = IngestConfig.model_validate({"sources": [{"type": "dir", "path": str(repo)}]})
    annotate = AnnotateConfig(tasks=["instruction_for_code"], **config)
    stages = [IngestStage(ingest, clone_root=work / "clones"), PIIStage(PIIConfig(workers=1)),
              AnnotateStage(annotate, work)]  # fmt: skip
    return Runner(work, part_rows=10).run(stages)


def annotations(workdir: Path) -> pl.DataFrame:
    columns = ("id", "instruction", "response", "task", "annotator", "quality_flags")
    return stage_frame(workdir / "03_annotate").select(columns).collect().sort("id")


def test_a_grown_source_annotates_and_joins_only_its_changed_parts(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(40)})
    first = annotate_tree(repo, tmp_path / "work")[-1]
    assert first.extra["statuses"] == {"ok": 40}
    write_tree(repo, {"m31b.py": program(131)})
    ingest, _, grown = annotate_tree(repo, tmp_path / "work")
    annotate_tree(repo, tmp_path / "clean")

    unchanged = sum(p["reused"] for p in ingest.parts)
    assert 0 < unchanged == grown.extra["summaries_reused"] < len(ingest.parts)
    assert sum(p["reused"] for p in grown.parts) == unchanged
    assert grown.extra["statuses"] == {"cached": 40, "ok": 1}  # one new record annotated
    assert annotations(tmp_path / "work").equals(annotations(tmp_path / "clean"))


def test_the_offline_annotate_plan_reads_no_code_and_each_part_fills_its_responses(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(40)})
    annotate_tree(repo, tmp_path / "work")
    summaries, plans = (
        [
            pl.read_parquet(file)
            for file in (tmp_path / "work" / PARTS_DIR / folder).glob("*.parquet")
        ]
        for folder in ("03_annotate.summaries", "03_annotate.plans")
    )
    assert len(summaries) == len(plans) > 1
    for frame in summaries + plans:  # what the plan reads and writes: no file's code
        for column in frame.select(pl.col(pl.String)).columns:
            assert not frame[column].str.contains("return value *", literal=True).any(), column
    assert pl.concat(summaries)["prompt_tokens"].min() > 0  # counted where the part is
    out = stage_frame(tmp_path / "work" / "03_annotate").collect()
    assert out["instruction"].null_count() == 0
    assert out["response"].to_list() == out["content_clean"].to_list()
    assert out.filter(pl.col("path") == "m07.py")["response"].item() == program(7)


def test_a_limit_annotates_the_first_records_by_id_across_every_part(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(40)})
    ingest, _, annotate = annotate_tree(repo, tmp_path / "work", limit=5)
    assert len(ingest.parts) > 1
    out = stage_frame(tmp_path / "work" / "03_annotate").collect()
    annotated = out.filter(pl.col("instruction").is_not_null())["id"].sort().to_list()
    assert annotated == out["id"].sort().head(5).to_list()
    assert annotate.extra["statuses"] == {"ok": 5}


def test_a_new_record_repeating_an_instruction_rewrites_the_unchanged_part_it_flags(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(40)})
    annotate_tree(repo, tmp_path / "work")
    # the same docstring over other code: the offline annotator writes the same instruction
    write_tree(repo, {"z_again.py": program(5).replace("return value", "return -value")})
    ingest, _, grown = annotate_tree(repo, tmp_path / "work")

    old = part_holding("m05.py", ingest, tmp_path / "work")
    assert old != part_holding("z_again.py", ingest, tmp_path / "work")
    assert ingest.parts[old]["reused"] and not grown.parts[old]["reused"]
    flags = stage_frame(tmp_path / "work" / "03_annotate").filter(
        pl.col("path").is_in(["m05.py", "z_again.py"])
    )
    assert flags.select(pl.col("quality_flags").list.contains("duplicate_instruction")).collect()[
        "quality_flags"
    ].to_list() == [True, True]
    annotate_tree(repo, tmp_path / "clean")
    assert annotations(tmp_path / "work").equals(annotations(tmp_path / "clean"))


def test_a_grown_source_summarizes_only_its_changed_parts_for_the_filters_plan(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(30)})
    config = IngestConfig.model_validate({"sources": [{"type": "dir", "path": str(repo)}]})
    work = tmp_path / "work"

    def run_filters():
        CountingFilters.summarized = []
        ingest = IngestStage(config, clone_root=work / "clones")
        return Runner(work, part_rows=10).run([ingest, CountingFilters(FilterConfig())])

    first = run_filters()
    assert len(CountingFilters.summarized) == len(first[0].parts) > 2
    write_tree(repo, {"m07b.py": program(107)})
    grown = run_filters()

    changed = {p["key"] for p in grown[0].parts} - {p["key"] for p in first[0].parts}
    assert 1 <= len(CountingFilters.summarized) == len(changed) < len(grown[0].parts)


def test_a_source_that_lost_a_file_recomputes_only_the_part_that_held_it(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i:02d}.py": program(i) for i in range(30)})
    work = tmp_path / "work"
    first = run(repo, work, part_rows=10)
    (repo / "m12.py").unlink()

    grown = run(repo, work, part_rows=10)
    seen = CountingPII.seen
    run(repo, tmp_path / "clean", part_rows=10)

    assert same_records(work, tmp_path / "clean")
    holder = [p for p in first[2].parts if p["key"] not in {q["key"] for q in grown[2].parts}]
    assert len(holder) == 1
    assert len(seen) == 1 and len(seen[0]) == holder[0]["rows"] - 1 and "m12.py" not in seen[0]


CRASHING_RUN = """
import sys
from pathlib import Path
from test_parts import CountingPII, stages
from curation import Runner

repo, work = Path(sys.argv[1]), Path(sys.argv[2])
Runner(work, part_rows=1).run(stages(repo, work))
"""


def test_a_run_killed_mid_stage_resumes_with_the_parts_it_finished(tmp_path):
    repo = write_tree(tmp_path / "repo", {f"m{i}.py": program(i) for i in range(8)})
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "KILL_ON_PART": "4"}
    child = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(repo), str(work)], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not (work / "03_pii.json").exists()
    finished = {p.stem for p in (work / ".parts" / "03_pii").glob("*.json")}
    assert len(finished) == 3

    _, _, pii = run(repo, work, part_rows=1)
    assert len(pii.parts) == 8  # one record a part (part_rows 1)
    assert {p["key"] for p in pii.parts if p["reused"]} == finished
    assert len(CountingPII.seen) == 5  # the unfinished parts only
    run(repo, tmp_path / "clean", part_rows=1)
    assert same_output(work, tmp_path / "clean")


def test_record_batches_read_the_kept_rows_of_a_stage_one_part_at_a_time(tmp_path):
    rows = finish_records([{"kind": "code", "source": "s", "path": f"f{i}.py",
                            "content": f"x = {i}\n"} for i in range(6)])  # fmt: skip
    rows = rows.with_columns(filter_reason=pl.when(pl.col("path") == "f1.py").then(pl.lit("x")))
    rows[:3].write_parquet(tmp_path / "part-00000.parquet")
    rows[3:].write_parquet(tmp_path / "part-00001.parquet")

    batches = record_batches(kept(tmp_path), 2, tmp_path)
    first = next(batches)
    # the second part is read only when the reader gets there, not run ahead of it
    rows[3:5].write_parquet(tmp_path / "part-00001.parquet")
    rest = list(batches)
    assert first["path"].to_list() == ["f0.py", "f2.py"]  # kept rows only, in order
    assert [b["path"].to_list() for b in rest] == [["f3.py", "f4.py"]]


def test_an_empty_stage_is_one_empty_part_that_reads_as_a_frame(tmp_path):
    from curation import Stage

    class Nothing(Stage):
        name: ClassVar[str] = "ingest"
        is_source: ClassVar[bool] = True

        def __init__(self) -> None:
            self.config = FilterConfig()

        def input_fingerprint(self) -> str:
            return "none"

        def run(self, records, ctx):
            return finish_records([])

    [manifest] = Runner(tmp_path).run([Nothing()])
    assert manifest.rows_out == 0 and len(manifest.parts) == 1
    assert stage_frame(tmp_path / "01_ingest").collect().height == 0
    assert json.loads((tmp_path / "01_ingest.json").read_text())["parts"][0]["rows"] == 0
