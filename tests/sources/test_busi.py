"""BUSI: class folders, masks beside images, no patient ids."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("busi", phantom["busi"])
    assert rejects == []
    assert Counter(i.label for i in items) == {"benign": PER_CLASS, "malignant": PER_CLASS, "normal": PER_CLASS}
    first = items[0]
    assert first.source_path == "benign/benign (1).png"
    assert first.extra["masks"] == ["benign/benign (1)_mask.png"]
    assert Path(first.path).is_absolute() and Path(first.path).is_file()
    assert all(i.organ == "breast" and i.dataset == "busi" for i in items)
    assert all(i.patient_id is None and i.report is None and i.findings == {} for i in items)
    assert all("_mask" not in i.source_path for i in items)
    assert all(i.license == "CC0-1.0" for i in items)


def test_root_may_be_the_dataset_folder_itself(phantom: dict[str, Path]) -> None:
    outer, _ = read("busi", phantom["busi"])
    inner, _ = read("busi", phantom["busi"] / "Dataset_BUSI_with_GT")
    assert [i.id for i in outer] == [i.id for i in inner]


def test_second_mask_is_attached(tmp_path: Path) -> None:
    folder = tmp_path / "Dataset_BUSI_with_GT" / "benign"
    folder.mkdir(parents=True)
    for name in ("benign (10).png", "benign (10)_mask.png", "benign (10)_mask_1.png", "benign (2).png"):
        (folder / name).write_bytes(b"png")
    items, rejects = read("busi", tmp_path)
    assert rejects == []
    assert [i.source_path for i in items] == ["benign/benign (2).png", "benign/benign (10).png"]
    assert items[1].extra["masks"] == ["benign/benign (10)_mask.png", "benign/benign (10)_mask_1.png"]


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("busi", broken_phantom["busi"])
    why = reasons(rejects)
    assert why["malignant/malignant (3)_mask.png"] == "mask without its image"
    assert why["normal/Thumbs.db"].startswith("unknown extension")
    assert "label outside vocabulary" in why["unknown/unknown (1).png"]
    assert "benign/benign (3).png" in {i.source_path for i in items}  # truncated: the decoder rejects it
    base = broken_phantom["busi"] / "Dataset_BUSI_with_GT"
    files = [p for p in base.rglob("*") if p.is_file()]
    masks = sum(len(i.extra["masks"]) for i in items)
    assert len(items) + len(rejects) + masks == len(files)


def test_empty_class_folder_is_a_reject(tmp_path: Path) -> None:
    (tmp_path / "benign").mkdir()
    (tmp_path / "normal").mkdir()
    (tmp_path / "normal" / "normal (1).png").write_bytes(b"png")
    items, rejects = read("busi", tmp_path)
    assert len(items) == 1
    assert reasons(rejects) == {"benign": "empty folder"}


@pytest.mark.parametrize("make", ["missing", "empty", "wrong"])
def test_bad_root_names_layout_and_publisher(tmp_path: Path, make: str) -> None:
    root = tmp_path / "BUSI"
    if make != "missing":
        root.mkdir()
    if make == "wrong":
        (root / "images").mkdir()
        (root / "images" / "a.png").write_bytes(b"png")
    with pytest.raises(SourceError) as err:
        get_source_class("busi")("busi", root).check()
    message = str(err.value)
    assert "'busi'" in message and "Dataset_BUSI_with_GT" in message and "Al-Dhabyani" in message


def test_download_notes_match_the_real_archive() -> None:
    from echocaptions.recipe import load_recipe

    cls = get_source_class("busi")
    assert "Kaggle" in cls.download and "Data in Brief" in cls.download
    paths = {s.path for name in ("breast", "multiorgan") for s in load_recipe(name).sources if s.layout == "busi"}
    assert paths == {cls.folder}
    assert any("archive/Dataset_BUSI_with_GT" in q and "__MACOSX" in q for q in cls.quirks)
    assert all("Dataset_BUSI_with_GT" in r for r in cls.required) and cls.optional and cls.grouping_note
