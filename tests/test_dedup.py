"""Near-dedup: signatures equal to datasketch's, clusters, representatives, indexes."""

import json
import random
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash

from curation import ConfigError
from curation.dedup import DedupConfig, DedupStage
from curation.dedup.index import METADATA_KEY
from curation.dedup.minhash import (
    normalize,
    permutations,
    scan_clusters,
    shingle_hashes,
    signatures,
)
from curation.runner import StageContext
from curation.sources.common import finish_records

rng = random.Random(7)
WORDS = [
    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
    for _ in range(3000)
]


def program(seed: int, lines: int = 40) -> str:
    """A deterministic pseudo-program: unrelated seeds share almost no 5-grams."""
    r = random.Random(seed)
    return "\n".join(
        f"    {r.choice(WORDS)} = {r.choice(WORDS)}({r.choice(WORDS)}, {r.randint(0, 999)})"
        for _ in range(lines)
    )


def records(*texts: str, created: list[int] | None = None) -> pl.LazyFrame:
    rows = [
        {"kind": "code", "source": "s", "path": f"f{i}.py", "content": t,
         "created_at": datetime(2024, 1, 1 + (created[i] if created else 0), tzinfo=UTC)}
        for i, t in enumerate(texts)
    ]  # fmt: skip
    return finish_records(rows).lazy()


def dedup(frame: pl.LazyFrame, **config) -> pl.DataFrame:
    stage = DedupStage(DedupConfig(**config))
    return pl.concat(stage.run(frame, StageContext(None, "t"))).sort("path")


def test_signatures_are_datasketchs_affine32_minhash_bit_for_bit():
    config = DedupConfig(num_perm=128, seed=3)
    hashes = [shingle_hashes(normalize(program(i), config), config) for i in range(3)]
    ours = signatures(hashes, *permutations(config))
    for h, signature in zip(hashes, ours, strict=True):
        reference = MinHash(num_perm=128, seed=3, scheme="affine32", hashfunc=lambda x: x)
        reference.update_batch([int(v) for v in h])
        assert np.array_equal(reference.hashvalues.astype(np.uint32), signature)


def test_bands_and_rows_are_derived_from_the_threshold():
    (loose_bands, loose_rows), (_, strict_rows) = (
        DedupConfig(threshold=0.5).lsh(),
        DedupConfig(threshold=0.9).lsh(),
    )
    assert loose_bands * loose_rows <= 256 and strict_rows > loose_rows
    assert DedupConfig(bands=16, rows=8).lsh() == (16, 8)
    with pytest.raises(ConfigError, match="bands \\* rows"):
        DedupConfig(bands=40, rows=10)


def test_identical_documents_always_cluster_and_unrelated_ones_never():
    texts = [program(i) for i in range(30)]
    out = dedup(records(*texts, texts[3], texts[3], texts[17]))
    clusters = out.filter(pl.col("cluster_size") > 1)
    assert sorted(clusters.group_by("cluster_id").len()["len"]) == [2, 3]
    assert out["filter_reason"].value_counts().sort("filter_reason").rows() == [
        (None, 30),
        ("near_duplicate", 3),
    ]


def test_reindented_and_lightly_edited_copies_cluster():
    base = program(1)
    reindented = base.replace("    ", "\t").replace(", ", ",  ")
    edited = "\n".join(base.split("\n")[:-3]) + "\n    extra = line(1)"
    out = dedup(records(base, reindented, edited, program(2)))
    assert out["cluster_size"].to_list() == [3, 3, 3, 1]


def test_clusters_are_transitive():
    lines, n, m = program(5, 60).split("\n"), program(6, 6).split("\n"), program(7, 6).split("\n")
    a = "\n".join(lines)
    b = "\n".join(lines[6:] + n)  # ~0.8 to a
    c = "\n".join(lines[12:] + n + m)  # ~0.8 to b, ~0.65 to a
    out = dedup(records(a, b, c), threshold=0.7)
    assert out["cluster_size"].to_list() == [3, 3, 3]
    assert out["cluster_id"].n_unique() == 1


def test_cluster_ids_are_stable_across_runs_and_input_order():
    texts = [program(i) for i in range(10)] + [program(4), program(8)]
    first = dedup(records(*texts))
    shuffled = records(*texts).collect().sample(fraction=1.0, shuffle=True, seed=1).lazy()
    second = dedup(shuffled)
    assert (
        first.select("id", "cluster_id")
        .sort("id")
        .equals(second.select("id", "cluster_id").sort("id"))
    )
    # the smallest id names the cluster
    for cluster in first.partition_by("cluster_id"):
        assert cluster["cluster_id"][0] == cluster["id"].min()


@pytest.mark.parametrize(
    ("rule", "kept"),
    [("longest", "f1.py"), ("shortest", "f0.py"), ("newest", "f2.py"), ("oldest", "f0.py")],
)
def test_representative_rule(rule, kept):
    base = program(9, lines=60)
    longer = base + "\n    more = code(1)"
    newer = base + " "
    out = dedup(records(base, longer, newer, created=[0, 1, 5]), representative=rule)
    assert out.filter(pl.col("is_cluster_rep"))["path"].to_list() == [kept]


def test_first_keeps_the_smallest_id_and_drop_duplicates_false_keeps_everyone():
    frame = records(program(3), program(3) + " ")
    out = dedup(frame, representative="first", drop_duplicates=False)
    assert out["filter_reason"].to_list() == [None, None]
    assert out.filter(pl.col("is_cluster_rep"))["id"].to_list() == [out["id"].min()]


def test_an_index_of_earlier_data_decontaminates_a_new_run(tmp_path):
    held_out = [program(100), program(101)]
    dedup(records(*held_out), write_index=tmp_path / "eval-set.parquet")
    edited = held_out[0] + "\n    leaked = copy(1)"
    out = dedup(records(edited, program(200)), against=[tmp_path / "eval-set.parquet"])
    assert out["filter_reason"].to_list() == ["near_duplicate_of:eval-set", None]
    assert out["is_cluster_rep"].to_list() == [False, True]


def test_an_index_built_with_other_settings_is_refused(tmp_path):
    dedup(records(program(1)), write_index=tmp_path / "idx.parquet", num_perm=128)
    with pytest.raises(ConfigError, match="num_perm = 128"):
        DedupStage(DedupConfig(against=[tmp_path / "idx.parquet"]))


def test_scan_reports_clusters_with_exact_jaccard():
    base = program(11)
    clusters = scan_clusters(["a.py", "b.py", "c.py"], [base, base + "\n    x = y(1)", program(12)],
                             DedupConfig())  # fmt: skip
    assert [[m["path"] for m in c] for c in clusters] == [["a.py", "b.py"]]
    assert clusters[0][0]["jaccard"] == 1.0 and 0.9 < clusters[0][1]["jaccard"] < 1.0


def test_strip_comments_compares_code_without_its_comments():
    base = program(21, lines=20)
    commented = "\n".join(
        f"{line}  # note {i}: {WORDS[i]} {WORDS[i + 1]}" for i, line in enumerate(base.split("\n"))
    )
    frame = finish_records(
        [{"kind": "code", "source": "s", "path": f"f{i}.py", "content": text, "language": "python"}
         for i, text in enumerate((base, commented))]
    ).lazy()  # fmt: skip
    assert dedup(frame)["cluster_size"].to_list() == [1, 1]
    assert dedup(frame, strip_comments=True)["cluster_size"].to_list() == [2, 2]


APACHE = """Copyright 2024 The Example Authors.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use this
file except in compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under
the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
KIND, either express or implied. See the License for the specific language governing
permissions and limitations under the License."""
MIT = """Copyright (c) 2019 Someone Else

Permission is hereby granted, free of charge, to any person obtaining a copy of this
software, to deal in the Software without restriction, subject to the conditions above."""
PARSE_PORT = """def parse_port(text):
    host, _, port = text.rpartition(":")
    return int(port) if port.isdigit() else None
"""
SLUGIFY = """def slugify(title):
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)[:60]
"""


def under(header: str, code: str, comment: str = "# ") -> str:
    """`code` below `header`, the header written as line comments."""
    lines = [(comment + line).rstrip() for line in header.split("\n")]
    return "\n".join(lines) + "\n\n" + code


def coded(*texts: str, language: str) -> pl.LazyFrame:
    rows = [{"kind": "code", "source": "s", "path": f"f{i}", "content": text, "language": language}
            for i, text in enumerate(texts)]  # fmt: skip
    return finish_records(rows).lazy()


@pytest.mark.parametrize(("language", "comment"), [("python", "# "), ("c", "// ")])
def test_different_functions_under_one_apache_header_are_not_duplicates(language, comment):
    frame = coded(under(APACHE, PARSE_PORT, comment), under(APACHE, SLUGIFY, comment),
                  language=language)  # fmt: skip
    assert dedup(frame)["cluster_size"].to_list() == [1, 1]
    # the header alone made them near-duplicates when it counted
    assert dedup(frame, strip_license_header=False)["cluster_size"].to_list() == [2, 2]


def test_two_copies_of_one_function_under_different_headers_are_duplicates():
    frame = coded(under(APACHE, PARSE_PORT), under(MIT, PARSE_PORT), language="python")
    out = dedup(frame)
    assert out["cluster_size"].to_list() == [2, 2]
    assert out["filter_reason"].to_list() == [None, "near_duplicate"]  # f0 is the longer
    assert dedup(frame, strip_license_header=False)["cluster_size"].to_list() == [1, 1]


def test_an_index_written_before_header_stripping_serves_runs_without_it(tmp_path):
    path = tmp_path / "old.parquet"
    dedup(records(program(1)), write_index=path, strip_license_header=False)
    table = pq.read_table(path)
    settings = json.loads(table.schema.metadata[METADATA_KEY])
    del settings["strip_license_header"]  # as written before the setting existed
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(settings)}), path)
    DedupStage(DedupConfig(against=[path], strip_license_header=False))
    with pytest.raises(ConfigError, match="strip_license_header = False, this run uses True"):
        DedupStage(DedupConfig(against=[path]))


def test_without_the_dedup_extra_the_config_loads_and_the_stage_names_the_extra():
    script = textwrap.dedent("""
        import sys
        for name in ("numpy", "fsspec", "datasketch"):
            sys.modules[name] = None  # as on a base install: importing them fails
        from curation import MissingDependency
        from curation.dedup import DedupConfig, DedupStage
        print(DedupConfig(threshold=0.8).threshold)
        try:
            DedupStage(DedupConfig())
        except MissingDependency as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1])  # fmt: skip
    assert out.stdout.splitlines() == [
        "0.8",
        "The dedup stage needs 'numpy', which is not installed. "
        "Install it with: pip install 'codecurate[dedup]'",
    ]


def test_an_empty_input_gives_an_empty_output():
    from curation.schema import empty_records

    assert (
        sum(
            b.height
            for b in DedupStage(DedupConfig()).run(empty_records().lazy(), StageContext(None, "t"))
        )
        == 0
    )
