"""A build writes diversity.json and a card table; the diversity command reads them back."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from echocaptions.cli import app
from tests.pipeline.helpers import run


def test_build_writes_diversity_and_the_command_agrees(phantom_root: Path, tmp_path: Path) -> None:
    result = run("liver", phantom_root, tmp_path / "out")
    tables = json.loads((result.out / "diversity.json").read_text())
    assert {"caption_source", "organ", "dataset", "caption_source/organ", "strategy"} <= set(tables)
    strategies = tables["strategy"]
    assert set(strategies) == {"template_only", "report_template"}
    for report in strategies.values():
        assert report["n_captions"] == result.stats["rows"]
        assert report["values"]["mtld"] is not None
        assert 0.0 <= report["fidelity"]["precision"] <= 1.0
    assert sum(g["n_captions"] for g in tables["caption_source"].values()) == result.stats["rows"]
    card = (result.out / "README.md").read_text()
    assert "| template_only | " in card and "| report_template | " in card
    out = CliRunner().invoke(app, ["diversity", str(result.out), "--by", "strategy", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == strategies
    bad = CliRunner().invoke(app, ["diversity", str(result.out), "--by", "colour"])
    assert bad.exit_code != 0 and "unknown columns" in bad.output
