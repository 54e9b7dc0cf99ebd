"""B-mode phantom: format, determinism, field geometry and label-dependent signal."""

from __future__ import annotations

import numpy as np
import pytest

from echocaptions.schema import LABELS, SchemaError
from echocaptions.synth import bmode
from echocaptions.synth.bmode import render, render_clip
from echocaptions.synth.bmode_scenes import make_scene
from echocaptions.synth.bmode_shapes import crop

CASES = [(organ, label) for organ, labels in LABELS.items() for label in (*labels, None)]
SEEDS = range(6)


def beam_view(organ: str, label: str | None, findings: dict[str, str | None], seed: int):
    """Scene, pre-scan-conversion display values and the (cropped) beam grid for a seed."""
    scene = make_scene(organ, label, findings, np.random.default_rng(seed))
    beam: list[np.ndarray] = []
    _, lay = bmode._frames(
        organ, label, findings, np.random.default_rng(seed), 1, (256, 320), False, beam
    )
    grid = crop(lay.grid, bmode._JITTER, bmode._JITTER + lay.nl)
    return scene, beam[0], grid


def box_mean(vals: np.ndarray, grid, x0: float, x1: float, z0: float, z1: float) -> float:
    sel = (grid.x >= x0) & (grid.x <= x1) & (grid.z >= z0) & (grid.z <= z1)
    assert sel.sum() > 10
    return float(vals[sel].mean())


@pytest.mark.parametrize(("organ", "label"), CASES)
def test_shape_dtype_and_field(organ: str, label: str | None) -> None:
    frames, lay = bmode._frames(organ, label, {}, np.random.default_rng(3), 1, (256, 320), False)
    img = frames[0]
    assert img.shape == (256, 320) and img.dtype == np.uint8
    assert np.all(img[~(lay.mask | lay.ticks)] == 0), (
        "pixels outside the imaged field must be black"
    )
    assert img[lay.ticks].min() > 100, "depth ticks are drawn"
    inside = img[lay.mask]
    assert 25 < inside.mean() < 200
    assert inside.std() > 15, "speckle texture present"
    assert lay.mask.mean() > 0.35


def test_probe_geometry_per_organ() -> None:
    for organ, convex in (("breast", False), ("thyroid", False), ("liver", True), ("lung", True)):
        _, lay = bmode._frames(organ, None, {}, np.random.default_rng(0), 1, (256, 320), False)
        corner = lay.mask[:40, :40].any() or lay.mask[:40, -40:].any()
        assert corner != convex, organ
        rows = lay.mask.any(axis=1)
        widths = lay.mask.sum(axis=1)[rows]
        if convex:
            assert widths.max() > 1.5 * widths[0], "a sector widens with depth"
        else:
            assert widths.min() == widths.max(), "a linear field is a rectangle"


def test_custom_size() -> None:
    img = render("liver", "normal", {}, np.random.default_rng(0), size=(200, 240))
    assert img.shape == (200, 240)
    clip = render_clip(
        "breast", "benign", {}, np.random.default_rng(0), n_frames=3, size=(128, 160)
    )
    assert len(clip) == 3 and all(f.shape == (128, 160) and f.dtype == np.uint8 for f in clip)


@pytest.mark.parametrize("organ", list(LABELS))
def test_deterministic_and_seed_dependent(organ: str) -> None:
    label = LABELS[organ][1]
    a = render(organ, label, {}, np.random.default_rng(11))
    b = render(organ, label, {}, np.random.default_rng(11))
    c = render(organ, label, {}, np.random.default_rng(12))
    assert np.array_equal(a, b)
    assert np.mean(a != c) > 0.3
    ca = render_clip(organ, label, {}, np.random.default_rng(5), n_frames=4)
    cb = render_clip(organ, label, {}, np.random.default_rng(5), n_frames=4)
    assert all(np.array_equal(x, y) for x, y in zip(ca, cb, strict=True))


def test_findings_not_mutated_and_validated() -> None:
    fd: dict[str, str | None] = {"birads_shape": "oval"}
    render("breast", "benign", fd, np.random.default_rng(0))
    assert fd == {"birads_shape": "oval"}
    with pytest.raises(SchemaError):
        render("breast", "covid", {}, np.random.default_rng(0))
    with pytest.raises(SchemaError):
        render("lung", "normal", {"birads_shape": "oval"}, np.random.default_rng(0))


def test_clip_motion() -> None:
    lung = render_clip(
        "lung", "covid", {"lung_sliding": "present"}, np.random.default_rng(2), n_frames=6
    )
    diffs = [np.mean(lung[0] != f) for f in lung[1:]]
    assert max(diffs) > 0.05, "B-lines and pleura move between frames"
    corr = np.corrcoef(lung[0].ravel().astype(float), lung[3].ravel().astype(float))[0, 1]
    assert corr > 0.5, "same anatomy throughout the clip"
    liver = render_clip("liver", "normal", {}, np.random.default_rng(2), n_frames=6)
    corr = np.corrcoef(liver[0].ravel().astype(float), liver[-1].ravel().astype(float))[0, 1]
    assert corr > 0.3


BENIGN_CYST = {
    "birads_shape": "oval",
    "birads_orientation": "parallel",
    "birads_margin": "circumscribed",
    "birads_echo_pattern": "anechoic",
    "birads_posterior": "enhancement",
    "birads_calcifications": "none",
}
MALIGNANT = {
    "birads_shape": "irregular",
    "birads_orientation": "not_parallel",
    "birads_margin": "spiculated",
    "birads_echo_pattern": "hypoechoic",
    "birads_posterior": "shadowing",
    "birads_calcifications": "none",
}


def breast_contrast(
    label: str, findings: dict[str, str | None], seed: int
) -> tuple[float, float, float]:
    """Lesion and posterior means relative to the same depths beside the lesion."""
    scene, vals, grid = beam_view("breast", label, findings, seed)
    m = scene.mass.blob
    half = 0.4 * m.a
    width = scene.probe.width / 2

    def beside(z0: float, z1: float) -> float:
        for gap in (2.2, 1.6):  # a wide mass leaves little room beside it
            side = [
                box_mean(vals, grid, lo, hi, z0, z1)
                for lo, hi in ((-width + 1, m.cx - gap * m.a), (m.cx + gap * m.a, width - 1))
                if hi - lo > 2
            ]
            if side:
                break
        return float(np.mean(side))

    lesion = box_mean(vals, grid, m.cx - half, m.cx + half, m.cz - 0.4 * m.b, m.cz + 0.4 * m.b)
    z0 = m.cz + 1.4 * m.b + 1.0
    z1 = min(z0 + 8.0, scene.probe.depth - 1.0)
    post = box_mean(vals, grid, m.cx - half, m.cx + half, z0, z1)
    return lesion - beside(m.cz - 0.4 * m.b, m.cz + 0.4 * m.b), post - beside(z0, z1), m.b / m.a


def test_breast_benign_vs_malignant() -> None:
    for seed in SEEDS:
        les_b, post_b, ratio_b = breast_contrast("benign", BENIGN_CYST, seed)
        les_m, post_m, ratio_m = breast_contrast("malignant", MALIGNANT, seed)
        assert les_b < -40 and les_m < -25, "both masses are darker than surrounding tissue"
        assert post_b > 10, "posterior acoustic enhancement under a cyst"
        assert post_m < -15, "posterior shadowing under a malignant mass"
        assert ratio_b < 1.0 < ratio_m, "parallel vs taller-than-wide"


def test_breast_normal_has_no_mass() -> None:
    assert make_scene("breast", "normal", {}, np.random.default_rng(0)).mass is None


def _lung_profiles(label: str, findings: dict[str, str | None], seed: int) -> tuple[float, float]:
    scene, vals, grid = beam_view("lung", label, findings, seed)
    rad, zp = scene.probe.radius, scene.z_pl
    x_at_pleura = (rad + zp) * np.sin(grid.cols)
    lo, hi = scene.gap
    cols = np.flatnonzero((x_at_pleura > lo + 2) & (x_at_pleura < hi - 2))
    rows = np.flatnonzero((grid.d > zp + 8) & (grid.d < scene.probe.depth - 4))
    block = vals[np.ix_(rows, cols)]
    col_profile = block.mean(axis=0)
    vertical = float(col_profile.std())
    row_profile = block.mean(axis=1)  # across the whole gap: A-lines span it, B-lines do not
    trend = np.convolve(row_profile, np.ones(15) / 15, mode="same")
    horizontal = float((row_profile - trend)[8:-8].std())
    return vertical, horizontal


def test_lung_b_lines_vs_a_lines() -> None:
    normal = {
        "lung_b_lines": "absent",
        "lung_a_lines": "present",
        "lung_consolidation": "absent",
        "lung_effusion": "absent",
    }
    covid = {
        "lung_b_lines": "multiple",
        "lung_a_lines": "absent",
        "lung_consolidation": "absent",
        "lung_effusion": "absent",
    }
    for seed in SEEDS:
        v_n, h_n = _lung_profiles("normal", normal, seed)
        v_c, h_c = _lung_profiles("covid", covid, seed)
        assert v_c > 1.5 * v_n, "B-lines put energy into vertical bands"
        assert h_n > 1.3 * h_c, "A-lines put periodic energy into horizontal bands"


def test_lung_effusion_is_anechoic_above_diaphragm() -> None:
    fd = {"lung_effusion": "present", "lung_consolidation": "absent", "lung_b_lines": "absent"}
    for seed in SEEDS:
        scene, vals, grid = beam_view("lung", "pneumonia", fd, seed)
        lung, dia = scene.effusion
        zl, zd = lung(grid.x), dia(grid.x)
        fluid = (grid.z > zl + 3) & (grid.z < zd - 3)
        tissue = (grid.z > zd + 4) & (grid.z < zd + 15)
        if fluid.sum() < 50 or tissue.sum() < 50:
            continue
        assert vals[fluid].mean() + 30 < vals[tissue].mean()


def _liver_means(steatosis: str, seed: int) -> tuple[float, float]:
    fd = {"liver_steatosis": steatosis, "liver_fibrosis": "F0", "liver_lesion": "none"}
    scene, vals, grid = beam_view("liver", "steatosis" if steatosis != "S0" else "normal", fd, seed)
    cap = scene.capsule.base + 8
    near = box_mean(vals, grid, -30, 30, cap, cap + 20)
    deep_z = min(scene.diaphragm.base - 15, scene.probe.depth * 0.7)
    deep = box_mean(vals, grid, -30, 30, deep_z - 15, deep_z)
    return near, deep - near


def test_liver_steatosis_brightness_and_attenuation() -> None:
    for seed in SEEDS:
        near0, fall0 = _liver_means("S0", seed)
        near3, fall3 = _liver_means("S3", seed)
        assert near3 > near0 + 10, "a fatty liver is brighter in the near field"
        assert fall3 < fall0 - 10, "and loses more signal with depth"


def test_liver_fibrosis_coarsens_texture() -> None:
    def coarse(fib: str, seed: int) -> float:
        fd = {"liver_steatosis": "S0", "liver_fibrosis": fib, "liver_lesion": "none"}
        _, vals, grid = beam_view("liver", "cirrhosis" if fib == "F4" else "normal", fd, seed)
        k = 6
        h, w = (vals.shape[0] // k) * k, (vals.shape[1] // k) * k
        inside = ((np.abs(grid.x) < 30) & (grid.z > 40) & (grid.z < 80))[:h, :w]
        ok = inside.reshape(h // k, k, w // k, k).all(axis=(1, 3))
        blocks = vals[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))[ok]
        return float(np.median(np.abs(blocks - np.median(blocks))))

    f0 = np.mean([coarse("F0", seed) for seed in SEEDS])
    f4 = np.mean([coarse("F4", seed) for seed in SEEDS])
    assert f4 > 1.3 * f0, "cirrhosis has a coarse, nodular echotexture"


def test_liver_lesion_types() -> None:
    for seed in SEEDS:
        cyst_scene, cyst, g1 = beam_view(
            "liver",
            "benign",
            {"liver_lesion": "cyst", "liver_steatosis": "S0", "liver_fibrosis": "F0"},
            seed,
        )
        hem_scene, hem, g2 = beam_view(
            "liver",
            "benign",
            {"liver_lesion": "haemangioma", "liver_steatosis": "S0", "liver_fibrosis": "F0"},
            seed,
        )
        c = cyst_scene.masses[0].blob
        h = hem_scene.masses[0].blob
        cyst_in = box_mean(
            cyst, g1, c.cx - 0.4 * c.a, c.cx + 0.4 * c.a, c.cz - 0.3 * c.b, c.cz + 0.3 * c.b
        )
        hem_in = box_mean(
            hem, g2, h.cx - 0.4 * h.a, h.cx + 0.4 * h.a, h.cz - 0.3 * h.b, h.cz + 0.3 * h.b
        )
        assert cyst_in < 40 < hem_in
        assert (
            make_scene("liver", "malignant", {}, np.random.default_rng(seed)).masses[0] is not None
        )


def test_thyroid_nodule_follows_findings() -> None:
    base = {
        "tirads_composition": "solid",
        "tirads_shape": "wider_than_tall",
        "tirads_margin": "smooth",
        "tirads_foci": "none",
    }
    for seed in SEEDS:
        means = {}
        for echo in ("hyperechoic", "very_hypoechoic"):
            scene, vals, grid = beam_view(
                "thyroid", "benign", {**base, "tirads_echogenicity": echo}, seed
            )
            n = scene.mass.blob
            means[echo] = box_mean(
                vals, grid, n.cx - 0.5 * n.a, n.cx + 0.5 * n.a, n.cz - 0.4 * n.b, n.cz + 0.4 * n.b
            )
        assert means["very_hypoechoic"] + 40 < means["hyperechoic"]
        tall = make_scene(
            "thyroid",
            "malignant",
            {"tirads_shape": "taller_than_wide"},
            np.random.default_rng(seed),
        )
        assert tall.mass.blob.b > tall.mass.blob.a
        assert make_scene("thyroid", "normal", {}, np.random.default_rng(seed)).mass is None


def test_thyroid_macrocalcification_shadows() -> None:
    fd = {
        "tirads_composition": "solid",
        "tirads_echogenicity": "isoechoic",
        "tirads_margin": "smooth",
    }
    for seed in SEEDS:
        scene, vals, grid = beam_view(
            "thyroid", "benign", {**fd, "tirads_foci": "macrocalcifications"}, seed
        )
        dot = scene.mass.dots[0][0]
        below = box_mean(
            vals, grid, dot.cx - 0.3, dot.cx + 0.3, dot.cz + dot.b + 3, dot.cz + dot.b + 8
        )
        bright = float(
            vals[(np.abs(grid.x - dot.cx) < 0.5) & (np.abs(grid.z - dot.cz) < 0.5)].max()
        )
        assert bright > 190 and below < 60, "bright calcification with an acoustic shadow"


# --------------------------------------------------------------------------- ground truth

FULL_KEYS = {
    "lung": {"lung_a_lines", "lung_b_lines", "lung_consolidation", "lung_effusion",
             "lung_pleural_line", "lung_sliding"},
    "liver": {"liver_steatosis", "liver_fibrosis", "liver_lesion"},
    "breast": {"birads_tissue", "birads_shape", "birads_orientation", "birads_margin",
               "birads_echo_pattern", "birads_posterior", "birads_calcifications"},
    "thyroid": {"tirads_composition", "tirads_echogenicity", "tirads_shape", "tirads_margin",
                "tirads_foci"},
}


def dilate(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(k):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


@pytest.mark.parametrize(("organ", "label"), CASES)
def test_draw_returns_what_render_paints(organ: str, label: str | None) -> None:
    partial = {"lung": {"lung_effusion": "absent"}, "liver": {"liver_steatosis": "S0"}}.get(organ, {})
    for seed in range(3):
        r = bmode.draw(organ, label, partial, np.random.default_rng(seed), size=(128, 160))
        assert np.array_equal(r.image, render(organ, label, partial, np.random.default_rng(seed),
                                              size=(128, 160)))
        done = bmode.complete_findings(organ, label, partial, np.random.default_rng(seed))
        assert done == r.findings and partial.items() <= r.findings.items()
        assert label is None or r.label == label
        scene = make_scene(organ, label, partial, np.random.default_rng(seed))
        lesion = bool(scene.lesion_masks(lay_grid(organ, label, partial, seed)))
        keys = FULL_KEYS[organ]
        if organ == "breast" and r.label == "normal":
            keys = {"birads_tissue"}
        if organ == "thyroid" and r.label == "normal":
            keys = set()
        assert set(r.findings) >= keys and all(v is not None for v in r.findings.values())
        assert bool(r.masks) == lesion
        # completed findings are a fixed point: the same image, label and findings again
        again = bmode.draw(organ, r.label, r.findings, np.random.default_rng(seed), size=(128, 160))
        assert np.array_equal(again.image, r.image) and again.findings == r.findings
        assert all(np.array_equal(a, b) for a, b in zip(again.masks, r.masks, strict=True))
        clip = bmode.draw(organ, label, partial, np.random.default_rng(seed), (96, 128), 3,
                          masks=False)
        ref = render_clip(organ, label, partial, np.random.default_rng(seed), 3, (96, 128))
        assert all(np.array_equal(a, b) for a, b in zip(clip.frames, ref, strict=True))
        assert clip.masks == [] and clip.findings == bmode.complete_findings(
            organ, label, partial, np.random.default_rng(seed))


def lay_grid(organ: str, label: str | None, findings: dict[str, str | None], seed: int):
    _, _, grid = beam_view(organ, label, findings, seed)
    return grid


# (organ, label, findings, how much darker the lesion is than a ring just outside it)
HYPO = [
    ("breast", "malignant", MALIGNANT, 20),
    ("breast", "benign", BENIGN_CYST, 20),
    ("thyroid", "malignant", {"tirads_echogenicity": "very_hypoechoic", "tirads_foci": "none",
                              "tirads_composition": "solid"}, 20),
    ("liver", "benign", {"liver_lesion": "cyst"}, 20),
    ("liver", "malignant", {"liver_lesion": "mass"}, 5),
]


@pytest.mark.parametrize(("organ", "label", "findings", "margin"), HYPO)
def test_masks_cover_the_dark_lesion(
    organ: str, label: str, findings: dict[str, str | None], margin: float
) -> None:
    for seed in SEEDS:
        r = bmode.draw(organ, label, findings, np.random.default_rng(seed))
        assert r.masks and all(m.shape == r.image.shape and m.dtype == bool for m in r.masks)
        mask = r.masks[0]
        assert mask.sum() > 50 and not (mask & ~r.field).any()
        ring = dilate(mask, 6) & ~dilate(mask, 2) & r.field
        inside = float(r.image[mask].mean())
        around = float(r.image[ring].mean())
        assert inside + margin < around, (seed, inside, around)


def test_normal_images_have_no_lesion_masks() -> None:
    for organ in ("breast", "thyroid", "liver"):
        for seed in range(3):
            r = bmode.draw(organ, "normal", {}, np.random.default_rng(seed))
            assert r.masks == []
    liver = bmode.draw("liver", "normal", {}, np.random.default_rng(0))
    assert liver.regions["liver"].sum() > 0.2 * liver.field.sum()
    assert not (liver.regions["liver"] & ~liver.field).any()


def test_second_breast_lesion() -> None:
    two = 0
    for seed in range(8):
        one = bmode.draw("breast", "benign", {}, np.random.default_rng(seed))
        r = bmode.draw("breast", "benign", {}, np.random.default_rng(seed), extra_lesions=1)
        assert np.array_equal(r.masks[0], one.masks[0]) and r.findings == one.findings
        assert len(r.masks) in (1, 2)
        if len(r.masks) == 2:
            two += 1
            a, b = r.masks
            assert b.sum() > 20 and not (a & b).any()
            assert float(r.image[b].mean()) + 15 < float(r.image[dilate(b, 5) & ~dilate(b, 2)].mean())
        else:
            assert np.array_equal(r.image, one.image)
    assert two >= 4
    with pytest.raises(ValueError, match="breast"):
        bmode.draw("liver", "benign", {}, np.random.default_rng(0), extra_lesions=1)
