"""The PII engine: which recognizers run where, overlap resolution, and anonymization."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import regex
from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

from curation.code_regions import natural_language_regions
from curation.errors import MissingDependency
from curation.pii.config import LABELS, PIIConfig
from curation.pii.names import NameLexicon, trimmed_span
from curation.pii.recognizers import (
    GENERIC_ACCOUNTS,
    impersonal_mailbox,
    prose_recognizers,
    stated_as_address,
    whole_text_recognizers,
)
from curation.pii.triggers import Trigger, candidate_lines, lowered

# Lines of code regions worth NER: two capitalised words in a row ("Maria Schneider").
# Most comments and strings have none and skip spaCy entirely; names after author and
# copyright markers are the AuthorLineRecognizer's.
_NAME_CANDIDATE = regex.compile(r"\p{Lu}\p{Ll}+[ \t]+(?:\p{Lu}\.[ \t]+)?\p{Lu}\p{Ll}+")
_NAME_PAIR = regex.compile(r"(\p{Lu}[\p{L}'\-]+)[ \t]+(\p{Lu}[\p{L}'\-]+)")
_DIGIT_GROUP = re.compile(r"\d{3}")
_NOT_NAMES = frozenset({"true", "false", "none", "null", "returns", "return", "raises", "yields"})
# spaCy's tokenizer glues names to code punctuation (`120.00,Jonas Weber`); NER reads a
# same-length copy with that punctuation turned into spaces, so offsets stay valid.
_NER_VIEW = str.maketrans({c: " " for c in '`,;|=*#<>[]{}"\\'})
# Lines of code regions worth the prose recognizers: a run of 7+ digits (phones, SSNs,
# cards), an @ (logins), or a marker that introduces a name.
_PROSE_CANDIDATE = Trigger(
    re.compile(r"\+?\d(?:[ ().\-]{0,3}\d){6,}|@|author|maintainer|copyright|contact"),
    lowered=True,
)
# A number in code is a phone only when it is written as one (+country code) or the line
# says so; citations, ISBNs, page ranges and doctest arrays are the rest.
_PHONE_WORDS = (
    r"\b(?:phone|tel|telephone|call|fax|mobile|cell|sms|whatsapp|hotline|contact|dial)\b|☎"
)
_PHONE_CONTEXT = re.compile(_PHONE_WORDS, re.IGNORECASE)
_CODE_PHONE_CANDIDATE = Trigger(re.compile(r"\+[\d(]|" + _PHONE_WORDS), lowered=True)
_DECIMAL = re.compile(r"[+-]?\d+\.\d+")
# Contact details on a doctest line (`>>> s.sendmail("me@my.org", ...)`) are examples.
_EXAMPLE_TYPES = frozenset({"EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"})
_DOCTEST = re.compile(r"[ \t]*(?:>>>|\.\.\.)[ \t]")


def _plausible_phone(value: str, text: str, start: int, end: int, in_code: bool) -> bool:
    """Never a citation, an ISBN or a page range; in code only when written as a phone
    (`+44 ...`) or said to be one, and not a decimal or part of a URL."""
    line_start = text.rfind("\n", 0, start) + 1
    if _NOT_A_PHONE_BEFORE.search(text[max(line_start, start - 40) : start]):
        return False
    if not in_code:
        return True
    if _DECIMAL.fullmatch(value):
        return False  # `Decimal('+35236450.6')`
    formatted = value.startswith("+") or any(c in value for c in " -()")
    in_url = text[max(0, start - 1) : start] == "/"
    line_end = text.find("\n", end)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    stated = value.startswith("+") or bool(_PHONE_CONTEXT.search(line))
    return formatted and stated and not in_url and bool(_DIGIT_GROUP.search(value))


def _on_doctest_line(text: str, offset: int) -> bool:
    line_start = text.rfind("\n", 0, offset) + 1
    return bool(_DOCTEST.match(text, line_start))


_NOT_A_PHONE_BEFORE = re.compile(r"(?i)(?:isbn|issn|doi|pp?\.|pages?|vol\.?|no\.)[\s:=]*[\[(]?$")


@dataclass(frozen=True)
class Finding:
    """One detected span of the original text."""

    type: str
    start: int
    end: int
    score: float
    recognizer: str


class CompactText:
    """Chosen regions of a text joined into one string, with offsets mapped back."""

    SEPARATOR = "\n\n"

    def __init__(self, text: str, spans: Sequence[tuple[int, int]]) -> None:
        parts, self._starts, self._origins = [], [], []
        position = 0
        for start, end in spans:
            self._starts.append(position)
            self._origins.append(start)
            parts.append(text[start:end])
            position += end - start + len(self.SEPARATOR)
        self.text = self.SEPARATOR.join(parts)

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        index = bisect.bisect_right(self._starts, start) - 1
        shift = self._origins[index] - self._starts[index]
        return start + shift, end + shift


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep the best of overlapping findings: higher score first, then the longer span."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (-f.score, f.start - f.end, f.start)):
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


class PIIEngine:
    """Finds and replaces PII in code and prose. Build once per process: loading spaCy
    takes a second or two."""

    def __init__(self, config: PIIConfig) -> None:
        self.config = config
        self.entities = set(config.entities)
        self.whole_text = whole_text_recognizers(config.include_private_ips)
        self.prose = {
            True: prose_recognizers(mentions=True),
            False: [r for r in prose_recognizers(mentions=False) if r.name != "PhoneRecognizer"],
        }
        self.code_phones = [r for r in prose_recognizers(mentions=False)
                            if r.name == "PhoneRecognizer"]  # fmt: skip
        self.ner = self._ner_engine(config.spacy_model) if config.ner else None
        self.lexicon = NameLexicon(config.spacy_model)
        self.anonymizer = AnonymizerEngine()

    @staticmethod
    def _ner_engine(model: str) -> BatchAnalyzerEngine:
        try:
            import spacy
        except ImportError as e:
            raise MissingDependency("spacy", "pii", "PERSON detection") from e
        nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        # In place of `load()`: only NER is used (parser, tagger and lemmatizer would double
        # spaCy's time), and `load()` tries to download a missing model.
        try:
            nlp_engine.nlp = {
                "en": spacy.load(
                    model, disable=["parser", "tagger", "lemmatizer", "attribute_ruler", "tok2vec"]
                )
            }
        except OSError as e:
            raise MissingDependency(model, "pii", f"the spaCy model '{model}'") from e
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON"]))
        return BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=nlp_engine, registry=registry))

    def analyze(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[list[Finding]]:
        """Findings per text. `language` None means prose (issues, commits): all of it is
        natural language; otherwise only comments, docstrings and strings are."""
        findings: list[list[Finding]] = []
        ner_inputs: list[tuple[int, CompactText]] = []
        for index, (text, language) in enumerate(zip(texts, languages, strict=True)):
            found = []
            lower = lowered(text)
            for recognizer, trigger in self.whole_text:
                found += self._run_on(text, trigger.spans(text, lower), [recognizer])
            regions = list(natural_language_regions(text, language))
            if language is None:
                found += self._run_on(text, regions, self.prose[True])
            else:
                found += self._run_on(
                    text, _PROSE_CANDIDATE.spans(text, lower, regions), self.prose[False]
                )
                # a phone in code counts only where written or said to be one (`_plausible`):
                # phonenumbers, the slowest of these, reads only such lines
                found += self._run_on(
                    text, _CODE_PHONE_CANDIDATE.spans(text, lower, regions), self.code_phones
                )
            names = regions if language is None else self._name_lines(text, regions)
            if self.ner is not None and "PERSON" in self.entities and names:
                ner_inputs.append((index, CompactText(text, names)))
            findings.append(found)
        if ner_inputs:
            compacts = [compact.text.translate(_NER_VIEW) for _, compact in ner_inputs]
            results = self.ner.analyze_iterator(compacts, language="en", batch_size=64)
            for (index, compact), found in zip(ner_inputs, results, strict=True):
                in_code = languages[index] is not None
                for r in found:
                    span = trimmed_span(compact.text, r.start, r.end, 2 if in_code else 1)
                    if span is None:
                        continue
                    if self._plausible_name(compact.text[span[0] : span[1]], languages[index]):
                        start, end = compact.to_original(*span)
                        findings[index].append(Finding("PERSON", start, end, r.score, "spacy"))
        return [
            resolve_overlaps([f for f in found if self._plausible(f, text, language)])
            for found, text, language in zip(findings, texts, languages, strict=True)
        ]

    def _name_lines(self, text: str, regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The lines of code regions on which NER could find a name that `_plausible`
        keeps: one has two capitalised words in a row, neither a dictionary word
        (`NameLexicon.reads_as_name`). "Return Value" and "See Also" lines skip spaCy."""
        return [
            (start, end)
            for start, end in candidate_lines(text, regions, _NAME_CANDIDATE)
            if any(
                not self.lexicon.is_phrase_word(first) and not self.lexicon.is_phrase_word(second)
                for first, second in _NAME_PAIR.findall(text, start, end, overlapped=True)
            )
        ]

    def _plausible(self, finding: Finding, text: str, language: str | None) -> bool:
        """In code, digit runs and capitalised pairs are rarely phones and names."""
        value = text[finding.start : finding.end]
        in_code = language is not None
        if finding.type == "PERSON":
            by_ner = finding.recognizer == "spacy"
            return self.lexicon.reads_as_name(value, in_code, by_ner) and not (
                in_code and set(value.lower().split()) & _NOT_NAMES
            )
        if in_code and finding.type in _EXAMPLE_TYPES and _on_doctest_line(text, finding.start):
            return False
        if finding.type == "PHONE_NUMBER":
            return _plausible_phone(value, text, finding.start, finding.end, in_code)
        if in_code and finding.type == "EMAIL_ADDRESS":
            return not impersonal_mailbox(value)
        if in_code and finding.type == "IP_ADDRESS":
            return stated_as_address(text, finding.start, finding.end)
        return True

    def _run_on(self, text: str, spans: list[tuple[int, int]], recognizers: list) -> list[Finding]:
        """Findings of `recognizers` on the chosen spans of a text, in the text's offsets."""
        if not spans:
            return []
        compact = CompactText(text, spans)
        return [
            Finding(f.type, *compact.to_original(f.start, f.end), f.score, f.recognizer)
            for f in self._run(recognizers, compact.text)
        ]

    def _run(self, recognizers: list, text: str) -> list[Finding]:
        found = []
        for recognizer in recognizers:
            wanted = [e for e in recognizer.supported_entities if e in self.entities]
            if not wanted:
                continue
            for r in recognizer.analyze(text, wanted, None):
                if r.score >= self.config.score_threshold:
                    found.append(Finding(r.entity_type, r.start, r.end, r.score, recognizer.name))
        return found

    @staticmethod
    def _plausible_name(value: str, language: str | None) -> bool:
        """In code, NER also tags identifiers; a name there is words, not `snake_case`."""
        if language is None:
            return True
        words = value.split()
        return len(words) >= 2 and all(
            w[:1].isupper() and w[1:].replace("-", "").replace("'", "").isalpha() for w in words
        )

    def redact_path(self, path: str) -> str:
        """A record's path with its PII replaced and its structure kept
        (`users/ann.lee@example.org/notes.py` -> `users/<EMAIL>/notes.py`). Only the
        pattern recognizers run: a path is no sentence for NER to read."""
        segments = [self._redact_segment(segment) for segment in path.split("/")]
        for i, segment in enumerate(segments[:-1]):
            login = segments[i + 1]
            named = login.lower() not in GENERIC_ACCOUNTS and not login.startswith("<")
            if segment.lower() in ("home", "users") and named:
                segments[i + 1] = f"<{LABELS['USERNAME']}>"  # home/<login>/...
        return "/".join(segments)

    def _redact_segment(self, segment: str) -> str:
        # One folder or file name at a time: recognizers would read `users/ann@x.io` as one
        # e-mail address whose local part is `users/ann`.
        found = self._run([recognizer for recognizer, _ in self.whole_text], segment)
        return self.redact(segment, resolve_overlaps(found))[0]

    def redact(self, text: str, findings: list[Finding]) -> tuple[str, list[dict]]:
        """The text with each finding replaced, and the spans as `pii_entities` rows."""
        if not findings:
            return text, []
        replacements = self._replacements(text, findings)
        operators = {
            f.type: OperatorConfig(
                "custom",
                # `.get`: should the anonymizer ever hand over a span we did not find, it
                # is still replaced, by its type's placeholder.
                {"lambda": lambda v, t=f.type: replacements.get((t, v), f"<{LABELS[t]}>")},
            )
            for f in findings
        }
        results = [RecognizerResult(f.type, f.start, f.end, f.score) for f in findings]
        # Findings reach here without overlaps (`resolve_overlaps`). Presidio would still
        # merge two of one type that only a space separates ("John Smith Mary Jones"),
        # into a span that has no replacement and no entry in `pii_entities`: keep them apart.
        anonymized = self.anonymizer.anonymize(
            text, results, operators, merge_entities_with_spaces=False
        )
        entities = [
            {"type": f.type, "start": f.start, "end": f.end,
             "replacement": replacements[f.type, text[f.start : f.end]]}
            for f in findings
        ]  # fmt: skip
        return anonymized.text, entities

    def _replacements(self, text: str, findings: list[Finding]) -> dict[tuple[str, str], str]:
        """Placeholder per type, or a pseudonym per distinct value numbered in order of
        first appearance, so one person is `<NAME_1>` throughout a document."""
        replacements: dict[tuple[str, str], str] = {}
        counters: dict[str, int] = {}
        for f in findings:
            key = (f.type, text[f.start : f.end])
            if key in replacements:
                continue
            label = LABELS[f.type]
            if self.config.mode == "pseudonym":
                counters[label] = counters.get(label, 0) + 1
                replacements[key] = f"<{label}_{counters[label]}>"
            else:
                replacements[key] = f"<{label}>"
        return replacements
