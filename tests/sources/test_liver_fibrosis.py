"""Liver fibrosis: METAVIR stage folders F0-F4 give label and liver_fibrosis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons
from tests.sources.test_fatty_liver import build_one


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("liver_fibrosis", phantom["liver_fibrosis"])
    assert rejects == []
    assert Counter(i.findings["liver_fibrosis"] for i in items) == {f"F{k}": PER_CLASS for k in range(5)}
    assert Counter(i.label for i in items) == {"normal": PER_CLASS, "fibrosis": 3 * PER_CLASS,
                                               "cirrhosis": PER_CLASS}
    for item in items:
        stage = item.source_path.split("/")[0]
        assert item.findings == {"liver_fibrosis": stage}
        assert item.label == {"F0": "normal", "F4": "cirrhosis"}.get(stage, "fibrosis")
        assert item.organ == "liver" and item.patient_id is None and item.split_hint is None


def test_wrapper_and_split_folders(tmp_path: Path) -> None:
    for rel in ("Dataset/train/F1/a.jpg", "Dataset/test/f4/b.png", "Dataset/F0/c.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"img")
    (tmp_path / "Dataset" / "README.md").write_text("about")
    items, rejects = read("liver_fibrosis", tmp_path)
    assert rejects == []
    got = {i.source_path: (i.label, i.findings["liver_fibrosis"], i.split_hint) for i in items}
    assert got == {
        "Dataset/F0/c.jpg": ("normal", "F0", None),
        "Dataset/test/f4/b.png": ("cirrhosis", "F4", "test"),
        "Dataset/train/F1/a.jpg": ("fibrosis", "F1", "train"),
    }


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("liver_fibrosis", broken_phantom["liver_fibrosis"])
    why = reasons(rejects)
    assert why == {"F2/notes.txt": "unknown extension '.txt'", "F5/1.jpg": "not inside a METAVIR class folder"}
    assert f"F3/{PER_CLASS + 1}.jpg" in {i.source_path for i in items}


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "liver" / "stage2").mkdir(parents=True)
    (tmp_path / "liver" / "stage2" / "1.jpg").write_bytes(b"jpg")
    for root in (tmp_path / "missing", tmp_path / "liver"):
        with pytest.raises(SourceError) as err:
            get_source_class("liver_fibrosis")("lf", root).check()
        message = str(err.value)
        assert "'liver_fibrosis'" in message and "F0" in message and "Kaggle" in message


def test_build_opens_with_datasets(phantom: dict[str, Path], tmp_path: Path) -> None:
    stats, ds = build_one("liver_fibrosis", phantom["liver_fibrosis"], tmp_path)
    assert stats["read"] == 5 * PER_CLASS
    assert stats["rows"] > 0 and stats["rows"] + stats["rejected"] == stats["read"]
    assert sum(len(part) for part in ds.values()) == stats["rows"]
