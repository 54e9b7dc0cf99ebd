"""A Hugging Face cache on disk, laid out as huggingface_hub writes it, for offline tests.

``models--ORG--NAME/snapshots/<revision>/<files>`` and ``refs/main`` naming
the revision: huggingface_hub (and through it open_clip and transformers)
finds files there with ``HF_HUB_OFFLINE=1`` exactly as after a download.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from train_min import models


def put(hub_cache: Path, repo: str, files: dict[str, bytes | str | Path], revision: str = "0" * 40) -> Path:
    """Store ``files`` as the main revision of ``repo`` in a hub cache folder; returns the snapshot folder."""
    folder = hub_cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, snapshot / name)
        else:
            (snapshot / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return snapshot


def open_clip_repo(hub_cache: Path, repo: str, model: str = "tiny-vit", seed: int = 3,
                   preprocess: dict[str, Any] | None = None, safetensors: bool = False,
                   state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """An open_clip model (config + weights) as a hub repository; returns the weights it holds."""
    import open_clip

    models.register_configs()
    if state is None:
        state = models.create(model, None, seed).state_dict()
    config = {"model_cfg": open_clip.get_model_config(model), "preprocess_cfg": preprocess or {}}
    tmp = hub_cache.parent / f"weights-{seed}.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        name = "open_clip_model.safetensors"
    else:
        torch.save(state, tmp)
        name = "open_clip_pytorch_model.bin"
    put(hub_cache, repo, {"open_clip_config.json": json.dumps(config), name: tmp})
    tmp.unlink()
    return state


def folder_repo(hub_cache: Path, repo: str, folder: Path, skip: tuple[str, ...] = ()) -> Path:
    """A saved transformers folder as a hub repository (``skip``: files left out)."""
    return put(hub_cache, repo, {p.name: p for p in folder.iterdir() if p.is_file() and p.name not in skip})
