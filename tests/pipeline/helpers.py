"""Helpers for build tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from echocaptions.pipeline import build
from echocaptions.recipe import Recipe, load_recipe


def small_recipe(name: str, data_root: Path, out: Path, *overrides: str) -> Recipe:
    """A bundled recipe pointed at test data, with small images and shards."""
    return load_recipe(
        name,
        data_root=data_root,
        out=out,
        overrides=["image.max_side=128", "output.shard_items=16", "output.rows_per_shard=40", *overrides],
    )


def run(name: str, data_root: Path, out: Path, *overrides: str, workers: int = 1, **kwargs):
    return build(small_recipe(name, data_root, out, *overrides), workers=workers, quiet=True, **kwargs)


def parquet_digests(out: Path) -> dict[str, str]:
    """Digest of every published Parquet file: the default config and the strategy configs."""
    shards = sorted([*(out / "data").glob("*.parquet"), *(out / "strategies").glob("*/*.parquet")])
    assert shards, f"no Parquet under {out}"
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in shards}
