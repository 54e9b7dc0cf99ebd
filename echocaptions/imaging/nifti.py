"""NIfTI volumes (``.nii``, ``.nii.gz``) through nibabel, one axial slice per frame.

A frame is a slice index along axis 2 (inferior to superior) after the volume
is reoriented to RAS+, the transform ``nibabel.as_closest_canonical`` applies.
A slice is shown with anterior at the top and the patient's right on the
right (neurological convention). 4-D files use their first volume; a 2-D
file is one slice. Grey levels
are windowed to 8 bits between the 1st and 99th percentiles of the whole
volume, computed once per file per process. ``frame=None`` is the middle slice,
the one most likely to show anatomy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, io_orientation
from PIL import Image

from echocaptions.imaging.normalise import Normalised, normalise
from echocaptions.imaging.readers import ImageReadError, Reader, register_reader

PERCENTILES = (1.0, 99.0)
_LEVELS: dict[tuple[str, int, int], tuple[float, float]] = {}
_LEVELS_MAX = 4096
_LAST: dict[tuple[str, int, int], np.ndarray] = {}


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def _load(path: Path) -> nib.spatialimages.SpatialImage:
    try:
        img = nib.load(path)
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise ImageReadError(f"{path}: not a readable NIfTI file ({exc})") from exc
    if getattr(img, "affine", None) is None or len(img.shape) < 2:
        raise ImageReadError(
            f"{path}: not a spatial image ({type(img).__name__}, shape {img.shape}); "
            "only 2-D to 4-D NIfTI images are read"
        )
    return img


def nifti_slice_count(path: Path, axis: int = 2) -> int:
    """Slices along RAS ``axis`` (0 = R, 1 = A, 2 = S), from the header alone."""
    img = _load(Path(path))
    ornt = io_orientation(img.affine)
    array_axis = int(np.flatnonzero(ornt[:, 0] == axis)[0])
    return int((*img.shape, 1)[array_axis])


def _volume(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """The first volume in RAS+ order, and its grey-level window (both cached)."""
    key = _key(path)
    if key in _LAST and key in _LEVELS:
        return _LAST[key], _LEVELS[key]
    img = _load(path)
    index = (slice(None),) * min(3, len(img.shape)) + (0,) * (len(img.shape) - 3)
    try:
        data = np.asanyarray(img.dataobj[index])
        if data.ndim == 2:
            data = data[:, :, None]
    except (OSError, EOFError, ValueError, MemoryError) as exc:
        raise ImageReadError(f"{path}: cannot read NIfTI voxel data ({exc})") from exc
    if np.iscomplexobj(data) or data.dtype.fields is not None:
        raise ImageReadError(f"{path}: voxel type {data.dtype} is not a grey-level image")
    volume = apply_orientation(data, io_orientation(img.affine))
    if key not in _LEVELS:
        if len(_LEVELS) >= _LEVELS_MAX:
            _LEVELS.clear()
        _LEVELS[key] = _window(volume)
    _LAST.clear()
    _LAST[key] = volume
    return volume, _LEVELS[key]


def _window(volume: np.ndarray) -> tuple[float, float]:
    finite = volume[np.isfinite(volume)] if volume.dtype.kind == "f" else volume
    if finite.size == 0:
        return 0.0, 0.0
    lo, hi = (float(v) for v in np.percentile(finite, PERCENTILES))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    return lo, hi


def slice_to_image(plane: np.ndarray, lo: float, hi: float) -> Image.Image:
    """An (R, A) plane as an 8-bit image, anterior up, windowed to ``lo``..``hi``."""
    shown = np.flipud(np.asarray(plane, np.float32).T)
    if hi <= lo:
        out = np.zeros(shown.shape, np.uint8)
    else:
        shown = np.nan_to_num(shown, nan=lo, posinf=hi, neginf=lo)
        out = np.clip((shown - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(out), "L")


class NiftiReader(Reader):
    """NIfTI-1/2 volumes; a frame is an axial slice (see the module docstring)."""

    name = "nifti"
    suffixes = (".nii", ".nii.gz")

    def can_read(self, path: Path) -> bool:
        return _is_nifti(path)

    def read(self, path: Path, frame: int | None = None, axis: int = 2) -> Image.Image:
        """Slice ``frame`` along RAS ``axis`` (2: axial, 1: coronal, 0: sagittal)."""
        path = Path(path)
        volume, (lo, hi) = _volume(path)
        count = volume.shape[axis]
        index = count // 2 if frame is None else frame
        if not 0 <= index < count:
            raise ImageReadError(f"{path}: slice {frame} out of range (0..{count - 1}) along axis {axis}")
        return slice_to_image(np.take(volume, index, axis=axis), lo, hi)

    def load(
        self, path: Path, frame: int | None, max_side: int | None, grayscale: str, hints: dict | None = None
    ) -> Normalised:
        axis = int((hints or {}).get("axis", 2))
        return normalise(self.read(path, frame, axis), max_side, grayscale)

    def sample(self, path: Path, fps: float, max_frames: int) -> Iterator[tuple[int, Image.Image]]:
        """Up to ``max_frames`` evenly spaced axial slices (``fps`` has no meaning here)."""
        path = Path(path)
        count = nifti_slice_count(path)
        taken = min(max_frames, count)
        indices = sorted({int((i + 0.5) * count / taken) for i in range(taken)})
        for index in indices:
            yield index, self.read(path, index)


def clear_cache() -> None:
    """Forget cached windows and the last volume (e.g. after files change in place)."""
    _LEVELS.clear()
    _LAST.clear()


register_reader(NiftiReader())
