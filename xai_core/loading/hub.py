"""Models named on the Hugging Face Hub: ``hf-hub:ORG/NAME`` (a transformers image
classifier or a timm repo) and ``timm/NAME`` (timm's own repos).

:func:`snapshot` fetches only the files a model needs (config.json,
model.safetensors, preprocessor_config.json) with ``huggingface_hub.snapshot_download``
into its cache (``HF_HUB_CACHE`` / ``HF_HOME``), in the calling process: the model
worker has no network. A copy already in the cache is used without the network
(and with ``HF_HUB_OFFLINE=1``). With no network and no cached copy, one line says
how to download the folder elsewhere and upload it. The folder is then opened
like any other (checked, built from files only, in the worker).
"""

from __future__ import annotations

import re
from pathlib import Path

from xai_core.types import ModelLoadError

NEEDED = ["config.json", "model.safetensors", "preprocessor_config.json"]
SHARDS = ["model.safetensors.index.json", "model-*-of-*.safetensors"]  # save_pretrained's shards, where split
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def is_hub_name(ref: str) -> bool:
    """``hf-hub:org/name`` or ``timm/name`` (and no such file or folder here)."""
    if Path(ref).exists():
        return False
    return ref.startswith("hf-hub:") or (ref.startswith("timm/") and _REPO.match(ref) is not None)


def repo_id(ref: str) -> str:
    repo = ref[len("hf-hub:"):] if ref.startswith("hf-hub:") else ref
    if not _REPO.match(repo):
        raise ModelLoadError(f"{ref}: not a Hub model name; write hf-hub:ORG/NAME or timm/NAME")
    return repo


def snapshot(ref: str) -> Path:
    """The local folder holding ``ref``'s files (downloaded into the hub cache when
    the network allows; the cached copy otherwise)."""
    repo = repo_id(ref)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelLoadError("Hub names need the huggingface_hub package: pip install -r requirements.txt") from None
    try:
        return Path(snapshot_download(repo, allow_patterns=NEEDED + SHARDS, etag_timeout=10))
    except Exception as first:  # noqa: BLE001 - offline, unknown repo, gated: try the cache, then explain
        try:
            return Path(snapshot_download(repo, allow_patterns=NEEDED + SHARDS, local_files_only=True))
        except Exception:  # noqa: BLE001
            pass
        reason = type(first).__name__
        raise ModelLoadError(
            f"{ref}: not in the local Hugging Face cache and it could not be downloaded ({reason}). On a machine "
            f"with internet access run `hf download {repo} {' '.join(NEEDED)} --local-dir {repo.split('/')[-1]}`, "
            "then give that folder (or a zip of it) as the model, or copy the hub cache here (HF_HOME)"
        ) from None
