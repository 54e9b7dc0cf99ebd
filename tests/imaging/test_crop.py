"""Sector crop on synthetic screen captures: borders and text panels go, the field stays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from echocaptions.imaging.crop import crop_to_sector, sector_bbox

W, H = 480, 360
PANEL_X = 400


def _speckle(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 40.0, (H, W)).clip(20, 255).astype(np.uint8)


def _capture(shape: str, mode: str = "L", seed: int = 0) -> tuple[Image.Image, tuple[int, ...]]:
    """Black screen, a speckled field, and a side panel of white text blocks."""
    mask = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "fan":
        draw.pieslice((60, -200, 340, 320), start=55, end=125, fill=255)
    else:
        draw.rectangle((80, 40, 320, 300), fill=255)
    field = np.where(np.asarray(mask) > 0, _speckle(seed), 0).astype(np.uint8)
    img = Image.fromarray(field, "L")
    draw = ImageDraw.Draw(img)
    for row in range(30, 330, 40):
        draw.rectangle((PANEL_X, row, PANEL_X + 50, row + 10), fill=255)
        draw.text((PANEL_X, row + 14), "MI 1.1 TIS 0.4", fill=230)
    draw.text((10, 10), "PHILIPS C5-1 OB", fill=255)
    ys, xs = np.nonzero(np.asarray(mask))
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return (img.convert(mode) if mode != "L" else img), box


@pytest.mark.parametrize("shape", ["fan", "rectangle"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_crop_keeps_the_field_and_drops_panel_and_borders(shape: str, mode: str) -> None:
    img, (left, top, right, bottom) = _capture(shape, mode)
    box = sector_bbox(img)
    assert box is not None
    assert box[0] <= left and box[1] <= top and box[2] >= right and box[3] >= bottom
    assert box[2] < PANEL_X, "the text panel must be cropped away"
    assert box[0] > 20 and box[1] > 20, "the black border and the top-left label must go"
    slack = 0.03 * max(W, H)
    assert left - box[0] <= slack and box[2] - right <= slack and bottom <= box[3] <= bottom + slack
    out = crop_to_sector(img)
    assert out.mode == mode and out.size == (box[2] - box[0], box[3] - box[1])


def test_field_filling_the_image_is_a_no_op() -> None:
    img = Image.fromarray(_speckle(), "L")
    assert crop_to_sector(img) is img


def test_black_or_text_only_images_are_unchanged() -> None:
    black = Image.new("L", (W, H))
    assert crop_to_sector(black) is black
    text = Image.new("RGB", (W, H))
    ImageDraw.Draw(text).text((20, 20), "ACUSON 4V1c  depth 16 cm", fill=(255, 255, 255))
    assert crop_to_sector(text) is text


def test_flat_banner_is_not_taken_for_the_field() -> None:
    img = Image.new("RGB", (W, H))
    ImageDraw.Draw(img).rectangle((0, 0, W, 80), fill=(40, 60, 120))
    assert crop_to_sector(img) is img


def test_sixteen_bit_input() -> None:
    img, (left, _, right, _) = _capture("rectangle")
    deep = Image.fromarray(np.asarray(img).astype(np.int32) * 200, "I")
    box = sector_bbox(deep)
    assert box is not None and box[0] <= left and right <= box[2] < PANEL_X
