"""Generic DICOM folder: header-only listing, pseudonymised ids, nothing identifying in items."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pydicom
import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.dicom_folder import DEFAULT_SALT, salted_hash, sample_indices
from echocaptions.synth.layout_dicom_folder import IDENTIFIERS
from tests.sources.conftest import PER_CLASS, read, reasons
from tests.sources.test_fatty_liver import build_one

OPTIONS = {"organ": "breast", "labels_csv": "labels.csv"}


def headers(root: Path) -> dict[str, pydicom.Dataset]:
    return {p.relative_to(root).as_posix(): pydicom.dcmread(p, stop_before_pixels=True)
            for p in sorted(root.rglob("*.dcm"))}


def identifiers(root: Path) -> set[str]:
    """Every identifying value the phantom wrote, with the parts of each person name."""
    found: set[str] = set()
    for ds in headers(root).values():
        for tag in IDENTIFIERS:
            value = str(ds.get(tag) or "")
            found |= {value, *value.split("^")} if value else set()
    return {v for v in found if len(v) >= 4}


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["dicom"]
    items, rejects = read("dicom", root, OPTIONS)
    assert rejects == []
    files = {i.path for i in items}
    assert len(files) == 3 * PER_CLASS
    multi = [i for i in items if i.extra["number_of_frames"] > 1]
    assert sorted(i.frame for i in multi) == list(range(6))
    assert all(i.frame is None for i in items if i.extra["number_of_frames"] == 1)
    assert Counter(i.label for i in items if i.frame in (None, 0)) == {
        "benign": PER_CLASS - 1, "malignant": PER_CLASS, "normal": PER_CLASS, None: 1}
    assert {i.organ for i in items} == {"breast"}
    assert {i.extra["photometric_interpretation"] for i in items} == {"MONOCHROME2", "RGB"}
    assert [i.source_path for i in items if i.extra.get("burned_in_annotation")] == ["series_1/IM_0002.dcm"]
    raw = {str(ds.PatientID): str(ds.StudyInstanceUID) for ds in headers(root).values()}
    assert {i.patient_id for i in items} == {salted_hash(p, DEFAULT_SALT) for p in raw}
    assert {i.study_id for i in items} == {salted_hash(s, DEFAULT_SALT) for s in raw.values()}
    benign = next(i for i in items if i.label == "benign")
    assert set(benign.findings) <= {"birads_tissue", "birads_shape", "birads_margin", "birads_echo_pattern"}
    assert benign.findings["birads_shape"] in ("oval", "round")


def test_no_identifier_reaches_an_item(phantom: dict[str, Path]) -> None:
    root = phantom["dicom"]
    secrets = identifiers(root)
    assert len(secrets) > 20 and "Saint Phantom General Hospital" in secrets
    items, _ = read("dicom", root, OPTIONS)
    for item in items:
        published = item.to_dict()
        local = published.pop("path")
        text = json.dumps(published)
        assert not [s for s in secrets if s in text], item.source_path
        assert not (set(published["extra"]) - {
            "modality", "manufacturer_model", "photometric_interpretation", "number_of_frames",
            "rows", "columns", "transfer_syntax_uid", "burned_in_annotation", "not_ultrasound"})
        if any(s in local for s in secrets):
            assert published["source_path"].startswith("pseudonymised/")
    assert sum(i.source_path.startswith("pseudonymised/") for i in items) == 1


def test_salt_changes_pseudonyms(phantom: dict[str, Path]) -> None:
    default, _ = read("dicom", phantom["dicom"], OPTIONS)
    salted, _ = read("dicom", phantom["dicom"], {**OPTIONS, "salt": "my-project"})
    assert [i.patient_id == j.patient_id for i, j in zip(default, salted, strict=True)] == [False] * len(default)
    assert len({i.patient_id for i in salted}) == len({i.patient_id for i in default})


def test_frame_sampling(phantom: dict[str, Path]) -> None:
    items, _ = read("dicom", phantom["dicom"], {**OPTIONS, "every_n": 2, "max_frames": 2})
    assert [i.frame for i in items if i.extra["number_of_frames"] > 1] == [0, 4]
    assert sample_indices(10, 1, 3) == [0, 4, 9] and sample_indices(5, 2) == [0, 2, 4]


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("dicom", broken_phantom["dicom"], OPTIONS)
    assert reasons(rejects) == {
        "series_1/SR_0001.dcm": "no pixel data",
        "series_1/garbage.bin": "not DICOM",
        "series_9/IM_0999.dcm": "labels CSV names a missing file",
    }
    (ct,) = [i for i in items if i.extra["modality"] != "US"]
    assert ct.extra["modality"] == "CT" and ct.extra["not_ultrasound"] and ct.label == "benign"


def test_csv_keyed_by_sop_instance_uid(phantom: dict[str, Path], tmp_path: Path) -> None:
    root = phantom["dicom"]
    uids = {rel: str(ds.SOPInstanceUID) for rel, ds in headers(root).items()}
    lines = ["SOPInstanceUID,label,organ,report,birads_shape,tirads_shape"]
    lines.append(f"{uids['series_1/IM_0001.dcm']},Malignant,breast,Irregular mass.,irregular,taller_than_wide")
    lines.append("1.2.3.4.5.6.7.8.9,benign,breast,,,")
    (tmp_path / "uids.csv").write_text("\n".join(lines) + "\n")
    items, rejects = read("dicom", root, {"labels_csv": str(tmp_path / "uids.csv")})
    (item,) = items
    assert item.source_path == "series_1/IM_0001.dcm"
    assert (item.label, item.report, item.findings) == ("malignant", "Irregular mass.", {"birads_shape": "irregular"})
    why = reasons(rejects)
    assert why["uids.csv line 3"] == "labels CSV row matches no DICOM file (by SOPInstanceUID)"
    no_organ = [p for p, r in why.items() if r.startswith("no organ")]
    assert len(no_organ) == 3 * PER_CLASS - 1
    assert not [r for r in rejects if "1.2.3.4.5.6.7.8.9" in json.dumps(r.to_dict())]


def test_bad_root_and_options(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="'dicom'"):
        get_source_class("dicom")("d", tmp_path / "missing").check()
    (tmp_path / "x.dcm").write_bytes(b"")
    with pytest.raises(SourceError, match="labels_csv"):
        get_source_class("dicom")("d", tmp_path, {"labels_csv": "nope.csv"}).check()
    with pytest.raises(SourceError, match="kidney"):
        get_source_class("dicom")("d", tmp_path, {"organ": "kidney"})


def test_build_opens_with_datasets(phantom: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("echocaptions.imaging.dicom")
    stats, ds = build_one("dicom", phantom["dicom"], tmp_path,
                          ", options: {organ: breast, labels_csv: labels.csv}")
    assert stats["rows"] > 0
    assert sum(len(part) for part in ds.values()) == stats["rows"]
