"""Quality flags and answer parsing: what a reviewer is warned about, and what is retried."""

import pytest

from annotators.providers.offline import comment_instruction, python_instruction
from annotators.quality import quality_flags
from annotators.tasks import MalformedOutput, load_task

CODE = '''def median(values):
    """Middle value of a list."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle]
'''
GOOD = "Write a Python function that returns the median of a list of numbers."


def flags(instruction: str, code: str | None = CODE, language: str | None = "python") -> list[str]:
    return quality_flags(instruction, None, code, language)


def test_a_good_request_has_no_flags():
    assert flags(GOOD) == []


@pytest.mark.parametrize(
    ("instruction", "flag"),
    [
        ("", "empty"),
        ("Median.", "too_short"),
        ("Write code " + "that is fast " * 100, "too_long"),
        ("ordered = sorted(values) middle = len(ordered) // 2 return ordered[middle]",
         "copies_code"),
        ("This function sorts the values and returns the middle one.", "restates_code"),
        ("1. Sort the list.\n2. Find the middle.\n3. Index it.\n4. Return it.", "restates_code"),
        ("On line 3 it computes the middle index of the sorted list.", "restates_code"),
        ("Write a JavaScript function that returns the median of an array.", "wrong_language"),
        ("Напишите функцию, которая возвращает медиану списка чисел.", "wrong_language"),
        ("Write a function that mails <EMAIL_ADDRESS> a list's median.", "mentions_placeholder"),
        ("I'm sorry, but I cannot help with writing that function for you.", "refuses"),
    ],
)  # fmt: skip
def test_each_flag(instruction, flag):
    assert flag in flags(instruction)


def test_prose_tasks_are_not_checked_against_code_but_their_answer_is():
    question = "This function crashes on start: how do I fix the KeyError?"
    assert quality_flags(question, "Set HOME first.", None, None) == []
    assert quality_flags(question, "I'm sorry, I can't help with that.", None, None) == ["refuses"]


def test_comments_quoted_from_the_code_are_not_copying_it():
    code = "-- Treatment-emergent adverse events per system organ class and arm.\nSELECT 1;\n"
    instruction = "Write SQL code for treatment-emergent adverse events per system organ class."
    assert flags(instruction, code, "sql") == []


def test_answers_parse_from_json_or_a_fenced_block_and_nothing_else():
    task = load_task("qa_from_issue")
    assert task.parse('{"question": " Why? ", "answer": "Because."}') == {
        "question": "Why?",
        "answer": "Because.",
    }
    fenced = 'Here you go:\n```json\n{"question": "Q", "answer": "A"}\n```'
    assert task.parse(fenced) == {"question": "Q", "answer": "A"}
    for bad, why in (("Sure! Q and A", "no JSON object"), ("[1]", "JSON object"),
                     ('{"question": "Q"}', "answer")):  # fmt: skip
        with pytest.raises(MalformedOutput, match=why):
            task.parse(bad)


def test_offline_instructions_read_as_requests():
    code = '"""Match payments to invoices."""\n\ndef pair(a, b):\n    """Pair one payment."""\n'
    assert python_instruction(code) == (
        "Write a Python module to match payments to invoices. "
        "It should provide a function `pair(a, b)` (pair one payment)."
    )
    c_code = "// SPDX-License-Identifier: MIT\n/* Computes CRC32 checksums. */\nint x;\n"
    assert comment_instruction(c_code, "c") == "Write C code that computes CRC32 checksums."
    assert python_instruction("x = 1\n") is None
    assert comment_instruction("/* Contact <NAME> at <EMAIL_ADDRESS>. */", "c") is None
