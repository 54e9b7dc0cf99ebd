"""COVID-BLUES: bluepoint lung ultrasound videos of COVID-19 suspects (Wiedemann et al. 2025).

Layout as cloned (github.com/NinaWie/COVID-BLUES)::

    lus_videos/patient_<ID>_<POINT>[_<n>].mp4     e.g. patient_1_L3.mp4, patient_15_L2_2.mp4
    clinical_variables.csv                        one row per patient
    severity.csv                                  one row per video (optional)

``<POINT>`` is a BLUE-protocol point (L1-L3, R1-R3); any token is accepted and
kept in ``extra["blue_point"]``; ``_<n>`` marks a repeated recording. Every
recording used a convex probe (Philips Lumify), so ``view`` is ``convex``.

Columns used: from ``clinical_variables.csv`` only ``patient_id`` and the PCR
result ``cov_test`` (1 -> covid, 0 -> normal; ``covid_positive``, ``covid``,
``covid19``, ``pcr`` and ``label`` are accepted as other spellings). A
negative patient may still have another lung disease: ``normal`` means "no
COVID-19". The clinical variables themselves are not copied. From
``severity.csv`` (keyed by ``video_file``, the name without ``.mp4``):
``A-lines`` yes/no -> ``lung_a_lines`` present/absent, ``B-lines`` yes with
``Severity Score`` 0 -> few, yes with score >= 1 -> multiple, no with score
<= 1 -> absent, no with score >= 2 -> unknown (the raters leave B-lines "no"
for a white lung and for consolidation); the score (Soldati 0-3) goes to
``extra["lung_severity_score"]``. Videos are listed once with ``expand=True``.
A video whose patient has no clinical row is a reject.

The videos are stored with Git LFS: a clone without ``git lfs pull`` holds
small pointer files in their place. The base class turns each into a
``git_lfs_pointer`` reject and says once, in the build summary, to run ``git
lfs pull``; the clinical tables are plain files and still read.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, sorted_files

VIDEOS = "lus_videos"
CLINICAL = "clinical_variables.csv"
SEVERITY = "severity.csv"
LABEL_COLUMNS: tuple[str, ...] = ("cov_test", "covid_positive", "covid", "covid19", "pcr", "label")
PATIENT_COLUMNS: tuple[str, ...] = ("patient_id", "patient", "id")
NAME = re.compile(r"^patient_(?P<patient>[^_]+)_(?P<point>[^_]+)(?:_(?P<repeat>\d+))?$", re.IGNORECASE)
POSITIVE = {"1", "1.0", "yes", "true", "positive", "pos", "covid"}
NEGATIVE = {"0", "0.0", "no", "false", "negative", "neg", "normal"}


def _norm(value: str | None) -> str:
    return (value or "").strip().lower()


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def _patient_key(value: str) -> str:
    """``7``, ``7.0`` and ``07`` name the same patient."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def b_lines(flag: str, score: float | None) -> str | None:
    """``lung_b_lines`` from the raters' yes/no and the video's severity score."""
    if flag == "yes":
        return "few" if score == 0 else "multiple"
    if flag == "no":
        return "absent" if score is not None and score <= 1 else None
    return None


@register
class CovidBluesSource(Source):
    """COVID-BLUES lung videos, labelled by the patient's PCR result."""

    layout = "covid_blues"
    organs = ("lung",)
    expected = (
        f"{VIDEOS}/patient_<ID>_<POINT>.mp4 with {CLINICAL} (patient_id, cov_test) and "
        f"optionally {SEVERITY} (video_file, Severity Score, A-lines, B-lines)."
    )
    published = (
        "COVID-BLUES, a bluepoint-specific lung ultrasound dataset (Wiedemann N, et al.); "
        "https://github.com/NinaWie/COVID-BLUES."
    )
    license = "CC-BY-ND-4.0"
    download = (
        "git clone https://github.com/NinaWie/COVID-BLUES, then `git lfs pull` in it: the videos are "
        "stored with Git LFS (install git-lfs first)"
    )
    folder = "COVID-BLUES"
    required = (
        f"{VIDEOS}/patient_<ID>_<POINT>[_<n>].mp4 (the real videos, fetched by `git lfs pull`)",
        f"{CLINICAL} (patient_id, cov_test: the PCR result that gives the label)",
    )
    optional = (
        f"{SEVERITY}: per-video A-lines / B-lines and Soldati score; without it clips have no lung "
        "findings and no severity score",
    )
    quirks = (
        "a clone without `git lfs pull` holds small Git LFS pointer files in place of the videos: "
        "each is a git_lfs_pointer reject and the build says once to run `git lfs pull`",
        "repeated recordings of one BLUE point are named patient_<ID>_<POINT>_2.mp4",
        f"{CLINICAL} has one row per patient, in no id order, with over a hundred columns: only "
        "patient_id and cov_test are read",
        "B-lines 'no' with a Severity Score of 2 or 3 (white lung, consolidation) gives no B-line finding",
        "cov_test 0 means a negative PCR, not a healthy lung: label normal means 'no COVID-19'",
    )

    def check(self) -> None:
        super().check()
        missing = [n for n, ok in ((VIDEOS + "/", (self.root / VIDEOS).is_dir()),
                                   (CLINICAL, (self.root / CLINICAL).is_file())) if not ok]
        if missing:
            raise SourceError(f"{self.missing_message()} (missing in {self.root}: {', '.join(missing)})")

    def _clinical(self) -> dict[str, str | None]:
        """Patient id -> raw PCR value."""
        path = self.root / CLINICAL
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            pid_col = _column(header, PATIENT_COLUMNS)
            label_col = _column(header, LABEL_COLUMNS)
            if pid_col is None or label_col is None:
                raise SourceError(
                    f"source {self.name!r}: {path} needs a patient column {PATIENT_COLUMNS} and a "
                    f"COVID test column {LABEL_COLUMNS}; columns found: {header[:12]}"
                    f"{' ...' if len(header) > 12 else ''}"
                )
            return {_patient_key(row[pid_col]): row.get(label_col) for row in reader
                    if (row.get(pid_col) or "").strip()}

    def _severity(self) -> dict[str, dict[str, str]]:
        path = self.root / SEVERITY
        if not path.is_file():
            return {}
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return {(row.get("video_file") or "").strip(): row for row in csv.DictReader(fh)}

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        clinical = self._clinical()
        severity = self._severity()
        files = sorted_files(self.root / VIDEOS)
        if not files:
            yield self.reject(VIDEOS, "empty folder")
        for f in files:
            yield from self._video(f, clinical, severity)

    def _video(
        self, path: Path, clinical: dict[str, str | None], severity: dict[str, dict[str, str]]
    ) -> Iterator[SourceItem | Reject]:
        rel = self.rel(path)
        if media_kind(path) != "video":
            yield self.reject(rel, f"unknown extension {extension(path) or '(none)'!r}")
            return
        stem = path.name[: len(path.name) - len(extension(path))]
        match = NAME.match(stem)
        if match is None:
            yield self.reject(rel, "name does not follow patient_<ID>_<POINT>.mp4")
            return
        patient = _patient_key(match["patient"])
        if patient not in clinical:
            yield self.reject(rel, f"patient {patient} has no row in {CLINICAL}")
            return
        raw = _norm(clinical[patient])
        label = "covid" if raw in POSITIVE else "normal" if raw in NEGATIVE else None
        findings: dict[str, str | None] = {}
        extra: dict[str, object] = {"blue_point": match["point"].upper(), "repeat": int(match["repeat"] or 1)}
        if raw and label is None:
            extra["covid_test"] = clinical[patient]
        row = severity.get(stem)
        if row is not None:
            try:
                score: float | None = float((row.get("Severity Score") or "").strip())
            except ValueError:
                score = None
            a_flag = _norm(row.get("A-lines"))
            if a_flag in ("yes", "no"):
                findings["lung_a_lines"] = "present" if a_flag == "yes" else "absent"
            b = b_lines(_norm(row.get("B-lines")), score)
            if b is not None:
                findings["lung_b_lines"] = b
            extra["lung_severity_score"] = None if score is None else int(score)
        yield SourceItem(
            source=self.name,
            dataset="covid_blues",
            organ="lung",
            path=str(path.resolve()),
            source_path=rel,
            label=label,
            patient_id=patient,
            expand=True,
            view="convex",
            findings=findings,
            extra=extra,
        )
