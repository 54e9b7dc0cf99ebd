"""Report corpora in the R2Gen annotation layout (image-report pairs).

Layout::

    annotation.json   {"train": [...], "val": [...], "test": [...]}
    breast/<uid>/0.png, thyroid/<uid>/0.png, liver/<uid>/0.png, ...

Each record is ``{"uid" | "id": ..., "image_path": ["breast/123/0.png", ...],
"finding" | "report": "<report text>", "labels": [...], "organ"?: ...}``.
Every image of a record becomes one item sharing the record's report;
``study_id`` is the uid (``patient_id`` stays ``None``: the layout has none).
The public ultrasound corpora write ``annotation.json`` with a UTF-8 byte-order
mark and hold Chinese reports, often word-segmented with spaces; the file is
read with or without the mark, and the reports go to the report stage as they
are (it detects the language, de-identifies and translates).

The organ of an item comes from the first of these rules that names one:

1. the record's ``organ`` key (English or Chinese: ``thyroid``, ``甲状腺``);
2. a label that names an organ (``breast``, ``乳腺``, ``甲状腺结节``, ``肝``, ``肺``);
3. the first folder of the image path (``breast/…``, ``乳腺/…``);
4. the source option ``organ``, for single-organ corpora such as R2Gen's own.

The rule that decided is kept in ``extra["organ_from"]`` (``organ_key``,
``label``, ``folder``, ``option``) and published as the flag
``organ_from=<rule>`` in ``caption_meta.flags``; an image no rule decides is a reject whose
reason lists what each rule saw. The label is taken from ``labels`` when one
of its strings is a label of that organ (English, or Chinese 正常 / 良性 /
恶性). The split key (train / val / test) becomes the split hint (train /
validation / test). Files under the root that no record lists are rejects.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from echocaptions.schema import LABELS, ORGANS, Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import media_kind, sorted_files, split_name

# Names of the organs as corpora write them (lower-cased); Chinese names also match as a prefix.
ORGAN_NAMES: dict[str, str] = {
    "breast": "breast", "breasts": "breast", "mammary": "breast",
    "thyroid": "thyroid",
    "liver": "liver", "hepatic": "liver",
    "lung": "lung", "lungs": "lung",
}
ORGAN_NAMES_ZH: dict[str, str] = {
    "乳腺": "breast", "乳房": "breast", "甲状腺": "thyroid", "肝脏": "liver", "肝": "liver",
    "肺部": "lung", "肺脏": "lung", "肺": "lung",
}
# Chinese class labels (a label containing one of these words), per organ where it applies.
LABELS_ZH: dict[str, str] = {
    "正常": "normal", "良性": "benign", "恶性": "malignant",
    "脂肪肝": "steatosis", "肝纤维化": "fibrosis", "肝硬化": "cirrhosis",
}
ORGAN_RULES: tuple[str, ...] = ("organ_key", "label", "folder", "option")
_FIRST_WORD = re.compile(r"[a-z]+")


class ReportCorpusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotation: str = "annotation.json"
    images: str = ""
    organ: str | None = None
    dataset: str | None = None
    license: str | None = None


def organ_named(value: Any) -> str | None:
    """The organ a name, label or folder names: ``Thyroid``, ``lung_us``, ``乳腺``, ``甲状腺结节``; else ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in ORGAN_NAMES:
        return ORGAN_NAMES[text]
    for name in sorted(ORGAN_NAMES_ZH, key=len, reverse=True):
        if text.startswith(name):
            return ORGAN_NAMES_ZH[name]
    first = _FIRST_WORD.match(text)
    return ORGAN_NAMES.get(first.group()) if first else None


def _strings(labels: Any) -> list[str]:
    values = labels if isinstance(labels, list) else [labels]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _label(organ: str, labels: Any) -> str | None:
    found: list[str] = []
    for value in _strings(labels):
        if value.lower() in LABELS[organ]:
            found.append(value.lower())
            continue
        found += [label for word, label in LABELS_ZH.items() if word in value and label in LABELS[organ]]
    distinct = list(dict.fromkeys(found))
    return distinct[0] if len(distinct) == 1 else None


def decide_organ(
    record: dict[str, Any], rel: str, option: str | None
) -> tuple[str | None, str, str | None]:
    """``(organ, rule, None)`` by the first rule that names an organ (see the module docstring).

    Otherwise ``(None, "", why)``: ``why`` says what each rule saw, and starts
    with ``organ outside vocabulary`` when the record's organ key names an organ
    the schema does not hold (it is not overruled by later rules).
    """
    seen: list[str] = []
    if "organ" in record and record["organ"] not in (None, ""):
        value = record["organ"]
        organ = organ_named(value)
        if organ is None:
            return None, "", f"organ outside vocabulary: the record's organ key is {value!r}, not one of {ORGANS}"
        return organ, "organ_key", None
    seen.append("organ key: absent")
    labels = _strings(record.get("labels"))
    named = sorted({o for o in map(organ_named, labels) if o})
    if len(named) == 1:
        return named[0], "label", None
    seen.append(f"labels {labels}: " + (f"name several organs {named}" if named else "none names an organ"))
    parts = Path(rel).parts
    if len(parts) > 1:
        organ = organ_named(parts[0])
        if organ is not None:
            return organ, "folder", None
        seen.append(f"folder {parts[0]!r}: not an organ name")
    else:
        seen.append("folder: the image path has none")
    if option is not None:
        return option, "option", None
    seen.append("option organ: not set")
    return None, "", f"organ undecided: no rule names one of {ORGANS} ({'; '.join(seen)})"


@register
class ReportCorpusSource(Source):
    """Image-report pairs listed in an R2Gen-style ``annotation.json``."""

    layout = "report_corpus"
    organs = ("breast", "thyroid", "liver", "lung")
    expected = (
        'annotation.json = {"train"|"val"|"test": [{"uid", "image_path": [...], "finding", '
        '"labels"}]} (UTF-8, with or without a byte-order mark) with the images under the same '
        "root (<organ>/<uid>/<k>.png)."
    )
    published = (
        "any R2Gen-style report corpus (Chen et al., EMNLP 2020 annotation format), e.g. the "
        "breast / thyroid / liver ultrasound report-generation datasets distributed that way."
    )
    download = (
        "from each corpus's publisher (the release page of its report-generation paper): the "
        "annotation.json and the image folders it lists, unpacked as published"
    )
    folder = "ultrasound_reports"
    required = (
        "annotation.json (or the file named by the option annotation): the records of each split",
        "the images its image_path lists, relative to the source root (or to the folder named by "
        "the option images)",
    )
    optional = ()
    quirks = (
        "annotation.json is written with a UTF-8 byte-order mark (the public loaders read it as "
        "utf-8-sig); it is read with or without one",
        "the reports are Chinese, often word-segmented with spaces: detected as zh, de-identified "
        "with Chinese rules, and translated to English when reports.translate is on (otherwise "
        "the report tier is skipped with the language reason)",
        "the organ comes from an organ key, a label naming an organ (English or Chinese: 乳腺, "
        "甲状腺, 肝, 肺), the first folder of the image path, or the option organ, in that order; "
        "caption_meta.flags names the rule (organ_from=...)",
        "record keys vary: uid or id, finding or report; image_path is a list or one string; "
        "labels may be Chinese (正常, 良性, 恶性)",
    )
    grouping_note = (
        "R2Gen-style corpora list studies (uid) but no patients: rows are grouped by study only"
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
        where = f"source {self.name!r}: {path}"
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"{where} is not UTF-8 (byte {exc.start}: {exc.reason}); save it as UTF-8, e.g. "
                f"`iconv -f GB18030 -t UTF-8 {path.name} > utf8.json` and point the option annotation at it"
            ) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            fix = (
                "the file ends early: download or unpack it again" if exc.pos >= len(text.rstrip()) - 1
                else "repair the JSON there, or download and unpack the corpus again"
            )
            raise SourceError(
                f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
                f"(character {exc.pos}); {fix}"
            ) from exc
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            found = (
                type(data).__name__ if not isinstance(data, dict)
                else ", ".join(f"{k!r}: {type(v).__name__}" for k, v in data.items() if not isinstance(v, list))
            )
            raise SourceError(
                f"{where} must map split names to lists of records (found {found}); expected {self.expected}"
            )
        return data

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        opts = self.options
        image_root = self.root / opts.images
        listed: set[Path] = {self.annotation_path().resolve()}
        rules: Counter[str] = Counter()
        for split, records in self._load().items():
            for index, record in enumerate(records):
                where = f"{opts.annotation} [{split}][{index}]"
                if not isinstance(record, dict):
                    yield self.reject(where, "record is not a JSON object")
                    continue
                paths = record.get("image_path") or []
                if isinstance(paths, str):
                    paths = [paths]
                if not paths:
                    yield self.reject(where, "record lists no image_path")
                    continue
                for rel in paths:
                    for entry in self._image(image_root / rel, str(rel), where, split, record, listed):
                        if isinstance(entry, SourceItem):
                            rules[entry.extra["organ_from"]] += 1
                        yield entry
        for f in sorted_files(self.root):
            if f.resolve() not in listed:
                yield self.reject(f, f"not listed in {opts.annotation}")
        if set(rules) - {"folder"}:
            counts = ", ".join(f"{rule} {rules[rule]}" for rule in ORGAN_RULES if rules[rule])
            self.notice("organ_from", f"organ of the images by rule (images per rule): {counts}; "
                        "each row names its rule in caption_meta.flags (organ_from=...)")

    def _image(
        self, path: Path, rel: str, where: str, split: str, record: dict[str, Any], listed: set[Path],
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
        organ, rule, why = decide_organ(record, rel, opts.organ)
        if organ is None:
            yield self.reject(
                rel, f"{why} ({where})",
                "add an organ key to the record, or set the source option organ for a single-organ corpus",
            )
            return
        uid = record.get("uid", record.get("id"))
        report = record.get("finding", record.get("report"))
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
            extra={"labels": record.get("labels"), "organ_from": rule},
        )
