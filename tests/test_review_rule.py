"""The vote rule and the review numbers, without a server: what a record becomes from its
votes, agreement per round, the numbers per annotator, gold files, and a base install
without the Argilla SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from argilla_setup.agreement import agreement, per_annotator, round_agreement
from argilla_setup.gold import load_gold
from argilla_setup.votes import ReviewRecord, Vote, final_record
from curation.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_the_review_rule():
    good, fix, bad = Vote("a", "good"), Vote("b", "needs_fix", "Do X."), Vote("c", "reject")
    assert final_record("I", [])["review_status"] == "pending"
    assert final_record("I", [good])["final_instruction"] == "I"
    assert final_record("I", [fix, Vote("d", "needs_fix", "Do X.")])["final_instruction"] == "Do X."
    assert final_record("I", [good, Vote("b", "good"), bad])["review_status"] == "accepted"
    assert final_record("I", [bad])["review_status"] == "rejected"
    assert final_record("I", [good, bad])["review_labels"] == ["disagreement"]
    assert final_record("I", [Vote("a", "needs_fix", " ")])["review_labels"] == [
        "correction_missing"
    ]


def test_a_machine_vote_never_breaks_a_human_decision():
    person, machine = Vote("alice", "good"), Vote("auto-review", "reject")
    for votes in ([person, machine], [machine, person]):
        decided = final_record("I", votes)
        assert decided["review_status"] == "accepted"  # not a 1-1 tie
        assert decided["reviewers"] == ["alice"] and decided["review_labels"] == []
    alone = final_record("I", [Vote("auto-review", "good")])
    assert alone["review_status"] == "accepted"
    assert alone["reviewers"] == ["auto-review"] and alone["review_labels"] == ["machine_reviewed"]


def test_a_needs_fix_that_leaves_the_instruction_unchanged_is_not_corrected():
    unchanged = final_record("Add two numbers.", [Vote("a", "needs_fix", " Add two  numbers.")])
    assert unchanged["review_status"] == "pending"
    assert unchanged["final_instruction"] is None
    assert unchanged["review_labels"] == ["correction_missing"]


def test_differing_corrections_are_all_kept_and_a_tie_between_them_is_a_conflict():
    one, other = Vote("a", "needs_fix", "Sum a list."), Vote("b", "needs_fix", "Add up numbers.")
    conflict = final_record("I", [one, other])
    assert conflict["review_status"] == "pending"
    assert conflict["review_labels"] == ["conflicting_corrections"]
    assert conflict["correction_candidates"] == ["Add up numbers.", "Sum a list."]
    won = final_record("I", [one, other, Vote("c", "needs_fix", "Sum a list. ")])
    assert (won["review_status"], won["final_instruction"]) == ("corrected", "Sum a list.")
    assert won["correction_candidates"] == ["Sum a list.", "Add up numbers."]  # none dropped


def test_each_reviewers_latest_round_counts():
    first = [Vote("alice", "good", round=1), Vote("bob", "reject", round=1)]
    again = [Vote("carol", "reject", round=2), Vote("alice", "reject", round=2)]
    decided = final_record("I", first + again)
    assert decided["review_status"] == "rejected"
    assert decided["reviewers"] == ["alice", "bob", "carol"]


def test_agreement_is_raw_and_chance_corrected_per_round():
    g, r = "good", "reject"
    units = [[Vote("a", x), Vote("b", y)] for x, y in ((g, g), (g, r), (r, r))]
    # Krippendorff's alpha by hand: 6 pairable values, 3 good and 3 reject; observed
    # disagreement 2/6 (the mixed unit's two ordered pairs), expected 2*3*3/(6*5) = 0.6;
    # alpha = 1 - (1/3)/0.6 = 4/9.
    assert round_agreement(units) == {
        "records_with_two_or_more": 3, "unanimous": 2, "rate": 0.6667, "alpha": 0.4444,
    }  # fmt: skip
    # one category only: chance agreement is total, alpha is undefined
    assert round_agreement([[Vote("a", g), Vote("b", g)]])["alpha"] is None
    assert round_agreement([[Vote("a", g)]]) == {
        "records_with_two_or_more": 0, "unanimous": 0, "rate": None, "alpha": None,
    }  # fmt: skip
    reviews = [ReviewRecord(f"r{i}", 1, i, True, votes) for i, votes in enumerate(units)]
    reviews.append(ReviewRecord("r1", 2, 9, False, [Vote("c", r, round=2), Vote("d", r, round=2)]))
    found = agreement(reviews)
    assert found["by_round"]["1"]["alpha"] == 0.4444
    assert found["by_round"]["2"] == {
        "records_with_two_or_more": 1, "unanimous": 1, "rate": 1.0, "alpha": None,
    }  # fmt: skip
    assert (found["records_with_two_or_more"], found["unanimous"]) == (4, 3)


def test_agreement_leaves_the_machine_reviewer_out():
    units = [ReviewRecord("r0", 1, 0, True, [Vote("alice", "good"), Vote("auto-review", "good")])]
    assert agreement(units)["records_with_two_or_more"] == 0


def test_numbers_per_annotator():
    reviews = [
        ReviewRecord("r0", 1, 0, True, [Vote("alice", "good"), Vote("bob", "good")]),
        ReviewRecord("r1", 1, 1, True, [Vote("alice", "good"), Vote("bob", "reject")]),
        ReviewRecord("r1", 2, 2, True, [Vote("carol", "reject", round=2)]),
        ReviewRecord("r2", 1, 3, False, [Vote("auto-review", "good")], discarded_by=["bob"]),
        ReviewRecord("g0", 1, 4, True, [Vote("alice", "reject"), Vote("bob", "good")]),
    ]
    statuses = {"r0": "accepted", "r1": "rejected", "r2": "accepted"}
    numbers = per_annotator(reviews, statuses, gold={"g0": "reject"})
    assert list(numbers) == ["alice", "bob", "carol"]  # the machine is not a person
    assert numbers["alice"] == {
        "answered": 2, "decided": 2, "agreed": 1, "discarded": 0, "gold_answered": 1,
        "gold_correct": 1, "agreement": 0.5, "gold_accuracy": 1.0,
    }  # fmt: skip
    assert numbers["bob"]["agreement"] == 1.0 and numbers["bob"]["discarded"] == 1
    assert numbers["bob"]["gold_accuracy"] == 0.0
    assert numbers["carol"]["answered"] == 1 and numbers["carol"]["gold_accuracy"] is None


def test_a_bad_gold_line_is_an_error_naming_it(tmp_path):
    path = tmp_path / "gold.jsonl"
    good = {"code": "x = 1\n", "instruction": "Set x.", "expected": "good"}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "expected": "fine"}) + "\n")
    with pytest.raises(ConfigError, match=r"gold.jsonl:3: expected: Input should be 'good'"):
        load_gold(path)
    path.write_text(json.dumps(good) + "\n")
    [gold] = load_gold(path)
    assert gold.expected == "good" and len(gold.id) == 32  # an id like any record's


def test_a_base_install_without_the_argilla_sdk_runs_curate_init_and_builds_the_review_stage(
    tmp_path,
):
    config = tmp_path / "curate.toml"
    script = textwrap.dedent(f"""
        import sys
        sys.modules["argilla"] = None  # as if the [review] extra were not installed
        from pathlib import Path
        from typer.testing import CliRunner
        from codecurate.cli import app
        from codecurate.config import load_config
        from codecurate.pipeline import build_stages
        result = CliRunner().invoke(app, ["init", {str(config)!r}])
        assert result.exit_code == 0, result.output
        path = Path({str(config)!r})
        path.write_text(path.read_text().replace('"annotate"]', '"annotate", "review"]', 1))
        print([stage.name for stage in build_stages(load_config(path))][-1])
    """)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "review"
