"""BUS-BRA: bus_data.csv rows give pathology, BI-RADS and patient; masks ride along."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons

HEADER = "ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX\n"


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
        assert item.extra["side"] == {"l": "left", "r": "right", "s": "single"}[stem[-1]] == row["Side"]
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
        HEADER + "bus_0001-l,1,Fibroadenoma,Benign,4A,GE,10,10,Left,[]\n"
        "bus_0002-s,2,Carcinoma,malignant,,GE,10,10,single,[]\n"
        "bus_0003-s,3,Cyst,benign,7,GE,10,10,single,[]\n"
        "bus_0004-s,4,Cyst,benign,2,GE,10,10,both,[]\n"
        "bus_0005-s,,Cyst,benign,2,GE,10,10,single,[]\n"
        ",6,Cyst,benign,2,GE,10,10,single,[]\n"
        "bus_0001-l,1,Cyst,malignant,5,GE,10,10,left,[]\n")
    for n in ("0001-l", "0002-s", "0003-s", "0004-s", "0005-s"):
        (tmp_path / "Images" / f"bus_{n}.png").write_bytes(b"png")
    items, rejects = read("bus_bra", tmp_path)
    assert [(i.label, i.findings["birads_category"], i.extra["side"]) for i in items] == [
        ("benign", "4a", "left"), ("malignant", None, "single")]
    assert items[0].extra["masks"] == [] and items[0].extra["folds"] == {}
    assert reasons(rejects) == {
        "Images/bus_0003-s.png": "BI-RADS outside vocabulary: BIRADS '7' in bus_data.csv is not one of "
                                 "['0', '1', '2', '3', '4', '4a', '4b', '4c', '5', '6']",
        "Images/bus_0004-s.png": "side outside vocabulary: Side 'both' in bus_data.csv is not one of "
                                 "['left', 'right', 'single']",
        "Images/bus_0005-s.png": "no patient: Case is empty in bus_data.csv",
        "bus_data.csv": "repeated ID: line 8 of bus_data.csv repeats ID 'bus_0001-l'",
    }
    assert [r.reason for r in rejects if r.path == "bus_data.csv"] == [
        "row without ID: line 7 of bus_data.csv has an empty ID",
        "repeated ID: line 8 of bus_data.csv repeats ID 'bus_0001-l'"]


def test_missing_columns_name_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "Images").mkdir()
    (tmp_path / "bus_data.csv").write_text("ID,Pathology\nbus_0001-s,benign\n")
    source = get_source_class("bus_bra")("bus_bra", tmp_path)
    source.check()
    with pytest.raises(SourceError, match=r"lacks columns \['Case'\]; columns found: \['ID', 'Pathology'\]"):
        list(source.items())


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
