"""manifest: CSV or JSONL listing paths and metadata, relative to the manifest's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echocaptions.sources import SourceError
from tests.sources.conftest import read, reasons


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_csv_manifest(tmp_path: Path, no_pixels: None) -> None:
    touch(tmp_path, "img/a.png", "img/b.jpg", "vid/c.mp4")
    (tmp_path / "manifest.csv").write_text(
        "path,label,organ,report,patient_id,study_id,license,split,tirads_composition\n"
        "img/a.png,malignant,thyroid,Solid nodule.,P1,S1,CC-BY-4.0,val,solid\n"
        "img/b.jpg,Benign,breast,,P2,,,train,\n"
        "vid/c.mp4,covid,lung,,,,,test,\n"
    )
    items, rejects = read("manifest", tmp_path, {"dataset": "site_a"})
    assert rejects == []
    a, b, c = items
    assert (a.organ, a.label, a.report, a.patient_id, a.study_id, a.license, a.split_hint) == (
        "thyroid", "malignant", "Solid nodule.", "P1", "S1", "CC-BY-4.0", "validation")
    assert a.findings == {"tirads_composition": "solid"}
    assert Path(a.path) == (tmp_path / "img/a.png").resolve() and a.source_path == "img/a.png"
    assert (b.label, b.report, b.split_hint) == ("benign", None, "train")
    assert c.expand and c.frame is None and c.split_hint == "test"
    assert {i.dataset for i in items} == {"site_a"}


def test_jsonl_manifest_and_rejects(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "b.txt", "d.png")
    lines = [
        {"path": "a.png", "label": "normal", "findings": {"liver_steatosis": "S2"}, "patient_id": 7},
        {"path": "missing.png", "label": "normal"},
        {"path": "b.txt", "label": "normal"},
        {"path": "d.png", "label": "normal", "organ": "kidney"},
        {"path": "a.png", "label": "normal"},
        {"label": "normal"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n{broken json\n"
    (tmp_path / "manifest.jsonl").write_text(text)
    items, rejects = read("manifest", tmp_path, {"organ": "liver"})
    (item,) = items
    assert item.findings == {"liver_steatosis": "S2"} and item.patient_id == "7" and item.organ == "liver"
    why = reasons(rejects)
    assert why["missing.png"] == "file listed in the manifest is missing"
    assert why["b.txt"] == "unknown extension '.txt'"
    assert why["d.png"].startswith("organ outside vocabulary")
    assert why["a.png"].startswith("listed twice")
    assert why["manifest.jsonl:6"] == "manifest row has no path"
    assert why["manifest.jsonl:7"] == "manifest row does not parse"


def test_label_outside_vocabulary_is_a_reject(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    (tmp_path / "list.csv").write_text("path,label,organ\na.png,goitre,thyroid\n")
    items, rejects = read("manifest", tmp_path, {"file": "list.csv"})
    assert items == []
    assert "goitre" in rejects[0].reason


def test_missing_manifest_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="manifest.csv or manifest.jsonl"):
        read("manifest", tmp_path)
    (tmp_path / "manifest.csv").write_text("file,label\n")
    with pytest.raises(SourceError, match="no 'path' column"):
        read("manifest", tmp_path)
