"""Phantom of a METAVIR-sorted liver fibrosis collection: ``liver_fibrosis/F0`` ... ``F4``.

``per_class`` RGB JPEGs per stage, ``F<k>/<n>.jpg``, each a liver drawn with
``liver_fibrosis = F<k>`` (no steatosis, no lesion), so the folder's stage is
what the image shows. ``broken=True`` adds an image in a non-stage folder
``F5/``, a note ``F2/notes.txt`` and a truncated ``F3/<n>.jpg``.
"""

from __future__ import annotations

from pathlib import Path

from echocaptions.sources.liver_fibrosis import STAGE_LABELS
from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import (
    _Ctx,
    _rgb,
    _save_jpeg,
    _truncate,
    _write_text,
    register_layout,
)


def _image(ctx: _Ctx, stage: str, n: int, path: Path) -> None:
    rng = ctx.rng("liver_fibrosis", stage, n)
    r = draw("liver", STAGE_LABELS.get(stage, "fibrosis"),
             {"liver_fibrosis": stage if stage in STAGE_LABELS else "F2",
              "liver_steatosis": "S0", "liver_lesion": "none"},
             rng, ctx.size, masks=False)
    _save_jpeg(_rgb(r.image), path)


def write_liver_fibrosis(root: Path, ctx: _Ctx) -> Path:
    for stage in STAGE_LABELS:
        for n in range(1, ctx.per_class + 1):
            _image(ctx, stage, n, root / stage / f"{n}.jpg")
    if ctx.broken:
        k = ctx.per_class + 1
        _image(ctx, "F5", 1, root / "F5" / "1.jpg")
        _write_text(root / "F2" / "notes.txt", "biopsy pending\n")
        _image(ctx, "F3", k, root / "F3" / f"{k}.jpg")
        _truncate(root / "F3" / f"{k}.jpg")
    return root


register_layout("liver_fibrosis", "liver_fibrosis", ("liver",), write_liver_fibrosis)
