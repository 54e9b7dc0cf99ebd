"""Phantom writers for fatty liver, liver fibrosis, COVID-BLUES, DICOM and NIfTI folders."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import scipy.io
from PIL import Image

from echocaptions.sources.fatty_liver import MAT_NAME, steatosis_grade
from echocaptions.synth import make_phantom
from echocaptions.synth.layout_covid_blues import CLINICAL_COLUMNS, N_FRAMES
from echocaptions.synth.layout_nifti_folder import N_SLICES

SIZE = (64, 96)
PER_CLASS = 2
LAYOUTS = ["fatty_liver", "liver_fibrosis", "covid_blues", "dicom", "nifti"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_phantom(tmp_path_factory.mktemp("mine"), per_class=PER_CLASS, seed=5, size=SIZE,
                        layouts=LAYOUTS)


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_roots(roots: dict[str, Path]) -> None:
    out = roots["dicom"].parent
    assert roots == {"fatty_liver": out / "fatty_liver", "liver_fibrosis": out / "liver_fibrosis",
                     "covid_blues": out / "COVID-BLUES", "dicom": out / "dicom", "nifti": out / "nifti"}


def test_fatty_liver_mat(roots: dict[str, Path]) -> None:
    assert [p.name for p in roots["fatty_liver"].iterdir()] == [MAT_NAME]
    raw = (roots["fatty_liver"] / MAT_NAME).read_bytes()
    assert raw.startswith(b"MATLAB 5.0 MAT-file")
    mat = scipy.io.loadmat(roots["fatty_liver"] / MAT_NAME)
    assert [k for k in mat if not k.startswith("__")] == ["data"]
    data = mat["data"]
    assert data.shape == (1, 2 * PER_CLASS)
    assert data.dtype.names == ("id", "class", "fat", "images")
    for i, patient in enumerate(data[0]):
        images = patient["images"]
        assert images.shape == (10, *SIZE) and images.dtype == np.uint8
        assert len({f.tobytes() for f in images}) == 10
        fat, cls = float(patient["fat"][0, 0]), int(patient["class"][0, 0])
        assert int(patient["id"][0, 0]) == i + 1
        assert cls == (steatosis_grade(fat) != "S0")


def test_liver_fibrosis_folders(roots: dict[str, Path]) -> None:
    root = roots["liver_fibrosis"]
    assert sorted(p.name for p in root.iterdir()) == ["F0", "F1", "F2", "F3", "F4"]
    for stage in root.iterdir():
        names = sorted(p.name for p in stage.iterdir())
        assert names == [f"{n}.jpg" for n in range(1, PER_CLASS + 1)]
        with Image.open(stage / names[0]) as im:
            assert (im.mode, im.size) == ("RGB", (SIZE[1], SIZE[0]))


def test_covid_blues_repository(roots: dict[str, Path]) -> None:
    import av

    root = roots["covid_blues"]
    videos = sorted(p.stem for p in (root / "lus_videos").iterdir())
    assert len(videos) == 4 * PER_CLASS + 1 and "patient_1_L1_2" in videos
    with open(root / "clinical_variables.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CLINICAL_COLUMNS
        clinical = {row["patient_id"]: row for row in reader}
    assert sorted(clinical, key=int) == [str(p) for p in range(1, 2 * PER_CLASS + 1)]
    with open(root / "severity.csv", newline="") as fh:
        severity = {row["video_file"]: row for row in csv.DictReader(fh)}
    assert sorted(severity) == videos
    for stem, row in severity.items():
        covid = clinical[stem.split("_")[1]]["cov_test"] == "1"
        if covid:
            assert row["A-lines"] == "no" and (row["B-lines"] == "yes" or row["Severity Score"] == "3.0")
        else:
            assert (row["A-lines"], row["B-lines"]) == ("yes", "no")
    with av.open(str(root / "lus_videos" / "patient_1_L1.mp4")) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(frames) == N_FRAMES and frames[0].shape == SIZE


def test_dicom_files(roots: dict[str, Path]) -> None:
    root = roots["dicom"]
    files = sorted(root.rglob("*.dcm"))
    assert len(files) == 3 * PER_CLASS
    kinds = set()
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.Modality == "US" and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert str(ds.PatientName) and ds.PatientID and ds.InstitutionName and ds.AccessionNumber
        pixels = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1))
        kinds.add((ds.PhotometricInterpretation, frames))
        expected = (frames, *SIZE) if frames > 1 else SIZE
        assert pixels.shape[: len(expected)] == expected and pixels.dtype == np.uint8
    assert kinds >= {("MONOCHROME2", 1), ("RGB", 1), ("MONOCHROME2", 6)}
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(files) - 1 and all((root / r["file"]).is_file() for r in rows)


def test_nifti_volumes(roots: dict[str, Path]) -> None:
    root = roots["nifti"] / "volumes"
    names = sorted(p.name for p in root.iterdir())
    assert names[:2] == ["case_001.nii.gz", "case_001_seg.nii.gz"] and len(names) == 3 * PER_CLASS + 1
    img = nib.load(root / "case_002.nii")
    assert img.shape == (SIZE[1], SIZE[0], N_SLICES) and img.get_data_dtype() == np.uint8
    data = np.asarray(img.dataobj)
    assert len({data[:, :, k].tobytes() for k in range(N_SLICES)}) == N_SLICES
    seg = np.asarray(nib.load(root / "case_001_seg.nii.gz").dataobj)
    assert set(np.unique(seg)) == {0, 1}


def test_nifti_reader_shows_slices_upright(roots: dict[str, Path]) -> None:
    nifti = pytest.importorskip("echocaptions.imaging.nifti")
    path = roots["nifti"] / "volumes" / "case_002.nii"
    data = np.asarray(nib.load(path).dataobj)
    shown = np.asarray(nifti.NiftiReader().read(path, 1))
    assert shown.shape == SIZE
    drawn = data[:, :, 1].T[::-1]
    assert np.corrcoef(shown.ravel().astype(float), drawn.ravel().astype(float))[0, 1] > 0.95


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    make_phantom(tmp_path / "a", per_class=1, seed=9, size=SIZE, broken=True, layouts=LAYOUTS)
    make_phantom(tmp_path / "b", per_class=1, seed=9, size=SIZE, broken=True, layouts=LAYOUTS)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    make_phantom(tmp_path / "c", per_class=1, seed=10, size=SIZE, broken=True, layouts=LAYOUTS)
    first, other = digests(tmp_path / "a"), digests(tmp_path / "c")
    changed = {path.split("/")[0] for path in first if other.get(path) != first[path]}
    assert changed >= {"fatty_liver", "liver_fibrosis", "COVID-BLUES", "dicom", "nifti"}
