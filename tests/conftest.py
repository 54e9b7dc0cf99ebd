"""Shared fixtures: phantom data made once per session, small and deterministic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PHANTOM_PER_CLASS = 4
PHANTOM_SIZE = (96, 128)


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every public layout, written once by the phantom simulator."""
    from echocaptions.synth import make_phantom

    root = tmp_path_factory.mktemp("phantom")
    make_phantom(root, per_class=PHANTOM_PER_CLASS, seed=0, size=PHANTOM_SIZE)
    return root
