"""TN3K: official train-val / test split kept, labels from label4*.csv, masks attached."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.tn3k import read_labels
from tests.sources.conftest import PER_CLASS, read, reasons


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("tn3k", phantom["tn3k"])
    assert rejects == []
    per_split = Counter((i.split_hint, i.label) for i in items)
    assert per_split == {(s, lab): PER_CLASS for s in ("train", "test") for lab in ("benign", "malignant")}
    for item in items:
        folder = "trainval" if item.split_hint == "train" else "test"
        name = Path(item.source_path).name
        assert item.source_path == f"{folder}-image/{name}"
        assert item.extra["masks"] == [f"{folder}-mask/{name}"]
        assert item.patient_id is None and item.findings == {} and item.organ == "thyroid"
        assert item.license == "research use; cite Gong et al. 2023"
    assert len({i.id for i in items}) == len(items)  # test numbering restarts: ids still differ


def test_label_files_are_read_tolerantly(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("img_name,label\n0000.jpg,0\n1,1\n0002,1.0\n")
    assert read_labels(tmp_path / "a.csv") == {"0000": "0", "1": "1", "0002": "1"}
    root = tmp_path / "tn3k"
    for folder in ("trainval-image", "test-image"):
        (root / folder).mkdir(parents=True)
    for name in ("0000.jpg", "0001.jpg", "0002.jpg"):
        (root / "trainval-image" / name).write_bytes(b"jpg")
    (root / "test-image" / "0000.jpg").write_bytes(b"jpg")
    (root / "label4trainval.csv").write_text("img_name,label\n0000.jpg,0\n1,1\n0002,1.0\n")
    items, rejects = read("tn3k", tmp_path)
    assert rejects == []
    assert [(i.source_path, i.label, i.split_hint) for i in items] == [
        ("trainval-image/0000.jpg", "benign", "train"), ("trainval-image/0001.jpg", "malignant", "train"),
        ("trainval-image/0002.jpg", "malignant", "train"), ("test-image/0000.jpg", None, "test")]
    assert items[-1].extra["labelled"] is False


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("tn3k", broken_phantom["tn3k"])
    n = 2 * PER_CLASS
    why = reasons(rejects)
    assert why[f"trainval-image/{n:04d}.jpg"] == "image without its label4trainval.csv line"
    assert why[f"trainval-image/{n + 1:04d}.jpg"].startswith("label outside vocabulary: '2'")
    assert why["trainval-image/Thumbs.db"].startswith("unknown extension")
    assert why[f"test-mask/{n:04d}.jpg"] == "mask without its image"
    assert why[f"trainval-mask/{n:04d}.jpg"] == why[f"trainval-mask/{n + 1:04d}.jpg"] == "mask of a rejected image"
    assert f"test-image/{n + 1:04d}.jpg" in {i.source_path for i in items}  # truncated: the decoder rejects it
    root = broken_phantom["tn3k"]
    files = {p.relative_to(root).as_posix() for p in root.glob("*/*")}
    assert files == {i.source_path for i in items} | {m for i in items for m in i.extra["masks"]} | set(why)


@pytest.mark.parametrize("make", ["missing", "empty", "wrong"])
def test_bad_root_names_layout_and_publisher(tmp_path: Path, make: str) -> None:
    root = tmp_path / "TN3K"
    if make != "missing":
        root.mkdir()
    if make == "wrong":
        (root / "images").mkdir()
        (root / "images" / "0000.jpg").write_bytes(b"jpg")
    with pytest.raises(SourceError) as err:
        get_source_class("tn3k")("tn3k", root).check()
    message = str(err.value)
    assert "'tn3k'" in message and "label4trainval.csv" in message and "Gong" in message
