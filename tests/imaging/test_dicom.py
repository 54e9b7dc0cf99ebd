"""DicomReader on every DICOM with pixel data that pydicom and pydicom-data ship."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.examples
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.pixels.processing import apply_windowing
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from echocaptions.imaging import dicom as dicom_module
from echocaptions.imaging.dicom import DicomReader, decoder_install_hint, dicom_frame_count
from echocaptions.imaging.readers import ImageReadError, reader_for

READER = DicomReader()

US_FILES = [
    "examples_ybr_color.dcm",
    "examples_jpeg2k.dcm",
    "examples_palette.dcm",
    "examples_rgb_color.dcm",
    "US1_UNCR.dcm",
    "US1_UNCI.dcm",
    "US1_J2KR.dcm",
    "US1_J2KI.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "gdcm-US-ALOKA-16_big.dcm",
    "OBXXXX1A.dcm",
    "OBXXXX1A_2frame.dcm",
    "OBXXXX1A_expb.dcm",
    "OBXXXX1A_expb_2frame.dcm",
    "OBXXXX1A_rle.dcm",
    "OBXXXX1A_rle_2frame.dcm",
    "color3d_jpeg_baseline.dcm",
    "color-pl.dcm",
    "color-px.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
]


def _has_pixels(path: Path) -> bool:
    if path.suffix.lower() != ".dcm" or not path.is_file():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, defer_size=64)
    except Exception:
        return False
    return "PixelData" in ds


def _shipped() -> list[Path]:
    return sorted({Path(p) for p in get_testdata_files("*") if _has_pixels(Path(p))})


SHIPPED = _shipped()


def _header(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True, stop_before_pixels=True)


def _pydicom_decodes(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pydicom.dcmread(path).pixel_array  # noqa: B018
        except Exception:
            return False
    return True


def _frames(path: Path) -> int:
    try:
        return int(_header(path).get("NumberOfFrames") or 1)
    except ValueError:
        return 1


def test_the_collection_covers_both_packages() -> None:
    names = {p.name for p in SHIPPED}
    assert len(SHIPPED) > 100
    assert {"examples_ybr_color.dcm", "US1_J2KR.dcm", "gdcm-US-ALOKA-16.dcm"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_file_decodes_to_sane_8bit(path: Path) -> None:
    try:
        img = READER.read(path)
    except ImageReadError as exc:
        if _pydicom_decodes(path):
            raise
        assert path.name in str(exc)
        pytest.skip(f"pydicom cannot decode it either: {exc}")
    header = _header(path)
    assert img.mode in ("L", "RGB")
    assert img.size == (int(header.Columns), int(header.Rows))
    arr = np.asarray(img)
    assert arr.dtype == np.uint8
    assert arr.min() < arr.max()
    assert img.info == {}


@pytest.mark.parametrize("name", US_FILES)
def test_ultrasound_files_decode(name: str) -> None:
    path = Path(get_testdata_file(name))
    assert _header(path).Modality == "US"
    img = READER.read(path)
    arr = np.asarray(img)
    assert min(img.size) >= 60 and arr.std() > 5
    if str(_header(path).PhotometricInterpretation) != "MONOCHROME2":
        assert img.mode == "RGB"
        grey = np.abs(arr.astype(int) - arr.mean(axis=2, keepdims=True)).max(axis=2) < 8
        assert grey.mean() > 0.8, "grey speckle must stay grey after colour conversion"


MULTI = [p for p in SHIPPED if _frames(p) > 1]


@pytest.mark.parametrize("path", MULTI, ids=lambda p: p.name)
def test_multi_frame_frames_differ_where_the_source_does(path: Path) -> None:
    count = _frames(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            raw = [pixel_array(path, index=i) for i in (0, count - 1)]
        except Exception:
            pytest.skip("pydicom cannot decode it")
    assert dicom_frame_count(path) == count
    first, last = np.asarray(READER.read(path, 0)), np.asarray(READER.read(path, count - 1))
    assert first.shape == last.shape
    if not np.array_equal(raw[0], raw[1]):
        assert not np.array_equal(first, last)


def test_cine_frame_k_differs_and_samples_by_frame_time() -> None:
    path = Path(pydicom.examples.ybr_color.filename)
    assert dicom_frame_count(path) == 30
    frame0, frame10 = READER.read(path), READER.read(path, 10)
    assert frame0.mode == frame10.mode == "RGB"
    assert not np.array_equal(np.asarray(frame0), np.asarray(frame10))
    frames = list(READER.sample(path, fps=5.0, max_frames=4))
    indices = [i for i, _ in frames]
    assert len(frames) == 4 and indices == sorted(set(indices)) and indices[0] == 0
    assert all(img.size == frame0.size for _, img in frames)


def test_frame_out_of_range_names_the_file() -> None:
    path = Path(get_testdata_file("US1_UNCR.dcm"))
    with pytest.raises(ImageReadError, match="US1_UNCR"):
        READER.read(path, 5)


def _write(path: Path, ds: Dataset, pixels: np.ndarray | None) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel = 1
        ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _ramp(dtype: type = np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.tile(np.linspace(0, top, 64).astype(dtype), (32, 1))


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    mono2, mono1 = Dataset(), Dataset()
    mono2.PhotometricInterpretation, mono1.PhotometricInterpretation = "MONOCHROME2", "MONOCHROME1"
    a = np.asarray(READER.read(_write(tmp_path / "m2.dcm", mono2, _ramp())))
    b = np.asarray(READER.read(_write(tmp_path / "m1.dcm", mono1, _ramp())))
    assert a[0, 0] == 0 and b[0, 0] == 255
    np.testing.assert_array_equal(a.astype(int) + b, 255)


def test_shipped_monochrome1_reads_bright_where_stored_low() -> None:
    path = Path(get_testdata_file("RG1_UNCR.dcm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = pydicom.dcmread(path).pixel_array
    img = np.asarray(READER.read(path))
    low, high = raw <= np.percentile(raw, 5), raw >= np.percentile(raw, 95)
    assert img[low].mean() > img[high].mean() + 50


def test_high_bit_depth_is_scaled_and_window_applied(tmp_path: Path) -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    stretched = np.asarray(READER.read(_write(tmp_path / "deep.dcm", ds, _ramp(np.uint16) // 16)))
    assert stretched.min() == 0 and stretched.max() == 255
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = 1000, 500
    windowed = np.asarray(READER.read(_write(tmp_path / "win.dcm", ds, _ramp(np.uint16) // 16)))
    ramp = _ramp(np.uint16)[0] // 16
    assert (windowed[0][ramp < 700] == 0).all() and (windowed[0][ramp > 1300] == 255).all()


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT"])
def test_fast_window_matches_pydicom(function: str) -> None:
    arr = np.arange(-1000, 3000, dtype=np.int16).reshape(40, 100)
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored, ds.PixelRepresentation = 16, 1
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 400, 1500, function
    lo, hi = dicom_module._voi_range(ds)
    reference = np.clip((apply_windowing(arr, ds) - lo) * 255.0 / (hi - lo) + 0.5, 0, 255)
    ours = dicom_module._window(arr, ds)
    assert np.abs(ours.astype(int) - reference.astype(np.uint8)).max() <= 1


def test_no_pixel_data_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.dcm", Dataset(), None)
    with pytest.raises(ImageReadError, match=r"empty\.dcm.*has no pixel data"):
        READER.read(path)


def test_missing_decoder_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})
    path = Path(get_testdata_file("US1_J2KR.dcm"))
    with pytest.raises(ImageReadError, match=r"US1_J2KR.*pip install pylibjpeg pylibjpeg-openjpeg"):
        READER.read(path)


def test_install_hints() -> None:
    assert "pylibjpeg-openjpeg" in decoder_install_hint(JPEG2000Lossless)
    assert "pylibjpeg-libjpeg" in decoder_install_hint(JPEGLosslessSV1)
    assert "pylibjpeg-rle" in decoder_install_hint(RLELossless)
    assert decoder_install_hint(ExplicitVRLittleEndian) == ""


def test_files_without_suffix_are_recognised_by_preamble(tmp_path: Path) -> None:
    bare = tmp_path / "IM000001"
    shutil.copy(get_testdata_file("US1_UNCR.dcm"), bare)
    other = tmp_path / "README"
    other.write_bytes(b"x" * 200)
    assert READER.can_read(bare) and not READER.can_read(other)
    assert reader_for(bare).name == "dicom"
    assert READER.read(bare).size == (640, 480)
    assert READER.can_read(tmp_path / "a.DICOM")


def test_frame_count_reads_the_header_only() -> None:
    assert dicom_frame_count(Path(get_testdata_file("examples_ybr_color.dcm"))) == 30
    assert dicom_frame_count(Path(get_testdata_file("US1_UNCR.dcm"))) == 1


def test_not_dicom_is_a_read_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all")
    with pytest.raises(ImageReadError, match="junk.dcm"):
        READER.read(junk)
