"""Generic layout: a folder of NIfTI volumes (``*.nii`` / ``*.nii.gz``, any depth).

Only headers are read (``nibabel.load(p).shape`` maps no voxel data). Each
volume gives one item per sampled slice along ``axis`` (default 2): every
``every_n``-th slice, at most ``max_slices`` spread over the volume; ``frame``
is the slice index. Axes are those of the volume reoriented to RAS+ (0 = R,
1 = A, 2 = S, as ``nibabel.as_closest_canonical`` gives), the convention of
the NIfTI slice reader, which reads axial slices (axis 2); the chosen axis is
kept in ``extra["axis"]``. Empty slices cannot be skipped here (that needs
pixels). A 4-D file is sliced in its first volume (``extra["volumes"]`` says
how many it has); a 2-D image gives one item with ``frame = None``.

Segmentation volumes (names ending ``_mask``, ``_seg``, ``_label(s)``,
``_gt``) are skipped unless ``skip_masks`` is off. Clearly non-image files
(``.txt``, ``.csv``, ``.json`` ...) are skipped; other files are rejects.

Optional ``labels_csv`` keyed by a ``file`` / ``filename`` / ``path`` column
(path relative to the root, or a bare file name) gives ``label``, ``organ``,
``patient_id`` (and ``report``, ``view`` and schema findings fields); rows
naming a missing file are rejects. The organ is the row's, else the ``organ``
option; a volume with neither is a reject.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from echocaptions.schema import FINDINGS_BY_ORGAN, ORGANS, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.dicom_folder import NOT_DICOM_EXTENSIONS, sample_indices
from echocaptions.sources.imagefolder import extension, sorted_files

NIFTI_EXTENSIONS: frozenset[str] = frozenset({".nii", ".nii.gz"})
MASK_NAME = re.compile(r"_(mask|seg|segmentation|label|labels|gt)$", re.IGNORECASE)
KEY_COLUMNS: tuple[str, ...] = ("file", "filename", "file_name", "path")


class NiftiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organ: str | None = None
    dataset: str | None = None
    labels_csv: str | None = None
    axis: int = Field(default=2, ge=0, le=2)
    every_n: int = Field(default=1, ge=1)
    max_slices: int | None = Field(default=None, ge=1)
    skip_masks: bool = True
    license: str | None = None
    view: str | None = None


def _stem(path: Path) -> str:
    return path.name[: len(path.name) - len(extension(path))]


@register
class NiftiFolderSource(Source):
    """Any folder of NIfTI volumes, sliced along one axis; header-only listing."""

    layout = "nifti"
    organs = ORGANS
    expected = "a folder (any depth) of .nii / .nii.gz volumes, optionally a labels CSV keyed by file name."
    download = "your own NIfTI export"
    folder = "any folder; point at it with --source NAME=PATH"
    required = (".nii / .nii.gz volumes, at any depth",)
    optional = ("labels_csv: label, organ, patient_id, report, view and findings keyed by file name",)
    quirks = ("volumes are reoriented to RAS and sliced along the chosen axis; masks (_mask, _seg) are skipped",)
    published = "any NIfTI export of 2-D or 3-D ultrasound (no publisher)."
    Options = NiftiOptions

    def csv_path(self) -> Path | None:
        return self.option_file("labels_csv")

    def check(self) -> None:
        super().check()
        self.csv_path()
        if not any(extension(p) in NIFTI_EXTENSIONS for p in sorted_files(self.root)):
            raise SourceError(f"{self.missing_message()} (no .nii or .nii.gz file below {self.root})")

    def _labels(self) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """Labels-CSV rows by relative path and by file name."""
        path = self.csv_path()
        by_path: dict[str, dict[str, str]] = {}
        if path is None:
            return by_path, {}
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = {h.strip().lower(): h for h in reader.fieldnames or []}
            key_col = next((header[c] for c in KEY_COLUMNS if c in header), None)
            if key_col is None:
                raise SourceError(
                    f"source {self.name!r}: {path} needs a file column, one of {KEY_COLUMNS}; "
                    f"columns found: {sorted(header)}"
                )
            for raw in reader:
                key = (raw.get(key_col) or "").strip().replace("\\", "/").removeprefix("./")
                if key:
                    by_path[key] = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        return by_path, {Path(k).name: v for k, v in by_path.items()}

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        by_path, by_name = self._labels()
        used: set[int] = set()
        csv_file = self.csv_path()
        for f in sorted_files(self.root):
            if csv_file is not None and f.resolve() == csv_file.resolve():
                continue
            if extension(f) not in NIFTI_EXTENSIONS:
                if extension(f) not in NOT_DICOM_EXTENSIONS:
                    yield self.reject(f, f"unknown extension {extension(f) or '(none)'!r}",
                                      "this layout reads .nii and .nii.gz")
                continue
            if self.options.skip_masks and MASK_NAME.search(_stem(f)):
                continue
            row = by_path.get(self.rel(f)) or by_name.get(f.name)
            if row is not None:
                used.add(id(row))
            yield from self._volume(f, row or {})
        for key, row in by_path.items():
            if id(row) not in used:
                yield self.reject(key, "labels CSV names a missing file",
                                  f"no {key} below {self.root}")

    def _volume(self, path: Path, values: dict[str, str]) -> Iterator[SourceItem | Reject]:
        import nibabel as nib
        from nibabel.orientations import io_orientation

        rel = self.rel(path)
        try:
            img = nib.load(str(path))
            shape = tuple(int(d) for d in img.shape)
            ornt = io_orientation(img.affine) if len(shape) >= 3 else None
        except Exception as exc:  # a damaged header is one reject, not a crash
            yield self.reject(rel, f"unreadable NIfTI header: {type(exc).__name__}: "
                                   f"{str(exc).replace(str(path), rel)}")
            return
        organ = values.get("organ", "").lower() or self.options.organ
        if organ is None:
            yield self.reject(rel, "no organ: set the source option organ or an organ column in labels_csv")
            return
        if organ not in ORGANS:
            yield self.reject(rel, f"organ {organ!r} is not one of {ORGANS}")
            return
        if len(shape) > 4 and any(d != 1 for d in shape[4:]):
            yield self.reject(rel, f"volume of shape {shape} has more than four axes")
            return
        axis = self.options.axis
        extra: dict[str, Any] = {"axis": axis, "shape": list(shape)}
        if ornt is None:
            frames: list[int | None] = [None]
        else:
            matches = np.flatnonzero(ornt[:, 0] == axis)
            count = shape[int(matches[0]) if matches.size else axis]
            frames = list(sample_indices(count, self.options.every_n, self.options.max_slices))
            if len(shape) > 3 and shape[3] > 1:
                extra["volumes"] = shape[3]
        for frame in frames:
            yield SourceItem(
                source=self.name,
                dataset=self.options.dataset or self.name,
                organ=organ,
                path=str(path.resolve()),
                source_path=rel,
                label=values.get("label", "").lower() or None,
                patient_id=values.get("patient_id") or None,
                frame=frame,
                view=values.get("view") or self.options.view,
                findings={k: values[k] for k in FINDINGS_BY_ORGAN[organ] if values.get(k)},
                report=values.get("report") or None,
                license=self.options.license,
                extra=dict(extra),
            )
