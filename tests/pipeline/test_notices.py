"""Once-per-build notices (Git LFS pointers here) and unlabelled rows, in stats, card, report and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from echocaptions.cli import app
from echocaptions.publish.report_html import write_report
from echocaptions.sources.base import is_lfs_pointer

POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 1843\n"
)


def _tree(root: Path) -> dict[str, int]:
    rng = np.random.default_rng(3)
    counts = {"labelled": 0, "unlabelled": 0, "pointers": 0}
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (30, 36), dtype=np.uint8)).save(root / label / f"{i}.png")
            counts["labelled"] += 1
        (root / label / "lfs.png").write_text(POINTER)
        counts["pointers"] += 1
    for i in range(3):  # files directly under the root have no class
        Image.fromarray(rng.integers(0, 255, (30, 36), dtype=np.uint8)).save(root / f"loose{i}.png")
        counts["unlabelled"] += 1
    return counts


def test_is_lfs_pointer(tmp_path: Path) -> None:
    (tmp_path / "p.mp4").write_text(POINTER)
    (tmp_path / "v.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    (tmp_path / "t.txt").write_text("version 2\n")
    assert is_lfs_pointer(tmp_path / "p.mp4")
    assert not is_lfs_pointer(tmp_path / "v.mp4")
    assert not is_lfs_pointer(tmp_path / "t.txt")
    assert not is_lfs_pointer(tmp_path / "missing.mp4")


def test_pointers_and_unlabelled_rows_are_reported_once(tmp_path: Path) -> None:
    counts = _tree(tmp_path / "data" / "f")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: n\nsources:\n  - {name: f, layout: imagefolder, path: f, options: {organ: breast}}\n"
        "dedup: {enabled: false}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["build", "--recipe", str(recipe), "--data-root", str(tmp_path / "data"), "--out", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    source = stats["sources"]["f"]
    assert source["kept"] == counts["labelled"] + counts["unlabelled"]
    assert source["unlabelled"] == counts["unlabelled"]
    assert source["kept"] + source["rejected"] == source["read"]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in rejects) == ["benign/lfs.png", "malignant/lfs.png"]
    assert all(r["reason"].startswith("git_lfs_pointer:") and r["stage"] == "enumerate" for r in rejects)
    assert stats["reject_reasons"] == {"git_lfs_pointer": counts["pointers"]}
    (notice,) = stats["notices"]["f"]
    assert notice.startswith(f"{counts['pointers']} file(s)") and "git lfs pull" in notice
    assert result.output.count("git lfs pull` in the repository") == 1  # the summary says it once
    assert f"rows without a label (kept, captioned from findings or organ): {{\"f\": {counts['unlabelled']}}}" in (
        result.output
    )
    card = (out / "README.md").read_text()
    assert "| rows without a label |" in card
    assert f"| f | imagefolder | train | {source['read']} | {source['kept']} | {counts['unlabelled']} |" in card
    assert notice in card
    html = write_report(out).read_text()
    assert f'id="unlabelled-f">{counts["unlabelled"]}</td>' in html
    assert "git lfs pull" in html
