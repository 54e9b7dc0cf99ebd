"""Crop an ultrasound screen capture to its imaging field (the fan or rectangle).

Scanner exports frame the field with black borders and side panels of text,
scales and logos. Thin strokes (text, ticks, calipers) are removed from the
non-black mask by a morphological opening; the field is the largest remaining
connected region that has speckle texture (flat banners and panels have none),
joined by any textured region at least ``PEER_FRACTION`` as large (dual views).
The regions regrow inside the mask for a few pixels (a geodesic dilation) to
recover the thin apex of a fan that the opening shaved off, without reaching
text beyond. The crop is their bounding box plus a small margin. When no region clearly
stands out, the image is returned unchanged rather than risk cutting the field.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

DARK = 10
MIN_FIELD_FRACTION = 0.10
PEER_FRACTION = 0.4
MIN_TEXTURE = 0.75
MARGIN_FRACTION = 0.01
ANALYSIS_SIDE = 512


def _brightness(img: Image.Image) -> np.ndarray:
    if img.mode in ("RGB", "RGBA", "RGBX", "YCbCr", "P", "PA"):
        return np.asarray(img.convert("RGB")).max(axis=2)
    if img.mode == "L":
        return np.asarray(img)
    arr = np.asarray(img.convert("F"), np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    return ((arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)).astype(np.uint8)


def sector_bbox(img: Image.Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the imaging field, or None when there is no clear field."""
    grey = _brightness(img)
    height, width = grey.shape
    step = max(1, math.ceil(max(height, width) / ANALYSIS_SIDE))
    small = grey[::step, ::step] > DARK
    if not small.any():
        return None
    size = max(3, round(min(small.shape) / 100) * 2 + 1)
    structure = np.ones((size, size), bool)
    opened = ndimage.binary_opening(small, structure=structure)
    labels, count = ndimage.label(opened)
    if count == 0:
        return None
    index = np.arange(1, count + 1)
    areas = ndimage.sum_labels(opened, labels, index)
    small_grey = grey[::step, ::step].astype(np.float32)
    roughness = np.abs(small_grey - ndimage.uniform_filter(small_grey, 3))
    texture = ndimage.median(roughness, labels, index)
    areas = np.where(np.asarray(texture) >= MIN_TEXTURE, areas, 0)
    biggest = float(areas.max())
    if biggest < MIN_FIELD_FRACTION * small.size:
        return None
    keep = index[areas >= PEER_FRACTION * biggest]
    field = ndimage.binary_dilation(np.isin(labels, keep), iterations=2 * size, mask=small)
    rows, cols = np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0))
    margin = max(2, round(MARGIN_FRACTION * max(height, width)))
    left = max(0, int(cols[0]) * step - margin)
    top = max(0, int(rows[0]) * step - margin)
    right = min(width, (int(cols[-1]) + 1) * step + margin)
    bottom = min(height, (int(rows[-1]) + 1) * step + margin)
    return left, top, right, bottom


def crop_to_sector(img: Image.Image) -> Image.Image:
    """The image cropped to its imaging field; unchanged when no clear field is found."""
    box = sector_bbox(img)
    if box is None or box == (0, 0, img.width, img.height):
        return img
    return img.crop(box)
