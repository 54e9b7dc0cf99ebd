"""Stanford AIMI Thyroid Ultrasound Cine-clip dataset (167 patients, 192 biopsy-proven nodules).

Layout as downloaded from the Stanford AIMI shared datasets portal::

    dataset.hdf5    image (N, H, W) uint8 frames, mask (N, H, W) nodule masks,
                    annot_id (N,) nodule id per frame, frame_num (N,) frame number in its clip
    metadata.csv    annot_id, age, sex, location, size_x, size_y, size_z,
                    ti-rads_composition, ti-rads_echogenicity, ti-rads_shape,
                    ti-rads_margin, ti-rads_echogenicfoci, ti-rads_level, histopath_diagnosis

Every HDF5 row is one frame of a cine clip; ``annot_id`` (``202_``: the
trailing underscore is part of the stored id) names the clip's nodule. Frames
are sampled per clip, in ``frame_num`` order: every ``every_n``-th frame, at
most ``max_per_clip`` (recipe options). Each sampled frame is one item whose
``path`` is the HDF5 file and ``frame`` the row index; the pixels are read at
the image stage by :class:`Hdf5FrameReader` (registered here), which slices
that one frame. Listing reads only ``annot_id`` and ``frame_num``.

Ids: ``annot_id`` names a nodule, not a patient (192 nodules of 167
patients), and the dataset publishes no patient key. The ``annot_id`` is the
``study_id`` (all frames of a nodule share it, so they stay in one split) and
``patient_id`` stays ``None``: two nodules of one patient cannot be grouped.
Metadata rows are matched to HDF5 ids as written, or without the trailing
underscore when one side lacks it.

Label: ``histopath_diagnosis`` is numeric, ``0`` benign and ``1`` malignant
(some files write ``0.0`` / ``1.0``); the words ``Benign`` / ``Malignant`` are
read too.

Findings: the ``ti-rads_*`` columns hold ACR TI-RADS points (the words of
the ACR lexicon are read too). Points name one ``tirads_*`` code where one
descriptor has that score: composition 1 ``mixed``, 2 ``solid``;
echogenicity 0 ``anechoic``, 2 ``hypoechoic``, 3 ``very_hypoechoic``; shape 0
``wider_than_tall``, 3 ``taller_than_wide``; margin 3
``extrathyroidal_extension``; echogenic foci 0 ``none``, 1
``macrocalcifications``, 2 ``peripheral``, 3 ``punctate`` (the dataset's own
coding of the foci column; ACR also scores large comet-tail artifacts 0).
Where one score stands for two descriptors the vocabulary keeps apart -
composition 0 (cystic or spongiform), echogenicity 1 (hyperechoic or
isoechoic), margin 0 (smooth or ill-defined), margin 2 (lobulated or
irregular) - any code would claim more than the score says, so the finding
stays ``None`` and the raw value is kept in ``extra["unmapped"]``; the ACR
words ``hyperechoic or isoechoic``, ``smooth or ill-defined`` and ``lobulated
or irregular`` are treated the same way. ``ti-rads_level`` (``1``-``5``,
``4.0``, ``TR4``) is the ``tirads_category``. An empty cell leaves its field
``None``.

A value in an encoding none of the above (``histopath_diagnosis`` ``2``, foci
``7``, composition ``gelatinous``) rejects the nodule's clip with the file,
the column, the value and the allowed values. ``sex`` (``Female`` / ``Male``)
and the sizes (cm) go to ``extra``; ``age`` is not read.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from echocaptions.imaging.readers import IMAGE_READERS, ImageReadError, Reader, register_reader
from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import natural_key

HDF5 = "dataset.hdf5"
METADATA = "metadata.csv"
REQUIRED_KEYS: tuple[str, ...] = ("image", "annot_id")
KNOWN_KEYS: tuple[str, ...] = ("image", "mask", "annot_id", "frame_num")
DIAGNOSIS: dict[str, str] = {"0": "benign", "1": "malignant", "benign": "benign", "malignant": "malignant"}
SEX: dict[str, str] = {"female": "F", "f": "F", "male": "M", "m": "M"}


@dataclass(frozen=True)
class Descriptor:
    """One ``ti-rads_*`` column: its finding, and the code each ACR score or word names.

    ``None`` as a code marks a known value that names no single code (a score
    shared by two descriptors the vocabulary keeps apart).
    """

    column: str
    key: str
    points: dict[int, str | None]
    words: dict[str, str | None]

    def allowed(self) -> str:
        return (f"ACR points {', '.join(map(str, sorted(self.points)))} or one of "
                f"{sorted(self.words)}")


DESCRIPTORS: tuple[Descriptor, ...] = (
    Descriptor("ti-rads_composition", "tirads_composition", {0: None, 1: "mixed", 2: "solid"}, {
        "cystic": "cystic", "cystic or almost completely cystic": "cystic",
        "almost completely cystic": "cystic", "spongiform": "spongiform",
        "cystic or spongiform": None, "mixed": "mixed", "mixed cystic and solid": "mixed",
        "solid": "solid", "solid or almost completely solid": "solid",
        "almost completely solid": "solid"}),
    Descriptor("ti-rads_echogenicity", "tirads_echogenicity",
               {0: "anechoic", 1: None, 2: "hypoechoic", 3: "very_hypoechoic"}, {
                   "anechoic": "anechoic", "hyperechoic": "hyperechoic", "isoechoic": "isoechoic",
                   "hyperechoic or isoechoic": None, "isoechoic or hyperechoic": None,
                   "hypoechoic": "hypoechoic", "very hypoechoic": "very_hypoechoic"}),
    Descriptor("ti-rads_shape", "tirads_shape", {0: "wider_than_tall", 3: "taller_than_wide"},
               {"wider than tall": "wider_than_tall", "taller than wide": "taller_than_wide"}),
    Descriptor("ti-rads_margin", "tirads_margin", {0: None, 2: None, 3: "extrathyroidal_extension"}, {
        "smooth": "smooth", "ill defined": "ill_defined", "smooth or ill defined": None,
        "lobulated": "lobulated", "irregular": "irregular", "lobulated or irregular": None,
        "extra thyroidal extension": "extrathyroidal_extension",
        "extrathyroidal extension": "extrathyroidal_extension"}),
)
FOCI_POINTS: dict[int, str] = {0: "none", 1: "macrocalcifications", 2: "peripheral", 3: "punctate"}
FOCI: dict[str, str] = {
    "none": "none", "none or large comet tail artifacts": "none",
    "large comet tail artifacts": "comet_tail", "comet tail": "comet_tail",
    "comet tail artifacts": "comet_tail",
    "macrocalcifications": "macrocalcifications",
    "peripheral": "peripheral", "peripheral calcifications": "peripheral",
    "peripheral rim calcifications": "peripheral", "rim calcifications": "peripheral",
    "punctate": "punctate", "punctate echogenic foci": "punctate",
}
FOCI_ORDER: tuple[str, ...] = ("punctate", "peripheral", "macrocalcifications", "comet_tail", "none")
FOCI_COLUMN = "ti-rads_echogenicfoci"
LEVEL_COLUMN = "ti-rads_level"
_MISSING = frozenset({"", "nan", "na", "n/a", "none given", "not available"})


class UnknownEncoding(ValueError):
    """Metadata values in no encoding the adapter knows: ``(column, value, allowed)`` each."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{c} {v!r} is not one of {a}" for c, v, a in problems))


def _norm(text: str) -> str:
    return re.sub(r"[()\s_-]+", " ", text.strip().lower()).strip()


def _points(raw: str) -> int | None:
    """An integral number (``2``, ``2.0``) as int; anything else ``None``."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def diagnosis(raw: str) -> str | None:
    """``benign`` / ``malignant`` from ``0`` / ``1`` (``0.0`` / ``1.0``) or the words; ``None`` if empty."""
    if _norm(raw) in _MISSING:
        return None
    number = _points(raw)
    label = DIAGNOSIS.get(str(number) if number is not None else _norm(raw))
    if label is None:
        raise UnknownEncoding([("histopath_diagnosis", raw, "0 (benign), 1 (malignant), benign or malignant")])
    return label


def foci_code(raw: str) -> str | None:
    """The most suspicious of one or more echogenic-foci values (points, or words joined by
    ``,``, ``;``, ``&``, ``/`` or ``and``); ``None`` when a part is unknown."""
    number = _points(raw)
    if number is not None:
        return FOCI_POINTS.get(number)
    parts = [raw] if _norm(raw) in FOCI else [
        p for p in re.split(r"\s*(?:[,;&/+]|\band\b)\s*", raw.strip()) if p.strip()]
    codes = {FOCI.get(_norm(p)) for p in parts}
    if None in codes or not codes:
        return None
    return next(c for c in FOCI_ORDER if c in codes)


def level_code(raw: str) -> str | None:
    number = _points(raw)
    if number is not None:
        return str(number) if 1 <= number <= 5 else None
    match = re.fullmatch(r"(?:tr|ti rads|tirads)?\s*([1-5])", _norm(raw))
    return match.group(1) if match else None


def map_tirads(row: dict[str, str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """``tirads_*`` findings of a metadata row, and the raw values read that name no single code.

    Raises :class:`UnknownEncoding` listing every column whose value is in no known encoding.
    """
    findings: dict[str, str | None] = {}
    unmapped: dict[str, str] = {}
    problems: list[tuple[str, str, str]] = []
    for d in DESCRIPTORS:
        raw = (row.get(d.column) or "").strip()
        findings[d.key] = None
        if _norm(raw) in _MISSING:
            continue
        number = _points(raw)
        table: dict = d.points if number is not None else d.words
        value = number if number is not None else _norm(raw)
        if value not in table:
            problems.append((d.column, raw, d.allowed()))
        elif table[value] is None:
            unmapped[d.column] = raw
        else:
            findings[d.key] = table[value]
    for column, key, convert, allowed in (
        (FOCI_COLUMN, "tirads_foci", foci_code,
         f"ACR points 0, 1, 2, 3 or words from {sorted(FOCI)} (several joined by ',')"),
        (LEVEL_COLUMN, "tirads_category", level_code, "1, 2, 3, 4, 5 (or TR1-TR5)"),
    ):
        raw = (row.get(column) or "").strip()
        findings[key] = None if _norm(raw) in _MISSING else convert(raw)
        if _norm(raw) not in _MISSING and findings[key] is None:
            problems.append((column, raw, allowed))
    if problems:
        raise UnknownEncoding(problems)
    return findings, unmapped


def _size(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _text(value: object) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()


def _bare(annot_id: str) -> str:
    """An ``annot_id`` without its trailing underscore, to match ``202_`` with ``202``."""
    return annot_id.strip().rstrip("_") or annot_id.strip()


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


if Hdf5FrameReader.name not in IMAGE_READERS:
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
    download = (
        "Stanford AIMI shared datasets site (aimi.stanford.edu, 'Shared Datasets'): 'Thyroid "
        f"Ultrasound Cine-clip'; sign in, accept the research use agreement, download {HDF5} and "
        f"{METADATA}"
    )
    folder = f"StanfordThyroidCine/ ({HDF5} and {METADATA} side by side)"
    required = (
        f"{HDF5}: datasets image (frames) and annot_id (nodule id per frame); mask is not read, "
        "frame_num orders the frames of a clip (HDF5 row order without it)",
        f"{METADATA}: one row per annot_id with histopath_diagnosis and the ti-rads_* columns",
    )
    quirks = (
        "histopath_diagnosis is a number, 0 benign / 1 malignant, sometimes written 0.0 / 1.0 "
        "(the words Benign / Malignant are read too)",
        "ti-rads_* columns hold ACR TI-RADS points, not words; a score shared by two descriptors "
        "(composition 0, echogenicity 1, margin 0 or 2) leaves that finding unset, its raw value "
        "kept in extra['unmapped']",
        "ti-rads_level is numeric (1-5, also 4.0 or TR4) and becomes tirads_category",
        "annot_id (e.g. 202_, trailing underscore as stored in the HDF5) names one nodule, not a "
        "patient: it is the study id, patient_id stays empty",
        "one HDF5 row per frame: frames are sampled per clip (every_n, max_per_clip options)",
        "a diagnosis or TI-RADS value in an unknown encoding rejects that nodule's clip, naming "
        "the column, the value and the allowed values",
        "sex is Female / Male and sizes are in cm (kept in extra); age is not read",
    )
    grouping_note = (
        "annot_id names one nodule, not a patient, and the dataset publishes no patient key "
        "(192 nodules from 167 patients): frames of one nodule are grouped by study_id, but "
        "nodules of one patient cannot be grouped and may land in different splits"
    )
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

    def _metadata(self) -> tuple[dict[str, dict[str, str]], list[Reject]]:
        """Metadata rows by bare ``annot_id``, and rejects of rows that repeat an ``annot_id``."""
        with open(self.root / METADATA, newline="", encoding="utf-8-sig") as fh:
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                    for row in csv.DictReader(fh)]
        if rows and "annot_id" not in rows[0]:
            raise SourceError(
                f"source {self.name!r}: {self.root / METADATA} has no annot_id column; columns "
                f"found: {sorted(rows[0])}"
            )
        meta: dict[str, dict[str, str]] = {}
        rejects: list[Reject] = []
        for n, row in enumerate(rows, start=2):
            if not row.get("annot_id"):
                rejects.append(self.reject(f"{METADATA}#line={n}", f"{METADATA} row without an annot_id"))
            elif _bare(row["annot_id"]) in meta:
                rejects.append(self.reject(
                    f"{METADATA}#annot_id={row['annot_id']}",
                    f"{METADATA} repeats annot_id {row['annot_id']!r} (line {n}); the first row is used"))
            else:
                meta[_bare(row["annot_id"])] = row
        return meta, rejects

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        annot, frames = self._index()
        meta, duplicates = self._metadata()
        yield from duplicates
        clips: dict[str, list[int]] = {}
        for row, clip in enumerate(annot):
            clips.setdefault(clip, []).append(row)
        path = str((self.root / HDF5).resolve())
        for clip in sorted(clips, key=natural_key):
            rows = sorted(clips[clip], key=lambda r: (int(frames[r]), r))
            where = f"{HDF5}#annot_id={clip}"
            info = meta.get(_bare(clip))
            if info is None:
                yield self.reject(where, f"clip without its {METADATA} row",
                                  f"{len(rows)} frames; no row with annot_id {clip!r}")
                continue
            problems: list[tuple[str, str, str]] = []
            label: str | None = None
            findings: dict[str, str | None] = {}
            unmapped: dict[str, str] = {}
            try:
                label = diagnosis(info.get("histopath_diagnosis", ""))
            except UnknownEncoding as exc:
                problems += exc.problems
            try:
                findings, unmapped = map_tirads(info)
            except UnknownEncoding as exc:
                problems += exc.problems
            if problems:
                yield self._unknown(where, problems, len(rows))
                continue
            sex = info.get("sex", "")
            if sex and _norm(sex) not in SEX:
                unmapped["sex"] = sex
            extra = {
                "annot_id": clip,
                "clip_frames": len(rows),
                "sex": SEX.get(_norm(sex)),
                "location": info.get("location") or None,
                "size_cm": [_size(info.get(k)) for k in ("size_x", "size_y", "size_z")],
                "unmapped": unmapped,
            }
            for r in rows[:: self.options.every_n][: self.options.max_per_clip]:
                yield SourceItem(
                    source=self.name,
                    dataset="stanford_thyroid",
                    organ="thyroid",
                    path=path,
                    source_path=HDF5,
                    label=label,
                    study_id=clip,
                    frame=r,
                    findings=dict(findings),
                    extra={**extra, "frame_num": int(frames[r]), "unmapped": dict(unmapped)},
                )
        seen = {_bare(c) for c in clips}
        for key in sorted(set(meta) - seen, key=natural_key):
            yield self.reject(f"{METADATA}#annot_id={meta[key]['annot_id']}",
                              f"{METADATA} row without frames in {HDF5}")

    def _unknown(self, where: str, problems: list[tuple[str, str, str]], frames: int) -> Reject:
        """One reject for a nodule whose metadata row has values in no known encoding."""
        parts = "; ".join(f"{column} {value!r} in {METADATA} is not one of {allowed}"
                          for column, value, allowed in problems)
        kind = ("label outside vocabulary" if any(p[0] == "histopath_diagnosis" for p in problems)
                else "unknown encoding")
        return self.reject(where, f"{kind}: {parts}", f"{frames} frames of this nodule not listed")
