"""BrEaST / Breast-Lesions-USG (Pawłowska et al., Scientific Data 2024; The Cancer Imaging Archive).

Layout as downloaded from TCIA::

    BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx
        sheet "BrEaST-Lesions-USG clinical dat"   one row per image (256)
        sheet "Data Dictionary"                   what each column means (not read)
    BrEaST-Lesions_USG-images_and_masks/
      case001.png  case001_tumor.png  case022_other1.png  case022_other2.png ...

The root is the folder holding the clinical workbook (a CSV export is read
too); images are looked up in ``BrEaST-Lesions_USG-images_and_masks/`` or, when
that folder is absent, beside the workbook. One item per row of the first
sheet (``Image_filename``); ``Mask_tumor_filename`` and ``Mask_other_filename``
(several names joined by ``&``) are masks, kept in ``extra["masks"]``. The
dataset has one image per patient and no other patient column, so ``CaseID``
is the patient id. ``Age`` is never read (privacy).

How each column's spellings (every distinct value of the December 2023
workbook) become schema codes:

- ``Classification``: benign, malignant, normal -> the label.
- ``BIRADS``: 1, 2, 3, 5 (numbers) and 4a, 4b, 4c (text) -> ``birads_category``.
- ``Tissue_composition`` -> ``birads_tissue`` (ACR BI-RADS background
  echotexture): ``homogeneous: fat`` -> homogeneous_fat; ``homogeneous:
  fibroglandular`` -> homogeneous_fibroglandular; ``heterogeneous:
  predominantly fat`` and ``heterogeneous: predominantly fibroglandular`` ->
  heterogeneous. ``lactating`` is a state of the breast, not a BI-RADS
  descriptor: ``lactating&<composition>`` maps the composition and sets
  ``extra["lactating"]``; ``lactating`` alone states no composition, so
  ``birads_tissue`` stays unset and ``extra["lactating"]`` is True. The raw
  value is kept in ``extra["tissue_composition"]``.
- ``Shape``: oval, round, irregular.
- ``Margin``: ``circumscribed``, or ``not circumscribed - a&b...`` with parts
  angular, indistinct, microlobulated, spiculated, reduced to the most
  suspicious part (spiculated > angular > microlobulated > indistinct).
- ``Echogenicity``: anechoic, hypoechoic, hyperechoic, isoechoic,
  heterogeneous, ``complex cystic/solid`` -> complex_cystic_solid.
- ``Posterior_features``: ``no`` (or ``none``) -> none, enhancement,
  shadowing, combined (``enhancement&shadowing`` -> combined).
- ``Calcifications``: ``no`` (or ``none``) -> none, ``in a mass`` -> in_mass,
  intraductal, ``outside of a mass`` -> outside_mass (several joined by ``&``:
  in_mass > intraductal > outside_mass).
- ``Halo``, ``Skin_thickening``: yes / no -> ``extra["halo"]``,
  ``extra["skin_thickening"]`` (True / False); the schema has no field for them.
- ``Verification``: ``confirmed by biopsy`` -> ``extra["verification"]`` biopsy,
  ``confirmed by follow-up care`` -> follow_up.

In every one of these columns ``not applicable`` (the 4 normal cases) and
``not available`` leave the value unset. ``indefinable`` (Calcifications of
cases 58 and 73) means the reader could not tell: ``birads_calcifications`` is
``indeterminate`` (a column without such a code would stay unset), and the
column is listed in ``extra["indefinable"]``. Any other value rejects the image, with the workbook, the column, the
value and the expected spellings. ``Signs``, ``Symptoms``, ``Interpretation``,
``Diagnosis`` (free text, ``&``-joined) and ``Pixel_size`` (cm) are kept as
they are in ``extra``. The Data Dictionary allows several ``Image_filename``
names in a row; no published row has more than one, and a row that does is a
reject (its masks could not be told apart). A mask the workbook names but the
folder lacks keeps the image and is counted in a build notice.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from echocaptions.schema import FINDINGS_VOCABULARY, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, natural_key, sorted_files

IMAGES = "BrEaST-Lesions_USG-images_and_masks"
CLINICAL = re.compile(r"clinical.*\.(xlsx|csv)$", re.IGNORECASE)
REQUIRED: tuple[str, ...] = ("CaseID", "Image_filename", "Classification")
CLASSES: dict[str, str] = {"benign": "benign", "malignant": "malignant", "normal": "normal"}
MISSING: frozenset[str] = frozenset({"", "not applicable", "not available", "na", "n/a", "nan"})
INDEFINABLE = "indefinable"
LACTATING = "lactating"

# BrEaST's spellings (as written in the workbook) -> schema codes.
TISSUE: dict[str, str] = {
    "homogeneous: fat": "homogeneous_fat",
    "homogeneous: fibroglandular": "homogeneous_fibroglandular",
    "heterogeneous": "heterogeneous",
    "heterogeneous: predominantly fat": "heterogeneous",
    "heterogeneous: predominantly fibroglandular": "heterogeneous",
}
SHAPE: dict[str, str] = {"oval": "oval", "round": "round", "irregular": "irregular"}
MARGIN_PARTS: tuple[str, ...] = ("spiculated", "angular", "microlobulated", "indistinct")
ECHOGENICITY: dict[str, str] = {
    "anechoic": "anechoic",
    "hypoechoic": "hypoechoic",
    "hyperechoic": "hyperechoic",
    "isoechoic": "isoechoic",
    "heterogeneous": "heterogeneous",
    "complex cystic/solid": "complex_cystic_solid",
    "complex cystic and solid": "complex_cystic_solid",
}
POSTERIOR: dict[str, str] = {
    "no": "none", "none": "none", "enhancement": "enhancement", "shadowing": "shadowing", "combined": "combined",
}
CALCIFICATIONS: dict[str, str] = {
    "no": "none", "none": "none", "in a mass": "in_mass", "intraductal": "intraductal",
    "outside of a mass": "outside_mass",
}
YES_NO: dict[str, bool] = {"yes": True, "no": False}
VERIFICATION: dict[str, str] = {
    "confirmed by biopsy": "biopsy", "confirmed by follow-up care": "follow_up",
}
_EXTRA_COLUMNS: tuple[str, ...] = ("Signs", "Symptoms", "Interpretation", "Diagnosis", "Pixel_size")
T = TypeVar("T")


def _norm(text: str) -> str:
    return re.sub(r"[\s:/_,-]+", " ", text.strip().lower()).strip()


def _lookup(table: Mapping[str, T], raw: str) -> T | None:
    wanted = _norm(raw)
    return next((v for k, v in table.items() if _norm(k) == wanted), None)


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
    if not parts or not parts <= set(MARGIN_PARTS):
        return None
    return next(p for p in MARGIN_PARTS if p in parts)


def _one_of(raw: str, table: dict[str, str], order: tuple[str, ...]) -> str | None:
    """The first code of ``order`` among the ``&``-joined parts of ``raw``."""
    codes = {_lookup(table, part) for part in raw.split("&")}
    if None in codes:
        return None
    return next((c for c in order if c in codes), None)


def posterior_code(raw: str) -> str | None:
    codes = {_lookup(POSTERIOR, part) for part in raw.split("&")}
    if None in codes:
        return None
    if {"enhancement", "shadowing"} <= codes:
        return "combined"
    if len(codes) > 1:
        codes.discard("none")
    return codes.pop() if len(codes) == 1 else None


def split_lactating(raw: str) -> tuple[str, bool]:
    """``lactating&homogeneous: fat`` -> (``homogeneous: fat``, True); ``lactating`` -> ('', True)."""
    parts = [p for p in raw.split("&") if p.strip()]
    rest = [p for p in parts if _norm(p) != LACTATING]
    return "&".join(rest), len(rest) < len(parts)


def tissue_code(raw: str) -> str | None:
    """The BI-RADS tissue composition of one composition spelling (no ``lactating`` part)."""
    return _lookup(TISSUE, raw)


@dataclass(frozen=True)
class Descriptor:
    """One workbook column mapped to a schema finding; ``expected`` lists the spellings read."""

    column: str
    key: str
    convert: Callable[[str], str | None]
    expected: str


DESCRIPTORS: tuple[Descriptor, ...] = (
    Descriptor("Tissue_composition", "birads_tissue", tissue_code,
               f"{sorted(TISSUE)}, optionally after 'lactating&'"),
    Descriptor("Shape", "birads_shape", lambda raw: _lookup(SHAPE, raw), str(sorted(SHAPE))),
    Descriptor("Margin", "birads_margin", margin_code,
               f"'circumscribed' or 'not circumscribed - ' with parts {sorted(MARGIN_PARTS)} joined by '&'"),
    Descriptor("Echogenicity", "birads_echo_pattern", lambda raw: _lookup(ECHOGENICITY, raw),
               str(sorted(ECHOGENICITY))),
    Descriptor("Posterior_features", "birads_posterior", posterior_code,
               f"{sorted(POSTERIOR)} (two joined by '&')"),
    Descriptor("Calcifications", "birads_calcifications",
               lambda raw: _one_of(raw, CALCIFICATIONS, ("in_mass", "intraductal", "outside_mass", "none")),
               f"{sorted(CALCIFICATIONS)} (several joined by '&')"),
)
# Columns without a schema field, coded into ``extra`` under the lower-cased column name.
CODED_EXTRA: tuple[tuple[str, Mapping[str, object]], ...] = (
    ("Halo", YES_NO), ("Skin_thickening", YES_NO), ("Verification", VERIFICATION),
)
_OUTSIDE = "descriptor outside vocabulary"


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


@dataclass
class CodedRow:
    """What one row says, in schema codes."""

    label: str
    findings: dict[str, str | None]
    extra: dict[str, object]


def code_row(row: dict[str, str], table: str) -> CodedRow | str:
    """The label, findings and coded extras of one row, or the reason it cannot be read."""
    raw_label = row.get("Classification", "")
    label = CLASSES.get(raw_label.strip().lower())
    if label is None:
        return (f"label outside vocabulary: Classification {raw_label!r} in {table} is not one of "
                f"{sorted(CLASSES)}")
    findings: dict[str, str | None] = {}
    indefinable: list[str] = []
    extra: dict[str, object] = {"indefinable": indefinable}
    tissue = row.get("Tissue_composition", "")
    if "Tissue_composition" in row:
        extra["tissue_composition"] = tissue or None
        extra["lactating"] = None if _norm(tissue) in MISSING else split_lactating(tissue)[1]
    for d in DESCRIPTORS:
        if d.column not in row:
            continue
        raw = split_lactating(row[d.column])[0] if d.column == "Tissue_composition" else row[d.column]
        findings[d.key] = None
        if _norm(raw) in MISSING:
            continue
        if _norm(raw) == INDEFINABLE:
            indefinable.append(d.column)
            if "indeterminate" in FINDINGS_VOCABULARY[d.key]:
                findings[d.key] = "indeterminate"
            continue
        findings[d.key] = d.convert(raw)
        if findings[d.key] is None:
            return f"{_OUTSIDE}: {d.column} {row[d.column]!r} in {table} is not one of {d.expected}"
    birads = row.get("BIRADS", "").lower().removesuffix(".0")
    if "BIRADS" in row:
        findings["birads_category"] = None if _norm(birads) in MISSING else birads
        if findings["birads_category"] not in (None, *FINDINGS_VOCABULARY["birads_category"]):
            return (f"BI-RADS outside vocabulary: BIRADS {row['BIRADS']!r} in {table} is not one of "
                    f"{list(FINDINGS_VOCABULARY['birads_category'])}")
    for column, table_ in CODED_EXTRA:
        raw = row.get(column, "")
        value = None if _norm(raw) in MISSING else _lookup(table_, raw)
        if value is None and _norm(raw) not in MISSING:
            return f"{_OUTSIDE}: {column} {raw!r} in {table} is not one of {sorted(table_)}"
        extra[column.lower()] = value
    return CodedRow(label, findings, extra)


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
    download = (
        "The Cancer Imaging Archive, collection BrEaST-Lesions_USG (https://doi.org/10.7937/9WKK-Q141): "
        f"the clinical-data workbook (.xlsx) and the {IMAGES} folder of PNG images and masks"
    )
    folder = "BrEaST-Lesions-USG"
    required = (
        "BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx (or another *clinical*.xlsx / .csv): "
        "one row per image with the label and BI-RADS descriptors",
        f"{IMAGES}/caseNNN.png: the 256 images (or the images beside the workbook)",
    )
    optional = (
        f"{IMAGES}/caseNNN_tumor.png, caseNNN_otherK.png: lesion masks, listed with each item but "
        "not published; the build is the same without them",
    )
    quirks = (
        "the data sheet is 'BrEaST-Lesions-USG clinical dat' (cut at 31 characters); a second "
        "sheet, 'Data Dictionary', is not read",
        "CaseID is a number, one image per patient; BIRADS is a number for 1, 2, 3, 5 and text for "
        "4a, 4b, 4c",
        "Tissue_composition 'heterogeneous: predominantly fat / fibroglandular' maps to "
        "heterogeneous; 'lactating&<composition>' maps the composition; 'lactating' alone (case 31) "
        "names no composition, so birads_tissue stays empty",
        "Calcifications 'indefinable' (cases 58, 73: the reader could not tell) becomes "
        "birads_calcifications = indeterminate",
        "the Data Dictionary sheet spells the first column Case_ID; the data sheet says CaseID",
        "Margin lists every not-circumscribed part ('not circumscribed - spiculated&angular&"
        "indistinct'); the most suspicious part is kept",
        "the 4 normal cases have no tumor mask and 'not applicable' descriptors; 7 cases name up to "
        "4 '&'-joined Mask_other_filename masks",
        "there is no Orientation column; Age is 'not available' in 42 rows and never read",
    )

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
        self._absent_masks = 0
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
        case = f"CaseID {row['CaseID']!r}"

        def rejected(path: Path, reason: str, detail: str | None = None) -> Iterator[Reject]:
            yield self.reject(path, reason, detail)
            lost = "mask without its image" if path == image and not image.is_file() else "mask of a rejected image"
            for m in masks:
                if m.is_file():
                    yield self.reject(m, lost, f"{name or '(no image)'}: {reason}")

        if not name:
            yield from rejected(table, f"row of CaseID {row['CaseID']!r} names no Image_filename")
            return
        if "&" in name:
            yield from rejected(table, f"several images in one row: Image_filename {name!r} in {table.name}",
                                f"{case}; expected one file name per row")
            return
        if not image.is_file():
            yield from rejected(image, "image named in the clinical data is missing", f"{table.name}: {case}")
            return
        if not row["CaseID"]:
            yield from rejected(image, f"no patient: CaseID is empty in {table.name}",
                                "expected the case number, e.g. 1 for case001.png")
            return
        coded = code_row(row, table.name)
        if isinstance(coded, str):
            yield from rejected(image, coded, case)
            return
        absent = [self.rel(m) for m in masks if not m.is_file()]
        if absent:
            self._absent_masks += len(absent)
            self.notice("absent_masks", f"{self._absent_masks} mask(s) named in {table.name} are absent "
                        f"(first: {absent[0]}); the images are kept; download the whole {IMAGES} "
                        "folder to have them")
        yield SourceItem(
            source=self.name,
            dataset="breast_lesions_usg",
            organ="breast",
            path=str(image.resolve()),
            source_path=self.rel(image),
            label=coded.label,
            patient_id=row["CaseID"].removesuffix(".0"),
            findings=coded.findings,
            extra={
                "masks": [self.rel(m) for m in masks if m.is_file()],
                "missing_masks": absent,
                **coded.extra,
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
