"""Phantom TN3K: ``{trainval,test}-image`` / ``-mask`` JPEGs, label CSVs and fold files.

Each split holds ``per_class`` benign and ``per_class`` malignant nodules,
alternating, named ``0000.jpg`` onwards (numbering restarts in ``test-image``
as in the release). Images are RGB JPEGs, masks grayscale JPEGs of the drawn
nodule; ``label4*.csv`` lines read ``NNNN.jpg,0|1`` without a header. The
five ``tn3k-trainval-fold{k}.json`` files hold ``train`` / ``val`` index lists
over the sorted ``trainval-image`` listing. The label files are written by
default; ``write_tn3k(..., labels=False)`` writes the TRFE-Net download alone
(images, masks, folds), which has none. ``broken`` adds a train-val image
without a label line, a label outside 0/1, a test mask without its image, a
truncated test image and a stray ``Thumbs.db``.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import (
    _Ctx,
    _mask_png,
    _rgb,
    _save_jpeg,
    _truncate,
    _write_text,
    register_layout,
)
from echocaptions.synth.reports import sample_findings

_CODE = {"benign": "0", "malignant": "1"}


def _nodule(root: Path, ctx: _Ctx, split: str, n: int, label: str) -> str:
    rng = ctx.rng("tn3k", split, n)
    r = draw("thyroid", label, sample_findings("thyroid", label, rng), rng, ctx.size)
    name = f"{n:04d}.jpg"
    _save_jpeg(_rgb(r.image), root / f"{split}-image" / name)
    mask: Image.Image = _mask_png(r.masks[0])
    _save_jpeg(mask, root / f"{split}-mask" / name)
    return name


def write_tn3k(root: Path, ctx: _Ctx, labels: bool = True) -> Path:
    """Write the layout under ``root``; ``labels=False`` leaves out ``label4*.csv`` (TRFE-Net alone)."""
    count = 2 * ctx.per_class
    for split in ("trainval", "test"):
        lines = []
        for n in range(count):
            label = "benign" if n % 2 == 0 else "malignant"
            lines.append(f"{_nodule(root, ctx, split, n, label)},{_CODE[label]}")
        if ctx.broken and split == "trainval":
            _nodule(root, ctx, split, count, "benign")
            lines.append(f"{_nodule(root, ctx, split, count + 1, 'malignant')},2")
            _write_text(root / "trainval-image" / "Thumbs.db", "not an image\n")
        if ctx.broken and split == "test":
            name = _nodule(root, ctx, split, count, "malignant")
            (root / "test-image" / name).unlink()
            lines.append(f"{_nodule(root, ctx, split, count + 1, 'benign')},0")
            _truncate(root / "test-image" / f"{count + 1:04d}.jpg")
        if labels:
            _write_text(root / f"label4{split}.csv", "\n".join(lines) + "\n")
    indices = list(range(count))
    for k in range(5):
        val = indices[k::5]
        train = [i for i in indices if i not in val]
        _write_text(root / f"tn3k-trainval-fold{k}.json", json.dumps({"train": train, "val": val}))
    return root


register_layout("tn3k", "TN3K", ("thyroid",), write_tn3k)
