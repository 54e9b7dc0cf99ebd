"""Liver fibrosis B-mode images sorted into METAVIR stage folders ``F0`` ... ``F4``.

Layout as downloaded (e.g. the Kaggle liver fibrosis collections sorted by
METAVIR stage), possibly under one or two wrapper folders and optionally split
into ``train/``, ``val/``, ``test/``::

    [<wrapper>/][<split>/]F0/<image>.jpg ... F4/<image>.jpg

Every folder named ``F0``-``F4`` (any case) below the root is a class folder;
all images inside it (recursively) get its stage: ``liver_fibrosis = Fk``;
label ``normal`` for F0, ``fibrosis`` for F1-F3, ``cirrhosis`` for F4. A
split folder above a class folder becomes ``split_hint``. The collection has
no patient ids, so ``patient_id`` stays ``None`` (frames of one patient may
fall into different splits). Images outside a class folder and unknown file
types inside one are rejects; other files outside class folders (README,
licence) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import (
    extension,
    media_kind,
    natural_key,
    sorted_files,
    split_name,
)

STAGE_FOLDER = re.compile(r"^f([0-4])$", re.IGNORECASE)
STAGE_LABELS: dict[str, str] = {
    "F0": "normal", "F1": "fibrosis", "F2": "fibrosis", "F3": "fibrosis", "F4": "cirrhosis",
}


def stage_of(folder: Path) -> str | None:
    """``F0``..``F4`` for a class folder name, else ``None``."""
    match = STAGE_FOLDER.match(folder.name)
    return f"F{match.group(1)}" if match else None


@register
class LiverFibrosisSource(Source):
    """B-mode liver images labelled by METAVIR fibrosis stage folder."""

    layout = "liver_fibrosis"
    organs = ("liver",)
    expected = (
        "[<split>/]F0/ ... F4/ folders of B-mode liver images (METAVIR stage per folder), "
        "possibly under a wrapper folder."
    )
    download = "a liver fibrosis collection sorted into METAVIR F0-F4 folders (e.g. on Kaggle)"
    folder = "liver_fibrosis"
    required = ("folders named F0 ... F4 (any case), at any depth, holding the images",)
    optional = ("train/ val/ test/ folders above the class folders: kept as the official split",)
    quirks = ("one or two wrapper folders from unzipping are found", "images outside F0-F4 folders are rejects")
    grouping_note = (
        "these collections publish no patient ids: frames of one patient may fall into different "
        "splits (near-duplicate frames are still grouped by their perceptual hash)"
    )
    published = (
        "Kaggle liver fibrosis ultrasound collections sorted by METAVIR stage, "
        "or any collection sorted into METAVIR F0-F4 folders."
    )
    license = "see the collection's page (Kaggle datasets state their own licence)"

    def class_folders(self) -> list[Path]:
        folders = [p for p in self.root.rglob("*") if p.is_dir() and stage_of(p)
                   and not any(part.startswith(".") for part in p.relative_to(self.root).parts)]
        return sorted(folders, key=lambda p: natural_key(p.relative_to(self.root).as_posix()))

    def check(self) -> None:
        super().check()
        if not self.class_folders():
            raise SourceError(f"{self.missing_message()} (no F0-F4 folder below {self.root})")

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        folders = self.class_folders()
        if not folders:
            raise SourceError(f"{self.missing_message()} (no F0-F4 folder below {self.root})")
        inside: set[Path] = set()
        for folder in folders:
            files = sorted_files(folder)
            inside.update(files)
            if not files:
                yield self.reject(folder, "empty folder", "a METAVIR class folder with no images")
            yield from self._class(folder, files)
        for f in sorted_files(self.root):
            if f not in inside and media_kind(f) == "image":
                yield self.reject(f, "not inside a METAVIR class folder",
                                  "images belong in F0/ ... F4/ folders")

    def _class(self, folder: Path, files: list[Path]) -> Iterator[SourceItem | Reject]:
        stage = stage_of(folder)
        assert stage is not None
        split = next((s for s in map(split_name, reversed(folder.relative_to(self.root).parts[:-1])) if s),
                     None)
        for f in files:
            if media_kind(f) != "image":
                yield self.reject(f, f"unknown extension {extension(f) or '(none)'!r}")
                continue
            yield SourceItem(
                source=self.name,
                dataset="liver_fibrosis",
                organ="liver",
                path=str(f.resolve()),
                source_path=self.rel(f),
                label=STAGE_LABELS[stage],
                findings={"liver_fibrosis": stage},
                split_hint=split,
            )
