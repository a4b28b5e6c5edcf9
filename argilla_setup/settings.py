"""The review dataset's settings in Argilla: fields, questions, metadata, guidelines, and the
dataset made from them."""

from __future__ import annotations

import warnings
from typing import Final

import argilla as rg

from argilla_setup.users import quietly
from argilla_setup.votes import QUALITY
from curation.schema import QUALITY_FLAGS

REVIEWER_LABELS: Final = ("wrong", "vague", "leaks_pii", "duplicate", "not_code")
# The annotators' quality_flags, offered as labels so that the checks' findings arrive as
# suggestions reviewers confirm or clear.
FLAG_LABELS: Final = QUALITY_FLAGS
QUALITY_AGENT: Final = "codecurate-quality-checks"

GUIDELINES = """\
# Reviewing instruction/code pairs

Each record is a piece of code and the request an LLM wrote for it: the instruction a user
would have typed to get exactly this code from an assistant.

- **good**: a developer could have asked this, and this code answers it. Accept as is.
- **needs fix**: the idea is right but the wording is not: write the better instruction in
  *corrected instruction* (it starts as the LLM's suggestion; edit it).
- **reject**: no instruction can fix it (the code is generated, a fragment, a secret...).

Mark what is wrong under *issues*; labels the automatic checks found are suggested. Values
such as `<EMAIL_ADDRESS>` or `<NAME_1>` were removed on purpose: an instruction must never
mention them. Skip (discard) a record you cannot judge; someone else will.

A record comes back for another round when reviewers disagreed, wrote different
corrections, or said it needs a fix without writing one; *Where it comes from* says which,
and lists the corrections proposed so far. Your vote replaces your earlier one.
"""


def review_settings(min_submitted: int) -> rg.Settings:
    """Fields, questions, metadata and guidelines of the review dataset."""
    return rg.Settings(
        guidelines=GUIDELINES,
        fields=[
            rg.TextField(name="instruction", title="Instruction (written by the LLM)"),
            rg.TextField(name="code", title="Code", use_markdown=True),
            rg.TextField(
                name="context", title="Where it comes from", use_markdown=True, required=False
            ),
        ],
        questions=[
            rg.LabelQuestion(
                name="quality",
                title="Is the instruction right for this code?",
                labels={quality: quality.replace("_", " ") for quality in QUALITY},
                required=True,
            ),
            rg.TextQuestion(
                name="corrected_instruction", title="Corrected instruction", required=False
            ),
            rg.MultiLabelQuestion(
                name="issues",
                title="Issues",
                # a flag and a reviewer's label may share a name (`vague`): one label
                labels=list(dict.fromkeys([*REVIEWER_LABELS, *FLAG_LABELS])),
                required=False,
            ),
        ],
        metadata=[
            rg.TermsMetadataProperty(name="language"),
            rg.TermsMetadataProperty(name="source"),
            rg.TermsMetadataProperty(name="task"),
            rg.TermsMetadataProperty(name="annotator"),
            rg.TermsMetadataProperty(name="quality_flags"),
            rg.FloatMetadataProperty(name="cost_usd"),
            rg.IntegerMetadataProperty(name="tokens"),
            rg.IntegerMetadataProperty(name="pii_count"),
            rg.IntegerMetadataProperty(name="cluster_size"),
        ],
        distribution=rg.TaskDistribution(min_submitted=min_submitted),
    )


def ensure_dataset(client: rg.Argilla, name: str, workspace: str, min_submitted: int) -> rg.Dataset:
    """The review dataset, created with its workspace on first use."""
    if quietly(client.workspaces, workspace) is None:
        rg.Workspace(name=workspace, client=client).create()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        existing = client.datasets(name=name, workspace=workspace)
    if existing is not None:
        return existing
    dataset = rg.Dataset(name=name, workspace=workspace, settings=review_settings(min_submitted),
                         client=client)  # fmt: skip
    return dataset.create()
