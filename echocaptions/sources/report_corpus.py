"""Report corpora in the R2Gen annotation layout (image-report pairs).

Layout::

    annotation.json   {"train": [...], "val": [...], "test": [...]}
    breast/<uid>/0.png, thyroid/<uid>/0.png, liver/<uid>/0.png, ...

Each record is ``{"uid" | "id": ..., "image_path": ["breast/123/0.png", ...],
"finding" | "report": "<report text>", "labels": [...]}``. Every image of a
record becomes one item sharing the record's report; ``study_id`` is the uid
(``patient_id`` stays ``None``: the layout has none). The organ is the first
folder of the image path, or the ``organ`` option for single-organ corpora
such as R2Gen's own. The label is taken from ``labels`` when one of its
strings is a label of that organ. The split key (train / val / test) becomes
the split hint (train / validation / test). Files under the root that no
record lists are rejects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from echocaptions.schema import LABELS, ORGANS, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import media_kind, sorted_files, split_name


class ReportCorpusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotation: str = "annotation.json"
    images: str = ""
    organ: str | None = None
    dataset: str | None = None
    license: str | None = None


def _label(organ: str, labels: Any) -> str | None:
    values = labels if isinstance(labels, list) else [labels]
    for value in values:
        if isinstance(value, str) and value.strip().lower() in LABELS[organ]:
            return value.strip().lower()
    return None


@register
class ReportCorpusSource(Source):
    """Image-report pairs listed in an R2Gen-style ``annotation.json``."""

    layout = "report_corpus"
    organs = ("breast", "thyroid", "liver")
    expected = (
        'annotation.json = {"train"|"val"|"test": [{"uid", "image_path": [...], "finding", '
        '"labels"}]} with the images under the same root (<organ>/<uid>/<k>.png).'
    )
    published = (
        "any R2Gen-style report corpus (Chen et al., EMNLP 2020 annotation format), e.g. the "
        "breast / thyroid / liver ultrasound report-generation datasets distributed that way."
    )
    Options = ReportCorpusOptions

    def annotation_path(self) -> Path:
        return self.root / self.options.annotation

    def check(self) -> None:
        super().check()
        if not self.annotation_path().is_file():
            raise SourceError(f"{self.missing_message()} (no {self.options.annotation} in {self.root})")

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        path = self.annotation_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SourceError(
                f"source {self.name!r}: {path} is not valid JSON ({exc}); expected {self.expected}"
            ) from exc
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise SourceError(
                f"source {self.name!r}: {path} must map split names to lists of records; "
                f"expected {self.expected}"
            )
        return data

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        opts = self.options
        image_root = self.root / opts.images
        listed: set[Path] = {self.annotation_path().resolve()}
        for split, records in self._load().items():
            for index, record in enumerate(records):
                where = f"{opts.annotation} [{split}][{index}]"
                if not isinstance(record, dict):
                    yield self.reject(where, "record is not a JSON object")
                    continue
                uid = record.get("uid", record.get("id"))
                report = record.get("finding", record.get("report"))
                paths = record.get("image_path") or []
                if isinstance(paths, str):
                    paths = [paths]
                if not paths:
                    yield self.reject(where, "record lists no image_path")
                    continue
                for rel in paths:
                    path = image_root / rel
                    yield from self._image(path, str(rel), where, split, uid, report, record, listed)
        for f in sorted_files(self.root):
            if f.resolve() not in listed:
                yield self.reject(f, f"not listed in {opts.annotation}")

    def _image(
        self, path: Path, rel: str, where: str, split: str, uid: Any, report: Any,
        record: dict[str, Any], listed: set[Path],
    ) -> Iterator[SourceItem | Reject]:
        opts = self.options
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            yield self.reject(rel, f"image path leaves the source root ({where})")
            return
        if resolved in listed:
            yield self.reject(rel, f"listed twice ({where})")
            return
        listed.add(resolved)
        if not path.is_file():
            yield self.reject(rel, f"image listed in {opts.annotation} is missing", where)
            return
        if media_kind(path) != "image":
            yield self.reject(rel, f"not an image file ({where})")
            return
        organ = opts.organ or Path(rel).parts[0].lower()
        if organ not in ORGANS:
            yield self.reject(
                rel, f"organ outside vocabulary: folder {Path(rel).parts[0]!r} is not one of {ORGANS}",
                "set the source option organ for a single-organ corpus",
            )
            return
        yield SourceItem(
            source=self.name,
            dataset=opts.dataset or self.name,
            organ=organ,
            path=str(resolved),
            source_path=resolved.relative_to(self.root.resolve()).as_posix(),
            label=_label(organ, record.get("labels")),
            study_id=None if uid is None else str(uid),
            report=report.strip() if isinstance(report, str) and report.strip() else None,
            split_hint=split_name(split),
            license=opts.license,
            extra={"labels": record.get("labels")},
        )
