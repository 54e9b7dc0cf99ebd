"""Lung POCUS: videos matched to dataset_metadata.csv rows; patients from the metadata."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.pocus import PocusSource
from tests.sources.conftest import PER_CLASS, read, reasons


def rows(data: Path) -> dict[str, dict[str, str]]:
    with open(data / "dataset_metadata.csv", newline="") as fh:
        return {r["Filename"]: r for r in csv.DictReader(fh)}


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    data = phantom["pocus"]
    items, rejects = read("pocus", data)
    assert rejects == []
    assert Counter(i.label for i in items) == {
        "covid": PER_CLASS, "pneumonia": PER_CLASS, "normal": PER_CLASS, "viral_pneumonia": PER_CLASS}
    assert all(i.expand and i.frame is None and i.organ == "lung" for i in items)
    assert {i.view for i in items} == {"convex", "linear"}
    assert {Path(i.source_path).suffix for i in items} >= {".mp4"}
    table = rows(data)
    for item in items:
        row = table[Path(item.source_path).stem]
        assert item.patient_id == (row["Patient ID / Name"] or None)
        assert item.view == row["Probe"]
        assert item.findings["lung_b_lines"] == {"1": "multiple", "0": "absent"}[row["B-lines"]]
        assert item.findings["lung_a_lines"] == {"1": "present", "0": "absent"}[row["A-lines"]]
        assert item.license == (PocusSource.license if row["License"] == "None" else row["License"])
    patients = Counter(i.patient_id for i in items if i.patient_id)
    assert max(patients.values()) >= 2


def test_repository_root_and_data_folder_give_the_same_items(phantom: dict[str, Path]) -> None:
    from_data, _ = read("pocus", phantom["pocus"])
    from_repo, _ = read("pocus", phantom["pocus"].parent)
    assert [i.id for i in from_data] == [i.id for i in from_repo]


def test_files_without_a_row_use_the_name_prefix(tmp_path: Path) -> None:
    (tmp_path / "pocus_images" / "linear").mkdir(parents=True)
    (tmp_path / "pocus_images" / "linear" / "Vir-Grepmed-3.png").write_bytes(b"png")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Filename,Label,Patient ID / Name,Consolidations,Effusion\nOther,COVID-19,12,1,1\n")
    items, rejects = read("pocus", tmp_path)
    assert rejects == []
    (item,) = items
    assert (item.label, item.patient_id, item.view, item.expand) == ("viral_pneumonia", None, "linear", False)


def test_consolidation_flag_without_detail_is_present(tmp_path: Path) -> None:
    (tmp_path / "pocus_videos" / "convex").mkdir(parents=True)
    (tmp_path / "pocus_videos" / "convex" / "Pneu-Atlas-1.gif").write_bytes(b"gif")
    (tmp_path / "dataset_metadata.csv").write_text(
        "Filename,Label,Patient ID / Name,Consolidations,Effusion,Probe\n"
        "Pneu-Atlas-1,Bacterial pneumonia,7,1,1,convex\n")
    (item,), _ = read("pocus", tmp_path)
    assert item.label == "pneumonia" and item.patient_id == "7"
    assert item.findings == {"lung_consolidation": "present", "lung_effusion": "present"}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("pocus", broken_phantom["pocus"])
    why = reasons(rejects)
    assert "label outside vocabulary" in why["pocus_videos/linear/Xyz-Unknown-1.mp4"]
    assert why["pocus_videos/convex/README.txt"].startswith("unknown extension")
    assert "pocus_videos/convex/Cov-Broken-1.mp4" in {i.source_path for i in items}


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "repo" / "data" / "pocus_videos").mkdir(parents=True)
    (tmp_path / "repo" / "README.md").write_text("no metadata")
    for root in (tmp_path / "missing", tmp_path / "repo"):
        with pytest.raises(SourceError) as err:
            get_source_class("pocus")("pocus", root).check()
        message = str(err.value)
        assert "'pocus'" in message and "dataset_metadata.csv" in message
        assert "jannisborn/covid19_ultrasound" in message and "Born" in message
