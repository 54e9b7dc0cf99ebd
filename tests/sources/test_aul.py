"""AUL: class folders with image/ and segmentation/ polygons, no patient ids."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("aul", phantom["aul"])
    assert rejects == []
    assert Counter(i.label for i in items) == {"normal": PER_CLASS, "benign": PER_CLASS, "malignant": PER_CLASS}
    assert all(i.organ == "liver" and i.patient_id is None and i.license == "CC-BY-4.0" for i in items)
    by_path = {i.source_path: i for i in items}
    assert by_path["Benign/image/1.jpg"].findings == {"liver_lesion": "mass"}
    assert by_path["Normal/image/1.jpg"].findings == {"liver_lesion": "none"}
    assert by_path["Malignant/image/2.jpg"].extra["segmentation"] == {
        k: f"Malignant/segmentation/{k}/2.json" for k in ("liver", "mass", "outline")}
    assert set(by_path["Normal/image/1.jpg"].extra["segmentation"]) == {"liver", "outline"}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("aul", broken_phantom["aul"])
    k = PER_CLASS + 1
    why = reasons(rejects)
    assert why[f"Malignant/segmentation/mass/{k}.json"] == "mass segmentation without its image"
    assert "label outside vocabulary" in why["Cyst/image/1.jpg"]
    assert why["Benign/image/notes.txt"].startswith("unknown extension")
    assert f"Benign/image/{k}.jpg" in {i.source_path for i in items}
    files = [p for p in broken_phantom["aul"].rglob("*") if p.is_file()]
    segs = sum(len(i.extra["segmentation"]) for i in items)
    assert len(items) + len(rejects) + segs == len(files)


def test_empty_image_folder_is_a_reject(tmp_path: Path) -> None:
    (tmp_path / "Benign" / "image").mkdir(parents=True)
    (tmp_path / "Normal" / "image").mkdir(parents=True)
    (tmp_path / "Normal" / "image" / "1.jpg").write_bytes(b"jpg")
    (tmp_path / "Benign" / "segmentation" / "liver").mkdir(parents=True)
    (tmp_path / "Benign" / "segmentation" / "liver" / "1.json").write_text("[[0, 0], [1, 1]]")
    items, rejects = read("aul", tmp_path)
    assert [i.source_path for i in items] == ["Normal/image/1.jpg"]
    assert reasons(rejects) == {
        "Benign/image": "empty folder",
        "Benign/segmentation/liver/1.json": "liver segmentation without its image",
    }


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "AUL" / "Benign").mkdir(parents=True)
    (tmp_path / "AUL" / "Benign" / "1.jpg").write_bytes(b"jpg")
    for root in (tmp_path / "missing", tmp_path / "AUL"):
        with pytest.raises(SourceError) as err:
            get_source_class("aul")("aul", root).check()
        message = str(err.value)
        assert "'aul'" in message and "Xu" in message and "7272660" in message


def test_download_notes_match_the_zenodo_record() -> None:
    from echocaptions.recipe import load_recipe

    cls = get_source_class("aul")
    assert "Zenodo record 7272660" in cls.download and "zenodo.org/records/7272660" in cls.download
    paths = {s.path for name in ("liver", "multiorgan") for s in load_recipe(name).sources if s.layout == "aul"}
    assert paths == {cls.folder}
    assert any("Annotated_Ultrasound_Liver_Yiming" in q for q in cls.quirks)
    assert any("Malignant" in q and "liver" in q and "outline" in q for q in cls.quirks)
    assert any("segmentation/mass" in o for o in cls.optional) and cls.grouping_note
