"""Geometry primitives for the B-mode phantom.

Scenes are described in physical millimetres (``x`` lateral, ``z`` depth below
the probe face) but painted on the *beam grid*: one row per depth sample along
the beam, one column per scan line. Painting there makes shadows and
enhancement (cumulative attenuation along each beam) and lung artefacts
(A-lines at multiples of the pleural range, B-lines along a beam) exact for
both linear and convex probes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

F32 = np.float32
Slices = tuple[slice, slice]


@dataclass(frozen=True)
class Probe:
    """Transducer geometry; ``radius`` is 0 for a linear probe."""

    kind: str
    depth: float
    width: float = 0.0
    radius: float = 0.0
    half_angle: float = 0.0


@dataclass
class Grid:
    """Physical coordinates of every beam sample, shape (rows, cols)."""

    probe: Probe
    x: np.ndarray
    z: np.ndarray
    d: np.ndarray
    dd: float
    cols: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape  # type: ignore[return-value]

    @property
    def linear(self) -> bool:
        return self.probe.kind == "linear"

    def window(self, x0: float, x1: float, z0: float, z1: float) -> Slices | None:
        """Index box of the beam grid covering a physical box, or None when outside."""
        nr, nl = self.shape
        if self.linear:
            c0, c1 = np.searchsorted(self.cols, [x0, x1])
            r0, r1 = z0 / self.dd, z1 / self.dd
        else:
            rad = self.probe.radius
            xs = np.array([x0, x1, x0, x1])
            zs = np.array([z0, z0, z1, z1]) + rad
            th = np.arctan2(xs, np.maximum(zs, 1e-3))
            c0, c1 = np.searchsorted(self.cols, [th.min(), th.max()])
            cxp = min(max(0.0, x0), x1)
            czp = min(max(-rad, z0), z1) + rad
            rmin = float(np.hypot(cxp, czp))
            rmax = float(np.hypot(xs, zs).max())
            r0, r1 = (rmin - rad) / self.dd, (rmax - rad) / self.dd
        r0i, r1i = max(int(np.floor(r0)) - 1, 0), min(int(np.ceil(r1)) + 2, nr)
        c0i, c1i = max(int(c0) - 1, 0), min(int(c1) + 1, nl)
        if r1i <= r0i or c1i <= c0i:
            return None
        return slice(r0i, r1i), slice(c0i, c1i)

    def along_x(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Evaluate a function of lateral position on the grid (once per column when linear)."""
        if self.linear:
            return np.broadcast_to(fn(self.cols.astype(F32))[None, :], self.shape)
        return fn(self.x)


@lru_cache(maxsize=96)
def beam_grid(probe: Probe, nr: int, nl: int, pitch: float) -> Grid:
    """Beam grid for a probe: ``pitch`` is mm per column (linear) or radians per beam (convex)."""
    dd = probe.depth / nr
    d = ((np.arange(nr) + 0.5) * dd).astype(F32)
    cols = ((np.arange(nl) - (nl - 1) / 2.0) * pitch).astype(np.float64)
    if probe.kind == "linear":
        x = np.broadcast_to(cols.astype(F32)[None, :], (nr, nl))
        z = np.broadcast_to(d[:, None], (nr, nl))
    else:
        r = (probe.radius + d)[:, None]
        x = (r * np.sin(cols)[None, :]).astype(F32)
        z = (r * np.cos(cols)[None, :] - probe.radius).astype(F32)
    return Grid(probe, x, z, d, dd, cols)


def crop(grid: Grid, c0: int, c1: int) -> Grid:
    """Columns ``c0:c1`` of a grid."""
    return Grid(grid.probe, grid.x[:, c0:c1], grid.z[:, c0:c1], grid.d, grid.dd, grid.cols[c0:c1])


@dataclass
class Fields:
    """What the scene puts on the beam grid.

    ``echo`` is scatterer intensity (1 = reference soft tissue), ``alpha`` the
    one-way attenuation in excess of what the TGC expects (Np/mm; negative in
    fluid, large in bone and calcium), ``spec`` the amplitude of speckle-free
    specular reflectors, ``art`` reverberation amplitude that is not shadowed
    (comet tails, tracheal rings), ``slide`` marks samples whose speckle moves
    with lung sliding.
    """

    echo: np.ndarray
    alpha: np.ndarray
    spec: np.ndarray
    art: np.ndarray
    slide: np.ndarray | None = None

    @classmethod
    def blank(cls, shape: tuple[int, int], echo: float = 1.0) -> Fields:
        return cls(
            np.full(shape, echo, F32),
            np.zeros(shape, F32),
            np.zeros(shape, F32),
            np.zeros(shape, F32),
        )

    def crop(self, c0: int, c1: int) -> Fields:
        slide = None if self.slide is None else self.slide[:, c0:c1]
        return Fields(
            self.echo[:, c0:c1],
            self.alpha[:, c0:c1],
            self.spec[:, c0:c1],
            self.art[:, c0:c1],
            slide,
        )


def smoothstep(t: np.ndarray) -> np.ndarray:
    """Clipped linear ramp 0..1."""
    return np.clip(t, 0.0, 1.0)


def blend(arr: np.ndarray, sl: Slices, weight: np.ndarray, value: float | np.ndarray) -> None:
    """Mix ``value`` into ``arr[sl]`` with per-sample ``weight`` in 0..1."""
    sub = arr[sl]
    sub += weight * (value - sub)


class Boundary:
    """A closed contour as normalised radius r(phi); margins are encoded here."""

    N = 720

    def __init__(self, radius: np.ndarray) -> None:
        self.table = radius.astype(F32)

    @classmethod
    def make(cls, margin: str, rng: np.random.Generator) -> Boundary:
        """Contour for a margin descriptor (BI-RADS / TI-RADS wording)."""
        phi = np.linspace(-np.pi, np.pi, cls.N, endpoint=False)
        r = np.ones(cls.N)

        def harmonics(ks: range, amp: float) -> None:
            for k in ks:
                r[:] += amp * rng.uniform(0.3, 1.0) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))

        if margin in ("circumscribed", "smooth"):
            harmonics(range(2, 4), 0.025)
        elif margin in ("indistinct", "ill_defined"):
            harmonics(range(2, 5), 0.05)
        elif margin in ("lobulated", "macrolobulated"):
            harmonics(range(2, 4), 0.06)
            k = int(rng.integers(3, 6))
            r += 0.12 * np.abs(np.cos(k / 2 * phi + rng.uniform(0, np.pi))) - 0.06
        elif margin == "microlobulated":
            harmonics(range(2, 4), 0.06)
            k = int(rng.integers(10, 16))
            r += 0.07 * np.abs(np.cos(k / 2 * phi + rng.uniform(0, np.pi)))
        elif margin == "angular":
            n = int(rng.integers(5, 8))
            ang = np.sort(rng.uniform(-np.pi, np.pi, n))
            rad = rng.uniform(0.7, 1.25, n)
            r = np.interp(phi, ang, rad, period=2 * np.pi)
        else:
            harmonics(range(2, 5), 0.12)
            harmonics(range(5, 9), 0.05)
            if margin in ("spiculated", "extrathyroidal_extension"):
                for _ in range(int(rng.integers(7, 13))):
                    c = rng.uniform(-np.pi, np.pi)
                    w = rng.uniform(0.04, 0.09)
                    dist = np.abs(np.angle(np.exp(1j * (phi - c))))
                    r += rng.uniform(0.25, 0.6) * np.clip(1.0 - dist / w, 0.0, None)
        return cls(np.clip(r, 0.4, None))

    def __call__(self, phi: np.ndarray) -> np.ndarray:
        idx = ((phi + np.pi) * (self.N / (2 * np.pi))).astype(np.int32) % self.N
        return self.table[idx]


@dataclass
class Blob:
    """A closed shape: centre, semi-axes (lateral ``a``, axial ``b``), tilt, contour."""

    cx: float
    cz: float
    a: float
    b: float
    rot: float = 0.0
    boundary: Boundary | None = None

    def rho(self, grid: Grid, reach: float = 1.25) -> tuple[Slices, np.ndarray] | None:
        """Normalised radius (1 on the contour) over the shape's index box."""
        ext = max(self.a, self.b) * reach
        sl = grid.window(self.cx - ext, self.cx + ext, self.cz - ext, self.cz + ext)
        if sl is None:
            return None
        u, v = self.local(grid, sl)
        rr = np.sqrt(u * u + v * v)
        if self.boundary is not None:
            rr = rr / self.boundary(np.arctan2(v, u))
        return sl, rr

    def local(self, grid: Grid, sl: Slices) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates in the shape frame, in units of the semi-axes."""
        dx = grid.x[sl] - F32(self.cx)
        dz = grid.z[sl] - F32(self.cz)
        if self.rot == 0.0:
            return dx * F32(1.0 / self.a), dz * F32(1.0 / self.b)
        c, s = F32(np.cos(self.rot)), F32(np.sin(self.rot))
        return (c * dx + s * dz) / F32(self.a), (-s * dx + c * dz) / F32(self.b)


def inside(rr: np.ndarray, soft: float = 0.08) -> np.ndarray:
    """Soft membership from a normalised radius; ``soft`` is the edge width."""
    return smoothstep((1.0 - rr) / soft + 0.5)


def ring(rr: np.ndarray, at: float, width: float) -> np.ndarray:
    """Gaussian band around ``rr == at``."""
    t = (rr - at) / width
    return np.exp(-(t * t))


@lru_cache(maxsize=256)
def _interp_index(
    n: int, cell: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    pos = np.arange(n) / cell
    i0 = pos.astype(np.int32)
    t = pos - i0
    t = t * t * (3.0 - 2.0 * t)
    norm = 1.0 / np.sqrt((1.0 - t) ** 2 + t**2)
    return (
        i0,
        (1.0 - t).astype(np.float32),
        t.astype(np.float32),
        norm.astype(np.float32),
        int(i0[-1]) + 2,
    )


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], cell: tuple[float, float]
) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field with feature size ``cell`` (rows, cols).

    A coarse Gaussian lattice is upsampled separably with smoothstep weights,
    which costs two gathers whatever the cell size.
    """
    ir, ar, br, nr_, mr = _interp_index(shape[0], max(float(cell[0]), 1.0))
    ic, ac, bc, nc_, mc = _interp_index(shape[1], max(float(cell[1]), 1.0))
    g = rng.standard_normal((mr, mc), dtype=F32)
    rows = (g[ir] * ar[:, None] + g[ir + 1] * br[:, None]) * nr_[:, None]
    return (rows[:, ic] * ac + rows[:, ic + 1] * bc) * nc_


def waves(
    rng: np.random.Generator, amp: float, period: tuple[float, float], n: int = 3
) -> Callable[[np.ndarray], np.ndarray]:
    """Random smooth 1-D profile (sum of sinusoids) for undulating layer boundaries."""
    ks = 2 * np.pi / rng.uniform(period[0], period[1], n)
    ph = rng.uniform(0, 2 * np.pi, n)
    am = amp * rng.uniform(0.4, 1.0, n) / np.sqrt(n)

    def fn(x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x, dtype=F32)
        for k, p, a in zip(ks, ph, am, strict=True):
            out += F32(a) * np.sin(F32(k) * x + F32(p))
        return out

    return fn


def box_blur(a: np.ndarray) -> np.ndarray:
    """[1 2 1]/4 smoothing in both axes, edges left as they are."""
    out = a.copy()
    out[1:-1] = F32(0.5) * a[1:-1] + F32(0.25) * (a[:-2] + a[2:])
    tmp = out.copy()
    out[:, 1:-1] = F32(0.5) * tmp[:, 1:-1] + F32(0.25) * (tmp[:, :-2] + tmp[:, 2:])
    return out


class Curve:
    """Depth of a layer boundary as a function of lateral position: ``base + wiggle(x) + tilt*x``."""

    def __init__(
        self,
        base: float,
        wiggle: Callable[[np.ndarray], np.ndarray] | None = None,
        amp: float = 0.0,
        tilt: float = 0.0,
        bend: float = 0.0,
    ) -> None:
        self.base, self.wiggle, self.amp, self.tilt, self.bend = base, wiggle, amp, tilt, bend

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = F32(self.base) + F32(self.tilt) * x + F32(self.bend) * x * x
        if self.wiggle is not None:
            out = out + self.wiggle(x)
        return out

    def span(self, grid: Grid) -> tuple[float, float]:
        """Lower and upper depth the curve reaches across the field."""
        xs = np.linspace(float(grid.x.min()), float(grid.x.max()), 64).astype(F32)
        zs = self(xs)
        return float(zs.min()) - self.amp * 0.1, float(zs.max()) + self.amp * 0.1


def on_grid(curve: Curve, grid: Grid, sl: Slices) -> np.ndarray:
    """Curve depth at every sample of ``grid[sl]`` (one evaluation per column when linear)."""
    if grid.linear:
        return curve(grid.cols[sl[1]].astype(F32))[None, :]
    return curve(grid.x[sl])


def _rows(grid: Grid, z0: float, z1: float) -> Slices | None:
    return grid.window(float(grid.x.min()) - 1, float(grid.x.max()) + 1, z0, z1)


def add_band(
    arr: np.ndarray, grid: Grid, curve: Curve, width: float, amp: float | np.ndarray
) -> None:
    """Add a Gaussian line of half-width ``width`` mm along ``curve``."""
    lo, hi = curve.span(grid)
    sl = _rows(grid, lo - 3 * width, hi + 3 * width)
    if sl is None:
        return
    t = (grid.z[sl] - on_grid(curve, grid, sl)) / F32(width)
    val = np.exp(-(t * t))
    arr[sl] += val * (amp[sl] if isinstance(amp, np.ndarray) else F32(amp))


def fill_below(
    arr: np.ndarray, grid: Grid, curve: Curve, value: float | np.ndarray, soft: float = 0.4
) -> None:
    """Overwrite ``arr`` below ``curve`` with ``value`` (scalar or full-grid array)."""
    lo, _ = curve.span(grid)
    sl = _rows(grid, lo - soft, float(grid.z.max()) + 1)
    if sl is None:
        return
    w = smoothstep((grid.z[sl] - on_grid(curve, grid, sl)) / F32(soft) + 0.5)
    blend(arr, sl, w, value[sl] if isinstance(value, np.ndarray) else F32(value))


def fill_between(
    arr: np.ndarray,
    grid: Grid,
    top: Curve,
    bottom: Curve,
    value: float | np.ndarray,
    soft: float = 0.4,
) -> None:
    """Overwrite ``arr`` between two curves with ``value``."""
    lo, _ = top.span(grid)
    _, hi = bottom.span(grid)
    sl = _rows(grid, lo - soft, hi + soft)
    if sl is None:
        return
    z = grid.z[sl]
    w = smoothstep((z - on_grid(top, grid, sl)) / F32(soft) + 0.5)
    w *= smoothstep((on_grid(bottom, grid, sl) - z) / F32(soft) + 0.5)
    blend(arr, sl, w, value[sl] if isinstance(value, np.ndarray) else F32(value))


def fill_mask(grid: Grid, top: Curve, bottom: Curve) -> np.ndarray:
    """Where ``grid`` lies at or below ``top`` and above ``bottom`` (what the fills paint)."""
    out = np.zeros(grid.shape, bool)
    lo, _ = top.span(grid)
    _, hi = bottom.span(grid)
    sl = _rows(grid, lo - 1.0, hi + 1.0)
    if sl is not None:
        z = grid.z[sl]
        out[sl] = (z >= on_grid(top, grid, sl)) & (z < on_grid(bottom, grid, sl))
    return out
