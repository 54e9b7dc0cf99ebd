"""The phantom writes each public layout exactly, deterministically, with per_class respected."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from echocaptions.synth import make_phantom, make_report, sample_findings
from echocaptions.synth.bmode import draw
from echocaptions.synth.layouts import LAYOUT_FOLDERS, MARKER, POCUS_COLUMNS

SIZE = (64, 96)
PER_CLASS = 2


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_phantom(tmp_path_factory.mktemp("layouts"), per_class=PER_CLASS, seed=5, size=SIZE)


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_returns_one_root_per_layout(roots: dict[str, Path]) -> None:
    out = roots["busi"].parent
    assert {k: roots[k] for k in ("busi", "ddti", "aul", "pocus", "report_corpus")} == {
        "busi": out / "BUSI",
        "ddti": out / "DDTI",
        "aul": out / "AUL",
        "pocus": out / "covid19_ultrasound" / "data",
        "report_corpus": out / "ultrasound_reports",
    }
    assert set(LAYOUT_FOLDERS) == set(roots)
    for layout, root in roots.items():
        assert root == out / LAYOUT_FOLDERS[layout] or out / LAYOUT_FOLDERS[layout] in root.parents


def test_busi_layout(roots: dict[str, Path]) -> None:
    base = roots["busi"] / "Dataset_BUSI_with_GT"
    assert sorted(p.name for p in base.iterdir()) == ["benign", "malignant", "normal"]
    for label in ("benign", "malignant", "normal"):
        names = sorted(p.name for p in (base / label).iterdir())
        images = [n for n in names if "_mask" not in n]
        assert images == [f"{label} ({n}).png" for n in range(1, PER_CLASS + 1)]
        for image in images:
            assert image.replace(".png", "_mask.png") in names
            with Image.open(base / label / image) as im:
                assert (im.mode, im.size) == ("RGB", (SIZE[1], SIZE[0]))
            with Image.open(base / label / image.replace(".png", "_mask.png")) as mask:
                assert mask.mode == "L" and set(np.unique(np.asarray(mask))) <= {0, 255}
        assert all(re.fullmatch(rf"{label} \(\d+\)(_mask(_1)?)?\.png", n) for n in names)


def test_ddti_layout(roots: dict[str, Path]) -> None:
    root = roots["ddti"]
    xmls = sorted(root.glob("*.xml"), key=lambda p: int(p.stem))
    assert [p.stem for p in xmls] == [str(n) for n in range(1, 2 * PER_CLASS + 1)]
    for xml in xmls:
        case = ET.parse(xml).getroot()
        assert case.tag == "case" and case.findtext("number") == xml.stem
        for tag in ("age", "sex", "composition", "echogenicity", "margins", "calcifications",
                    "tirads", "reportbacaf", "reporteco"):
            assert case.find(tag) is not None, tag
        assert case.findtext("tirads") in {"2", "3", "4a", "4b", "4c", "5"}
        for mark in case.findall("mark"):
            assert (root / f"{xml.stem}_{mark.findtext('image')}.jpg").is_file()
            (region,) = json.loads(mark.findtext("svg"))
            assert region["regionType"] == "freehand" and {"x", "y"} == set(region["points"][0])
    assert {p.suffix for p in root.iterdir()} == {".xml", ".jpg"}


def test_aul_layout(roots: dict[str, Path]) -> None:
    root = roots["aul"]
    assert sorted(p.name for p in root.iterdir()) == ["Benign", "Malignant", "Normal"]
    for cls in ("Normal", "Benign", "Malignant"):
        assert sorted(p.name for p in (root / cls / "image").iterdir()) == [f"{n}.jpg" for n in range(1, PER_CLASS + 1)]
        kinds = sorted(p.name for p in (root / cls / "segmentation").iterdir())
        assert kinds == (["liver", "outline"] if cls == "Normal" else ["liver", "mass", "outline"])
        points = json.loads((root / cls / "segmentation" / "liver" / "1.json").read_text())
        assert all(len(p) == 2 and all(isinstance(v, int) for v in p) for p in points)


def test_pocus_layout(roots: dict[str, Path]) -> None:
    import av

    data = roots["pocus"]
    with open(data / "dataset_metadata.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == POCUS_COLUMNS
        rows = {r["Filename"]: r for r in reader}
    files = sorted((data / "pocus_videos").rglob("*.*"))
    assert {f.parent.name for f in files} <= {"convex", "linear"}
    assert {f.suffix for f in files} == {".mp4", ".gif"}
    for prefix in ("Cov", "Pneu", "Reg", "Vir"):
        assert sum(f.name.startswith(prefix + "-") for f in files) == PER_CLASS
    for f in files:
        row = rows[f.stem]
        assert row["Probe"] == f.parent.name
        assert row["Label"] in {"COVID-19", "Bacterial pneumonia", "regular", "Viral pneumonia"}
    mp4 = next(f for f in files if f.suffix == ".mp4")
    with av.open(str(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 2
    gif = next(f for f in files if f.suffix == ".gif")
    with Image.open(gif) as im:
        assert im.n_frames >= 2


def test_report_corpus_layout(roots: dict[str, Path]) -> None:
    root = roots["report_corpus"]
    annotation = json.loads((root / "annotation.json").read_text())
    assert set(annotation) == {"train", "val", "test"}
    records = [r for split in annotation.values() for r in split]
    assert len(records) == 3 * 3 * PER_CLASS
    for record in records:
        assert set(record) == {"uid", "image_path", "finding", "labels"}
        for rel in record["image_path"]:
            organ, uid, name = rel.split("/")
            assert organ in {"breast", "thyroid", "liver"} and uid == str(record["uid"])
            assert (root / rel).is_file() and re.fullmatch(r"\d+\.png", name)
        for section in ("CLINICAL HISTORY:", "TECHNIQUE:", "FINDINGS:", "IMPRESSION:"):
            assert section in record["finding"]


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    first = make_phantom(tmp_path / "a", per_class=1, seed=9, size=SIZE, broken=True)
    second = make_phantom(tmp_path / "b", per_class=1, seed=9, size=SIZE, broken=True)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert set(first) == set(second)
    other = make_phantom(tmp_path / "c", per_class=1, seed=10, size=SIZE, broken=True)
    assert digests(tmp_path / "c") != digests(tmp_path / "a") and set(other) == set(first)


def test_rerun_overwrites_and_organs_filter(tmp_path: Path) -> None:
    make_phantom(tmp_path, per_class=2, seed=0, size=SIZE)
    roots = make_phantom(tmp_path, organs=["thyroid"], per_class=1, seed=0, size=SIZE,
                         layouts=["ddti", "report_corpus", "busi"])
    assert set(roots) == {"ddti", "report_corpus"}
    assert sorted(p.name for p in roots["ddti"].glob("*.xml")) == ["1.xml", "2.xml"]
    organs = {p.name for p in roots["report_corpus"].iterdir() if p.is_dir()}
    assert organs == {"thyroid"}
    assert json.loads((tmp_path / MARKER).read_text())["organs"] == ["thyroid"]


def test_refuses_to_overwrite_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "BUSI").mkdir()
    (tmp_path / "BUSI" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="make_phantom"):
        make_phantom(tmp_path, organs=["breast"], per_class=1, size=SIZE)
    assert (tmp_path / "BUSI" / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="kidney"):
        make_phantom(tmp_path / "x", organs=["kidney"])


@pytest.mark.parametrize("organ,label", [("breast", "malignant"), ("thyroid", "benign"),
                                         ("liver", "malignant"), ("lung", "covid")])
def test_reports_follow_findings_and_carry_phi(organ: str, label: str) -> None:
    texts = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        findings = sample_findings(organ, label, rng)
        report = make_report(organ, label, findings, rng)
        assert all(p in report.text for p in report.phi)
        assert all(e in report.text for e in report.eponyms)
        texts.append(report.text)
        if organ == "breast":
            assert f"BI-RADS {findings['birads_category'].upper()}" in report.text
        if organ == "thyroid":
            assert f"TI-RADS {findings['tirads_category']}" in report.text
    joined = "\n".join(texts)
    assert re.search(r"\b(Mrs?|Ms)\. [A-Z][a-z]+ [A-Z][a-z]+", joined) or re.search(r"[A-Z]+, [A-Z]+", joined)
    assert "Dr. " in joined and "MRN:" in joined and "Accession:" in joined
    assert re.search(r"\d{3}[- ]\d{3}[- ]\d{4}|\(\d{3}\) \d{3}-\d{4}", joined)
    if organ != "lung":
        assert "Doppler" in joined
    if organ == "thyroid":
        assert "Hashimoto" in joined or "Graves" in joined
    assert len(set(texts)) == len(texts)


# --------------------------------------------------------------------------- metadata = pixels

TRUTH_SIZE = (128, 160)
TRUTH_SEED = 21


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_phantom(tmp_path_factory.mktemp("truth"), per_class=3, seed=TRUTH_SEED,
                        size=TRUTH_SIZE)


def ctx_rng(*keys: object) -> np.random.Generator:
    """The generator the phantom used for one file (same seed and key)."""
    return np.random.default_rng([TRUTH_SEED, zlib.crc32("/".join(map(str, keys)).encode())])


def fill_polygon(points: list[list[int]], size: tuple[int, int]) -> np.ndarray:
    im = Image.new("L", (size[1], size[0]), 0)
    ImageDraw.Draw(im).polygon([tuple(p) for p in points], fill=1, outline=1)
    return np.asarray(im).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def ring(mask: np.ndarray, inner: int = 2, outer: int = 6) -> np.ndarray:
    from tests.synth.test_bmode import dilate

    return dilate(mask, outer) & ~dilate(mask, inner)


def test_mask_polygon_traces_the_mask() -> None:
    from echocaptions.synth.layouts import mask_polygon

    assert mask_polygon(np.zeros((10, 10), bool)) == []
    yy, xx = np.mgrid[0:80, 0:100]
    blob = ((yy - 40) / 20.0) ** 2 + ((xx - 45) / 30.0) ** 2 <= 1
    blob[5, 5] = True  # a stray pixel is not the lesion
    points = mask_polygon(blob)
    assert 20 <= len(points) <= 40
    assert iou(fill_polygon(points, blob.shape), blob) > 0.95


def test_busi_masks_are_the_drawn_lesions(truth: dict[str, Path]) -> None:
    base = truth["busi"] / "Dataset_BUSI_with_GT"
    seconds = 0
    for label in ("benign", "malignant", "normal"):
        for n in range(1, 4):
            rng = ctx_rng("busi", label, n)
            fd = sample_findings("breast", label, rng)
            r = draw("breast", label, fd, rng, TRUTH_SIZE,
                     extra_lesions=1 if label == "benign" and n % 3 == 0 else 0)
            stem = f"{label} ({n})"
            with Image.open(base / label / f"{stem}.png") as im:
                img = np.asarray(im.convert("L"))
            assert np.array_equal(img, r.image)
            with Image.open(base / label / f"{stem}_mask.png") as im:
                mask = np.asarray(im) == 255
            second = base / label / f"{stem}_mask_1.png"
            if label == "normal":
                assert not mask.any() and not second.exists()
                continue
            assert np.array_equal(mask, r.masks[0]) and mask.sum() > 30
            assert second.exists() == (len(r.masks) == 2)
            if second.exists():
                seconds += 1
                with Image.open(second) as im:
                    assert np.array_equal(np.asarray(im) == 255, r.masks[1])
            if r.findings["birads_echo_pattern"] in ("hypoechoic", "anechoic"):
                assert img[mask].mean() + 15 < img[ring(mask) & r.field].mean()
    assert seconds == 1


def test_ddti_descriptors_and_outlines_follow_the_drawn_nodule(truth: dict[str, Path]) -> None:
    from echocaptions.sources.ddti import CALCIFICATIONS, COMPOSITION, ECHOGENICITY, MARGINS
    from echocaptions.synth.layouts import _DDTI_SPELLINGS
    from echocaptions.synth.reports import kwak_tirads, pick

    for number in range(1, 7):
        label = "benign" if number % 2 else "malignant"
        case = ET.parse(truth["ddti"] / f"{number}.xml").getroot()
        rng = ctx_rng("ddti", number)
        spell = {tag: pick(rng, values) for tag, values in _DDTI_SPELLINGS[label].items()}
        fd: dict[str, str | None] = {
            "tirads_composition": COMPOSITION[spell["composition"]],
            "tirads_echogenicity": ECHOGENICITY[spell["echogenicity"]],
            "tirads_margin": MARGINS[spell["margins"]],
            "tirads_foci": CALCIFICATIONS[spell["calcifications"]],
        }
        first = draw("thyroid", label, fd | ({"tirads_shape": "wider_than_tall"}
                                            if label == "benign" else {}), rng, TRUTH_SIZE)
        written = {
            "tirads_composition": COMPOSITION[case.findtext("composition")],
            "tirads_echogenicity": ECHOGENICITY[case.findtext("echogenicity")],
            "tirads_margin": MARGINS[case.findtext("margins")],
            "tirads_foci": CALCIFICATIONS[case.findtext("calcifications")],
        }
        assert written.items() <= first.findings.items()
        assert case.findtext("tirads") == kwak_tirads(first.findings, label)
        assert (case.findtext("tirads") in ("2", "3")) == (label == "benign")
        drawn = [first]
        for _ in case.findall("mark")[1:]:
            drawn.append(draw("thyroid", first.label, first.findings, rng, TRUTH_SIZE))
        for mark, r in zip(case.findall("mark"), drawn, strict=True):
            (region,) = json.loads(mark.findtext("svg"))
            points = [[p["x"], p["y"]] for p in region["points"]]
            assert 12 <= len(points) <= 40
            assert iou(fill_polygon(points, TRUTH_SIZE), r.masks[0]) > 0.8
            with Image.open(truth["ddti"] / f"{number}_{mark.findtext('image')}.jpg") as im:
                img = np.asarray(im.convert("L")).astype(float)
            assert np.abs(img - r.image).mean() < 4  # JPEG of the very image re-drawn


def test_aul_polygons_are_field_liver_and_lesion(truth: dict[str, Path]) -> None:
    root = truth["aul"]
    for cls in ("Normal", "Benign", "Malignant"):
        for n in range(1, 4):
            rng = ctx_rng("aul", cls, n)
            r = draw("liver", cls.lower(), sample_findings("liver", cls.lower(), rng), rng, TRUTH_SIZE)
            seg = root / cls / "segmentation"
            polygons = {kind: json.loads((seg / kind / f"{n}.json").read_text())
                        for kind in ("outline", "liver", "mass") if (seg / kind / f"{n}.json").exists()}
            assert ("mass" in polygons) == (r.findings["liver_lesion"] != "none") == (cls != "Normal")
            assert iou(fill_polygon(polygons["outline"], TRUTH_SIZE), r.field) > 0.95
            assert iou(fill_polygon(polygons["liver"], TRUTH_SIZE), r.regions["liver"]) > 0.85
            if "mass" in polygons:
                largest = max(r.masks, key=lambda m: int(m.sum()))
                assert iou(fill_polygon(polygons["mass"], TRUTH_SIZE), largest) > 0.8
            for points in polygons.values():
                assert all(len(p) == 2 and all(isinstance(v, int) for v in p) for p in points)


def _b_line_energy(frame_vals: np.ndarray, scene, grid) -> float:
    """Std across scan lines of the mean echo in aerated lung below the pleura."""
    rad, zp = scene.probe.radius, scene.z_pl
    lo, hi = scene.gap
    x_at_pleura = (rad + zp) * np.sin(grid.cols)
    cols = np.flatnonzero((x_at_pleura > lo + 2) & (x_at_pleura < hi - 2))
    rows = np.flatnonzero((grid.d > zp + 8) & (grid.d < zp + 30))
    return float(frame_vals[np.ix_(rows, cols)].mean(axis=0).std())


def test_pocus_flags_follow_the_drawn_clip(truth: dict[str, Path]) -> None:
    from echocaptions.synth import bmode
    from echocaptions.synth.bmode_shapes import crop
    from echocaptions.synth.layouts import _POCUS_CLASSES, _pocus_findings

    data = truth["pocus"]
    with open(data / "dataset_metadata.csv", newline="") as fh:
        rows = {r["Filename"]: r for r in csv.DictReader(fh)}
    files = {f.stem: f for f in (data / "pocus_videos").rglob("*.*")}
    size = (TRUTH_SIZE[0] - TRUTH_SIZE[0] % 2, TRUTH_SIZE[1] - TRUTH_SIZE[1] % 2)
    energy: dict[str, list[float]] = {"0": [], "1": []}
    for prefix, _, label in _POCUS_CLASSES:
        for j in range(3):
            (name,) = [n for n in files if n.startswith(prefix + "-") and rows[n]["Filename"] == n
                       and n.endswith((f"({40 + j})", f"Example {j + 1}", f"-{j + 1}"))]
            row = rows[name]
            rng = ctx_rng("pocus", prefix, j)
            beam: list[np.ndarray] = []
            frames, lay, scene = bmode._render("lung", label, _pocus_findings(label, rng), rng, 6,
                                               size, True, beam)
            fd = scene.findings
            if files[name].suffix == ".gif":
                with Image.open(files[name]) as im:
                    im.seek(0)
                    assert np.array_equal(np.asarray(im.convert("L")), frames[0])
            assert row["B-lines"] == ("1" if scene.blines else "0")
            assert row["A-lines"] == ("1" if scene.a_amp else "0") == (
                "1" if fd["lung_a_lines"] == "present" else "0")
            assert row["Effusion"] == ("1" if scene.effusion is not None else "0")
            assert row["Consolidations"] == ("1" if scene.cons is not None else "0")
            assert row["Air bronchogram"] == ("1" if scene.bronchograms else "0")
            assert row["Pleural line irregularities"] == (
                "0" if fd["lung_pleural_line"] == "smooth" else "1")
            if scene.cons is None and scene.effusion is None:
                grid = crop(lay.grid, bmode._JITTER, bmode._JITTER + lay.nl)
                energy[row["B-lines"]].append(_b_line_energy(beam[0], scene, grid))
    assert energy["0"] and energy["1"]
    assert max(energy["0"]) < 10 < min(energy["1"]), energy


def test_report_corpus_text_follows_the_drawn_findings(truth: dict[str, Path]) -> None:
    from echocaptions.synth.reports import kwak_tirads

    annotation = json.loads((truth["report_corpus"] / "annotation.json").read_text())
    records = {r["uid"]: r for split in annotation.values() for r in split}
    uid = 1000
    for organ in ("breast", "thyroid", "liver"):
        for label in ("normal", "benign", "malignant"):
            for j in range(3):
                uid += 1
                rng = ctx_rng("report_corpus", uid)
                sampled = sample_findings(organ, label, rng)
                first = draw(organ, label, sampled, rng, TRUTH_SIZE, masks=False)
                images = [first]
                for _ in range(1, 2 if j % 3 == 1 else 1):
                    images.append(draw(organ, first.label, first.findings, rng, TRUTH_SIZE,
                                       masks=False))
                record = records[uid]
                for rel, r in zip(record["image_path"], images, strict=True):
                    with Image.open(truth["report_corpus"] / rel) as im:
                        assert np.array_equal(np.asarray(im), r.image)
                fd = dict(first.findings)
                text = record["finding"]
                if organ == "liver":
                    steat = fd["liver_steatosis"]
                    assert ({"S1": "Mild", "S2": "Moderate", "S3": "Severe"}.get(steat, "none")
                            in text) == (steat != "S0")
                    lesion = fd["liver_lesion"]
                    assert ("No focal hepatic lesion" in text) == (lesion == "none")
                if organ == "breast" and label != "normal":
                    assert fd["birads_echo_pattern"].replace("_", " ").split()[0] in text
                    assert fd["birads_margin"] in text
                if organ == "thyroid" and label != "normal":
                    category = kwak_tirads(fd, label)
                    assert f"TI-RADS {category}" in text and f"TI-RADS {category}" in record["labels"]
                    assert ("taller-than-wide" in text) == (fd["tirads_shape"] == "taller_than_wide")
