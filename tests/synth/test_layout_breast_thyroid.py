"""Phantom BUS-BRA, BrEaST, TN3K and Stanford thyroid: exact layouts, metadata = pixels, and builds."""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import datasets
import h5py
import numpy as np
import pytest
from PIL import Image

from echocaptions.pipeline import build
from echocaptions.recipe import load_recipe
from echocaptions.schema import LABEL_NAMES, build_key
from echocaptions.sources.breast_lesions_usg import IMAGES, read_clinical
from echocaptions.synth import make_phantom, sample_findings
from echocaptions.synth.bmode import draw
from echocaptions.synth.layout_breast_lesions_usg import COLUMNS as BREAST_COLUMNS
from echocaptions.synth.layout_breast_lesions_usg import SHEET, WORKBOOK
from echocaptions.synth.layout_bus_bra import COLUMNS as BUS_BRA_COLUMNS
from echocaptions.synth.layout_stanford_thyroid import (
    CLIP_FRAMES,
    POINTS,
    TIRADS_COLUMNS,
    acr_level,
)
from echocaptions.synth.layout_tn3k import write_tn3k
from echocaptions.synth.layouts import LAYOUT_FOLDERS, _Ctx

LAYOUTS = ("bus_bra", "breast_lesions_usg", "tn3k", "stanford_thyroid")
SIZE = (64, 96)
PER_CLASS = 2
SEED = 5


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_phantom(tmp_path_factory.mktemp("bt"), per_class=PER_CLASS, seed=SEED, size=SIZE,
                        layouts=LAYOUTS)


def rng(*keys: object) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32("/".join(map(str, keys)).encode())])


def gray(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_roots_and_folders(roots: dict[str, Path]) -> None:
    out = roots["tn3k"].parent
    assert roots == {layout: out / LAYOUT_FOLDERS[layout] for layout in LAYOUTS}


def test_bus_bra_layout_and_pixels(roots: dict[str, Path]) -> None:
    root = roots["bus_bra"]
    assert sorted(p.name for p in root.iterdir()) == [
        "10-fold-cv.csv", "5-fold-cv.csv", "Images", "LICENSE.txt", "Masks", "bus_data.csv"]
    with open(root / "bus_data.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == BUS_BRA_COLUMNS
        rows = list(reader)
    assert [r["ID"] for r in rows] == [
        f"bus_{c:04d}-{v}" for c in range(1, 2 * PER_CLASS + 1) for v in (("l", "r") if c % 3 == 0 else ("s",))]
    for case in range(1, 2 * PER_CLASS + 1):
        label = "benign" if case % 2 else "malignant"
        g = rng("bus_bra", case)
        r = draw("breast", label, sample_findings("breast", label, g), g, SIZE)
        first = next(row for row in rows if row["Case"] == str(case))
        name = first["ID"].removeprefix("bus_")
        with Image.open(root / "Images" / f"bus_{name}.png") as im:
            assert im.mode == "L" and np.array_equal(np.asarray(im), r.image)
        mask = gray(root / "Masks" / f"mask_{name}.png")
        assert set(np.unique(mask)) <= {0, 255} and np.array_equal(mask == 255, r.masks[0])
        ys, xs = np.nonzero(r.masks[0])
        assert json.loads(first["BBOX"]) == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert (first["Pathology"], first["BIRADS"]) == (label, r.findings["birads_category"][0])
    for row in rows:  # the real encodings: Side follows the view suffix, Width before Height
        assert row["Side"] == {"l": "left", "r": "right", "s": "single"}[row["ID"][-1]]
        assert (row["Width"], row["Height"]) == (str(SIZE[1]), str(SIZE[0]))
        assert row["Histology"] == row["Histology"].lower() and "@" in row["Device"]
    for k in (5, 10):
        with open(root / f"{k}-fold-cv.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames == ["ID", "Pathology", "kFold", *[f"valid_{j}" for j in range(1, k + 1)]]
            folds = list(reader)
        assert [(f["ID"], f["Pathology"]) for f in folds] == [(r["ID"], r["Pathology"]) for r in rows]
        assert {f["kFold"] for f in folds} <= {str(j) for j in range(1, k + 1)}
        for f in folds:  # NaN marks the image's own test fold, and only that one
            assert [j for j in range(1, k + 1) if f[f"valid_{j}"] == "NaN"] == [int(f["kFold"])]
            assert {f[f"valid_{j}"] for j in range(1, k + 1)} <= {"NaN", "0", "1"}
        case_of = {r["ID"]: r["Case"] for r in rows}
        assert len({(case_of[f["ID"]], f["kFold"]) for f in folds}) == len(set(case_of.values()))


def test_breast_lesions_usg_layout_and_pixels(roots: dict[str, Path]) -> None:
    from openpyxl import load_workbook

    root = roots["breast_lesions_usg"]
    assert sorted(p.name for p in root.iterdir()) == sorted([IMAGES, WORKBOOK])
    wb = load_workbook(root / WORKBOOK, read_only=True)
    assert wb.sheetnames == [SHEET, "Data Dictionary"]
    cells = list(wb[SHEET].iter_rows(values_only=True))
    assert tuple(cells[0]) == BREAST_COLUMNS
    typed = [dict(zip(BREAST_COLUMNS, line, strict=True)) for line in cells[1:]]
    assert all(isinstance(t["CaseID"], int) and isinstance(t["Pixel_size"], float) for t in typed)
    assert all(isinstance(t["BIRADS"], int) == str(t["BIRADS"]).isdigit() for t in typed)
    assert next(wb["Data Dictionary"].iter_rows(values_only=True)) == ("type", "description")
    wb.close()
    rows = read_clinical(root / WORKBOOK)
    labels = ("benign", "malignant", "normal")
    assert [r["Classification"] for r in rows] == [labels[n % 3] for n in range(3 * PER_CLASS)]
    for row in rows:
        case, label = int(row["CaseID"]), row["Classification"]
        g = rng("breast_lesions_usg", case)
        r = draw("breast", label, sample_findings("breast", label, g), g, SIZE,
                 extra_lesions=1 if label == "benign" and case % 2 == 0 else 0)
        assert np.array_equal(gray(root / IMAGES / row["Image_filename"]), r.image)
        assert row["BIRADS"] == r.findings["birads_category"]
        tissue = {
            "homogeneous_fat": {"homogeneous: fat"},
            "homogeneous_fibroglandular": {"homogeneous: fibroglandular"},
            "heterogeneous": {"heterogeneous: predominantly fat", "heterogeneous: predominantly fibroglandular"},
        }[r.findings["birads_tissue"]]
        if case % 6 == 4:
            assert row["Tissue_composition"] == "not available"
        else:
            assert row["Tissue_composition"].removeprefix("lactating&") in tissue
            assert row["Tissue_composition"].startswith("lactating&") == (case % 4 == 2)
        assert (row["Age"] == "not available") == (case % 6 == 1)
        if label == "normal":
            assert row["Mask_tumor_filename"] == "" and row["Shape"] == "not applicable"
            continue
        assert np.array_equal(gray(root / IMAGES / row["Mask_tumor_filename"]) == 255, r.masks[0])
        assert row["Shape"] == r.findings["birads_shape"]
        assert row["Margin"].removeprefix("not circumscribed - ").split("&")[0] == r.findings["birads_margin"]
        calcifications = {"none": "no", "in_mass": "in a mass"}[r.findings["birads_calcifications"]]
        assert row["Calcifications"] == ("indefinable" if case % 5 == 0 else calcifications)
        others = [n for n in row["Mask_other_filename"].split("&") if n]
        assert len(others) == len(r.masks) - 1
    with zipfile.ZipFile(root / WORKBOOK) as z:  # no wall-clock time in the workbook's bytes
        assert {i.date_time for i in z.infolist()} == {(2023, 12, 15, 0, 0, 0)}
        assert z.read("docProps/core.xml").count(b"2023-12-15T00:00:00Z") == 2


def test_tn3k_layout_and_pixels(roots: dict[str, Path]) -> None:
    root = roots["tn3k"]
    assert sorted(p.name for p in root.iterdir()) == [
        "label4test.csv", "label4trainval.csv", "test-image", "test-mask",
        *[f"tn3k-trainval-fold{k}.json" for k in range(5)], "trainval-image", "trainval-mask"]
    names = [f"{n:04d}.jpg" for n in range(2 * PER_CLASS)]
    for split in ("trainval", "test"):
        assert sorted(p.name for p in (root / f"{split}-image").iterdir()) == names
        assert sorted(p.name for p in (root / f"{split}-mask").iterdir()) == names
        lines = (root / f"label4{split}.csv").read_text().splitlines()
        assert lines == [f"{name},{n % 2}" for n, name in enumerate(names)]
        for n, name in enumerate(names):
            label = "benign" if n % 2 == 0 else "malignant"
            g = rng("tn3k", split, n)
            r = draw("thyroid", label, sample_findings("thyroid", label, g), g, SIZE)
            with Image.open(root / f"{split}-image" / name) as im:
                assert im.mode == "RGB"
                assert np.abs(np.asarray(im.convert("L")).astype(float) - r.image).mean() < 4
            mask = gray(root / f"{split}-mask" / name) > 127
            assert (mask ^ r.masks[0]).sum() <= 0.1 * r.masks[0].sum()
    fold = json.loads((root / "tn3k-trainval-fold0.json").read_text())
    assert sorted(fold["train"] + fold["val"]) == list(range(len(names)))


def test_stanford_layout_and_pixels(roots: dict[str, Path]) -> None:
    root = roots["stanford_thyroid"]
    assert sorted(p.name for p in root.iterdir()) == ["dataset.hdf5", "metadata.csv"]
    clips = 2 * PER_CLASS
    with h5py.File(root / "dataset.hdf5", "r") as f:
        assert sorted(f.keys()) == ["annot_id", "frame_num", "image", "mask"]
        images, masks = f["image"][()], f["mask"][()]
        annot, frame_num = [a.decode() for a in f["annot_id"][()]], list(f["frame_num"][()])
    assert images.shape == masks.shape == (clips * CLIP_FRAMES, *SIZE) and images.dtype == np.uint8
    assert annot == [f"{100 + k}_" for k in range(1, clips + 1) for _ in range(CLIP_FRAMES)]
    assert frame_num == list(range(CLIP_FRAMES)) * clips
    with open(root / "metadata.csv", newline="") as fh:
        rows = {r["annot_id"]: r for r in csv.DictReader(fh)}
    for k in range(1, clips + 1):
        label = "benign" if k % 2 else "malignant"
        g = rng("stanford_thyroid", 100 + k)
        r = draw("thyroid", label, sample_findings("thyroid", label, g), g, SIZE, n_frames=CLIP_FRAMES)
        start = (k - 1) * CLIP_FRAMES
        clip = images[start:start + CLIP_FRAMES].astype(int)
        assert np.abs(clip - np.stack(r.frames)).max() <= 2  # the drawn frames plus faint noise
        assert len({frame.tobytes() for frame in clip}) == CLIP_FRAMES
        assert np.array_equal(masks[start] == 255, r.masks[0])
        row = rows[f"{100 + k}_"]  # the real encodings: numbers, not words
        assert row["histopath_diagnosis"] == {"benign": "0", "malignant": "1"}[label] + (
            ".0" if (100 + k) % 3 == 0 else "")
        for column, key in TIRADS_COLUMNS.items():
            assert row[column] == str(POINTS[key][r.findings[key]])
        assert row["ti-rads_level"] == acr_level(r.findings)
        assert row["sex"] in ("Female", "Male") and 0.5 <= float(row["size_x"]) <= 3.5
    assert acr_level({}) == "1" and acr_level(dict.fromkeys(POINTS, "")) == "1"
    assert acr_level({"tirads_composition": "solid", "tirads_echogenicity": "very_hypoechoic",
                      "tirads_foci": "punctate"}) == "5"


def test_tn3k_without_label_files(roots: dict[str, Path], tmp_path: Path) -> None:
    ctx = _Ctx(seed=SEED, size=SIZE, per_class=PER_CLASS, broken=False, organs=("thyroid",))
    bare = write_tn3k(tmp_path / "TN3K", ctx, labels=False)
    full = digests(roots["tn3k"])
    assert digests(bare) == {k: v for k, v in full.items() if not k.startswith("label4")}
    assert {k for k in full if k.startswith("label4")} == {"label4trainval.csv", "label4test.csv"}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = make_phantom(tmp_path / "a", per_class=1, seed=2, size=SIZE, broken=True, layouts=LAYOUTS)
    second = make_phantom(tmp_path / "b", per_class=1, seed=2, size=SIZE, broken=True, layouts=LAYOUTS)
    for layout in LAYOUTS:
        assert digests(first[layout]) == digests(second[layout]), layout


@pytest.mark.parametrize("layout", LAYOUTS)
def test_end_to_end_build(layout: str, roots: dict[str, Path], tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: t\nsources:\n  - {{name: x, layout: {layout}, path: {LAYOUT_FOLDERS[layout]}}}\n"
        "image: {max_side: 64}\n")
    result = build(load_recipe(recipe, data_root=roots[layout].parent, out=tmp_path / "out"), quiet=True)
    stats = result.stats
    rejects = [json.loads(line) for line in (result.out / "rejects.jsonl").read_text().splitlines()]
    assert stats["rows"] > 0 and len(rejects) == stats["rejected"]
    if layout in ("tn3k", "stanford_thyroid"):  # every item read is a row or a reject
        (source,) = stats["sources"].values()
        assert stats["rows"] + stats["rejected"] == stats["read"] == source["read"]
        assert source["kept"] + source["rejected"] == source["read"]
    if layout == "stanford_thyroid":  # frames of one still clip may be dropped as (near-)duplicates
        assert all("duplicate" in r["reason"] and r["stage"] == "curation" for r in rejects)
    else:
        assert rejects == []
    ds = datasets.load_dataset(str(result.out))
    rows = [row for split in ds.values() for row in split]
    assert len(rows) == stats["rows"]
    assert {row["dataset"] for row in rows} == {layout}
    assert {LABEL_NAMES[row["label"]] for row in rows} <= {"normal", "benign", "malignant"}
    assert all(row["caption"] and row["image"].size == (row["width"], row["height"]) for row in rows)
    if layout == "tn3k":
        tests = [row for row in rows if row["source_path"].startswith("test-image/")]
        assert tests and all(row["split"] == "test" for row in tests)
    if layout == "stanford_thyroid":
        sampled = {k * CLIP_FRAMES + f for k in range(2 * PER_CLASS) for f in (0, 10)}
        assert {row["frame"] for row in rows} <= sampled
        assert len(rows) + len(rejects) == len(sampled)
        assert {row["study_id"] for row in rows} == {
            build_key("stanford_thyroid", f"{100 + k}_") for k in range(1, 2 * PER_CLASS + 1)}
        assert {row["patient_id"] for row in rows} == {None}
    if layout == "breast_lesions_usg":
        assert any(row["findings"]["birads_margin"] for row in rows)
