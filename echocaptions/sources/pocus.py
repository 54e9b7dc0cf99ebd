"""Lung POCUS videos of the covid19_ultrasound repository (Born et al. 2021).

Layout as cloned (``data/`` of github.com/jannisborn/covid19_ultrasound)::

    data/dataset_metadata.csv
    data/pocus_videos/{convex,linear}/<Class>{-,_}<name>.{mp4,MP4,mov,avi,mpeg,mpg,gif}
    data/pocus_videos/linear/label_uncertain/Cov_bolzano_<name>.mpeg
    data/pocus_images/{convex,linear}/<same naming>.{jpg,png}   (optional)

The root may be the repository or its ``data/`` folder. Every file under
``pocus_videos/`` and ``pocus_images/`` is read, at any depth: older clones
have ``Convex/``/``Linear/`` folders (or none), newer ones ``convex/``/``linear/``
with sub-folders such as ``label_uncertain/``. Names carry spaces and either
separator (``Cov-Atlas+(44).gif``, ``Pneu_AIR BRONC2.mov``); suffixes come in
any case.

Each file is matched to its ``dataset_metadata.csv`` row by ``Filename`` (the
name without extension; a name differing only in surrounding or repeated
spaces, then only in case when that is unique, also matches: the repository
has ``Cov_bolzano_sliding .mpeg`` for the row ``Cov_bolzano_sliding``). The row
gives the label (``COVID-19`` -> covid, ``Bacterial pneumonia`` -> pneumonia,
``Viral pneumonia`` -> viral_pneumonia, ``regular`` -> normal), the patient
(``Patient ID / Name``), the probe (view), the licence and the binary
annotations: ``B-lines`` 1 -> multiple / 0 -> absent, ``A-lines`` -> present /
absent, ``Effusion`` -> present / absent, ``Pleural line irregularities`` 1 ->
irregular / 0 -> smooth, ``Consolidations`` 1 -> present (no subpleural/lobar
detail) / 0 -> absent. A row whose finding columns are all 0 while
``Healthy`` is not 1 was never rated (the Bolzano rows are all 0 where the
doctors' comments name B-lines and effusions): it gives no findings and
``extra["findings_unrated"] = "yes"``.

A file without a row is labelled by its name prefix (``Cov``, ``Pneu``,
``Reg``, ``Vir`` before ``-``, ``_`` or a space, any case) with no patient; a
name such as ``Vir_or_Pneu_...`` names two classes and is a reject.

``label_uncertain/`` holds clips of possible COVID-19 patients for whom no PCR
test was available. They are read with the label their row gives and
``extra["label_uncertain"] = "yes"``, which the build publishes as the
flag ``label_uncertain`` in ``caption_meta.flags``, and the build says how many
there are, so a user can keep or drop them knowingly. Rows listed under
``pocus_videos``/``pocus_images`` (or ``butterfly``) whose file is not in the
clone come from the web or from Butterfly and are fetched by the repository's
own scripts; the build says how many are missing. Videos and GIFs are listed
once with ``expand=True``; the image stage samples frames.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, sorted_files

METADATA = "dataset_metadata.csv"
MEDIA_FOLDERS: tuple[str, ...] = ("pocus_videos", "pocus_images")
UNCERTAIN = "label_uncertain"
PROBES: tuple[str, ...] = ("convex", "linear")
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
# ``Cov-``, ``Cov_``, ``Pneu ``...; ``Vir_or_Pneu_`` names two classes.
_PREFIX = re.compile(r"^(?P<prefix>[A-Za-z]+)(?:[-_ ]|$)")
_TWO_CLASSES = re.compile(r"^(?P<prefix>[A-Za-z]+_or_[A-Za-z]+)(?:[-_ ]|$)", re.IGNORECASE)


def _value(row: dict[str, str], *names: str) -> str | None:
    for name in names:
        value = (row.get(name) or "").strip()
        if value and value.lower() not in _MISSING:
            return value
    return None


def _patient_column(header: list[str]) -> str | None:
    return next((h for h in header if h.strip().lower().startswith("patient id")), None)


def _spaces(name: str) -> str:
    return " ".join(name.split())


def name_label(stem: str) -> tuple[str, str | None]:
    """(prefix as written, label or None) from a file name, for files without a metadata row."""
    two = _TWO_CLASSES.match(stem)
    if two:
        return two["prefix"], None
    match = _PREFIX.match(stem)
    prefix = match["prefix"] if match else stem
    return prefix, LABELS.get(prefix.lower())


def unrated(row: dict[str, str]) -> bool:
    """All finding columns 0 on a clip not marked ``Healthy``: the row was never rated."""
    values = [v for v in (_value(row, column) for column in FLAGS) if v is not None]
    return bool(values) and all(v == "0" for v in values) and _value(row, "Healthy") != "1"


class _Rows:
    """``dataset_metadata.csv`` rows by file name: exact, then up to spaces, then up to case."""

    def __init__(self, path: Path) -> None:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            self.patient_column = _patient_column(list(reader.fieldnames or []))
            self.exact: dict[str, dict[str, str]] = {}
            for row in reader:
                name = (row.get("Filename") or "").strip()
                if media_kind(name):
                    name = name[: len(name) - len(extension(name))]
                if name and name not in self.exact:
                    self.exact[name] = row
        self.spaced: dict[str, str] = {}
        folded: dict[str, list[str]] = {}
        for name in self.exact:
            self.spaced.setdefault(_spaces(name), name)
            folded.setdefault(_spaces(name).casefold(), []).append(name)
        self.folded = {key: names[0] for key, names in folded.items() if len(names) == 1}
        self.matched: set[str] = set()

    def find(self, stem: str) -> dict[str, str] | None:
        name = stem if stem in self.exact else self.spaced.get(_spaces(stem))
        if name is None:
            name = self.folded.get(_spaces(stem).casefold())
        if name is None:
            return None
        self.matched.add(name)
        return self.exact[name]

    def listed_but_absent(self) -> list[str]:
        """Rows the repository places in its media folders whose file was not found."""
        return [
            name for name, row in self.exact.items()
            if name not in self.matched and _in_media_folder(row.get("Current location") or "")
        ]


def _in_media_folder(location: str) -> bool:
    place = location.strip().lower()
    return place == "butterfly" or any(top in place for top in MEDIA_FOLDERS)


@register
class PocusSource(Source):
    """Lung POCUS clips and images with the repository's metadata table."""

    layout = "pocus"
    organs = ("lung",)
    expected = (
        f"data/{METADATA} and data/pocus_videos/{{convex,linear}}/{{Cov,Pneu,Reg,Vir}}[-_]<name>"
        ".mp4|gif|mov|avi|mpeg "
        "(root: the covid19_ultrasound repository or its data/ folder)."
    )
    published = (
        "Born J, et al. Accelerating detection of lung pathologies with explainable ultrasound "
        "image analysis. Applied Sciences 11(2):672 (2021); "
        "https://github.com/jannisborn/covid19_ultrasound (folder data/)."
    )
    license = "per file: see the License column of dataset_metadata.csv"
    download = (
        "git clone https://github.com/jannisborn/covid19_ultrasound (folder data/); the clips the "
        "repository may not host come from its own scripts: data/get_and_process_web_data.sh "
        "(web sources) and data/parse_butterfly.sh (Butterfly gallery zip)"
    )
    folder = "covid19_ultrasound/data"
    required = (
        f"data/{METADATA}",
        "data/pocus_videos/ (convex/, linear/, older Convex/, Linear/ and their sub-folders)",
    )
    optional = (
        "data/pocus_images/{convex,linear}/: single images; without it only videos are read",
        "clips fetched by data/get_and_process_web_data.sh and data/parse_butterfly.sh: without them "
        "those rows of the table have no file and are left out (the build counts them)",
    )
    quirks = (
        "names use '-' or '_' after the class prefix (Cov-Atlas+(44).gif, Cov_bolzano_WL 2.mpeg), "
        "carry spaces, and suffixes come in any case (.mp4, .MP4, .mov, .avi, .gif, .mpeg, .mpg)",
        "both convex/ and the older Convex/ folder, and sub-folders such as linear/label_uncertain/, "
        "are read",
        "a name with a trailing space (Cov_bolzano_sliding .mpeg) still finds its row",
        "label_uncertain/ clips (possible COVID-19, no PCR test) keep the table's label and are "
        "flagged label_uncertain in caption_meta.flags",
        "rows whose finding columns are all 0 and Healthy is not 1 were never rated: no findings",
        "files without a table row are labelled by their name prefix (Cov/Pneu/Reg/Vir), with no patient",
    )

    def data_dir(self) -> Path:
        for candidate in (self.root, self.root / "data"):
            if (candidate / METADATA).is_file():
                return candidate
        raise SourceError(f"{self.missing_message()} (no {METADATA} in {self.root} or {self.root}/data)")

    def check(self) -> None:
        super().check()
        self.data_dir()

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        data = self.data_dir()
        rows = _Rows(data / METADATA)
        uncertain = 0
        for top in MEDIA_FOLDERS:
            folder = data / top
            if not folder.is_dir():
                continue
            files = sorted_files(folder)
            if not files:
                yield self.reject(folder.relative_to(data).as_posix(), "empty folder")
            for f in files:
                for entry in self._file(data, f, rows):
                    if isinstance(entry, SourceItem) and entry.extra.get("label_uncertain"):
                        uncertain += 1
                    yield entry
        if uncertain:
            self.notice(
                "pocus_label_uncertain",
                f"{uncertain} POCUS clip(s) in {UNCERTAIN}/ (folder or table location) are of possible "
                "COVID-19 patients without a PCR test: they keep the label of dataset_metadata.csv and "
                "are flagged label_uncertain in caption_meta.flags (filter on it to drop them)",
            )
        absent = rows.listed_but_absent()
        if absent:
            self.notice(
                "pocus_absent_clips",
                f"{len(absent)} clip(s) listed in {METADATA} are not in {data} (e.g. {absent[0]!r}): the "
                "repository fetches them with data/get_and_process_web_data.sh and data/parse_butterfly.sh",
            )

    def _file(self, data: Path, path: Path, rows: _Rows) -> Iterator[SourceItem | Reject]:
        rel = path.relative_to(data).as_posix()
        kind = media_kind(path)
        if kind not in ("image", "video"):
            yield self.reject(rel, f"unknown extension {extension(path) or '(none)'!r}")
            return
        stem = path.name[: len(path.name) - len(extension(path))]
        row = rows.find(stem)
        if row is not None:
            raw_label = _value(row, "Label")
            label = LABELS.get((raw_label or "").strip().lower())
            where = f"Label {raw_label!r} in {METADATA}"
        else:
            raw_label, label = name_label(stem)
            where = f"name prefix {raw_label!r} (no {METADATA} row)"
        if label is None:
            yield self.reject(rel, f"label outside vocabulary: {where} is not a known POCUS class",
                              "known: COVID-19, Bacterial pneumonia, Viral pneumonia, regular (Cov/Pneu/Vir/Reg)")
            return
        folders = [part.lower() for part in Path(rel).parts[1:-1]]
        findings: dict[str, str | None] = {}
        extra: dict[str, str | None] = {"metadata_row": "yes" if row else "no"}
        if UNCERTAIN in folders or UNCERTAIN in ((row or {}).get("Current location") or "").lower():
            extra["label_uncertain"] = "yes"
        if row and unrated(row):
            extra["findings_unrated"] = "yes"
        elif row:
            for column, (key, table) in FLAGS.items():
                raw = _value(row, column)
                if raw is not None and raw in table:
                    findings[key] = table[raw]
                    if table[raw] is None:
                        extra[column] = raw
        if row:
            extra["lung_severity_score"] = _value(row, "Lung Severity Score")
            extra["source_id"] = _value(row, "Source ID")
        probe = next((p for p in reversed(folders) if p in PROBES), None)
        view = (_value(row, "Probe") if row else None) or probe
        yield SourceItem(
            source=self.name,
            dataset="pocus",
            organ="lung",
            path=str(path.resolve()),
            source_path=rel,
            label=label,
            patient_id=_value(row, rows.patient_column) if row and rows.patient_column else None,
            expand=kind == "video",
            view=view.lower() if view else None,
            findings=findings,
            license=_value(row, "License") if row else None,
            extra=extra,
        )
