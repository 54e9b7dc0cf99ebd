"""Organ scenes for the B-mode phantom.

Each scene draws all of its random choices when built (probe, layer depths,
lesion geometry, findings not given) and paints them on any beam grid with
:meth:`Scene.paint`; textures come from a private seed so repainting a
dynamic scene (lung) for every cine frame keeps the anatomy fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from echocaptions.schema import LABELS
from echocaptions.synth.bmode_shapes import (
    F32,
    Blob,
    Boundary,
    Curve,
    Fields,
    Grid,
    Probe,
    add_band,
    blend,
    fill_below,
    fill_between,
    fill_mask,
    inside,
    ring,
    smooth_noise,
    waves,
)

Findings = dict[str, str | None]


def pick(rng: np.random.Generator, options: Mapping[str, float]) -> str:
    """Weighted choice among string options."""
    keys = list(options)
    p = np.array([options[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def fill(fd: Findings, key: str, rng: np.random.Generator, options: Mapping[str, float]) -> str:
    """The given finding, or a plausible one drawn from ``options``.

    One value is drawn whether or not the finding is given, so a scene built
    from its own completed findings consumes ``rng`` exactly as the scene
    built from the partial ones (see :func:`make_scene`).
    """
    drawn = pick(rng, options)
    value = fd.get(key)
    if value is None:
        value = drawn
        fd[key] = value
    return value


def _choose_label(
    label: str | None,
    infer: Callable[[Findings], str | None],
    organ: str,
    fd: Findings,
    rng: np.random.Generator,
) -> str:
    """The given label, else one implied by the findings, else a random one.

    Always draws once from ``rng`` so that passing the label a scene drew
    leaves the rest of the scene unchanged.
    """
    guess = pick(rng, dict.fromkeys(LABELS[organ], 1.0))
    if label is not None:
        return label
    return infer(fd) or guess


def _mm_noise(rng: np.random.Generator, grid: Grid, cell_mm: tuple[float, float]) -> np.ndarray:
    """Smooth noise with a feature size given in mm (axial, lateral at mid depth)."""
    lateral = float(np.abs(np.diff(grid.x[grid.shape[0] // 2])).mean())
    return smooth_noise(rng, grid.shape, (cell_mm[0] / grid.dd, cell_mm[1] / max(lateral, 1e-3)))


class Scene:
    """Base class: a probe, a texture seed, and whether frames must be repainted."""

    probe: Probe
    dynamic: bool = False
    slide_px: float = 0.0

    def __init__(self, rng: np.random.Generator) -> None:
        self.seed = int(rng.integers(2**31))

    findings: Findings
    label: str

    def paint(self, grid: Grid, t: float) -> Fields:
        raise NotImplementedError

    def lesion_masks(self, grid: Grid) -> list[np.ndarray]:
        """Boolean masks on ``grid`` of each focal lesion the scene paints, main lesion first.

        A lesion's mask is where its painted membership is at least one half,
        i.e. inside its contour. Lesions the field misses give empty masks.
        """
        return []

    def region_masks(self, grid: Grid) -> dict[str, np.ndarray]:
        """Boolean masks on ``grid`` of named anatomical regions (e.g. ``liver``)."""
        return {}


def _blob_mask(blob: Blob, grid: Grid, reach: float = 1.25) -> np.ndarray:
    """Where ``blob``'s normalised radius is at most 1 on ``grid``."""
    out = np.zeros(grid.shape, bool)
    spikes = 1.0 if blob.boundary is None else float(blob.boundary.table.max())
    got = blob.rho(grid, reach=reach * spikes)
    if got is not None:
        sl, rr = got
        out[sl] = rr <= F32(1.0)
    return out


def _skin(f: Fields, grid: Grid, thick: float, amp: float = 2.5) -> None:
    add_band(f.spec, grid, Curve(0.25), 0.35, amp)
    add_band(f.spec, grid, Curve(thick), 0.3, amp * 0.5)
    fill_between(f.echo, grid, Curve(-1.0), Curve(thick), 1.2, soft=0.3)


def _striated(grid: Grid, tex: np.ndarray, base: float, period: float, tilt: float) -> np.ndarray:
    """Muscle echo: hypoechoic fibres with thin bright perimysium lines."""
    s = np.cos(F32(2 * np.pi / period) * (grid.z + F32(tilt) * grid.x) + F32(2.0) * tex)
    return F32(base) * (F32(1.0) + F32(1.6) * np.clip(s, 0.4, 1.0) - F32(0.64))


# --------------------------------------------------------------------------- breast


class BreastScene(Scene):
    """Linear-probe breast: skin, fat with Cooper's ligaments, glandular layer, pectoralis, mass."""

    def __init__(self, label: str | None, fd: Findings, rng: np.random.Generator) -> None:
        super().__init__(rng)
        label = _choose_label(label, _infer_breast, "breast", fd, rng)
        self.label = label
        depth = float(rng.choice([30.0, 35.0, 40.0, 45.0]))
        self.probe = Probe("linear", depth=depth, width=float(rng.choice([38.0, 42.0, 46.0, 50.0])))
        tissue = fill(
            fd,
            "birads_tissue",
            rng,
            {"homogeneous_fat": 1, "homogeneous_fibroglandular": 1.5, "heterogeneous": 1.2},
        )
        self.tissue = tissue
        self.skin = float(rng.uniform(1.2, 2.2))
        fat = {
            "homogeneous_fat": (9, 15),
            "homogeneous_fibroglandular": (3, 6),
            "heterogeneous": (4, 9),
        }[tissue]
        fg = {
            "homogeneous_fat": (2, 5),
            "homogeneous_fibroglandular": (10, 17),
            "heterogeneous": (8, 14),
        }[tissue]
        z_fg = self.skin + rng.uniform(*fat)
        z_rm = z_fg + rng.uniform(*fg)
        z_pm = z_rm + rng.uniform(2.0, 4.0)
        self.z_fg = Curve(z_fg, waves(rng, 2.5, (12, 40)), 2.5)
        self.z_rm = Curve(z_rm, waves(rng, 2.0, (15, 50)), 2.0)
        self.z_pm = Curve(
            z_pm, waves(rng, 1.0, (30, 80)), 1.0, tilt=float(rng.uniform(-0.08, 0.08))
        )
        self.z_cw = Curve(
            z_pm + rng.uniform(6.0, 10.0), waves(rng, 1.0, (30, 80)), 1.0, tilt=self.z_pm.tilt
        )
        self.fg_echo = float(rng.uniform(1.4, 1.9))
        self.mass: _Mass | None = None
        self.extra: list[_Mass] = []
        self._layers = (z_fg, z_rm)
        if label != "normal":
            self.mass = _breast_mass(label, fd, rng, self.probe, self.skin, z_fg, z_rm)

    def add_lesion(self) -> bool:
        """Add a small circumscribed second mass away from the first; False when none fits.

        Its geometry comes from the scene's own seed, not the caller's
        generator, so the rest of the scene is unchanged.
        """
        if self.mass is None:
            return False
        rng = np.random.default_rng([self.seed, 7, len(self.extra)])
        first = self.mass.blob
        half = self.probe.width / 2
        a = float(rng.uniform(2.5, 4.5))
        b = a / float(rng.uniform(1.3, 1.8))
        side = -1.0 if first.cx > 0 else 1.0
        lo = first.cx + side * (first.a * 1.3 + a + 2.0)
        hi = side * (half - a - 1.5)
        if (hi - lo) * side <= 0:
            return False
        cx = float(lo + (hi - lo) * rng.uniform(0.2, 0.9))
        z_fg, z_rm = self._layers
        cz = float(np.clip(rng.uniform(z_fg, max(z_rm, z_fg + 1.0)), self.skin + b + 2.0,
                           max(self.probe.depth - b - 6.0, self.skin + b + 2.0)))
        cyst = bool(rng.random() < 0.5)
        blob = Blob(cx, cz, a, b, float(rng.uniform(-0.2, 0.2)), Boundary.make("circumscribed", rng))
        m = _Mass(
            blob,
            0.006 if cyst else float(rng.uniform(0.1, 0.18)),
            soft=0.1,
            hetero=0.0 if cyst else 0.25,
            post=float(rng.uniform(1.8, 2.4)) if cyst else 1.0,
            wall=1.2 if cyst else 0.5,
        )
        self.extra.append(m)
        return True

    def lesion_masks(self, grid: Grid) -> list[np.ndarray]:
        masses = ([] if self.mass is None else [self.mass]) + self.extra
        return [_blob_mask(m.blob, grid) for m in masses]

    def paint(self, grid: Grid, t: float) -> Fields:
        rng = np.random.default_rng(self.seed)
        f = Fields.blank(grid.shape, 0.6)
        n1 = _mm_noise(rng, grid, (2.0, 4.0))
        n2 = _mm_noise(rng, grid, (1.6, 7.0))
        n3 = _mm_noise(rng, grid, (2.5, 3.5))
        fat = F32(0.32) * (F32(1.0) + F32(0.3) * n1)
        fat += F32(1.8) * np.exp(-((n2 / F32(0.09)) ** 2))
        if self.tissue == "heterogeneous":
            glands = np.where(n3 > 0.35, F32(0.35), F32(self.fg_echo) * (F32(1.0) + F32(0.2) * n1))
        else:
            glands = F32(self.fg_echo) * (F32(1.0) + F32(0.18) * n3)
        muscle = _striated(grid, n1 * F32(0.3), 0.5, 1.6, float(rng.uniform(-0.25, 0.25)))
        fill_below(f.echo, grid, Curve(0.0), fat)
        fill_below(f.echo, grid, self.z_fg, glands, soft=1.2)
        fill_below(f.echo, grid, self.z_rm, fat, soft=0.8)
        fill_below(f.echo, grid, self.z_pm, muscle, soft=0.5)
        fill_below(f.echo, grid, self.z_cw, 0.55 * (1 + 0.3 * n3), soft=0.5)
        add_band(f.spec, grid, self.z_pm, 0.35, 1.2)
        add_band(f.spec, grid, self.z_cw, 0.35, 1.0)
        _skin(f, grid, self.skin)
        if self.mass is not None:
            self.mass.paint(f, grid, rng)
        for m in self.extra:
            m.paint(f, grid, rng)
        return f


class _Mass:
    """A focal lesion: contour, internal echo, posterior behaviour, walls, foci."""

    def __init__(
        self,
        blob: Blob,
        echo: float,
        soft: float = 0.08,
        hetero: float = 0.15,
        post: float = 1.0,
        wall: float = 0.0,
        halo: float = 0.0,
        edge_shadow: float = 0.0,
    ) -> None:
        self.blob, self.echo, self.soft, self.hetero = blob, echo, soft, hetero
        self.post, self.wall, self.halo, self.edge_shadow = post, wall, halo, edge_shadow
        self.shadow_half = False
        self.cystic_part: Blob | None = None
        self.solid_part: tuple[Blob, float] | None = None
        self.microcysts = 0.0
        self.dots: list[tuple[Blob, float, float]] = []
        self.tails: list[tuple[float, float, float]] = []
        self.target = 0.0
        self.scar = 0.0

    def paint(self, f: Fields, grid: Grid, rng: np.random.Generator) -> None:
        b = self.blob
        spikes = 1.0 if b.boundary is None else float(b.boundary.table.max())
        got = b.rho(grid, reach=(1.45 if self.halo else 1.25) * spikes)
        if got is None:
            return
        sl, rr = got
        w = inside(rr, self.soft)
        tex = smooth_noise(rng, rr.shape, (2.5, 3.5))
        val = F32(self.echo) * (F32(1.0) + F32(self.hetero) * tex)
        if self.microcysts:
            val = np.where(tex > F32(-0.2), F32(0.02), val)
            val += F32(self.echo * 1.6) * np.exp(-(((tex + F32(0.2)) / F32(0.25)) ** 2))
        if self.target:
            core = inside(rr / F32(0.55), 0.25)
            val = val * (F32(1.0) - core) + core * F32(self.target)
        if self.scar:
            u, v = b.local(grid, sl)
            spokes = np.exp(-((rr / 0.18) ** 2)) + 0.5 * np.exp(
                -((np.sin(3 * np.arctan2(v, u)) / 0.15) ** 2)
            ) * (rr < 0.8)
            val = val + F32(self.scar) * spokes.astype(F32)
        if self.halo:
            f.echo[sl] *= F32(1.0) + F32(self.halo) * ring(rr, 1.15, 0.14) * (F32(1.0) - w)
        blend(f.echo, sl, w, val)
        f.spec[sl] *= F32(1.0) - w
        if self.solid_part is not None:
            sb, se = self.solid_part
            g2 = sb.rho(grid, 1.2)
            if g2 is not None:
                s2, r2 = g2
                blend(f.echo, s2, inside(r2, 0.15), se)
        height = 2.0 * b.b
        if self.post != 1.0:
            a = F32(-np.log(self.post) / (2.0 * height))
            if self.shadow_half:
                u, _ = b.local(grid, sl)
                sh = F32(-np.log(0.2) / (2.0 * height))
                f.alpha[sl] += w * np.where(u < 0, sh, a)
            else:
                f.alpha[sl] += w * a
        if self.wall or self.edge_shadow:
            u, v = b.local(grid, sl)
            cos2 = (v * v) / (u * u + v * v + F32(1e-6))
            band = ring(rr, 1.0, 0.06)
            f.spec[sl] += F32(self.wall) * band * cos2
            f.alpha[sl] += F32(self.edge_shadow) * band * (F32(1.0) - cos2) ** 4
        for dot, amp, att in self.dots:
            g = dot.rho(grid, 1.5)
            if g is not None:
                s2, r2 = g
                core = np.exp(-(r2 * r2) * F32(1.5))
                f.spec[s2] += F32(amp) * core
                if att:
                    f.alpha[s2] += F32(att) * inside(r2, 0.3)
        for x0, z0, length in self.tails:
            _comet(f, grid, x0, z0, length)


def _comet(f: Fields, grid: Grid, x0: float, z0: float, length: float) -> None:
    """Bright echogenic focus with a tapering reverberation tail below it."""
    sl = grid.window(x0 - 1.5, x0 + 1.5, z0 - 0.6, z0 + length)
    if sl is None:
        return
    dx, dz = grid.x[sl] - F32(x0), grid.z[sl] - F32(z0)
    width = F32(0.45) * np.clip(F32(1.0) - dz / F32(length), 0.05, 1.0)
    lat = np.exp(-((dx / width) ** 2))
    tail = lat * np.clip(F32(1.0) - dz / F32(length), 0.0, 1.0) * (dz > 0)
    f.art[sl] += F32(2.0) * tail * (F32(0.6) + F32(0.4) * np.cos(dz * F32(2 * np.pi / 0.5)))
    f.spec[sl] += F32(4.0) * np.exp(-((dx / F32(0.4)) ** 2) - (dz / F32(0.35)) ** 2)


def _infer_breast(fd: Findings) -> str | None:
    cat = fd.get("birads_category")
    if cat in ("1",):
        return "normal"
    if cat in ("2", "3", "4a"):
        return "benign"
    if cat in ("4", "4b", "4c", "5", "6"):
        return "malignant"
    bad = (
        fd.get("birads_shape") == "irregular"
        or fd.get("birads_orientation") == "not_parallel"
        or fd.get("birads_margin") in ("angular", "spiculated", "microlobulated", "indistinct")
        or fd.get("birads_posterior") == "shadowing"
    )
    if bad:
        return "malignant"
    if any(fd.get(k) for k in ("birads_shape", "birads_margin", "birads_echo_pattern")):
        return "benign"
    return None


def _breast_mass(
    label: str,
    fd: Findings,
    rng: np.random.Generator,
    probe: Probe,
    skin: float,
    z_fg: float,
    z_rm: float,
) -> _Mass:
    if label == "malignant":
        shape = fill(fd, "birads_shape", rng, {"irregular": 0.75, "round": 0.12, "oval": 0.13})
        orient = fill(fd, "birads_orientation", rng, {"not_parallel": 0.7, "parallel": 0.3})
        margin = fill(
            fd,
            "birads_margin",
            rng,
            {"spiculated": 0.35, "angular": 0.25, "microlobulated": 0.2, "indistinct": 0.2},
        )
        pattern = fill(
            fd,
            "birads_echo_pattern",
            rng,
            {"hypoechoic": 0.6, "heterogeneous": 0.35, "complex_cystic_solid": 0.05},
        )
        post = fill(
            fd, "birads_posterior", rng, {"shadowing": 0.75, "combined": 0.07, "none": 0.18}
        )
        fill(fd, "birads_calcifications", rng, {"in_mass": 0.35, "none": 0.65})
        size = rng.uniform(4.5, 10.0)
    else:
        kind = pick(rng, {"cyst": 0.45, "fibroadenoma": 0.45, "complex": 0.1})
        if fd.get("birads_echo_pattern") == "anechoic":
            kind = "cyst"
        shape = fill(fd, "birads_shape", rng, {"oval": 0.8, "round": 0.2})
        orient = fill(fd, "birads_orientation", rng, {"parallel": 0.95, "not_parallel": 0.05})
        margin = fill(
            fd,
            "birads_margin",
            rng,
            {"circumscribed": 0.9, "microlobulated": 0.05, "indistinct": 0.05},
        )
        pattern = fill(
            fd,
            "birads_echo_pattern",
            rng,
            {"cyst": {"anechoic": 1.0}, "complex": {"complex_cystic_solid": 1.0}}.get(
                kind, {"hypoechoic": 0.75, "isoechoic": 0.15, "hyperechoic": 0.1}
            ),
        )
        post = fill(
            fd,
            "birads_posterior",
            rng,
            {"enhancement": 0.9, "none": 0.1}
            if pattern in ("anechoic", "complex_cystic_solid")
            else {"none": 0.6, "enhancement": 0.4},
        )
        fill(fd, "birads_calcifications", rng, {"none": 0.9, "in_mass": 0.1})
        size = rng.uniform(3.5, 9.0)
    if shape == "round":
        ratio = rng.uniform(1.0, 1.12)
    elif shape == "oval":
        ratio = rng.uniform(1.35, 2.0)
    else:
        ratio = rng.uniform(1.1, 1.5)
    a, b = (size, size / ratio) if orient == "parallel" else (size / ratio, size)
    if orient == "not_parallel" and shape != "round":
        a, b = size / max(ratio, 1.25), size
    depth_room = probe.depth - 6.0 - b
    cz = float(
        np.clip(
            rng.uniform(z_fg + 0.5, max(z_rm - 1.0, z_fg + 1.0)),
            skin + b + 2.5,
            max(depth_room, skin + b + 2.5),
        )
    )
    cx = float(rng.uniform(-0.5, 0.5) * (probe.width / 2 - a))
    rot = float(rng.uniform(-0.2, 0.2)) if orient == "parallel" else float(rng.uniform(-0.3, 0.3))
    contour = margin
    if shape == "irregular" and margin in ("circumscribed", "indistinct"):
        contour = "irregular"
    blob = Blob(cx, cz, a, b, rot, Boundary.make(contour, rng))
    echo = {
        "anechoic": 0.006,
        "hypoechoic": rng.uniform(0.1, 0.18),
        "isoechoic": 0.4,
        "hyperechoic": 2.6,
        "heterogeneous": rng.uniform(0.12, 0.22),
        "complex_cystic_solid": 0.01,
    }[pattern]
    hetero = {"heterogeneous": 0.7, "anechoic": 0.0, "complex_cystic_solid": 0.0}.get(pattern, 0.25)
    soft = 0.4 if margin == "indistinct" else 0.1
    factor = {
        "enhancement": rng.uniform(1.8, 2.6),
        "shadowing": rng.uniform(0.1, 0.25),
        "combined": rng.uniform(1.5, 2.0),
        "none": 1.0,
    }[post]
    cystic = pattern in ("anechoic", "complex_cystic_solid")
    m = _Mass(
        blob,
        echo,
        soft=soft,
        hetero=hetero,
        post=factor,
        wall=1.2 if cystic else (0.5 if label == "benign" else 0.0),
        halo=float(rng.uniform(0.6, 1.4))
        if label == "malignant" and margin != "circumscribed"
        else 0.0,
        edge_shadow=0.25 if margin == "circumscribed" and cystic else 0.0,
    )
    m.shadow_half = post == "combined"
    if pattern == "complex_cystic_solid":
        ang = rng.uniform(0, 2 * np.pi)
        sb = Blob(
            cx + 0.55 * a * np.cos(ang),
            cz + 0.55 * b * np.sin(ang),
            a * 0.45,
            b * 0.45,
            0.0,
            Boundary.make("lobulated", rng),
        )
        m.solid_part = (sb, 0.4)
    if fd.get("birads_calcifications") == "in_mass":
        for _ in range(int(rng.integers(3, 10))):
            r, th = rng.uniform(0, 0.8), rng.uniform(0, 2 * np.pi)
            dot = Blob(cx + r * a * np.cos(th), cz + r * b * np.sin(th), 0.3, 0.3)
            m.dots.append((dot, float(rng.uniform(2.0, 4.0)), 0.0))
    return m


# --------------------------------------------------------------------------- thyroid


def _infer_thyroid(fd: Findings) -> str | None:
    cat = fd.get("tirads_category")
    if cat in ("1", "2", "3", "4a"):
        return "benign"
    if cat in ("4", "4b", "4c", "5"):
        return "malignant"
    if fd.get("tirads_foci") == "punctate" or fd.get("tirads_shape") == "taller_than_wide":
        return "malignant"
    if fd.get("tirads_margin") in ("irregular", "extrathyroidal_extension"):
        return "malignant"
    if any(fd.get(k) for k in ("tirads_composition", "tirads_echogenicity", "tirads_margin")):
        return "benign"
    return None


class ThyroidScene(Scene):
    """Transverse linear view: strap muscles, one lobe with isthmus, trachea, carotid, jugular, nodule."""

    def __init__(self, label: str | None, fd: Findings, rng: np.random.Generator) -> None:
        super().__init__(rng)
        label = _choose_label(label, _infer_thyroid, "thyroid", fd, rng)
        self.label = label
        width = float(rng.choice([38.0, 42.0, 46.0]))
        self.sgn = float(rng.choice([-1.0, 1.0]))
        self.ete = False
        self.skin = float(rng.uniform(1.0, 1.8))
        self.z_strap = self.skin + float(rng.uniform(1.5, 4.0))
        self.strap_th = float(rng.uniform(2.5, 4.5))
        nod = None
        if label != "normal":
            nod = self._nodule_params(label, fd, rng)
        na, nb = (nod["a"], nod["b"]) if nod else (0.0, 0.0)
        la = max(float(rng.uniform(8.0, 12.0)), na + 2.5)
        lb = max(float(rng.uniform(6.0, 9.0)), nb + 2.0)
        z_top = self.z_strap + self.strap_th + 0.3
        self.lobe = Blob(
            0.0, z_top + lb, la, lb, float(rng.uniform(-0.25, 0.25)), Boundary.make("smooth", rng)
        )
        rt = float(rng.uniform(8.0, 11.0))
        self.trachea = Blob(0.0, z_top + rng.uniform(0.5, 2.5) + rt, rt, rt)
        # medial trachea at one edge, lobe next to it, carotid lateral-posterior
        xt = self.sgn * (-width / 2 + rng.uniform(0.0, 6.0))
        self.trachea.cx = xt
        self.lobe.cx = xt + self.sgn * (rt + la * 0.75)
        rc = float(rng.uniform(3.0, 4.2))
        self.carotid = Blob(
            self.lobe.cx + self.sgn * (la * 0.85 + rc * 0.6), self.lobe.cz + lb * 0.35, rc, rc
        )
        self.jugular = Blob(
            self.carotid.cx + self.sgn * rc * 1.6,
            self.carotid.cz - rc * 0.6,
            rc * rng.uniform(1.0, 1.6),
            rc * rng.uniform(0.4, 0.9),
            float(rng.uniform(-0.3, 0.3)),
        )
        self.scm = Blob(
            self.carotid.cx + self.sgn * 2.0,
            self.z_strap + 2.5,
            rng.uniform(8, 12),
            rng.uniform(3.0, 4.5),
            0.0,
        )
        self.longus = Blob(
            self.lobe.cx - self.sgn * 2.0,
            self.lobe.cz + lb + 4.0,
            rng.uniform(6, 9),
            rng.uniform(2.5, 3.5),
        )
        depth = float(rng.choice([30.0, 35.0, 40.0, 45.0]))
        depth = max(depth, self.lobe.cz + lb + 8.0)
        self.probe = Probe("linear", depth=float(np.ceil(depth / 5.0) * 5.0), width=width)
        self.parenchyma = float(rng.uniform(1.5, 2.0))
        self.mass: _Mass | None = None
        if nod is not None:
            self.mass = self._nodule(nod, fd, rng)

    def _nodule_params(
        self, label: str, fd: Findings, rng: np.random.Generator
    ) -> dict[str, float | str]:
        if label == "malignant":
            comp = fill(fd, "tirads_composition", rng, {"solid": 0.9, "mixed": 0.1})
            echo = fill(
                fd,
                "tirads_echogenicity",
                rng,
                {"hypoechoic": 0.55, "very_hypoechoic": 0.4, "isoechoic": 0.05},
            )
            shape = fill(
                fd, "tirads_shape", rng, {"taller_than_wide": 0.55, "wider_than_tall": 0.45}
            )
            margin = fill(
                fd,
                "tirads_margin",
                rng,
                {
                    "irregular": 0.4,
                    "lobulated": 0.3,
                    "ill_defined": 0.15,
                    "extrathyroidal_extension": 0.15,
                },
            )
            fill(
                fd,
                "tirads_foci",
                rng,
                {"punctate": 0.5, "macrocalcifications": 0.2, "peripheral": 0.15, "none": 0.15},
            )
            size = rng.uniform(3.5, 8.0)
        else:
            comp = fill(
                fd,
                "tirads_composition",
                rng,
                {"cystic": 0.25, "spongiform": 0.25, "mixed": 0.25, "solid": 0.25},
            )
            echo_opts = {
                "cystic": {"anechoic": 1.0},
                "spongiform": {"isoechoic": 0.8, "hyperechoic": 0.2},
                "mixed": {"isoechoic": 0.6, "hyperechoic": 0.4},
            }.get(comp, {"isoechoic": 0.45, "hyperechoic": 0.35, "hypoechoic": 0.2})
            echo = fill(fd, "tirads_echogenicity", rng, echo_opts)
            shape = fill(
                fd, "tirads_shape", rng, {"wider_than_tall": 0.95, "taller_than_wide": 0.05}
            )
            margin = fill(
                fd, "tirads_margin", rng, {"smooth": 0.7, "ill_defined": 0.25, "lobulated": 0.05}
            )
            foci_opts = {"none": 0.55, "comet_tail": 0.3, "macrocalcifications": 0.15}
            if comp == "solid":
                foci_opts = {"none": 0.8, "macrocalcifications": 0.2}
            fill(fd, "tirads_foci", rng, foci_opts)
            size = rng.uniform(4.0, 10.0)
        ratio = rng.uniform(1.2, 1.7)
        a, b = (size, size / ratio) if shape == "wider_than_tall" else (size / ratio, size)
        return {"a": float(a), "b": float(b), "comp": comp, "echo": echo, "margin": margin}

    def _nodule(self, p: dict[str, float | str], fd: Findings, rng: np.random.Generator) -> _Mass:
        lobe = self.lobe
        a, b = float(p["a"]), float(p["b"])
        comp, echo_code, margin = str(p["comp"]), str(p["echo"]), str(p["margin"])
        cx = lobe.cx + rng.uniform(-0.3, 0.3) * max(lobe.a - a, 0.0)
        cz = lobe.cz + rng.uniform(-0.3, 0.3) * max(lobe.b - b, 0.0)
        if margin == "extrathyroidal_extension":
            cz = lobe.cz - lobe.b + b * 0.6
        self.ete = margin == "extrathyroidal_extension"
        contour = {"smooth": "smooth", "ill_defined": "ill_defined", "lobulated": "lobulated"}.get(
            margin, "spiculated" if margin == "extrathyroidal_extension" else "irregular"
        )
        blob = Blob(
            float(cx), float(cz), a, b, float(rng.uniform(-0.2, 0.2)), Boundary.make(contour, rng)
        )
        level = {
            "anechoic": 0.006,
            "hyperechoic": 1.5,
            "isoechoic": 1.0,
            "hypoechoic": 0.45,
            "very_hypoechoic": 0.16,
        }[echo_code] * (1.0 if echo_code == "anechoic" else self.parenchyma)
        if comp == "cystic":
            level = 0.006
        m = _Mass(
            blob,
            level,
            soft=0.45 if margin == "ill_defined" else 0.1,
            hetero=0.0 if comp == "cystic" else 0.25,
            post=float(rng.uniform(1.6, 2.2)) if comp in ("cystic", "mixed", "spongiform") else 1.0,
            wall=1.0 if comp in ("cystic", "mixed") else 0.0,
            halo=0.0,
            edge_shadow=0.2 if comp == "cystic" else 0.0,
        )
        if echo_code == "isoechoic" and comp == "solid" or comp == "spongiform":
            m.halo = -0.7
        if comp == "spongiform":
            m.microcysts = 1.0
        if comp == "mixed":
            m.echo = 0.006
            ang = rng.uniform(0, 2 * np.pi)
            sb = Blob(
                cx + 0.4 * a * np.cos(ang),
                cz + 0.4 * b * np.sin(ang),
                a * 0.6,
                b * 0.6,
                0.0,
                Boundary.make("lobulated", rng),
            )
            m.solid_part = (sb, level if echo_code != "anechoic" else self.parenchyma)
        foci = fd.get("tirads_foci")
        if foci == "macrocalcifications":
            for _ in range(int(rng.integers(1, 4))):
                r, th = rng.uniform(0, 0.6), rng.uniform(0, 2 * np.pi)
                rad = rng.uniform(0.8, 1.6)
                dot = Blob(cx + r * a * np.cos(th), cz + r * b * np.sin(th), rad, rad * 0.7)
                m.dots.append((dot, float(rng.uniform(11.0, 16.0)), 0.8))
        elif foci == "punctate":
            for _ in range(int(rng.integers(5, 14))):
                r, th = np.sqrt(rng.uniform(0, 0.8)), rng.uniform(0, 2 * np.pi)
                dot = Blob(cx + r * a * np.cos(th), cz + r * b * np.sin(th), 0.3, 0.3)
                m.dots.append((dot, float(rng.uniform(3.0, 5.0)), 0.0))
        elif foci == "peripheral":
            start = rng.uniform(0, 2 * np.pi)
            for th in start + np.linspace(0, rng.uniform(2.5, 4.5), 14):
                dot = Blob(cx + a * np.cos(th), cz + b * np.sin(th), 0.8, 0.6)
                m.dots.append((dot, 4.0, 0.35))
        elif foci == "comet_tail":
            for _ in range(int(rng.integers(2, 5))):
                x0 = cx + rng.uniform(-0.6, 0.6) * a
                z0 = cz + rng.uniform(-0.7, 0.2) * b
                m.tails.append((float(x0), float(z0), float(rng.uniform(2.0, 4.5))))
        return m

    def paint(self, grid: Grid, t: float) -> Fields:
        rng = np.random.default_rng(self.seed)
        f = Fields.blank(grid.shape, 0.7)
        n1 = _mm_noise(rng, grid, (2.0, 3.0))
        n2 = _mm_noise(rng, grid, (0.8, 1.2))
        fill_below(f.echo, grid, Curve(0.0), 0.7 * (1 + 0.35 * n1))
        strap = _striated(grid, n1 * F32(0.3), 0.35, 1.5, float(rng.uniform(-0.2, 0.2)))
        top, bot = (
            Curve(self.z_strap),
            Curve(self.z_strap + self.strap_th, waves(rng, 0.6, (10, 30)), 0.6),
        )
        fill_between(f.echo, grid, top, bot, strap, soft=0.5)
        add_band(f.spec, grid, top, 0.3, 0.8)
        add_band(f.spec, grid, bot, 0.3, 0.8)
        for muscle, e in ((self.scm, 0.35), (self.longus, 0.4)):
            got = muscle.rho(grid)
            if got is not None:
                sl, rr = got
                blend(f.echo, sl, inside(rr, 0.15), strap[sl] * F32(e / 0.35))
        thy = F32(self.parenchyma) * (F32(1.0) + F32(0.12) * n2 + F32(0.08) * n1)
        lobe = self.lobe
        isth = Blob(
            self.trachea.cx,
            lobe.cz - lobe.b * 0.55,
            abs(lobe.cx - self.trachea.cx) + 1.0,
            lobe.b * 0.4,
            0.0,
        )
        for shape in (lobe, isth):
            got = shape.rho(grid)
            if got is not None:
                sl, rr = got
                blend(f.echo, sl, inside(rr, 0.06), thy[sl])
                cap = ring(rr, 1.0, 0.04) * F32(0.9)
                if shape is lobe and self.mass is not None and self.ete:
                    gap = np.hypot(
                        grid.x[sl] - F32(self.mass.blob.cx), grid.z[sl] - F32(self.mass.blob.cz)
                    )
                    cap *= np.clip((gap - F32(self.mass.blob.a * 1.1)) / F32(1.5), 0.0, 1.0)
                f.spec[sl] += cap
        self._trachea(f, grid)
        for vessel, wall in ((self.carotid, 1.6), (self.jugular, 0.4)):
            got = vessel.rho(grid, 1.4)
            if got is not None:
                sl, rr = got
                w = inside(rr, 0.08)
                blend(f.echo, sl, w, 0.004)
                f.spec[sl] *= F32(1.0) - w
                f.alpha[sl] -= F32(0.03) * w
                f.spec[sl] += F32(wall) * ring(rr, 1.0, 0.1)
        if self.mass is not None:
            self.mass.paint(f, grid, rng)
        _skin(f, grid, self.skin)
        return f

    def lesion_masks(self, grid: Grid) -> list[np.ndarray]:
        return [] if self.mass is None else [_blob_mask(self.mass.blob, grid)]

    def region_masks(self, grid: Grid) -> dict[str, np.ndarray]:
        return {"thyroid": _blob_mask(self.lobe, grid, 1.1)}

    def _trachea(self, f: Fields, grid: Grid) -> None:
        tr = self.trachea
        got = tr.rho(grid, 1.3)
        if got is None:
            return
        sl, rr = got
        _, v = tr.local(grid, sl)
        upper = (v < F32(0.2)).astype(F32)
        f.echo[sl] += F32(-0.5) * ring(rr, 1.12, 0.05) * upper * f.echo[sl]
        f.spec[sl] += F32(3.0) * ring(rr, 1.0, 0.04) * upper
        air = inside(rr, 0.05) * (v > F32(-0.999))
        f.alpha[sl] += F32(0.25) * air * ring(rr, 0.95, 0.06)
        for k in (1, 2, 3):
            f.art[sl] += (
                F32(1.2 * 0.55**k) * ring(rr, 1.0 - 0.2 * k, 0.035) * upper * inside(rr, 0.05)
            )


# --------------------------------------------------------------------------- liver

_STEATOSIS = {"S0": (1.0, 0.0), "S1": (1.6, 8.0), "S2": (2.4, 16.0), "S3": (3.4, 26.0)}
_FIBROSIS = {"F0": 0.0, "F1": 0.15, "F2": 0.35, "F3": 0.6, "F4": 1.0}


def _infer_liver(fd: Findings) -> str | None:
    lesion = fd.get("liver_lesion")
    if lesion in ("cyst", "haemangioma", "fnh"):
        return "benign"
    if lesion in ("hcc", "metastasis", "mass"):
        return "malignant"
    if fd.get("liver_fibrosis") == "F4":
        return "cirrhosis"
    if fd.get("liver_fibrosis") in ("F1", "F2", "F3"):
        return "fibrosis"
    if fd.get("liver_steatosis") in ("S1", "S2", "S3"):
        return "steatosis"
    return None


class LiverScene(Scene):
    """Convex abdominal view: wall layers, capsule, parenchyma, vessels, diaphragm, kidney, lesions."""

    def __init__(self, label: str | None, fd: Findings, rng: np.random.Generator) -> None:
        super().__init__(rng)
        label = _choose_label(label, _infer_liver, "liver", fd, rng)
        self.label = label
        steat = {"steatosis": {"S1": 0.25, "S2": 0.4, "S3": 0.35}, "normal": {"S0": 1.0}}.get(
            label, {"S0": 0.7, "S1": 0.3}
        )
        fib = {
            "fibrosis": {"F1": 0.2, "F2": 0.4, "F3": 0.4},
            "cirrhosis": {"F4": 1.0},
            "normal": {"F0": 1.0},
            "malignant": {"F0": 0.4, "F3": 0.2, "F4": 0.4},
        }.get(label, {"F0": 0.8, "F1": 0.2})
        lesion_opts = {
            "benign": {"cyst": 0.45, "haemangioma": 0.4, "fnh": 0.15},
            "malignant": {"hcc": 0.5, "metastasis": 0.5},
        }.get(label, {"none": 1.0})
        self.steatosis = fill(fd, "liver_steatosis", rng, steat)
        self.fibrosis = fill(fd, "liver_fibrosis", rng, fib)
        self.lesion = fill(fd, "liver_lesion", rng, lesion_opts)
        depth = float(rng.choice([130.0, 150.0, 170.0]))
        self.probe = Probe(
            "convex",
            depth=depth,
            radius=float(rng.choice([40.0, 55.0])),
            half_angle=float(rng.choice([0.52, 0.6])),
        )
        grade = int(self.steatosis[1])
        self.z_fat = float(rng.uniform(5.0, 14.0) + 3.0 * grade)
        self.z_mus = self.z_fat + float(rng.uniform(5.0, 10.0))
        fscore = _FIBROSIS[self.fibrosis]
        self.ascites = (
            float(rng.uniform(6.0, 18.0)) if self.fibrosis == "F4" and rng.random() < 0.4 else 0.0
        )
        cap = self.z_mus + 1.5 + self.ascites
        bumps = self._nodular(rng, fscore) if fscore >= 0.6 else waves(rng, 1.0, (30, 80))
        self.capsule = Curve(cap, bumps, 2.0, tilt=float(rng.uniform(-0.1, 0.1)))
        side = float(rng.choice([-1.0, 1.0]))
        self.diaphragm = Curve(
            depth * float(rng.uniform(0.7, 0.86)),
            waves(rng, 1.5, (40, 120)),
            1.5,
            tilt=side * float(rng.uniform(0.15, 0.4)),
            bend=-float(rng.uniform(0.0, 0.004)),
        )
        self.kidney: Blob | None = None
        if rng.random() < 0.4:
            ka, kb = rng.uniform(22, 32), rng.uniform(11, 16)
            self.kidney = Blob(
                -side * rng.uniform(15, 35),
                depth * rng.uniform(0.72, 0.85),
                ka,
                kb,
                float(rng.uniform(-0.5, 0.5)),
                Boundary.make("smooth", rng),
            )
        self.vessels = []
        for _ in range(int(rng.integers(3, 7))):
            long = rng.random() < 0.6
            a = rng.uniform(10, 30) if long else rng.uniform(3, 7)
            b = rng.uniform(2.5, 5.5) if long else a * rng.uniform(0.7, 1.0)
            self.vessels.append(
                (
                    Blob(
                        rng.uniform(-45, 45),
                        rng.uniform(cap + 15, depth * 0.7),
                        a,
                        b,
                        float(rng.uniform(-1.2, 1.2)),
                    ),
                    bool(rng.random() < 0.55),
                )
            )
        br, dbloss = _STEATOSIS[self.steatosis]
        self.liver_echo = br * float(rng.uniform(0.9, 1.1))
        self.excess_alpha = dbloss / (8.686 * 2.0 * 150.0)
        self.fscore = fscore
        self.masses = self._lesions(rng, cap, depth)

    def lesion_masks(self, grid: Grid) -> list[np.ndarray]:
        return [_blob_mask(m.blob, grid) for m in self.masses]

    def region_masks(self, grid: Grid) -> dict[str, np.ndarray]:
        """The liver: below the capsule and above the diaphragm (lesions and vessels included)."""
        return {"liver": fill_mask(grid, self.capsule, self.diaphragm)}

    @staticmethod
    def _nodular(rng: np.random.Generator, fscore: float) -> Callable[[np.ndarray], np.ndarray]:
        period = rng.uniform(5.0, 10.0)
        phase = rng.uniform(0, 2 * np.pi)
        amp = 1.5 + 2.5 * fscore
        wig = waves(rng, 0.8, (20, 60))

        def fn(x: np.ndarray) -> np.ndarray:
            s = np.abs(np.sin(x * F32(np.pi / period) + F32(phase) + F32(0.3) * wig(x)))
            return F32(-amp) * s + wig(x)

        return fn

    def _lesions(self, rng: np.random.Generator, cap: float, depth: float) -> list[_Mass]:
        kind = self.lesion
        if kind == "none":
            return []
        out = []
        count = int(rng.integers(1, 4)) if kind == "metastasis" else 1
        le = self.liver_echo
        for _ in range(count):
            size = {
                "cyst": (5, 22),
                "haemangioma": (6, 16),
                "fnh": (10, 22),
                "hcc": (10, 28),
                "metastasis": (6, 16),
                "mass": (10, 25),
            }[kind]
            a = float(rng.uniform(*size))
            b = a * float(rng.uniform(0.75, 1.0))
            cz = float(rng.uniform(cap + b + 8, max(cap + b + 9, self.diaphragm.base - b - 12)))
            cx = float(
                rng.uniform(-0.35, 0.35)
                * (cz + self.probe.radius)
                * np.sin(self.probe.half_angle)
                * 2
            )
            margin = {
                "hcc": "lobulated",
                "metastasis": "smooth",
                "mass": "irregular",
                "fnh": "lobulated",
                "haemangioma": "lobulated",
            }.get(kind, "smooth")
            blob = Blob(cx, cz, a, b, float(rng.uniform(-0.4, 0.4)), Boundary.make(margin, rng))
            if kind == "cyst":
                m = _Mass(
                    blob,
                    0.004,
                    soft=0.06,
                    hetero=0.0,
                    post=float(rng.uniform(2.0, 3.0)),
                    wall=1.5,
                    edge_shadow=0.12,
                )
            elif kind == "haemangioma":
                m = _Mass(blob, 2.6 * le, soft=0.08, hetero=0.25, post=float(rng.uniform(1.0, 1.4)))
            elif kind == "fnh":
                m = _Mass(blob, 0.8 * le, soft=0.2, hetero=0.15)
                m.scar = 1.2 * le
            elif kind == "hcc":
                m = _Mass(blob, 0.4 * le, soft=0.12, hetero=0.5, halo=-0.8)
            elif kind == "metastasis":
                m = _Mass(blob, 0.3 * le, soft=0.15, hetero=0.25)
                m.target = 1.9 * le
            else:
                m = _Mass(blob, 0.35 * le, soft=0.3, hetero=0.6)
            out.append(m)
        return out

    def paint(self, grid: Grid, t: float) -> Fields:
        rng = np.random.default_rng(self.seed)
        f = Fields.blank(grid.shape, 0.6)
        n1 = _mm_noise(rng, grid, (6.0, 8.0))
        n2 = _mm_noise(rng, grid, (2.0, 2.5))
        le = F32(self.liver_echo)
        liver = le * (F32(1.0) + F32(0.06) * n1 + F32(0.05) * n2)
        if self.fscore:
            nod = _mm_noise(rng, grid, (5.0, 6.0))
            septa = np.exp(-((nod / F32(0.25)) ** 2))
            k = F32(self.fscore)
            coarse = F32(1.0) + k * (
                F32(3.0) * septa - F32(0.3) * np.abs(nod) - F32(0.5) + F32(0.4) * n2
            )
            liver = liver * np.maximum(coarse, F32(0.35))
        fill_below(f.echo, grid, Curve(0.0), 0.4 * (1 + 0.4 * n2))
        fill_below(
            f.echo,
            grid,
            Curve(self.z_fat, None),
            _striated(grid, n1 * F32(0.5), 0.55, 2.5, 0.15),
            soft=1.0,
        )
        add_band(f.spec, grid, Curve(self.z_fat), 0.6, 0.8)
        add_band(f.spec, grid, Curve(self.z_mus), 0.6, 1.0)
        if self.ascites:
            fill_below(f.echo, grid, Curve(self.z_mus + 0.8), 0.004, soft=0.6)
            fill_below(f.alpha, grid, Curve(self.z_mus + 0.8), -0.01, soft=0.6)
        fill_below(f.echo, grid, self.capsule, liver, soft=0.8)
        fill_below(f.alpha, grid, self.capsule, F32(self.excess_alpha), soft=0.8)
        add_band(f.spec, grid, self.capsule, 0.6, 1.3)
        wall = max(0.0, 1.4 - 0.45 * int(self.steatosis[1]))
        for v, portal in self.vessels:
            got = v.rho(grid, 1.3)
            if got is None:
                continue
            sl, rr = got
            blur = 0.1 + 0.12 * int(self.steatosis[1])
            w = inside(rr, blur)
            blend(f.echo, sl, w, F32(0.01) + F32(0.12 * int(self.steatosis[1])) * le)
            f.alpha[sl] -= F32(0.006) * w
            if portal:
                f.spec[sl] += F32(wall) * ring(rr, 1.05, 0.12)
        if self.kidney is not None:
            k = self.kidney
            got = k.rho(grid, 1.2)
            if got is not None:
                sl, rr = got
                blend(f.echo, sl, inside(rr, 0.05), 0.75 * (1 + 0.15 * n2[sl]))
                blend(f.echo, sl, inside(rr / F32(0.55), 0.25), 2.6 * (1 + 0.5 * n2[sl]))
                f.spec[sl] += F32(1.2) * ring(rr, 1.02, 0.04)
        below = np.where(n1 > 0, F32(0.5), F32(0.35)) * le
        fill_below(f.echo, grid, self.diaphragm, below, soft=1.0)
        add_band(f.spec, grid, self.diaphragm, 1.6, 4.0)
        for m in self.masses:
            m.paint(f, grid, rng)
        _skin(f, grid, 1.5, 2.0)
        return f


# --------------------------------------------------------------------------- lung


def _lung_findings(label: str, fd: Findings, rng: np.random.Generator) -> None:
    if label == "normal":
        fill(fd, "lung_b_lines", rng, {"absent": 0.9, "few": 0.1})
        fill(fd, "lung_consolidation", rng, {"absent": 1.0})
        fill(fd, "lung_effusion", rng, {"absent": 1.0})
        fill(fd, "lung_pleural_line", rng, {"smooth": 1.0})
    elif label == "covid":
        fill(fd, "lung_b_lines", rng, {"multiple": 0.5, "confluent": 0.45, "few": 0.05})
        fill(fd, "lung_consolidation", rng, {"absent": 0.6, "subpleural": 0.37, "lobar": 0.03})
        fill(fd, "lung_effusion", rng, {"absent": 0.95, "present": 0.05})
        fill(
            fd,
            "lung_pleural_line",
            rng,
            {"irregular": 0.35, "fragmented": 0.3, "thickened": 0.2, "smooth": 0.15},
        )
    elif label == "pneumonia":
        fill(fd, "lung_b_lines", rng, {"few": 0.45, "multiple": 0.45, "absent": 0.1})
        fill(fd, "lung_consolidation", rng, {"lobar": 0.55, "subpleural": 0.35, "absent": 0.1})
        fill(fd, "lung_effusion", rng, {"present": 0.35, "absent": 0.65})
        fill(fd, "lung_pleural_line", rng, {"irregular": 0.5, "smooth": 0.3, "thickened": 0.2})
    else:
        fill(fd, "lung_b_lines", rng, {"multiple": 0.5, "confluent": 0.25, "few": 0.25})
        fill(fd, "lung_consolidation", rng, {"absent": 0.6, "subpleural": 0.35, "lobar": 0.05})
        fill(fd, "lung_effusion", rng, {"absent": 0.9, "present": 0.1})
        fill(fd, "lung_pleural_line", rng, {"irregular": 0.4, "thickened": 0.2, "smooth": 0.4})
    many = fd["lung_b_lines"] in ("multiple", "confluent") or fd["lung_consolidation"] == "lobar"
    fill(fd, "lung_a_lines", rng, {"absent": 1.0} if many else {"present": 1.0})
    fill(fd, "lung_sliding", rng, {"present": 0.95, "absent": 0.05})


def _infer_lung(fd: Findings) -> str | None:
    if fd.get("lung_consolidation") == "lobar" or fd.get("lung_effusion") == "present":
        return "pneumonia"
    if fd.get("lung_b_lines") == "confluent":
        return "covid"
    if fd.get("lung_b_lines") == "multiple":
        return "viral_pneumonia"
    if fd.get("lung_b_lines") == "absent" or fd.get("lung_a_lines") == "present":
        return "normal"
    return None


class LungScene(Scene):
    """Convex intercostal view: chest wall, rib shadows, pleural line, then A-/B-lines,
    consolidation or effusion. Repainted per frame so B-lines and the pleura move."""

    dynamic = True

    def __init__(self, label: str | None, fd: Findings, rng: np.random.Generator) -> None:
        super().__init__(rng)
        label = _choose_label(label, _infer_lung, "lung", fd, rng)
        self.label = label
        _lung_findings(label, fd, rng)
        self.fd = dict(fd)
        depth = float(rng.choice([80.0, 100.0, 120.0]))
        self.probe = Probe(
            "convex",
            depth=depth,
            radius=float(rng.choice([40.0, 55.0])),
            half_angle=float(rng.choice([0.5, 0.58])),
        )
        self.slide_px = 3.0 if fd["lung_sliding"] == "present" else 0.0
        self.z_pl = float(rng.uniform(14.0, 24.0))
        self.z_fat = float(rng.uniform(3.0, 8.0))
        sep = float(rng.uniform(40.0, 52.0))
        shift = float(rng.uniform(-5.0, 5.0))
        self.ribs = []
        for cx in (shift - sep / 2, shift + sep / 2):
            a, b = rng.uniform(4.5, 6.5), rng.uniform(3.0, 4.0)
            self.ribs.append(Blob(cx, self.z_pl - 5.5 + b, a, b, float(rng.uniform(-0.1, 0.1))))
        self.gap = (shift - sep / 2 + 8.0, shift + sep / 2 - 8.0)
        pl = fd["lung_pleural_line"]
        wig = (
            waves(rng, 1.4, (2.5, 7.0), 5)
            if pl in ("irregular", "fragmented")
            else waves(rng, 0.4, (30, 80))
        )
        bend = float(rng.uniform(0.0, 0.002))
        self.pleura = Curve(self.z_pl, wig, 1.4, bend=bend)
        self.pleura_smooth = Curve(self.z_pl, None, 0.0, bend=bend)
        self.pl_width = 0.9 if pl == "thickened" else 0.45
        self.a_amp = float(rng.uniform(1.0, 1.6)) if fd["lung_a_lines"] == "present" else 0.0
        nb = {
            "absent": 0,
            "few": int(rng.integers(1, 3)),
            "multiple": int(rng.integers(3, 6)),
            "confluent": int(rng.integers(2, 4)),
        }[fd["lung_b_lines"]]
        wide = fd["lung_b_lines"] == "confluent"
        self.blines = []
        for _ in range(nb):
            x = float(rng.uniform(*self.gap))
            w = float(rng.uniform(4.0, 9.0)) if wide else float(rng.uniform(0.8, 1.6))
            self.blines.append(
                (
                    x,
                    w,
                    float(rng.uniform(2.5, 4.5)),
                    float(rng.uniform(0.5, 1.5)),
                    float(rng.uniform(0, 2 * np.pi)),
                )
            )
        cons = fd["lung_consolidation"]
        self.cons: Blob | None = None
        self.bronchograms: list[Blob] = []
        if cons != "absent":
            lobar = cons == "lobar"
            a = rng.uniform(14, 26) if lobar else rng.uniform(3.5, 8.0)
            b = rng.uniform(16, 28) if lobar else rng.uniform(3.0, 6.0)
            cx = float(rng.uniform(*self.gap)) if not lobar else shift + float(rng.uniform(-6, 6))
            self.cons = Blob(
                cx,
                self.z_pl + b * 0.8,
                a,
                b,
                float(rng.uniform(-0.3, 0.3)),
                Boundary.make("irregular" if lobar else "spiculated", rng),
            )
            if lobar:
                for _ in range(int(rng.integers(8, 20))):
                    r, th = np.sqrt(rng.uniform(0, 0.75)), rng.uniform(0, 2 * np.pi)
                    long = rng.random() < 0.4
                    self.bronchograms.append(
                        Blob(
                            cx + r * a * np.cos(th),
                            self.cons.cz + r * b * np.sin(th),
                            rng.uniform(2.0, 4.0) if long else 0.5,
                            0.45,
                            float(rng.uniform(-1.5, 1.5)),
                        )
                    )
        self.effusion: tuple[Curve, Curve] | None = None
        if fd["lung_effusion"] == "present":
            side = float(rng.choice([-1.0, 1.0]))
            dia = Curve(
                depth * rng.uniform(0.65, 0.8),
                waves(rng, 1.0, (40, 100)),
                1.0,
                tilt=side * rng.uniform(0.1, 0.3),
                bend=float(rng.uniform(0.0, 0.003)),
            )
            lung = Curve(
                self.z_pl + rng.uniform(6.0, 20.0),
                waves(rng, 2.0, (15, 40)),
                2.0,
                tilt=-side * rng.uniform(0.3, 0.8),
            )
            self.effusion = (lung, dia)

    def lesion_masks(self, grid: Grid) -> list[np.ndarray]:
        """The consolidation, where it lies below the pleural line."""
        if self.cons is None:
            return []
        return [_blob_mask(self.cons, grid, 1.4) & (grid.z > self.pleura(grid.x) - F32(0.5))]

    def paint(self, grid: Grid, t: float) -> Fields:
        rng = np.random.default_rng(self.seed)
        f = Fields.blank(grid.shape, 0.5)
        n1 = _mm_noise(rng, grid, (3.0, 4.0))
        n2 = _mm_noise(rng, grid, (1.0, 1.5))
        fill_below(f.echo, grid, Curve(0.0), 0.35 * (1 + 0.4 * n2))
        fill_below(
            f.echo, grid, Curve(self.z_fat), _striated(grid, n1 * F32(0.4), 0.6, 2.0, 0.1), soft=0.8
        )
        add_band(f.spec, grid, Curve(self.z_fat), 0.4, 0.8)
        nr = grid.shape[0]
        zc = np.asarray(self.pleura(grid.x))
        below = grid.z >= zc
        smooth = grid.z >= np.asarray(self.pleura_smooth(grid.x))
        first = np.argmax(smooth, axis=0)
        first = np.where(smooth.any(axis=0), first, nr)
        dpl = grid.d[np.minimum(first, nr - 1)][None, :]
        dd = grid.d[:, None]
        air_w = below.astype(F32)
        if self.effusion is not None:
            lung, dia = self.effusion
            air_w = air_w * (grid.z < lung(grid.x))
        rel = (dd - dpl) / F32(10.0)
        haze = (
            F32(0.07)
            * (F32(1.0) + F32(0.35) * n1)
            * (F32(0.6) + F32(1.6) * np.exp(-np.maximum(rel, 0)))
        )
        art = haze
        if self.a_amp:
            for k in (2, 3, 4, 5):
                tk = (dd - F32(k) * dpl) / F32(self.pl_width * 1.3)
                art = art + F32(self.a_amp * 0.6 ** (k - 2) * 2.0) * np.exp(-(tk * tk))
        bl = np.zeros(grid.shape[1], F32)
        for x, w, amp, sway, ph in self.blines:
            xt = x + sway * np.sin(2 * np.pi * t + ph)
            if grid.linear:
                ang = (grid.cols - xt) / w
            else:
                ang = (
                    (grid.cols - np.arctan2(xt, self.probe.radius + self.z_pl))
                    * (self.probe.radius + self.z_pl)
                    / w
                )
            bl += F32(amp) * np.exp(-(ang**2)).astype(F32)
        if self.blines:
            fade = F32(1.0) - F32(0.35) * np.clip((dd - dpl) / F32(self.probe.depth), 0.0, 1.0)
            blw = np.clip(bl, 0.0, 1.0)[None, :]
            art = art * (F32(1.0) - F32(0.8) * blw) + F32(4.0) * bl[None, :] * fade
            f.spec += F32(0.35) * bl[None, :] * fade * air_w
        blend(f.echo, (slice(0, nr), slice(0, grid.shape[1])), air_w, art)
        f.slide = (grid.z > zc - F32(0.8)) & (air_w > 0)
        pl_amp = np.full(grid.shape, 3.5, F32)
        if self.fd["lung_pleural_line"] == "fragmented":
            frag = _mm_noise(rng, grid, (50.0, 4.0))
            pl_amp *= np.clip(F32(0.5) + frag, 0.05, 1.0)
        elif self.fd["lung_pleural_line"] == "irregular":
            pl_amp *= np.clip(F32(0.75) + F32(0.3) * n1, 0.3, 1.0)
        if self.cons is not None:
            got = self.cons.rho(grid, 1.4)
            if got is not None:
                sl, rr = got
                w = inside(rr, 0.1) * (grid.z[sl] > zc[sl] - F32(0.5))
                tissue = F32(0.9) * (F32(1.0) + F32(0.3) * n2[sl] + F32(0.2) * n1[sl])
                blend(f.echo, sl, w, tissue)
                f.slide[sl] &= w < F32(0.5)
                _, v = self.cons.local(grid, sl)
                f.spec[sl] += (
                    F32(2.0)
                    * ring(rr, 1.0, 0.08)
                    * (v > F32(0.2))
                    * (grid.z[sl] > zc[sl] + F32(1.0))
                )
                pl_amp[sl] *= F32(1.0) - F32(0.6) * inside(rr, 0.3)
            for br in self.bronchograms:
                got = br.rho(grid, 1.5)
                if got is not None:
                    sl, rr = got
                    f.spec[sl] += F32(2.5) * np.exp(-(rr * rr) * F32(1.5))
        add_band(f.spec, grid, self.pleura, self.pl_width, pl_amp)
        if self.effusion is not None:
            lung, dia = self.effusion
            fill_between(f.echo, grid, lung, dia, 0.004, soft=0.8)
            fill_between(f.alpha, grid, lung, dia, -0.008, soft=0.8)
            f.slide &= grid.z < lung(grid.x)
            add_band(f.spec, grid, lung, 1.0, 1.5)
            fill_below(f.echo, grid, dia, 0.9 * (1 + 0.25 * n1 + 0.1 * n2), soft=1.0)
            add_band(f.spec, grid, dia, 1.4, 4.0)
        for rib in self.ribs:
            got = rib.rho(grid, 1.3)
            if got is not None:
                sl, rr = got
                _, v = rib.local(grid, sl)
                f.spec[sl] += F32(3.0) * ring(rr, 1.0, 0.12) * (v < F32(0.1))
                f.alpha[sl] += F32(0.6) * inside(rr, 0.1)
        _skin(f, grid, 1.2, 2.0)
        return f


# --------------------------------------------------------------------------- registry


def make_scene(
    organ: str, label: str | None, findings: Findings, rng: np.random.Generator
) -> Scene:
    """Build the scene for an organ; ``findings`` is copied and completed from ``rng``.

    ``scene.findings`` holds the completed findings and ``scene.label`` the
    label drawn. Building a scene from ``(scene.label, scene.findings)`` with a
    generator in the same starting state gives the same scene: every missing
    finding and the label cost one draw whether given or not.
    """
    fd: Findings = {k: v for k, v in findings.items() if v is not None}
    cls: type[BreastScene | ThyroidScene | LiverScene | LungScene] = {
        "breast": BreastScene,
        "thyroid": ThyroidScene,
        "liver": LiverScene,
        "lung": LungScene,
    }[organ]
    scene = cls(label, fd, rng)
    scene.findings = fd
    return scene
