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
from echocaptions.synth.layouts import _POCUS_VARIANTS

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


# --------------------------------------------------------------------------- options for real downloads

REAL = ["busi", "aul", "pocus", "covid_blues"]


@pytest.fixture(scope="module")
def plain_and_real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    plain = tmp_path_factory.mktemp("plain")
    real = tmp_path_factory.mktemp("real")
    make_phantom(plain, per_class=PER_CLASS, seed=5, size=SIZE, layouts=REAL)
    make_phantom(real, per_class=PER_CLASS, seed=5, size=SIZE, layouts=REAL, wrappers=True, variants=True,
                 lfs_pointers=True)
    return plain, real


def test_options_are_recorded_only_when_asked(plain_and_real: tuple[Path, Path]) -> None:
    import json

    plain, real = (json.loads((p / "PHANTOM.json").read_text()) for p in plain_and_real)
    assert set(plain) == {"organs", "per_class", "seed", "size", "broken", "layouts"}
    assert {k: real[k] for k in set(real) - set(plain)} == {"wrappers": True, "variants": True,
                                                            "lfs_pointers": True}


def test_wrappers_only_move_the_files(plain_and_real: tuple[Path, Path]) -> None:
    plain, real = plain_and_real
    assert digests(real / "BUSI" / "archive") == digests(plain / "BUSI")
    aul = digests(real / "AUL" / "Annotated_Ultrasound_Liver_Yiming")
    dropped = {path for path in digests(plain / "AUL") if path not in aul}
    assert dropped == {"Malignant/segmentation/liver/1.json", "Malignant/segmentation/outline/2.json"}
    assert aul == {k: v for k, v in digests(plain / "AUL").items() if k not in dropped}


def decoded(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)]).astype(float)


def test_pocus_variants_add_to_the_default(plain_and_real: tuple[Path, Path]) -> None:
    plain, real = (p / "covid19_ultrasound" / "data" for p in plain_and_real)
    before, after = digests(plain), digests(real)
    for path, digest in before.items():
        if path.endswith(".mp4"):  # libx264 bytes can differ between runs in one process; pixels cannot
            assert np.abs(decoded(plain / path) - decoded(real / path)).mean() < 0.5, path
        elif path != "dataset_metadata.csv":
            assert after[path] == digest, path
    old_csv = (plain / "dataset_metadata.csv").read_text()
    new_csv = (real / "dataset_metadata.csv").read_text()
    assert new_csv.startswith(old_csv)
    added = sorted(set(after) - set(before))
    assert added == sorted(f"pocus_videos/{folder}/{name}" for folder, name, _ in _POCUS_VARIANTS)
    with open(real / "dataset_metadata.csv", newline="") as fh:
        table = {row["Filename"]: row for row in csv.DictReader(fh)}
    for _, name, kind in _POCUS_VARIANTS:
        stem = name.rsplit(".", 1)[0].strip()
        assert (stem in table) == (kind != "none")
        if kind == "uncertain":
            row = table[stem]
            assert row["Current location"] == "pocus_videos/linear/label_uncertain" and row["Label"] == "COVID-19"
            assert {row[c] for c in ("Effusion", "Consolidations", "B-lines", "A-lines", "Healthy")} == {"0"}
    assert table["Cov-Butterfly-COVID Lung 2"]["Current location"] == "butterfly"


def test_pocus_variant_clips_show_what_was_drawn(plain_and_real: tuple[Path, Path]) -> None:
    import zlib

    from echocaptions.synth.bmode import draw
    from echocaptions.synth.layouts import _pocus_findings

    data = plain_and_real[1] / "covid19_ultrasound" / "data"
    labels = {"Cov": "covid", "Pneu": "pneumonia", "Reg": "normal", "Vir": "viral_pneumonia"}
    for folder, name, _ in _POCUS_VARIANTS:
        label = labels[name.split("_")[0]]
        rng = np.random.default_rng([5, zlib.crc32("/".join(("pocus", "variant", name)).encode())])
        drawn = draw("lung", label, _pocus_findings(label, rng), rng, SIZE, 6, masks=False).frames
        frames = decoded(data / "pocus_videos" / folder / name)
        assert len(frames) == len(drawn) == 6
        assert all(np.abs(f - d).mean() < 12 for f, d in zip(frames, drawn, strict=True)), name


def test_lfs_pointers_replace_only_the_videos(plain_and_real: tuple[Path, Path]) -> None:
    from echocaptions.synth.layout_covid_blues import lfs_pointer

    plain, real = (p / "COVID-BLUES" for p in plain_and_real)
    videos = sorted((plain / "lus_videos").iterdir())
    assert sorted(p.name for p in (real / "lus_videos").iterdir()) == [p.name for p in videos]
    for video in videos:
        text = (real / "lus_videos" / video.name).read_text()
        size = int(text.rsplit("size ", 1)[1])
        assert abs(size - video.stat().st_size) < 64  # the same clip (libx264 may differ by a few bytes)
        assert text.startswith("version https://git-lfs.github.com/spec/v1\noid sha256:") and len(text) < 200
    data = b"\x00\x00\x00\x18ftypmp42"
    assert lfs_pointer(data) == (f"version https://git-lfs.github.com/spec/v1\n"
                                 f"oid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n")
    assert "filter=lfs" in (real / ".gitattributes").read_text()
    assert {k: v for k, v in digests(real).items() if not k.startswith(("lus_videos/", ".git"))} == {
        k: v for k, v in digests(plain).items() if not k.startswith("lus_videos/")}


def test_real_options_are_byte_identical_across_runs(tmp_path: Path) -> None:
    options = {"per_class": 1, "seed": 9, "size": SIZE, "layouts": REAL, "broken": True, "wrappers": True,
               "variants": True, "lfs_pointers": True}
    make_phantom(tmp_path / "a", **options)
    make_phantom(tmp_path / "b", **options)
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert set(a) == set(b)
    # libx264 (.mp4 and the COVID-BLUES pointers naming them) can differ between runs in one process.
    x264 = {k for k in a if k.lower().endswith(".mp4")}
    assert len(x264) < len(a) // 2
    assert {k: v for k, v in a.items() if k not in x264} == {k: v for k, v in b.items() if k not in x264}
    mpeg = [k for k in a if k.endswith((".mov", ".avi", ".mpeg"))]
    assert len(mpeg) == sum(not n.lower().endswith(".mp4") for _, n, _ in _POCUS_VARIANTS)
