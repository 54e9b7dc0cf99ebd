"""Phantom of a NIfTI export of 3-D liver sweeps: ``nifti/`` with volumes and a labels CSV.

``per_class`` volumes per label (normal, steatosis, fibrosis), each
``N_SLICES`` liver frames drawn with the same label and findings, stacked along
axis 2 with an identity (RAS) affine, uint8. Each slice is stored the way the
NIfTI reader displays it (anterior up): ``data[:, :, k] = frame[::-1].T``, so
the reader shows frame ``k`` as drawn. The 4-D file of ``broken`` repeats a
volume twice along axis 3.
Volumes alternate ``.nii.gz`` (gzip with a zero timestamp, so bytes repeat)
and ``.nii``; the first has a segmentation ``<name>_seg.nii.gz`` of the liver.
``labels.csv`` (``file``, ``label``, ``organ``, ``patient_id`` and the liver
findings drawn) labels all volumes but the last, which stays unlabelled.
``broken=True`` adds a truncated volume, a 4-D series (kept), an unknown file
``notes.bin`` and a CSV row naming a missing volume.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np

from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import _Ctx, _write_text, register_layout
from echocaptions.synth.reports import sample_findings

N_SLICES = 5
FINDINGS_COLUMNS: tuple[str, ...] = ("liver_steatosis", "liver_fibrosis")


def save_nifti(data: np.ndarray, path: Path) -> None:
    """A NIfTI-1 file with an identity affine; ``.nii.gz`` is gzipped without a timestamp."""
    import nibabel as nib

    raw = nib.Nifti1Image(data, np.eye(4)).to_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0) if path.name.endswith(".gz") else raw)


def _volume(ctx: _Ctx, n: int, label: str) -> tuple[np.ndarray, np.ndarray, str, dict[str, str]]:
    """A volume (H, W, N_SLICES), the first slice's liver mask on every slice, label and findings."""
    rng = ctx.rng("nifti", n)
    findings = sample_findings("liver", label, rng)
    if label == "steatosis":
        findings["liver_fibrosis"] = "F0"
    r = draw("liver", label, findings, rng, ctx.size)
    frames = [r.image] + [draw("liver", r.label, dict(r.findings), rng, ctx.size, masks=False).image
                          for _ in range(N_SLICES - 1)]
    volume = np.stack([f[::-1].T for f in frames], axis=2).astype(np.uint8)
    liver = r.regions.get("liver", np.zeros(ctx.size, bool))[::-1].T
    mask = np.repeat(liver[..., None], N_SLICES, axis=2).astype(np.uint8)
    return volume, mask, r.label, dict(r.findings)


def write_nifti_folder(root: Path, ctx: _Ctx) -> Path:
    rows: list[dict[str, str]] = []
    labels = [label for label in ("normal", "steatosis", "fibrosis") for _ in range(ctx.per_class)]
    for n, label in enumerate(labels, start=1):
        name = f"case_{n:03d}" + (".nii.gz" if n % 2 else ".nii")
        volume, mask, drawn, findings = _volume(ctx, n, label)
        save_nifti(volume, root / "volumes" / name)
        if n == 1:
            save_nifti(mask, root / "volumes" / "case_001_seg.nii.gz")
        if n < len(labels):
            rows.append({"file": f"volumes/{name}", "label": drawn, "organ": "liver",
                         "patient_id": f"P{(n + 1) // 2:02d}",
                         **{k: findings.get(k, "") for k in FINDINGS_COLUMNS}})
    if ctx.broken:
        k = len(labels) + 1
        volume, *_ = _volume(ctx, k, "normal")
        save_nifti(volume, root / "volumes" / f"case_{k:03d}.nii.gz")
        data = (root / "volumes" / f"case_{k:03d}.nii.gz").read_bytes()
        (root / "volumes" / f"case_{k:03d}.nii.gz").write_bytes(data[:40])
        save_nifti(np.stack([volume, volume], axis=3), root / "volumes" / f"case_{k + 1:03d}.nii.gz")
        _write_text(root / "volumes" / "notes.bin", "probe: curvilinear 3-D\n")
        rows.append({"file": "volumes/case_999.nii.gz", "label": "normal", "organ": "liver",
                     "patient_id": "P99"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["file", "label", "organ", "patient_id", *FINDINGS_COLUMNS],
                            lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(root / "labels.csv", buffer.getvalue())
    return root


register_layout("nifti", "nifti", ("liver",), write_nifti_folder)
