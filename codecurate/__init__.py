"""codecurate: the `curate` command line, the pipeline config and the orchestration of stages."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codecurate.config import PipelineConfig, load_config, parse_config
    from codecurate.pipeline import build_stages, run_pipeline

# Imported on first use (PEP 562): `import codecurate.cli` runs this file, and the config
# and pipeline load every stage's settings, which `curate --help` does not need.
_LAZY = {
    "PipelineConfig": "codecurate.config",
    "load_config": "codecurate.config",
    "parse_config": "codecurate.config",
    "build_stages": "codecurate.pipeline",
    "run_pipeline": "codecurate.pipeline",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'codecurate' has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)


__all__ = ["PipelineConfig", "build_stages", "load_config", "parse_config", "run_pipeline"]
