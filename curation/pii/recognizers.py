"""Presidio recognizers chosen for code and issues.

Cheap ones (`whole_text_recognizers`) run over entire files; the prose ones
(`prose_recognizers`) only over comments, docstrings, strings and issue text, where
people write names, phone numbers and @mentions.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

import regex
import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

from curation.pii.secrets import (
    KNOWN_TOKENS,
    PREFIXED_SECRETS,
    PRIVATE_KEY,
    SECRET_ASSIGNMENTS,
    looks_like_secret,
)
from curation.pii.triggers import Trigger

# Accounts that name a service, not a person (`git@github.com:org/repo`, `/home/runner`).
GENERIC_ACCOUNTS: Final = frozenset(
    {
        "git", "root", "admin", "administrator", "user", "username", "users", "me", "you",
        "runner", "ubuntu", "ec2-user", "centos", "debian", "postgres", "www-data", "nobody",
        "guest", "public", "shared", "default", "all users", "default user", "name", "travis",
        "circleci", "jenkins", "vagrant", "docker", "app", "deploy", "build", "ci", "test",
        # the stand-in people of documentation examples (`/home/john/sales.csv`)
        "john", "jane", "alice", "bob", "foo", "bar", "baz", "example", "someone",
    }
)  # fmt: skip
# Domains reserved for documentation (RFC 2606, RFC 6761): no one receives mail there.
_RESERVED_DOMAIN = re.compile(
    r"(?i)(?:^|\.)(?:example\.(?:com|net|org)|[^.]+\.(?:example|test|invalid|localhost))$"
)
# Local parts that documentation puts in front of those domains (`me@example.com`).
PLACEHOLDER_MAILBOXES: Final = frozenset(
    {
        "me", "you", "user", "username", "name", "someone", "somebody", "foo", "bar", "baz",
        "test", "example", "address", "email", "mail", "copy", "info", "admin", "noreply",
        "no-reply", "your.name", "your.email", "yourname", "first.last", "john.doe",
        "jane.doe", "johndoe", "janedoe", "alice", "bob", "sender", "recipient", "x", "a", "b",
        "joe", "jane", "john",
    }
)  # fmt: skip
# Mailboxes of a role (RFC 2142) or of a mailing list, not of a person.
ROLE_MAILBOXES: Final = frozenset(
    {
        "info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster",
        "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp", "noreply",
        "no-reply", "mailer-daemon", "majordomo", "listserv",
    }
)  # fmt: skip
_MAILING_LIST = re.compile(r"-(?:sig|users?|bugs|dev|devel|announce|list|request|owner|help)$")
_MESSAGE_ID = re.compile(r"[\d.]{10,}")  # `<142480216486.20800.165@host>` is a Message-ID
# `TODO(...)` holding a ticket or a version rather than a person (`TODO(ARROW-18328)`).
_TICKET = re.compile(r"(?i)[a-z]+-\d+|v?\d+(?:\.\d+)*|gh-?\d+|#\d+")

# `@tag`s of doc comments and decorators that look like mentions.
DOC_TAGS: Final = frozenset(
    {
        "param", "return", "returns", "throws", "throw", "see", "since", "author", "deprecated",
        "override", "type", "property", "staticmethod", "classmethod", "dataclass", "pytest",
        "todo", "fixme", "note", "example", "link", "code", "inheritdoc", "brief", "details",
        "file", "version", "private", "public", "internal", "api", "raises", "yields", "rtype",
        "var", "ivar", "cvar", "exception", "ingroup", "defgroup", "interface", "implements",
        "overload", "abstractmethod", "cached_property", "lru_cache", "wraps", "mock", "patch",
        "fixture", "app", "router", "media", "import", "font-face", "keyframes", "supports",
        "charset", "apply", "tailwind", "layer", "types", "babel", "angular", "vue", "jest",
    }
)  # fmt: skip


def compile_fast(pattern: str, flags: int) -> re.Pattern | regex.Pattern:
    """Stdlib `re` where the pattern allows it (several times faster on long texts), else
    the `regex` module (for \\p{...} classes and variable-width look-behinds)."""
    try:
        return re.compile(pattern, flags)
    except re.error:
        return regex.compile(pattern, flags)


class GroupPatternRecognizer(PatternRecognizer):
    """A PatternRecognizer that reports the `value` group of a match where it has one.

    Presidio reports whole matches; secrets and names sit behind a keyword that must be
    matched but not redacted, and look-behinds that long are slow on megabytes of code.
    Patterns are compiled with `compile_fast`, since Presidio always uses `regex`.
    """

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = []
        for pattern in self.patterns:
            if pattern.compiled_regex is None:
                pattern.compiled_regex = compile_fast(pattern.regex, self.global_regex_flags)
            has_value = "value" in pattern.compiled_regex.groupindex
            for match in pattern.compiled_regex.finditer(text):
                # In an alternation the value group may not take part; then the match is the value.
                start, end = match.span("value") if has_value else (-1, -1)
                if start < 0:
                    start, end = match.span()
                value = text[start:end]
                if not value or self.invalidate_result(value):
                    continue
                # As in Presidio: a validated match is certain, a refuted one is dropped.
                validated = self.validate_result(value)
                if validated is False:
                    continue
                results.append(
                    RecognizerResult(
                        self.supported_entities[0], start, end,
                        EntityRecognizer.MAX_SCORE if validated else pattern.score,
                        recognition_metadata={"recognizer_name": self.name, "pattern": pattern.name},
                    )
                )  # fmt: skip
        return EntityRecognizer.remove_duplicates(results)


_CODE_DELIMITERS: Final = '"=(){}[]<>,;: '  # not ': `o'brien@...`


class OfflineEmailRecognizer(GroupPatternRecognizer):
    """Presidio's email pattern and check, with the public-suffix list read from the package.

    The stock recognizer lets tldextract fetch the list over the network on first use.
    """

    _extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def __init__(self) -> None:
        super().__init__(
            supported_entity="EMAIL_ADDRESS", name="OfflineEmailRecognizer",
            patterns=EmailRecognizer.PATTERNS, context=EmailRecognizer.CONTEXT,
            global_regex_flags=re.IGNORECASE,
        )  # fmt: skip
        self._extract("warm.example.com")  # loads the suffix list now, not on the first email

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        # The e-mail pattern allows ' and = in the local part, as RFC 5322 does; in code they
        # end a string or an argument (`send(to='ops@corp.net')`): the address starts after.
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            at = text.find("@", result.start, result.end)
            cut = max(text.rfind(c, result.start, at) for c in _CODE_DELIMITERS)
            start = max(result.start, cut + 1)
            while start < at and text[start] in "'`":  # the quote that opens the string
                start += 1
            result.start = start
        return results

    def validate_result(self, pattern_text: str) -> bool:
        return bool(self._extract(pattern_text).top_domain_under_public_suffix)

    def invalidate_result(self, pattern_text: str) -> bool:
        local = pattern_text.lower().partition("@")[0]
        # ssh remotes (git@github.com) and Message-IDs (<142480216486.20800.165@host>)
        return local == "git" or bool(_MESSAGE_ID.fullmatch(local))


def impersonal_mailbox(address: str) -> bool:
    """A role or mailing-list mailbox, or a documentation example (`me@example.com`):
    what code writes in docs and defaults, where nobody's own address is meant."""
    local, _, domain = address.lower().partition("@")
    if local in ROLE_MAILBOXES or _MAILING_LIST.search(local):
        return True
    return bool(_RESERVED_DOMAIN.search(domain)) and local in PLACEHOLDER_MAILBOXES


# Issuer prefixes (IIN ranges) and the card lengths each issues.
_ISSUERS: Final[tuple[tuple[range, int, frozenset[int]], ...]] = (
    (range(4, 5), 1, frozenset({13, 16, 19})),  # Visa
    (range(51, 56), 2, frozenset({16})),  # Mastercard
    (range(2221, 2721), 4, frozenset({16})),  # Mastercard 2-series
    (range(34, 35), 2, frozenset({15})), (range(37, 38), 2, frozenset({15})),  # Amex
    (range(6011, 6012), 4, frozenset(range(16, 20))), (range(644, 650), 3, frozenset(range(16, 20))),
    (range(65, 66), 2, frozenset(range(16, 20))),  # Discover
    (range(35, 36), 2, frozenset(range(16, 20))),  # JCB (3528-3589 issued; 35xx seen in test data)
    (range(2131, 2132), 4, frozenset({15})), (range(1800, 1801), 4, frozenset({15})),  # JCB 15
    (range(300, 306), 3, frozenset(range(14, 20))), (range(36, 37), 2, frozenset(range(14, 20))),
    (range(38, 40), 2, frozenset(range(14, 20))),  # Diners
    (range(50, 51), 2, frozenset(range(12, 20))), (range(56, 70), 2, frozenset(range(12, 20))),  # Maestro, UnionPay
)  # fmt: skip


class IssuerCreditCardRecognizer(CreditCardRecognizer):
    """Card numbers of every major issuer (Presidio's patterns miss JCB, Diners, Maestro and
    19-digit Visa), kept only when the Luhn check and the issuer's prefix and length agree."""

    def __init__(self) -> None:
        # Not glued to letters either: `"qq3936677670287331zz"` is a marker, not a card.
        pattern = r"(?<![\w.\-])\d(?:[ \-.]?\d){11,18}(?![\w]|[.\-]\d)"
        super().__init__(patterns=[Pattern("card_digits", pattern, 0.5)])

    def validate_result(self, pattern_text: str) -> bool:
        digits = "".join(c for c in pattern_text if c.isdigit())
        issued = any(
            int(digits[:width]) in prefixes and len(digits) in lengths
            for prefixes, width, lengths in _ISSUERS
        )
        return issued and bool(super().validate_result(digits))


_VERSION_BEFORE = regex.compile(
    r"(?i)(?:version|\bver|release|\bv|==|>=|<=|~=|!=|\^)\s*[:=]?\s*[\"']?$"
)
_IP_CONTEXT = regex.compile(r"(?i)\b(?:ip|ips|ipv4|hosts?|addr|address(?:es)?|servers?|connect|"
                            r"ping|ssh|scp|sftp|rsync|telnet|dns|gateway|proxy|subnet|listen|bind|curl|wget|remote"
                            r"|ip_?addr\w*|hostname|nameserver|firewall|allow|deny)\b")  # fmt: skip


_SECTION_BEFORE = regex.compile(r"(?i)(?:sections?|§|chapter|clause|rfc\s*\d+)\s*[\"'(]?$")
# Addresses that identify no one: documentation favourites and public DNS resolvers.
NOT_PERSONAL_IPS: Final = frozenset(
    {"1.2.3.4", "12.34.56.78", "123.45.67.89", "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1",
     "9.9.9.9", "208.67.222.222", "208.67.220.220"}
)  # fmt: skip


def _is_mask(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A netmask: leading ones, then zeros (`ffff:ffff:...:fff0`)."""
    bits = bin(int(address))[2:].zfill(address.max_prefixlen)
    return bits.startswith("1" * 16) and "01" not in bits


class CodeIpRecognizer(IpRecognizer):
    """IP addresses that are not version strings, OIDs, or (unless asked) private ranges."""

    def __init__(self, include_private: bool = False) -> None:
        super().__init__()
        self.include_private = include_private

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        return [r for r in super().analyze(text, entities, nlp_artifacts, regex_flags)
                if self._is_address(text, r.start, r.end)]  # fmt: skip

    def _is_address(self, text: str, start: int, end: int) -> bool:
        value = text[start:end]
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        if not self.include_private and not address.is_global:
            return False
        if address.version == 6:
            # a Python slice (`u[1::2]`) parses as IPv6; a written address has 3+ groups,
            # one of them of four digits (`2a00:1450:4001:81c::200e`, not `123:2:3:4:5:6`)
            groups = [group for group in value.split(":") if group]
            return len(groups) >= 3 and any(len(g) == 4 for g in groups) and not _is_mask(address)
        if value in NOT_PERSONAL_IPS:
            return False
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        before = text[max(line_start, start - 40) : start]
        after = text[end : end + 2]
        if (after[:1] == "." and after[1:2].isdigit()) or regex.search(r"\d\.$", before):
            return False  # part of a longer dotted number (an OID, a 5-part version)
        if text.startswith(".in-addr.arpa", end) or _SECTION_BEFORE.search(before):
            return False  # a reverse-DNS name, a section number ("sections 8.2.4.44")
        if _VERSION_BEFORE.search(before):
            return False
        line = text[line_start : line_end if line_end >= 0 else len(text)]
        # 1.2.3.4-shaped values are versions far more often than addresses.
        single_digits = all(len(octet) == 1 for octet in value.split("."))
        return not single_digits or bool(_IP_CONTEXT.search(line))


def stated_as_address(text: str, start: int, end: int) -> bool:
    """Whether an IPv4 address in code is used as one: the line says so, or it is a URL's or
    a login's host (`deploy@34.201.17.88`). Dotted quads in code are versions, section
    numbers and examples far more often than addresses."""
    if ":" in text[start:end]:
        return True  # IPv6 has its own shape checks
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return text[max(line_start, start - 3) : start].endswith(("@", "://")) or bool(
        _IP_CONTEXT.search(line)
    )


def known_token_recognizer() -> PatternRecognizer:
    """Tokens whose format names their issuer (AWS, GitHub, Stripe, ...)."""
    tokens = "|".join(f"(?:{pattern})" for _, pattern in KNOWN_TOKENS)
    return GroupPatternRecognizer(
        supported_entity="KEY", name="KnownTokenRecognizer",
        patterns=[Pattern("known_token", tokens, 0.95)], global_regex_flags=re.MULTILINE,
    )  # fmt: skip


def private_key_recognizer() -> PatternRecognizer:
    """Private key blocks (which span lines) and secrets after Basic, Bearer, AccountKey=."""
    patterns = [
        Pattern("private_key", PRIVATE_KEY, 1.0),
        *(Pattern(name, pattern, 0.9) for name, pattern in PREFIXED_SECRETS),
    ]
    return GroupPatternRecognizer(
        supported_entity="KEY", name="PrivateKeyRecognizer", patterns=patterns,
        global_regex_flags=re.MULTILINE,
    )  # fmt: skip


class SecretAssignmentRecognizer(GroupPatternRecognizer):
    """Values of secret-named variables, keys and flags that look random."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity="KEY", name="SecretAssignmentRecognizer",
            patterns=[Pattern(name, p, 0.7) for name, p in SECRET_ASSIGNMENTS],
            global_regex_flags=re.MULTILINE,
        )  # fmt: skip

    def validate_result(self, pattern_text: str) -> bool:
        return looks_like_secret(pattern_text)


# Passwords that documentation writes in example URLs (`http://username:password@host`).
_PLACEHOLDER_PASSWORDS: Final = frozenset(
    {"password", "passwd", "pass", "pwd", "secret", "token", "xxx", "xxxx", "****", "changeme"}
)


class CredentialUrlRecognizer(GroupPatternRecognizer):
    """The password of `scheme://user:password@host` URLs and connection strings."""

    def __init__(self) -> None:
        pattern = r"[a-z][a-z0-9+.\-]*://[^\s:/@\"']+:(?P<value>[^\s@/\"']{3,})@[^\s/\"']+"
        super().__init__(
            supported_entity="KEY", name="CredentialUrlRecognizer",
            patterns=[Pattern("url_password", pattern, 0.9)], global_regex_flags=re.IGNORECASE,
        )  # fmt: skip

    def invalidate_result(self, pattern_text: str) -> bool:
        value = pattern_text.lower()
        return value in _PLACEHOLDER_PASSWORDS or value.startswith(("$", "<", "{", "%"))


class CodeUsernameRecognizer(GroupPatternRecognizer):
    """Logins in home-directory paths (/home/<user>, C:\\Users\\<user>, ~user URLs) and in
    `TODO(<user>)` markers."""

    def __init__(self) -> None:
        patterns = [
            Pattern("unix_home", r"(?:^|[\s\"'=:(`~])/(?:home|Users)/(?P<value>[A-Za-z0-9._-]{2,32})", 0.8),
            Pattern("windows_home", r"(?i)\b[A-Z]:(?:\\\\|\\|/)(?:Users|Documents and Settings)"
                    r"(?:\\\\|\\|/)(?P<value>[^\\/\s\"':*?<>|]{2,32})", 0.8),
            Pattern("url_tilde", r"://[^\s/\"']+/~(?P<value>[A-Za-z0-9._-]{2,32})", 0.7),
            Pattern("todo_owner", r"\b(?:TODO|FIXME|XXX|HACK|BUG)\((?P<value>[A-Za-z][\w.\-]{1,38})\)", 0.7),
        ]  # fmt: skip
        super().__init__(
            supported_entity="USERNAME", name="CodeUsernameRecognizer", patterns=patterns,
            global_regex_flags=re.MULTILINE,
        )  # fmt: skip

    def invalidate_result(self, pattern_text: str) -> bool:
        return (
            pattern_text.lower() in GENERIC_ACCOUNTS
            or pattern_text.startswith(("$", "%", "<"))
            or bool(_TICKET.fullmatch(pattern_text))
            or _is_phrase(pattern_text)
        )


def _is_phrase(login: str) -> bool:
    """`if-needed`, `not-yet`: a note rather than an owner (hyphenated lowercase words that
    start with an English stop word)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    first, _, rest = login.partition("-")
    return bool(rest) and login.islower() and first in STOP_WORDS


class UserAtHostRecognizer(GroupPatternRecognizer):
    """`login@host` for ssh and scp targets (e-mail addresses are the email recognizer's)."""

    def __init__(self) -> None:
        # A login is a target when its host is an IP, when a path follows (`scp f
        # deploy@web1.acme.io:/srv`), or when ssh-like commands name it; otherwise
        # `name@host.org` is an e-mail address (or a locale, `sr_yu.utf8@cyrillic`).
        login = r"(?<![\w.@/+-])(?P<value>[a-z_][a-z0-9_.-]{1,31})@"
        host = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
        pattern = (
            rf"{login}\d{{1,3}}(?:\.\d{{1,3}}){{3}}(?=[:\s\"'/]|$)"
            rf"|{login}{host}(?=:[~/\w])"
            rf"|(?i:\b(?:ssh|scp|sftp|rsync|mosh|ssh-copy-id)\b)[^\n]*?{login}{host}(?=[\s\"']|$)"
        )
        super().__init__(
            supported_entity="USERNAME", name="UserAtHostRecognizer",
            patterns=[Pattern("user_at_host", pattern, 0.6)], global_regex_flags=re.MULTILINE,
        )  # fmt: skip

    def invalidate_result(self, pattern_text: str) -> bool:
        return pattern_text.lower() in GENERIC_ACCOUNTS


class MentionRecognizer(GroupPatternRecognizer):
    """GitHub @mentions in issue and commit text (the login, without the @)."""

    def __init__(self) -> None:
        pattern = r"(?<![\w@./`-])@(?P<value>[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})(?![\w@-]|\.\w)"
        super().__init__(
            supported_entity="USERNAME", name="MentionRecognizer",
            patterns=[Pattern("mention", pattern, 0.8)], global_regex_flags=0,
        )  # fmt: skip

    def invalidate_result(self, pattern_text: str) -> bool:
        return pattern_text.lower() in DOC_TAGS


class AuthorLineRecognizer(GroupPatternRecognizer):
    """Names after author, maintainer and copyright markers, and names right before an
    e-mail address (`Ann Lee <ann@...>`): both common in code, where NER often misses them."""

    def __init__(self) -> None:
        word = r"\p{Lu}\p{L}+(?:['\-]\p{L}+)*"
        starter = (
            r"(?!(?:Ask|Contact|Email|Mail|Ping|Thanks|Call|Cc|From|To|By|Dear|Hi|Hello|See)\b)"
        )
        name = rf"{starter}{word}(?:[ \t]+(?:\p{{Lu}}\.|{word})){{1,3}}"
        org = r"(?![ \t]+(?:contributors|authors|developers|team|inc\b|llc|ltd|gmbh|foundation|project|corp))"
        after_marker = (
            r"(?i:\b(?:authors?|maintainers?|maintained by|written by|created by|contact[^:\n]{0,40}:"
            r"|copyright(?:[ \t]*\(c\)|[ \t]*©)?(?:[ \t]*\d{4}(?:[ \t]*[-,][ \t]*\d{4})*)?))"
            r"[ \t]*[:\-]?[ \t]*(?:(?:Dr|Mr|Mrs|Ms|Prof)\.?[ \t]+)?"
            rf"(?P<value>{name})\b{org}"
        )
        before_email = rf"(?P<value>{name})[ \t]*[<(][ \t]*[\w.+\-]+@[\w\-]+\.[\w.\-]+"
        super().__init__(
            supported_entity="PERSON", name="AuthorLineRecognizer",
            patterns=[Pattern("after_marker", after_marker, 0.85),
                      Pattern("before_email", before_email, 0.85)],
            global_regex_flags=0,
        )  # fmt: skip


def whole_text_recognizers(
    include_private_ips: bool = False,
) -> list[tuple[EntityRecognizer, Trigger]]:
    """Recognizers precise enough for entire files, each with the trigger that picks the
    lines it reads."""
    return [
        (OfflineEmailRecognizer(), Trigger(re.compile("@"))),
        (
            CodeIpRecognizer(include_private=include_private_ips),
            Trigger(re.compile(r"\d\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:")),
        ),
        # a run of 20+ token characters that holds a digit: random tokens always do, and
        # are ASCII (re.ASCII halves the scan)
        (
            known_token_recognizer(),
            Trigger(re.compile(r"\b(?=[\w\-.+/=:|$~]{20})[A-Za-z_\-.+/=:|$~]*\d", re.ASCII)),
        ),
        (
            private_key_recognizer(),
            Trigger(
                re.compile(r"-----BEGIN|Basic |Bearer |AccountKey=|NTLM |AKIA|ASIA"),
                whole_text=True,
            ),
        ),
        (
            SecretAssignmentRecognizer(),
            Trigger(re.compile(r"pass|pwd|secret|token|key|credential|signing"), lowered=True),
        ),
        (CredentialUrlRecognizer(), Trigger(re.compile("://"))),
        (
            CodeUsernameRecognizer(),
            Trigger(
                # no \b before `todo(`: a leading word boundary is slow to scan for, and
                # the recognizer checks it on the few lines that match
                re.compile(r"/(?:home/|users/|~)|:[\\/]|(?:todo|fixme|xxx|hack|bug)\("),
                lowered=True,
            ),
        ),
    ]


def prose_recognizers(mentions: bool) -> list[EntityRecognizer]:
    """Pattern recognizers for natural-language regions; NER is added by the engine."""
    recognizers: list[EntityRecognizer] = [
        PhoneRecognizer(),
        UsSsnRecognizer(),
        IssuerCreditCardRecognizer(),
        UserAtHostRecognizer(),
        AuthorLineRecognizer(),
    ]
    if mentions:
        recognizers.append(MentionRecognizer())
    return recognizers
