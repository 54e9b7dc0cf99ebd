"""Stanford thyroid cine clips: frames sampled per clip from one HDF5, read one frame at a time."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

from echocaptions.imaging.readers import ImageReadError, reader_for
from echocaptions.sources import SourceError, get_source_class
from echocaptions.sources.stanford_thyroid import Hdf5FrameReader, map_tirads
from echocaptions.synth.layout_stanford_thyroid import CLIP_FRAMES
from tests.sources.conftest import PER_CLASS, read, reasons


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["stanford_thyroid"]
    items, rejects = read("stanford_thyroid", root)
    assert rejects == []
    per_clip = len(range(0, CLIP_FRAMES, 10))
    assert len(items) == 2 * PER_CLASS * per_clip
    with open(root / "metadata.csv", newline="") as fh:
        meta = {r["annot_id"]: r for r in csv.DictReader(fh)}
    with h5py.File(root / "dataset.hdf5", "r") as f:
        annot = [a.decode() for a in f["annot_id"][()]]
        frame_num = f["frame_num"][()]
    for item in items:
        clip = annot[item.frame]
        assert (item.study_id, item.patient_id) == (clip, clip.rstrip("_"))
        assert item.extra["frame_num"] == frame_num[item.frame] and item.extra["frame_num"] % 10 == 0
        assert item.label == meta[clip]["histopath_diagnosis"].lower()
        assert item.findings["tirads_category"] == meta[clip]["ti-rads_level"]
        assert all(v is not None for v in item.findings.values()) and item.extra["unmapped"] == {}
        assert item.source_path == "dataset.hdf5" and Path(item.path) == (root / "dataset.hdf5").resolve()
        assert item.license == "Stanford University Dataset Research Use Agreement"
    assert len({i.id for i in items}) == len(items)
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


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path], no_pixels: None) -> None:
    items, rejects = read("stanford_thyroid", broken_phantom["stanford_thyroid"])
    why = reasons(rejects)
    assert why == {
        "dataset.hdf5#annot_id=900_": "clip without its metadata.csv row",
        "dataset.hdf5#annot_id=901_": "label outside vocabulary: histopath_diagnosis 'Indeterminate' in "
                                      "metadata.csv is not one of ['benign', 'malignant']",
        "metadata.csv#annot_id=902_": "metadata.csv row without frames in dataset.hdf5",
    }
    assert not {i.study_id for i in items} & {"900_", "901_"}


def test_unexpected_hdf5_keys_are_listed(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "dataset.hdf5", "w") as f:
        f["frames"] = np.zeros((2, 4, 4), np.uint8)
        f["labels"] = np.zeros(2, np.int8)
    (tmp_path / "metadata.csv").write_text("annot_id,histopath_diagnosis\n1_,Benign\n")
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
