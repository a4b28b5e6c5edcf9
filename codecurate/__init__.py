"""codecurate: the `curate` command line, the pipeline config and the orchestration of stages."""

from codecurate.config import PipelineConfig, load_config, parse_config
from codecurate.pipeline import build_stages, run_pipeline

__all__ = ["PipelineConfig", "build_stages", "load_config", "parse_config", "run_pipeline"]
