"""Stanford thyroid cine clips: frames sampled per clip from one HDF5, read one frame at a time.

The metadata is written in the real file's encodings: a numeric diagnosis (``0`` / ``1``, some
``0.0`` / ``1.0``), ACR TI-RADS points in the ``ti-rads_*`` columns, a numeric level and
``annot_id`` values with their trailing underscore.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from echocaptions.imaging.readers import ImageReadError, reader_for
from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.stanford_thyroid import Hdf5FrameReader, UnknownEncoding, map_tirads
from echocaptions.synth.layout_stanford_thyroid import CLIP_FRAMES
from tests.sources.conftest import PER_CLASS, read, reasons

# What each ACR score states, as the dataset codes it (None: a score two descriptors share).
POINT_CODES: dict[str, tuple[str, dict[int, str | None]]] = {
    "ti-rads_composition": ("tirads_composition", {0: None, 1: "mixed", 2: "solid"}),
    "ti-rads_echogenicity": ("tirads_echogenicity",
                             {0: "anechoic", 1: None, 2: "hypoechoic", 3: "very_hypoechoic"}),
    "ti-rads_shape": ("tirads_shape", {0: "wider_than_tall", 3: "taller_than_wide"}),
    "ti-rads_margin": ("tirads_margin", {0: None, 2: None, 3: "extrathyroidal_extension"}),
    "ti-rads_echogenicfoci": ("tirads_foci",
                              {0: "none", 1: "macrocalcifications", 2: "peripheral", 3: "punctate"}),
}
COLUMNS = ("annot_id", "age", "sex", "location", "size_x", "size_y", "size_z", *POINT_CODES,
           "ti-rads_level", "histopath_diagnosis")


def expected_from(row: dict[str, str]) -> tuple[str, dict[str, str | None], set[str]]:
    """Label, findings and the columns left unset, computed from one metadata row."""
    label = {0: "benign", 1: "malignant"}[int(float(row["histopath_diagnosis"]))]
    findings: dict[str, str | None] = {}
    unset = set()
    for column, (key, codes) in POINT_CODES.items():
        findings[key] = codes[int(float(row[column]))]
        if findings[key] is None:
            unset.add(column)
    findings["tirads_category"] = str(int(float(row["ti-rads_level"])))
    return label, findings, unset


def write_tree(root: Path, clips: dict[str, int], rows: list[dict[str, str]]) -> Path:
    """A small real-layout tree: ``clips`` maps an HDF5 annot_id to its number of frames."""
    root.mkdir(parents=True, exist_ok=True)
    annot = [a.encode() for a, n in clips.items() for _ in range(n)]
    frame_num = [f for n in clips.values() for f in range(n)]
    with h5py.File(root / "dataset.hdf5", "w") as f:
        f["image"] = np.zeros((len(annot), 4, 6), np.uint8)
        f["mask"] = np.zeros((len(annot), 4, 6), np.uint8)
        f["annot_id"] = np.array(annot, dtype="S8")
        f["frame_num"] = np.array(frame_num, np.int32)
    with open(root / "metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return root


def row(annot_id: str, **values: str) -> dict[str, str]:
    base = {"annot_id": annot_id, "age": "50", "sex": "Female", "location": "Right", "size_x": "1.2",
            "size_y": "0.8", "size_z": "1.0", "ti-rads_composition": "2", "ti-rads_echogenicity": "2",
            "ti-rads_shape": "0", "ti-rads_margin": "0", "ti-rads_echogenicfoci": "0",
            "ti-rads_level": "4", "histopath_diagnosis": "0"}
    return base | values


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["stanford_thyroid"]
    items, rejects = read("stanford_thyroid", root)
    assert rejects == []
    per_clip = len(range(0, CLIP_FRAMES, 10))
    assert len(items) == 2 * PER_CLASS * per_clip
    with open(root / "metadata.csv", newline="") as fh:
        meta = {r["annot_id"]: r for r in csv.DictReader(fh)}
    assert all(a.endswith("_") for a in meta)
    written = {r["histopath_diagnosis"] for r in meta.values()}
    assert written & {"0", "1"} and written & {"0.0", "1.0"}  # both spellings of the real file
    with h5py.File(root / "dataset.hdf5", "r") as f:
        annot = [a.decode() for a in f["annot_id"][()]]
        frame_num = f["frame_num"][()]
    for item in items:
        clip = annot[item.frame]
        assert (item.study_id, item.patient_id) == (clip, None)
        assert item.extra["frame_num"] == frame_num[item.frame] and item.extra["frame_num"] % 10 == 0
        label, findings, unset = expected_from(meta[clip])
        assert (item.label, item.findings) == (label, findings)
        assert set(item.extra["unmapped"]) == unset
        assert item.extra["sex"] == {"Female": "F", "Male": "M"}[meta[clip]["sex"]]
        assert item.extra["size_cm"] == [float(meta[clip][k]) for k in ("size_x", "size_y", "size_z")]
        assert item.source_path == "dataset.hdf5" and Path(item.path) == (root / "dataset.hdf5").resolve()
        assert item.license == "Stanford University Dataset Research Use Agreement"
    assert len({i.id for i in items}) == len(items)
    assert Counter(i.study_id for i in items) == {a: per_clip for a in meta}  # a nodule's frames together
    assert {i.label for i in items} == {"benign", "malignant"}


@pytest.mark.parametrize("options,expected", [
    ({"every_n": 3, "max_per_clip": 2}, [0, 3]),
    ({"every_n": 1, "max_per_clip": 100}, list(range(CLIP_FRAMES))),
])
def test_frame_sampling_options(phantom: dict[str, Path], options: dict, expected: list[int]) -> None:
    items, _ = read("stanford_thyroid", phantom["stanford_thyroid"], options)
    first = items[0].study_id
    assert [i.extra["frame_num"] for i in items if i.study_id == first] == expected


def test_bad_options_are_source_errors(phantom: dict[str, Path]) -> None:
    with pytest.raises(SourceError, match="every_n"):
        get_source_class("stanford_thyroid")("s", phantom["stanford_thyroid"], {"every_n": 0})
    with pytest.raises(SourceError, match="allowed options"):
        get_source_class("stanford_thyroid")("s", phantom["stanford_thyroid"], {"fps": 2})


def test_reader_slices_one_frame(phantom: dict[str, Path]) -> None:
    path = phantom["stanford_thyroid"] / "dataset.hdf5"
    reader = reader_for(path)
    assert isinstance(reader, Hdf5FrameReader)
    with h5py.File(path, "r") as f:
        expected = f["image"][13]
        count = f["image"].shape[0]
    img = reader.read(path, 13)
    assert img.mode == "L" and np.array_equal(np.asarray(img), expected)
    with pytest.raises(ImageReadError, match="out of range"):
        reader.read(path, count)


def test_ti_rads_words_and_points() -> None:
    findings, unmapped = map_tirads({
        "ti-rads_composition": "Solid or almost completely solid", "ti-rads_echogenicity": "3",
        "ti-rads_shape": "Taller-than-wide", "ti-rads_margin": "lobulated or irregular",
        "ti-rads_echogenicfoci": "macrocalcifications, punctate echogenic foci", "ti-rads_level": "TR5",
    })
    assert findings == {"tirads_composition": "solid", "tirads_echogenicity": "very_hypoechoic",
                        "tirads_shape": "taller_than_wide", "tirads_margin": None,
                        "tirads_foci": "punctate", "tirads_category": "5"}
    assert unmapped == {"ti-rads_margin": "lobulated or irregular"}
    findings, unmapped = map_tirads({"ti-rads_composition": "0", "ti-rads_echogenicity": "1.0",
                                     "ti-rads_shape": "0", "ti-rads_margin": "", "ti-rads_level": "4"})
    assert findings["tirads_composition"] is None and findings["tirads_echogenicity"] is None
    assert findings["tirads_shape"] == "wider_than_tall" and findings["tirads_margin"] is None
    assert findings["tirads_category"] == "4" and set(unmapped) == {"ti-rads_composition", "ti-rads_echogenicity"}


@pytest.mark.parametrize("column", list(POINT_CODES))
def test_every_acr_score_maps_as_the_points_allow(column: str) -> None:
    key, codes = POINT_CODES[column]
    for points, code in codes.items():
        for written in (str(points), f"{points}.0"):
            findings, unmapped = map_tirads({column: written})
            assert findings[key] == code, (column, written)
            assert unmapped == ({} if code else {column: written})


@pytest.mark.parametrize("level,expected", [("1", "1"), ("5", "5"), ("4.0", "4"), ("TR3", "3"), ("", None)])
def test_level_is_the_category(level: str, expected: str | None) -> None:
    assert map_tirads({"ti-rads_level": level})[0]["tirads_category"] == expected


def test_unknown_encodings_name_column_value_and_allowed() -> None:
    with pytest.raises(UnknownEncoding) as err:
        map_tirads({"ti-rads_echogenicfoci": "7", "ti-rads_composition": "gelatinous",
                    "ti-rads_shape": "1", "ti-rads_level": "0"})
    problems = {column: (value, allowed) for column, value, allowed in err.value.problems}
    assert set(problems) == {"ti-rads_echogenicfoci", "ti-rads_composition", "ti-rads_shape", "ti-rads_level"}
    assert problems["ti-rads_echogenicfoci"][0] == "7" and "0, 1, 2, 3" in problems["ti-rads_echogenicfoci"][1]
    assert problems["ti-rads_shape"][1].startswith("ACR points 0, 3")
    assert "1, 2, 3, 4, 5" in problems["ti-rads_level"][1]


def test_real_encodings_in_a_small_tree(tmp_path: Path) -> None:
    rows = [
        row("1_", histopath_diagnosis="1.0", **{"ti-rads_level": "5.0", "ti-rads_echogenicfoci": "3"}),
        row("2_", histopath_diagnosis="0", sex="Male", **{"ti-rads_composition": "0"}),
        row("3", histopath_diagnosis="Malignant", **{"ti-rads_margin": "3"}),  # CSV id without "_"
        row("4_", histopath_diagnosis="", **{"ti-rads_shape": ""}),
        row("5_", histopath_diagnosis="2"),
        row("6_", **{"ti-rads_echogenicfoci": "7", "ti-rads_composition": "gelatinous"}),
        row("2_", histopath_diagnosis="1"),  # a repeated row
        row("9_"),  # no frames
    ]
    root = write_tree(tmp_path / "stanford", {"1_": 3, "2_": 2, "3_": 1, "4_": 1, "5_": 2, "6_": 1, "7_": 1},
                      rows)
    items, rejects = read("stanford_thyroid", root, {"every_n": 1})
    by_clip = {i.study_id: i for i in items}
    assert Counter(i.study_id for i in items) == {"1_": 3, "2_": 2, "3_": 1, "4_": 1}
    assert all(i.patient_id is None for i in items)
    assert by_clip["1_"].label == "malignant" and by_clip["1_"].findings["tirads_category"] == "5"
    assert by_clip["1_"].findings["tirads_foci"] == "punctate"
    assert by_clip["2_"].label == "benign" and by_clip["2_"].findings["tirads_composition"] is None
    assert by_clip["2_"].extra["unmapped"] == {"ti-rads_composition": "0", "ti-rads_margin": "0"}
    assert by_clip["2_"].extra["sex"] == "M" and by_clip["2_"].extra["size_cm"] == [1.2, 0.8, 1.0]
    assert by_clip["3_"].label == "malignant"
    assert by_clip["3_"].findings["tirads_margin"] == "extrathyroidal_extension"
    assert by_clip["4_"].label is None and by_clip["4_"].findings["tirads_shape"] is None
    why = reasons(rejects)
    assert why["dataset.hdf5#annot_id=5_"] == (
        "label outside vocabulary: histopath_diagnosis '2' in metadata.csv is not one of "
        "0 (benign), 1 (malignant), benign or malignant")
    six = why["dataset.hdf5#annot_id=6_"]
    assert six.startswith("unknown encoding: ") and "metadata.csv" in six
    assert "ti-rads_echogenicfoci '7'" in six and "ACR points 0, 1, 2, 3" in six
    assert "ti-rads_composition 'gelatinous'" in six and "ACR points 0, 1, 2 or one of" in six
    assert why["dataset.hdf5#annot_id=7_"] == "clip without its metadata.csv row"
    assert why["metadata.csv#annot_id=9_"] == "metadata.csv row without frames in dataset.hdf5"
    assert "repeats annot_id '2_'" in why["metadata.csv#annot_id=2_"]
    assert len(rejects) == 5
    assert len(items) + len(rejects) == 3 + 2 + 1 + 1 + 5  # every sampled frame or reject accounted


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("stanford_thyroid", broken_phantom["stanford_thyroid"])
    why = reasons(rejects)
    assert set(why) == {"dataset.hdf5#annot_id=900_", "dataset.hdf5#annot_id=901_",
                        "dataset.hdf5#annot_id=903_", "metadata.csv#annot_id=902_"}
    assert why["dataset.hdf5#annot_id=900_"] == "clip without its metadata.csv row"
    assert why["dataset.hdf5#annot_id=901_"] == (
        "label outside vocabulary: histopath_diagnosis '2' in metadata.csv is not one of "
        "0 (benign), 1 (malignant), benign or malignant")
    assert why["dataset.hdf5#annot_id=903_"].startswith(
        "unknown encoding: ti-rads_echogenicfoci '7' in metadata.csv is not one of ACR points 0, 1, 2, 3")
    assert why["metadata.csv#annot_id=902_"] == "metadata.csv row without frames in dataset.hdf5"
    assert not {i.study_id for i in items} & {"900_", "901_", "903_"}


def test_class_attributes_say_where_and_what() -> None:
    cls = get_source_class("stanford_thyroid")
    assert "Stanford AIMI" in cls.download and "Thyroid Ultrasound Cine-clip" in cls.download
    assert cls.folder.startswith("StanfordThyroidCine")
    assert any("dataset.hdf5" in r for r in cls.required) and any("metadata.csv" in r for r in cls.required)
    assert any("0.0" in q for q in cls.quirks) and any("points" in q for q in cls.quirks)
    assert cls.grouping_note and "192 nodules from 167 patients" in cls.grouping_note


def test_unexpected_hdf5_keys_are_listed(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "dataset.hdf5", "w") as f:
        f["frames"] = np.zeros((2, 4, 4), np.uint8)
        f["labels"] = np.zeros(2, np.int8)
    (tmp_path / "metadata.csv").write_text("annot_id,histopath_diagnosis\n1_,0\n")
    with pytest.raises(SourceError, match=r"keys \['frames', 'labels'\]"):
        get_source_class("stanford_thyroid")("s", tmp_path).check()
    (tmp_path / "dataset.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(SourceError, match="cannot open"):
        get_source_class("stanford_thyroid")("s", tmp_path).check()


@pytest.mark.parametrize("make", ["missing", "empty", "no_hdf5"])
def test_bad_root_names_layout_and_publisher(tmp_path: Path, make: str) -> None:
    root = tmp_path / "stanford"
    if make != "missing":
        root.mkdir()
    if make == "no_hdf5":
        (root / "metadata.csv").write_text("annot_id\n")
    with pytest.raises(SourceError) as err:
        get_source_class("stanford_thyroid")("s", root).check()
    message = str(err.value)
    assert "'stanford_thyroid'" in message and "dataset.hdf5" in message and "Stanford AIMI" in message
