"""Phantom BUS-BRA: ``BUSBRA/Images``, ``Masks``, ``bus_data.csv``, the fold files and ``LICENSE.txt``.

Cases alternate benign / malignant (``per_class`` of each); every third case
has two views (``-l``, ``-r``; ``Side`` left / right) of the same lesion, the
others one (``-s``; ``Side`` single). Images are 8-bit grayscale PNGs, masks
0/255 PNGs of the drawn lesion. ``bus_data.csv`` has the real columns in the
real order (``Width`` before ``Height``) and spellings (lower-case histology,
devices such as ``GE Logiq 7 @10-14MHz``); ``BIRADS`` is the drawn category
reduced to BUS-BRA's 2, 3, 4, 5 and ``BBOX`` the mask's bounding box written
as ``[x,y,w,h]``. The fold files carry ``ID, Pathology, kFold`` and
``valid_1 ... valid_k`` (``NaN`` for the image's own fold, else 1 or 0), with
a patient's views in one fold. ``broken`` adds an image without a CSV row, a row
without its image, a mask without its image, an unknown pathology, a truncated
image and a stray ``Thumbs.db``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

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

COLUMNS: tuple[str, ...] = (
    "ID", "Case", "Histology", "Pathology", "BIRADS", "Device", "Width", "Height", "Side", "BBOX",
)
SIDES: dict[str, str] = {"l": "left", "r": "right", "s": "single"}
_HISTOLOGY: dict[str, tuple[str, ...]] = {
    "benign": ("fibroadenoma", "fibrocystic changes", "intraductal papilloma"),
    "malignant": ("invasive ductal carcinoma", "invasive lobular carcinoma", "ductal carcinoma in situ"),
}
_DEVICES: tuple[str, ...] = (
    "GE Logiq 7 @10-14MHz", "GE Logiq 5 @10-12MHz", "Toshiba Aplio 300 @12-14 MHz", "U-Systems @10-14MHz",
)


def _bbox(mask: np.ndarray) -> str:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return "[]"
    return f"[{int(xs.min())},{int(ys.min())},{int(xs.max() - xs.min() + 1)},{int(ys.max() - ys.min() + 1)}]"


def _csv(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _case(root: Path, ctx: _Ctx, case: int, label: str, views: tuple[str, ...],
          pathology: str | None = None) -> list[dict[str, str]]:
    """One patient: every view shows the lesion the first one drew."""
    rng = ctx.rng("bus_bra", case)
    first = draw("breast", label, sample_findings("breast", label, rng), rng, ctx.size)
    drawn = [first] + [draw("breast", first.label, dict(first.findings), rng, ctx.size) for _ in views[1:]]
    device, histology = pick(rng, _DEVICES), pick(rng, _HISTOLOGY[label])
    rows = []
    for view, r in zip(views, drawn, strict=True):
        name = f"{case:04d}-{view}"
        _save_png(Image.fromarray(r.image, "L"), root / "Images" / f"bus_{name}.png")
        _save_png(_mask_png(r.masks[0]), root / "Masks" / f"mask_{name}.png")
        rows.append({
            "ID": f"bus_{name}", "Case": str(case), "Histology": histology,
            "Pathology": pathology or label, "BIRADS": first.findings["birads_category"][0],
            "Device": device, "Width": str(ctx.size[1]), "Height": str(ctx.size[0]), "Side": SIDES[view],
            "BBOX": _bbox(r.masks[0]),
        })
    return rows


def _fold_row(row: dict[str, str], own: int, k: int) -> dict[str, str]:
    """A fold-file row: ``valid_j`` is NaN for the image's own test fold ``own``, else 1 or 0."""
    case = int(row["Case"])
    valid = {f"valid_{j}": "NaN" if j == own else str(int((case + j) % 5 != 0)) for j in range(1, k + 1)}
    return {"ID": row["ID"], "Pathology": row["Pathology"], "kFold": str(own), **valid}


def write_bus_bra(root: Path, ctx: _Ctx) -> Path:
    total = 2 * ctx.per_class
    rows: list[dict[str, str]] = []
    for case in range(1, total + 1):
        label = "benign" if case % 2 else "malignant"
        rows += _case(root, ctx, case, label, ("l", "r") if case % 3 == 0 else ("s",))
    if ctx.broken:
        m = total + 1
        _case(root, ctx, m, "benign", ("s",))
        rows += _case(root, ctx, m + 1, "malignant", ("s",))
        (root / "Images" / f"bus_{m + 1:04d}-s.png").unlink()
        (root / "Masks" / f"mask_{m + 1:04d}-s.png").unlink()
        _case(root, ctx, m + 2, "benign", ("s",))
        (root / "Images" / f"bus_{m + 2:04d}-s.png").unlink()
        rows += _case(root, ctx, m + 3, "benign", ("s",), pathology="unknown")
        rows += _case(root, ctx, m + 4, "malignant", ("s",))
        _truncate(root / "Images" / f"bus_{m + 4:04d}-s.png")
        _write_text(root / "Images" / "Thumbs.db", "not an image\n")
    _write_text(root / "bus_data.csv", _csv(rows, COLUMNS))
    cases = sorted({int(r["Case"]) for r in rows})
    for k in (5, 10):
        fold = {case: i % k + 1 for i, case in enumerate(cases)}
        columns = ("ID", "Pathology", "kFold", *(f"valid_{j}" for j in range(1, k + 1)))
        _write_text(root / f"{k}-fold-cv.csv", _csv([_fold_row(r, fold[int(r["Case"])], k) for r in rows], columns))
    _write_text(root / "LICENSE.txt", "Creative Commons Attribution 4.0 International (CC BY 4.0)\n")
    return root


register_layout("bus_bra", "BUSBRA", ("breast",), write_bus_bra)
