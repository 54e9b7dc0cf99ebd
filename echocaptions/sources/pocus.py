"""Lung POCUS videos of the covid19_ultrasound repository (Born et al. 2021).

Layout as cloned (``data/`` of github.com/jannisborn/covid19_ultrasound)::

    data/dataset_metadata.csv
    data/pocus_videos/{convex,linear}/{Cov,Pneu,Reg,Vir}-<name>.{mp4,gif,...}
    data/pocus_images/{convex,linear}/<same naming>.{jpg,png}   (optional)

The root may be the repository or its ``data/`` folder. Each file is matched
to its ``dataset_metadata.csv`` row by ``Filename`` (the name without
extension). The row gives the label (``COVID-19`` -> covid, ``Bacterial
pneumonia`` -> pneumonia, ``Viral pneumonia`` -> viral_pneumonia, ``regular``
-> normal), the patient (``Patient ID / Name``), the probe (view), the licence
and the binary annotations: ``B-lines`` 1 -> multiple / 0 -> absent,
``A-lines`` -> present / absent, ``Effusion`` -> present / absent, ``Pleural
line irregularities`` 1 -> irregular / 0 -> smooth, ``Consolidations`` 1 ->
present (no subpleural/lobar detail) / 0 -> absent. A file without a row is labelled
by its name prefix (Cov/Pneu/Reg/Vir) with no patient. Videos and GIFs are
listed once with ``expand=True``; the image stage samples frames.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, sorted_files

METADATA = "dataset_metadata.csv"
MEDIA_FOLDERS: tuple[str, ...] = ("pocus_videos", "pocus_images")
LABELS: dict[str, str] = {
    "covid-19": "covid", "covid": "covid", "cov": "covid",
    "bacterial pneumonia": "pneumonia", "pneumonia": "pneumonia", "pneu": "pneumonia",
    "viral pneumonia": "viral_pneumonia", "viral": "viral_pneumonia", "vir": "viral_pneumonia",
    "regular": "normal", "healthy": "normal", "normal": "normal", "reg": "normal",
}
FLAGS: dict[str, tuple[str, dict[str, str | None]]] = {
    "B-lines": ("lung_b_lines", {"1": "multiple", "0": "absent"}),
    "A-lines": ("lung_a_lines", {"1": "present", "0": "absent"}),
    "Effusion": ("lung_effusion", {"1": "present", "0": "absent"}),
    "Pleural line irregularities": ("lung_pleural_line", {"1": "irregular", "0": "smooth"}),
    "Consolidations": ("lung_consolidation", {"1": "present", "0": "absent"}),
}
_MISSING = {"", "n/a", "na", "nd", "none", "n.a.", "-", "nan"}


def _value(row: dict[str, str], *names: str) -> str | None:
    for name in names:
        value = (row.get(name) or "").strip()
        if value and value.lower() not in _MISSING:
            return value
    return None


def _patient_column(header: list[str]) -> str | None:
    return next((h for h in header if h.strip().lower().startswith("patient id")), None)


@register
class PocusSource(Source):
    """Lung POCUS clips and images with the repository's metadata table."""

    layout = "pocus"
    organs = ("lung",)
    expected = (
        f"data/{METADATA} and data/pocus_videos/{{convex,linear}}/{{Cov,Pneu,Reg,Vir}}-<name>.mp4|gif "
        "(root: the covid19_ultrasound repository or its data/ folder)."
    )
    published = (
        "Born J, et al. Accelerating detection of lung pathologies with explainable ultrasound "
        "image analysis. Applied Sciences 11(2):672 (2021); "
        "https://github.com/jannisborn/covid19_ultrasound (folder data/)."
    )
    license = "per file: see the License column of dataset_metadata.csv"

    def data_dir(self) -> Path:
        for candidate in (self.root, self.root / "data"):
            if (candidate / METADATA).is_file():
                return candidate
        raise SourceError(f"{self.missing_message()} (no {METADATA} in {self.root} or {self.root}/data)")

    def check(self) -> None:
        super().check()
        self.data_dir()

    def _rows(self, data: Path) -> tuple[dict[str, dict[str, str]], str | None]:
        with open(data / METADATA, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            patient = _patient_column(list(reader.fieldnames or []))
            rows: dict[str, dict[str, str]] = {}
            for row in reader:
                name = (row.get("Filename") or "").strip()
                if media_kind(name):
                    name = name[: len(name) - len(extension(name))]
                if name and name not in rows:
                    rows[name] = row
        return rows, patient

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        data = self.data_dir()
        rows, patient_col = self._rows(data)
        for top in MEDIA_FOLDERS:
            folder = data / top
            if not folder.is_dir():
                continue
            files = sorted_files(folder)
            if not files:
                yield self.reject(folder.relative_to(data).as_posix(), "empty folder")
            for f in files:
                yield from self._file(data, f, rows, patient_col)

    def _file(
        self, data: Path, path: Path, rows: dict[str, dict[str, str]], patient_col: str | None
    ) -> Iterator[SourceItem | Reject]:
        rel = path.relative_to(data).as_posix()
        kind = media_kind(path)
        if kind not in ("image", "video"):
            yield self.reject(rel, f"unknown extension {extension(path) or '(none)'!r}")
            return
        stem = path.name[: len(path.name) - len(extension(path))]
        row = rows.get(stem)
        raw_label = _value(row, "Label") if row else stem.split("-", 1)[0]
        label = LABELS.get((raw_label or "").strip().lower())
        if label is None:
            where = f"Label {raw_label!r} in {METADATA}" if row else f"name prefix {raw_label!r} (no {METADATA} row)"
            yield self.reject(rel, f"label outside vocabulary: {where} is not a known POCUS class",
                              "known: COVID-19, Bacterial pneumonia, Viral pneumonia, regular (Cov/Pneu/Vir/Reg)")
            return
        findings: dict[str, str | None] = {}
        extra: dict[str, str | None] = {"metadata_row": "yes" if row else "no"}
        if row:
            for column, (key, table) in FLAGS.items():
                raw = _value(row, column)
                if raw is not None and raw in table:
                    findings[key] = table[raw]
                    if table[raw] is None:
                        extra[column] = raw
            extra["lung_severity_score"] = _value(row, "Lung Severity Score")
            extra["source_id"] = _value(row, "Source ID")
        parent = path.parent.name.lower()
        view = (_value(row, "Probe") if row else None) or (parent if parent in ("convex", "linear") else None)
        yield SourceItem(
            source=self.name,
            dataset="pocus",
            organ="lung",
            path=str(path.resolve()),
            source_path=rel,
            label=label,
            patient_id=_value(row, patient_col) if row and patient_col else None,
            expand=kind == "video",
            view=view.lower() if view else None,
            findings=findings,
            license=_value(row, "License") if row else None,
            extra=extra,
        )
