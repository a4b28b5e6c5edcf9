"""The PII engine and stage: each recognizer's positives and negatives, replacement, and
that nothing planted in data/sample survives."""

import polars as pl
import pytest

from codecurate.config import load_config
from codecurate.pipeline import run_pipeline
from curation import MissingDependency
from curation.pii import PIIConfig, PIIStage, load_engine


@pytest.fixture(scope="module")
def engine():
    return load_engine(PIIConfig(workers=1))


def found(engine, text: str, language: str | None = "python") -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in engine.analyze([text], [language])[0]]


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ('SUPPORT = "ann.lee@example.org"', "python", ("EMAIL_ADDRESS", "ann.lee@example.org")),
        ("# ping 86.121.97.248 when it hangs", "python", ("IP_ADDRESS", "86.121.97.248")),
        ('SERVERS = ["34.201.17.88"]', "python", ("IP_ADDRESS", "34.201.17.88")),
        ("ssh host 5.9.7.8", "shell", ("IP_ADDRESS", "5.9.7.8")),
        ("# at 2a00:1450:4001:81c::200e", "python", ("IP_ADDRESS", "2a00:1450:4001:81c::200e")),
        ("card 3598899323053410 lost", None, ("CREDIT_CARD", "3598899323053410")),
        ("card = '4111 1111 1111 1111'", "python", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("# Call +1 (415) 555-0137 after hours", "python", ("PHONE_NUMBER", "+1 (415) 555-0137")),
        ('KEY = "AKIA4QWERTYUIOP7ZX2N"', "python", ("KEY", "AKIA4QWERTYUIOP7ZX2N")),
        ("token = 'ghp_R4nd0mL00k1ngT0k3nV4lu3xYz9876543210'", "python",
         ("KEY", "ghp_R4nd0mL00k1ngT0k3nV4lu3xYz9876543210")),
        ('password = "S3cr3t-Passw0rd!"', "python", ("KEY", "S3cr3t-Passw0rd!")),
        ("url = 'postgres://app:pa55w0rd@db.internal/x'", "python", ("KEY", "pa55w0rd")),
        ("export DB_PASSWORD=Zx9kLm2qW8", "shell", ("KEY", "Zx9kLm2qW8")),
        ('CACHE = "/home/mschneider/.cache"', "python", ("USERNAME", "mschneider")),
        ('libname x "C:\\Users\\hcarter\\data";', "sas", ("USERNAME", "hcarter")),
        ("# TODO(jane.doe): remove", "python", ("USERNAME", "jane.doe")),
        ('HOST = "deploy2@34.201.17.88"', "python", ("USERNAME", "deploy2")),
        ("Thanks @tom-okafor for the fix", None, ("USERNAME", "tom-okafor")),
        ('"""Maintainer: Maria Schneider"""', "python", ("PERSON", "Maria Schneider")),
        ("// Copyright (c) 2023 Lukas Brandt", "c", ("PERSON", "Lukas Brandt")),
        ("# Ask Priya Raman (priya@example.org) first", "shell", ("PERSON", "Priya Raman")),
        ("The bug was reported by Jonas Weber yesterday.", None, ("PERSON", "Jonas Weber")),
    ],
)  # fmt: skip
def test_recognizers_find_pii_in_code_and_prose(engine, text, language, expected):
    assert expected in found(engine, text, language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("email = self.user_email", "python"),
        ("git clone git@github.com:org/repo.git", "shell"),
        ("path = os.path.join(base, 'x')", "python"),
        ('__version__ = "1.2.3.4"', "python"),
        ("requests==2.31.0.1", "python"),
        ('VERSION = "2.4.1.0"', "python"),
        ("oid = '1.3.6.1.4.1.311'", "python"),
        ("HOST = '192.168.1.10'  # the lab box", "python"),
        ("bind('127.0.0.1', 8080)", "python"),
        ("card = '4111 1111 1111 1112'", "python"),  # fails the Luhn check
        ("x = 4155550137", "python"),  # a number in code, not a phone in prose
        ('password = os.environ["DB_PASSWORD"]', "python"),
        ('api_key = "${API_KEY}"', "python"),
        ('password = "changeme"', "python"),
        ("token = get_token(user)", "python"),
        ("self.password = password", "python"),
        ('CACHE = "/home/runner/.cache"', "python"),
        ("@property\ndef name(self): ...", "python"),
        ("See @param and @returns in the docs", None),
        ("class JohnSmith:\n    Py_DECREF = 1\n", "python"),
        ("# Copyright (c) 2024 Acme Billing contributors", "python"),
        ("weights@inputs", "python"),
        ("assert u[1::2] == u[::2]", "python"),  # slices are not IPv6
        ('drive(b"1234567890")', "python"),  # a digit run in code is not a phone
        ("# see https://pubs.opengroup.org/onlinepubs/9699919799/x.html", "python"),
        ('"""Test whether a path exists.  Returns True for broken links"""', "python"),
    ],
)
def test_recognizers_leave_code_alone(engine, text, language):
    assert found(engine, text, language) == []


def test_private_ranges_are_found_when_configured():
    private = load_engine(PIIConfig(include_private_ips=True, ner=False))
    assert found(private, "HOST = '192.168.1.10'") == [("IP_ADDRESS", "192.168.1.10")]


def test_private_key_blocks_are_one_span(engine):
    key = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIICXQIBAAKBgQDwcEN7vZygGg6D\n"
        "vPpsw17hRD6S5N8+hu\n-----END RSA PRIVATE KEY-----"
    )
    assert found(engine, f"KEY = '''{key}'''") == [("KEY", key)]


def test_placeholders_are_typed(engine):
    text = "Mail ann.lee@example.org or call +1 (415) 555-0137."
    clean, entities = engine.redact(text, engine.analyze([text], [None])[0])
    assert clean == "Mail <EMAIL> or call <PHONE>."
    assert [(e["type"], text[e["start"] : e["end"]]) for e in entities] == [
        ("EMAIL_ADDRESS", "ann.lee@example.org"),
        ("PHONE_NUMBER", "+1 (415) 555-0137"),
    ]


def test_pseudonyms_are_consistent_within_a_document():
    engine = load_engine(PIIConfig(mode="pseudonym", ner=False))
    text = "From ann.lee@example.org to bo.tran@example.org, cc ann.lee@example.org"
    clean, entities = engine.redact(text, engine.analyze([text], [None])[0])
    assert clean == "From <EMAIL_1> to <EMAIL_2>, cc <EMAIL_1>"
    assert [e["replacement"] for e in entities] == ["<EMAIL_1>", "<EMAIL_2>", "<EMAIL_1>"]


def test_only_configured_entities_are_replaced():
    engine = load_engine(PIIConfig(entities=["KEY"], ner=False))
    assert found(engine, 'X = "ann@example.org"; K = "AKIA4QWERTYUIOP7ZX2N"') == [
        ("KEY", "AKIA4QWERTYUIOP7ZX2N")
    ]


def test_a_missing_spacy_model_says_how_to_install_it():
    with pytest.raises(MissingDependency, match=r"pip install 'codecurate\[pii\]'"):
        PIIStage(PIIConfig(spacy_model="no_such_model_xyz"))


# Every planted value of data/sample/README.md that must not reach content_clean.
PLANTED = [
    "Maria Schneider", "maria.schneider@acme-billing.example.com", "555-0137",
    "Tom Okafor", "tom.okafor@acme-billing.example.com", "S3cr3t-Passw0rd!",
    "AKIA4QWERTYUIOP7ZX2N", "k7Gf2pQ9rT4vX1zB8nM3cL6hJ0wY5sD2aE9uI4oR",
    "sk_live_51HqT2cKZ8vRt7YpLm3Nq9WxA", "finance@acme-billing.example.com", "mschneider",
    "jane.doe", "Priya Raman", "priya.raman@acme-billing.example.com", "34.201.17.88",
    "Lukas Brandt", "lukas.brandt@sensorlib.example.net", "Aiko Tanaka",
    "aiko.tanaka@sensorlib.example.net", "Helen Carter", "helen.carter@cro-analytics.example.com",
    "hcarter", "ghp_R4nd0mL00k1ngT0k3nV4lu3xYz9876543210", "hooks.slack.com/services/T0ABCDEF1",
    "Jonas Weber", "jonas.weber@example.org", "030 1234567", "tom-okafor", "priya-raman",
]  # fmt: skip


def sample_config(sample, tmp_path, **pii):
    config = load_config(sample.parent.parent / "curate.toml")
    config.workdir = tmp_path / "work"
    config.pii = PIIConfig(**{"workers": 1, **pii})
    return config


def test_no_planted_value_survives_in_the_sample(sample, tmp_path):
    run_pipeline(sample_config(sample, tmp_path), until="pii")
    records = pl.read_parquet(tmp_path / "work" / "03_pii.parquet")
    clean = "\n".join(records["content_clean"])
    survivors = [value for value in PLANTED if value in clean]
    assert survivors == []
    assert records["content"].to_list() == records["content_clean"].to_list()
    assert records["pii_count"].sum() == records["pii_entities"].list.len().sum() > 40


def test_keep_original_keeps_the_ingested_text_beside_the_clean_one(sample, tmp_path):
    run_pipeline(sample_config(sample, tmp_path, keep_original=True), until="pii")
    records = pl.read_parquet(tmp_path / "work" / "03_pii.parquet")
    assert any("Maria Schneider" in text for text in records["content"])
    assert not any("Maria Schneider" in text for text in records["content_clean"])


@pytest.mark.slow
def test_worker_processes_give_the_same_output_as_one_process(sample, tmp_path):
    one = sample_config(sample, tmp_path / "one", batch_size=8)
    two = sample_config(sample, tmp_path / "two", batch_size=8, workers=2)
    run_pipeline(one, until="pii")
    run_pipeline(two, until="pii")
    columns = ["id", "content_clean", "pii_entities"]
    assert pl.read_parquet(tmp_path / "one/work/03_pii.parquet", columns=columns).equals(
        pl.read_parquet(tmp_path / "two/work/03_pii.parquet", columns=columns)
    )
