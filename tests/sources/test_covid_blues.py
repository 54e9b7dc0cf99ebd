"""COVID-BLUES: per-patient PCR label, per-clip A-/B-line ratings, one item per video."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.covid_blues import b_lines
from tests.sources.conftest import PER_CLASS, read, reasons
from tests.sources.test_fatty_liver import build_one


def table(path: Path, key: str) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row[key]: row for row in csv.DictReader(fh)}


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["covid_blues"]
    items, rejects = read("covid_blues", root)
    assert rejects == []
    assert len(items) == 2 * 2 * PER_CLASS + 1
    clinical = table(root / "clinical_variables.csv", "patient_id")
    severity = table(root / "severity.csv", "video_file")
    for item in items:
        stem = Path(item.source_path).stem
        assert item.source_path == f"lus_videos/{stem}.mp4"
        assert item.label == {"1": "covid", "0": "normal"}[clinical[item.patient_id]["cov_test"]]
        assert item.expand and item.frame is None and item.view == "convex"
        row = severity[stem]
        assert item.findings.get("lung_a_lines") == {"yes": "present", "no": "absent"}[row["A-lines"]]
        assert item.findings.get("lung_b_lines") == b_lines(row["B-lines"], float(row["Severity Score"]))
        assert item.extra["lung_severity_score"] == int(float(row["Severity Score"]))
    by_path = {i.source_path: i for i in items}
    assert by_path["lus_videos/patient_1_L1_2.mp4"].extra == {
        "blue_point": "L1", "repeat": 2,
        "lung_severity_score": by_path["lus_videos/patient_1_L1_2.mp4"].extra["lung_severity_score"]}
    assert Counter(i.label for i in items) == {"covid": 2 * PER_CLASS + 1, "normal": 2 * PER_CLASS}
    assert {i.findings.get("lung_b_lines") for i in items if i.label == "normal"} == {"absent"}


@pytest.mark.parametrize(("flag", "score", "expected"), [
    ("yes", 0.0, "few"), ("yes", 2.0, "multiple"), ("no", 1.0, "absent"), ("no", 3.0, None),
    ("", 1.0, None)])
def test_b_line_rule(flag: str, score: float, expected: str | None) -> None:
    assert b_lines(flag, score) == expected


def test_tolerant_columns_and_no_severity(tmp_path: Path) -> None:
    (tmp_path / "lus_videos").mkdir()
    for name in ("patient_07_QAID.mp4", "patient_8_R1.mp4"):
        (tmp_path / "lus_videos" / name).write_bytes(b"mp4")
    (tmp_path / "clinical_variables.csv").write_text("Patient_ID,age,COVID_positive\n7.0,55,yes\n8,60,\n")
    items, rejects = read("covid_blues", tmp_path)
    assert rejects == []
    got = {i.patient_id: (i.label, i.extra["blue_point"], i.findings) for i in items}
    assert got == {"7": ("covid", "QAID", {}), "8": (None, "R1", {})}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("covid_blues", broken_phantom["covid_blues"])
    assert reasons(rejects) == {
        "lus_videos/README.txt": "unknown extension '.txt'",
        "lus_videos/clip_7.mp4": "name does not follow patient_<ID>_<POINT>.mp4",
        "lus_videos/patient_99_L1.mp4": "patient 99 has no row in clinical_variables.csv",
    }
    assert "lus_videos/patient_2_R3.mp4" in {i.source_path for i in items}


def test_missing_label_column_lists_columns(tmp_path: Path) -> None:
    (tmp_path / "lus_videos").mkdir()
    (tmp_path / "lus_videos" / "patient_1_L1.mp4").write_bytes(b"mp4")
    (tmp_path / "clinical_variables.csv").write_text("patient_id,pat_age\n1,40\n")
    with pytest.raises(SourceError, match="cov_test.*columns found: \\['patient_id', 'pat_age'\\]"):
        read("covid_blues", tmp_path)


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "repo" / "lus_videos").mkdir(parents=True)
    (tmp_path / "repo" / "README.md").write_text("no table")
    for root in (tmp_path / "missing", tmp_path / "repo"):
        with pytest.raises(SourceError) as err:
            get_source_class("covid_blues")("cb", root).check()
        message = str(err.value)
        assert "'covid_blues'" in message and "NinaWie/COVID-BLUES" in message
    assert "clinical_variables.csv" in message


def test_build_opens_with_datasets(phantom: dict[str, Path], tmp_path: Path) -> None:
    stats, ds = build_one("covid_blues", phantom["covid_blues"], tmp_path)
    assert stats["read"] == 2 * (4 * PER_CLASS + 1)
    assert stats["rows"] > 0 and stats["rows"] + stats["rejected"] == stats["read"]
    assert sum(len(part) for part in ds.values()) == stats["rows"]
    assert {r["patient_id"] for part in ds.values() for r in part} == {
        f"covid_blues:{p}" for p in range(1, 2 * PER_CLASS + 1)}


def test_download_notes_say_git_lfs_pull() -> None:
    from echocaptions.recipe import load_recipe

    cls = get_source_class("covid_blues")
    assert "NinaWie/COVID-BLUES" in cls.download and "git lfs pull" in cls.download
    paths = {s.path for name in ("lung", "multiorgan") for s in load_recipe(name).sources
             if s.layout == "covid_blues"}
    assert paths == {cls.folder}
    assert any("pointer" in q and "git_lfs_pointer" in q for q in cls.quirks)
    assert any("clinical_variables.csv" in r for r in cls.required)
    assert any(o.startswith("severity.csv") for o in cls.optional)
