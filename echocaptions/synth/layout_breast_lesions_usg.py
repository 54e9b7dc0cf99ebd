"""Phantom BrEaST (Breast-Lesions-USG): the clinical workbook and ``caseNNN`` images with masks.

``per_class`` cases each of benign, malignant and normal, numbered in that
interleaved order. The workbook ``BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx``
has the real sheets (``BrEaST-Lesions-USG clinical dat`` and ``Data
Dictionary``), columns, cell types (``CaseID`` and ``BIRADS`` 1, 2, 3, 5 as
numbers, ``4a`` / ``4b`` / ``4c`` as text) and spellings, and states the drawn
findings in BrEaST's words: a not-circumscribed margin lists the drawn kind
first and, for angular / microlobulated / spiculated, ``&indistinct`` after it
(the adapter keeps the most suspicious part, which is the drawn one); a
heterogeneous background is ``heterogeneous: predominantly fat`` or ``...
fibroglandular``. As in the real workbook, some cells use the encodings that
carry no schema code, by case number: ``lactating&<composition>`` when
``case % 4 == 2``, ``Tissue_composition`` ``not available`` when
``case % 6 == 4``, ``Calcifications`` ``indefinable`` for a mass when
``case % 5 == 0`` and ``Age`` ``not available`` when ``case % 6 == 1``.
Even-numbered benign cases get a second lesion (where it fits) and its
``caseNNN_other1.png`` mask; normal cases have no mask and ``not applicable``
descriptors. The workbook is written with fixed timestamps so runs are
byte-identical. ``broken`` adds a row without its image, an image
without a row, a mask without its image, an unknown classification, a
truncated image and a stray text file.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from echocaptions.sources.breast_lesions_usg import IMAGES
from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import (
    _Ctx,
    _mask_png,
    _save_png,
    _truncate,
    _write_text,
    register_layout,
)
from echocaptions.synth.reports import pick, sample_findings

WORKBOOK = "BrEaST-Lesions-USG-clinical-data-Dec-15-2023.xlsx"
SHEET = "BrEaST-Lesions-USG clinical dat"
COLUMNS: tuple[str, ...] = (
    "CaseID", "Image_filename", "Mask_tumor_filename", "Mask_other_filename", "Pixel_size", "Age",
    "Tissue_composition", "Signs", "Symptoms", "Shape", "Margin", "Echogenicity",
    "Posterior_features", "Halo", "Calcifications", "Skin_thickening", "Interpretation", "BIRADS",
    "Verification", "Diagnosis", "Classification",
)
_STAMP = datetime(2023, 12, 15)
DICTIONARY: tuple[tuple[str, str | None], ...] = (  # the real "Data Dictionary" sheet, below its header
    ("Case_ID", "unique identifier"),
    ("Image_filename", "filename(s) of ultrasound b-mode image(s)"),
    ("Mask_tumor_filename", "filename(s) of binary mask overlaying a tumor"),
    ("Mask_other_filename",
     "filename(s) of binary mask overlaying other suspicious lesions in the image (e.g. cysts)"),
    ("Pixel_size", "pixel size of the image in centimeters (allows calculating the physical size of "
                   "objects in the image)"),
    ("Age", "age of patient"),
    ("Tissue_composition", "breast tissue composition assessed during examination"),
    ("Signs", "objective observable abnormalities perceived by physician"),
    ("Symptoms", "subjective experiences reported by patient"),
    ("Shape", "BI-RADS descriptor"),
    ("Margin", None), ("Echogenicity", None), ("Posterior_features", None), ("Halo", None),
    ("Calcifications", None), ("Skin_thickening", None),
    ("Interpretation", "image interpretation for mass differentiation"),
    ("BIRADS", "BI-RADS category"),
    ("Verification", "confirmed method for mass classification"),
    ("Diagnosis", "histological type of mass"),
    ("Classification", "lesion type (benign or malignant)"),
)
_TISSUE: dict[str, tuple[str, ...]] = {
    "homogeneous_fat": ("homogeneous: fat",),
    "homogeneous_fibroglandular": ("homogeneous: fibroglandular",),
    "heterogeneous": ("heterogeneous: predominantly fat", "heterogeneous: predominantly fibroglandular"),
}
_SPELL: dict[str, dict[str, str]] = {
    "birads_echo_pattern": {"complex_cystic_solid": "complex cystic/solid"},
    "birads_posterior": {"none": "no"},
    "birads_calcifications": {"none": "no", "in_mass": "in a mass", "outside_mass": "outside of a mass"},
}
_DIAGNOSIS: dict[str, tuple[str, ...]] = {
    "benign": ("Fibroadenoma", "Benign mammary dysplasia", "Intraductal papilloma"),
    "malignant": ("Invasive carcinoma of no special type (NST)", "Invasive lobular carcinoma",
                  "Ductal carcinoma in situ (DCIS)"),
}
_INTERPRETATION: dict[str, tuple[str, ...]] = {
    "benign": ("Fibroadenoma", "Dysplasia&Fibroadenoma"),
    "malignant": ("Suspicion of malignancy", "Suspicion of malignancy&Dysplasia"),
}
_SIGNS: tuple[str, ...] = ("no", "palpable", "not available", "skin retraction&palpable")
_SYMPTOMS: tuple[str, ...] = (
    "no", "not available", "family history of breast/ovarian cancer", "HRT/hormonal contraception",
)
_PIXEL_SIZES: tuple[float, ...] = (0.0078125, 0.006944444, 0.01078)


def _spell(key: str, code: str | None) -> str:
    if code is None:
        return "not applicable"
    return _SPELL.get(key, {}).get(code, code.replace("_", " "))


def _margin(code: str | None) -> str:
    if code is None:
        return "not applicable"
    if code == "circumscribed":
        return code
    return f"not circumscribed - {code}" + ("" if code == "indistinct" else "&indistinct")


def _tissue(code: str, case: int, rng: np.random.Generator) -> str:
    if case % 6 == 4:
        return "not available"
    text = pick(rng, _TISSUE[code])
    return f"lactating&{text}" if case % 4 == 2 else text


def _birads(code: str) -> str | int:
    return int(code) if code.isdigit() else code


def deterministic_xlsx(rows: list[dict[str, object]], columns: tuple[str, ...], sheet: str,
                       more: dict[str, list[tuple[object, ...]]] | None = None) -> bytes:
    """An .xlsx workbook whose bytes depend only on its cells (fixed zip and document times).

    ``rows`` fill the first sheet under a header of ``columns``; ``more`` adds sheets by name.
    """
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(list(columns))
    for row in rows:
        ws.append([row.get(c) for c in columns])
    for title, lines in (more or {}).items():
        extra = wb.create_sheet(title)
        for line in lines:
            extra.append(list(line))
    wb.properties.creator = "echocaptions phantom"
    wb.properties.created = wb.properties.modified = _STAMP
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    stamp = _STAMP.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            entry = zipfile.ZipInfo(info.filename, date_time=_STAMP.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, data)
    return out.getvalue()


def _case(folder: Path, ctx: _Ctx, case: int, label: str, classification: str | None = None) -> dict[str, object]:
    rng = ctx.rng("breast_lesions_usg", case)
    extra = 1 if label == "benign" and case % 2 == 0 else 0
    r = draw("breast", label, sample_findings("breast", label, rng), rng, ctx.size, extra_lesions=extra)
    f = r.findings
    name = f"case{case:03d}"
    _save_png(Image.fromarray(r.image, "L"), folder / f"{name}.png")
    lesions = [m for m in r.masks if m.any()]
    tumor = other = None
    if lesions:
        tumor = f"{name}_tumor.png"
        _save_png(_mask_png(lesions[0]), folder / tumor)
        others = []
        for k, mask in enumerate(lesions[1:], start=1):
            others.append(f"{name}_other{k}.png")
            _save_png(_mask_png(mask), folder / others[-1])
        other = "&".join(others) or None
    mass = label != "normal"
    verification = {"benign": pick(rng, ("confirmed by biopsy", "confirmed by follow-up care")),
                    "malignant": "confirmed by biopsy", "normal": "not applicable"}[label]
    if not mass:
        interpretation = "not applicable"
    elif label == "benign" and f.get("birads_echo_pattern") == "anechoic":
        interpretation = "Simple cyst"
    else:
        interpretation = pick(rng, _INTERPRETATION[label])
    calcifications = f.get("birads_calcifications") if mass else None
    return {
        "CaseID": case, "Image_filename": f"{name}.png", "Mask_tumor_filename": tumor,
        "Mask_other_filename": other, "Pixel_size": pick(rng, _PIXEL_SIZES),
        "Age": "not available" if case % 6 == 1 else int(rng.integers(25, 85)),
        "Tissue_composition": _tissue(f["birads_tissue"], case, rng),
        "Signs": pick(rng, _SIGNS), "Symptoms": pick(rng, _SYMPTOMS),
        "Shape": _spell("birads_shape", f.get("birads_shape") if mass else None),
        "Margin": _margin(f.get("birads_margin") if mass else None),
        "Echogenicity": _spell("birads_echo_pattern", f.get("birads_echo_pattern") if mass else None),
        "Posterior_features": _spell("birads_posterior", f.get("birads_posterior") if mass else None),
        "Halo": ("yes" if label == "malignant" and rng.random() < 0.5 else "no") if mass else "not applicable",
        "Calcifications": "indefinable" if mass and case % 5 == 0 else _spell("birads_calcifications", calcifications),
        "Skin_thickening": "yes" if label == "malignant" and rng.random() < 0.2 else "no",
        "Interpretation": interpretation,
        "BIRADS": _birads(f["birads_category"]),
        "Verification": verification,
        "Diagnosis": pick(rng, _DIAGNOSIS[label]) if verification == "confirmed by biopsy" else "not applicable",
        "Classification": classification or label,
    }


def write_breast_lesions_usg(root: Path, ctx: _Ctx) -> Path:
    folder = root / IMAGES
    rows: list[dict[str, object]] = []
    labels = ("benign", "malignant", "normal")
    for n in range(3 * ctx.per_class):
        rows.append(_case(folder, ctx, n + 1, labels[n % 3]))
    if ctx.broken:
        m = 3 * ctx.per_class + 1
        rows.append(_case(folder, ctx, m, "benign"))
        (folder / f"case{m:03d}.png").unlink()
        _case(folder, ctx, m + 1, "malignant")
        _case(folder, ctx, m + 2, "malignant")
        (folder / f"case{m + 2:03d}.png").unlink()
        rows.append(_case(folder, ctx, m + 3, "benign", classification="suspicious"))
        rows.append(_case(folder, ctx, m + 4, "malignant"))
        _truncate(folder / f"case{m + 4:03d}.png")
        _write_text(folder / "readme.txt", "images and masks\n")
    root.mkdir(parents=True, exist_ok=True)
    dictionary = [("type", "description"), *DICTIONARY]
    (root / WORKBOOK).write_bytes(deterministic_xlsx(rows, COLUMNS, SHEET, {"Data Dictionary": dictionary}))
    return root


register_layout("breast_lesions_usg", "BrEaST-Lesions-USG", ("breast",), write_breast_lesions_usg)
