"""B-mode ultrasound phantom renderer (first version; to be refined)."""

from __future__ import annotations

import numpy as np


def render(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
    size: tuple[int, int] = (256, 320),
) -> np.ndarray:
    """One 8-bit grayscale B-mode frame (H, W) for an organ, label and findings."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 90.0 * np.exp(-yy / (1.5 * h))
    img = base * rng.rayleigh(1.0, size=(h, w)).astype(np.float32)
    if label not in (None, "normal"):
        cy, cx = h * 0.5, w * 0.5
        r = (((yy - cy) / (h * 0.15)) ** 2 + ((xx - cx) / (w * 0.18)) ** 2) <= 1.0
        img[r] *= 0.35 if label == "malignant" else 0.6
    sector = np.abs(xx - w / 2) <= (yy + h * 0.2) * 0.6
    img[~sector] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


def render_clip(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
    n_frames: int = 8,
    size: tuple[int, int] = (256, 320),
) -> list[np.ndarray]:
    """A short cine clip (list of frames) for the given organ and label."""
    return [render(organ, label, findings, rng, size) for _ in range(n_frames)]
