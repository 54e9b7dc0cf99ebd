"""The published bytes of the demo and multiorgan builds, recorded: a refactor must not change them.

Both builds run on the session's phantom (`tests/conftest.py`) with the small
settings of `helpers.small_recipe`. When an output change is intended, rerun
with ``ECHOCAPTIONS_RECORD_HASHES=1`` to rewrite ``output_hashes.json`` and say
in the commit why the output changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.pipeline.helpers import parquet_digests, run

RECORDED = Path(__file__).with_name("output_hashes.json")


@pytest.mark.parametrize("recipe", ["demo", "multiorgan"])
def test_published_bytes_are_the_recorded_ones(recipe: str, phantom_root: Path, tmp_path: Path) -> None:
    digests = parquet_digests(run(recipe, phantom_root, tmp_path / recipe).out)
    recorded = json.loads(RECORDED.read_text()) if RECORDED.is_file() else {}
    if os.environ.get("ECHOCAPTIONS_RECORD_HASHES") == "1":
        recorded[recipe] = digests
        RECORDED.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    assert recipe in recorded, f"no recorded hashes for {recipe}: run with ECHOCAPTIONS_RECORD_HASHES=1"
    changed = sorted(k for k in digests.keys() | recorded[recipe].keys() if digests.get(k) != recorded[recipe].get(k))
    assert not changed, (
        f"{recipe}: the published Parquet changed ({', '.join(changed)}); if intended, rerun with "
        "ECHOCAPTIONS_RECORD_HASHES=1 and say in the commit why the output changed"
    )
