"""What a dataset's instructions are about: topics found by TF-IDF and k-means, each
labelled by its top terms, and a cap on any topic's share of an export.

scikit-learn's TfidfVectorizer and KMeans: maintained, seeded, and fast on the few
thousand instructions a curated pair set holds. k grows with the data as sqrt(n / 2), the
usual rule of thumb, between 2 and MAX_TOPICS: a 40-pair sheet gets 4 topics, a 5,000-pair
set 12. (Choosing k by silhouette was tried: on short instructions it preferred a topic
per two or three pairs, which hides the skew this breakdown is for.) Fewer than
MIN_RECORDS instructions form one topic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from curation.errors import ConfigError, MissingDependency

MAX_TOPICS = 12
MIN_RECORDS = 6
TOP_TERMS = 3


@dataclass(frozen=True)
class Topics:
    """One topic number per instruction (in the order given) and each topic's label."""

    assigned: list[int]
    labels: list[str]


def topic_count(records: int) -> int:
    """k for this many instructions (see the module docstring)."""
    if records < MIN_RECORDS:
        return 1
    return max(2, min(MAX_TOPICS, round(math.sqrt(records / 2))))


def find_topics(instructions: list[str], seed: int = 0) -> Topics:
    """Topics of these instructions; the same texts and seed give the same topics."""
    k = topic_count(len(instructions))
    if k == 1:
        return Topics([0] * len(instructions), ["all"] if instructions else [])
    try:
        from sklearn.cluster import KMeans
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as e:
        raise MissingDependency("scikit-learn", "hf", "The topic breakdown of an export") from e
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform(instructions)
    except ValueError:  # nothing but stop words: there is nothing to tell topics apart by
        return Topics([0] * len(instructions), ["all"])
    k = min(k, matrix.shape[0], matrix.shape[1])
    model = KMeans(n_clusters=k, random_state=seed, n_init=10).fit(matrix)
    terms = vectorizer.get_feature_names_out()
    labels = [
        " / ".join(terms[i] for i in centre.argsort()[::-1][:TOP_TERMS])
        for centre in model.cluster_centers_
    ]
    return Topics([int(t) for t in model.labels_], labels)


def cap_topics(records: pl.DataFrame, max_share: float) -> pl.DataFrame:
    """Records (with a `topic` column) with no topic above `max_share` of what is kept;
    within a topic the smallest ids stay (ids are content hashes: an unbiased sample)."""
    counts = records["topic"].value_counts()["count"].to_list()
    limit = _topic_limit(counts, max_share)
    if limit is None:
        return records
    return records.sort("id").filter(pl.int_range(pl.len()).over("topic") < limit)


def topic_breakdown(labels: list[str], before: pl.Series, after: pl.Series) -> list[dict]:
    """Per topic, largest first: label, records before the cap, exported, exported share."""
    exported = max(len(after), 1)
    rows = [
        {"topic": t, "label": label, "records": int((before == t).sum()),
         "exported": int((after == t).sum()), "share": round(int((after == t).sum()) / exported, 4)}
        for t, label in enumerate(labels)
    ]  # fmt: skip
    return sorted(rows, key=lambda row: (-row["records"], row["topic"]))


def _topic_limit(counts: list[int], max_share: float) -> int | None:
    """The most records a topic may keep, or None where no topic is over the share.

    Cutting a topic shrinks the total and so every share grows: the limit is lowered until
    it holds for the records that remain.
    """
    total = sum(counts)
    if not counts or max(counts) <= max_share * total:
        return None
    limit = max(counts)
    while limit > 0 and limit > max_share * sum(min(n, limit) for n in counts):
        limit -= 1
    if limit == 0:
        raise ConfigError(
            f"export.max_topic_share = {max_share}: no export can hold it with "
            f"{len(counts)} topic(s); raise it to at least {1 / len(counts):.2f}"
        )
    return limit
