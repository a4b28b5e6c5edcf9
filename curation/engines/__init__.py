"""Execution engines: where the stages' batch functions and partition tasks run.

`local` (this machine, the default) and `ray` (a Ray cluster, the `[ray]` extra) run the
same stage code and write the same files; `make_engine` builds one from `[engine]`.
"""

from curation.engines.base import BatchFunction, Engine
from curation.engines.config import EngineConfig
from curation.engines.local import LocalEngine


def make_engine(config: EngineConfig) -> Engine:
    """The engine `[engine]` names; Ray is imported (and started) only when asked for."""
    if config.kind == "ray":
        from curation.engines.ray_engine import RayEngine

        return RayEngine(config.address, num_cpus=config.num_cpus, workers=config.workers,
                         scratch=config.scratch)  # fmt: skip
    return LocalEngine(workers=config.workers, scratch=config.scratch)


__all__ = ["BatchFunction", "Engine", "EngineConfig", "LocalEngine", "make_engine"]
