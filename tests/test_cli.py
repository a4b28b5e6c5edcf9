"""The `curate` command line: every command has help with an example; errors are one line."""

import json
import shutil

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from codecurate.cli import app

runner = CliRunner()


def all_commands(group=None, prefix=()):
    group = group or get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from all_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("command", list(all_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_init_writes_a_config_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "curate.toml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    assert "[ingest]" in path.read_text()
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 2 and "--force" in result.output


def test_run_then_status_on_the_sample_corpus(sample, tmp_path):
    shutil.copytree(sample, tmp_path / "sample")
    config = tmp_path / "curate.toml"
    text = (sample.parent.parent / "curate.toml").read_text()
    config.write_text(
        text.replace('workdir = "data/work"', 'workdir = "work"')
        .replace("data/sample/", "sample/")
        .replace(', "review"]', "]")  # the Argilla round trip has its own tests
    )
    index = runner.invoke(app, ["dedup", "index-benchmark", "humaneval", "-c", str(config),
                                "--out", str(tmp_path / "data" / "work" / "indexes")])  # fmt: skip
    assert index.exit_code == 0, index.output  # the demo decontaminates against HumanEval
    result = runner.invoke(app, ["run", "-c", str(config)])
    assert result.exit_code == 0, result.output
    for expected in (
        "01_ingest",
        "02_filters",
        "03_pii",
        "exact_duplicate",
        "too_large",
        "EMAIL_ADDRESS",
    ):
        assert expected in result.output
    status = runner.invoke(app, ["status", "-c", str(config)])
    assert (
        status.exit_code == 0 and "resumed" not in status.output and "02_filters" in status.output
    )
    again = runner.invoke(app, ["run", "-c", str(config)])
    assert again.output.count("resumed") == 6  # ingest, filters, pii, dedup, verify, annotate
    cost = runner.invoke(app, ["annotate", "-c", str(config), "--dry-run"])
    assert cost.exit_code == 0, cost.output
    assert "instruction_for_code" in cost.output and "total" in cost.output
    report = runner.invoke(app, ["cost", "report", "-c", str(config), "--by", "task"])
    assert report.exit_code == 0, report.output
    assert "annotation spend by task" in report.output
    assert (tmp_path / "work" / "reports" / "cost-report.html").exists()


def test_config_errors_are_one_line_with_exit_code_2(tmp_path):
    config = tmp_path / "curate.toml"
    config.write_text(
        '[ingest]\nsources = [{type = "dir", path = "x"}]\n[filters]\nmin_chars = -1\n'
    )
    result = runner.invoke(app, ["run", "-c", str(config)])
    assert result.exit_code == 2
    assert "filters.min_chars" in result.output and "Traceback" not in result.output


def test_pii_scan_shows_where_but_never_the_value(tmp_path):
    source = tmp_path / "settings.py"
    source.write_text('KEY = "AKIA4QWERTYUIOP7ZX2N"\n# mail ann.lee@example.org\n')
    result = runner.invoke(app, ["pii", "scan", str(source), "--no-ner"])
    assert result.exit_code == 0, result.output
    assert "KEY" in result.output and "EMAIL_ADDRESS" in result.output
    assert "AKIA4QWERTYUIOP7ZX2N" not in result.output and "ann.lee" not in result.output


def test_pii_redact_reads_stdin():
    result = runner.invoke(
        app,
        ["pii", "redact", "-", "--no-ner", "--mode", "pseudonym"],
        input="Ask @alice or bob@example.org\n",
    )
    assert result.exit_code == 0, result.output
    assert result.output == "Ask @<USERNAME_1> or <EMAIL_1>\n"


def test_dedup_scan_lists_clusters_as_json(tmp_path):
    body = "\n".join(f"def f{i}(x):\n    return x * {i} + {i * 7}" for i in range(30))
    (tmp_path / "a.py").write_text(body)
    (tmp_path / "b.py").write_text(body.replace("    ", "\t"))
    (tmp_path / "c.py").write_text("print('something else entirely')\n" * 5)
    result = runner.invoke(app, ["dedup", "scan", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    [cluster] = json.loads(result.output)
    assert [m["path"].rsplit("/", 1)[1] for m in cluster] == ["a.py", "b.py"]


def test_dedup_scan_compares_files_as_the_stage_does_without_their_licence_headers(tmp_path):
    apache = "".join(
        f"// {line}\n"
        for line in [
            "Licensed to the Apache Software Foundation (ASF) under one or more contributor",
            "license agreements. See the NOTICE file distributed with this work for additional",
            "information regarding copyright ownership. The ASF licenses this file to you",
            "under the Apache License, Version 2.0; you may not use this file except in",
            "compliance with the License. Unless required by applicable law or agreed to in",
            "writing, software is distributed on an AS IS BASIS, WITHOUT WARRANTIES.",
        ]
    )
    (tmp_path / "base64.h").write_text(apache + "#pragma once\nstd::string encode(int n);\n")
    (tmp_path / "queue.h").write_text(apache + "#pragma once\nclass Queue { int size; };\n")
    body = "".join(f"int f{i}(int x) {{ return x * {i} + {i * 7}; }}\n" for i in range(12))
    (tmp_path / "a.c").write_text("// SPDX-License-Identifier: MIT\n" + body)
    (tmp_path / "b.c").write_text("/* Copyright 2001 Someone. All rights reserved. */\n" + body)
    result = runner.invoke(app, ["dedup", "scan", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    [cluster] = json.loads(result.output)
    assert [m["path"].rsplit("/", 1)[1] for m in cluster] == ["a.c", "b.c"]
    assert cluster[1]["jaccard"] == 1.0
