"""The demo path, end to end, through the command line in a temporary workdir: ingest ->
filters -> PII -> dedup (against HumanEval) -> verify -> annotate -> review in a real local
Argilla (auto-review) -> export -> a short CPU LoRA finetune -> evaluation -> the run
report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import free_port
from support.tiny_models import tiny_chat_model
from typer.testing import CliRunner

from codecurate.cli import app
from codecurate.summary import read_manifests

pytestmark = pytest.mark.slow
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_demo_path_end_to_end(sample, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    shutil.copytree(sample, tmp_path / "sample")
    text = (ROOT / "curate.toml").read_text()
    text = text.replace('workdir = "data/work"', 'workdir = "work"').replace(
        "data/sample/", "sample/"
    )
    text = text.replace('root = "data/exports"', 'root = "exports"')
    text = text.replace("data/work/indexes/", "work/indexes/")
    text = text.replace("[review]\n", f"[review]\nport = {free_port()}\n")
    config = tmp_path / "curate.toml"
    config.write_text(text)
    c = str(config)
    (tmp_path / "finetune.toml").write_text(
        f'model = "{tiny_chat_model(tmp_path / "tiny")}"\npreset = "lora-r16"\nr = 8\n'
        "max_steps = 4\nbatch_size = 2\ngradient_accumulation = 1\nlogging_steps = 1\n"
        "gradient_checkpointing = false\n"
    )
    invoke("argilla", "up", "-c", c)
    try:
        invoke("argilla", "users", "apply", "-c", c)
        invoke("dedup", "index-benchmark", "humaneval", "-c", c, "--out",
               str(tmp_path / "work" / "indexes"))  # fmt: skip
        first = invoke("run", "-c", c, "--auto-review")
        assert "review in Argilla" in first
        again = invoke("run", "-c", c, "--auto-review")
        assert again.count("resumed") == 6  # only the review stage reruns (it always does)
        exported = invoke("export", "-c", c)
        assert "exported code-instructions@1.0.0" in exported
        adapter = tmp_path / "adapter"
        settings = str(tmp_path / "finetune.toml")
        invoke("finetune", "-c", c, "--dataset", "code-instructions@1.0.0",
               "--finetune-config", settings, "--out", str(adapter))  # fmt: skip
        invoke("evaluate", "-c", c, "--dataset", "code-instructions@1.0.0",
               "--adapter", str(adapter), "--max-new-tokens", "8")  # fmt: skip
        report = invoke("report", "-c", c)
        status = invoke("argilla", "status", "-c", c)
        password = (tmp_path / "work/argilla/passwords/demo.password").read_text().strip()
        assert "login: demo, password in" in status and password not in status
    finally:
        invoke("argilla", "down", "-c", c)

    workdir = tmp_path / "work"
    manifests = read_manifests(workdir)
    assert [m.stage for m in manifests] == ["ingest", "filters", "pii", "dedup", "verify",
                                            "annotate", "review"]  # fmt: skip
    by_stage = {m.stage: m for m in manifests}
    assert by_stage["pii"].extra["found"]["EMAIL_ADDRESS"] > 0
    assert by_stage["dedup"].extra["clusters_with_duplicates"] == 2
    assert by_stage["dedup"].config["against"] == [str(workdir / "indexes" / "humaneval.parquet")]
    assert by_stage["verify"].extra["network_isolation"] in ("netns", "audit_hook")
    assert by_stage["verify"].extra["seconds_by_language"].keys() >= {"python", "sql", "c"}
    assert by_stage["annotate"].extra["statuses"]["ok"] > 0
    review = by_stage["review"].extra
    annotated = by_stage["annotate"].extra["annotated"]
    assert sum(review["review_statuses"].values()) == annotated
    lineage = json.loads((tmp_path / "exports/code-instructions/1.0.0/lineage.json").read_text())
    statuses = review["review_statuses"]
    # the machine reviewer corrects what carries a flag (sql/schema.sql is not_verified now)
    exported_records = statuses["accepted"] + statuses.get("corrected", 0)
    assert sum(lineage["counts"].values()) == exported_records
    assert lineage["annotators"] == ["offline:docstring"] and lineage["prompt_hashes"]
    configs = {tag: stage["config"] for tag, stage in lineage["stages"].items()}
    assert configs["03_pii"]["mode"] == "placeholder" and configs["04_dedup"]["threshold"] == 0.7
    assert {"acme-billing", "sensorlib"} <= {s["source"] for s in lineage["sources"]}
    assert json.loads((adapter / "train_metrics.json").read_text())["steps"] == 4  # max_steps
    assert json.loads((adapter / "eval_metrics.json").read_text())["records"] >= 1
    page = workdir / "reports" / "run-report.html"
    assert str(page) in report.replace("\n", "")
    html = page.read_text()
    # each stage's section is its own story's: PII per type, clusters, spend, review
    for heading in ("Funnel", "03_pii", "04_dedup", "05_verify", "06_annotate", "07_review",
                    "Dataset versions"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in html
    for table in ("found and replaced", "largest near-duplicate clusters",
                  "annotation runs in the ledger", "review in Argilla"):  # fmt: skip
        assert f"<h3>{table}</h3>" in html
    if CHROMIUM:
        from playwright.sync_api import sync_playwright

        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "run-report.png").unlink(missing_ok=True)  # a last run's must not count
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            view = browser.new_page(viewport={"width": 1100, "height": 900})
            view.goto(page.as_uri())
            view.screenshot(path=artifacts / "run-report.png", full_page=True)
            browser.close()
        assert (artifacts / "run-report.png").stat().st_size > 0
