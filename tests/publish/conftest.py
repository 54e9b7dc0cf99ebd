"""One demo build for the publish tests (the report and open_build), made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.helpers import run


@pytest.fixture(scope="session")
def built(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo recipe, small images and shards (tests.pipeline.helpers.run). Copy it before changing it."""
    return run("demo", phantom_root, tmp_path_factory.mktemp("report") / "demo").out
