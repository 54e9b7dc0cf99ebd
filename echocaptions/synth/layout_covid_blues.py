"""Phantom of COVID-BLUES: ``COVID-BLUES/lus_videos/patient_<ID>_<POINT>.mp4`` and its tables.

``per_class`` COVID-positive and ``per_class`` negative patients (ids
1..n, alternating), two BLUE-point clips each (``L1``, ``R2``; patient 1 also
a repeat ``L1_2``), every clip a lung scene drawn for the patient's label.
``clinical_variables.csv`` has the real file's leading columns (``patient_id``,
``cov_test``, ``number_video_files`` ...), rows in no id order as in the real file; ``severity.csv`` rates each clip
from what was drawn: ``A-lines`` / ``B-lines`` yes/no and a Soldati score
(few B-lines 0, multiple 1, consolidation 2, confluent 3 with B-lines "no",
as the raters did for a white lung). ``broken=True`` adds a clip whose
patient has no clinical row, a misnamed clip, a note in ``lus_videos/`` and a
truncated clip. ``lfs_pointers=True`` leaves what a clone without ``git lfs
pull`` holds: in place of every ``.mp4`` a Git LFS pointer file naming the
video's SHA-256 and size.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import _Ctx, _save_mp4, _truncate, _write_text, register_layout
from echocaptions.synth.reports import sample_findings

CLINICAL_COLUMNS: tuple[str, ...] = (
    "patient_id", "cov_test", "number_video_files", "pat_weight", "pat_sex", "pat_age",
    "respiratory_rate", "pulse", "clin_diagn#healthy_lung", "clin_diagn#COVID19_pneumonia",
)
SEVERITY_COLUMNS: tuple[str, ...] = ("video_file", "Severity Score", "A-lines", "B-lines", "comments")
N_FRAMES = 4


def severity_row(stem: str, findings: dict[str, str]) -> dict[str, str]:
    """The raters' row for a clip showing ``findings``."""
    b = findings.get("lung_b_lines", "absent")
    consolidated = findings.get("lung_consolidation", "absent") != "absent"
    score = {"absent": 0, "few": 0, "multiple": 1, "confluent": 3}[b]
    if consolidated and b != "confluent":
        score = 2
    if b == "absent":
        score = min(score, 1)
    return {
        "video_file": stem,
        "Severity Score": f"{float(score):.1f}",
        "A-lines": "yes" if findings.get("lung_a_lines") == "present" else "no",
        "B-lines": "yes" if b in ("few", "multiple") else "no",
        "comments": "consolidation" if consolidated else "",
    }


def _clip(ctx: _Ctx, root: Path, stem: str, label: str) -> dict[str, str]:
    rng = ctx.rng("covid_blues", stem)
    findings = sample_findings("lung", label, rng)
    if findings.get("lung_b_lines") == "absent":
        findings["lung_consolidation"] = "absent"
    r = draw("lung", label, findings, rng, ctx.size, N_FRAMES, masks=False)
    _save_mp4(r.frames, root / "lus_videos" / f"{stem}.mp4")
    return severity_row(stem, r.findings)


def _csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(path, buffer.getvalue())


def lfs_pointer(data: bytes) -> str:
    """The Git LFS pointer text that stands for ``data`` in a clone without its large files."""
    return (f"version https://git-lfs.github.com/spec/v1\n"
            f"oid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n")


def write_covid_blues(root: Path, ctx: _Ctx, lfs_pointers: bool = False) -> Path:
    h, w = ctx.size
    ctx = _Ctx(ctx.seed, (h - h % 2, w - w % 2), ctx.per_class, ctx.broken, ctx.organs)
    clinical: list[dict[str, str]] = []
    severity: list[dict[str, str]] = []
    for pid in range(1, 2 * ctx.per_class + 1):
        positive = pid % 2 == 1
        label = "covid" if positive else "normal"
        points = ["L1", "L1_2", "R2"] if pid == 1 else ["L1", "R2"]
        for point in points:
            severity.append(_clip(ctx, root, f"patient_{pid}_{point}", label))
        rng = ctx.rng("covid_blues", "clinical", pid)
        clinical.append({
            "patient_id": str(pid), "cov_test": str(int(positive)),
            "number_video_files": f"{float(len(points)):.1f}",
            "pat_weight": f"{float(rng.integers(50, 110)):.1f}", "pat_sex": f"{float(rng.integers(2)):.1f}",
            "pat_age": f"{float(rng.integers(25, 90)):.1f}", "respiratory_rate": str(int(rng.integers(12, 30))),
            "pulse": f"{float(rng.integers(60, 130)):.1f}",
            "clin_diagn#healthy_lung": "0" if positive else str(int(rng.integers(2))),
            "clin_diagn#COVID19_pneumonia": str(int(positive)),
        })
    clinical.sort(key=lambda row: int(row["patient_id"]) * 7919 % 97)
    if ctx.broken:
        _clip(ctx, root, "patient_99_L1", "covid")
        _clip(ctx, root, "clip_7", "normal")
        _write_text(root / "lus_videos" / "README.txt", "recorded with a convex probe\n")
        severity.append(_clip(ctx, root, "patient_2_R3", "normal"))
        _truncate(root / "lus_videos" / "patient_2_R3.mp4")
    _csv(root / "clinical_variables.csv", CLINICAL_COLUMNS, clinical)
    _csv(root / "severity.csv", SEVERITY_COLUMNS, severity)
    _write_text(root / "README.md", "# COVID-BLUES (phantom)\n\nVideos in lus_videos/.\n")
    if lfs_pointers:
        _write_text(root / ".gitattributes", "*.mp4 filter=lfs diff=lfs merge=lfs -text\n")
        for video in sorted((root / "lus_videos").glob("*.mp4")):
            _write_text(video, lfs_pointer(video.read_bytes()))
    return root


register_layout("covid_blues", "COVID-BLUES", ("lung",), write_covid_blues)
