"""Seconds the verify stage takes per 1,000 generated pairs, per language, beside the floor
every sandboxed record pays: starting one isolated interpreter in a scratch folder.

Pairs are generated (seeded), each a small answer of its language: Python with a doctest
and an assert, SQL against a 3-table fixture (SQLite and DuckDB), Cypher against a small
graph, and C (parse only). Some are wrong on purpose, so failures are timed too.

    PYTHONPATH=. .venv/bin/python benchmarks/verify.py [--pairs 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from curation.runner import StageContext
from curation.schema import record_id, to_records
from curation.verify import VerifyConfig, VerifyStage

SQL_FIXTURE = """
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, country TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);
INSERT INTO customers VALUES (1, 'ada', 'uk'), (2, 'alan', 'uk'), (3, 'grace', 'us');
INSERT INTO orders VALUES (1, 1, 10.5), (2, 2, 3.0), (3, 1, 1.5), (4, 3, 8.0);
"""
CYPHER_FIXTURE = """
CREATE NODE TABLE Person(name STRING, age INT64, PRIMARY KEY(name));
CREATE REL TABLE Knows(FROM Person TO Person);
CREATE (:Person {name: 'ada', age: 36});
CREATE (:Person {name: 'alan', age: 41});
CREATE (:Person {name: 'grace', age: 45});
MATCH (a:Person {name: 'ada'}), (b:Person {name: 'alan'}) CREATE (a)-[:Knows]->(b);
"""


def python_answer(r: random.Random) -> str:
    a, b = r.randint(1, 99), r.randint(1, 99)
    wrong = r.random() < 0.2
    return (f"def add(a, b):\n    '''\n    >>> add({a}, {b})\n    {a + b + wrong}\n    '''\n"
            f"    return a + b\n\nassert add(1, 1) == 2\n")  # fmt: skip


def sql_answer(r: random.Random) -> str:
    column = r.choice(["total", "customer_id", "id"] + ["missing"] * (r.random() < 0.2))
    return f"SELECT c.name, sum(o.{column}) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name"  # noqa: E501


def cypher_answer(r: random.Random) -> str:
    label = "Person" if r.random() > 0.2 else "City"
    return f"MATCH (p:{label}) WHERE p.age > {r.randint(30, 45)} RETURN p.name ORDER BY p.name"


def c_answer(r: random.Random) -> str:
    body = "return a + b;" if r.random() > 0.2 else "return a + ;"
    return f"int add{r.randint(0, 999)}(int a, int b) {{ {body} }}\n"


ANSWERS = {"python": python_answer, "sql": sql_answer, "cypher": cypher_answer, "c": c_answer}


def pairs(language: str, count: int, seed: int) -> pl.DataFrame:
    r = random.Random(seed)
    rows = []
    for i in range(count):
        answer = ANSWERS[language](r)
        rows.append({"id": record_id("bench", f"{language}/{i}", answer), "kind": "code",
                     "source": "bench", "path": f"{language}/{i}", "language": language,
                     "content": answer, "size_bytes": len(answer), "num_lines": 1})  # fmt: skip
    return to_records(rows)


def interpreter_floor(count: int, workers: int) -> float:
    """Seconds for `count` bare `python -I -c pass` starts in scratch folders, `workers` at
    a time: what any per-record process sandbox costs before it does anything."""
    from concurrent.futures import ThreadPoolExecutor

    def start(_: int) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run([sys.executable, "-I", "-c", "pass"], cwd=scratch, env={}, check=True)

    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(start, range(count)))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000, help="pairs per language")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "schema.sql").write_text(SQL_FIXTURE)
        (Path(folder) / "graph.cypher").write_text(CYPHER_FIXTURE)
        floor = interpreter_floor(args.pairs, args.workers) / args.pairs * 1000
        print(f"floor (bare isolated interpreter): {floor:8.1f} s per 1,000 records")
        runs = [(language, "sqlite") for language in ANSWERS] + [("sql", "duckdb")]
        for language, engine in runs:
            config = VerifyConfig(workers=args.workers, sql_engine=engine,
                                  sql_fixture=Path(folder) / "schema.sql",
                                  cypher_fixture=Path(folder) / "graph.cypher")  # fmt: skip
            frame = pairs(language, args.pairs, seed=7)
            ctx = StageContext(None, "05_verify")
            began = time.perf_counter()
            out = pl.concat(list(VerifyStage(config).run(frame.lazy(), ctx)))
            seconds = (time.perf_counter() - began) / args.pairs * 1000
            passed = out["verified"].sum()
            name = f"{language} ({engine})" if language == "sql" else language
            print(f"{name:14} {seconds:8.1f} s per 1,000 pairs  ({seconds / floor:5.2f}x the "
                  f"floor; {passed}/{out.height} verified; network {ctx.extra['network_isolation']})")  # fmt: skip  # noqa: E501


if __name__ == "__main__":
    main()
