"""Once-per-build notices (Git LFS pointers here) and unlabelled rows, in stats, card, report and CLI."""

from __future__ import annotations

import csv
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


def test_row_flags_reach_caption_meta(tmp_path: Path) -> None:
    """POCUS clips of unconfirmed label and the organ rule of report corpus rows are published flags."""
    import datasets

    from echocaptions.synth import make_phantom

    data = tmp_path / "data"
    make_phantom(data, per_class=2, size=(64, 80), layouts=["pocus", "report_corpus_zh"], variants=True)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: flags\nsources:\n"
        "  - {name: pocus, layout: pocus, path: covid19_ultrasound/data}\n"
        "  - {name: zh, layout: report_corpus, path: ultrasound_reports_zh}\n"
        "captions: {policy: [report, template]}\n"
        "dedup: {enabled: false}\nvideo: {fps: 1.0, max_frames: 2}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["build", "--recipe", str(recipe), "--data-root", str(data), "--out", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    rows = [r for part in datasets.load_dataset(str(out)).values() for r in part]
    with (data / "covid19_ultrasound" / "data" / "dataset_metadata.csv").open(newline="") as fh:
        # the table places a clip in label_uncertain/ by its location, whatever folder holds it
        table_uncertain = {
            row["Filename"].strip() for row in csv.DictReader(fh) if "label_uncertain" in row["Current location"]
        }

    def uncertain(source_path: str) -> bool:
        stem = Path(source_path).name.rsplit(".", 1)[0].strip()
        return "label_uncertain/" in source_path or stem in table_uncertain

    assert any(uncertain(r["source_path"]) for r in rows if r["dataset"] == "pocus")
    for r in rows:
        flags = (r["caption_meta"]["flags"] or "").split(",")
        if r["dataset"] == "pocus":
            assert ("label_uncertain" in flags) == uncertain(r["source_path"]), r["source_path"]
        else:
            (rule,) = [f for f in flags if f.startswith("organ_from=")]
            assert rule.split("=", 1)[1] in {"organ_key", "label", "folder", "option"}
    zh_rules = {f for r in rows if r["dataset"] != "pocus" for f in (r["caption_meta"]["flags"] or "").split(",")}
    assert {"organ_from=organ_key", "organ_from=label", "organ_from=folder"} <= zh_rules
