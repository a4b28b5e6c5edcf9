"""Publishing a version on the Hugging Face Hub, tagged with its version."""

from __future__ import annotations

from pathlib import Path

from curation.errors import CurateError


def push_to_hub(folder: Path, repo: str, token: str | None) -> str:
    """Upload a version folder to a Hub dataset repo and tag the commit `v<version>`."""
    if not token:
        raise CurateError("push to the Hub needs HF_TOKEN in the environment")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    version = folder.name
    api.create_repo(repo, repo_type="dataset", exist_ok=True, private=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo,
        repo_type="dataset",
        commit_message=f"{folder.parent.name} {version}",
    )
    api.create_tag(repo, tag=f"v{version}", repo_type="dataset", revision=commit.oid)
    return f"https://huggingface.co/datasets/{repo}/tree/v{version}"
