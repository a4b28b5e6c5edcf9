"""The verify stage: the sandbox's limits, and each language's checks on tiny records."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import write_tree

from curation import IngestConfig, IngestStage, Runner
from curation.errors import ConfigError
from curation.runner import StageContext
from curation.schema import to_records
from curation.verify import VerifyConfig, VerifyStage
from curation.verify.checks import FixtureQueries, code_to_verify, parse_error
from curation.verify.sandbox import Sandbox, network_mode
from finetune.evaluate import executes_alike, orders_rows, same_results

pytest.importorskip("tree_sitter_language_pack")

GRAPH = """
CREATE NODE TABLE Person(name STRING, age INT64, PRIMARY KEY(name));
CREATE REL TABLE Knows(FROM Person TO Person);
CREATE (:Person {name: 'ada', age: 36});
CREATE (:Person {name: 'alan', age: 41});
MATCH (a:Person {name: 'ada'}), (b:Person {name: 'alan'}) CREATE (a)-[:Knows]->(b);
"""
TABLES = """
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, total REAL);
INSERT INTO orders VALUES (1, 'ada', 10.5), (2, 'alan', 3.0), (3, 'ada', 1.5);
"""


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(VerifyConfig(cpu_seconds=2, wall_seconds=6))


def python(sandbox: Sandbox, code: str, standalone: bool = True):
    return sandbox.run({"kind": "python", "code": code, "run": True, "standalone": standalone})


def test_an_endless_loop_is_stopped_as_timeout(sandbox: Sandbox) -> None:
    assert python(sandbox, "while True:\n    pass\n").reason == "timeout"


def test_a_task_that_sleeps_past_the_wall_clock_is_stopped_as_timeout() -> None:
    quick = Sandbox(VerifyConfig(cpu_seconds=2, wall_seconds=1))
    assert python(quick, "import time\ntime.sleep(30)\n").reason == "timeout"


def test_a_4_gb_allocation_is_refused_as_memory(sandbox: Sandbox) -> None:
    outcome = python(sandbox, "x = bytearray(4 * 1024**3)\nassert len(x)\n")
    assert (outcome.ok, outcome.reason) == (False, "memory")


def test_a_write_outside_the_scratch_folder_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "outside"
    outcome = python(sandbox, f"open({str(target)!r}, 'w').write('x')\n")
    assert (outcome.ok, outcome.reason) == (False, f"refused_write: {target}")
    assert not target.exists()


def test_a_refused_write_fails_the_verdict_even_when_the_code_swallows_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    code = f"try:\n    open({str(tmp_path / 'x')!r}, 'a')\nexcept Exception:\n    pass\nassert 1\n"
    assert python(sandbox, code).reason == f"refused_write: {tmp_path / 'x'}"


def test_files_inside_the_scratch_folder_may_be_written(sandbox: Sandbox) -> None:
    code = "open('notes.txt', 'w').write('x')\nassert open('notes.txt').read() == 'x'\n"
    assert python(sandbox, code).ok


@pytest.mark.parametrize("mode", ["netns", "audit_hook"])
def test_a_socket_connect_is_refused(mode: str) -> None:
    if mode == "netns" and network_mode() != "netns":
        pytest.skip("this user may not create a network namespace")
    sandbox = Sandbox(VerifyConfig())
    sandbox.network = mode
    code = "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))\n"
    assert python(sandbox, code).reason == "refused_network: socket.__new__"


def test_in_a_network_namespace_the_task_sees_only_loopback() -> None:
    if network_mode() != "netns":
        pytest.skip("this user may not create a network namespace")
    # what C code that goes around Python's audit hook would find: no interface but `lo`
    code = ("lines = open('/proc/net/dev').read().splitlines()[2:]\n"
            "assert [line.split(':')[0].strip() for line in lines] == ['lo']\n")  # fmt: skip
    assert python(Sandbox(VerifyConfig()), code).ok


def test_starting_a_process_is_refused(sandbox: Sandbox) -> None:
    outcome = python(sandbox, "import subprocess\nsubprocess.run(['true'])\n")
    assert outcome.reason == "refused_process: subprocess.Popen"


def test_python_doctests_that_hold_pass(sandbox: Sandbox) -> None:
    code = 'def double(x):\n    """\n    >>> double(2)\n    4\n    """\n    return 2 * x\n'
    outcome = python(sandbox, code)
    assert outcome.ok and outcome.checks == ("compile", "run", "doctests:1")


def test_a_failing_doctest_fails_with_its_count(sandbox: Sandbox) -> None:
    code = 'def double(x):\n    """\n    >>> double(2)\n    5\n    """\n    return 2 * x\n'
    assert python(sandbox, code).reason == "doctest_failed: 1 of 1"


def test_a_failing_assert_names_its_line(sandbox: Sandbox) -> None:
    code = "x = 1\nassert x == 1\nassert x == 2\n"
    assert python(sandbox, code).reason == "assert_failed: line 3"


def test_a_repository_file_that_cannot_run_outside_its_package_is_left_unchecked(
    sandbox: Sandbox,
) -> None:
    code = "from .models import Invoice\n\nassert Invoice\n"
    outcome = python(sandbox, code, standalone=False)
    assert (outcome.ok, outcome.reason) == (
        None, "unrunnable: ImportError: attempted relative import with no known parent package"
    )  # fmt: skip
    assert python(sandbox, code).reason.startswith("python_error: ImportError: ")


def test_python_that_does_not_compile_says_where(sandbox: Sandbox) -> None:
    assert python(sandbox, "def f(:\n").reason == "syntax_error: invalid syntax (line 1)"


def test_other_languages_are_parsed_by_their_grammar() -> None:
    assert parse_error("int main(void) { return 0; }", "c") is None
    assert parse_error("int main(void) {\n  return 0;\n", "c") == "parse_error: line 2"


def test_a_pair_verifies_the_code_of_its_answer() -> None:
    pair = {"kind": "pair", "content": "Count orders", "content_clean": "Count orders",
            "response": "Like this:\n```sql\nSELECT count(*) FROM orders\n```\n"}  # fmt: skip
    assert code_to_verify(pair) == "SELECT count(*) FROM orders"
    assert code_to_verify({"kind": "issue", "content": "It crashes"}) is None


def record(id_: str, language: str | None, code: str, kind: str = "code") -> dict:
    return {"id": id_, "kind": kind, "source": "s", "path": f"{id_}.txt", "language": language,
            "content": code, "size_bytes": len(code), "num_lines": 1}  # fmt: skip


def run_stage(config: VerifyConfig, rows: list[dict]) -> tuple[pl.DataFrame, StageContext]:
    ctx = StageContext(None, "05_verify")
    out = pl.concat(list(VerifyStage(config).run(to_records(rows).lazy(), ctx)))
    return out.sort("id"), ctx


def verdicts(frame: pl.DataFrame) -> list[tuple]:
    return list(frame.select("id", "verified", "verify_reason").iter_rows())


def test_sql_runs_against_the_fixture_tables(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(TABLES)
    config = VerifyConfig(sql_fixture=tmp_path / "schema.sql")
    out, _ = run_stage(config, [
        record("a", "sql", "SELECT customer, sum(total) FROM orders GROUP BY customer"),
        record("b", "sql", "SELECT name FROM customers"),
    ])  # fmt: skip
    assert verdicts(out) == [
        ("a", True, None),
        ("b", False, "sql_error: OperationalError: no such table: customers"),
    ]


def test_sql_runs_on_duckdb_when_chosen(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    (tmp_path / "schema.sql").write_text(TABLES)
    config = VerifyConfig(sql_fixture=tmp_path / "schema.sql", sql_engine="duckdb")
    out, _ = run_stage(config, [record("a", "sql", "SELECT max(total) FROM orders"),
                                record("b", "sql", "SELECT nope FROM orders")])  # fmt: skip
    assert verdicts(out)[0] == ("a", True, None)
    assert verdicts(out)[1][2].startswith("sql_error: BinderException: Binder Error: ")


def test_cypher_runs_against_the_fixture_graph(tmp_path: Path) -> None:
    pytest.importorskip("ladybug")
    (tmp_path / "graph.cypher").write_text(GRAPH)
    config = VerifyConfig(cypher_fixture=tmp_path / "graph.cypher")
    out, ctx = run_stage(config, [
        record("a", "cypher", "MATCH (a:Person)-[:Knows]->(b:Person) RETURN a.name, b.name"),
        record("b", "cypher", "MATCH (c:City) RETURN c.name"),
        record("c", "cypher", "MATCH (p:Person RETURN p"),
    ])  # fmt: skip
    found = verdicts(out)
    assert found[0] == ("a", True, None)
    assert found[1] == ("b", False, "cypher_error: RuntimeError: Binder exception: "
                                    "Table City does not exist.")  # fmt: skip
    assert found[2][2].startswith("cypher_error: RuntimeError: Parser exception: ")
    assert ctx.extra["failure_reasons"] == {"cypher_error": 2}


def test_cypher_without_a_fixture_is_left_unchecked() -> None:
    out, _ = run_stage(VerifyConfig(), [record("a", "cypher", "MATCH (n) RETURN n")])
    assert verdicts(out) == [("a", None, None)]


def test_failed_records_are_kept_and_flagged_unless_drop_failed() -> None:
    rows = [record("a", "python", "assert 1 == 2\n"), record("b", "python", "x = 1\n")]
    kept, _ = run_stage(VerifyConfig(), rows)
    dropped, _ = run_stage(VerifyConfig(drop_failed=True), rows)
    assert kept["filter_reason"].to_list() == [None, None]
    assert dropped["filter_reason"].to_list() == ["not_verified", None]
    assert verdicts(dropped) == [("a", False, "assert_failed: line 1"), ("b", True, None)]


def test_a_missing_fixture_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"verify.sql_fixture: no fixture file at"):
        VerifyStage(VerifyConfig(sql_fixture=tmp_path / "missing.sql"))


def test_the_manifest_says_which_network_isolation_was_used_and_counts_reasons() -> None:
    rows = [record("a", "python", "x = 1\n"), record("b", "python", "assert 0\n"),
            record("c", "python", "from . import x\nassert x\n")]  # fmt: skip
    out, ctx = run_stage(VerifyConfig(), rows)
    assert ctx.extra["network_isolation"] in ("netns", "audit_hook")
    assert ctx.extra["records_by_language"] == {"python": 3}
    assert set(ctx.extra["seconds_by_language"]) == {"python"}
    assert ctx.extra["failure_reasons"] == {"assert_failed": 1}
    assert ctx.extra["unchecked_reasons"] == {"unrunnable": 1}
    assert out["verified"].to_list() == [True, False, None]


def test_rows_without_order_by_compare_as_multisets() -> None:
    assert same_results([[1], [2]], [[2], [1]], ordered=False)
    assert not same_results([[1], [2]], [[2], [1]], ordered=True)
    assert not same_results([[1], [1], [2]], [[1], [2]], ordered=False)  # duplicates count
    assert not same_results([[1], [2]], [[1], [2], [2]], ordered=False)


def test_only_an_outer_order_by_orders_the_result() -> None:
    assert orders_rows("SELECT a FROM t ORDER BY a", "sql")
    assert not orders_rows("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3) s", "sql")
    assert not orders_rows("SELECT 'order by' AS a FROM t", "sql")
    assert orders_rows("MATCH (p:Person) RETURN p.name ORDER BY p.name", "cypher")
    assert not orders_rows("MATCH (p) WITH p ORDER BY p.age LIMIT 2 RETURN p.name", "cypher")


def test_generated_cypher_is_judged_by_its_result_on_the_fixture(tmp_path: Path) -> None:
    pytest.importorskip("ladybug")
    (tmp_path / "graph.cypher").write_text(GRAPH)
    execute = FixtureQueries(VerifyConfig(cypher_fixture=tmp_path / "graph.cypher"))
    reference = "MATCH (p:Person) RETURN p.name"
    assert executes_alike(reference, "MATCH (q:Person) RETURN q.name ORDER BY q.name DESC",
                          "cypher", execute)  # fmt: skip
    assert not executes_alike(reference + " ORDER BY p.name", "MATCH (q:Person) RETURN q.name "
                              "ORDER BY q.name DESC", "cypher", execute)  # fmt: skip
    assert not executes_alike(reference, "MATCH (q:Person) WHERE q.age > 40 RETURN q.name",
                              "cypher", execute)  # fmt: skip
    assert not executes_alike(reference, "MATCH (q:Nope) RETURN q", "cypher", execute)
    assert executes_alike("MATCH (c:City) RETURN c", reference, "cypher", execute) is None


def test_generated_sql_is_judged_by_its_result_on_the_fixture(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(TABLES)
    execute = FixtureQueries(VerifyConfig(sql_fixture=tmp_path / "schema.sql"))
    assert execute.languages == frozenset({"sql"})
    reference = "SELECT customer FROM orders"
    assert executes_alike(reference, "SELECT customer FROM orders ORDER BY id DESC", "sql",
                          execute)  # fmt: skip
    assert not executes_alike(reference, "SELECT DISTINCT customer FROM orders", "sql", execute)


def test_reviewers_see_a_failed_verification_as_the_not_verified_flag() -> None:
    pytest.importorskip("argilla")
    from argilla_setup.push_pull import to_argilla

    row = {**record("a", "python", "assert 1 == 2\n"), "instruction": "Check one is two",
           "content_clean": "assert 1 == 2\n", "quality_flags": ["too_short"]}  # fmt: skip
    failed = to_argilla({**row, "verified": False, "verify_reason": "assert_failed: line 1"})
    passed = to_argilla({**row, "verified": True})
    assert failed.metadata["quality_flags"] == ["too_short", "not_verified"]
    assert passed.metadata["quality_flags"] == ["too_short"]


def test_a_task_that_exits_early_or_garbles_its_result_fails_as_sandbox_error(
    sandbox: Sandbox,
) -> None:
    assert python(sandbox, "import os\nos._exit(0)\nassert 1\n").reason == "sandbox_error: exit 0"
    garble = "import os\nos.write(3, b'{not json\\n')\nos._exit(0)\nassert 1\n"
    assert python(sandbox, garble).reason == "sandbox_error: unreadable result"


def test_a_grown_source_verifies_only_the_parts_its_new_files_fall_in(tmp_path: Path) -> None:
    files = {f"m{i:02d}.py": f"assert {i} + 1 == {i + 1}\n" for i in range(30)}
    repo = write_tree(tmp_path / "repo", files)
    ingest = IngestConfig.model_validate({"sources": [{"type": "dir", "path": str(repo)}]})
    stages = [IngestStage(ingest, clone_root=tmp_path / "clones"), VerifyStage(VerifyConfig())]
    Runner(tmp_path / "work", part_rows=10).run(stages)
    write_tree(repo, {"m99.py": "assert 1 + 1 == 3\n"})
    read, grown = Runner(tmp_path / "work", part_rows=10).run(stages)

    unchanged = sum(listed["reused"] for listed in read.parts)
    assert 0 < unchanged < len(read.parts)
    assert sum(listed["reused"] for listed in grown.parts) == unchanged
    # what the manifest counts adds up over the reused parts and the new one
    assert grown.extra["records_by_language"] == {"python": 31}
    assert grown.extra["failure_reasons"] == {"assert_failed": 1}
