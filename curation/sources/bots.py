"""Bot and tool-written text in GitHub threads, and the issue-level filters that follow it.

A comment or issue body gets the first reason that applies, or null for a person:

- `bot_author_type`: the API marks the author `type: "Bot"`.
- `bot_login_suffix`: the login ends in `[bot]` (a GitHub App).
- `bot_known_account`: a known bot or CI account that has no such marker (KNOWN_BOTS).
- `bot_login_pattern`: a login named like a bot or CI account (BOT_LOGIN), as in the BigCode
  GitHub-issues pipeline: `...bot`, `...-ci`, `jenkins`, `k8s-...`.
- `bot_template`: the text is mostly a tool's template (BOT_TEMPLATES, BOT_FOOTERS), whoever
  posted it: bots post through people's tokens, and people open issues by pasting a bot's
  comment. Only the text outside quotes and code counts (`template_share`), so a person quoting
  a bot, pasting CI output in a code block or reviewing a `stale.yml` diff keeps their comment.

Measured on hand-labelled public threads by `benchmarks/bots.py`.
"""

from __future__ import annotations

from typing import Final

import polars as pl

# Accounts that post bot text without `[bot]` in their login or a bot-like name.
KNOWN_BOTS: Final = frozenset(
    {
        "dependabot", "dependabot-preview", "dependabot-support", "renovate", "renovate-bot",
        "renovatebot", "github-actions", "codecov", "codecov-io", "codecov-commenter",
        "coveralls", "stale", "probot-stale", "mergify", "netlify", "vercel", "google-cla",
        "claassistant", "claassistantio", "cla-assistant", "easycla", "linux-foundation-easycla",
        "thelinuxfoundation", "hashicorp-cla", "dnfclas", "msftclas", "allcontributors",
        "pre-commit-ci", "sonarcloud", "sonarqubecloud", "greenkeeper", "snyk-bot", "imgbot",
        "changeset-bot", "deepsource-autofix", "lgtm-com", "azure-pipelines", "gitguardian",
        "codesandbox", "welcome", "sourcery-ai", "copilot", "coderabbitai", "gemini-code-assist",
        "pull", "restyled-io", "pep8speaks", "houndci", "sparkqa", "sesheta", "elasticmachine",
        "kibanamachine", "rust-highfive", "rust-timer", "boring-cyborg", "apache-hbase",
        "autorestci", "cmsbuild", "danger-public", "pydocteur", "karma-pr-reporter",
    }
)  # fmt: skip

# Logins named like bots or CI accounts (lower-cased, `[bot]` removed). Names that are words
# ending in "bot" (Talbot, Abbot, Cabot, Sabot) are people, so NOT_BOT_LOGIN lets them through.
BOT_LOGIN: Final = (
    r"bot$"
    r"|[-_](?:ci|robot|automation|automaton|build|builder|deployer|linter|teamcity|pipelines?"
    r"|devops|service-account|test|testing)$"
    r"|jenkins|travis|^k8s-|^bors(?:-|$)|^prmerger\d*$"
)
NOT_BOT_LOGIN: Final = r"(?:^|[-_.])(?:tal|ab|ca|sa)bot$"

# Phrases that tools write, as they read in `prose` (links keep only their text; URLs and HTML
# tags are gone). A tool's text starts at the paragraph holding one and runs to the end: bots
# open with their headline and put nothing of a person's after it.
BOT_TEMPLATES: Final = "(?i)" + "|".join(
    (
        # stale and lock bots
        r"this (?:issue|pull request|pr)[^.\n]{0,30} (?:has been|was|will be) automatically"
        r" (?:marked as stale|closed|locked)",
        r"this (?:issue|pull request|pr) (?:has been|was) (?:automatically )?closed because it"
        r" has (?:been stalled|not had)",
        r"this (?:issue|pull request|pr) is stale because it has been open",
        r"a stale label has been added to this",
        r"this (?:thread|issue|pull request) has been automatically locked",
        r"we're automatically closing this issue",
        r"i am a bot that cleans up old issues",
        # CLA bots
        r"(?:ask that you (?:all )?sign our|you'll need to sign a) contributor license agreement",
        r"hasn't signed our \*\*c\*\*ontributor",
        r"just signed our contributor license agreement",
        r"all committers have signed the cla",
        r"out of \*\*\d+\*\* committers have signed",
        r"(?:are|is not) authorized under a signed cla",
        r"complete the contribution license agreement",
        r"friendly neighborhood microsoft pull request bot",
        r"your first contribution to a google open source project",
        r"covered by a contributor license agreement",
        # coverage, quality and security reports
        r"^#* ?codecov report|^#* ?current coverage\S* is `?\S+%",
        r"patch coverage is `",
        r"modified and coverable lines are covered by tests",
        r"^\W*(?:kudos, sonarcloud )?quality gate (?:passed|failed)|sonarqube code analytics",
        r"this pull request \*\*(?:introduces|fixes) \d+ alerts?\*\*",
        r"gitguardian has (?:uncovered|detected)",
        r"no pep ?8 issues",
        r"we checked the lines you've touched for pep ?8",
        r"following\s+are the pep8 issues",
        # deploy previews and artifacts
        r"deploy preview (?:for \S+ )?(?:is )?(?:ready|processing|failed|canceled)",
        r"deploy matey is creating a build preview",
        r"the latest updates on your projects",
        r"has been deployed to vercel",
        r"^<?azure pipelines successfully started running",
        r"the author\(s\) have been notified to review your proposed change",
        # dependency and release bots
        r"^bumps \S+ from \S+ to \S+",
        r"dependabot will resolve any conflicts",
        r"i won't notify you again about this release",
        r"these dependencies are updatable in another way",
        r"this issue (?:lists|provides visibility into) renovate updates",
        r"\*\*automerge\*\*: (?:disabled|enabled)",
        r"this (?:issue|pr) (?:has been|is) (?:resolved|included) in version",
        r"i have created a release \\?\*beep\\?\* \\?\*boop",
        r"no changeset found|changeset detected",
        r"this pr was auto-generated by the version workflow",
        r"beep boop\. your images are optimized",
        # CI and merge bots
        r"test build #\d+ has (?:started|finished)",
        r"merged build (?:triggered|started|finished)",
        r"^test (?:passed|failed)\.",
        r"can one of the admins verify this patch",
        r"\[approvalnotifier\] this pr is",
        r"instructions for interacting with me using pr comments",
        r"i'm waiting for a .{0,80}member to verify that this patch is reasonable",
        r"the following tests? \*\*failed\*\*, say `/retest`",
        r"cannot trigger testing until a trusted user reviews",
        r":pushpin: commit [0-9a-f]+ has been approved by",
        r":hourglass: testing commit [0-9a-f]+ with merge",
        r":sunny: test successful",
        r"queued [0-9a-f]{40} with parent [0-9a-f]{40}",
        r"finished benchmarking commit",
        r"size-limit report",
        r"^#* ?android notifier sizes",
        # AI reviewers and summaries
        r"^#* ?summary by coderabbit",
        r"using gemini code assist",
        r"mergify commands and options",
        # self-declared automation
        r"this (?:pr|pull request|comment|message) (?:was|has been|is) (?:automatically|auto-?)"
        r"\s*(?:created|generated)",
        r"^automatically (?:generated|created) by",
        r"this is an auto-?added comment|this is a script generated message",
        r"please add your planning poker estimate",
    )
)

# Sign-offs that close a tool's text: it runs from the start of the comment to them.
BOT_FOOTERS: Final = "(?i)" + "|".join(
    (
        r"powered by codecov",
        r"comment posted by lgtm\.com",
        r"signed-off-by: dependabot\[bot\]",
        r"this pr (?:has been|was) generated by renovate",
        r"this pr was generated with release please",
        r"your \*\*semantic-release\*\* bot",
        r"generated by :no_entry_sign:\s+danger",
        r"automatically deployed with vercel-action",
        r"to edit notification comments on pull requests",
        r"built with commit [0-9a-f]{40}",
        r"\.net foundation pull request bot|regards,\s+cla github bot|ttyl, msbot",
        r"always at your service|appreciation of efforts",
        # a bot's comment pasted into a new issue, as GitHub's "quote reply" labels it
        r"(?:originally posted by|publicado originalmente por|最初由) @?[\w-]+(?:\[bot\])? in",
    )
)

# A text counts as template when the tool's text holds at least this share of its prose.
MOSTLY_TEMPLATE: Final = 0.5

# What is not prose: fenced code, quoted lines (replies quoting a bot), images, URLs, HTML
# tags and table rows. Links keep their text.
_NOT_PROSE: Final = (
    (r"(?s)```.*?(?:```|\z)|~~~.*?(?:~~~|\z)", ""),
    (r"(?m)^[ \t]*>.*$", ""),
    (r"(?m)^[ \t]*\|.*$", ""),
    (r"!\[[^\]]*\]\([^)]*\)", ""),
    (r"\[([^\]]*)\]\([^)]*\)", "$1"),
    (r"<[^>]*>", " "),
    (r"https?://\S+", ""),
    (r"\n[ \t]*(?:\n[ \t]*)+", "\n\n"),
)


def prose(body: pl.Expr) -> pl.Expr:
    """The body's own words: without code blocks, quotes, tables and markup."""
    for pattern, replacement in _NOT_PROSE:
        body = body.str.replace_all(pattern, replacement)
    return body.str.strip_chars()


def template_share(body: pl.Expr) -> pl.Expr:
    """Share of the prose's characters in a tool's text (null when there is no prose).

    The tool's text runs from the first paragraph with a BOT_TEMPLATES phrase to the end, or
    from the start to the last paragraph with a BOT_FOOTERS sign-off, whichever is longer.
    """
    paragraphs = prose(body).str.split("\n\n").list.eval(pl.element().str.strip_chars())
    chars = paragraphs.list.eval(pl.element().str.len_chars())
    opens = paragraphs.list.eval(pl.element().str.contains(BOT_TEMPLATES))
    closes = paragraphs.list.eval(pl.element().str.contains(BOT_FOOTERS))
    first_open = opens.list.arg_max()
    last_close = closes.list.len() - closes.list.reverse().list.arg_max()
    opened = pl.when(opens.list.any()).then(chars.list.slice(first_open).list.sum()).otherwise(0)
    closed = pl.when(closes.list.any()).then(chars.list.head(last_close).list.sum()).otherwise(0)
    total = chars.list.sum()
    return pl.when(total > 0).then(pl.max_horizontal(opened, closed) / total)


def bot_reason(login: pl.Expr, author_type: pl.Expr, body: pl.Expr) -> pl.Expr:
    """Why a piece of text counts as written by a bot, or null for a person."""
    name = login.str.to_lowercase().str.replace(r"\[bot\]$", "")
    return (
        pl.when(author_type == "Bot")
        .then(pl.lit("bot_author_type"))
        .when(login.str.ends_with("[bot]"))
        .then(pl.lit("bot_login_suffix"))
        .when(name.is_in(list(KNOWN_BOTS)))
        .then(pl.lit("bot_known_account"))
        .when(name.str.contains(BOT_LOGIN) & ~name.str.contains(NOT_BOT_LOGIN))
        .then(pl.lit("bot_login_pattern"))
        .when(template_share(body) >= MOSTLY_TEMPLATE)
        .then(pl.lit("bot_template"))
    )


def thread_reason(
    thread_chars: pl.Expr,
    participants: pl.Expr,
    events: pl.Expr,
    min_chars: int,
    single_participant_max_chars: int | None,
    single_participant_max_events: int | None,
) -> pl.Expr:
    """Why a whole thread (after bot removal) is dropped, or null: BigCode's issue filters.

    `thread_too_short`: its text has fewer than `min_chars` characters.
    `single_participant_too_long`: only its author writes in it, and it is longer than the
    given characters or events (long one-person threads are mostly logs and dumps).
    """
    too_long = pl.lit(False)
    if single_participant_max_chars is not None:
        too_long = too_long | (thread_chars > single_participant_max_chars)
    if single_participant_max_events is not None:
        too_long = too_long | (events > single_participant_max_events)
    return (
        pl.when(thread_chars < min_chars)
        .then(pl.lit("thread_too_short"))
        .when((participants < 2) & too_long)
        .then(pl.lit("single_participant_too_long"))
    )
