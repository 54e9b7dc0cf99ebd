"""Phantom of Byra's fatty liver dataset: one MATLAB v5 file with a ``data`` struct array.

``fatty_liver/dataset_liver_bmodes_steatosis_assessment_IJCARS.mat`` holds
``2 * per_class`` patients (alternately normal and fatty, ids 1..n), each
with ``id``, ``class``, ``fat`` (percent) and ``images``: ten liver frames
drawn with the patient's grade (uint8, ``size``; distinct views, as in the real
file). ``fat`` lies inside the steatosis grade
the frames were drawn with, so the adapter's grade matches the pixels.
``broken=True`` appends a patient with class 7 and one whose ``images`` is a
vector, not a stack of frames. The MAT header's creation time is fixed so two
runs write identical bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from echocaptions.sources.fatty_liver import FRAMES_PER_PATIENT, MAT_NAME
from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import _Ctx, register_layout

FAT_RANGES: dict[str, tuple[float, float]] = {
    "S0": (0.0, 4.9), "S1": (5.0, 33.0), "S2": (34.0, 66.0), "S3": (67.0, 95.0),
}
_HEADER = b"MATLAB 5.0 MAT-file, Platform: echocaptions phantom, Created on: Thu Jan  1 00:00:00 1970"


def save_mat_v5(path: Path, variables: dict[str, object]) -> None:
    """``scipy.io.savemat`` (v5) with a fixed header text, so the bytes depend on the data only."""
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables, format="5", do_compression=False)
    data = bytearray(buffer.getvalue())
    data[:116] = _HEADER.ljust(116, b" ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))


def struct_array(rows: list[dict[str, object]]) -> np.ndarray:
    """A 1 x n MATLAB struct array with the dataset's four fields."""
    fields = ("id", "class", "fat", "images")
    array = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            array[0, i][f] = row[f]
    return array


def _patient(ctx: _Ctx, pid: int, fatty: bool) -> dict[str, object]:
    rng = ctx.rng("fatty_liver", pid)
    grade = ("S1", "S2", "S3")[int(rng.integers(3))] if fatty else "S0"
    lo, hi = FAT_RANGES[grade]
    fat = round(float(rng.uniform(lo, hi)), 1)
    findings: dict[str, str | None] = {"liver_steatosis": grade, "liver_fibrosis": "F0",
                                       "liver_lesion": "none"}
    frames = [draw("liver", "steatosis" if fatty else "normal", findings, rng, ctx.size,
                   masks=False).image for _ in range(FRAMES_PER_PATIENT)]
    return {"id": float(pid), "class": float(fatty), "fat": fat,
            "images": np.stack(frames).astype(np.uint8)}


def write_fatty_liver(root: Path, ctx: _Ctx) -> Path:
    rows = [_patient(ctx, pid, fatty=pid % 2 == 0) for pid in range(1, 2 * ctx.per_class + 1)]
    if ctx.broken:
        n = len(rows)
        bad_class = _patient(ctx, n + 1, fatty=True)
        bad_class["class"] = 7.0
        vector = _patient(ctx, n + 2, fatty=False)
        vector["images"] = np.arange(12, dtype=np.uint8)
        rows += [bad_class, vector]
    save_mat_v5(root / MAT_NAME, {"data": struct_array(rows)})
    return root


register_layout("fatty_liver", "fatty_liver", ("liver",), write_fatty_liver)
