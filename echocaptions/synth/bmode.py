"""B-mode ultrasound phantom renderer.

A scene (:mod:`echocaptions.synth.bmode_scenes`) paints scatterer strength,
attenuation and specular reflectors on the beam grid of a linear or convex
probe. This module turns that into a display frame the way a scanner does:
correlated Rayleigh speckle, cumulative attenuation along each beam (so
shadows and enhancement arise by themselves), time-gain compensation, log
compression, scan conversion into a fan, and a depth scale on the side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from echocaptions.schema import check_findings, check_label
from echocaptions.synth.bmode_scenes import Scene, make_scene
from echocaptions.synth.bmode_shapes import F32, Fields, Grid, Probe, beam_grid, box_blur, crop

__all__ = ["Rendered", "complete_findings", "draw", "render", "render_clip"]

_JITTER = 3
_SLIDE = 4
_TOP, _BOTTOM, _SIDE = 6, 3, 14


@dataclass(frozen=True)
class _Layout:
    """Where the beam grid lands in the image, plus the field mask and depth ticks."""

    grid: Grid
    nl: int
    mask: np.ndarray
    ticks: np.ndarray
    top: int
    left: int
    pix: np.ndarray | None = None
    r0: np.ndarray | None = None
    c0: np.ndarray | None = None
    wr: np.ndarray | None = None
    wc: np.ndarray | None = None


@lru_cache(maxsize=96)
def _layout(probe: Probe, size: tuple[int, int]) -> _Layout:
    h, w = size
    avail_h, avail_w = h - _TOP - _BOTTOM, w - 2 * _SIDE
    if probe.kind == "linear":
        p = max(probe.depth / avail_h, probe.width / avail_w)
        nr, nl = round(probe.depth / p), round(probe.width / p)
        grid = beam_grid(probe, nr, nl + 2 * _JITTER, p)
        left = (w - nl) // 2
        mask = np.zeros(size, bool)
        mask[_TOP : _TOP + nr, left : left + nl] = True
        tick_x = left + nl + 4
        layout = dict(top=_TOP, left=left)
    else:
        rad, phi, depth = probe.radius, probe.half_angle, probe.depth
        p = max(
            (rad + depth - rad * np.cos(phi)) / avail_h,
            2 * (rad + depth) * np.sin(phi) / avail_w,
        )
        nr = round(depth / p)
        nl = round(2 * phi * (rad + 0.7 * depth) / p)
        pitch = 2 * phi / nl
        grid = beam_grid(probe, nr, nl + 2 * _JITTER, pitch)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        apex_y = _TOP - rad / p
        dx, dy = (xx - (w - 1) / 2) * p, (yy - apex_y) * p
        fr = (np.hypot(dx, dy) - rad) / grid.dd - 0.5
        fc = np.arctan2(dx, dy) / pitch + (nl - 1) / 2
        mask = (fr >= 0) & (fr <= nr - 1) & (fc >= 0) & (fc <= nl - 1)
        pix = np.flatnonzero(mask)
        fr, fc = fr.ravel()[pix], fc.ravel()[pix]
        r0 = np.minimum(fr.astype(np.int32), nr - 2)
        c0 = np.minimum(fc.astype(np.int32), nl - 2)
        tick_x = w - _SIDE // 2
        layout = dict(
            top=_TOP,
            left=0,
            pix=pix,
            r0=r0,
            c0=c0,
            wr=(fr - r0).astype(F32),
            wc=(fc - c0).astype(F32),
        )
    ticks = np.zeros(size, bool)
    step = 10.0 if probe.depth > 60 else 5.0
    for k in range(int(probe.depth // step) + 1):
        y = int(round(_TOP + k * step / p))
        big = k % (5 if step == 10.0 else 2) == 0
        if y < h - 1:
            ticks[y : y + 2, tick_x : tick_x + (3 if big else 2)] = True
    return _Layout(grid=grid, nl=nl, mask=mask, ticks=ticks, **layout)


def _box(a: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Running sum of ``width`` samples along ``axis`` (1 or 2); output shrinks by ``width - 1``."""
    n = a.shape[axis] - width + 1
    if axis == 2:
        out = a[:, :, :n].copy()
        for i in range(1, width):
            out += a[:, :, i : i + n]
    else:
        out = a[:, :n].copy()
        for i in range(1, width):
            out += a[:, i : i + n]
    return out


def _speckle(
    rng: np.random.Generator, shape: tuple[int, int], sig: tuple[float, float]
) -> np.ndarray:
    """Rayleigh amplitude of low-passed complex noise, unit mean intensity.

    Uniform noise smoothed by a short axial kernel and two lateral box
    passes is Gaussian by the central limit theorem and much cheaper than
    drawing normals and convolving with a wide Gaussian.
    """
    nr, nl = shape
    wl = max(3, int(round(sig[1] * 1.7)) | 1)
    wa = max(1, int(round(sig[0] * 1.7)) | 1)
    raw = rng.random((2, nr + 2 * (wa - 1), nl + 2 * (wl - 1)), dtype=F32)
    raw -= F32(0.5)
    out = _box(_box(raw, wa, 1), wa, 1)
    out = _box(_box(out, wl, 2), wl, 2)
    amp = np.sqrt(out[0] * out[0] + out[1] * out[1])
    return amp / np.sqrt(np.mean(amp * amp))


@dataclass(frozen=True)
class _Display:
    """Scanner settings drawn per image: gain, dynamic range, TGC slope, focus."""

    gain: float
    dr: float
    tgc: float
    near: float
    focus: float
    speckle: tuple[float, float]
    gamma: float


def _display(rng: np.random.Generator, probe: Probe) -> _Display:
    return _Display(
        gain=float(rng.uniform(-2.5, 2.5)),
        dr=float(rng.uniform(45.0, 55.0)),
        tgc=float(rng.uniform(-4.0, 4.0)) / (8.686 * probe.depth),
        near=float(rng.uniform(0.0, 4.0)),
        focus=float(rng.uniform(0.35, 0.7)) * probe.depth,
        speckle=(float(rng.uniform(0.8, 1.1)), float(rng.uniform(2.6, 3.4))),
        gamma=float(rng.uniform(1.1, 1.4)),
    )


def _compose(
    f: Fields, spk: np.ndarray, spk_slide: np.ndarray | None, grid: Grid, disp: _Display
) -> np.ndarray:
    """Beam-grid display values 0..255 (float) from scene fields and speckle."""
    if f.slide is not None and spk_slide is not None:
        spk = np.where(f.slide, spk_slide, spk)
    d = grid.d
    path = np.cumsum(f.alpha, axis=0, dtype=F32)
    path -= f.alpha
    atten = np.exp(F32(-2.0 * grid.dd) * path)
    fz = (d - disp.focus) / (0.25 * grid.probe.depth)
    gain_db = (
        disp.gain + disp.near * np.exp(-d / (0.08 * grid.probe.depth)) + 1.5 * np.exp(-fz * fz)
    )
    tgc = (np.exp(disp.tgc * d) * 10.0 ** (gain_db / 20.0)).astype(F32)[:, None]
    env = (np.sqrt(np.maximum(f.echo, F32(1e-4))) * spk + f.spec) * atten
    env += f.art * (F32(0.55) + F32(0.45) * spk)
    env *= tgc
    db = F32(10.0) * np.log10(box_blur(env * env) + F32(1e-8))
    v = np.clip((db + F32(0.55 * disp.dr)) * F32(1.0 / disp.dr), 0.0, 1.0)
    return F32(255.0) * v ** F32(disp.gamma)


def _scan_convert(vals: np.ndarray, lay: _Layout, size: tuple[int, int]) -> np.ndarray:
    out = np.zeros(size[0] * size[1], F32)
    if lay.pix is None:
        nr, nl = vals.shape
        img = out.reshape(size)
        img[lay.top : lay.top + nr, lay.left : lay.left + nl] = vals
        return img
    assert lay.r0 is not None and lay.c0 is not None and lay.wr is not None and lay.wc is not None
    nl = vals.shape[1]
    flat = vals.ravel()
    i = lay.r0 * nl + lay.c0
    top = flat[i] + lay.wc * (flat[i + 1] - flat[i])
    bot = flat[i + nl] + lay.wc * (flat[i + nl + 1] - flat[i + nl])
    out[lay.pix] = top + lay.wr * (bot - top)
    return out.reshape(size)


def _finish(vals: np.ndarray, lay: _Layout, size: tuple[int, int], tick_level: int) -> np.ndarray:
    img = _scan_convert(vals, lay, size)
    img = np.round(img).astype(np.uint8)
    img[lay.ticks] = tick_level
    return img


@dataclass(frozen=True)
class Rendered:
    """What :func:`draw` painted, with the ground truth that describes it.

    ``frames``: 8-bit grayscale frames (H, W); ``label`` and ``findings``: the
    label and the complete findings (schema codes) the scene was drawn with,
    missing ones filled in; ``masks``: one boolean (H, W) mask per focal lesion
    in screen coordinates of the first frame, main lesion first (breast masses,
    thyroid nodule, liver lesions, lung consolidation; empty list when the
    scene has none); ``field``: the imaged field (fan or rectangle);
    ``regions``: named organ masks (``liver``, ``thyroid``). Masks are empty
    when :func:`draw` was called with ``masks=False``.
    """

    frames: list[np.ndarray]
    label: str
    findings: dict[str, str]
    masks: list[np.ndarray]
    field: np.ndarray
    regions: dict[str, np.ndarray]

    @property
    def image(self) -> np.ndarray:
        return self.frames[0]


@lru_cache(maxsize=96)
def _nearest(probe: Probe, size: tuple[int, int]) -> np.ndarray:
    """Flat index of the nearest beam sample (cropped grid) for each field pixel of a fan."""
    lay = _layout(probe, size)
    assert lay.r0 is not None and lay.c0 is not None and lay.wr is not None and lay.wc is not None
    rows = lay.r0 + (lay.wr >= 0.5)
    cols = lay.c0 + (lay.wc >= 0.5)
    return (rows * lay.nl + cols).astype(np.intp)


def _to_screen(
    mask: np.ndarray, lay: _Layout, probe: Probe, size: tuple[int, int]
) -> np.ndarray:
    """A beam-grid boolean mask in screen coordinates (nearest beam sample)."""
    out = np.zeros(size[0] * size[1], bool)
    if lay.pix is None:
        nr, nl = mask.shape
        img = out.reshape(size)
        img[lay.top : lay.top + nr, lay.left : lay.left + nl] = mask
        return img
    out[lay.pix] = mask.ravel()[_nearest(probe, size)]
    return out.reshape(size)


def _render(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    jitter: bool,
    beam: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], _Layout, Scene]:
    check_label(organ, label)
    check_findings(organ, findings)
    scene: Scene = make_scene(organ, label, findings, rng)
    frames, lay = _paint_frames(scene, rng, n_frames, size, jitter, beam)
    return frames, lay, scene


def _paint_frames(
    scene: Scene,
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    jitter: bool,
    beam: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], _Layout]:
    lay = _layout(scene.probe, (int(size[0]), int(size[1])))
    disp = _display(rng, scene.probe)
    grid = lay.grid
    nr = grid.shape[0]
    pad = _JITTER + _SLIDE
    spk_full = _speckle(rng, (nr, lay.nl + 2 * pad), disp.speckle)
    tick_level = int(rng.integers(150, 220))

    offsets = [0] * n_frames
    if jitter and n_frames > 1:
        steps = rng.integers(-1, 2, n_frames)
        steps[0] = 0
        offsets = [int(v) for v in np.clip(np.cumsum(steps), -_JITTER, _JITTER)]
    slide_phase = float(rng.uniform(0, 2 * np.pi))

    static: Fields | None = None
    frames = []
    for k in range(n_frames):
        t = k / max(n_frames, 1)
        if scene.dynamic or static is None:
            static = scene.paint(grid, t)
        fields = static
        off = offsets[k]
        c0 = _JITTER + off
        f = fields.crop(c0, c0 + lay.nl)
        s0 = pad + off
        spk = spk_full[:, s0 : s0 + lay.nl]
        spk_slide = None
        if f.slide is not None:
            shift = (
                int(round(scene.slide_px * np.sin(2 * np.pi * t + slide_phase)))
                if n_frames > 1
                else 0
            )
            shift = max(-_SLIDE, min(_SLIDE, shift))
            spk_slide = spk_full[:, s0 + shift : s0 + shift + lay.nl]
        vals = _compose(f, spk, spk_slide, crop(grid, c0, c0 + lay.nl), disp)
        if beam is not None:
            beam.append(vals)
        frames.append(_finish(vals, lay, size, tick_level))
    return frames, lay


def _frames(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    jitter: bool,
    beam: list[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], _Layout]:
    """Frames of one scene, and where the field lies; ``beam`` collects the
    pre-scan-conversion display values (rows = range, columns = scan lines)."""
    frames, lay, _ = _render(organ, label, findings, rng, n_frames, size, jitter, beam)
    return frames, lay


def complete_findings(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
) -> dict[str, str]:
    """The complete findings :func:`render` draws from this generator state.

    Builds the scene only (no pixels), consuming ``rng`` the way rendering
    does up to that point, and returns ``findings`` with every descriptor the
    scene fills in (the label's typical values). Pass a copy of the generator
    (``copy.deepcopy(rng)``) to keep its state for the render. Rendering with
    the returned findings and the label drawn gives the very same image as
    rendering with the partial ones, from the same generator state. Use
    :func:`draw` to get label, findings, frames and masks in one call.
    """
    check_label(organ, label)
    check_findings(organ, findings)
    return dict(make_scene(organ, label, findings, rng).findings)  # type: ignore[arg-type]


def draw(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
    size: tuple[int, int] = (256, 320),
    n_frames: int = 1,
    *,
    masks: bool = True,
    extra_lesions: int = 0,
) -> Rendered:
    """Render a frame (``n_frames=1``, as :func:`render`) or a clip (as :func:`render_clip`)
    and return it with the label, complete findings and lesion masks that describe it.

    ``draw(...).frames`` equals ``render(...)`` / ``render_clip(...)`` pixel for
    pixel for the same generator state. ``extra_lesions`` (breast only) adds
    that many small circumscribed masses beside the main one, where they fit;
    ``len(masks)`` says how many lesions were actually drawn. Their geometry
    comes from the scene's own seed, so the main lesion and the rest of the
    image do not change.
    """
    check_label(organ, label)
    check_findings(organ, findings)
    if extra_lesions and organ != "breast":
        raise ValueError(f"extra_lesions is only drawn for breast, not {organ}")
    scene: Scene = make_scene(organ, label, findings, rng)
    for _ in range(extra_lesions):
        scene.add_lesion()  # type: ignore[attr-defined]
    size = (int(size[0]), int(size[1]))
    frames, lay = _paint_frames(scene, rng, n_frames, size, jitter=n_frames > 1)
    lesion_masks: list[np.ndarray] = []
    regions: dict[str, np.ndarray] = {}
    if masks:
        grid = crop(lay.grid, _JITTER, _JITTER + lay.nl)
        lesion_masks = [_to_screen(m, lay, scene.probe, size) for m in scene.lesion_masks(grid)]
        regions = {
            k: _to_screen(m, lay, scene.probe, size) for k, m in scene.region_masks(grid).items()
        }
    return Rendered(
        frames=frames,
        label=scene.label,
        findings=dict(scene.findings),  # type: ignore[arg-type]
        masks=lesion_masks,
        field=lay.mask.copy(),
        regions=regions,
    )


def render(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
    size: tuple[int, int] = (256, 320),
) -> np.ndarray:
    """One 8-bit grayscale B-mode frame (H, W) for an organ, label and findings.

    Missing findings are drawn from ``rng`` to suit the label; the same
    generator state always gives the same image. :func:`complete_findings`
    and :func:`draw` say which findings were drawn.
    """
    frames, _ = _frames(organ, label, findings, rng, 1, size, jitter=False)
    return frames[0]


def render_clip(
    organ: str,
    label: str | None,
    findings: dict[str, str | None],
    rng: np.random.Generator,
    n_frames: int = 8,
    size: tuple[int, int] = (256, 320),
) -> list[np.ndarray]:
    """A short cine clip of one scene: lung shows pleural sliding and moving
    B-lines, other organs a little probe rocking."""
    frames, _ = _frames(organ, label, findings, rng, n_frames, size, jitter=True)
    return frames
