"""The verify stage's story: its sandbox in words, and why records failed or went unchecked."""

from __future__ import annotations

from curation.runner import Manifest
from curation.story import Story, StoryContext, StoryTable


def story(manifest: Manifest, ctx: StoryContext) -> Story:
    """The sandbox's limits and fixtures; failure and unchecked reasons; time per language."""
    c, e = manifest.config, manifest.extra
    fixtures = ", ".join(e.get("fixtures", [])) or "none"
    failed = ", ".join(f"{k} {v:,}" for k, v in e.get("failure_reasons", {}).items())
    reasons = [("failed", reason, n) for reason, n in e.get("failure_reasons", {}).items()]
    reasons += [("unchecked", reason, n) for reason, n in e.get("unchecked_reasons", {}).items()]
    checked = e.get("records_by_language", {})
    timing = [(language, round(seconds / checked[language] * 1000, 1))
              for language, seconds in e.get("seconds_by_language", {}).items()]  # fmt: skip
    tables = []
    if reasons:
        tables.append(StoryTable("records not verified", ("outcome", "reason", "records"), reasons))
    if timing:
        tables.append(StoryTable("verification time", ("language", "seconds per 1,000"), timing))
    return Story(
        settings=(
            f"code run in a sandbox ({c['cpu_seconds']} s CPU, {c['memory_mb']} MB, network "
            f"isolation {e.get('network_isolation', '?')}); fixtures: {fixtures}; failed "
            f"records {'dropped' if c['drop_failed'] else 'kept, flagged not_verified'}: "
            f"{failed or 'none'}"
        ),
        tables=tuple(tables),
    )
