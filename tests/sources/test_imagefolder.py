"""imagefolder: class sub-folders, labels from folder names or a label map."""

from __future__ import annotations

from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import read, reasons


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_class_folders_become_labels(tmp_path: Path, no_pixels: None) -> None:
    make_tree(tmp_path, ["Benign/b (2).png", "Benign/b (10).png", "Benign/b (2)_mask.png",
                         "malignant/sub/m.jpg", "malignant/clip.mp4", "loose.png"])
    items, rejects = read("imagefolder", tmp_path, {"organ": "breast", "dataset": "mine", "license": "CC-BY-4.0"})
    assert rejects == []
    got = [(i.source_path, i.label, i.expand) for i in items]
    assert got == [
        ("Benign/b (2).png", "benign", False),
        ("Benign/b (10).png", "benign", False),
        ("loose.png", None, False),
        ("malignant/clip.mp4", "malignant", True),
        ("malignant/sub/m.jpg", "malignant", False),
    ]
    assert {i.dataset for i in items} == {"mine"} and {i.license for i in items} == {"CC-BY-4.0"}


def test_label_map_and_rejects(tmp_path: Path) -> None:
    make_tree(tmp_path, ["PTC/a.png", "goitre/b.png", "nodules/c.txt", "healthy/d.png"])
    (tmp_path / "empty").mkdir()
    items, rejects = read("imagefolder", tmp_path, {"organ": "thyroid",
                                                    "label_map": {"PTC": "malignant", "healthy": "normal"}})
    assert [(i.source_path, i.label) for i in items] == [("healthy/d.png", "normal"), ("PTC/a.png", "malignant")]
    why = reasons(rejects)
    assert why["empty"] == "empty folder"
    assert "label outside vocabulary" in why["goitre/b.png"]
    assert "label outside vocabulary" in why["nodules/c.txt"]


def test_unknown_extension_is_a_reject(tmp_path: Path) -> None:
    make_tree(tmp_path, ["normal/a.png", "normal/notes.docx"])
    _, rejects = read("imagefolder", tmp_path, {"organ": "liver"})
    assert reasons(rejects) == {"normal/notes.docx": "unknown extension '.docx'"}


def test_options_are_validated(tmp_path: Path) -> None:
    make_tree(tmp_path, ["normal/a.png"])
    with pytest.raises(SourceError, match="organ"):
        get_source_class("imagefolder")("mine", tmp_path, {})
    with pytest.raises(SourceError, match="kidney"):
        get_source_class("imagefolder")("mine", tmp_path, {"organ": "kidney"})
    with pytest.raises(SourceError, match="'imagefolder'"):
        get_source_class("imagefolder")("mine", tmp_path / "missing", {"organ": "lung"}).check()
