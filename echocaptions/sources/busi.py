"""BUSI, the Dataset of Breast Ultrasound Images (Al-Dhabyani et al., Data in Brief 2020).

Layout as downloaded::

    Dataset_BUSI_with_GT/
      benign/benign (1).png, benign (1)_mask.png, benign (4)_mask_1.png, ...
      malignant/malignant (1).png, malignant (1)_mask.png, ...
      normal/normal (1).png, normal (1)_mask.png, ...

The root may be ``Dataset_BUSI_with_GT`` itself or a folder holding it under
up to two wrapper folders, as archives unzip (``BUSI/archive/Dataset_BUSI_with_GT``
from Kaggle's ``archive.zip``); ``__MACOSX/`` and hidden folders are never the
data. Labels come from the class folder. BUSI has no patient ids and no findings,
so ``patient_id`` stays ``None`` (one patient may have several images: split
by near-duplicate clusters, not by patient). Masks (``_mask``, ``_mask_1``…)
are not captioned; their paths are kept in ``extra["masks"]``. ``source_path``
is relative to ``Dataset_BUSI_with_GT`` so ids do not depend on which root was
given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, register
from echocaptions.sources.imagefolder import (
    extension,
    locate_layout,
    media_kind,
    natural_key,
    sorted_files,
)

FOLDER = "Dataset_BUSI_with_GT"
CLASSES: dict[str, str] = {"benign": "benign", "malignant": "malignant", "normal": "normal"}
_MASK = re.compile(r"^(?P<image>.+?)_mask(?:_\d+)?$", re.IGNORECASE)


def _holds_classes(folder: Path) -> Path | None:
    """``folder/Dataset_BUSI_with_GT`` or ``folder`` when it holds a BUSI class folder."""
    for candidate in (folder / FOLDER, folder):
        if candidate.is_dir() and any(
            p.is_dir() and p.name.lower() in CLASSES for p in candidate.iterdir()
        ):
            return candidate
    return None


@register
class BusiSource(Source):
    """BUSI breast images, labelled by class folder, with lesion masks beside them."""

    layout = "busi"
    organs = ("breast",)
    expected = (
        f"{FOLDER}/{{benign,malignant,normal}}/'<class> (N).png' with '<class> (N)_mask.png' "
        f"beside each image (root: {FOLDER} or a folder holding it, up to two folders above)."
    )
    published = (
        "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. "
        "Data in Brief 28 (2020) 104863; https://scholar.cu.edu.eg/?q=afahmy/pages/dataset "
        "(also on Kaggle as 'Breast Ultrasound Images Dataset')."
    )
    license = "CC0-1.0"
    download = (
        "Kaggle 'Breast Ultrasound Images Dataset' (aryashah2k/breast-ultrasound-images-dataset, "
        "archive.zip) or the authors' page cited in Data in Brief 28 (2020) 104863"
    )
    folder = "BUSI"
    required = (f"{FOLDER}/benign/, {FOLDER}/malignant/, {FOLDER}/normal/ with '<class> (N).png' images",)
    optional = (
        "'<class> (N)_mask.png' (and _mask_1, _mask_2...) beside each image: without them "
        "extra['masks'] is empty (masks are kept as paths, never captioned)",
    )
    quirks = (
        f"{FOLDER}/ is found under up to two wrapper folders (e.g. BUSI/archive/{FOLDER}/); "
        "__MACOSX/ and hidden folders are skipped",
        "one image can have several masks (_mask, _mask_1, _mask_2): all are attached to it",
        "a mask without its image is a reject; a file that is not an image is a reject",
        "no patient ids: one patient may have several images, so rows are not grouped by patient",
    )
    grouping_note = (
        "BUSI publishes no patient ids; one woman may have several images, so rows cannot be "
        "grouped by patient (split by near-duplicate clusters instead)"
    )

    def base(self) -> Path:
        """The folder that holds the class folders."""
        return locate_layout(self, _holds_classes, f"{FOLDER}/ or benign/, malignant/, normal/ folders")

    def check(self) -> None:
        super().check()
        self.base()

    def _rel(self, base: Path, path: Path) -> str:
        return path.relative_to(base).as_posix()

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        base = self.base()
        for entry in sorted(base.iterdir(), key=lambda p: natural_key(p.name)):
            if entry.name.startswith("."):
                continue
            if entry.is_file():
                yield self.reject(self._rel(base, entry), "not inside a class folder",
                                  f"BUSI classes are {sorted(CLASSES)}")
                continue
            yield from self._folder(base, entry)

    def _folder(self, base: Path, folder: Path) -> Iterator[SourceItem | Reject]:
        files = sorted_files(folder)
        if not files:
            yield self.reject(self._rel(base, folder), "empty folder")
            return
        label = CLASSES.get(folder.name.lower())
        if label is None:
            for f in files:
                yield self.reject(
                    self._rel(base, f),
                    f"label outside vocabulary: folder {folder.name!r} is not a BUSI class "
                    f"{sorted(CLASSES)}",
                )
            return
        images: dict[Path, Path] = {}
        masks: dict[Path, list[Path]] = {}
        for f in files:
            kind = media_kind(f)
            if kind != "image":
                yield self.reject(self._rel(base, f), f"unknown extension {extension(f) or '(none)'!r}")
                continue
            match = _MASK.match(f.name[: len(f.name) - len(extension(f))])
            if match:
                masks.setdefault(f.with_name(match["image"] + extension(f)), []).append(f)
            else:
                images[f] = f
        for image in images:
            yield SourceItem(
                source=self.name,
                dataset="busi",
                organ="breast",
                path=str(image.resolve()),
                source_path=self._rel(base, image),
                label=label,
                extra={"masks": [self._rel(base, m) for m in masks.get(image, [])]},
            )
        for image, orphan in masks.items():
            if image not in images:
                for m in orphan:
                    yield self.reject(self._rel(base, m), "mask without its image",
                                      f"expected {self._rel(base, image)}")
