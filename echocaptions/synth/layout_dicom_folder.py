"""Phantom of a scanner's DICOM export: ``dicom/`` with real DICOM files and a labels CSV.

``per_class`` breast images per label (benign, malignant, normal), two per
patient, written as ultrasound DICOM with pydicom: 8-bit ``MONOCHROME2``
single frames, every third one ``RGB``, every fourth a multi-frame file
(``NumberOfFrames`` 6, distinct frames drawn with the same findings) and one
marked ``BurnedInAnnotation YES``. Files live in
``dicom/<series folder>/IM_<n>.dcm``; one file is named by its own
SOPInstanceUID, as PACS exports do. Every header carries fake identifiers
(PatientName, PatientID, birth and study dates, InstitutionName,
AccessionNumber, UIDs; :data:`IDENTIFIERS` lists the tags) so privacy can be
tested. ``labels.csv`` (``file``, ``label``, ``organ``, BI-RADS findings of the
drawn image) covers every file but one, which stays unlabelled. UIDs derive
from the seed, so two runs write identical bytes. ``broken=True`` adds a
DICOM object without pixel data, a CT image (kept, recorded), a file that is
not DICOM, a note ``README.txt`` and a CSV row naming a missing file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import _Ctx, _write_text, register_layout
from echocaptions.synth.reports import sample_findings

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
IDENTIFIERS: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "StudyDate", "SeriesDate", "InstitutionName",
    "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyID",
    "ReferringPhysicianName",
)
FINDINGS_COLUMNS: tuple[str, ...] = ("birads_tissue", "birads_shape", "birads_margin", "birads_echo_pattern")
N_FRAMES = 6
_FAMILY = ("Rossi", "Kowalski", "Moreau", "Tanaka", "Okafor", "Lindqvist", "Haddad", "Novak")


def _uid(ctx: _Ctx, *keys: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["echocaptions-phantom", str(ctx.seed), *map(str, keys)])


def _header(ctx: _Ctx, patient: int, sop_class: str, sop_uid: str, modality: str) -> object:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    rng = ctx.rng("dicom", "patient", patient)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.Manufacturer = "Phantom Medical"
    ds.ManufacturerModelName = "EchoSim 3"
    ds.PatientName = f"{_FAMILY[patient % len(_FAMILY)]}^Maria{patient}"
    ds.PatientID = f"MRN{int(rng.integers(10**6, 10**7))}"
    ds.PatientBirthDate = f"19{int(rng.integers(40, 99))}0{int(rng.integers(1, 9))}1{int(rng.integers(0, 9))}"
    ds.StudyDate = ds.SeriesDate = f"2021{int(rng.integers(10, 12))}0{int(rng.integers(1, 9))}"
    ds.InstitutionName = "Saint Phantom General Hospital"
    ds.ReferringPhysicianName = "Ortega^Luis"
    ds.AccessionNumber = f"ACC{int(rng.integers(10**5, 10**6))}"
    ds.StudyID = f"S{patient:04d}"
    ds.StudyInstanceUID = _uid(ctx, "study", patient)
    ds.SeriesInstanceUID = _uid(ctx, "series", patient, modality)
    return ds


def _pixels(ds: object, frames: list[np.ndarray], rgb: bool) -> None:
    h, w = frames[0].shape
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if rgb:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        data = np.stack([np.repeat(f[..., None], 3, axis=2) for f in frames])
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        data = np.stack(frames)
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = data.astype(np.uint8).tobytes()


def _save(ds: object, path: Path) -> None:
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        ds.save_as(buffer, write_like_original=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def _image(ctx: _Ctx, root: Path, n: int, label: str, patient: int, named_by_uid: bool = False,
           modality: str = "US") -> tuple[str, dict[str, str]]:
    """Write image ``n``; return its path relative to ``root`` and the drawn findings."""
    rng = ctx.rng("dicom", n)
    multi = n % 4 == 0
    r = draw("breast", label, sample_findings("breast", label, rng), rng, ctx.size, masks=False)
    frames = [r.image] + [draw("breast", r.label, dict(r.findings), rng, ctx.size, masks=False).image
                          for _ in range(N_FRAMES - 1 if multi else 0)]
    sop_uid = _uid(ctx, "sop", n)
    sop_class = CT_IMAGE if modality == "CT" else US_MULTIFRAME if multi else US_IMAGE
    ds = _header(ctx, patient, sop_class, sop_uid, modality)
    ds.InstanceNumber = n
    if n == 2:
        ds.BurnedInAnnotation = "YES"
    _pixels(ds, frames, rgb=n % 3 == 0)
    name = f"{sop_uid}.dcm" if named_by_uid else f"IM_{n:04d}.dcm"
    rel = f"series_{patient}/{name}"
    _save(ds, root / rel)
    return rel, dict(r.findings)


def _no_pixels(ctx: _Ctx, path: Path) -> None:
    ds = _header(ctx, 1, BASIC_TEXT_SR, _uid(ctx, "sr"), "SR")
    ds.ContentDate = "20210101"
    _save(ds, path)


def write_dicom_folder(root: Path, ctx: _Ctx) -> Path:
    rows: list[dict[str, str]] = []
    n = 0
    for label in ("benign", "malignant", "normal"):
        for _ in range(ctx.per_class):
            n += 1
            rel, findings = _image(ctx, root, n, label, patient=(n + 1) // 2, named_by_uid=n == 3)
            if n != 1:
                rows.append({"file": rel, "label": label, "organ": "breast",
                             **{k: findings.get(k, "") for k in FINDINGS_COLUMNS}})
    _write_text(root / "README.txt", "Exported from the phantom scanner.\n")
    if ctx.broken:
        _no_pixels(ctx, root / "series_1" / "SR_0001.dcm")
        rel, _ = _image(ctx, root, n + 1, "benign", patient=99, modality="CT")
        rows.append({"file": rel, "label": "benign", "organ": "breast"})
        _write_text(root / "series_1" / "garbage.bin", "this is not a DICOM file\n" * 8)
        rows.append({"file": "series_9/IM_0999.dcm", "label": "malignant", "organ": "breast"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["file", "label", "organ", *FINDINGS_COLUMNS],
                            lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(root / "labels.csv", buffer.getvalue())
    return root


register_layout("dicom", "dicom", ("breast",), write_dicom_folder)
