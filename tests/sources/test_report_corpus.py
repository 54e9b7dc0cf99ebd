"""Report corpus (R2Gen annotation.json): one item per image, report and uid per record."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from echocaptions.sources import SourceError, get_source_class
from tests.sources.conftest import PER_CLASS, read, reasons


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["report_corpus"]
    items, rejects = read("report_corpus", root)
    assert rejects == []
    annotation = json.loads((root / "annotation.json").read_text())
    records = [r for split in annotation.values() for r in split]
    assert len(records) == 3 * 3 * PER_CLASS
    assert len(items) == sum(len(r["image_path"]) for r in records)
    assert Counter(i.organ for i in items).keys() == {"breast", "thyroid", "liver"}
    assert {i.split_hint for i in items} <= {"train", "validation", "test"}
    by_uid = {str(r["uid"]): r for r in records}
    for item in items:
        record = by_uid[item.study_id]
        assert item.report == record["finding"] and "IMPRESSION:" in item.report
        assert item.label == record["labels"][0]
        assert item.patient_id is None
        assert item.source_path in record["image_path"]
    studies = Counter(i.study_id for i in items)
    assert max(studies.values()) == 2


def test_r2gen_keys_and_single_organ_option(tmp_path: Path) -> None:
    (tmp_path / "images" / "CXR1").mkdir(parents=True)
    (tmp_path / "images" / "CXR1" / "0.png").write_bytes(b"png")
    annotation = {"val": [{"id": "CXR1", "report": "Normal thyroid.", "image_path": ["CXR1/0.png"],
                           "split": "val"}]}
    (tmp_path / "annotation.json").write_text(json.dumps(annotation))
    items, rejects = read("report_corpus", tmp_path, {"images": "images", "organ": "thyroid"})
    assert rejects == []
    (item,) = items
    assert (item.organ, item.study_id, item.report, item.split_hint) == (
        "thyroid", "CXR1", "Normal thyroid.", "validation")
    assert item.source_path == "images/CXR1/0.png" and item.label is None


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("report_corpus", broken_phantom["report_corpus"])
    why = reasons(rejects)
    assert why["breast/9001/0.png"] == "image listed in annotation.json is missing"
    assert why["kidney/9002/0.png"].startswith("organ outside vocabulary")
    assert why["breast/orphan/0.png"] == "not listed in annotation.json"
    assert "breast/9003/0.png" in {i.source_path for i in items}


def test_bad_root_names_layout_and_publisher(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "reports.json").write_text("{}")
    for root in (tmp_path / "missing", tmp_path / "corpus"):
        with pytest.raises(SourceError) as err:
            get_source_class("report_corpus")("reports", root).check()
        message = str(err.value)
        assert "'report_corpus'" in message and "annotation.json" in message and "R2Gen" in message


def test_annotation_that_does_not_parse(tmp_path: Path) -> None:
    (tmp_path / "annotation.json").write_text("{not json")
    with pytest.raises(SourceError, match="not valid JSON"):
        read("report_corpus", tmp_path)
