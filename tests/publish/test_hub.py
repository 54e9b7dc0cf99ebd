"""Publishing checks a build's card against its files; a dry run never uploads."""

from __future__ import annotations

from pathlib import Path

import pytest

from echocaptions.publish.hub import PublishError, publish
from tests.pipeline.helpers import run


def test_dry_run_lists_files_and_splits(phantom_root: Path, tmp_path: Path) -> None:
    result = run("lung", phantom_root, tmp_path / "lung", keep_work=True)
    plan = publish(result.out, "org/us-lung", dry_run=True)
    assert "README.md" in plan.files and "stats.json" in plan.files
    assert not any(f.startswith(".work") for f in plan.files)
    assert plan.splits == result.stats["splits"]


def test_broken_build_folder_is_refused(phantom_root: Path, tmp_path: Path) -> None:
    result = run("lung", phantom_root, tmp_path / "lung")
    with pytest.raises(PublishError, match="ORG/NAME"):
        publish(result.out, "no-slash", dry_run=True)
    for shard in (result.out / "data").glob("train-*.parquet"):
        shard.unlink()
    with pytest.raises(PublishError, match="matches no file"):
        publish(result.out, "org/x", dry_run=True)
    (result.out / "README.md").unlink()
    with pytest.raises(PublishError, match="no README.md"):
        publish(result.out, "org/x", dry_run=True)
