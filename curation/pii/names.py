"""Whether a capitalised phrase that NER tagged PERSON reads as a person's name.

On source code spaCy tags title-cased phrases as people: UI strings ("Successful
Response"), doc titles ("Connectivity Algorithms", "Arrow Status"), licence boilerplate
("HOLDERS AND CONTRIBUTORS", "The OpenSSL Project Authors"). What tells them apart from
"Maria Schneider" is vocabulary: phrases are made of dictionary words, names are not, or
their dictionary words are also common given names and surnames ("Mark Newman").

The dictionary is WordNet's word list as spaCy's English model ships it (its lemmatizer's
`lemma_index` table), the names are the US Census given-name and surname lists that the
`names` package ships (public-domain data): both install with the `[pii]` extra and need
no download.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Final

# Words that make a capitalised phrase an organisation or a licence phrase, whatever
# else it holds ("The LevelDB Authors", "Python Software Foundation", "Siemens AG").
ORGANISATION_WORDS: Final = frozenset(
    {
        "authors", "author", "contributors", "contributor", "holders", "holder", "owner",
        "owners", "project", "projects", "foundation", "software", "team", "group", "inc",
        "incorporated", "ltd", "llc", "gmbh", "ag", "corp", "corporation", "company", "co",
        "labs", "lab", "developers", "community", "university", "institute", "licensing",
        "systems", "technologies", "consortium", "association", "organization", "sa", "bv",
        "enterprises", "security", "solutions", "services", "industries", "holdings",
    }
)  # fmt: skip
# The stand-in people of documentation examples.
PLACEHOLDER_NAMES: Final = frozenset(
    {"john doe", "jane doe", "joe blow", "joe bloggs", "richard roe", "jane roe",
     "max mustermann", "erika mustermann", "john q public"}
)  # fmt: skip
# Capitals inside a word belong to a name only after these prefixes (McDowd, DeLong).
_INNER_CAPITAL_PREFIXES: Final = ("Mc", "Mac", "De", "Di", "Da", "Le", "La", "Van", "O'", "D'")
_VOWELS: Final = frozenset("aeiouyáéíóúàèìòùâêîôûäëïöüãõåøæœ")
ARTICLES: Final = frozenset({"the", "a", "an", "this", "that", "our", "these", "those"})


@functools.cache
def _dictionary(spacy_model: str) -> frozenset[str]:
    """WordNet's nouns, verbs, adjectives and adverbs, from the spaCy model's lemmatizer."""
    from spacy.lookups import Lookups

    spec = importlib.util.find_spec(spacy_model)
    if spec is None or spec.origin is None:
        return frozenset()
    tables = next(Path(spec.origin).parent.glob("*/lemmatizer/lookups"), None)
    if tables is None:
        return frozenset()
    index = Lookups().from_disk(tables).get_table("lemma_index")
    return frozenset(word for pos in index for word in index[pos])


@functools.cache
def _census_names() -> frozenset[str]:
    """Given names and surnames of the US Census lists (lowercased)."""
    spec = importlib.util.find_spec("names")
    if spec is None or spec.origin is None:
        return frozenset()
    folder = Path(spec.origin).parent
    found: set[str] = set()
    for name in ("dist.male.first", "dist.female.first", "dist.all.last"):
        path = folder / name
        if path.exists():
            found.update(line.split(" ", 1)[0].lower() for line in path.read_text().splitlines())
    return frozenset(found - {""})


def _forms(word: str) -> tuple[str, ...]:
    """The word and the lemma candidates of a plural or -ing form ("Graphs", "Licensing")."""
    forms = [word]
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s"):
        forms.append(word[:-1])
    if word.endswith("ing"):
        forms += [word[:-3], word[:-3] + "e"]
    return tuple(forms)


class NameLexicon:
    """The vocabulary test for NER's PERSON spans; built once per engine."""

    def __init__(self, spacy_model: str) -> None:
        self.dictionary = _dictionary(spacy_model)
        self.names = _census_names()

    def is_phrase_word(self, word: str) -> bool:
        """A dictionary word that is not also a common given name or surname."""
        lower = word.lower().strip(".,;:'\"()")
        if lower in self.names:
            return False
        return any(form in self.dictionary for form in _forms(lower))

    def reads_as_name(self, value: str, in_code: bool, by_ner: bool) -> bool:
        """Whether a PERSON span is a name rather than a title, a UI string or an
        organisation. In code a name has two words and no word in capitals, and one that
        NER found must pass the dictionary test too: a name written in a comment or a
        string has no sentence around it for NER to judge by."""
        words = [w.removesuffix("'s").removesuffix("’s") for w in value.split()]
        if not words or (in_code and len(words) < 2) or words[0].lower() in ARTICLES:
            return False
        if any(w.lower().strip(".,") in ORGANISATION_WORDS for w in words):
            return False
        if in_code and any(len(w) > 1 and w.isupper() for w in words if w.isalpha()):
            return False  # HOLDERS AND CONTRIBUTORS, UI, XML: names are not written in capitals
        if " ".join(words).lower() in PLACEHOLDER_NAMES:
            return False
        if not all(_name_shaped(w) for w in words):
            return False
        return not (in_code and by_ner and any(self.is_phrase_word(w) for w in words))


def _name_shaped(word: str) -> bool:
    """A vowel (`Ttk`, `Gvz` have none) and no capital inside unless after Mc, De...
    (`DocTest`, `OverHere` are identifiers)."""
    letters = word.strip(".,;:'\"()")
    if len(letters) <= 2:
        return True  # initials and short names: "P.", "Bo", "Di"
    if not any(c in _VOWELS for c in letters.lower()):
        return False
    inner = any(c.isupper() for part in letters.split("-") for c in part[1:])
    return not inner or letters.startswith(_INNER_CAPITAL_PREFIXES)


def trimmed_span(text: str, start: int, end: int, min_words: int) -> tuple[int, int] | None:
    """A NER span cut at its first line break, without the quotes, brackets and
    punctuation around it or a possessive (`'Tom Hanks'` -> `Tom Hanks`, "Eppstein's" ->
    "Eppstein": a replacement must not eat the code's own quote); None when fewer than
    `min_words` words are left."""
    value = text[start:end]
    newline = value.find("\n")
    if newline >= 0:
        value = value[:newline]
    lead = len(value) - len(value.lstrip(_AROUND))
    value = value.strip(_AROUND)
    for suffix in ("'s", "’s"):
        value = value.removesuffix(suffix)
    value = value.rstrip(_AROUND)
    if len(value.split()) < min_words:
        return None
    return start + lead, start + lead + len(value)


_AROUND = " \t.,;:'\"`()[]{}<>"
