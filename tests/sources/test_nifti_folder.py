"""Generic NIfTI folder: header-only slice listing, labels CSV by file name."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from echocaptions.sources import SourceError, get_source_class
from echocaptions.synth.layout_nifti_folder import N_SLICES, save_nifti
from tests.sources.conftest import PER_CLASS, read, reasons
from tests.sources.test_fatty_liver import build_one

OPTIONS = {"labels_csv": "labels.csv", "organ": "liver"}


def labels(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "labels.csv", newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


def test_phantom_items(phantom: dict[str, Path], no_pixels: None) -> None:
    root = phantom["nifti"]
    items, rejects = read("nifti", root, OPTIONS)
    assert rejects == []
    volumes = Counter(i.source_path for i in items)
    assert len(volumes) == 3 * PER_CLASS and set(volumes.values()) == {N_SLICES}
    assert not any("_seg" in path for path in volumes)
    table = labels(root)
    for item in items:
        row = table.get(item.source_path)
        assert item.organ == "liver" and item.extra["axis"] == 2
        if row is None:
            assert (item.label, item.patient_id, item.findings) == (None, None, {})
            continue
        assert (item.label, item.patient_id) == (row["label"], row["patient_id"])
        assert item.findings == {k: row[k] for k in ("liver_steatosis", "liver_fibrosis") if row[k]}
    assert [i.frame for i in items[:N_SLICES]] == list(range(N_SLICES))
    assert sum(i.label is None for i in items) == N_SLICES


def test_sampling_and_axis(phantom: dict[str, Path]) -> None:
    items, _ = read("nifti", phantom["nifti"], {**OPTIONS, "every_n": 2, "max_slices": 2})
    assert {i.frame for i in items} == {0, 4}
    items, _ = read("nifti", phantom["nifti"], {**OPTIONS, "axis": 1, "max_slices": 3})
    shape = items[0].extra["shape"]
    assert [i.frame for i in items[:3]] == [0, round((shape[1] - 1) / 2), shape[1] - 1]
    items, _ = read("nifti", phantom["nifti"], {**OPTIONS, "skip_masks": False})
    assert "volumes/case_001_seg.nii.gz" in {i.source_path for i in items}


def test_broken_inputs_become_rejects(broken_phantom: dict[str, Path]) -> None:
    items, rejects = read("nifti", broken_phantom["nifti"], OPTIONS)
    why = reasons(rejects)
    k = 3 * PER_CLASS + 1
    assert why.pop(f"volumes/case_{k:03d}.nii.gz").startswith("unreadable NIfTI header")
    assert why == {"volumes/notes.bin": "unknown extension '.bin'",
                   "volumes/case_999.nii.gz": "labels CSV names a missing file"}
    series = [i for i in items if i.source_path == f"volumes/case_{k + 1:03d}.nii.gz"]
    assert len(series) == N_SLICES and series[0].extra["volumes"] == 2


def test_organ_needed_and_bad_root(phantom: dict[str, Path], tmp_path: Path) -> None:
    items, rejects = read("nifti", phantom["nifti"])
    assert items == [] and {r.reason for r in rejects} == {
        "no organ: set the source option organ or an organ column in labels_csv"}
    (tmp_path / "notes.txt").write_text("no volumes")
    for root in (tmp_path / "missing", tmp_path):
        with pytest.raises(SourceError, match="'nifti'"):
            get_source_class("nifti")("n", root).check()
    with pytest.raises(SourceError, match="option axis|less than or equal"):
        get_source_class("nifti")("n", tmp_path, {"axis": 3})


def test_2d_image_and_bare_file_names(tmp_path: Path) -> None:
    save_nifti(np.zeros((8, 6), np.uint8), tmp_path / "a" / "flat.nii")
    (tmp_path / "meta.csv").write_text("filename,label,organ,patient_id\nflat.nii,Normal,thyroid,7\n")
    (item,), rejects = read("nifti", tmp_path, {"labels_csv": "meta.csv"})
    assert rejects == []
    assert (item.frame, item.label, item.organ, item.patient_id) == (None, "normal", "thyroid", "7")
    assert nib.load(tmp_path / "a" / "flat.nii").shape == (8, 6)


def test_build_opens_with_datasets(phantom: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("echocaptions.imaging.nifti")
    stats, ds = build_one("nifti", phantom["nifti"], tmp_path,
                          ", options: {organ: liver, labels_csv: labels.csv}")
    assert stats["rows"] > 0
    assert sum(len(part) for part in ds.values()) == stats["rows"]
