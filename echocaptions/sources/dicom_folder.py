"""Generic layout: a folder of DICOM files (any depth), read header-only.

Every file that pydicom reads as DICOM is listed; its header is read with
``stop_before_pixels=True`` and the bytes after the header tell whether pixel
data follows (files without it, such as structured reports, are rejects
"no pixel data"; ``DICOMDIR`` indexes are skipped). Files that are clearly
not DICOM (``.txt``, ``.csv``, ``.json``, ...) are skipped silently, any other
non-DICOM file is a reject "not DICOM". A multi-frame file gives one item per
sampled frame (every ``every_n``-th frame, at most ``max_frames`` spread over
the clip); a single-frame file gives one item with ``frame = None``.

Optional ``labels_csv`` (a path, relative to the root or absolute) adds labels:
rows are keyed by a ``sop_instance_uid`` (or ``SOPInstanceUID``) column or by a
``file`` / ``filename`` / ``path`` column (a path relative to the root, or a
bare file name); other columns used: ``label``, ``organ``, ``report``,
``view`` and any findings field of the schema (``birads_shape``,
``liver_steatosis`` ...; only those of the row's organ). Rows that match no
file are rejects. The organ is the row's, else the ``organ`` option; a file
with neither is a reject.

Privacy. Nothing identifying leaves the header: ``patient_id`` is a salted
SHA-256 of PatientID and ``study_id`` one of StudyInstanceUID (set your own
``salt`` per project: with the default, anyone holding the raw PatientID can
recompute the pseudonym). Names, dates, institution, accession numbers and
UIDs are never copied; ``extra`` holds only technical tags (modality,
manufacturer model, photometric interpretation, frames, rows, columns,
transfer syntax) and ``burned_in_annotation`` when the header says YES, so a
later stage can mask or drop the frame. A ``source_path`` that contains an
identifier of its own file (PACS exports name files by UID or patient) is
replaced by ``pseudonymised/<salted hash><suffix>``; ``path`` stays the
local file to read and is never published. Modalities other than US are kept
and recorded in ``extra["modality"]`` (with ``extra["not_ultrasound"]``).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from echocaptions.schema import FINDINGS_BY_ORGAN, ORGANS, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, sorted_files

DEFAULT_SALT = "echocaptions-default-salt-v1"
NOT_DICOM_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".csv", ".tsv", ".json", ".jsonl", ".md", ".xml", ".yaml", ".yml", ".html", ".pdf",
     ".py", ".ini", ".log", ".db", ".xlsx", ".xls", ".zip"}
)
PIXEL_TAGS: frozenset[bytes] = frozenset(
    {b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00",
     b"\x7f\xe0\x00\x10", b"\x7f\xe0\x00\x08", b"\x7f\xe0\x00\x09"}
)
# Header values that identify a person, a visit or a file; none may reach an item.
IDENTIFYING_TAGS: tuple[str, ...] = (
    "PatientID", "PatientName", "OtherPatientIDs", "AccessionNumber", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "StudyID", "InstitutionName", "ReferringPhysicianName",
    "PatientBirthDate", "StudyDate",
)
KEY_COLUMNS_UID: tuple[str, ...] = ("sop_instance_uid", "sopinstanceuid")
KEY_COLUMNS_FILE: tuple[str, ...] = ("file", "filename", "file_name", "path")


def salted_hash(value: str, salt: str) -> str:
    """A stable pseudonym: 16 hex digits of SHA-256 over salt and value."""
    return hashlib.sha256(f"{salt}\x1f{value}".encode()).hexdigest()[:16]


def sample_indices(n: int, every_n: int = 1, max_count: int | None = None) -> list[int]:
    """Every ``every_n``-th index of ``n``; at most ``max_count`` of them, evenly spread."""
    candidates = list(range(0, n, max(1, every_n)))
    if max_count is None or len(candidates) <= max_count:
        return candidates
    if max_count <= 1:
        return [candidates[len(candidates) // 2]] if max_count == 1 else []
    step = (len(candidates) - 1) / (max_count - 1)
    return [candidates[round(i * step)] for i in range(max_count)]


class DicomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organ: str | None = None
    dataset: str | None = None
    labels_csv: str | None = None
    salt: str = DEFAULT_SALT
    every_n: int = Field(default=1, ge=1)
    max_frames: int | None = Field(default=None, ge=1)
    license: str | None = None
    view: str | None = None


@dataclass
class CsvRow:
    """One labels-CSV row: what it says about an image, and where it came from."""

    line: int
    values: dict[str, str]
    used: bool = False


@dataclass
class Labels:
    """Labels-CSV rows indexed by SOPInstanceUID, by relative path and by file name."""

    by_uid: dict[str, CsvRow] = field(default_factory=dict)
    by_path: dict[str, CsvRow] = field(default_factory=dict)
    by_name: dict[str, CsvRow] = field(default_factory=dict)
    rows: list[CsvRow] = field(default_factory=list)
    uid_keyed: bool = False


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


@register
class DicomFolderSource(Source):
    """Any folder of DICOM files; header-only listing, pseudonymised patients and studies."""

    layout = "dicom"
    organs = ORGANS
    expected = "a folder (any depth) of DICOM files (.dcm or no suffix), optionally a labels CSV."
    download = "your own DICOM export (PACS or scanner)"
    folder = "any folder; point at it with --source NAME=PATH"
    required = ("DICOM files (.dcm or no suffix), at any depth",)
    optional = ("labels_csv: labels, organ, report, view and findings keyed by SOPInstanceUID or file name",)
    quirks = (
        "patient and study ids are salted SHA-256 hashes of PatientID / StudyInstanceUID, never the raw ids",
        "multi-frame files give one row per sampled frame; files without pixel data are rejects",
    )
    published = "any DICOM export, e.g. from a PACS or an ultrasound scanner (no publisher)."
    Options = DicomOptions

    def csv_path(self) -> Path | None:
        return self.option_file("labels_csv")

    def check(self) -> None:
        super().check()
        self.csv_path()

    def _labels(self) -> Labels:
        labels = Labels()
        path = self.csv_path()
        if path is None:
            return labels
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = {h.strip().lower(): h for h in reader.fieldnames or []}
            uid_col = next((header[c] for c in KEY_COLUMNS_UID if c in header), None)
            file_col = next((header[c] for c in KEY_COLUMNS_FILE if c in header), None)
            if uid_col is None and file_col is None:
                raise SourceError(
                    f"source {self.name!r}: {path} needs a key column, one of "
                    f"{KEY_COLUMNS_UID + KEY_COLUMNS_FILE}; columns found: {sorted(header)}"
                )
            labels.uid_keyed = uid_col is not None
            for line, raw in enumerate(reader, start=2):
                values = {k.strip().lower(): _text(v) for k, v in raw.items() if k}
                row = CsvRow(line, values)
                labels.rows.append(row)
                if uid_col is not None and _text(raw.get(uid_col)):
                    labels.by_uid[_text(raw.get(uid_col))] = row
                elif file_col is not None and _text(raw.get(file_col)):
                    key = _text(raw.get(file_col)).replace("\\", "/").removeprefix("./")
                    labels.by_path[key] = row
                    labels.by_name.setdefault(Path(key).name, row)
        return labels

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        labels = self._labels()
        csv_file = self.csv_path()
        for f in sorted_files(self.root):
            if csv_file is not None and f.resolve() == csv_file.resolve():
                continue
            yield from self._file(f, labels)
        for row in labels.rows:
            if not row.used:
                where = f"{csv_file.name if csv_file else 'labels'} line {row.line}"
                if labels.uid_keyed:
                    yield self.reject(where, "labels CSV row matches no DICOM file (by SOPInstanceUID)")
                else:
                    key = next((row.values[c] for c in KEY_COLUMNS_FILE if row.values.get(c)), where)
                    yield self.reject(key, "labels CSV names a missing file", where)

    def _file(self, path: Path, labels: Labels) -> Iterator[SourceItem | Reject]:
        import pydicom
        from pydicom.errors import InvalidDicomError

        rel = self.rel(path)
        if path.name.upper() == "DICOMDIR":
            return
        try:
            with open(path, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
                has_pixels = fh.read(4) in PIXEL_TAGS
        except InvalidDicomError:
            if extension(path) not in NOT_DICOM_EXTENSIONS:
                yield self.reject(rel, "not DICOM", "pydicom found no DICOM preamble or header")
            return
        except Exception as exc:  # a damaged header is one reject, not a crash
            yield self.reject(rel, f"unreadable DICOM header: {type(exc).__name__}")
            return
        identifiers = {_text(ds.get(tag)) for tag in IDENTIFYING_TAGS if tag in ds}
        identifiers |= {_text(getattr(ds.get("PatientName"), "family_name", ""))}
        identifiers.discard("")
        if any(len(value) >= 4 and value in rel for value in identifiers):
            rel = f"pseudonymised/{salted_hash(rel, self.options.salt)}{extension(path)}"
        if not has_pixels:
            yield self.reject(rel, "no pixel data", "a DICOM object without an image (report, index...)")
            return
        row = self._row(ds, path, labels)
        values = row.values if row else {}
        organ = values.get("organ", "").lower() or self.options.organ
        if organ is None:
            yield self.reject(rel, "no organ: set the source option organ or an organ column in labels_csv")
            return
        if organ not in ORGANS:
            yield self.reject(rel, f"organ {organ!r} is not one of {ORGANS}")
            return
        findings = {k: values[k] for k in FINDINGS_BY_ORGAN[organ] if values.get(k)}
        n_frames = self._int(ds.get("NumberOfFrames")) or 1
        extra = self._extra(ds, n_frames)
        frames: list[int | None] = [None] if n_frames == 1 else list(
            sample_indices(n_frames, self.options.every_n, self.options.max_frames))
        for frame in frames:
            yield SourceItem(
                source=self.name,
                dataset=self.options.dataset or self.name,
                organ=organ,
                path=str(path.resolve()),
                source_path=rel,
                label=values.get("label", "").lower() or None,
                patient_id=self._hash(ds.get("PatientID")),
                study_id=self._hash(ds.get("StudyInstanceUID")),
                frame=frame,
                view=values.get("view") or self.options.view,
                findings=findings,
                report=values.get("report") or None,
                license=self.options.license,
                extra=dict(extra),
            )

    def _row(self, ds: Any, path: Path, labels: Labels) -> CsvRow | None:
        row = labels.by_uid.get(_text(ds.get("SOPInstanceUID"))) if labels.uid_keyed else None
        if row is None:
            rel = self.rel(path)
            row = labels.by_path.get(rel) or labels.by_name.get(path.name)
        if row is not None:
            row.used = True
        return row

    def _hash(self, value: Any) -> str | None:
        text = _text(value)
        return salted_hash(text, self.options.salt) if text else None

    @staticmethod
    def _int(value: Any) -> int | None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    def _extra(self, ds: Any, n_frames: int) -> dict[str, Any]:
        meta = getattr(ds, "file_meta", None)
        syntax = _text(meta.get("TransferSyntaxUID")) if meta is not None else ""
        modality = _text(ds.get("Modality")) or None
        extra: dict[str, Any] = {
            "modality": modality,
            "manufacturer_model": _text(ds.get("ManufacturerModelName")) or None,
            "photometric_interpretation": _text(ds.get("PhotometricInterpretation")) or None,
            "number_of_frames": n_frames,
            "rows": self._int(ds.get("Rows")),
            "columns": self._int(ds.get("Columns")),
            "transfer_syntax_uid": syntax or None,
        }
        if modality != "US":
            extra["not_ultrasound"] = True
        if _text(ds.get("BurnedInAnnotation")).upper() == "YES":
            extra["burned_in_annotation"] = True
        return extra
