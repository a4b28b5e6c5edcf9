"""The pii stage's story: what it replaces and how, and what it found per type."""

from __future__ import annotations

from curation.runner import Manifest
from curation.story import Story, StoryContext, StoryTable


def story(manifest: Manifest, ctx: StoryContext) -> Story:
    """The PII settings in words; spans found and replaced, per type."""
    c, found = manifest.config, manifest.extra.get("found", {})
    how = ("a placeholder such as <EMAIL_ADDRESS>" if c["mode"] == "placeholder"
           else "a pseudonym consistent within a file, such as <NAME_1>")  # fmt: skip
    ner = (f"names found by spaCy NER ({c['spacy_model']}) in comments, strings and prose"
           if c["ner"] else "no NER")  # fmt: skip
    ips = "private IPs included" if c["include_private_ips"] else "private IPs left as they are"
    listed = ", ".join(f"{k} {v:,}" for k, v in sorted(found.items())) or "none"
    by_count = sorted(found.items(), key=lambda item: -item[1])
    return Story(
        settings=(
            f"{', '.join(c['entities'])} replaced by {how}; {ner}; {ips}; findings scored "
            f"under {c['score_threshold']} ignored; found: {listed}"
        ),
        tables=(StoryTable("found and replaced", ("type", "count"), by_count),) if found else (),
        bars=dict(by_count),
    )
