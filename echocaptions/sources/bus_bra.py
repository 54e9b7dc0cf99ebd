"""BUS-BRA, a breast ultrasound dataset with BI-RADS categories (Gómez-Flores et al., Med. Phys. 2024).

Layout as downloaded from Zenodo::

    BUSBRA/
      Images/bus_0001-l.png, bus_0001-r.png, ..., bus_0003-s.png   (8-bit grayscale)
      Masks/mask_0001-l.png, ...                                    (lesion masks)
      bus_data.csv     ID, Case, Histology, Pathology, BIRADS, Device, Width, Height, Side, BBOX
      5-fold-cv.csv    ID, Pathology, kFold, valid_1 ... valid_5
      10-fold-cv.csv   ID, Pathology, kFold, valid_1 ... valid_10
      LICENSE.txt

The root may be ``BUSBRA`` itself or the folder containing it; ``source_path``
is relative to ``BUSBRA`` so ids do not depend on which was given. Every image
is matched to its ``bus_data.csv`` row by ``ID`` (the file name without
``.png``). ``Case`` is the patient: 1,064 patients, 811 of them with two views
of one lesion (``-l`` / ``-r``, ``Side`` left / right) and 253 with one
(``-s``, ``Side`` single). ``Pathology`` (benign / malignant, biopsy-proven) is
the label and ``BIRADS`` (2, 3, 4, 5 in the published table) the
``birads_category``, read per image (case 856 has 4 on one view and 5 on the
other). Histology, device, side, size, bounding box and the cross-validation
``kFold`` of each fold file stay in ``extra`` (the ``valid_k`` columns are not
read); BUS-BRA has no official test split. Masks are not captioned:
``Masks/mask_<N>.png`` is attached to ``Images/bus_<N>.png`` in
``extra["masks"]``.

Every value the adapter reads is checked: a ``Pathology`` other than benign /
malignant, a ``BIRADS`` outside the BI-RADS categories, a ``Side`` other than
left / right / single or an empty ``Case`` rejects the image, with the file,
the value and the expected values. A row without ``ID``, a second row with the
same ``ID``, an image without a row, a row without its image and a mask
without its image are rejects too.
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
COLUMNS: tuple[str, ...] = ("ID", "Case", "Pathology")  # the columns an item cannot do without
FOLDS: tuple[tuple[str, str], ...] = (("5-fold-cv.csv", "5"), ("10-fold-cv.csv", "10"))
PATHOLOGY: dict[str, str] = {"benign": "benign", "malignant": "malignant"}
SIDES: tuple[str, ...] = ("left", "right", "single")
_EXTRA_COLUMNS: tuple[str, ...] = ("Histology", "Device", "BBOX", "Height", "Width")


def _clean(value: str | None) -> str:
    return (value or "").strip()


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, row)`` pairs of a CSV file, values stripped."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [_clean(k) for k in reader.fieldnames or ()]
        rows = [(reader.line_num, {_clean(k): _clean(v) for k, v in row.items() if k is not None})
                for row in reader]
    return header, rows


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
        "(2024); distributed on Zenodo (https://doi.org/10.5281/zenodo.7730709)."
    )
    license = "CC-BY-4.0"
    download = (
        "Zenodo, 'BUS-BRA: A breast ultrasound dataset with BI-RADS categories' "
        "(https://doi.org/10.5281/zenodo.7730709): unpack it so that BUSBRA/ holds Images/, Masks/ "
        "and the CSV files"
    )
    folder = FOLDER
    required = (
        "Images/bus_NNNN-{l,r,s}.png: the 1,875 images",
        f"{TABLE}: Pathology (the label), BIRADS and Case (the patient) of every image",
    )
    optional = (
        "Masks/mask_NNNN-{l,r,s}.png: lesion outlines, listed with each item but not published; "
        "the build is the same without them",
        "5-fold-cv.csv, 10-fold-cv.csv: the authors' cross-validation folds (kFold), listed with each "
        "item but not published (the build makes its own patient-grouped splits); the build is the "
        "same without them",
    )
    quirks = (
        f"{TABLE} lists Width before Height; ID is the image file name without .png",
        "1,875 images of 1,064 patients (Case): 811 patients have two views of one lesion "
        "(bus_NNNN-l / -r, Side left / right), 253 one view (bus_NNNN-s, Side single); the build "
        "keeps a patient's views in one split",
        "BIRADS holds only 2, 3, 4 and 5 (no 4A / 4B / 4C) and is read per image: case 856 has 4 "
        "on one view and 5 on the other",
        "every image is benign or malignant (biopsy-proven): there is no normal class",
        "the fold files also carry Pathology and valid_1 ... valid_k (0, 1, or NaN for the image's "
        "own test fold); only kFold is read",
        "Device names the scanner and probe frequency (e.g. 'GE Logiq 7 @10-14MHz'); kept as is",
        "LICENSE.txt sits beside the tables and is not read",
    )

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
        yield from self._rows(base, rows)
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

    def _rows(self, base: Path, rows: dict[str, dict[str, str]]) -> Iterator[Reject]:
        """Fill ``rows`` (ID -> row) from the table; rows without an ID or with a repeated ID are rejects."""
        header, table = _read_table(base / TABLE)
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise SourceError(
                f"source {self.name!r}: {base / TABLE} lacks columns {missing}; columns found: "
                f"{header}. Expected: {self.expected}"
            )
        first: dict[str, int] = {}
        for line, row in table:
            key = row.get("ID", "")
            if not key:
                yield self.reject(TABLE, f"row without ID: line {line} of {TABLE} has an empty ID",
                                  "expected the image file name without .png, e.g. bus_0001-l")
            elif key in rows:
                yield self.reject(TABLE, f"repeated ID: line {line} of {TABLE} repeats ID {key!r}",
                                  f"first on line {first[key]}; that row is used")
            else:
                rows[key], first[key] = row, line

    def _folds(self, base: Path) -> dict[str, dict[str, str]]:
        folds: dict[str, dict[str, str]] = {}
        for name, k in FOLDS:
            if (base / name).is_file():
                for _, row in _read_table(base / name)[1]:
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
                f"{sorted(PATHOLOGY)}", f"row ID {row['ID']!r}")
        raw_birads = row.get("BIRADS", "")
        birads = birads_code(raw_birads) if raw_birads else None
        if raw_birads and birads is None:
            return self.reject(
                rel, f"BI-RADS outside vocabulary: BIRADS {raw_birads!r} in {TABLE} is not one of "
                f"{list(FINDINGS_VOCABULARY['birads_category'])}", f"row ID {row['ID']!r}")
        side = row.get("Side", "").lower()
        if side and side not in SIDES:
            return self.reject(
                rel, f"side outside vocabulary: Side {row['Side']!r} in {TABLE} is not one of "
                f"{list(SIDES)}", f"row ID {row['ID']!r}")
        if not row["Case"]:
            return self.reject(
                rel, f"no patient: Case is empty in {TABLE}",
                f"row ID {row['ID']!r}; expected the case (patient) number, e.g. 1 for bus_0001-l")
        return SourceItem(
            source=self.name,
            dataset="bus_bra",
            organ="breast",
            path=str(image.resolve()),
            source_path=rel,
            label=label,
            patient_id=row["Case"],
            findings={"birads_category": birads},
            extra={
                "masks": masks,
                "folds": folds,
                "side": side or None,
                **{c.lower(): row.get(c) or None for c in _EXTRA_COLUMNS},
            },
        )
