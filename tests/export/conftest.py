"""One demo build per session with a held-out source, and helpers to read exports back."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "train_min" / "configs" / "tiny.json"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo recipe with BUSI held out (split ``eval_busi``), small images, several shards per split."""
    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    root = tmp_path_factory.mktemp("export_demo")
    recipe = load_recipe(
        "demo", data_root=root / "phantom", out=root / "build",
        overrides=["sources.busi.role=eval", "image.max_side=128", "output.rows_per_shard=80"],
    )
    return build(recipe, workers=1, quiet=True).out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train_min's tiny config as an open_clip ``local-dir:`` model (config only: random weights)."""
    folder = tmp_path_factory.mktemp("tiny_model")
    config = {"model_cfg": json.loads(TINY_CONFIG.read_text()), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder


def digests(folder: Path, pattern: str = "**/*.tar") -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern)) if p.is_file()}


def members(tar: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tar) as t:
        return t.getmembers()


def read_samples(tar: Path) -> dict[str, dict[str, bytes]]:
    """``{key: {ext: bytes}}`` of one shard, keys split at the first dot as webdataset does."""
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar) as t:
        for m in t.getmembers():
            key, ext = m.name.split(".", 1)
            f = t.extractfile(m)
            assert f is not None
            out.setdefault(key, {})[ext] = f.read()
    return out


def copy_build(build_dir: Path, dest: Path) -> Path:
    shutil.copytree(build_dir, dest)
    return dest


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env
