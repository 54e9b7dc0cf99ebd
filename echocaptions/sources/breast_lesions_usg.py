"""BrEaST / Breast-Lesions-USG (Pawłowska et al., Scientific Data 2024; The Cancer Imaging Archive).

Layout as downloaded from TCIA::

    BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx      (sheet "BrEaST-Lesions-USG clinical dat")
    BrEaST-Lesions_USG-images_and_masks/
      case001.png  case001_tumor.png  case001_other1.png  case002.png ...

The root is the folder holding the clinical spreadsheet (a CSV export is read
too); images are looked up in ``BrEaST-Lesions_USG-images_and_masks/`` or, when
that folder is absent, beside the spreadsheet. One item per spreadsheet row
(``Image_filename``); ``Mask_tumor_filename`` and ``Mask_other_filename``
(several names joined by ``&``) are masks, kept in ``extra["masks"]``.

``Classification`` (benign / malignant / normal) is the label, ``BIRADS`` the
category. The BI-RADS descriptors map to schema codes: ``Shape``
oval/round/irregular; ``Margin`` circumscribed, or ``not circumscribed - a&b``
reduced to its most suspicious part (spiculated > angular > microlobulated >
indistinct); ``Echogenicity`` (``complex cystic/solid`` ->
``complex_cystic_solid``); ``Posterior_features`` (``no`` -> ``none``, two
patterns -> ``combined``); ``Calcifications`` (``no`` -> ``none``, ``in a
mass`` > ``intraductal`` > ``outside of a mass``); ``Tissue_composition``
(``homogeneous: fat`` / ``homogeneous: fibroglandular`` / ``heterogeneous``);
``Orientation`` when present. ``not applicable`` / ``not available`` leave a
finding ``None``; other spellings are kept in ``extra["unmapped"]``. ``Age``
is never read (privacy). The dataset has one image per patient and no patient
column, so ``CaseID`` is the patient id.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import FINDINGS_VOCABULARY, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, natural_key, sorted_files

IMAGES = "BrEaST-Lesions_USG-images_and_masks"
CLINICAL = re.compile(r"clinical.*\.(xlsx|csv)$", re.IGNORECASE)
REQUIRED: tuple[str, ...] = ("CaseID", "Image_filename", "Classification")
CLASSES: dict[str, str] = {"benign": "benign", "malignant": "malignant", "normal": "normal"}
MISSING: frozenset[str] = frozenset({"", "not applicable", "not available", "na", "n/a", "nan", "none"})

SHAPE: dict[str, str] = {"oval": "oval", "round": "round", "irregular": "irregular"}
ORIENTATION: dict[str, str] = {"parallel": "parallel", "not parallel": "not_parallel"}
MARGIN_PARTS: tuple[str, ...] = ("spiculated", "angular", "microlobulated", "indistinct")
ECHOGENICITY: dict[str, str] = {
    "anechoic": "anechoic",
    "hypoechoic": "hypoechoic",
    "hyperechoic": "hyperechoic",
    "isoechoic": "isoechoic",
    "heterogeneous": "heterogeneous",
    "complex cystic solid": "complex_cystic_solid",
    "complex cystic and solid": "complex_cystic_solid",
}
POSTERIOR: dict[str, str] = {
    "no": "none", "none": "none", "enhancement": "enhancement", "shadowing": "shadowing",
    "combined": "combined", "combined pattern": "combined",
}
CALCIFICATIONS: dict[str, str] = {
    "no": "none", "none": "none", "in a mass": "in_mass", "intraductal": "intraductal",
    "outside of a mass": "outside_mass", "outside a mass": "outside_mass",
}
TISSUE: dict[str, str] = {
    "homogeneous fat": "homogeneous_fat",
    "homogeneous fibroglandular": "homogeneous_fibroglandular",
    "heterogeneous": "heterogeneous",
}
_EXTRA_COLUMNS: tuple[str, ...] = (
    "Signs", "Symptoms", "Halo", "Skin_thickening", "Interpretation", "Diagnosis", "Verification",
    "Pixel_size",
)


def _norm(text: str) -> str:
    return re.sub(r"[\s:/_,-]+", " ", text.strip().lower()).strip()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split("&") if n.strip()] if _norm(value) not in MISSING else []


def margin_code(raw: str) -> str | None:
    """``circumscribed`` or the most suspicious part of ``not circumscribed - a&b``."""
    text = _norm(raw)
    if text == "circumscribed":
        return "circumscribed"
    if not text.startswith("not circumscribed"):
        return None
    parts = set(text.removeprefix("not circumscribed").replace("&", " ").split())
    return next((p for p in MARGIN_PARTS if p in parts), None)


def _one_of(raw: str, table: dict[str, str], order: tuple[str, ...]) -> str | None:
    """The first code of ``order`` among the ``&``-joined parts of ``raw``."""
    codes = {table.get(_norm(part)) for part in raw.split("&")}
    if None in codes:
        return None
    return next((c for c in order if c in codes), None)


def posterior_code(raw: str) -> str | None:
    codes = {POSTERIOR.get(_norm(part)) for part in raw.split("&")}
    if None in codes:
        return None
    if {"enhancement", "shadowing"} <= codes:
        return "combined"
    if len(codes) > 1:
        codes.discard("none")
    return codes.pop() if len(codes) == 1 else None


def tissue_code(raw: str) -> str | None:
    text = _norm(raw)
    return TISSUE.get(text) or ("heterogeneous" if text.startswith("heterogeneous") else None)


_DESCRIPTORS = (
    ("Tissue_composition", "birads_tissue", tissue_code),
    ("Shape", "birads_shape", lambda raw: SHAPE.get(_norm(raw))),
    ("Orientation", "birads_orientation", lambda raw: ORIENTATION.get(_norm(raw))),
    ("Margin", "birads_margin", margin_code),
    ("Echogenicity", "birads_echo_pattern", lambda raw: ECHOGENICITY.get(_norm(raw))),
    ("Posterior_features", "birads_posterior", posterior_code),
    ("Calcifications", "birads_calcifications",
     lambda raw: _one_of(raw, CALCIFICATIONS, ("in_mass", "intraductal", "outside_mass", "none"))),
)


def read_clinical(path: Path) -> list[dict[str, str]]:
    """Rows of the clinical table (first sheet of the workbook, or a CSV export) as strings."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [{(k or "").strip(): _cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = [_cell(h) for h in next(rows, ())]
        return [
            dict(zip(header, (_cell(v) for v in row), strict=False))
            for row in rows
            if any(v is not None and str(v).strip() for v in row)
        ]
    finally:
        wb.close()


@register
class BreastLesionsUsgSource(Source):
    """BrEaST breast lesions: one image per patient with BI-RADS descriptors and pathology."""

    layout = "breast_lesions_usg"
    organs = ("breast",)
    expected = (
        "BrEaST-Lesions-USG-clinical-data-*.xlsx (or .csv; CaseID, Image_filename, "
        "Mask_tumor_filename, Shape, Margin, Echogenicity, ..., BIRADS, Classification) beside "
        f"{IMAGES}/caseNNN.png, caseNNN_tumor.png, caseNNN_otherK.png."
    )
    published = (
        "Pawłowska A, Ćwierz-Pieńkowska A, Domalik A, et al. Curated benchmark dataset for "
        "ultrasound based breast lesion analysis. Scientific Data 11 (2024) 148; The Cancer "
        "Imaging Archive, collection BREAST-LESIONS-USG "
        "(https://doi.org/10.7937/9WKK-Q141)."
    )
    license = "CC-BY-4.0"

    def clinical_file(self) -> Path:
        found = sorted((p for p in self.root.glob("*") if p.is_file() and CLINICAL.search(p.name)),
                       key=lambda p: (p.suffix.lower() != ".xlsx", p.name))
        if not found:
            raise SourceError(
                f"{self.missing_message()} (no clinical spreadsheet *clinical*.xlsx or .csv in "
                f"{self.root})"
            )
        return found[0]

    def images_dir(self) -> Path:
        folder = self.root / IMAGES
        return folder if folder.is_dir() else self.root

    def check(self) -> None:
        super().check()
        self.clinical_file()

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        table = self.clinical_file()
        rows = read_clinical(table)
        columns = set(rows[0]) if rows else set()
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise SourceError(
                f"source {self.name!r}: {table} lacks columns {missing}; columns found: "
                f"{sorted(columns)}. Expected: {self.expected}"
            )
        folder = self.images_dir()
        claimed: set[Path] = set()
        for row in sorted(rows, key=lambda r: natural_key(r["Image_filename"])):
            if row["Image_filename"] and folder / row["Image_filename"] in claimed:
                yield self.reject(folder / row["Image_filename"], "image named by two clinical-data rows",
                                  f"{table.name}: second row has CaseID {row['CaseID']!r}")
                continue
            yield from self._row(table, folder, row, claimed)
        yield from self._unclaimed(folder, claimed)

    def _row(
        self, table: Path, folder: Path, row: dict[str, str], claimed: set[Path]
    ) -> Iterator[SourceItem | Reject]:
        name = row["Image_filename"]
        image = folder / name
        mask_names = _names(row.get("Mask_tumor_filename", "")) + _names(row.get("Mask_other_filename", ""))
        masks = [folder / m for m in mask_names]
        claimed.update([image, *masks])

        def rejected(path: Path, reason: str, detail: str | None = None) -> Iterator[Reject]:
            yield self.reject(path, reason, detail)
            lost = "mask without its image" if path == image and not image.is_file() else "mask of a rejected image"
            for m in masks:
                if m.is_file():
                    yield self.reject(m, lost, f"{name or '(no image)'}: {reason}")

        if not name:
            yield from rejected(table, f"row of CaseID {row['CaseID']!r} names no Image_filename")
            return
        if not image.is_file():
            yield from rejected(image, "image named in the clinical data is missing",
                                f"{table.name}: CaseID {row['CaseID']!r}")
            return
        raw_label = row.get("Classification", "")
        label = CLASSES.get(raw_label.strip().lower())
        if label is None:
            yield from rejected(
                image, f"label outside vocabulary: Classification {raw_label!r} in {table.name} is "
                f"not one of {sorted(CLASSES)}")
            return
        findings: dict[str, str | None] = {}
        unmapped: dict[str, str] = {}
        for column, key, convert in _DESCRIPTORS:
            raw = row.get(column, "")
            if _norm(raw) in MISSING:
                if column in row:
                    findings[key] = None
                continue
            findings[key] = convert(raw)
            if findings[key] is None:
                unmapped[column] = raw
        birads = row.get("BIRADS", "").lower().removesuffix(".0")
        if birads and _norm(birads) not in MISSING:
            findings["birads_category"] = birads if birads in FINDINGS_VOCABULARY["birads_category"] else None
            if findings["birads_category"] is None:
                unmapped["BIRADS"] = row["BIRADS"]
        case = row.get("CaseID", "").removesuffix(".0") or None
        yield SourceItem(
            source=self.name,
            dataset="breast_lesions_usg",
            organ="breast",
            path=str(image.resolve()),
            source_path=self.rel(image),
            label=label,
            patient_id=case,
            findings=findings,
            extra={
                "masks": [self.rel(m) for m in masks if m.is_file()],
                "missing_masks": [self.rel(m) for m in masks if not m.is_file()],
                "unmapped": unmapped,
                **{c.lower(): row.get(c) or None for c in _EXTRA_COLUMNS},
            },
        )

    def _unclaimed(self, folder: Path, claimed: set[Path]) -> Iterator[Reject]:
        recursive = folder != self.root
        for f in sorted_files(folder, recursive=recursive):
            if f in claimed or (folder == self.root and CLINICAL.search(f.name)):
                continue
            if media_kind(f) != "image":
                yield self.reject(f, f"unknown extension {extension(f) or '(none)'!r}")
                continue
            match = re.match(r"^(?P<case>.+?)_(tumor|other\d*)$", f.stem, re.IGNORECASE)
            if match:
                image = f.with_name(match["case"] + extension(f))
                if image in claimed:
                    reason = "mask not named in the clinical data"
                elif image.is_file():
                    reason = "mask of an image without its clinical-data row"
                else:
                    reason = "mask without its image"
                yield self.reject(f, reason, f"expected {image.name} and its clinical-data row")
            else:
                yield self.reject(f, "image without its clinical-data row",
                                  f"no row has Image_filename {f.name!r}")
