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
        # what SmolLM2 wrote instead of requests
        ("The code is written in Python. It sorts the values and picks the middle one.",
         "not_a_request"),
        ("The `median` function is a function that returns the middle of a sorted list.",
         "not_a_request"),
        ("Write a Python function.", "vague"),
        ("Write a Python function that does something with the given code.", "vague"),
        ("Write a list median. " + "The list is a list that is a list. " * 6, "repetitive"),
        ("Write a Python function that returns the middle value of sorted numbers. The function "
         "should return the middle value of the sorted numbers.", "repetitive"),
        ("Write Python code for distributed with this work for additional information.",
         "boilerplate"),
        ("Write a Python function, as the Apache License, Version 2.0 permits.", "boilerplate"),
        ("Write Python code for the contents of this file are deprecated.", "boilerplate"),
        ("Write a Python function `crc32(data)` that computes a CRC-32 checksum.",
         "names_not_in_code"),
        ("Write a Python module for stats.median ~~~~~~~~~~~. It returns the middle value.",
         "garbled"),
        ("Write a Python function for for the middle value of a sorted list.", "garbled"),
        ("Write a C function that returns the median of an array of doubles.", "wrong_language"),
        ("Write a Python function that converts uppercase letters of a string to lowercase.",
         "off_topic"),
    ],
)  # fmt: skip
def test_each_flag(instruction, flag):
    assert flag in flags(instruction)


@pytest.mark.parametrize(
    "instruction",
    [
        "Please implement `median(values)` in Python: sort the values and return the middle one.",
        "In Python, write a function that returns the median of a list of numbers.",
        "How do I get the median of a list of numbers in Python?",
        "Create a Python helper that returns the middle value of a list once it is sorted.",
    ],
)
def test_requests_in_other_words_have_no_flags(instruction):
    assert flags(instruction) == []


def test_a_request_for_one_of_several_definitions_is_incomplete():
    code = (
        CODE + "\n\ndef mean(values):\n    return sum(values) / len(values)\n\n"
        "def mode(values):\n    return max(values, key=values.count)\n"
    )
    assert "incomplete" in flags("Write a Python function `median(values)` that returns "
                                 "the middle value of a list.", code)  # fmt: skip
    assert "incomplete" not in flags("Write Python functions `median`, `mean` and `mode` for "
                                     "the statistics of a list.", code)  # fmt: skip


def test_a_request_for_one_function_of_a_header_that_declares_many_is_incomplete():
    header = "".join(f"PyAPI_FUNC(int) PyMedian_{name}(PyObject *);\n"
                     for name in ("New", "Size", "Get", "Set", "Clear"))  # fmt: skip
    request = "Write a C function that returns the median of a PyMedian object."
    assert "incomplete" in flags(request, header, "c")
    assert "incomplete" not in flags("Write a C header that declares the PyMedian API: New, "
                                     "Size, Get, Set and Clear.", header, "c")  # fmt: skip


def test_text_taken_from_the_codes_licence_header_is_boilerplate():
    code = ("// Copyright 2020 Acme Corp.\n"
            "// Parts of this work come from the zlib project by Jean-loup Gailly.\n"
            "int median(int *values, int n);\n")  # fmt: skip
    instruction = "Write C code for parts of this work come from the zlib project by Jean-loup."
    assert "boilerplate" in flags(instruction, code, "c")
    assert "boilerplate" not in flags("Write a C function that returns the median of n ints.",
                                      code, "c")  # fmt: skip


def test_prose_tasks_are_not_checked_against_code_but_their_answer_is():
    question = "This function crashes on start: how do I fix the KeyError?"
    assert quality_flags(question, "Set HOME first.", None, None) == []
    assert quality_flags(question, "I'm sorry, I can't help with that.", None, None) == ["refuses"]


def test_comments_quoted_from_the_code_are_not_copying_it():
    code = "-- Treatment-emergent adverse events per system organ class and arm.\nSELECT 1;\n"
    instruction = "Write SQL code for treatment-emergent adverse events per system organ class."
    assert flags(instruction, code, "sql") == []


def test_answers_parse_from_json_a_fence_tags_or_labelled_lines():
    task = load_task("qa_from_issue")
    expected = {"question": "Why?", "answer": "Because."}
    for text in (
        '{"question": " Why? ", "answer": "Because."}',
        'Here you go:\n```json\n{"question": "Why?", "answer": "Because."}\n```',
        'Sure. {"question": "Why?", "answer": "Because."} Hope it helps!',
        "<question>Why?</question>\n<answer>Because.</answer>",
        "Question: Why?\nAnswer: Because.",
        "**Question:** Why?\n\n**Answer:** Because.",
    ):
        assert task.parse(text) == expected, text
    for bad, why in (("Sure! Q and A", "no JSON object"), ("[1]", "JSON object"),
                     ('{"question": "Q"}', "answer"), ("", "empty"),
                     ('Sure: {"question": "Why?", "answ', "broken JSON")):  # fmt: skip
        with pytest.raises(MalformedOutput, match=why):
            task.parse(bad)


@pytest.mark.parametrize(
    ("reply", "instruction"),
    [
        ("Write a Python function that returns the median.", "Write a Python function that "
         "returns the median."),
        ('"Write a median function."', "Write a median function."),
        ("Sure! Here is the request: Write a median function.", "Write a median function."),
        ("Instruction: Write a median function.", "Write a median function."),
        ("Request: Write a median function.", "Write a median function."),
        ("Write a median function:\n```python\ndef median(v): ...\n```",
         "Write a median function:"),
        ('{"instruction": "Write a median function."}', "Write a median function."),
        ("The code is written in Python.", "The code is written in Python."),  # read; flagged
    ],
)  # fmt: skip
def test_a_one_field_answer_is_read_from_plain_text(reply, instruction):
    assert load_task("instruction_for_code").parse(reply) == {"instruction": instruction}


def test_code_alone_is_not_an_instruction():
    with pytest.raises(MalformedOutput, match="code block"):
        load_task("instruction_for_code").parse("```python\ndef median(v): ...\n```")


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


def test_the_offline_annotator_never_writes_from_a_licence_header():
    header = ("// Licensed to the Apache Software Foundation (ASF) under one\n"
              "// or more contributor license agreements.  See the NOTICE file\n"
              "// distributed with this work for additional information\n"
              "// regarding copyright ownership.\n\n")  # fmt: skip
    assert comment_instruction(header + "#pragma once\nint x;\n", "cpp") is None
    described = header + "// Ring buffers of bytes.\n\n#pragma once\nint x;\n"
    assert comment_instruction(described, "cpp") == "Write C++ code for ring buffers of bytes."
    # a comment further down is about one definition, not about the file
    assert comment_instruction(header + "int x;\n// Adds one to x.\n", "cpp") is None
