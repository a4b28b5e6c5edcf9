"""Pair datasets as a source: every format, malformed rows quarantined with file and row,
duplicates over instruction + code, annotation left to the given instructions, topics and
the export cap, and a Glaive-style Parquet and the Cypher sheet through `curate` to a
dataset version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import ingest
from typer.testing import CliRunner

from annotators.config import AnnotateConfig
from annotators.stage import given_pairs, select_records
from codecurate.cli import app
from curation import ConfigError, FilterConfig, FilterStage, IngestConfig, IngestStage, Runner
from curation.dedup import DedupConfig, DedupStage
from curation.schema import to_records
from curation.sources.pairs import detect_language
from finetune.release import ExportConfig, export
from finetune.release.topics import cap_topics, find_topics

ROOT = Path(__file__).resolve().parents[1]


def pair_source(path: Path, **options: object) -> dict[str, object]:
    return {"sources": [{"type": "pair", "path": str(path), **options}]}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


# --- reading each format ----------------------------------------------------------------


def test_alpaca_jsonl_appends_the_input_to_the_instruction(tmp_path):
    path = write_jsonl(tmp_path / "alpaca.jsonl", [
        json.dumps({"instruction": "Sort the list.", "input": "xs = [3, 1, 2]",
                    "output": "def sort_list(xs):\n    return sorted(xs)\n"}),
        json.dumps({"instruction": "Say hello.", "input": "", "output": "print('hello')"}),
    ])  # fmt: skip
    records, manifest, _ = ingest(tmp_path, **pair_source(path))
    assert records["kind"].to_list() == ["pair", "pair"]
    assert records["instruction"].to_list() == ["Sort the list.\n\nxs = [3, 1, 2]", "Say hello."]
    assert records["content"][0] == "def sort_list(xs):\n    return sorted(xs)\n"
    assert records["path"].to_list() == ["alpaca.jsonl:1", "alpaca.jsonl:2"]
    assert records["language"].to_list() == ["python", None]  # print(...) alone says nothing
    assert json.loads(records["meta"][0])["mapped"] == {
        "instruction": "instruction", "input": "input", "output": "output"
    }  # fmt: skip
    assert manifest.rows_out == 2


def test_glaive_parquet_maps_question_and_answer_and_keeps_other_columns(tmp_path):
    path = tmp_path / "glaive.parquet"
    pl.DataFrame({
        "question": ["How do I count rows in a table?"],
        "answer": ["Use COUNT:\n```sql\nSELECT COUNT(*) FROM t;\n```"],
        "source_id": [17],
    }).write_parquet(path)  # fmt: skip
    records, _, _ = ingest(tmp_path, **pair_source(path, name="glaive"))
    row = records.row(0, named=True)
    assert (row["instruction"], row["language"], row["source"], row["path"]) == (
        "How do I count rows in a table?", "sql", "glaive", "glaive.parquet:1"
    )  # fmt: skip
    assert json.loads(row["meta"])["columns"] == {"source_id": 17}


def test_csv_with_a_column_mapping_and_the_sets_own_ids(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_text("key,ask,cypher\n007,Count the movies.,MATCH (m:Movie) RETURN count(m)\n")
    config = pair_source(path, columns={"instruction": "ask", "output": "cypher", "id": "key"})
    records, _, _ = ingest(tmp_path, **config)
    again, _, _ = ingest(tmp_path / "again", **config)
    assert records["path"].to_list() == ["sheet.csv:2"]  # the header is row 1
    assert records["language"].to_list() == ["cypher"]
    assert records["id"].to_list() == again["id"].to_list()  # from the set's id, stable
    assert json.loads(records["meta"][0])["mapped"]["id"] == "key"  # 007 read as text


def test_excel_sheet_rows_are_numbered_as_the_spreadsheet_shows_them(tmp_path):
    pytest.importorskip("fastexcel", reason="the [pairs] extra reads Excel")
    path = tmp_path / "pairs.xlsx"
    pl.DataFrame({
        "instruction": ["List the customers.", "Count the orders."],
        "query": ["SELECT name FROM customers;", "SELECT COUNT(*) FROM orders;"],
    }).write_excel(path, worksheet="pairs")  # fmt: skip
    records, _, _ = ingest(tmp_path, **pair_source(path, sheet="pairs"))
    assert records["path"].to_list() == ["pairs.xlsx:2", "pairs.xlsx:3"]
    assert records["content"].to_list() == ["SELECT name FROM customers;",
                                            "SELECT COUNT(*) FROM orders;"]  # fmt: skip
    assert records["language"].to_list() == ["sql", "sql"]


def test_saved_hf_dataset_split_is_read(tmp_path):
    datasets = pytest.importorskip("datasets")
    data = {"instruction": ["Add two numbers."], "output": ["def add(a, b):\n    return a + b"]}
    folder = tmp_path / "alpaca-ds"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(data)}).save_to_disk(str(folder))
    records, _, _ = ingest(tmp_path, **pair_source(folder, split="train"))
    assert records.select("instruction", "language", "path").row(0) == (
        "Add two numbers.", "python", "alpaca-ds:1"
    )  # fmt: skip


def test_language_is_detected_from_the_code():
    assert detect_language("MATCH (p:Person)-[:ACTED_IN]->(m) RETURN m") == "cypher"
    assert detect_language("SELECT a FROM b WHERE c > 1") == "sql"
    assert detect_language("Here it is:\n```rust\nlet x = 1;\n```") == "rust"
    assert detect_language("import os\nprint(os.sep)") == "python"
    assert detect_language("Paris is the capital of France.") is None


def test_the_demo_sets_read_whole_and_the_sheet_matches_its_csv(tmp_path):
    pytest.importorskip("fastexcel", reason="the [pairs] extra reads Excel")
    pairs = ROOT / "data" / "sample" / "pairs"
    sql, _, sql_quarantine = ingest(tmp_path / "sql", **pair_source(pairs / "sql/pairs.jsonl"))
    assert (sql.height, sql_quarantine.height) == (16, 0)
    assert set(sql["language"]) == {"sql"}
    columns = {"instruction": "instruction", "output": "query", "id": "id"}
    sheet, _, _ = ingest(
        tmp_path / "x", **pair_source(pairs / "cypher/pairs.xlsx", columns=columns)
    )
    csv, _, _ = ingest(tmp_path / "c", **pair_source(pairs / "cypher/pairs.csv", columns=columns))
    assert sheet.height == 40
    assert sheet.select("instruction", "content").equals(csv.select("instruction", "content"))
    assert set(sheet["language"]) == {"cypher"}  # detected: the demo config also sets it


# --- bad input ----------------------------------------------------------------------------


def test_malformed_rows_are_quarantined_with_file_and_row(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        json.dumps({"instruction": "Count rows.", "output": "SELECT COUNT(*) FROM t;"}),
        '{"instruction": "broken", "output": ',
        json.dumps(["a", "list"]),
        json.dumps({"instruction": "No answer here.", "output": ""}),
        json.dumps({"instruction": "Nested.", "output": {"code": "x"}}),
        json.dumps({"instruction": "Fine again.", "output": "SELECT 1;"}),
    ])  # fmt: skip
    stage = IngestStage(IngestConfig.model_validate(pair_source(path)), tmp_path / "clones")
    # details are written through the run's redactor: one that changes nothing shows them
    [manifest] = Runner(tmp_path / "work", redact=lambda texts: texts).run([stage])
    records = pl.read_parquet(tmp_path / "work" / "01_ingest" / "*.parquet")
    quarantine = pl.read_parquet(tmp_path / "work" / "quarantine.parquet")
    assert records["path"].to_list() == ["pairs.jsonl:1", "pairs.jsonl:6"]
    rows = quarantine.sort("path").select("path", "reason", "detail").rows()
    assert rows == [
        ("pairs.jsonl:2", "malformed_pair", "not JSON: Expecting value at column 37"),
        ("pairs.jsonl:3", "malformed_pair", "a JSON list, not an object"),
        ("pairs.jsonl:4", "malformed_pair", "no answer in column 'output'"),
        ("pairs.jsonl:5", "malformed_pair", "a dict, not text"),
    ]
    assert manifest.quarantined == {"malformed_pair": 4}


def test_a_repeated_id_is_quarantined_and_the_first_row_kept(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_text("id,instruction,output\n1,First.,SELECT 1;\n1,Second.,SELECT 2;\n")
    records, _, quarantine = ingest(tmp_path, **pair_source(path))
    assert records["instruction"].to_list() == ["First."]
    assert quarantine.select("path", "reason").rows() == [("sheet.csv:3", "duplicate_pair_id")]


def test_a_missing_mapped_column_is_a_clear_error(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_text("q,a\nWhy?,Because.\n")
    stage = IngestStage(
        IngestConfig.model_validate(pair_source(path, columns={"output": "answer"})),
        clone_root=tmp_path / "clones",
    )
    with pytest.raises(Exception, match=r"has no column 'answer' \(mapped to 'output'\)"):
        Runner(tmp_path / "work").run([stage])


# --- stages over pairs ------------------------------------------------------------------


def run_stages(tmp_path: Path, lines: list[dict], *stages: object) -> pl.DataFrame:
    path = write_jsonl(tmp_path / "pairs.jsonl", [json.dumps(line) for line in lines])
    ingest_stage = IngestStage(
        IngestConfig.model_validate(pair_source(path)), clone_root=tmp_path / "clones"
    )
    manifests = Runner(tmp_path / "work").run([ingest_stage, *stages])  # type: ignore[list-item]
    return pl.read_parquet(tmp_path / "work" / manifests[-1].tag / "*.parquet")


def test_exact_duplicates_are_instruction_and_code_together(tmp_path):
    query = "MATCH (m:Movie) RETURN m.title"
    records = run_stages(tmp_path, [
        {"instruction": "List every movie title.", "output": query},
        {"instruction": "Show the names of the films.", "output": query},
        {"instruction": "List every movie title.", "output": query},
    ], FilterStage(FilterConfig(min_chars=5)))  # fmt: skip
    assert records["filter_reason"].to_list() == [None, None, "exact_duplicate"]


def test_token_limits_count_the_instruction_and_the_code(tmp_path):
    pytest.importorskip("tiktoken", reason="the [annotate] extra counts tokens")
    from annotators.tokens import count_tokens

    config = FilterConfig(min_chars=0, min_tokens=4, max_tokens=60)
    stage = FilterStage(config, lambda texts: count_tokens(texts, "gpt-4o-mini"))
    records = run_stages(tmp_path, [
        {"instruction": "Add two numbers.", "output": "def add(a, b):\n    return a + b\n"},
        {"instruction": "Go.", "output": "ls"},
        {"instruction": "Explain.", "output": "The answer is long. " * 40},
    ], stage)  # fmt: skip
    assert records["filter_reason"].to_list() == [None, "too_few_tokens", "too_many_tokens"]
    assert records["num_tokens"][0] > 4
    with pytest.raises(ConfigError, match="need a token counter"):
        FilterStage(config)


def test_near_duplicates_compare_instruction_and_code(tmp_path):
    query = "MATCH (p:Person)-[:ACTED_IN]->(m:Movie {title: 'The Matrix'}) RETURN p.name, p.born"
    records = run_stages(tmp_path, [
        {"instruction": "Which actors played in The Matrix, and when were they born?",
         "output": query},
        {"instruction": "Which actors played in The Matrix, and when was each born?",
         "output": query},
        {"instruction": "Name the cast of that 1999 science fiction film with its birth years",
         "output": query},
    ], DedupStage(DedupConfig(threshold=0.7)))  # fmt: skip
    assert records["filter_reason"].to_list().count("near_duplicate") == 1
    assert records["cluster_size"].to_list() == [2, 2, 1]  # the same query, asked anew: kept


@pytest.mark.slow
def test_pii_is_stripped_from_the_given_instruction_and_the_answer(tmp_path):
    pytest.importorskip("presidio_analyzer", reason="the [pii] extra")
    from curation.pii import PIIConfig, PIIStage

    records = run_stages(tmp_path, [
        {"instruction": "Email the report to jane.doe@example.org every night.",
         "output": "send(to='ops@corp-mail.net')"},
    ], PIIStage(PIIConfig(ner=False, workers=1)))  # fmt: skip
    row = records.row(0, named=True)
    assert "jane.doe@example.org" not in row["instruction"]
    assert row["instruction"].startswith("Email the report to <EMAIL>")
    assert "ops@corp-mail.net" not in row["content_clean"]


def test_pairs_with_an_instruction_are_not_annotated_and_are_counted():
    records = to_records([
        {"id": "a", "kind": "pair", "source": "s", "path": "p:1", "content": "SELECT 1;",
         "content_clean": "SELECT 1;", "size_bytes": 9, "num_lines": 1, "instruction": "One."},
        {"id": "b", "kind": "pair", "source": "s", "path": "p:2", "content": "SELECT 2;",
         "content_clean": "SELECT 2;", "size_bytes": 9, "num_lines": 1},
        {"id": "c", "kind": "code", "source": "s", "path": "x.py", "content": "x = 1",
         "content_clean": "x = 1", "size_bytes": 5, "num_lines": 1},
    ]).lazy()  # fmt: skip
    chosen = select_records(records, AnnotateConfig(tasks=["instruction_for_code"]))
    assert chosen["id"].to_list() == ["b", "c"]  # a pair without one gets an instruction
    assert given_pairs(records) == 1


# --- topics and the export cap ------------------------------------------------------------

# 20 instructions in three groups: k = round(sqrt(20 / 2)) = 3 topics
MOVIE_YEARS = [f"List the movies released in {year}." for year in range(1990, 2002)]
ACTORS = [f"Which actors played in movie number {n}?" for n in range(5)]
DIRECTORS = [f"Who directed film {n} of the director series?" for n in range(3)]


def test_topics_are_deterministic_and_follow_the_instructions_groups():
    texts = MOVIE_YEARS + ACTORS + DIRECTORS
    first, second = find_topics(texts, seed=3), find_topics(texts, seed=3)
    assert first == second
    groups = [first.assigned[:12], first.assigned[12:17], first.assigned[17:]]
    assert [len(set(group)) for group in groups] == [1, 1, 1]
    assert len({group[0] for group in groups}) == 3
    assert "released" in first.labels[groups[0][0]]


def test_topic_cap_holds_the_share_over_what_is_kept():
    frame = pl.DataFrame({"id": [f"{i:03d}" for i in range(30)],
                          "topic": [0] * 20 + [1] * 6 + [2] * 4})  # fmt: skip
    capped = cap_topics(frame, 0.4)
    shares = capped["topic"].value_counts(normalize=True)
    assert shares["proportion"].max() <= 0.4
    assert capped.filter(pl.col("topic") == 0)["id"].to_list() == [f"{i:03d}" for i in range(6)]
    assert capped.height == 16  # 6 + 6 + 4: topic 0 may keep 40% of 16
    with pytest.raises(ConfigError, match=r"with 3 topic\(s\); raise it to at least 0.33"):
        cap_topics(frame, 0.2)


def given_pair_records(instructions: list[str]) -> pl.DataFrame:
    return to_records(
        {"id": f"{i:04d}", "kind": "pair", "source": "sheet", "path": f"sheet.csv:{i + 2}",
         "language": "cypher", "content": f"MATCH (m) RETURN m LIMIT {i}",
         "content_clean": f"MATCH (m) RETURN m LIMIT {i}", "size_bytes": 30, "num_lines": 1,
         "instruction": text, "cluster_id": f"{i:04d}"}
        for i, text in enumerate(instructions)
    )  # fmt: skip


def test_given_pairs_export_without_review_and_the_cap_shows_on_the_card(tmp_path):
    records = given_pair_records(MOVIE_YEARS + ACTORS + DIRECTORS)
    config = ExportConfig(name="pairs", root=tmp_path, splits={"train": 1.0},
                          max_topic_share=0.5)  # fmt: skip
    result = export(records, config, {})
    train = pl.read_parquet(result.folder / "data" / "train-00000-of-00001.parquet")
    assert train.height == 16  # 8 release-year questions of 12 (half of 8 + 5 + 3), 5, 3
    assert train["prompt"].filter(train["prompt"].str.contains("released")).len() == 8
    assert train["completion"][0].startswith("MATCH (m) RETURN m")
    card = (result.folder / "README.md").read_text()
    assert "No review is recorded: the instructions are as the source datasets gave them" in card
    assert "| 12 | 8 | 50.0% |" in card  # the skewed topic: 12 before the cap, 8 exported
    lineage = json.loads((result.folder / "lineage.json").read_text())
    assert lineage["topics"]["max_share"] == 0.5


# --- through the command line -------------------------------------------------------------

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_glaive_parquet_goes_through_curate_run_to_an_exported_version(tmp_path):
    pl.DataFrame({
        "question": [f"How do I select the rows of table t{i} where x is above {i}?"
                     for i in range(12)] + ["How do I reverse a string in Python?"] * 2,
        "answer": [f"```sql\nSELECT * FROM t{i} WHERE x > {i};\n```" for i in range(12)]
                  + ["Use slicing:\n```python\ns[::-1]\n```"] * 2,
    }).write_parquet(tmp_path / "glaive.parquet")  # fmt: skip
    config = tmp_path / "curate.toml"
    config.write_text(
        'workdir = "work"\nstages = ["ingest", "filters", "pii", "dedup", "annotate"]\n'
        '[[ingest.sources]]\ntype = "pair"\npath = "glaive.parquet"\nname = "glaive"\n'
        '[pii]\nworkers = 1\n[annotate]\nprovider = "offline"\n'
        '[export]\nname = "glaive"\nroot = "exports"\nsplits = {train = 0.75, test = 0.25}\n'
    )
    ran = invoke("run", "-c", str(config))
    assert "exact_duplicate" in ran
    exported = invoke("export", "-c", str(config))
    assert "exported glaive@1.0.0" in exported
    lineage = json.loads((tmp_path / "exports/glaive/1.0.0/lineage.json").read_text())
    assert sum(lineage["counts"].values()) == 13  # 14 pairs, one exact duplicate
    annotate = json.loads((tmp_path / "work/05_annotate.json").read_text())
    assert annotate["extra"]["not_annotated"] == {"instruction_given": 13}


@pytest.mark.slow
def test_the_cypher_demo_sheet_goes_through_curate_run_to_an_exported_version(tmp_path):
    pytest.importorskip("fastexcel", reason="the [pairs] extra reads Excel")
    shutil.copytree(ROOT / "data" / "sample" / "pairs", tmp_path / "sample" / "pairs")
    config = tmp_path / "sample" / "pairs" / "cypher" / "curate.toml"
    invoke("run", "-c", str(config))
    workdir = tmp_path / "work" / "pairs-cypher"
    dedup = pl.read_parquet(workdir / "04_dedup" / "*.parquet")
    assert dedup.filter(pl.col("filter_reason") == "near_duplicate")["path"].to_list() == [
        "pairs.xlsx:7"  # c06, the near copy of c40 (count(m) against count(*))
    ]
    verified = pl.read_parquet(workdir / "05_verify" / "*.parquet").filter(
        pl.col("filter_reason").is_null()
    )
    # every query ran against the fixture graph: the planted broken ones fail, the rest hold
    assert verified["verified"].null_count() == 0 and 0 < (~verified["verified"]).sum() <= 3
    exported = invoke("export", "-c", str(config))
    assert "exported movies-cypher@1.0.0" in exported
    version = tmp_path / "exports" / "movies-cypher" / "1.0.0"
    lineage = json.loads((version / "lineage.json").read_text())
    shares = [topic["share"] for topic in lineage["topics"]["topics"]]
    assert max(shares) <= 0.4
    assert sum(lineage["counts"].values()) < 36  # the skewed topic was capped
    assert "## Topics" in (version / "README.md").read_text()
    assert (workdir / "reports" / "run-report.html").read_text().count("Topics of the pairs") == 1
