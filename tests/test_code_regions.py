"""Licence headers: the leading comment blocks that hold licence or copyright text."""

import pytest

from curation.code_regions import license_header_spans, strip_license_header


def headers(text: str, language: str | None) -> list[str]:
    return [text[start:end] for start, end in license_header_spans(text, language)]


@pytest.mark.parametrize(
    ("language", "header", "code"),
    [
        ("python", "# Copyright 2024 Acme\n# SPDX-License-Identifier: MIT", "import os\n"),
        ("c", "// Licensed to the ASF under one\n// or more contributor license agreements.",
         "#pragma once\n"),
        ("cpp", "/*\n * Copyright (c) 2019 Acme. All rights reserved.\n */", "int x;\n"),
        ("sql", "-- Copyright 2021 Acme\n-- Licensed under the Apache License 2.0",
         "SELECT 1;\n"),
        ("shell", "# Permission is hereby granted, free of charge, to any person", "echo hi\n"),
        ("sas", "/* Redistribution and use in source and binary forms */", "data a; run;\n"),
    ],
)  # fmt: skip
def test_the_leading_licence_block_is_found_in_each_comment_syntax(language, header, code):
    assert headers(f"{header}\n\n{code}", language) == [header]


def test_a_shebang_line_comes_before_the_header():
    text = "#!/usr/bin/env node\n// SPDX-License-Identifier: MIT\nconsole.log(1)\n"
    assert headers(text, "javascript") == ["// SPDX-License-Identifier: MIT"]


def test_a_module_docstring_with_a_copyright_counts_but_a_function_docstring_does_not():
    module = '"""Lexers for ML.\n\n:copyright: 2006 the team.\n:license: BSD.\n"""'
    function = 'def f():\n    """Copyright notices are parsed here (license text)."""\n'
    assert headers(f"{module}\n\n{function}", "python") == [module]
    assert headers(function, "python") == []


def test_only_the_blocks_with_licence_words_go_and_none_after_the_first_code():
    text = (
        "# -*- coding: utf-8 -*-\n\n"
        "# Copyright 2020 Acme\n\n"
        '"""Parse ports."""\n'
        "import re  # license: MIT\n"
        "# Copyright 2021 someone else\n"
    )
    assert headers(text, "python") == ["# Copyright 2020 Acme"]


def test_a_line_comment_block_ends_where_a_block_comment_starts():
    text = "// SPDX-License-Identifier: Apache-2.0\n/* Sensor access over I2C. */\nint x;\n"
    assert headers(text, "c") == ["// SPDX-License-Identifier: Apache-2.0"]


def test_prose_has_no_header():
    assert headers("Copyright 2024 Acme. Licensed under MIT.\n\nHello.", None) == []


def test_stripping_keeps_the_code_and_a_file_that_is_only_a_header_whole():
    header = "# Copyright 2024 Acme\n# Licensed under the MIT License.\n"
    assert strip_license_header(header + "\nx = 1\n", "python") == "\n\nx = 1\n"
    assert strip_license_header(header, "python") == header
