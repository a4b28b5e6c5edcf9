"""Dataset release: reviewed records as versioned Hugging Face datasets a trainer can trust.

`export.py` writes a version; `splits.py` keeps each record's split across versions;
`versions.py` names versions and checks every file against its sha256; `registry.py`
indexes the versions and opens `name@version` verified; `card.py` writes the dataset card;
`diff.py` compares two versions record by record; `pull.py` hands a version over for
training; `hub.py` publishes it on the Hub.
"""

from finetune.release.card import describe_version
from finetune.release.config import ExportConfig
from finetune.release.diff import VersionDiff, diff_versions, render_diff
from finetune.release.export import Export, export
from finetune.release.hub import push_to_hub
from finetune.release.pull import load_version, pull
from finetune.release.registry import Version, dataset_names, open_version, read_registry
from finetune.release.versions import VersionChanged, bump, parse_version

__all__ = [
    "Export",
    "ExportConfig",
    "Version",
    "VersionChanged",
    "VersionDiff",
    "bump",
    "dataset_names",
    "describe_version",
    "diff_versions",
    "export",
    "load_version",
    "open_version",
    "parse_version",
    "pull",
    "push_to_hub",
    "read_registry",
    "render_diff",
]
