"""Where the PII recognizers read: the lines a cheap scan picks out of a text.

Recognizers, NER and phonenumbers cost far more per character than one regex scan, so
each reads only the lines on which its trigger matches; on real code most files and
most lines have none.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import regex

Spans = list[tuple[int, int]]


def candidate_lines(text: str, regions: Spans, pattern: re.Pattern | regex.Pattern) -> Spans:
    """The lines (clipped to their region) on which `pattern` matches, merged in order.

    Names and phone numbers need only their line as context; sending whole docstrings
    to spaCy and phonenumbers was most of this stage's time on real code.
    """
    spans: Spans = []
    for start, end in regions:
        match = pattern.search(text, start, end)
        while match is not None:
            line_start = max(start, text.rfind("\n", start, match.start()) + 1)
            line_end = text.find("\n", match.end(), end)
            line_end = end if line_end < 0 else line_end
            if spans and line_start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], line_end))
            else:
                spans.append((line_start, line_end))
            match = pattern.search(text, line_end + 1, end) if line_end < end else None
    return spans


def lowered(text: str) -> str | None:
    """The text in lower case with every offset kept, or None where lowering changes the
    length (`İ` becomes two code points)."""
    lower = text.lower()
    return lower if len(lower) == len(text) else None


@dataclass(frozen=True)
class Trigger:
    """A cheap scan every real match of a recognizer passes (an e-mail has an @, a known
    token a long run of token characters).

    `lowered`: the pattern is written in lower case and searched in the lowered text;
    `re` scans a case-sensitive pattern several times faster than an `(?i)` one.
    `whole_text`: the recognizer reads the entire text once the pattern occurs anywhere,
    for matches that span lines (a private key block).
    """

    pattern: re.Pattern[str]
    lowered: bool = False
    whole_text: bool = False

    @functools.cached_property
    def _any_case(self) -> re.Pattern[str]:
        return re.compile(self.pattern.pattern, self.pattern.flags | re.IGNORECASE)

    def spans(self, text: str, lower: str | None, regions: Spans | None = None) -> Spans:
        """The parts of `regions` (default: the whole text) the recognizer should read;
        `lower` is `lowered(text)`."""
        regions = [(0, len(text))] if regions is None else regions
        source, pattern = text, self.pattern
        if self.lowered:
            source, pattern = (lower, pattern) if lower is not None else (text, self._any_case)
        if self.whole_text:
            return regions if any(pattern.search(source, s, e) for s, e in regions) else []
        return candidate_lines(source, regions, pattern)
