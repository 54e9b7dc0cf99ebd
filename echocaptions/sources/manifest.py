"""Generic layout: a manifest (CSV or JSONL) that lists images and their metadata.

Columns (CSV header or JSON keys): ``path`` and ``organ`` (or the ``organ``
option) are required; ``label``, ``report``, ``patient_id``, ``study_id``,
``license``, ``split`` (train / val / test), ``view``, ``frame``, ``dataset``
are optional, and any column named like a schema finding
(``tirads_composition``, ``birads_shape``...) becomes that finding; a JSONL
``findings`` object works too. Paths are relative to the manifest's folder.
Videos without a ``frame`` are listed with ``expand=True``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from echocaptions.schema import FINDINGS_FIELDS, ORGANS, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, split_name

DEFAULT_FILES: tuple[str, ...] = ("manifest.csv", "manifest.jsonl")


class ManifestOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str | None = None
    organ: str | None = None
    dataset: str | None = None
    license: str | None = None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@register
class ManifestSource(Source):
    """Images listed in ``manifest.csv`` / ``manifest.jsonl``, with their metadata."""

    layout = "manifest"
    organs = ORGANS
    expected = (
        "a manifest.csv (header row) or manifest.jsonl with columns path, organ, label and "
        "optional report, patient_id, study_id, license, split, view, frame; paths relative "
        "to the manifest's folder."
    )
    download = "your own manifest file listing your images"
    folder = "the manifest's folder (paths in it are relative to it)"
    required = ("manifest.csv (header row) or manifest.jsonl with path and organ (or the organ option)",)
    optional = ("label, report, patient_id, study_id, license, split, view, frame, dataset and findings columns",)
    published = "your own manifest (no publisher)."
    Options = ManifestOptions

    def manifest_path(self) -> Path:
        if self.root.is_file():
            return self.root
        names = (self.options.file,) if self.options.file else DEFAULT_FILES
        for name in names:
            if name and (self.root / name).is_file():
                return self.root / name
        raise SourceError(
            f"source {self.name!r} (layout 'manifest'): no {' or '.join(n for n in names if n)} "
            f"in {self.root}. Expected {self.expected} Set the source option file to its name."
        )

    def check(self) -> None:
        self.manifest_path()

    def _rows(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        """(line number, row, parse error) for each data row."""
        if extension(path) in (".jsonl", ".ndjson", ".json"):
            with open(path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        yield number, None, f"line does not parse as JSON: {exc}"
                        continue
                    if isinstance(row, dict):
                        yield number, row, None
                    else:
                        yield number, None, "line is not a JSON object"
            return
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "path" not in (reader.fieldnames or []):
                raise SourceError(
                    f"source {self.name!r}: {path} has no 'path' column (columns: {reader.fieldnames}); "
                    f"expected {self.expected}"
                )
            for number, row in enumerate(reader, 2):
                yield number, dict(row), None

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        manifest = self.manifest_path()
        base = manifest.parent
        opts = self.options
        seen: set[str] = set()
        for number, row, error in self._rows(manifest):
            where = f"{manifest.name}:{number}"
            if row is None:
                yield self.reject(where, "manifest row does not parse", error)
                continue
            rel = _clean(row.get("path"))
            if rel is None:
                yield self.reject(where, "manifest row has no path")
                continue
            path = (base / rel) if not Path(rel).is_absolute() else Path(rel)
            source_path = Path(rel).as_posix()
            frame_text = _clean(row.get("frame"))
            key = f"{source_path}#{frame_text}"
            if key in seen:
                yield self.reject(source_path, f"listed twice ({where})")
                continue
            seen.add(key)
            if not path.is_file():
                yield self.reject(source_path, "file listed in the manifest is missing", where)
                continue
            kind = media_kind(path)
            if kind is None:
                yield self.reject(source_path, f"unknown extension {extension(path) or '(none)'!r}", where)
                continue
            organ = (_clean(row.get("organ")) or opts.organ or "").lower()
            if organ not in ORGANS:
                yield self.reject(
                    source_path, f"organ outside vocabulary: {organ or '(empty)'!r} is not one of {ORGANS}",
                    f"{where}: fill the organ column or set the source option organ",
                )
                continue
            try:
                frame = int(frame_text) if frame_text is not None else None
            except ValueError:
                yield self.reject(source_path, f"frame {frame_text!r} is not an integer", where)
                continue
            findings: dict[str, str | None] = {}
            nested = row.get("findings")
            if isinstance(nested, dict):
                findings.update({k: _clean(v) for k, v in nested.items()})
            for name in FINDINGS_FIELDS:
                if _clean(row.get(name)) is not None:
                    findings[name] = _clean(row.get(name))
            label = _clean(row.get("label"))
            yield SourceItem(
                source=self.name,
                dataset=_clean(row.get("dataset")) or opts.dataset or self.name,
                organ=organ,
                path=str(path.resolve()),
                source_path=source_path,
                label=label.lower() if label else None,
                patient_id=_clean(row.get("patient_id")),
                study_id=_clean(row.get("study_id")),
                frame=frame,
                expand=kind in ("video", "volume") and frame is None,
                view=_clean(row.get("view")),
                findings=findings,
                report=_clean(row.get("report")),
                license=_clean(row.get("license")) or opts.license,
                split_hint=split_name(_clean(row.get("split"))),
            )
