"""BUS-BRA: bus_data.csv rows give pathology, BI-RADS and patient; masks ride along."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons

HEADER = "ID,Case,Histology,Pathology,BIRADS,Device,Height,Width,Side,BBOX\n"


def rows(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "bus_data.csv", newline="") as fh:
        return {r["ID"]: r for r in csv.DictReader(fh)}


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["bus_bra"]
    items, rejects = read("bus_bra", root)
    assert rejects == []
    cases = range(1, 2 * PER_CLASS + 1)
    assert len(items) == sum(2 if c % 3 == 0 else 1 for c in cases)
    assert {i.patient_id for i in items} == {str(c) for c in cases}
    assert Counter(i.label for i in items if i.source_path.endswith(("-s.png", "-l.png"))) == {
        "benign": PER_CLASS, "malignant": PER_CLASS}
    table = rows(root)
    for item in items:
        stem = Path(item.source_path).stem
        row = table[stem]
        assert item.source_path == f"Images/{stem}.png" and Path(item.path).is_file()
        assert (item.label, item.patient_id) == (row["Pathology"], row["Case"])
        assert item.findings == {"birads_category": row["BIRADS"]}
        assert item.extra["masks"] == [f"Masks/mask_{stem.removeprefix('bus_')}.png"]
        assert set(item.extra["folds"]) == {"5", "10"}
        assert item.extra["histology"] == row["Histology"]
        assert (item.organ, item.dataset, item.license) == ("breast", "bus_bra", "CC-BY-4.0")
        assert item.split_hint is None and item.report is None
    two_views = [i for i in items if i.patient_id == "3"]
    assert len(two_views) == 2 and two_views[0].findings == two_views[1].findings


def test_root_may_be_the_parent_folder(phantom: dict[str, Path]) -> None:
    inner, _ = read("bus_bra", phantom["bus_bra"])
    outer, _ = read("bus_bra", phantom["bus_bra"].parent)
    assert [i.id for i in inner] == [i.id for i in outer]


def test_spellings_and_missing_birads(tmp_path: Path) -> None:
    (tmp_path / "Images").mkdir()
    (tmp_path / "bus_data.csv").write_text(
        HEADER + "bus_0001-l,1,Fibroadenoma,Benign,4A,GE,10,10,left,[]\n"
        "bus_0002-s,2,Carcinoma,malignant,,GE,10,10,right,[]\n"
        "bus_0003-s,3,Cyst,benign,7,GE,10,10,right,[]\n")
    for n in ("0001-l", "0002-s", "0003-s"):
        (tmp_path / "Images" / f"bus_{n}.png").write_bytes(b"png")
    items, rejects = read("bus_bra", tmp_path)
    assert [(i.label, i.findings["birads_category"]) for i in items] == [("benign", "4a"), ("malignant", None)]
    assert items[0].extra["masks"] == [] and items[0].extra["folds"] == {}
    assert reasons(rejects) == {"Images/bus_0003-s.png": "BIRADS '7' in bus_data.csv is not a BI-RADS category"}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    root = broken_phantom["bus_bra"]
    items, rejects = read("bus_bra", root)
    m = 2 * PER_CLASS + 1
    why = reasons(rejects)
    assert why[f"Images/bus_{m:04d}-s.png"] == "image without its bus_data.csv row"
    assert why[f"Images/bus_{m + 1:04d}-s.png"] == "image listed in bus_data.csv is missing"
    assert why[f"Masks/mask_{m + 2:04d}-s.png"] == "mask without its image"
    assert why[f"Images/bus_{m + 3:04d}-s.png"].startswith("label outside vocabulary: Pathology 'unknown'")
    assert why["Images/Thumbs.db"].startswith("unknown extension")
    assert f"Images/bus_{m + 4:04d}-s.png" in {i.source_path for i in items}  # truncated: the decoder rejects it
    files = {p.relative_to(root).as_posix() for p in root.glob("*/*") if p.is_file()}
    accounted = {i.source_path for i in items} | {m for i in items for m in i.extra["masks"]} | set(why)
    assert files <= accounted


@pytest.mark.parametrize("make", ["missing", "empty", "wrong"])
def test_bad_root_names_layout_and_publisher(tmp_path: Path, make: str) -> None:
    root = tmp_path / "BUSBRA"
    if make != "missing":
        root.mkdir()
    if make == "wrong":
        (root / "Images").mkdir()
        (root / "Images" / "bus_0001-s.png").write_bytes(b"png")
    with pytest.raises(SourceError) as err:
        get_source_class("bus_bra")("bus_bra", root).check()
    message = str(err.value)
    assert "'bus_bra'" in message and "bus_data.csv" in message and "Gómez-Flores" in message
