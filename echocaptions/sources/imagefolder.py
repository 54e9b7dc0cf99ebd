"""Generic layout: one sub-folder per class under the root (``root/<class>/.../*.png``).

For any dataset without its own adapter. The recipe names the organ; folder
names become labels through ``label_map`` (folder name -> schema label) or, by
default, their lower-cased name. Files directly under the root have no class
and are listed unlabelled. Videos (and animated GIFs) are listed once with
``expand=True`` so the image stage samples their frames. Segmentation masks
(``*_mask.png``, ``*_mask_1.png``) are skipped unless ``skip_masks`` is off.

This module also holds the file-kind helpers the other adapters share.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from echocaptions.schema import LABELS, ORGANS, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}
)
# Suffixes are compared lower-cased (``.MP4`` is ``.mp4``); MPEG program streams come as ``.mpeg``/``.mpg``.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpeg", ".mpg", ".gif"}
)
VOLUME_EXTENSIONS: frozenset[str] = frozenset({".nii", ".nii.gz", ".nrrd", ".mha"})
MASK_PATTERN = re.compile(r"_mask(_\d+)?$", re.IGNORECASE)
SPLIT_NAMES: dict[str, str] = {
    "train": "train", "training": "train",
    "val": "validation", "valid": "validation", "validation": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}


def extension(path: Path | str) -> str:
    """Lower-cased extension, with ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def media_kind(path: Path | str) -> str | None:
    """``image``, ``video``, ``volume``, or ``None`` for a file that is not media."""
    ext = extension(path)
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in VOLUME_EXTENSIONS:
        return "volume"
    return None


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``x (2)`` before ``x (10)``."""
    return tuple((0, int(t)) if t.isdigit() else (1, t.lower()) for t in re.split(r"(\d+)", text) if t)


def sorted_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Regular, non-hidden files under ``folder``, in natural order of their relative path."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = [
        p for p in found
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


# Folders an unzip leaves beside the data that never hold it (macOS resource forks).
_NOT_DATA = frozenset({"__macosx"})


def _subfolders(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    except OSError:
        return []
    return [
        p for p in entries
        if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in _NOT_DATA
    ]


def find_layout(
    root: Path, found: Callable[[Path], Path | None], wrappers: int = 2
) -> tuple[list[Path], list[Path]]:
    """Where a downloaded layout sits under ``root``, with up to ``wrappers`` folders between.

    Archives unzip into folders of their own (``archive/``, ``<name>/``, a
    download folder), so a layout is looked for in ``root``, then one level
    down, then two. ``found(folder)`` returns the layout's base folder when
    ``folder`` holds (or is) the layout, else None. Returns the bases at the
    shallowest level where any was found (several means the layout is there
    twice) and every folder looked in, for the error message.
    """
    level, looked = [root], []
    for _ in range(wrappers + 1):
        looked += level
        bases = [b for b in (found(f) for f in level) if b is not None]
        if bases:
            return list(dict.fromkeys(bases)), looked
        level = [sub for f in level for sub in _subfolders(f)]
    return [], looked


def describe_search(root: Path, looked: list[Path], limit: int = 12) -> str:
    """``looked in ...; found in <root>: ...`` for a layout that was not found."""
    shown = [p.relative_to(root).as_posix() if p != root else "." for p in looked]
    where = ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")
    try:
        top = sorted(root.iterdir(), key=lambda p: natural_key(p.name))
    except OSError:
        top = []
    names = [p.name + ("/" if p.is_dir() else "") for p in top]
    entries = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"looked in {where} (under {root}); found in {root}: {entries or 'nothing'}"


def locate_layout(source: Source, found: Callable[[Path], Path | None], what: str) -> Path:
    """The one base folder of ``source``'s layout under its root (see :func:`find_layout`).

    ``what`` names the folders looked for, for the errors: found twice, or not found
    (then the error lists where it looked and what the root holds).
    """
    bases, looked = find_layout(source.root, found)
    if len(bases) > 1:
        shown = ", ".join(str(b) for b in bases)
        raise SourceError(
            f"source {source.name!r}: the {what} are in {len(bases)} places ({shown}); "
            "point the source's path at one of them"
        )
    if not bases:
        raise SourceError(
            f"source {source.name!r}: no {what} in {source.root} or up to two folders below it; "
            f"{describe_search(source.root, looked)}. Layout {source.layout!r} expects: {source.expected} "
            f"Get it from: {source.published}"
        )
    return bases[0]


def is_mask(path: Path) -> bool:
    name = Path(path).name
    return bool(MASK_PATTERN.search(name[: len(name) - len(extension(name))]))


def split_name(value: str | None) -> str | None:
    """A split spelling (train/val/valid/test...) as train / validation / test."""
    if value is None or not str(value).strip():
        return None
    return SPLIT_NAMES.get(str(value).strip().lower())


class ImageFolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organ: str
    label_map: dict[str, str | None] | None = None
    dataset: str | None = None
    license: str | None = None
    view: str | None = None
    skip_masks: bool = True


@register
class ImageFolderSource(Source):
    """Class sub-folders under the root; labels from folder names."""

    layout = "imagefolder"
    organs = ORGANS
    expected = "root/<class>/<image files> (png, jpg, bmp, tif, dcm, nii, mp4, gif...), one folder per class."
    published = "any folder of images sorted into class folders (no publisher)."
    download = "your own images, one folder per class"
    folder = "any folder; point at it with --source NAME=PATH"
    required = ("ROOT/<class>/<images or videos>, with the organ option (or one organ per recipe source)",)
    optional = ("label_map: folder name -> schema label, when folder names are not the schema's labels",)
    quirks = (
        "files directly under the root have no class: they are kept unlabelled",
        "masks (*_mask.png, *_mask_1.png) are skipped; videos and GIFs are sampled by the video settings",
    )
    Options = ImageFolderOptions

    def _label(self, folder: str) -> tuple[bool, str | None]:
        """(known, label) for a class folder name."""
        organ = self.options.organ
        if self.options.label_map is not None and folder in self.options.label_map:
            return True, self.options.label_map[folder]
        label = folder.lower()
        return label in LABELS[organ], label

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        opts = self.options
        dataset = opts.dataset or self.name
        for entry in sorted(self.root.iterdir(), key=lambda p: natural_key(p.name)):
            if entry.name.startswith("."):
                continue
            if entry.is_file():
                yield from self._file(entry, None, dataset)
                continue
            files = sorted_files(entry)
            if not files:
                yield self.reject(entry, "empty folder", "a class folder with no files")
                continue
            known, label = self._label(entry.name)
            if not known:
                for f in files:
                    yield self.reject(
                        f,
                        f"label outside vocabulary: folder {entry.name!r} is not a {opts.organ} label "
                        f"{LABELS[opts.organ]}",
                        "map it with the source option label_map: {folder: label}",
                    )
                continue
            for f in files:
                yield from self._file(f, label, dataset)

    def _file(self, path: Path, label: str | None, dataset: str) -> Iterator[SourceItem | Reject]:
        kind = media_kind(path)
        if kind is None:
            yield self.reject(path, f"unknown extension {extension(path) or '(none)'!r}")
            return
        if self.options.skip_masks and kind == "image" and is_mask(path):
            return
        yield SourceItem(
            source=self.name,
            dataset=dataset,
            organ=self.options.organ,
            path=str(path.resolve()),
            source_path=self.rel(path),
            label=label,
            expand=kind in ("video", "volume"),
            view=self.options.view,
            license=self.options.license,
        )
