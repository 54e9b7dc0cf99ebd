"""B-mode fatty liver dataset (Byra et al., IJCARS 2018; Zenodo record 1009146).

Layout as downloaded: one MATLAB (v5) file::

    dataset_liver_bmodes_steatosis_assessment_IJCARS.mat

holding a 1 x 55 struct array ``data`` with fields ``id`` (patient, 1..55),
``class`` (0 normal, 1 fatty liver, i.e. at least 5% steatosis on biopsy),
``fat`` (steatosis, percent of hepatocytes) and ``images`` (10 x 434 x 636
uint8 B-mode frames of that patient).

One item per frame, all pointing at the same file: ``frame`` is
``patient_index * stride + k`` (``stride`` is 10 for the published file, more
only if some patient has more frames), so ids are unique and the ``.mat``
reader below finds the frame again. The label is ``steatosis`` for class 1,
``normal`` for class 0; ``liver_steatosis`` is graded from ``fat`` with the
usual histological cut-offs: S0 below 5%, S1 5-33%, S2 above 33 up to 66%,
S3 above 66%. ``fat`` and ``class`` are kept in ``extra``.

A MAT file cannot be read in parts: listing loads it once (about 150 MB for
the published file), keeps the scalar fields and drops the pixels before the
first item is yielded. Pixels are read again, per process, by
:class:`MatReader` (registered with the image readers), which keeps the last
two files' frames in a small cache so a shard does not reload the file for
every frame. MATLAB v7.3 (HDF5) files are not read; re-save as v7.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from echocaptions.imaging.readers import ImageReadError, Reader, register_reader
from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register

MAT_NAME = "dataset_liver_bmodes_steatosis_assessment_IJCARS.mat"
VARIABLE = "data"
FIELDS: tuple[str, ...] = ("id", "class", "fat", "images")
FRAMES_PER_PATIENT = 10


def steatosis_grade(fat: float) -> str:
    """Histological steatosis grade from the percentage of fatty hepatocytes."""
    if fat < 5:
        return "S0"
    if fat <= 33:
        return "S1"
    if fat <= 66:
        return "S2"
    return "S3"


def frame_stride(frame_counts: list[int]) -> int:
    """Frame numbers reserved per patient (10, or the largest patient's count)."""
    return max([FRAMES_PER_PATIENT, *frame_counts])


class MatStructureError(ValueError):
    """The MAT file does not hold the expected ``data`` struct; the message lists what it holds."""


def _load_struct(path: Path) -> np.ndarray:
    """The flattened ``data`` struct array, or :class:`MatStructureError` naming what was found."""
    import scipy.io

    try:
        variables = [name for name, _, _ in scipy.io.whosmat(str(path))]
    except (NotImplementedError, ValueError, OSError) as exc:
        raise MatStructureError(f"not a MATLAB v5/v7 file ({exc}); re-save it with save(..., '-v7')") from exc
    if VARIABLE not in variables:
        raise MatStructureError(f"no variable {VARIABLE!r}; variables found: {sorted(variables)}")
    struct = scipy.io.loadmat(str(path), variable_names=[VARIABLE])[VARIABLE]
    names = struct.dtype.names or ()
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise MatStructureError(
            f"struct {VARIABLE!r} lacks fields {missing}; fields found: {sorted(names)}"
        )
    return struct.ravel()


def _scalar(value: Any) -> float | None:
    flat = np.asarray(value).ravel()
    if flat.size != 1:
        return None
    try:
        number = float(flat[0])
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _frames(value: Any) -> np.ndarray:
    """A patient's images as (n, H, W); a single 2-D frame becomes (1, H, W)."""
    array = np.asarray(value)
    return array[None] if array.ndim == 2 else array


def _frame_count(frames: np.ndarray) -> int:
    """Frames in a (n, H, W) stack; 0 when it is not a stack of 2-D images."""
    return frames.shape[0] if frames.ndim == 3 and min(frames.shape[1:]) > 1 else 0


@register
class FattyLiverSource(Source):
    """Byra's fatty liver B-mode frames from the one MATLAB file, graded by biopsy fat %."""

    layout = "fatty_liver"
    organs = ("liver",)
    expected = (
        f"{MAT_NAME} (MATLAB v5 file with struct array 'data': fields id, class, fat, "
        "images = 10 x 434 x 636 uint8 frames per patient)."
    )
    download = "Zenodo record 1009146 (doi:10.5281/zenodo.1009146): one .mat file, about 150 MB"
    folder = "fatty_liver"
    required = (f"{MAT_NAME} (MATLAB v5; a v7.3/HDF5 re-save is refused with how to re-save it)",)
    quirks = (
        "55 patients x 10 frames in one file; every frame of a patient shares its patient id",
        "steatosis grade S0-S3 from the biopsy fat percentage (cut-offs 5/33/66 %)",
    )
    published = (
        "Byra M, et al. Transfer learning with deep convolutional neural network for liver "
        "steatosis assessment in ultrasound images. IJCARS 13:1895-1903 (2018); "
        "Zenodo https://zenodo.org/records/1009146 (doi:10.5281/zenodo.1009146)."
    )
    license = "CC-BY-4.0"

    def mat_path(self) -> Path:
        path = self.root / MAT_NAME
        if not path.is_file():
            others = sorted(p.name for p in self.root.glob("*.mat")) if self.root.is_dir() else []
            found = f"; .mat files found: {others}" if others else ""
            raise SourceError(f"{self.missing_message()} (no {MAT_NAME} in {self.root}{found})")
        return path

    def check(self) -> None:
        super().check()
        self.mat_path()

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        path = self.mat_path()
        rel = self.rel(path)
        try:
            struct = _load_struct(path)
        except MatStructureError as exc:
            yield self.reject(rel, f"unexpected MAT content: {exc}", f"expected: {self.expected}")
            return
        except Exception as exc:  # a damaged file is one reject, not a crash
            yield self.reject(rel, f"unreadable MAT file: {type(exc).__name__}: {exc}")
            return
        rows = []
        for entry in struct:
            rows.append((_scalar(entry["id"]), _scalar(entry["class"]), _scalar(entry["fat"]),
                         _frame_count(_frames(entry["images"]))))
        del struct
        stride = frame_stride([n for *_, n in rows])
        for index, (pid, cls, fat, n_frames) in enumerate(rows):
            where = f"{rel} data({index + 1})"
            if n_frames == 0:
                yield self.reject(where, "images is not a stack of 2-D frames")
                continue
            if cls not in (0.0, 1.0):
                yield self.reject(where, f"class {cls!r} is not 0 (normal) or 1 (fatty)")
                continue
            label = "steatosis" if cls == 1.0 else "normal"
            findings = {"liver_steatosis": steatosis_grade(fat)} if fat is not None else {}
            for k in range(n_frames):
                yield SourceItem(
                    source=self.name,
                    dataset="fatty_liver",
                    organ="liver",
                    path=str(path.resolve()),
                    source_path=rel,
                    label=label,
                    patient_id=None if pid is None else str(int(pid)),
                    frame=index * stride + k,
                    findings=findings,
                    extra={"fat_percent": fat, "class": int(cls), "patient_frame": k},
                )


@lru_cache(maxsize=2)
def _cached_frames(path: str, mtime_ns: int, size: int) -> tuple[tuple[np.ndarray, ...], int]:
    """Every patient's frames of one file and the frame stride; keyed by mtime and size."""
    struct = _load_struct(Path(path))
    stacks = tuple(_frames(entry["images"]) for entry in struct)
    return stacks, frame_stride([_frame_count(s) for s in stacks])


class MatReader(Reader):
    """Frames of the fatty liver MAT file, addressed as ``patient_index * stride + k``."""

    name = "mat"
    suffixes = (".mat",)

    def read(self, path: Path, frame: int | None = None) -> Image.Image:
        stat = Path(path).stat()
        try:
            stacks, stride = _cached_frames(str(path), stat.st_mtime_ns, stat.st_size)
        except MatStructureError as exc:
            raise ImageReadError(f"{path}: {exc}") from exc
        patient, k = divmod(frame or 0, stride)
        if patient >= len(stacks) or k >= _frame_count(stacks[patient]):
            raise ImageReadError(f"{path}: frame {frame} is not in the file")
        array = np.asarray(stacks[patient][k])
        if array.dtype != np.uint8:
            lo, hi = float(array.min()), float(array.max())
            array = ((array - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(array), "L")


register_reader(MatReader(), first=False)
