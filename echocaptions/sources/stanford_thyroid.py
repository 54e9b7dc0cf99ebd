"""Stanford AIMI Thyroid Ultrasound Cine-clip dataset (167 patients, 192 biopsy-proven nodules).

Layout as downloaded from the Stanford AIMI shared datasets portal::

    dataset.hdf5    image (N, H, W) uint8 frames, mask (N, H, W) nodule masks,
                    annot_id (N,) clip id per frame, frame_num (N,) frame number in its clip
    metadata.csv    annot_id, age, sex, location, size_x, size_y, size_z,
                    ti-rads_composition, ti-rads_echogenicity, ti-rads_shape,
                    ti-rads_margin, ti-rads_echogenicfoci, ti-rads_level, histopath_diagnosis

Every HDF5 row is one frame of a cine clip; ``annot_id`` names the clip (one
annotated nodule). Frames are sampled per clip, in ``frame_num`` order: every
``every_n``-th frame, at most ``max_per_clip`` (recipe options). Each sampled
frame is one item whose ``path`` is the HDF5 file and ``frame`` the row index;
the pixels are read at the image stage by :class:`Hdf5FrameReader` (registered
here), which slices that one frame. Listing reads only ``annot_id`` and
``frame_num``.

``histopath_diagnosis`` (Benign / Malignant) is the label. The files have no
patient column; ``study_id`` is the ``annot_id`` and ``patient_id`` the
``annot_id`` without its trailing underscore (as published preprocessing code
does), so clips of one nodule never straddle splits. TI-RADS descriptors map
to ``tirads_*`` codes, from ACR words (``solid or almost completely solid``,
``very hypoechoic``, ``taller-than-wide``, ``extra-thyroidal extension``,
``punctate echogenic foci``...) or from ACR points where the points name one
value (composition 1/2, echogenicity 0/2/3, shape 0/3, margin 3, foci 0/1/2);
``ti-rads_level`` (1-5 or TR1-TR5) is the ``tirads_category``. Values that
name no single code stay ``None`` and are kept in ``extra["unmapped"]``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from echocaptions.imaging.readers import READERS, ImageReadError, Reader, register_reader
from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import natural_key

HDF5 = "dataset.hdf5"
METADATA = "metadata.csv"
REQUIRED_KEYS: tuple[str, ...] = ("image", "annot_id")
KNOWN_KEYS: tuple[str, ...] = ("image", "mask", "annot_id", "frame_num")
DIAGNOSIS: dict[str, str] = {"benign": "benign", "malignant": "malignant"}

COMPOSITION: dict[str, str] = {
    "cystic": "cystic", "cystic or almost completely cystic": "cystic", "spongiform": "spongiform",
    "mixed": "mixed", "mixed cystic and solid": "mixed",
    "solid": "solid", "solid or almost completely solid": "solid",
    "1": "mixed", "2": "solid",
}
ECHOGENICITY: dict[str, str] = {
    "anechoic": "anechoic", "hyperechoic": "hyperechoic", "isoechoic": "isoechoic",
    "hypoechoic": "hypoechoic", "very hypoechoic": "very_hypoechoic",
    "0": "anechoic", "2": "hypoechoic", "3": "very_hypoechoic",
}
SHAPE: dict[str, str] = {
    "wider than tall": "wider_than_tall", "taller than wide": "taller_than_wide",
    "0": "wider_than_tall", "3": "taller_than_wide",
}
MARGIN: dict[str, str] = {
    "smooth": "smooth", "ill defined": "ill_defined", "lobulated": "lobulated",
    "irregular": "irregular", "extra thyroidal extension": "extrathyroidal_extension",
    "extrathyroidal extension": "extrathyroidal_extension", "3": "extrathyroidal_extension",
}
FOCI: dict[str, str] = {
    "none": "none", "none or large comet tail artifacts": "none",
    "large comet tail artifacts": "comet_tail", "comet tail": "comet_tail",
    "comet tail artifacts": "comet_tail",
    "macrocalcifications": "macrocalcifications",
    "peripheral": "peripheral", "peripheral calcifications": "peripheral",
    "peripheral rim calcifications": "peripheral", "rim calcifications": "peripheral",
    "punctate": "punctate", "punctate echogenic foci": "punctate",
    "0": "none", "1": "macrocalcifications", "2": "peripheral",
}
FOCI_ORDER: tuple[str, ...] = ("punctate", "peripheral", "macrocalcifications", "comet_tail", "none")
_COLUMNS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("ti-rads_composition", "tirads_composition", COMPOSITION),
    ("ti-rads_echogenicity", "tirads_echogenicity", ECHOGENICITY),
    ("ti-rads_shape", "tirads_shape", SHAPE),
    ("ti-rads_margin", "tirads_margin", MARGIN),
)
_MISSING = frozenset({"", "nan", "na", "n/a", "none given", "not available"})


def _norm(text: str) -> str:
    text = re.sub(r"[()\s_-]+", " ", text.strip().lower()).strip()
    return text.removesuffix(".0")


def foci_code(raw: str) -> str | None:
    """The most suspicious of one or more echogenic-foci values (``,``, ``;``, ``&``, ``/`` or ``and``)."""
    parts = [p for p in re.split(r"\s*(?:[,;&/+]|\band\b)\s*", raw.strip()) if p.strip()]
    if _norm(raw) in FOCI:
        parts = [raw]
    codes = {FOCI.get(_norm(p)) for p in parts}
    if None in codes or not codes:
        return None
    return next(c for c in FOCI_ORDER if c in codes)


def level_code(raw: str) -> str | None:
    match = re.fullmatch(r"(?:tr|ti rads|tirads)?\s*([1-5])", _norm(raw))
    return match.group(1) if match else None


def map_tirads(row: dict[str, str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """``tirads_*`` findings of a metadata row, and the raw values that named no single code."""
    findings: dict[str, str | None] = {}
    unmapped: dict[str, str] = {}
    converters = [(column, key, lambda raw, t=table: t.get(_norm(raw))) for column, key, table in _COLUMNS]
    converters += [("ti-rads_echogenicfoci", "tirads_foci", foci_code),
                   ("ti-rads_level", "tirads_category", level_code)]
    for column, key, convert in converters:
        raw = (row.get(column) or "").strip()
        if _norm(raw) in _MISSING:
            findings[key] = None
            continue
        findings[key] = convert(raw)
        if findings[key] is None:
            unmapped[column] = raw
    return findings, unmapped


def _text(value: object) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()


class Hdf5FrameReader(Reader):
    """One frame of an HDF5 ``image`` dataset (N, H, W[, C]); only that frame is read."""

    name = "hdf5"
    suffixes = (".hdf5", ".h5")
    key = "image"

    def read(self, path: Path, frame: int | None = None) -> Image.Image:
        import h5py

        index = frame or 0
        try:
            with h5py.File(path, "r") as f:
                if self.key not in f:
                    raise ImageReadError(
                        f"{path}: no {self.key!r} dataset; keys found: {sorted(f.keys())}")
                data = f[self.key]
                if not 0 <= index < data.shape[0]:
                    raise ImageReadError(f"{path}: frame {index} out of range (0..{data.shape[0] - 1})")
                array = np.asarray(data[index])
        except OSError as exc:
            raise ImageReadError(f"{path}: cannot open HDF5 ({exc})") from exc
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
            raise ImageReadError(f"{path}: frame {index} has shape {array.shape}, not (H, W[, C])")
        return Image.fromarray(array)


if not any(isinstance(r, Hdf5FrameReader) for r in READERS):
    register_reader(Hdf5FrameReader())


class StanfordThyroidOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_n: int = Field(default=10, ge=1)
    max_per_clip: int = Field(default=8, ge=1)


@register
class StanfordThyroidSource(Source):
    """Stanford thyroid cine clips: sampled frames of each nodule clip, labelled by histopathology."""

    layout = "stanford_thyroid"
    organs = ("thyroid",)
    expected = (
        f"{HDF5} (datasets image, mask, annot_id, frame_num) and {METADATA} (annot_id, age, sex, "
        "location, size_x/y/z, ti-rads_composition, ti-rads_echogenicity, ti-rads_shape, "
        "ti-rads_margin, ti-rads_echogenicfoci, ti-rads_level, histopath_diagnosis) in one folder."
    )
    published = (
        "'Thyroid Ultrasound Cine-clip', Stanford AIMI Center shared datasets (search the AIMI "
        "dataset catalogue for the name); sign in and accept the research use agreement."
    )
    license = "Stanford University Dataset Research Use Agreement"
    Options = StanfordThyroidOptions

    def check(self) -> None:
        super().check()
        for name in (HDF5, METADATA):
            if not (self.root / name).is_file():
                raise SourceError(f"{self.missing_message()} (no {name} in {self.root})")
        self._index()

    def _index(self) -> tuple[list[str], np.ndarray]:
        """``annot_id`` per row and ``frame_num`` per row (row order when absent)."""
        import h5py

        path = self.root / HDF5
        try:
            with h5py.File(path, "r") as f:
                keys = sorted(f.keys())
                if any(k not in f for k in REQUIRED_KEYS):
                    raise SourceError(
                        f"source {self.name!r}: {path} is not the Stanford cine-clip file: it has "
                        f"keys {keys}, expected {list(KNOWN_KEYS)} (image and annot_id required)"
                    )
                annot = [_text(v) for v in f["annot_id"][()]]
                n = f["image"].shape[0]
                frames = np.asarray(f["frame_num"][()]).reshape(-1) if "frame_num" in f else np.arange(n)
        except OSError as exc:
            raise SourceError(f"source {self.name!r}: cannot open {path} as HDF5 ({exc})") from exc
        if not (len(annot) == n == len(frames)):
            raise SourceError(
                f"source {self.name!r}: {path} has {n} images but {len(annot)} annot_id and "
                f"{len(frames)} frame_num entries; they must match row for row"
            )
        return annot, frames

    def _metadata(self) -> dict[str, dict[str, str]]:
        with open(self.root / METADATA, newline="", encoding="utf-8-sig") as fh:
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                    for row in csv.DictReader(fh)]
        if rows and "annot_id" not in rows[0]:
            raise SourceError(
                f"source {self.name!r}: {self.root / METADATA} has no annot_id column; columns "
                f"found: {sorted(rows[0])}"
            )
        return {r["annot_id"]: r for r in rows if r.get("annot_id")}

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        annot, frames = self._index()
        meta = self._metadata()
        clips: dict[str, list[int]] = {}
        for row, clip in enumerate(annot):
            clips.setdefault(clip, []).append(row)
        path = str((self.root / HDF5).resolve())
        for clip in sorted(clips, key=natural_key):
            rows = sorted(clips[clip], key=lambda r: (int(frames[r]), r))
            where = f"{HDF5}#annot_id={clip}"
            info = meta.get(clip)
            if info is None:
                yield self.reject(where, f"clip without its {METADATA} row",
                                  f"{len(rows)} frames; no row with annot_id {clip!r}")
                continue
            raw = info.get("histopath_diagnosis", "")
            label = DIAGNOSIS.get(raw.lower()) if raw else None
            if raw and label is None:
                yield self.reject(
                    where, f"label outside vocabulary: histopath_diagnosis {raw!r} in {METADATA} "
                    f"is not one of {sorted(DIAGNOSIS)}")
                continue
            findings, unmapped = map_tirads(info)
            picked = rows[:: self.options.every_n][: self.options.max_per_clip]
            for r in picked:
                yield SourceItem(
                    source=self.name,
                    dataset="stanford_thyroid",
                    organ="thyroid",
                    path=path,
                    source_path=HDF5,
                    label=label,
                    patient_id=clip.rstrip("_") or clip,
                    study_id=clip,
                    frame=r,
                    findings=dict(findings),
                    extra={
                        "annot_id": clip,
                        "frame_num": int(frames[r]),
                        "clip_frames": len(rows),
                        "location": info.get("location") or None,
                        "size_xyz": [info.get(k) or None for k in ("size_x", "size_y", "size_z")],
                        "unmapped": unmapped,
                    },
                )
        for clip in sorted(set(meta) - set(clips), key=natural_key):
            yield self.reject(f"{METADATA}#annot_id={clip}", f"{METADATA} row without frames in {HDF5}")
