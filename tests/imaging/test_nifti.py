"""NiftiReader on the volumes nibabel ships, and on synthetic volumes of known orientation."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from echocaptions.imaging import nifti as nifti_module
from echocaptions.imaging.nifti import NiftiReader, nifti_slice_count
from echocaptions.imaging.readers import ImageReadError, reader_for

READER = NiftiReader()
DATA = Path(nib.__file__).parent / "tests" / "data"
VOLUMES = sorted(
    p for p in DATA.glob("*.nii*") if READER.can_read(p) and not p.name.endswith(".dconn.nii")
)


def test_nibabel_ships_volumes() -> None:
    names = {p.name for p in VOLUMES}
    assert {"anatomical.nii", "example4d.nii.gz"} <= names


@pytest.mark.parametrize("path", VOLUMES, ids=lambda p: p.name)
def test_shipped_volumes_decode_to_sane_slices(path: Path) -> None:
    canonical = nib.as_closest_canonical(nib.load(path))
    count = nifti_slice_count(path)
    assert count == canonical.shape[2]
    assert nifti_slice_count(path, axis=0) == canonical.shape[0]
    middle = READER.read(path)
    assert middle.mode == "L"
    assert middle.size == (canonical.shape[0], canonical.shape[1])
    arr = np.asarray(middle)
    assert arr.min() < arr.max()
    for index in (0, count - 1):
        assert READER.read(path, index).size == middle.size
    sampled = list(READER.sample(path, fps=1.0, max_frames=4))
    assert 1 <= len(sampled) <= 4
    assert [i for i, _ in sampled] == sorted({i for i, _ in sampled})


def test_cifti_is_a_clean_error() -> None:
    path = DATA / "row_major.dconn.nii"
    with pytest.raises(ImageReadError, match="row_major.dconn.nii"):
        READER.read(path)


def test_suffixes(tmp_path: Path) -> None:
    assert READER.can_read(Path("a.nii")) and READER.can_read(Path("b.NII.GZ"))
    assert not READER.can_read(Path("c.gz")) and not READER.can_read(Path("d.nii.zip"))


def _marker_volume(affine: np.ndarray, tmp_path: Path, name: str) -> Path:
    """A 20x30x10 volume with a bright block at the most anterior, right-most voxels."""
    data = np.full((20, 30, 10), 10, np.int16)
    data += np.arange(10, dtype=np.int16)[None, None, :]
    ras = nib.orientations.io_orientation(affine)
    index: list[slice] = [slice(None)] * 3
    for array_axis, (ras_axis, flip) in enumerate(ras.astype(int)):
        if ras_axis in (0, 1):
            size = data.shape[array_axis]
            index[array_axis] = slice(size - 3, size) if flip > 0 else slice(0, 3)
    data[tuple(index)] = 1000
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([2.0, 2.0, 3.0, 1.0]),
        np.diag([-2.0, -2.0, 3.0, 1.0]),
        np.diag([-1.0, 1.0, 1.0, 1.0]),
    ],
    ids=["RAS", "LPS", "LAS"],
)
def test_anterior_is_up_and_right_is_right(affine: np.ndarray, tmp_path: Path) -> None:
    path = _marker_volume(affine, tmp_path, "marker.nii.gz")
    nifti_module.clear_cache()
    arr = np.asarray(READER.read(path, 5))
    assert arr.shape == (30, 20)
    bright = np.argwhere(arr == arr.max())
    assert bright[:, 0].max() < 3, "anterior marker must be in the top rows"
    assert bright[:, 1].min() >= 17, "right-sided marker must be on the right"


def test_four_d_uses_the_first_volume(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    first = rng.integers(0, 1000, (16, 16, 8)).astype(np.int16)
    second = rng.integers(0, 1000, (16, 16, 8)).astype(np.int16)
    nib.save(nib.Nifti1Image(np.stack([first, second], -1), np.eye(4)), tmp_path / "4d.nii")
    nib.save(nib.Nifti1Image(first, np.eye(4)), tmp_path / "3d.nii")
    a = np.asarray(READER.read(tmp_path / "4d.nii", 3))
    b = np.asarray(READER.read(tmp_path / "3d.nii", 3))
    np.testing.assert_array_equal(a, b)


def test_window_ignores_outliers_and_is_cached(tmp_path: Path) -> None:
    data = np.tile(np.arange(100, dtype=np.float32), (100, 1))[:, :, None].repeat(4, axis=2)
    data[0, 0, 0] = 1e6
    path = tmp_path / "outlier.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    nifti_module.clear_cache()
    arr = np.asarray(READER.read(path, 2))
    assert arr.std() > 60, "one outlier voxel must not crush the contrast"
    assert len(nifti_module._LEVELS) == 1
    READER.read(path, 1)
    assert len(nifti_module._LEVELS) == 1


def test_out_of_range_slice_and_broken_file(tmp_path: Path) -> None:
    path = VOLUMES[0]
    with pytest.raises(ImageReadError, match=path.name):
        READER.read(path, 10_000)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ImageReadError, match="broken.nii.gz"):
        READER.read(broken)


def test_registered_through_the_package() -> None:
    import echocaptions.imaging  # noqa: F401

    assert reader_for(Path("scan.nii.gz")).name == "nifti"
    assert reader_for(Path("scan.dcm")).name == "dicom"


def test_two_d_file_is_one_slice(tmp_path: Path) -> None:
    plane = np.arange(48, dtype=np.uint8).reshape(8, 6)
    nib.save(nib.Nifti1Image(plane, np.eye(4)), tmp_path / "flat.nii")
    assert nifti_slice_count(tmp_path / "flat.nii") == 1
    img = READER.read(tmp_path / "flat.nii")
    assert img.size == (8, 6)
    shown, drawn = np.asarray(img, float).ravel(), plane.T[::-1].astype(float).ravel()
    assert np.corrcoef(shown, drawn)[0, 1] > 0.99
