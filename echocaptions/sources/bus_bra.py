"""BUS-BRA, a breast ultrasound dataset with BI-RADS categories (Gómez-Flores et al., Med. Phys. 2024).

Layout as downloaded from Zenodo (``BUSBRA.zip``)::

    BUSBRA/
      Images/bus_0001-l.png, bus_0001-r.png, bus_0002-s.png, ...   (8-bit grayscale)
      Masks/mask_0001-l.png, ...                                    (lesion masks)
      bus_data.csv       ID, Case, Histology, Pathology, BIRADS, Device, Height, Width, Side, BBOX
      5-fold-cv.csv      ID, kFold
      10-fold-cv.csv     ID, kFold

The root may be ``BUSBRA`` itself or the folder containing it; ``source_path``
is relative to ``BUSBRA`` so ids do not depend on which was given. Every image
is matched to its ``bus_data.csv`` row by ``ID`` (the file name without
``.png``). ``Case`` is the patient (a patient may have several images),
``Pathology`` (benign / malignant, biopsy-proven) the label and ``BIRADS``
(2, 3, 4, 5) the ``birads_category``. Histology, device, side, bounding box and
the cross-validation folds stay in ``extra``; BUS-BRA has no official test
split. Masks are not captioned: ``Masks/mask_<N>.png`` is attached to
``Images/bus_<N>.png`` in ``extra["masks"]``. An image without a CSV row, a
row without its image and a mask without its image are rejects.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import FINDINGS_VOCABULARY, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, sorted_files

FOLDER = "BUSBRA"
TABLE = "bus_data.csv"
FOLDS: tuple[tuple[str, str], ...] = (("5-fold-cv.csv", "5"), ("10-fold-cv.csv", "10"))
PATHOLOGY: dict[str, str] = {"benign": "benign", "malignant": "malignant"}
_EXTRA_COLUMNS: tuple[str, ...] = ("Histology", "Device", "Side", "BBOX", "Height", "Width")


def _clean(value: str | None) -> str:
    return (value or "").strip()


def _read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [{(k or "").strip(): _clean(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def birads_code(value: str) -> str | None:
    """``4``, ``4A``, ``4.0`` -> schema code; ``None`` when outside the BI-RADS categories."""
    code = value.strip().lower().removesuffix(".0")
    return code if code in FINDINGS_VOCABULARY["birads_category"] else None


@register
class BusBraSource(Source):
    """BUS-BRA breast images: pathology label, BI-RADS category and patient from bus_data.csv."""

    layout = "bus_bra"
    organs = ("breast",)
    expected = (
        f"{FOLDER}/Images/bus_NNNN-{{l,r,s}}.png, {FOLDER}/Masks/mask_NNNN-*.png and "
        f"{FOLDER}/{TABLE} (ID, Case, Histology, Pathology, BIRADS, ...), plus 5-fold-cv.csv / "
        f"10-fold-cv.csv (root: {FOLDER} or the folder containing it)."
    )
    published = (
        "Gómez-Flores W, Gregorio-Calas MJ, Coelho de Albuquerque Pereira W. BUS-BRA: A breast "
        "ultrasound dataset for assessing computer-aided diagnosis systems. Medical Physics 51(4) "
        "(2024); distributed on Zenodo (search 'BUS-BRA')."
    )
    license = "CC-BY-4.0"

    def base(self) -> Path:
        """The folder that holds ``Images/`` and ``bus_data.csv``."""
        for candidate in (self.root, self.root / FOLDER):
            if (candidate / TABLE).is_file() and (candidate / "Images").is_dir():
                return candidate
        raise SourceError(
            f"{self.missing_message()} (no {TABLE} with an Images/ folder beside it in {self.root} "
            f"or {self.root / FOLDER})"
        )

    def check(self) -> None:
        super().check()
        self.base()

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        base = self.base()

        def rel(path: Path) -> str:
            return path.relative_to(base).as_posix()

        rows: dict[str, dict[str, str]] = {}
        for row in _read_table(base / TABLE):
            if row.get("ID"):
                rows.setdefault(row["ID"], row)
        if rows and "Pathology" not in next(iter(rows.values())):
            raise SourceError(
                f"source {self.name!r}: {base / TABLE} has no Pathology column; columns found: "
                f"{sorted(next(iter(rows.values())))}. Expected: {self.expected}"
            )
        folds = self._folds(base)
        masks: dict[str, list[Path]] = {}
        mask_dir = base / "Masks"
        for m in sorted_files(mask_dir) if mask_dir.is_dir() else []:
            stem = m.name[: len(m.name) - len(extension(m))]
            if media_kind(m) != "image" or not stem.startswith("mask_"):
                yield self.reject(rel(m), f"unknown file in Masks/ {m.name!r}",
                                  "expected mask_NNNN-<view>.png")
                continue
            masks.setdefault("bus_" + stem.removeprefix("mask_"), []).append(m)

        seen: set[str] = set()
        kept: set[str] = set()
        for image in sorted_files(base / "Images"):
            if media_kind(image) != "image":
                yield self.reject(rel(image), f"unknown extension {extension(image) or '(none)'!r}")
                continue
            stem = image.name[: len(image.name) - len(extension(image))]
            seen.add(stem)
            row = rows.get(stem)
            if row is None:
                yield self.reject(rel(image), f"image without its {TABLE} row",
                                  f"no row with ID {stem!r}")
                continue
            entry = self._item(base, image, row, [rel(m) for m in masks.get(stem, [])],
                               folds.get(stem, {}))
            if isinstance(entry, SourceItem):
                kept.add(stem)
            yield entry
        for stem in rows:
            if stem not in seen:
                yield self.reject(f"Images/{stem}.png", f"image listed in {TABLE} is missing",
                                  f"row ID {stem!r}")
        for stem, orphans in masks.items():
            if stem in kept:
                continue
            reason = "mask of a rejected image" if stem in seen else "mask without its image"
            for m in orphans:
                yield self.reject(rel(m), reason, f"Images/{stem}.png")

    def _folds(self, base: Path) -> dict[str, dict[str, str]]:
        folds: dict[str, dict[str, str]] = {}
        for name, k in FOLDS:
            if (base / name).is_file():
                for row in _read_table(base / name):
                    if row.get("ID") and row.get("kFold"):
                        folds.setdefault(row["ID"], {})[k] = row["kFold"]
        return folds

    def _item(
        self, base: Path, image: Path, row: dict[str, str], masks: list[str], folds: dict[str, str]
    ) -> SourceItem | Reject:
        rel = image.relative_to(base).as_posix()
        pathology = row.get("Pathology", "")
        label = PATHOLOGY.get(pathology.lower())
        if label is None:
            return self.reject(
                rel, f"label outside vocabulary: Pathology {pathology!r} in {TABLE} is not one of "
                f"{sorted(PATHOLOGY)}")
        raw_birads = row.get("BIRADS", "")
        birads = birads_code(raw_birads) if raw_birads else None
        if raw_birads and birads is None:
            return self.reject(rel, f"BIRADS {raw_birads!r} in {TABLE} is not a BI-RADS category",
                               f"known: {FINDINGS_VOCABULARY['birads_category']}")
        return SourceItem(
            source=self.name,
            dataset="bus_bra",
            organ="breast",
            path=str(image.resolve()),
            source_path=rel,
            label=label,
            patient_id=row.get("Case") or None,
            findings={"birads_category": birads},
            extra={
                "masks": masks,
                "folds": folds,
                **{c.lower(): row.get(c) or None for c in _EXTRA_COLUMNS},
            },
        )
