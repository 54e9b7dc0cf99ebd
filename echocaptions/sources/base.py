"""What every source adapter is: a named reader of one public on-disk layout.

An adapter lists items (metadata only, never pixels) from a folder laid out
exactly as the dataset is downloaded. Problems with single items (a mask
without its image, XML that does not parse, a label outside the vocabulary)
are yielded as :class:`~echocaptions.schema.Reject` so nothing is lost; a
missing or wrong root raises :class:`SourceError` before any work starts.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from echocaptions.registry import Registry
from echocaptions.schema import ORGANS, Reject, SchemaError, SourceItem, check_findings, check_label


class SourceError(RuntimeError):
    """A source cannot be read at all (missing folder, wrong layout, bad options)."""


LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
LFS_POINTER_MAX_BYTES = 1024
LFS_REASON = "git_lfs_pointer"


def is_lfs_pointer(path: str | Path) -> bool:
    """True when ``path`` is a Git LFS pointer file (a clone without ``git lfs pull``)."""
    try:
        if os.path.getsize(path) > LFS_POINTER_MAX_BYTES:
            return False
        with open(path, "rb") as fh:
            return fh.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(ABC):
    """Base class of source adapters.

    Subclasses set the class attributes, may declare an ``Options`` pydantic
    model for their recipe options, and implement :meth:`iter_items`.
    """

    layout: ClassVar[str]
    organs: ClassVar[tuple[str, ...]]
    expected: ClassVar[str]  # the on-disk layout, in a line or two
    published: ClassVar[str]  # where the dataset is published and how to get it
    license: ClassVar[str | None] = None
    Options: ClassVar[type[BaseModel]] = NoOptions
    # What ``echocaptions sources`` and the README tell a user who downloads the dataset.
    download: ClassVar[str] = ""  # where to download it, in a line
    folder: ClassVar[str] = ""  # the folder to unpack to under the data root
    required: ClassVar[tuple[str, ...]] = ()  # files / folders that must be there
    optional: ClassVar[tuple[str, ...]] = ()  # files read when present, and what is lost without them
    quirks: ClassVar[tuple[str, ...]] = ()  # known facts of the real files that the adapter handles
    # Why rows of this layout cannot be grouped by patient, when they cannot (card and ``sources``).
    grouping_note: ClassVar[str | None] = None

    def __init__(
        self, name: str, root: Path | str, options: dict[str, Any] | None = None, role: str = "train"
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.role = role
        try:
            self.options = self.Options(**(options or {}))
        except ValidationError as exc:
            raise SourceError(
                f"source {name!r} (layout {self.layout!r}): bad options: {exc.errors()[0]['msg']} "
                f"at {'.'.join(map(str, exc.errors()[0]['loc']))}; allowed options: "
                f"{sorted(self.Options.model_fields)}"
            ) from exc
        self.notices: dict[str, str] = {}
        self._lfs_pointers = 0
        organ = getattr(self.options, "organ", None)
        if organ is not None and organ not in ORGANS:
            raise SourceError(
                f"source {name!r} (layout {self.layout!r}): option organ={organ!r} is not one of {ORGANS}"
            )

    def option_file(self, name: str) -> Path | None:
        """The file a path option names (None when unset); fails early when it is missing."""
        path = self.option_path(getattr(self.options, name))
        if path is not None and not path.is_file():
            raise SourceError(f"source {self.name!r}: option {name}: {path} does not exist")
        return path

    def option_path(self, value: str | None) -> Path | None:
        """A path option (e.g. a labels CSV): absolute, or relative to the source root."""
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def notice(self, key: str, message: str) -> None:
        """Say something once per build (a missing optional file, say): shown in the summary and stats.json.

        A later call with the same key replaces the message (e.g. to update a count).
        """
        self.notices[key] = message

    def missing_message(self) -> str:
        return (
            f"source {self.name!r}: folder {self.root} does not exist or is empty. "
            f"Layout {self.layout!r} expects: {self.expected} "
            f"Get it from: {self.published}"
        )

    def check(self) -> None:
        """Fail early when the root is missing or empty."""
        if not self.root.is_dir() or not any(self.root.iterdir()):
            raise SourceError(self.missing_message())

    def items(self) -> Iterator[SourceItem | Reject]:
        """Items in a deterministic order, each validated against the vocabularies."""
        checked, pointer = None, False
        for item in self.iter_items():
            if isinstance(item, Reject):
                yield item
                continue
            try:
                item.path.encode("utf-8")
            except UnicodeEncodeError:
                shown = item.source_path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield self.reject(shown, "file name is not valid UTF-8; rename the file")
                continue
            if item.path != checked:  # frames of one file (HDF5, MAT, video) come in a row: check it once
                checked, pointer = item.path, is_lfs_pointer(item.path)
            if pointer:
                self._lfs_pointers += 1
                self.notice(
                    LFS_REASON,
                    f"{self._lfs_pointers} file(s) under {self.root} are Git LFS pointers, not media "
                    f"(the repository was cloned without its large files): run `git lfs pull` in the "
                    f"repository, then rerun the build",
                )
                yield self.reject(item.source_path, f"{LFS_REASON}: a Git LFS pointer file, not the media; "
                                  "run `git lfs pull` in the cloned repository")
                continue
            item.role = self.role
            if item.license is None:
                item.license = self.license
            try:
                check_label(item.organ, item.label)
                check_findings(item.organ, item.findings)
            except SchemaError as exc:
                yield self.reject(item.source_path, f"vocabulary: {exc}")
                continue
            yield item

    @abstractmethod
    def iter_items(self) -> Iterator[SourceItem | Reject]:
        """Yield the layout's items (or rejects) without decoding pixels."""

    # helpers for subclasses -------------------------------------------------
    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def reject(self, path: str | Path, reason: str, detail: str | None = None) -> Reject:
        if isinstance(path, Path) and path.is_absolute():
            try:
                path = self.rel(path)
            except ValueError:
                path = str(path)
        return Reject(source=self.name, path=str(path), reason=reason, stage="enumerate", detail=detail)


# Every adapter by its ``layout`` name; filled by ``@register`` as ``echocaptions.sources`` imports them.
SOURCE_LAYOUTS: Registry[type[Source]] = Registry("source layout", error=SourceError)


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: make an adapter available by its ``layout`` name."""
    return SOURCE_LAYOUTS.register(cls.layout, cls)


def registry() -> dict[str, type[Source]]:
    """Every adapter by layout name, sorted by name."""
    import echocaptions.sources  # noqa: F401  (imports every adapter module)

    return dict(sorted(SOURCE_LAYOUTS.items()))


def get_source_class(layout: str) -> type[Source]:
    """The adapter of ``layout``; an unknown layout raises :class:`SourceError` listing the known ones."""
    import echocaptions.sources  # noqa: F401  (imports every adapter module)

    return SOURCE_LAYOUTS.get(layout)
