"""Phantom Stanford thyroid cine clips: ``dataset.hdf5`` and ``metadata.csv``, in the real encodings.

``per_class`` benign and ``per_class`` malignant nodules, one cine clip of
:data:`CLIP_FRAMES` frames each (annot_id ``101_``, ``102_``, ...: the trailing
underscore is part of the id, in the HDF5 and in the CSV). Frames are stored
row after row as in the release, with ``frame_num`` counting within the clip,
and each frame carries its own faint electronic noise (±2 grey levels), so no
two frames of a clip are identical; ``mask`` repeats the drawn nodule of the
clip's first frame (the probe moves by a few pixels over a clip).

``metadata.csv`` is written as the real file is: ``histopath_diagnosis`` a
number (``0`` benign, ``1`` malignant; every third nodule, ``102_``, ``105_``...,
written ``0.0`` / ``1.0``), the ``ti-rads_*`` columns the ACR TI-RADS points of
the drawn findings (:data:`POINTS`; large comet-tail artifacts score 0 like no
foci), ``ti-rads_level`` the ACR level those points add up to, ``sex``
``Female`` / ``Male`` and sizes in cm. Datasets are written without HDF5
timestamps so runs are byte-identical. ``broken`` adds a clip without a
metadata row (``900_``), a clip whose diagnosis is ``2`` (``901_``), a metadata
row without frames (``902_``) and a clip whose echogenic foci are ``7``
(``903_``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import _Ctx, _write_text, register_layout
from echocaptions.synth.reports import pick, sample_findings

CLIP_FRAMES = 12
COLUMNS: tuple[str, ...] = (
    "annot_id", "age", "sex", "location", "size_x", "size_y", "size_z", "ti-rads_composition",
    "ti-rads_echogenicity", "ti-rads_shape", "ti-rads_margin", "ti-rads_echogenicfoci",
    "ti-rads_level", "histopath_diagnosis",
)
POINTS: dict[str, dict[str, int]] = {
    "tirads_composition": {"cystic": 0, "spongiform": 0, "mixed": 1, "solid": 2},
    "tirads_echogenicity": {"anechoic": 0, "hyperechoic": 1, "isoechoic": 1, "hypoechoic": 2,
                            "very_hypoechoic": 3},
    "tirads_shape": {"wider_than_tall": 0, "taller_than_wide": 3},
    "tirads_margin": {"smooth": 0, "ill_defined": 0, "lobulated": 2, "irregular": 2,
                      "extrathyroidal_extension": 3},
    "tirads_foci": {"none": 0, "comet_tail": 0, "macrocalcifications": 1, "peripheral": 2, "punctate": 3},
}
TIRADS_COLUMNS: dict[str, str] = {
    "ti-rads_composition": "tirads_composition", "ti-rads_echogenicity": "tirads_echogenicity",
    "ti-rads_shape": "tirads_shape", "ti-rads_margin": "tirads_margin",
    "ti-rads_echogenicfoci": "tirads_foci",
}
DIAGNOSIS: dict[str, str] = {"benign": "0", "malignant": "1"}


def acr_level(findings: dict[str, str]) -> str:
    """ACR TI-RADS level (``1``-``5``) from the points of the five feature groups."""
    points = sum(table.get(findings.get(key, ""), 0) for key, table in POINTS.items())
    if points >= 7:
        return "5"
    if points >= 4:
        return "4"
    return {0: "1", 1: "1", 2: "2"}.get(points, "3")


def _clip(ctx: _Ctx, k: int, label: str) -> tuple[list[np.ndarray], np.ndarray, dict[str, str]]:
    rng = ctx.rng("stanford_thyroid", k)
    r = draw("thyroid", label, sample_findings("thyroid", label, rng), rng, ctx.size,
             n_frames=CLIP_FRAMES)
    frames = [np.clip(frame.astype(np.int16) + rng.integers(-2, 3, frame.shape), 0, 255).astype(np.uint8)
              for frame in r.frames]
    f = r.findings
    row = {
        "age": str(int(rng.integers(20, 85))), "sex": pick(rng, ("Female", "Female", "Male")),
        "location": pick(rng, ("right lobe", "left lobe", "isthmus")),
        **{axis: f"{rng.uniform(0.5, 3.5):.1f}" for axis in ("size_x", "size_y", "size_z")},
        **{column: str(POINTS[key][f[key]]) for column, key in TIRADS_COLUMNS.items()},
        "ti-rads_level": acr_level(f),
        "histopath_diagnosis": DIAGNOSIS[label] + (".0" if k % 3 == 0 else ""),
    }
    return frames, r.masks[0], row


def write_stanford_thyroid(root: Path, ctx: _Ctx) -> Path:
    import h5py

    clips = [(100 + k, "benign" if k % 2 else "malignant") for k in range(1, 2 * ctx.per_class + 1)]
    if ctx.broken:
        clips += [(900, "benign"), (901, "malignant"), (903, "malignant")]
    images, masks, annot, frame_num, rows = [], [], [], [], []
    for number, label in clips:
        frames, mask, row = _clip(ctx, number, label)
        annot_id = f"{number}_"
        images += frames
        masks += [np.where(mask, 255, 0).astype(np.uint8)] * len(frames)
        annot += [annot_id.encode()] * len(frames)
        frame_num += list(range(len(frames)))
        if number == 901:
            row["histopath_diagnosis"] = "2"
        if number == 903:
            row["ti-rads_echogenicfoci"] = "7"
        if number != 900:
            rows.append({"annot_id": annot_id, **row})
    if ctx.broken:
        rows.append({**rows[0], "annot_id": "902_"})
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "dataset.hdf5", "w", track_order=False) as f:
        for name, data in (("image", np.stack(images)), ("mask", np.stack(masks)),
                           ("annot_id", np.array(annot, dtype="S8")),
                           ("frame_num", np.array(frame_num, dtype=np.int32))):
            f.create_dataset(name, data=data, track_times=False)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(root / "metadata.csv", buffer.getvalue())
    return root


register_layout("stanford_thyroid", "StanfordThyroidCine", ("thyroid",), write_stanford_thyroid)
